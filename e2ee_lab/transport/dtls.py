"""A sans-I/O DTLS 1.2 endpoint for DTLS-SRTP (RFC 6347, RFC 5764 §4 use_srtp/keys, RFC 5763 §5).

:class:`DTLSEndpoint` drives an OpenSSL DTLS connection (pyOpenSSL over memory BIOs) with bytes
in and bytes out, the way aioquic's ``QuicConnection`` works: feed it with
:meth:`~DTLSEndpoint.receive_datagram`, send what :meth:`~DTLSEndpoint.datagrams_to_send`
returns, call :meth:`~DTLSEndpoint.handle_timer` when :meth:`~DTLSEndpoint.get_timer` is due, and
drain :meth:`~DTLSEndpoint.next_event`. Both ends present a self-signed certificate and each
checks the peer's against the SHA-256 fingerprint that signalling carried (RFC 5763 §5: the
endpoint "MUST" verify it, else a MITM could sit on the leg); the check runs inside OpenSSL's
verify callback, so a mismatch aborts the handshake with an alert before any key exists, and is
repeated on the finished handshake. The ClientHello offers the use_srtp profiles in preference
order (RFC 5764 §4.1.1). On completion the endpoint exports ``2 * (key + salt)`` bytes with the
label "EXTRACTOR-dtls_srtp" and splits them as RFC 5764 §4.2 lays out: client_write_key,
server_write_key, client_write_salt, server_write_salt.

Datagrams that are not whole DTLS records are dropped and counted in ``dropped`` before OpenSSL
sees them; OpenSSL itself silently discards records it cannot authenticate (RFC 6347 §4.1.2.7).
Retransmission (RFC 6347 §4.2.4) uses OpenSSL's timer: OpenSSL measures the timeout on its own
monotonic clock, so ``now`` only positions :meth:`get_timer` on the caller's clock.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Sequence

from OpenSSL import SSL

from .certificate import Certificate, Fingerprint
from .errors import (
    DTLSError,
    FingerprintMismatch,
    HandshakeFailure,
    InvalidState,
    MalformedRecord,
    NoSRTPProfile,
)
from .events import ConnectionClosed, DTLSEvent, HandshakeCompleted, HandshakeFailed, Role
from .records import DTLS_1_2, pack_datagrams, parse_records
from .srtp import DEFAULT_PROFILES, SRTPMasterKey, SRTPProfile

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"  # RFC 5764 §4.2
DEFAULT_MTU = 1200  # bytes of UDP payload per datagram (what browsers use for DTLS)
# ECDHE with ECDSA certificates, AEAD first (the suites browsers offer for DTLS 1.2).
CIPHER_LIST = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    b"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-SHA"
)
REJECTED_RECORD = "dtls_record_rejected"  # OpenSSL refused a record after the handshake
APPLICATION_DATA = "dtls_application_data"  # DTLS application data (no data channel here)
NOT_ACCEPTING = "dtls_not_accepting"  # a datagram before start() or after close/failure


class DTLSState(enum.Enum):
    """Endpoint states: NEW -> HANDSHAKING -> CONNECTED -> CLOSED, or -> FAILED."""

    NEW = "new"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


def split_keying_material(
    profile: SRTPProfile, material: bytes
) -> tuple[SRTPMasterKey, SRTPMasterKey]:
    """Split exporter output into (client_write, server_write) master keys (RFC 5764 §4.2).

    The layout is client_write_key | server_write_key | client_write_salt | server_write_salt.
    Raises ValueError if ``material`` is not exactly ``2 * (key_length + salt_length)`` bytes.
    """
    klen, slen = profile.key_length, profile.salt_length
    if len(material) != 2 * (klen + slen):
        raise ValueError(f"{profile.value} needs {2 * (klen + slen)} bytes, got {len(material)}")
    client = SRTPMasterKey(key=material[:klen], salt=material[2 * klen : 2 * klen + slen])
    server = SRTPMasterKey(key=material[klen : 2 * klen], salt=material[2 * klen + slen :])
    return client, server


class DTLSEndpoint:
    """One side of a DTLS-SRTP handshake, with no sockets and no clock of its own.

    Args:
        role: ``"client"`` sends the ClientHello; ``"server"`` answers it.
        certificate: this endpoint's certificate (its fingerprint goes to the peer via SDP).
        remote_fingerprint: the peer's fingerprint from signalling (a :class:`Fingerprint` or
            the SDP string ``"sha-256 AB:..."``); the handshake fails unless it matches.
        profiles: use_srtp profiles in preference order (the server picks the first of its
            own list that the client offered).
        mtu: largest datagram this endpoint emits.

    Raises:
        ValueError: bad role, empty or duplicate profiles, an MTU below 256,
            or a malformed fingerprint string.
    """

    def __init__(
        self,
        *,
        role: Role,
        certificate: Certificate,
        remote_fingerprint: Fingerprint | str,
        profiles: Sequence[SRTPProfile] = DEFAULT_PROFILES,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        if not profiles or len(set(profiles)) != len(profiles):
            raise ValueError("profiles must be a non-empty list without duplicates")
        if mtu < 256:
            raise ValueError(f"mtu {mtu} is too small for a DTLS flight (need >= 256)")
        if isinstance(remote_fingerprint, str):
            remote_fingerprint = Fingerprint.parse(remote_fingerprint)
        self.role: Role = role
        self.certificate = certificate
        self.remote_fingerprint = remote_fingerprint
        self.profiles = tuple(SRTPProfile(p) for p in profiles)
        self.mtu = mtu
        self.state = DTLSState.NEW
        self.keys: HandshakeCompleted | None = None
        self.error: DTLSError | None = None
        self.dropped: Counter[str] = Counter()
        self._events: deque[DTLSEvent] = deque()
        self._outgoing: list[bytes] = []
        self._timer: float | None = None
        self._mismatch = False
        self._ssl = SSL.Connection(self._make_context(), None)
        self._ssl.set_ciphertext_mtu(mtu)
        if role == "client":
            self._ssl.set_connect_state()
        else:
            self._ssl.set_accept_state()

    def __repr__(self) -> str:
        return f"DTLSEndpoint({self.role}, {self.state.value})"

    # --- public API --------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the handshake: a client queues its ClientHello, a server starts listening.

        Raises InvalidState unless the endpoint is NEW.
        """
        self._expect(DTLSState.NEW, "start")
        self.state = DTLSState.HANDSHAKING
        if self.role == "client":
            self._advance_handshake()
        self._arm_timer(now)

    def receive_datagram(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Process one UDP payload from the peer. Never raises for network input.

        Malformed datagrams add to ``dropped``; a fatal handshake error moves the endpoint to
        FAILED and queues :class:`HandshakeFailed`.
        """
        if self.state not in (DTLSState.HANDSHAKING, DTLSState.CONNECTED):
            self.dropped[NOT_ACCEPTING] += 1
            return
        data = bytes(data)
        try:
            parse_records(data)
        except MalformedRecord as exc:
            self.dropped[exc.reason] += 1
            return
        self._ssl.bio_write(data)
        if self.state is DTLSState.HANDSHAKING:
            self._advance_handshake()
        else:
            self._read_connected()
        self._arm_timer(now)

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """The datagrams to send to the peer now (each at most ``mtu`` bytes); empties the queue."""
        datagrams, self._outgoing = self._outgoing, []
        return datagrams

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should next be called (caller's clock), or None."""
        return self._timer

    def handle_timer(self, now: float) -> None:
        """Retransmit the last flight if OpenSSL's retransmission timer has expired."""
        if self._timer is None or now < self._timer:
            return
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(HandshakeFailure(f"retransmission gave up: {_openssl_reason(exc)}"))
        self._flush()
        self._arm_timer(now)

    def next_event(self) -> DTLSEvent | None:
        """The oldest undelivered event, or None."""
        return self._events.popleft() if self._events else None

    def close(self, now: float) -> None:
        """Send close_notify (if a handshake is under way or done) and move to CLOSED.

        Idempotent; queues :class:`ConnectionClosed` once if the endpoint was started.
        """
        if self.state in (DTLSState.CLOSED, DTLSState.FAILED):
            return
        was_started = self.state is not DTLSState.NEW
        if was_started:
            self._shutdown()
        self.state = DTLSState.CLOSED
        self._timer = None
        if was_started:
            self._events.append(ConnectionClosed(by_peer=False))

    # --- handshake ---------------------------------------------------------------------------

    def _make_context(self) -> SSL.Context:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_min_proto_version(DTLS_1_2)
        ctx.set_max_proto_version(DTLS_1_2)
        ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify_peer)
        ctx.use_certificate(self.certificate.x509)
        ctx.use_privatekey(self.certificate.private_key)
        ctx.set_cipher_list(CIPHER_LIST)
        ctx.set_tlsext_use_srtp(b":".join(p.openssl_name for p in self.profiles))
        return ctx

    def _verify_peer(self, conn, cert, errno: int, depth: int, ok: int) -> bool:
        """OpenSSL verify callback: the leaf must match the signalled fingerprint (no CA)."""
        if depth != 0:
            return True
        try:
            self.remote_fingerprint.verify(cert.to_cryptography())
        except FingerprintMismatch:
            self._mismatch = True
            return False
        return True

    def _advance_handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            self._fail(self._handshake_error(exc))
        else:
            self._complete()
        self._flush()

    def _handshake_error(self, exc: SSL.Error) -> DTLSError:
        if self._mismatch:
            return FingerprintMismatch("peer certificate does not match the signalled fingerprint")
        return HandshakeFailure(f"OpenSSL: {_openssl_reason(exc)}")

    def _complete(self) -> None:
        try:
            self.keys = self._export_keys()
        except DTLSError as exc:
            self._shutdown()
            self._fail(exc)
            return
        self.state = DTLSState.CONNECTED
        self._events.append(self.keys)

    def _export_keys(self) -> HandshakeCompleted:
        peer = self._ssl.get_peer_certificate(as_cryptography=True)
        if peer is None:
            raise HandshakeFailure("peer sent no certificate")
        self.remote_fingerprint.verify(peer)  # again, on the certificate actually used
        name = self._ssl.get_selected_srtp_profile()
        if not name:
            raise NoSRTPProfile("no common use_srtp profile was negotiated")
        profile = SRTPProfile.from_openssl_name(name)
        length = 2 * (profile.key_length + profile.salt_length)
        material = self._ssl.export_keying_material(EXPORTER_LABEL, length)
        client, server = split_keying_material(profile, material)
        local, remote = (client, server) if self.role == "client" else (server, client)
        return HandshakeCompleted(
            role=self.role,
            profile=profile,
            local_key=local,
            remote_key=remote,
            peer_fingerprint=Fingerprint.of(peer),
            cipher=self._ssl.get_cipher_name() or "",
            version=self._ssl.get_protocol_version_name(),
        )

    # --- after the handshake -----------------------------------------------------------------

    def _read_connected(self) -> None:
        """Let OpenSSL process post-handshake records (retransmitted flights, alerts, close)."""
        while self.state is DTLSState.CONNECTED:
            try:
                self._ssl.recv(65536)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._on_peer_close()
            except SSL.Error:
                self.dropped[REJECTED_RECORD] += 1
                break
            else:
                self.dropped[APPLICATION_DATA] += 1
        self._flush()

    def _on_peer_close(self) -> None:
        self._shutdown()  # answer close_notify with close_notify (RFC 5246 §7.2.1)
        self.state = DTLSState.CLOSED
        self._timer = None
        self._events.append(ConnectionClosed(by_peer=True))

    # --- helpers -----------------------------------------------------------------------------

    def _expect(self, state: DTLSState, call: str) -> None:
        if self.state is not state:
            raise InvalidState(
                f"{call}() needs state {state.value}, endpoint is {self.state.value}"
            )

    def _fail(self, error: DTLSError) -> None:
        if self.state is DTLSState.FAILED:
            return
        self.state = DTLSState.FAILED
        self.error = error
        self._timer = None
        self._events.append(HandshakeFailed(error=error))

    def _shutdown(self) -> None:
        try:
            self._ssl.shutdown()
        except SSL.Error:
            pass  # no association to close (handshake never got far enough)
        self._flush()

    def _flush(self) -> None:
        """Move OpenSSL's output into whole-record datagrams of at most ``mtu`` bytes."""
        pending = b""
        while True:
            try:
                chunk = self._ssl.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            pending += chunk
        if pending:
            self._outgoing.extend(pack_datagrams(parse_records(pending), self.mtu))

    def _arm_timer(self, now: float) -> None:
        if self.state not in (DTLSState.HANDSHAKING, DTLSState.CONNECTED):
            self._timer = None
            return
        remaining = self._ssl.DTLSv1_get_timeout()
        self._timer = None if remaining is None else now + remaining


def _openssl_reason(exc: SSL.Error) -> str:
    """The reason strings of an OpenSSL error stack, e.g. 'sslv3 alert bad certificate'."""
    stack = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    reasons = [entry[2] for entry in stack if isinstance(entry, tuple) and len(entry) == 3]
    return "; ".join(reasons) or repr(exc)
