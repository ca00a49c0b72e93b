"""Payload formats the lab sends, their clock rates, and the packet-size budget.

VP8 video (RFC 7741, 90 kHz clock, §4.1) and Opus audio (RFC 7587, 48 kHz clock whatever the
sampling rate, §4.1). The size budget: the MTU is the UDP payload, i.e. the whole SRTP packet
(RFC 3711 §3.1), so the RTP packet the packetizer builds must leave room for what SRTP appends
later: the 16-byte authentication tag of AEAD_AES_128_GCM / AEAD_AES_256_GCM (RFC 7714 §5.1) by
default, 10 bytes for AES_CM_128_HMAC_SHA1_80 (RFC 3711 §5.2). RFC 7714 §16 GCM suites add no MKI
(the lab uses none). With the default 1200-byte MTU that leaves 1184 bytes of RTP packet:
12-byte header (+ header extensions) + 4-byte VP8 descriptor + payload.
"""

from __future__ import annotations

from enum import Enum

DEFAULT_MTU = 1200  # bytes of UDP payload (the SRTP packet), as browsers' 1200-byte packet budget
SRTP_AEAD_TAG_LEN = 16  # RFC 7714 §5.1: AEAD_AES_128_GCM and AEAD_AES_256_GCM tags are 16 bytes
SRTP_HMAC_SHA1_80_TAG_LEN = 10  # RFC 3711 §5.2: HMAC-SHA1 truncated to 80 bits
DEFAULT_SRTP_OVERHEAD = SRTP_AEAD_TAG_LEN
VIDEO_CLOCK_RATE = 90_000  # RFC 7741 §4.1 (and RFC 3551 for video)
OPUS_CLOCK_RATE = 48_000  # RFC 7587 §4.1: always 48 kHz


class Codec(Enum):
    """A payload format: its media kind and RTP clock rate."""

    VP8 = "vp8"
    OPUS = "opus"

    @property
    def kind(self) -> str:
        """``"video"`` or ``"audio"``, as ``FrameMetadata.kind``."""
        return "video" if self is Codec.VP8 else "audio"

    @property
    def clock_rate(self) -> int:
        """RTP timestamp ticks per second."""
        return VIDEO_CLOCK_RATE if self is Codec.VP8 else OPUS_CLOCK_RATE

    @property
    def mime_type(self) -> str:
        """The SDP/RTCRtpCodecParameters mime type (``video/VP8``, ``audio/opus``)."""
        return "video/VP8" if self is Codec.VP8 else "audio/opus"


def max_rtp_packet_size(mtu: int = DEFAULT_MTU, srtp_overhead: int = DEFAULT_SRTP_OVERHEAD) -> int:
    """Largest RTP packet (header + extensions + payload) that still fits ``mtu`` after SRTP.

    Raises ``ValueError`` if the budget cannot hold even a 12-byte RTP header and one payload byte.
    """
    size = mtu - srtp_overhead
    if srtp_overhead < 0 or size < 13:
        raise ValueError(f"MTU {mtu} with SRTP overhead {srtp_overhead} leaves {size} bytes")
    return size
