"""RTP header extensions as browsers send them: audio level (RFC 6464) in one-byte form (RFC 8285).

Chrome's offers map ``a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level``, 2 abs-send-time,
3 transport-wide-cc and 4 ``urn:ietf:params:rtp-hdrext:sdes:mid``. RFC 6464 §3 defines the element
as one byte ``V | level``: V (bit 7) is the voice-activity flag, ``level`` (7 bits) the audio level
in -dBov, 0 loudest, 127 silence or muted. In the one-byte header form (RFC 8285 §4.2, profile
0xBEDE) each element starts with ``ID (4 bits) | L (4 bits)`` where L is the length minus one, so an
audio-level element with extmap id 1 is the two bytes ``0x10, V<<7|level``; the block is padded
with zero bytes to a 32-bit boundary (§4.1.1). Serialization and parsing are aiortc's
(``HeaderExtensionsMap``, ``RtpPacket``); this module configures the map, wraps aiortc's exceptions
into :class:`~e2ee_lab.rtp.errors.BadExtension`, and gives the element a record of its own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from .errors import BadExtension, MalformedPacket

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  # RFC 6464 §4
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"  # RFC 9143 §15 (BUNDLE)
AUDIO_LEVEL_ID = 1  # Chrome's extmap id for the audio level
MID_ID = 4  # Chrome's extmap id for the MID
ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 §4.2
TWO_BYTE_PROFILE = 0x1000  # RFC 8285 §4.3 (0x100 in the top 12 bits, appbits 0)
ONE_BYTE_MAX_ID = 14  # RFC 8285 §4.2: ids 1..14; 15 is reserved
ONE_BYTE_MAX_LEN = 16  # RFC 8285 §4.2: L = length - 1 in 4 bits
MAX_AUDIO_LEVEL = 127  # RFC 6464 §3: 7 bits of -dBov


@dataclass(frozen=True)
class AudioLevel:
    """The RFC 6464 §3 element: ``voice_activity`` (V bit) and ``level`` in -dBov (0..127)."""

    level: int
    voice_activity: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_AUDIO_LEVEL:
            raise ValueError(f"audio level {self.level} is outside 0..127 (-dBov)")

    def __bytes__(self) -> bytes:
        return bytes([(0x80 if self.voice_activity else 0) | self.level])

    @classmethod
    def parse(cls, data: bytes) -> AudioLevel:
        """Parse the one-byte element; raises :class:`BadExtension` if it is not one byte."""
        if len(data) != 1:
            raise BadExtension(f"audio level element is {len(data)} bytes, expected 1")
        return cls(level=data[0] & 0x7F, voice_activity=bool(data[0] & 0x80))

    def as_aiortc(self) -> tuple[bool, int]:
        """The ``(vad, level)`` tuple aiortc keeps in ``HeaderExtensions.audio_level``."""
        return (self.voice_activity, self.level)

    @classmethod
    def from_aiortc(cls, value: tuple[bool, int] | None) -> AudioLevel | None:
        """The record for aiortc's ``(vad, level)`` tuple, or None when the packet has none."""
        return None if value is None else cls(level=value[1], voice_activity=bool(value[0]))


def _check_id(name: str, ext_id: int | None) -> None:
    if ext_id is not None and not 1 <= ext_id <= ONE_BYTE_MAX_ID:
        raise ValueError(f"{name} extmap id {ext_id} is outside the one-byte range 1..14")


def make_extensions_map(
    *, audio_level_id: int | None = AUDIO_LEVEL_ID, mid_id: int | None = None
) -> HeaderExtensionsMap:
    """An aiortc ``HeaderExtensionsMap`` configured like a browser's ``a=extmap`` lines.

    ``audio_level_id`` (default 1, Chrome's) and ``mid_id`` (Chrome uses 4; None leaves the MID
    out) must be one-byte ids 1..14. Sender and receiver of a leg must use equal maps. Raises
    ``ValueError`` for an id out of range or two extensions on one id.
    """
    _check_id("audio level", audio_level_id)
    _check_id("mid", mid_id)
    if audio_level_id is not None and audio_level_id == mid_id:
        raise ValueError(f"audio level and mid share extmap id {mid_id}")
    params = []
    if audio_level_id is not None:
        params.append(RTCRtpHeaderExtensionParameters(id=audio_level_id, uri=AUDIO_LEVEL_URI))
    if mid_id is not None:
        params.append(RTCRtpHeaderExtensionParameters(id=mid_id, uri=MID_URI))
    ext_map = HeaderExtensionsMap()
    ext_map.configure(RTCRtpParameters(headerExtensions=params))
    return ext_map


def check_mid(mid: str | None) -> None:
    """Raise ``ValueError`` unless ``mid`` fits a one-byte element (1..16 UTF-8 bytes, RFC 8285)."""
    if mid is not None and not 1 <= len(mid.encode("utf8")) <= ONE_BYTE_MAX_LEN:
        raise ValueError(f"mid {mid!r} does not fit a one-byte header extension (1..16 bytes)")


def parse_rtp(data: bytes, extensions_map: HeaderExtensionsMap | None = None) -> RtpPacket:
    """Parse one RTP packet with aiortc, turning its exceptions into this layer's family.

    ``extensions_map`` names the extmap ids (default: none known; unknown elements are skipped).
    Returns the aiortc ``RtpPacket``. Raises :class:`BadExtension` for a truncated extension block
    or element, or an element of the wrong length or encoding; :class:`MalformedPacket` for
    anything else aiortc rejects (short header, version != 2, truncated CSRC, bad padding).
    """
    ext_map = extensions_map if extensions_map is not None else HeaderExtensionsMap()
    try:
        return RtpPacket.parse(bytes(data), ext_map)
    except (struct.error, UnicodeDecodeError) as exc:
        raise BadExtension(f"header extension element: {exc}") from None
    except ValueError as exc:
        if "extension" in str(exc):
            raise BadExtension(str(exc)) from None
        raise MalformedPacket(f"{exc} ({len(data)} bytes)") from None


def serialize_rtp(packet: RtpPacket, extensions_map: HeaderExtensionsMap | None = None) -> bytes:
    """Serialize ``packet`` with aiortc, writing the extensions ``extensions_map`` knows ids for."""
    return packet.serialize(extensions_map if extensions_map is not None else HeaderExtensionsMap())
