"""One participant<->SFU leg, sans-I/O: DTLS-SRTP on a single 5-tuple (RFC 5764 §5.1, RFC 7983).

:class:`LegConnection` is what a browser's or an SFU's transport does for one leg, minus the
sockets: it demultiplexes each datagram by its first byte (:mod:`~e2ee_lab.transport.demux`),
hands DTLS records to its :class:`~e2ee_lab.transport.dtls.DTLSEndpoint`, and once the handshake
has exported the keys it unprotects SRTP/SRTCP with the peer's write key and protects outgoing
RTP/RTCP with its own (RFC 5764 §4.2). It keeps the peer's address (given, or latched from the
first datagram the way a server without ICE learns it) and drops datagrams from anywhere else.
Every drop lands in ``dropped[reason]`` in one place, :meth:`LegConnection.receive_datagram`;
nothing that arrives from the network raises. Like aioquic, datagrams go out as
``(data, addr)`` pairs from :meth:`LegConnection.datagrams_to_send`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence

from .certificate import Certificate, Fingerprint
from .demux import PacketKind, classify
from .dtls import DEFAULT_MTU, DTLSEndpoint, DTLSState
from .errors import InvalidState, SRTPError
from .events import HandshakeCompleted, LegEvent, RTCPReceived, RTPReceived, Role
from .srtp import DEFAULT_PROFILES, SRTPProfile, SRTPSessionPair, session_pair

Address = tuple[str, int]

UNEXPECTED_SOURCE = "unexpected_source"  # a datagram from an address that is not the peer
SRTP_BEFORE_KEYS = "srtp_before_keys"  # SRTP arrived before the handshake exported keys
NO_PEER_ADDRESS = "no_peer_address"  # an outgoing DTLS datagram before the peer was heard
_RECEIVED = {kind: f"{kind.value}_received" for kind in PacketKind}  # counter names, built once


class LegConnection:
    """DTLS handshake, demultiplexing and SRTP for one leg; no sockets, no clock.

    Args:
        role: DTLS role of this side (the SFU is usually the server, participants the clients).
        certificate: this side's certificate.
        remote_fingerprint: the peer's fingerprint from signalling.
        remote_addr: the peer's (ip, port); required for a client, latched from the first
            DTLS datagram when a server is given None.
        profiles: use_srtp profiles in preference order.
        srtp_window: replay window of the inbound SRTP session.
        allow_repeat_tx: let the outbound session protect an RTP index twice (retransmissions).
        mtu: largest DTLS datagram.
    """

    def __init__(
        self,
        *,
        role: Role,
        certificate: Certificate,
        remote_fingerprint: Fingerprint | str,
        remote_addr: Address | None = None,
        profiles: Sequence[SRTPProfile] = DEFAULT_PROFILES,
        srtp_window: int = 1024,
        allow_repeat_tx: bool = False,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        if role == "client" and remote_addr is None:
            raise ValueError("a client leg needs the server's remote_addr")
        self.dtls = DTLSEndpoint(
            role=role,
            certificate=certificate,
            remote_fingerprint=remote_fingerprint,
            profiles=profiles,
            mtu=mtu,
        )
        self.remote_addr = remote_addr
        self.srtp: SRTPSessionPair | None = None
        self.dropped: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self._srtp_window = srtp_window
        self._allow_repeat_tx = allow_repeat_tx
        self._events: deque[LegEvent] = deque()
        self._outgoing: list[tuple[bytes, Address]] = []

    @property
    def role(self) -> Role:
        """This side's DTLS role."""
        return self.dtls.role

    @property
    def state(self) -> DTLSState:
        """The DTLS state (CONNECTED means SRTP keys are in place)."""
        return self.dtls.state

    @property
    def keys(self) -> HandshakeCompleted | None:
        """The handshake result with both SRTP master keys, once CONNECTED."""
        return self.dtls.keys

    def start(self, now: float) -> None:
        """Start the DTLS handshake (a client queues its ClientHello)."""
        self.dtls.start(now)
        self._pump_dtls(now)

    def receive_datagram(
        self, data: bytes | bytearray | memoryview, addr: Address, now: float
    ) -> None:
        """Process one datagram from ``addr``; never raises for network input.

        DTLS goes to the handshake; SRTP/SRTCP is unprotected into :class:`RTPReceived` /
        :class:`RTCPReceived` events; everything else is counted in ``dropped``.
        """
        data = bytes(data)
        kind = classify(data)
        if self.remote_addr is None and kind is PacketKind.DTLS:
            self.remote_addr = (addr[0], addr[1])  # a server latches onto the first DTLS sender
        if self.remote_addr is not None and tuple(addr) != self.remote_addr:
            self.dropped[UNEXPECTED_SOURCE] += 1
            return
        self.counts[_RECEIVED[kind]] += 1
        if kind is PacketKind.RTP or kind is PacketKind.RTCP:
            self._receive_srtp(data, kind, now)  # the DTLS endpoint is not touched: nothing to pump
            return
        if kind is PacketKind.DTLS:
            self.dtls.receive_datagram(data, now)
        else:
            self.dropped[f"unexpected_{kind.value}"] += 1
        self._pump_dtls(now)

    def send_rtp(self, packet: bytes | bytearray | memoryview) -> None:
        """Protect an RTP packet with this side's write key and queue it for the peer.

        Raises InvalidState before the handshake completes, SRTPError if libsrtp refuses it.
        """
        self._queue(self._sessions("send_rtp").tx.protect(packet), "rtp")

    def protect_rtp(self, packet: bytes | bytearray | memoryview) -> tuple[bytes, Address] | None:
        """Protect an RTP packet for the peer and hand it back instead of queueing it: the
        forwarding fast path (an SFU sends several per packet it receives). Counted like
        :meth:`send_rtp`; None (counted as a drop) while the peer's address is unknown.
        """
        data = self._sessions("send_rtp").tx.protect(packet)
        if self.remote_addr is None:
            self.dropped[NO_PEER_ADDRESS] += 1
            return None
        self.counts["rtp_sent"] += 1
        return data, self.remote_addr

    def send_rtcp(self, packet: bytes | bytearray | memoryview) -> None:
        """Protect an RTCP compound packet and queue it for the peer."""
        self._queue(self._sessions("send_rtcp").tx.protect_rtcp(packet), "rtcp")

    @property
    def has_datagrams(self) -> bool:
        """Whether datagrams wait to be sent (every call that feeds the DTLS endpoint queues its
        output at once, so this is exact between calls)."""
        return bool(self._outgoing)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every queued ``(datagram, addr)``; empties the queue."""
        self._pump_dtls(now)
        datagrams, self._outgoing = self._outgoing, []
        return datagrams

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` is due (DTLS retransmission), or None."""
        return self.dtls.get_timer()

    def handle_timer(self, now: float) -> None:
        """Let the DTLS endpoint retransmit if its timer expired."""
        self.dtls.handle_timer(now)
        self._pump_dtls(now)

    def next_event(self) -> LegEvent | None:
        """The oldest undelivered event, or None."""
        return self._events.popleft() if self._events else None

    def close(self, now: float) -> None:
        """Send close_notify and stop; SRTP sessions stay readable for inspection."""
        self.dtls.close(now)
        self._pump_dtls(now)

    # --- internals ---------------------------------------------------------------------------

    def _receive_srtp(self, data: bytes, kind: PacketKind, now: float) -> None:
        if self.srtp is None:
            self.dropped[SRTP_BEFORE_KEYS] += 1
            return
        try:
            if kind is PacketKind.RTCP:
                event: LegEvent = RTCPReceived(self.srtp.rx.unprotect_rtcp(data), now, len(data))
            else:
                event = RTPReceived(self.srtp.rx.unprotect(data), now, len(data))
        except SRTPError as exc:
            self.dropped[exc.reason] += 1
            return
        self._events.append(event)

    def _pump_dtls(self, now: float) -> None:
        """Move DTLS datagrams to the send queue and DTLS events to ours (keys -> SRTP)."""
        for datagram in self.dtls.datagrams_to_send(now):
            self._queue(datagram, "dtls")
        for reason, count in self.dtls.dropped.items():
            self.dropped[reason] += count
        self.dtls.dropped.clear()
        while (event := self.dtls.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self.srtp = session_pair(
                    event.profile,
                    local_key=event.local_key,
                    remote_key=event.remote_key,
                    window_size=self._srtp_window,
                    allow_repeat_tx=self._allow_repeat_tx,
                )
            self._events.append(event)

    def _sessions(self, call: str) -> SRTPSessionPair:
        if self.srtp is None or self.state is not DTLSState.CONNECTED:
            raise InvalidState(f"{call}() needs a connected leg, state is {self.state.value}")
        return self.srtp

    def _queue(self, datagram: bytes, kind: str) -> None:
        if self.remote_addr is None:  # only a server that never heard its peer gets here
            self.dropped[NO_PEER_ADDRESS] += 1
            return
        self.counts[f"{kind}_sent"] += 1
        self._outgoing.append((datagram, self.remote_addr))
