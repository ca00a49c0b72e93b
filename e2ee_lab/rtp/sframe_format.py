"""The RTP payload format for SFrame, send side: payload descriptor, modes, per-SSRC keys, packetizer.

Pinned to draft-ietf-avtcore-rtp-sframe-02 (9 January 2026), read from the authors' source of
that date (the -02 text: §4 "RTP Header Usage", §5.1 packetization, §5.2 depacketization, §6 SDP,
§7 per-SSRC keys, §8 ratcheting). A -03 exists; its text was not available to read here, so this
module follows -02 only. Every RTP payload starts with a one-byte SFrame payload descriptor
``S E T x x x x x``: S=1 only on the first fragment of an SFrame ciphertext, E=1 only on the last,
T=0 when the ciphertext protects a raw encoded frame (per-frame SFrame, the Encoded Transform
shape) and T=1 when it protects one codec RTP payload (per-packet SFrame); the five remaining bits
are "reserved for future use" (-02 says no more: this module sends them as 0 and, on receipt,
keeps and ignores them). The payload type stays the media format's; SSRC, timestamp, marker and
CSRCs are what the codec packetizer would produce, header extensions are copied (§4).
Per-frame (§5.1.1): the frame is encrypted whole, the ciphertext is cut to fit the MTU, the marker
goes on the E=1 packet when the frame's packet had it. Per-packet (§5.1.2): the codec packetizer
runs with the SFrame overhead taken off its budget, each payload is encrypted and sent in one
packet with S=E=1. Per-SSRC keys (§7): ``ssrc_key = HKDF-Expand(HKDF-Extract(salt = SSRC as 4
bytes big-endian, base_key), "SFrame 1.0 RTP Stream", Nh)``, used as the RFC 9605 base key, so all
streams may share one KID while keys and CTRs differ. Sans-I/O: encryption is a callable the
caller passes (an :class:`~e2ee_lab.crypto.sframe.SFrameContext` method), nothing is sent here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from aiortc.rtp import RtpPacket
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from ..crypto.sframe import MAX_HEADER_LEN, CipherSuite, SFrameContext, UnknownKeyId
from ..media.frame import EncodedFrame
from .errors import EmptyFrame, InvalidFrame, MalformedSFrameDescriptor
from .extensions import serialize_rtp
from .formats import Codec
from .packetizer import RTPPacketizer
from .seqnum import TS_MOD
from .vp8 import split_sizes

DRAFT = "draft-ietf-avtcore-rtp-sframe-02"  # the revision this module implements
DESCRIPTOR_LEN = 1  # -02 §4: one byte in front of every fragment
S_BIT = 0x80  # -02 §4: first fragment of an SFrame frame
E_BIT = 0x40  # -02 §4: last fragment
T_BIT = 0x20  # -02 §4: 1 = packetized content (per-packet), 0 = raw content (per-frame)
RESERVED_MASK = 0x1F  # -02 §4: five bits reserved for future use
SSRC_KEY_LABEL = b"SFrame 1.0 RTP Stream"  # -02 §7
MAX_SFRAME_OVERHEAD = MAX_HEADER_LEN + 16  # longest header + longest tag of suites 1-8
SDP_ATTRIBUTE = "a=sframe"  # -02 §6: media level, no value


class RTPSFrameMode(Enum):
    """How SFrame ciphertext rides in RTP: ``--rtp-sframe per-frame`` or ``per-packet``."""

    PER_FRAME = "per-frame"  # T=0: a whole encoded frame encrypted, then fragmented
    PER_PACKET = "per-packet"  # T=1: each codec RTP payload encrypted, one packet each

    @property
    def packetized(self) -> bool:
        """The T bit this mode sends."""
        return self is RTPSFrameMode.PER_PACKET


@dataclass(frozen=True)
class SFramePayloadDescriptor:
    """The one-byte SFrame payload descriptor of -02 §4, as a wire record."""

    start: bool  # S: first fragment of the SFrame ciphertext
    end: bool  # E: last fragment
    packetized: bool  # T: content is a codec RTP payload (per-packet), else a raw frame
    reserved: int = 0  # the five reserved bits as received (sent as 0)

    def __post_init__(self) -> None:
        if not 0 <= self.reserved <= RESERVED_MASK:
            raise ValueError(f"reserved bits {self.reserved} do not fit in 5 bits")

    def __bytes__(self) -> bytes:
        return bytes(
            (S_BIT * self.start | E_BIT * self.end | T_BIT * self.packetized | self.reserved,)
        )

    @classmethod
    def parse(cls, payload: bytes) -> tuple[SFramePayloadDescriptor, bytes]:
        """Split an RTP payload into its descriptor and the SFrame fragment after it.

        Raises :class:`MalformedSFrameDescriptor` for an empty payload or a descriptor with no
        fragment bytes after it (no SFrame ciphertext is 0 bytes, and a 0-byte fragment is
        never needed).
        """
        payload = bytes(payload)
        if len(payload) < DESCRIPTOR_LEN + 1:
            raise MalformedSFrameDescriptor(
                f"SFrame RTP payload of {len(payload)} bytes: a descriptor byte and at least one "
                "fragment byte are needed"
            )
        first = payload[0]
        descriptor = cls(
            start=bool(first & S_BIT),
            end=bool(first & E_BIT),
            packetized=bool(first & T_BIT),
            reserved=first & RESERVED_MASK,
        )
        return descriptor, payload[DESCRIPTOR_LEN:]


def ssrc_base_key(suite: CipherSuite | int, base_key: bytes, ssrc: int) -> bytes:
    """The per-SSRC key of -02 §7: the RFC 9605 base key for the stream ``ssrc``.

    ``HKDF-Expand(HKDF-Extract(salt = SSRC as 4 bytes big-endian, IKM = base_key),
    "SFrame 1.0 RTP Stream", Nh)`` with the suite's hash. Raises ``ValueError`` for an SSRC
    outside 0..2^32-1 or an unknown suite.
    """
    suite = CipherSuite(suite)
    if not isinstance(ssrc, int) or not 0 <= ssrc < 1 << 32:
        raise ValueError(f"SSRC {ssrc!r} is outside 0..2^32-1")
    prk = HKDF.extract(suite.hash_algorithm(), ssrc.to_bytes(4, "big"), bytes(base_key))
    return HKDFExpand(suite.hash_algorithm(), suite.nh, SSRC_KEY_LABEL).derive(prk)


class SSRCKeyring:
    """Per-SSRC SFrame contexts from one base key and one KID (-02 §7 and §8).

    Each stream gets its own :class:`SFrameContext` keyed with :func:`ssrc_base_key`, so one KID
    serves every stream with distinct keys and CTRs. Streams are added explicitly: an SSRC that
    arrives from the network without having been added raises :class:`UnknownKeyId` rather than
    growing the keyring. Binding keys to SSRCs means a frame moved to another SSRC (an SFU's
    stream reuse, RFC 9605 §6) no longer authenticates.
    """

    def __init__(self, suite: CipherSuite | int, base_key: bytes, kid: int) -> None:
        self.suite = CipherSuite(suite)
        self._base_key = bytes(base_key)
        self.kid = kid
        self._contexts: dict[int, SFrameContext] = {}

    def add_send_stream(self, ssrc: int) -> None:
        """Install the encrypt-only key of ``ssrc``."""
        self._context(ssrc).add_send_key(self.kid, ssrc_base_key(self.suite, self._base_key, ssrc))

    def add_receive_stream(self, ssrc: int) -> None:
        """Install the decrypt-only key of ``ssrc``."""
        key = ssrc_base_key(self.suite, self._base_key, ssrc)
        self._context(ssrc).add_receive_key(self.kid, key)

    def protect(self, plaintext: bytes, ssrc: int) -> bytes:
        """Encrypt for stream ``ssrc`` (raises UnknownKeyId when it was not added)."""
        return self._get(ssrc).protect(self.kid, plaintext)

    def unprotect(self, ciphertext: bytes, ssrc: int) -> bytes:
        """Decrypt a ciphertext of stream ``ssrc`` (SFrameError family on any failure)."""
        return self._get(ssrc).unprotect(ciphertext)

    def _context(self, ssrc: int) -> SFrameContext:
        return self._contexts.setdefault(ssrc, SFrameContext(self.suite))

    def _get(self, ssrc: int) -> SFrameContext:
        try:
            return self._contexts[ssrc]
        except KeyError:
            raise UnknownKeyId(f"SSRC {ssrc} has no per-SSRC key") from None


def sframe_payloads(ciphertext: bytes, max_payload: int, *, packetized: bool = False) -> list[bytes]:
    """Cut one SFrame ciphertext into RTP payloads of at most ``max_payload`` bytes (-02 §5.1):
    a descriptor (S on the first, E on the last, T = ``packetized``) before each fragment.

    Raises ``ValueError`` for an empty ciphertext or a budget with no room for a fragment byte.
    """
    sizes = split_sizes(len(ciphertext), max_payload - DESCRIPTOR_LEN)
    payloads, pos = [], 0
    for i, size in enumerate(sizes):
        descriptor = SFramePayloadDescriptor(i == 0, i == len(sizes) - 1, packetized)
        payloads.append(bytes(descriptor) + ciphertext[pos : pos + size])
        pos += size
    return payloads


class SFramePacketizer(RTPPacketizer):
    """Packetizes one stream's frames in the SFrame payload format (-02 §5.1), either mode.

    ``protect`` encrypts one plaintext (a whole frame, or one codec RTP payload) and returns the
    SFrame ciphertext. ``sframe_overhead`` bounds what it adds (header + tag; default the worst
    case of suites 1-8, 33 bytes); per-packet mode takes it and the descriptor byte off the
    codec packetizer's budget so each payload fits one packet (-02 §5.1.2). The RTP header,
    sequence numbers, marker bit and audio level come from :class:`RTPPacketizer`.
    Counter: ``sframe_bytes_sent`` (ciphertext bytes, descriptors excluded).
    """

    def __init__(
        self,
        codec: Codec,
        *,
        mode: RTPSFrameMode,
        protect: Callable[[bytes], bytes] | None = None,
        sframe_overhead: int = MAX_SFRAME_OVERHEAD,
        **kwargs,
    ) -> None:
        """``kwargs`` are :class:`RTPPacketizer`'s. Raises ``ValueError`` when the budget left
        cannot hold one payload byte after the descriptor and the SFrame overhead."""
        super().__init__(codec, **kwargs)
        self.mode = RTPSFrameMode(mode)
        self._protect = protect
        self.sframe_bytes_sent = 0
        if self.mode is RTPSFrameMode.PER_PACKET:
            self.max_payload_size -= DESCRIPTOR_LEN + sframe_overhead
            floor = 5 if codec is Codec.VP8 else 1  # a VP8 descriptor + 1 byte, or 1 Opus byte
        else:
            floor = 1
        if sframe_overhead < 0 or self.max_payload_size < floor:
            raise ValueError(f"{self.max_payload_size} bytes left for the payload: MTU too small")

    def packetize(self, frame: EncodedFrame, *, non_reference: bool = False,
                  protect: Callable[[bytes], bytes] | None = None) -> list[RtpPacket]:
        """Turn one plaintext frame into SFrame RTP packets, encrypting with ``protect``.

        ``protect`` overrides the constructor's for this frame (a call's key may change between
        frames). Raises what :meth:`RTPPacketizer.packetize` raises, ``ValueError`` when no
        ``protect`` was given at all, and whatever ``protect`` raises (e.g. a missing key); no
        sequence number is consumed then.
        """
        protect = protect or self._protect
        if protect is None:
            raise ValueError("SFramePacketizer needs a protect function")
        if self.mode is RTPSFrameMode.PER_PACKET:
            return self._per_packet(frame, non_reference, protect)
        return self._per_frame(frame, protect)

    def serialize(self, frame: EncodedFrame, *, non_reference: bool = False,
                  protect: Callable[[bytes], bytes] | None = None) -> list[bytes]:
        """:meth:`packetize` and serialize with :attr:`extensions_map`."""
        packets = self.packetize(frame, non_reference=non_reference, protect=protect)
        return [serialize_rtp(p, self.extensions_map) for p in packets]

    _STATE = ("sequence_number", "picture_id", "frames_sent", "packets_sent",
              "payload_bytes_sent")

    def _per_packet(self, frame: EncodedFrame, non_reference: bool, protect) -> list[RtpPacket]:
        saved = [getattr(self, name) for name in self._STATE]
        packets = super().packetize(frame, non_reference=non_reference)
        descriptor = bytes(SFramePayloadDescriptor(True, True, True))
        try:
            ciphertexts = [protect(bytes(p.payload)) for p in packets]
        except BaseException:
            for name, value in zip(self._STATE, saved):  # nothing went out: undo the stream state
                setattr(self, name, value)
            raise
        for packet, ciphertext in zip(packets, ciphertexts):
            packet.payload = descriptor + ciphertext
            self.sframe_bytes_sent += len(ciphertext)
        return packets

    def _per_frame(self, frame: EncodedFrame, protect) -> list[RtpPacket]:
        if frame.metadata.kind != self.codec.kind:
            raise InvalidFrame(f"{frame.metadata.kind} frame on a {self.codec.value} stream")
        template = self._template(frame)
        ciphertext = protect(bytes(frame.data))
        payloads = sframe_payloads(ciphertext, self.max_payload_size)
        packets = []
        for i, payload in enumerate(payloads):
            last = i == len(payloads) - 1
            packet = self._new_packet(marker=int(bool(template.marker) and last),
                                      timestamp=template.timestamp, payload=payload)
            packet.extensions.audio_level = template.extensions.audio_level
            packets.append(packet)
        self.frames_sent += 1
        self.packets_sent += len(packets)
        self.payload_bytes_sent += len(frame.data)
        self.sframe_bytes_sent += len(ciphertext)
        return packets

    def _template(self, frame: EncodedFrame) -> RtpPacket:
        """The header fields the codec packetizer would give the frame's last packet (§5.1.1).
        Changes no state."""
        if not frame.data:
            raise EmptyFrame(f"{self.codec.value} frame at timestamp {frame.timestamp} is 0 bytes")
        timestamp = (frame.timestamp + self.timestamp_offset) % TS_MOD
        packet = RtpPacket(payload_type=self.payload_type, timestamp=timestamp, marker=1)
        if self.codec is not Codec.OPUS:
            return packet
        packet.marker = 0  # no silence suppression: RFC 3551 §4.1, as in RTPPacketizer
        packet.extensions.audio_level = self._audio_level(frame).as_aiortc()
        return packet
