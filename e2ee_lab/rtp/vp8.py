"""The VP8 RTP payload descriptor (RFC 7741 §4.2) and frame splitting (§4.5), Chrome-style.

Every VP8 RTP payload starts with a descriptor::

    |X|R|N|S|R| PID |      X: extension byte follows, N: non-reference frame,
    |I|L|T|K| RSV   |      S: start of a partition, PID: partition index (3 bits)
    |M| PictureID   |      I: PictureID present; M=1: 15-bit PictureID (two bytes)
    |  PictureID    |

Chrome sends X=1, I=1 with the 15-bit PictureID (M=1) on every packet, S=1 only on the first packet
of a frame, PID=0 (it never splits by partition), so its descriptors are ``90 80 xx xx`` then
``80 80 xx xx``. The bit layout comes from aiortc's ``VpxPayloadDescriptor`` (``parse`` and
``__bytes__``); this module adds what it lacks (the N bit, a 3-bit PID as in RFC 7741 rather than
aiortc's 4 bits, typed errors, rejecting a descriptor with no payload after it as libwebrtc does)
and the frame-level helpers. Chrome's own shape, on every packet the lab sends, is read from its 4
octets without aiortc (the descriptor cached: packets of a frame share it): a test holds that
shortcut to aiortc's answer for any bytes, and every other shape goes through aiortc. Frame
boundaries never depend on the payload: it may be SFrame ciphertext. Only :func:`vp8_frame_type`
reads the VP8 payload header (RFC 7741 §4.3, P bit), which is meaningful on plaintext VP8 alone.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from aiortc.codecs.vpx import VpxPayloadDescriptor

from .errors import EmptyPayload, TruncatedDescriptor

PICTURE_ID_MOD = 1 << 15  # RFC 7741 §4.2: M=1 gives a 15-bit PictureID
X_BIT = 0x80  # RFC 7741 §4.2, first octet
N_BIT = 0x20
S_BIT = 0x10
PID_MASK = 0x07
I_ONLY = 0x80  # second octet with I=1 and L=T=K=0: a PictureID and nothing else
M_BIT = 0x80  # first PictureID octet: M=1, a 15-bit PictureID
CHROME_DESCRIPTOR_LEN = 4  # X byte + I byte + two PictureID bytes


@dataclass(frozen=True)
class VP8PayloadDescriptor:
    """One RFC 7741 §4.2 payload descriptor (the fields Chrome uses, plus TL0PICIDX/TID/KEYIDX)."""

    start_of_partition: bool  # S bit: set on the first packet of a frame (with partition 0)
    partition_index: int = 0  # PID, 0..7
    non_reference: bool = False  # N bit: the frame can be discarded without hurting others
    picture_id: int | None = None  # 0..32767, sent as 15 bits (M=1) like Chrome
    tl0picidx: int | None = None  # L: temporal layer 0 picture index
    tid: tuple[int, int] | None = None  # T: (TID, Y) temporal layer index and layer sync bit
    keyidx: int | None = None  # K: temporal key frame index

    def __post_init__(self) -> None:
        if not 0 <= self.partition_index <= PID_MASK:
            raise ValueError(f"partition index {self.partition_index} is outside 0..7")
        if self.picture_id is not None and not 0 <= self.picture_id < PICTURE_ID_MOD:
            raise ValueError(f"PictureID {self.picture_id} is outside 0..32767")
        if self.tl0picidx is not None and not 0 <= self.tl0picidx <= 0xFF:
            raise ValueError(f"TL0PICIDX {self.tl0picidx} is outside 0..255")
        if self.tid is not None and not (0 <= self.tid[0] <= 3 and self.tid[1] in (0, 1)):
            raise ValueError(f"TID/Y {self.tid} is outside 0..3 / 0..1")
        if self.keyidx is not None and not 0 <= self.keyidx <= 0x1F:
            raise ValueError(f"KEYIDX {self.keyidx} is outside 0..31")

    @property
    def starts_frame(self) -> bool:
        """True on the first packet of a frame: S=1 and PID=0 (RFC 7741 §4.4)."""
        return self.start_of_partition and self.partition_index == 0

    def __bytes__(self) -> bytes:
        data = bytearray(
            bytes(
                VpxPayloadDescriptor(
                    partition_start=int(self.start_of_partition),
                    partition_id=self.partition_index,
                    picture_id=self.picture_id,
                    tl0picidx=self.tl0picidx,
                    tid=self.tid,
                    keyidx=self.keyidx,
                )
            )
        )
        if self.non_reference:
            data[0] |= N_BIT
        return bytes(data)

    @classmethod
    def parse(cls, payload: bytes) -> tuple[VP8PayloadDescriptor, bytes]:
        """Split an RTP payload into its descriptor and the VP8 (or ciphertext) bytes after it.

        Raises :class:`EmptyPayload` for an empty payload or one with nothing after the
        descriptor, :class:`TruncatedDescriptor` when announced fields are missing.
        """
        payload = bytes(payload)
        if len(payload) > CHROME_DESCRIPTOR_LEN and payload[0] & X_BIT and payload[1] == I_ONLY and payload[2] & M_BIT:
            # Chrome's shape (module docstring): aiortc's parser costs more than the rest of reassembly
            return _chrome_descriptor(payload[:CHROME_DESCRIPTOR_LEN]), payload[CHROME_DESCRIPTOR_LEN:]
        return cls._parse_any(payload)

    @classmethod
    def _parse_any(cls, payload: bytes) -> tuple[VP8PayloadDescriptor, bytes]:
        """:meth:`parse` of any descriptor, through aiortc's parser."""
        if not payload:
            raise EmptyPayload("VP8 RTP payload is 0 bytes")
        try:
            parsed, rest = VpxPayloadDescriptor.parse(payload)
        except ValueError as exc:
            raise TruncatedDescriptor(f"{exc} ({len(payload)} payload bytes)") from None
        if not rest:
            raise EmptyPayload(f"VP8 descriptor of {len(payload)} bytes carries no data")
        first = payload[0]
        descriptor = cls(
            start_of_partition=bool(first & S_BIT),
            partition_index=first & PID_MASK,
            non_reference=bool(first & N_BIT),
            picture_id=parsed.picture_id,
            tl0picidx=parsed.tl0picidx,
            tid=parsed.tid,
            keyidx=parsed.keyidx,
        )
        return descriptor, rest


@functools.lru_cache(maxsize=1024)
def _chrome_descriptor(head: bytes) -> VP8PayloadDescriptor:
    """The descriptor of a 4-byte Chrome-shaped header (X=1; I=1 and nothing else; M=1). Cached: the
    packets of a frame share it, and so do the receivers of one stream in a process."""
    first = head[0]
    return VP8PayloadDescriptor(start_of_partition=bool(first & S_BIT), partition_index=first & PID_MASK,
                                non_reference=bool(first & N_BIT), picture_id=(head[2] & 0x7F) << 8 | head[3])


def split_sizes(total: int, capacity: int) -> list[int]:
    """Split ``total`` bytes into the fewest chunks of at most ``capacity``, sizes within 1 byte.

    Equal-sized fragments as libwebrtc's packetizers make them (rather than full packets and a
    small tail). ``total`` must be positive and ``capacity`` at least 1.
    """
    if total <= 0 or capacity <= 0:
        raise ValueError(f"cannot split {total} bytes into chunks of {capacity}")
    count = math.ceil(total / capacity)
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)


def vp8_payloads(
    frame: bytes, *, picture_id: int, max_payload: int, non_reference: bool = False
) -> list[bytes]:
    """Split one encoded (or encrypted) frame into RTP payloads of at most ``max_payload`` bytes.

    Each payload is a Chrome-style 4-byte descriptor (S=1 only on the first) plus a fragment.
    Raises ``ValueError`` if ``frame`` is empty or ``max_payload`` leaves no room for data.
    """
    first = bytes(VP8PayloadDescriptor(True, 0, non_reference, picture_id))
    rest = bytes(VP8PayloadDescriptor(False, 0, non_reference, picture_id))
    payloads, pos = [], 0
    for size in split_sizes(len(frame), max_payload - len(first)):
        payloads.append((first if pos == 0 else rest) + frame[pos : pos + size])
        pos += size
    return payloads


def vp8_frame_type(frame: bytes) -> str:
    """``"key"`` or ``"delta"`` from the VP8 payload header's P bit (RFC 7741 §4.3: 0 = key).

    Only meaningful on plaintext VP8: on SFrame ciphertext the answer is a coin toss, which is
    what an SFU that guesses from the payload gets in E2EE mode. Raises :class:`EmptyPayload` for
    an empty frame.
    """
    if not frame:
        raise EmptyPayload("VP8 frame is 0 bytes")
    return "delta" if frame[0] & 0x01 else "key"
