"""Events of the transport layer, facts in the past tense (aioquic ``quic/events.py`` style).

:class:`~e2ee_lab.transport.dtls.DTLSEndpoint` emits the handshake events and
:class:`~e2ee_lab.transport.leg.LegConnection` adds the media events; callers drain them with
``next_event()``. :class:`HandshakeCompleted` carries the SRTP master keys exported with the
label "EXTRACTOR-dtls_srtp" (RFC 5764 §4.2), already split into this endpoint's write key
(``local_key``, used to protect) and the peer's write key (``remote_key``, used to unprotect).
Times are the ``now`` the caller passed in (seconds, any origin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .certificate import Fingerprint
from .errors import DTLSError
from .srtp import SRTPMasterKey, SRTPProfile

Role = Literal["client", "server"]


@dataclass(frozen=True)
class HandshakeCompleted:
    """The DTLS handshake finished, the peer's fingerprint matched and SRTP keys were exported."""

    role: Role  # this endpoint's DTLS role
    profile: SRTPProfile  # the negotiated use_srtp protection profile
    local_key: SRTPMasterKey  # this endpoint's write key and salt (protect with it)
    remote_key: SRTPMasterKey  # the peer's write key and salt (unprotect with it)
    peer_fingerprint: Fingerprint  # sha-256 fingerprint of the peer certificate, as verified
    cipher: str  # the DTLS cipher suite OpenSSL chose, e.g. "ECDHE-ECDSA-AES128-GCM-SHA256"
    version: str  # "DTLSv1.2"

    @property
    def client_write_key(self) -> SRTPMasterKey:
        """RFC 5764 §4.2 client_write_SRTP_master_key + salt."""
        return self.local_key if self.role == "client" else self.remote_key

    @property
    def server_write_key(self) -> SRTPMasterKey:
        """RFC 5764 §4.2 server_write_SRTP_master_key + salt."""
        return self.remote_key if self.role == "client" else self.local_key


@dataclass(frozen=True)
class HandshakeFailed:
    """The handshake failed for good; the endpoint is in state FAILED."""

    error: DTLSError  # what went wrong; ``error.reason`` names the counter


@dataclass(frozen=True)
class ConnectionClosed:
    """The DTLS association ended (close_notify sent or received)."""

    by_peer: bool  # True if the peer sent close_notify


@dataclass(frozen=True)
class RTPReceived:
    """An SRTP packet was authenticated and decrypted."""

    data: bytes  # the plaintext RTP packet
    time: float  # arrival time (the caller's ``now``)
    wire_size: int  # bytes of the SRTP packet on the wire


@dataclass(frozen=True)
class RTCPReceived:
    """An SRTCP packet was authenticated and decrypted."""

    data: bytes  # the plaintext RTCP compound packet
    time: float  # arrival time (the caller's ``now``)
    wire_size: int  # bytes of the SRTCP packet on the wire


DTLSEvent = HandshakeCompleted | HandshakeFailed | ConnectionClosed
LegEvent = DTLSEvent | RTPReceived | RTCPReceived
