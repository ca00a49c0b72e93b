"""The transport layer's exception family: DTLS (RFC 6347, RFC 5764) and SRTP (RFC 3711, RFC 7714).

Every class carries a fixed ``reason`` that names the drop counter a receiver adds to when it
catches the error (``dropped[err.reason] += 1``). The reasons are prefixed (``dtls_``/``srtp_``)
so they cannot collide with the RTP and SFrame layers' counters in one SFU result.
:class:`AuthenticationFailed` deliberately says nothing about *why* a packet failed its tag check.
Wrapped ``pylibsrtp.Error`` and ``OpenSSL.SSL.Error`` instances are kept as ``__cause__``.
"""

from __future__ import annotations


class TransportError(Exception):
    """Base class of every transport-layer failure."""

    reason = "transport"


# --- DTLS ------------------------------------------------------------------------------------


class DTLSError(TransportError):
    """Base class of DTLS failures (handshake, records, peer identity)."""

    reason = "dtls"


class MalformedRecord(DTLSError):
    """The datagram is not a sequence of well-formed DTLS records (RFC 6347 §4.1)."""

    reason = "dtls_malformed_record"


class MalformedFingerprint(DTLSError, ValueError):
    """A fingerprint string is not ``<hash> XX:XX:...`` as SDP carries it (RFC 8122 §5)."""

    reason = "dtls_malformed_fingerprint"


class FingerprintMismatch(DTLSError):
    """The peer's certificate does not hash to the fingerprint signalling announced (a MITM)."""

    reason = "dtls_fingerprint_mismatch"


class HandshakeFailure(DTLSError):
    """OpenSSL aborted the handshake (an alert was sent or received); the message says which."""

    reason = "dtls_handshake_failure"


class NoSRTPProfile(DTLSError):
    """The handshake finished without a common use_srtp protection profile (RFC 5764 §4.1.1)."""

    reason = "dtls_no_srtp_profile"


class HandshakeTimeout(DTLSError):
    """The handshake did not finish within the deadline the caller gave (raised by the I/O edge)."""

    reason = "dtls_handshake_timeout"


class InvalidState(DTLSError):
    """A call that the endpoint's current state does not allow (names the call and the state)."""

    reason = "dtls_invalid_state"


# --- SRTP ------------------------------------------------------------------------------------


class SRTPError(TransportError):
    """Base class of SRTP/SRTCP protect and unprotect failures (wraps ``pylibsrtp.Error``)."""

    reason = "srtp"


class AuthenticationFailed(SRTPError):
    """The authentication tag did not verify (wrong key, tampered packet, wrong profile)."""

    reason = "srtp_auth_failed"


class ReplayDetected(SRTPError):
    """libsrtp's replay window has seen this packet index, or it is too old (RFC 3711 §3.3.2)."""

    reason = "srtp_replay"


class MalformedPacket(SRTPError):
    """The bytes cannot be an (S)RTP/(S)RTCP packet: too short, wrong version, too long."""

    reason = "srtp_malformed"


# --- key log ---------------------------------------------------------------------------------


class KeyLogError(TransportError, ValueError):
    """A key log file or entry is malformed, or names no leg for an address."""

    reason = "keylog_malformed"
