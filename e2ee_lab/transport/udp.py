"""The asyncio edge of the transport: loopback UDP sockets and DTLS-SRTP legs over them.

:func:`open_udp` is the one place in the lab that creates a UDP socket: it binds 127.0.0.1 on an
ephemeral port and refuses any non-loopback address with ``ValueError`` (the lab never leaves the
machine). :class:`LegProtocol` is the thin loop around the sans-I/O
:class:`~e2ee_lab.transport.leg.LegConnection` (aioquic ``asyncio/protocol.py`` style): it feeds
each datagram in with ``loop.time()``, sends what the connection queued, hands events on, and
keeps one timer armed for DTLS retransmission (RFC 6347 §4.2.4). :class:`UDPLeg` is what callers
hold: ``await leg.handshake()`` returns the :class:`HandshakeCompleted` keys, after which
``send_rtp``/``send_rtcp`` protect and send and ``recv()`` (or an ``on_media`` callback) yields
decrypted packets. :func:`listen_leg` (the SFU side, DTLS server), :func:`connect_leg` (a
participant, DTLS client) and :func:`open_leg_pair` set legs up. :func:`add_tap` registers a
callback that sees every datagram an :func:`open_udp` socket sends (the socket-tap capture of
:mod:`e2ee_lab.capture` uses it where live sniffing is not permitted).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections import Counter
from collections.abc import Callable, Sequence

from .certificate import Certificate, Fingerprint
from .dtls import DEFAULT_MTU, DTLSState
from .errors import DTLSError, HandshakeFailure, HandshakeTimeout, InvalidState
from .events import (
    ConnectionClosed,
    HandshakeCompleted,
    HandshakeFailed,
    LegEvent,
    RTCPReceived,
    RTPReceived,
    Role,
)
from .keylog import KeyLogEntry
from .leg import Address, LegConnection
from .srtp import DEFAULT_PROFILES, SRTPProfile, SRTPSessionPair

LOOPBACK = "127.0.0.1"
DEFAULT_HANDSHAKE_TIMEOUT = 5.0  # seconds
MediaEvent = RTPReceived | RTCPReceived
DatagramTap = Callable[[bytes, Address, Address], None]  # (data, src, dst)
_TAPS: list[DatagramTap] = []  # called for every datagram an open_udp socket sends


def add_tap(tap: DatagramTap) -> None:
    """Call ``tap(data, src, dst)`` after every datagram an :func:`open_udp` socket sends.

    Applies to sockets already open and to later ones, until :func:`remove_tap`. Every socket of
    the lab comes from :func:`open_udp`, so the sends alone show each datagram exactly once, as
    the wire does (tapping receives too would report it twice). ``tap`` runs on the event loop
    thread and must be quick; an exception it raises reaches the sender.
    """
    if tap not in _TAPS:
        _TAPS.append(tap)


def remove_tap(tap: DatagramTap) -> None:
    """Stop calling ``tap`` (no error if it was not registered)."""
    if tap in _TAPS:
        _TAPS.remove(tap)


def _tap_sends(transport: asyncio.DatagramTransport) -> None:
    """Wrap this transport's ``sendto`` so registered taps see each datagram after it is sent.

    uvloop's transports are C objects whose ``sendto`` cannot be replaced: they run untapped, which
    is fine for the benchmarks that use uvloop, and an error while a tap is registered (the socket
    tap would silently miss their datagrams).
    """
    sendto = transport.sendto
    sockname = transport.get_extra_info("sockname")
    src = (sockname[0], sockname[1])

    def tapped_sendto(data, addr=None) -> None:
        closing = transport.is_closing()  # asyncio drops datagrams sent after close()
        sendto(data, addr)
        if _TAPS and not closing:
            dst = addr if addr is not None else transport.get_extra_info("peername")
            if dst is not None:
                for tap in tuple(_TAPS):
                    tap(bytes(data), src, (dst[0], dst[1]))

    try:
        transport.sendto = tapped_sendto  # type: ignore[method-assign]
    except AttributeError:
        if _TAPS:
            raise RuntimeError(f"the socket tap cannot wrap {type(transport).__name__}.sendto; "
                               "record with the default asyncio event loop") from None


# Bytes asked for each socket's receive buffer. The default (net.core.rmem_default, 208 KiB here)
# holds about 90 full-size datagrams (the kernel counts ~2.3 KB per 1.2 KB datagram), so a room's
# receiver whose event loop is away for 0.1 s lost packets to the kernel (RcvbufErrors in
# /proc/net/snmp) that it would otherwise have read late. The kernel caps it at net.core.rmem_max.
RECEIVE_BUFFER = 4 * 1024 * 1024


@functools.lru_cache(maxsize=1024)
def check_loopback(addr: Address) -> Address:
    """Return ``addr`` if it is (IPv4 loopback literal, port 0..65535); else raise ValueError."""
    if not isinstance(addr, tuple) or len(addr) != 2:
        raise ValueError(f"an address is (ip, port), got {addr!r}")
    host, port = addr
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP literal; the lab only uses 127.0.0.1") from None
    if ip.version != 4 or not ip.is_loopback:
        raise ValueError(f"{host} is not an IPv4 loopback address; the lab stays on 127.0.0.1")
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port {port!r} is not 0..65535")
    return addr


async def open_udp(
    protocol_factory: Callable[[], asyncio.DatagramProtocol],
    *,
    local_addr: Address = (LOOPBACK, 0),
) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
    """Create a UDP socket bound to loopback (127.0.0.1, port 0 unless given) for the protocol.

    Raises ValueError for a non-loopback ``local_addr``. The caller owns the transport and must
    close it. Its ``sendto`` reports each datagram to the taps of :func:`add_tap`, if any.
    """
    check_loopback(tuple(local_addr))
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        protocol_factory, local_addr=tuple(local_addr), family=socket.AF_INET
    )
    sock = transport.get_extra_info("socket")
    if sock is not None:  # room for a burst while the loop is busy (the kernel caps it at rmem_max)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    _tap_sends(transport)
    return transport, protocol


class LegProtocol(asyncio.DatagramProtocol):
    """Feeds a :class:`LegConnection` from a socket and sends its datagrams; one timer."""

    def __init__(self, connection: LegConnection, on_event: Callable[[LegEvent], None]) -> None:
        self.connection = connection
        self.socket_errors = 0  # ICMP errors (e.g. port unreachable after the peer closed)
        self._on_event = on_event
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()  # the transport's loop (a worker process gives it a new one)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.connection.receive_datagram(data, (addr[0], addr[1]), self._now())
        self.process()

    def error_received(self, exc: Exception) -> None:
        self.socket_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if not self.closed.done():
            self.closed.set_result(None)

    def process(self) -> None:
        """Send queued datagrams, deliver events, re-arm the timer."""
        if self.connection.has_datagrams:  # a media packet queues nothing: skip the sending machinery
            self.transmit()
        while (event := self.connection.next_event()) is not None:
            self._on_event(event)
        self._arm_timer()

    def transmit(self) -> None:
        """Send every datagram the connection queued (to loopback only)."""
        if self._transport is None or self._transport.is_closing():
            return
        for data, addr in self.connection.datagrams_to_send(self._now()):
            self._transport.sendto(data, check_loopback(addr))

    def close(self) -> None:
        """Send close_notify, stop the timer and close the socket."""
        self.connection.close(self._now())
        self.process()
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()

    def _now(self) -> float:
        return self._loop.time()

    def _arm_timer(self) -> None:
        when = self.connection.get_timer()
        if when == self._timer_at:
            return
        self._cancel_timer()
        if when is not None:
            self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)
            self._timer_at = when

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        self.connection.handle_timer(self._now())
        self.process()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, None


class UDPLeg:
    """A DTLS-SRTP leg on a loopback UDP socket; made by :func:`listen_leg` or :func:`connect_leg`.

    ``on_media(leg, event)``, if given, receives each decrypted packet as it arrives; otherwise
    packets queue up for :meth:`recv`.
    """

    def __init__(self, name: str, connection: LegConnection, on_media=None) -> None:
        self.name = name
        self.connection = connection
        self._on_media: Callable[[UDPLeg, MediaEvent], None] | None = on_media
        self._media: asyncio.Queue[MediaEvent | None] = asyncio.Queue()
        self._ended = False
        loop = asyncio.get_running_loop()
        self._handshake: asyncio.Future[HandshakeCompleted] = loop.create_future()
        self._handshake.add_done_callback(_consume_exception)
        self.protocol = LegProtocol(connection, self._handle_event)
        self.transport: asyncio.DatagramTransport | None = None

    def __repr__(self) -> str:
        return f"UDPLeg({self.name!r}, {self.role}, {self.local_addr} <-> {self.remote_addr})"

    @property
    def role(self) -> Role:
        """DTLS role of this side."""
        return self.connection.role

    @property
    def local_addr(self) -> Address:
        """This socket's (ip, port)."""
        sockname = self.transport.get_extra_info("sockname") if self.transport else None
        return (sockname[0], sockname[1]) if sockname else (LOOPBACK, 0)

    @property
    def remote_addr(self) -> Address | None:
        """The peer's (ip, port): given to a client, learned by a server."""
        return self.connection.remote_addr

    @property
    def keys(self) -> HandshakeCompleted | None:
        """The exported keys once the handshake completed."""
        return self.connection.keys

    @property
    def srtp(self) -> SRTPSessionPair | None:
        """The ready (tx, rx) SRTP sessions once the handshake completed."""
        return self.connection.srtp

    @property
    def dropped(self) -> Counter[str]:
        """Drop counters by reason (Counter)."""
        return self.connection.dropped

    async def handshake(self, timeout: float = DEFAULT_HANDSHAKE_TIMEOUT) -> HandshakeCompleted:
        """Wait for the DTLS handshake; return its keys.

        Raises HandshakeTimeout after ``timeout`` seconds, or the DTLSError that ended it
        (FingerprintMismatch, NoSRTPProfile, HandshakeFailure).
        """
        try:
            return await asyncio.wait_for(asyncio.shield(self._handshake), timeout)
        except TimeoutError:
            raise HandshakeTimeout(f"leg {self.name!r}: no handshake within {timeout} s") from None

    def send_rtp(self, packet: bytes | bytearray | memoryview) -> None:
        """Protect an RTP packet and send it to the peer (InvalidState before the handshake).

        Sent at once rather than through the connection's queue: nothing else is queued once the
        leg is up (DTLS output, if any, still leaves through :meth:`LegProtocol.transmit`).
        """
        out = self.connection.protect_rtp(packet)
        transport = self.protocol._transport
        if out is not None and transport is not None and not transport.is_closing():
            transport.sendto(out[0], check_loopback(out[1]))

    def send_rtcp(self, packet: bytes | bytearray | memoryview) -> None:
        """Protect an RTCP compound packet and send it to the peer."""
        self.connection.send_rtcp(packet)
        self.protocol.transmit()

    async def recv(self) -> MediaEvent | None:
        """The next decrypted packet, or None once the leg is closed (without ``on_media``)."""
        return await self._media.get()

    def keylog_entry(self) -> KeyLogEntry:
        """This leg's keys and 5-tuple for the key log (after the handshake)."""
        keys = self.keys
        if keys is None or self.remote_addr is None:
            state = self.connection.state.value
            raise InvalidState(f"leg {self.name!r} has no keys yet (state {state})")
        return KeyLogEntry.from_handshake(
            self.name, keys, local_addr=self.local_addr, remote_addr=self.remote_addr
        )

    def close(self) -> None:
        """Send close_notify and close the socket (idempotent)."""
        self.protocol.close()
        self._end(HandshakeFailure(f"leg {self.name!r} closed before the handshake finished"))

    async def wait_closed(self) -> None:
        """Wait until the socket is really closed."""
        await self.protocol.closed

    async def __aenter__(self) -> UDPLeg:
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.close()
        await self.wait_closed()

    def _handle_event(self, event: LegEvent) -> None:
        if isinstance(event, (RTPReceived, RTCPReceived)):
            if self._on_media is not None:
                self._on_media(self, event)
            else:
                self._media.put_nowait(event)
        elif isinstance(event, HandshakeCompleted):
            if not self._handshake.done():
                self._handshake.set_result(event)
        elif isinstance(event, HandshakeFailed):
            self._end(event.error)
        elif isinstance(event, ConnectionClosed):
            self._end(HandshakeFailure(f"leg {self.name!r} closed before the handshake finished"))

    def _end(self, error: DTLSError) -> None:
        if not self._handshake.done():
            self._handshake.set_exception(error)
        if self.connection.state in (DTLSState.CLOSED, DTLSState.FAILED) and not self._ended:
            self._ended = True
            self._media.put_nowait(None)


def _consume_exception(future: asyncio.Future) -> None:
    """Mark a failed handshake future's exception as seen (nobody may await it)."""
    if not future.cancelled():
        future.exception()


async def _open_leg(name: str, connection: LegConnection, on_media) -> UDPLeg:
    leg = UDPLeg(name, connection, on_media)
    leg.transport, _ = await open_udp(lambda: leg.protocol)
    connection.start(asyncio.get_running_loop().time())
    leg.protocol.process()
    return leg


async def listen_leg(
    *,
    certificate: Certificate,
    remote_fingerprint: Fingerprint | str,
    name: str = "leg",
    remote_addr: Address | None = None,
    profiles: Sequence[SRTPProfile] = DEFAULT_PROFILES,
    on_media: Callable[[UDPLeg, MediaEvent], None] | None = None,
    srtp_window: int = 1024,
    allow_repeat_tx: bool = False,
    mtu: int = DEFAULT_MTU,
) -> UDPLeg:
    """Open the DTLS-server side of a leg (the SFU's); returns at once with ``local_addr`` set.

    The peer's address is ``remote_addr`` if given, else the first DTLS sender. Await
    :meth:`UDPLeg.handshake` for the keys.
    """
    if remote_addr is not None:
        check_loopback(tuple(remote_addr))
    connection = LegConnection(
        role="server", certificate=certificate, remote_fingerprint=remote_fingerprint,
        remote_addr=remote_addr, profiles=profiles, srtp_window=srtp_window,
        allow_repeat_tx=allow_repeat_tx, mtu=mtu,
    )
    return await _open_leg(name, connection, on_media)


async def connect_leg(
    remote_addr: Address,
    *,
    certificate: Certificate,
    remote_fingerprint: Fingerprint | str,
    name: str = "leg",
    profiles: Sequence[SRTPProfile] = DEFAULT_PROFILES,
    on_media: Callable[[UDPLeg, MediaEvent], None] | None = None,
    srtp_window: int = 1024,
    allow_repeat_tx: bool = False,
    mtu: int = DEFAULT_MTU,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> UDPLeg:
    """Open the DTLS-client side of a leg towards ``remote_addr`` and (unless ``timeout`` is
    None) wait for the handshake. On a handshake error the socket is closed and the DTLSError
    raised.
    """
    remote_addr = check_loopback(tuple(remote_addr))
    connection = LegConnection(
        role="client", certificate=certificate, remote_fingerprint=remote_fingerprint,
        remote_addr=remote_addr, profiles=profiles, srtp_window=srtp_window,
        allow_repeat_tx=allow_repeat_tx, mtu=mtu,
    )
    leg = await _open_leg(name, connection, on_media)
    if timeout is not None:
        try:
            await leg.handshake(timeout)
        except DTLSError:
            leg.close()
            await leg.wait_closed()
            raise
    return leg


async def open_leg_pair(
    name: str = "leg",
    *,
    client_certificate: Certificate | None = None,
    server_certificate: Certificate | None = None,
    client_profiles: Sequence[SRTPProfile] = DEFAULT_PROFILES,
    server_profiles: Sequence[SRTPProfile] = DEFAULT_PROFILES,
    timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> tuple[UDPLeg, UDPLeg]:
    """A participant (client) and SFU (server) leg over loopback, handshake done: (client, server).

    Fresh certificates are generated unless given; each side checks the other's fingerprint.
    """
    client_cert = client_certificate or Certificate.generate()
    server_cert = server_certificate or Certificate.generate()
    server = await listen_leg(
        certificate=server_cert, remote_fingerprint=client_cert.fingerprint(), name=name,
        profiles=server_profiles,
    )
    try:
        client = await connect_leg(
            server.local_addr, certificate=client_cert,
            remote_fingerprint=server_cert.fingerprint(),
            name=name, profiles=client_profiles, timeout=timeout,
        )
        await server.handshake(timeout)
    except DTLSError:
        server.close()
        await server.wait_closed()
        raise
    return client, server
