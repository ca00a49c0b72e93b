"""First-byte demultiplexing on one UDP 5-tuple: RFC 7983 §7 (updates RFC 5764), RFC 5761 §4.

A WebRTC leg carries STUN, DTLS and SRTP/SRTCP on one port; the receiver tells them apart by the
first byte of each datagram:

=========  ================  ==================================
first byte  protocol          source
=========  ================  ==================================
0 - 3       STUN              RFC 7983 §7
16 - 19     ZRTP              RFC 7983 §7
20 - 63     DTLS              RFC 7983 §7 (content types 20-63)
64 - 79     TURN channel      RFC 7983 §7
128 - 191   RTP / RTCP        RFC 7983 §7 (version 2)
=========  ================  ==================================

RTP and RTCP share a port (rtcp-mux, RFC 5761): RFC 5761 §4 tells them apart by the second byte,
which for RTCP is the packet type 192-223 (RTP payload types 64-95 with the marker bit set would
collide, which is why RFC 5761 forbids those payload types). Everything else is ``UNKNOWN``; the
caller counts and drops it. :func:`classify` never raises for bytes input.
"""

from __future__ import annotations

import enum

STUN_RANGE = range(0, 4)  # RFC 7983 §7
ZRTP_RANGE = range(16, 20)  # RFC 7983 §7
DTLS_RANGE = range(20, 64)  # RFC 7983 §7
TURN_CHANNEL_RANGE = range(64, 80)  # RFC 7983 §7
RTP_RANGE = range(128, 192)  # RFC 7983 §7: RTP version 2 (top bits 10)
RTCP_PACKET_TYPES = range(192, 224)  # RFC 5761 §4: second byte of RTCP


class PacketKind(enum.Enum):
    """What a datagram on a leg carries; the value names a drop counter suffix."""

    STUN = "stun"
    ZRTP = "zrtp"
    DTLS = "dtls"
    TURN_CHANNEL = "turn_channel"
    RTP = "rtp"
    RTCP = "rtcp"
    UNKNOWN = "unknown"


_FIRST_BYTE_KINDS = (
    (STUN_RANGE, PacketKind.STUN),
    (ZRTP_RANGE, PacketKind.ZRTP),
    (DTLS_RANGE, PacketKind.DTLS),
    (TURN_CHANNEL_RANGE, PacketKind.TURN_CHANNEL),
)


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """True if ``data`` is version 2 and its second byte is an RTCP packet type (RFC 5761 §4)."""
    return len(data) >= 2 and data[0] in RTP_RANGE and data[1] in RTCP_PACKET_TYPES


def classify(data: bytes | bytearray | memoryview) -> PacketKind:
    """The protocol of one datagram by its first byte (and second byte for RTP/RTCP).

    An empty datagram, an unassigned first byte, or an RTP-range first byte with no second byte
    is ``UNKNOWN``.
    """
    if len(data) == 0:
        return PacketKind.UNKNOWN
    first = data[0]
    for first_bytes, kind in _FIRST_BYTE_KINDS:
        if first in first_bytes:
            return kind
    if first in RTP_RANGE and len(data) >= 2:
        return PacketKind.RTCP if data[1] in RTCP_PACKET_TYPES else PacketKind.RTP
    return PacketKind.UNKNOWN
