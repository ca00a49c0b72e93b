"""Transport layer: real DTLS-SRTP per leg on loopback (RFC 5764, RFC 6347, RFC 3711, RFC 7983).

Every participant<->SFU leg runs a DTLS 1.2 handshake (OpenSSL via pyOpenSSL) with the use_srtp
extension; the SRTP master keys come from the exporter "EXTRACTOR-dtls_srtp" and media is
protected with libsrtp (pylibsrtp). The SFU is the DTLS peer of every leg, so it holds every
leg's keys — the "privileged decryption point" that end-to-end encryption takes out of the
picture. Sans-I/O core: :mod:`.dtls` (handshake), :mod:`.srtp` (sessions), :mod:`.demux`
(first-byte demultiplexing), :mod:`.leg` (one leg: all three), :mod:`.records` (DTLS framing),
:mod:`.keylog` (the SFU's key log). asyncio edge: :mod:`.udp`. Benchmarks: ``python -m
e2ee_lab.transport.bench``.
"""

from .certificate import Certificate, Fingerprint
from .demux import PacketKind, classify, is_rtcp
from .dtls import EXPORTER_LABEL, DTLSEndpoint, DTLSState, split_keying_material
from .errors import (
    AuthenticationFailed,
    DTLSError,
    FingerprintMismatch,
    HandshakeFailure,
    HandshakeTimeout,
    InvalidState,
    KeyLogError,
    MalformedFingerprint,
    MalformedPacket,
    MalformedRecord,
    NoSRTPProfile,
    ReplayDetected,
    SRTPError,
    TransportError,
)
from .events import (
    ConnectionClosed,
    HandshakeCompleted,
    HandshakeFailed,
    RTCPReceived,
    RTPReceived,
)
from .keylog import (
    KeyLogEntry,
    find_entry,
    read_keylog,
    receive_session,
    sessions_for,
    write_keylog,
)
from .leg import LegConnection
from .srtp import (
    DEFAULT_PROFILE,
    DEFAULT_PROFILES,
    SRTPMasterKey,
    SRTPProfile,
    SRTPSession,
    SRTPSessionPair,
    session_pair,
)
from .udp import (
    LOOPBACK,
    UDPLeg,
    check_loopback,
    connect_leg,
    listen_leg,
    open_leg_pair,
    open_udp,
)

__all__ = [
    "AuthenticationFailed",
    "Certificate",
    "ConnectionClosed",
    "DEFAULT_PROFILE",
    "DEFAULT_PROFILES",
    "DTLSEndpoint",
    "DTLSError",
    "DTLSState",
    "EXPORTER_LABEL",
    "Fingerprint",
    "FingerprintMismatch",
    "HandshakeCompleted",
    "HandshakeFailed",
    "HandshakeFailure",
    "HandshakeTimeout",
    "InvalidState",
    "KeyLogEntry",
    "KeyLogError",
    "LOOPBACK",
    "LegConnection",
    "MalformedFingerprint",
    "MalformedPacket",
    "MalformedRecord",
    "NoSRTPProfile",
    "PacketKind",
    "RTCPReceived",
    "RTPReceived",
    "ReplayDetected",
    "SRTPError",
    "SRTPMasterKey",
    "SRTPProfile",
    "SRTPSession",
    "SRTPSessionPair",
    "TransportError",
    "UDPLeg",
    "check_loopback",
    "classify",
    "connect_leg",
    "find_entry",
    "is_rtcp",
    "listen_leg",
    "open_leg_pair",
    "open_udp",
    "read_keylog",
    "receive_session",
    "session_pair",
    "sessions_for",
    "split_keying_material",
    "write_keylog",
]
