"""The SFU's asyncio edge: one DTLS-SRTP leg per participant around the sans-I/O :class:`SFUCore`.

A thin loop in the style of aioquic's ``asyncio/protocol.py``. For every participant the SFU opens a
loopback leg with :func:`~e2ee_lab.transport.udp.listen_leg` (it is the DTLS server and peer of every
leg, RFC 5764 §4.1, so it holds every leg's SRTP keys); each decrypted packet goes into the core with
``loop.time()``, and every ``(leg, bytes)`` the core returns is SRTP-protected with that leg's key and
sent. One timer is armed for the core's policy. Protocol decisions (routing, SSRC rewriting, PLI
forwarding, drop counting) all live in the core.

Signalling (:class:`SignallingRelay`) is what the SFU operator's server does besides media, in
process: offer/answer carry each side's certificate fingerprint as SDP does (``a=fingerprint``,
RFC 8122 §5) and the participant's SSRCs (``a=ssrc``, RFC 5576), which the core then accepts as the
only streams of that leg; it announces which SFU-chosen SSRC carries whose stream (as SDP ``msid``
would); it orders joins and leaves into epochs (:class:`~e2ee_lab.crypto.keys.Roster`) and relays the
members' key-distribution messages as opaque bytes, logging every one (``relayed``): the SFU carries
them but holds no key that opens them. The key log of every leg (:meth:`SFUServer.keylog`) is what
the SFU could hand to anyone who wants to decrypt a capture (RFC 5764 keys, hex, see
:mod:`e2ee_lab.transport.keylog`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from e2ee_lab.crypto.keys import KeyDirectory, PublicIdentity, RekeyPolicy, Roster, RosterUpdate, UnknownMember
from e2ee_lab.sfu.core import SFUCore
from e2ee_lab.sfu.events import OutgoingStreamCreated
from e2ee_lab.transport import (
    DEFAULT_PROFILES,
    Certificate,
    Fingerprint,
    KeyLogEntry,
    RTCPReceived,
    RTPReceived,
    SRTPProfile,
    TransportError,
    UDPLeg,
    listen_leg,
    write_keylog,
)

Address = tuple[str, int]


# --- signalling messages -------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """What a participant's offer tells the SFU: who, its DTLS fingerprint, its SSRCs."""

    name: str  # participant (and leg) name
    fingerprint: str  # SDP a=fingerprint value, "sha-256 AB:CD:..."
    ssrcs: Mapping[str, int]  # kind -> SSRC the participant will send (a=ssrc)
    rtp_sframe: str | None = None  # a=sframe with the SFrame payload format's mode, None: codec's


@dataclass(frozen=True)
class Answer:
    """The SFU's answer: where its leg for this participant listens and its fingerprint."""

    address: Address  # the SFU leg's (ip, port), the only ICE candidate
    fingerprint: str  # SDP a=fingerprint value of the SFU's certificate
    sframe: bool = True  # SDP a=sframe kept (RTP-SFrame draft): frames are end-to-end encrypted
    rtp_sframe: str | None = None  # the payload format's mode accepted for the leg, None: codec's


@dataclass(frozen=True)
class StreamAnnounced:
    """Signalling to a subscriber: ``ssrc`` on your leg carries ``publisher``'s ``kind`` stream."""

    ssrc: int  # SFU-chosen SSRC on the subscriber's leg
    publisher: str  # the publishing participant
    member: int | None  # its key-agreement member index (None before it joined the roster)
    kind: str  # "audio" or "video"
    rtp_sframe: str | None = None  # the publisher's SFrame payload format mode, None: codec's


@dataclass(frozen=True)
class KeyMessageRelayed:
    """A key-distribution message the relay carried: opaque bytes from one member to another."""

    time: float  # when the relay took it (the ``now`` the sender gave, seconds since the call began)
    sender: int  # member index of the author (as the sender claimed)
    recipient: int  # member index it is addressed to
    data: bytes  # the message, AES-GCM sealed to the recipient (the relay cannot open it)


Handler = Callable[[object], None]


class SignallingRelay:
    """The signalling server: roster (epochs), stream announcements, key-message relay.

    Participants register a handler that receives :class:`RosterUpdate`, :class:`StreamAnnounced`
    and key-message ``bytes``. Roster updates and key messages are delivered on the next loop
    iteration (``call_soon``), as a message over a network would be; stream announcements at once,
    so they reach the subscriber before the first packet of the stream.
    """

    def __init__(self, policy: RekeyPolicy = RekeyPolicy()) -> None:
        self.directory = KeyDirectory()
        self.roster = Roster(self.directory, policy)
        self.relayed: list[KeyMessageRelayed] = []
        self.dropped: Counter[str] = Counter()
        self.interceptor: Callable[[int, bytes], bytes] | None = None  # (recipient, bytes) -> bytes delivered
        # (recipient, update) -> update delivered: a malicious server's rewrite of roster updates
        self.roster_interceptor: Callable[[int, RosterUpdate], RosterUpdate] | None = None
        self.members: dict[str, int] = {}  # participant name -> member index
        self._handlers: dict[str, Handler] = {}
        self._by_member: dict[int, str] = {}

    def register(self, name: str, handler: Handler) -> None:
        """Let ``name`` receive signalling messages through ``handler``."""
        self._handlers[name] = handler

    def join(self, name: str, public: PublicIdentity, session: bytes, now: float) -> int:
        """Admit ``name`` (its user id) with its identity key and call session to the key agreement;
        returns its member index. Updates follow soon."""
        index, updates = self.roster.join(name, public, session, now)
        self.members[name], self._by_member[index] = index, name
        self._post_updates(updates)
        return index

    def relay(self, sender: int, recipient: int, data: bytes, now: float) -> None:
        """Carry one key message to ``recipient``; counted as dropped if nobody has that index."""
        self.relayed.append(KeyMessageRelayed(now, sender, recipient, bytes(data)))
        if self.interceptor is not None:  # a malicious relay (e2ee_lab.attacks): rewrites what it carries
            data = self.interceptor(recipient, bytes(data))
        name = self._by_member.get(recipient)
        if name is None or name not in self._handlers:
            self.dropped["no_such_member"] += 1
            return
        asyncio.get_running_loop().call_soon(self._handlers[name], bytes(data))

    def leave(self, name: str, now: float) -> None:
        """``name`` leaves the key agreement: the remaining members rekey and the leaver gets its own
        LEAVE update (all delivered soon); it is no longer a member. UnknownMember if it was not one."""
        if name not in self.members:
            raise UnknownMember(f"{name!r} is not a member of the key agreement")
        index = self.members[name]
        self._post_updates(self.roster.leave(index, now))
        del self.members[name], self._by_member[index]

    def poll(self, now: float) -> None:
        """Start a periodic REKEY epoch if the roster's policy says one is due (updates follow soon)."""
        self._post_updates(self.roster.poll(now))

    def announce(self, subscriber: str, message: StreamAnnounced) -> None:
        """Tell ``subscriber`` which stream an SSRC on its leg carries (delivered at once)."""
        handler = self._handlers.get(subscriber)
        if handler is not None:
            handler(message)

    def _post_updates(self, updates: Mapping[int, RosterUpdate]) -> None:
        loop = asyncio.get_running_loop()
        for index in sorted(updates):
            update = updates[index]
            if self.roster_interceptor is not None:  # a malicious server (e2ee_lab.attacks)
                update = self.roster_interceptor(index, update)
            loop.call_soon(self._handlers[self._by_member[index]], update)


# --- the server ----------------------------------------------------------------------------------


class SFUServer:
    """The SFU of one call: legs, the core, signalling and the key log.

    Args:
        core: the sans-I/O SFU (default: an honest :class:`SFUCore` that only forwards declared
            SSRCs, so packets of unknown SSRCs are counted and dropped).
        profiles: SRTP protection profiles the SFU accepts, in preference order.
        key_policy: rekey policy of the signalling roster.
    """

    def __init__(self, *, core: SFUCore | None = None, profiles: Sequence[SRTPProfile] = DEFAULT_PROFILES,
                 key_policy: RekeyPolicy = RekeyPolicy()) -> None:
        self.core = core if core is not None else SFUCore(learn_ssrcs=False, packet_events=False)
        self.profiles = tuple(profiles)
        self.certificate = Certificate.generate("sfu")
        self.signalling = SignallingRelay(key_policy)
        self.legs: dict[str, UDPLeg] = {}
        self.packetization: dict[str, str | None] = {}  # leg -> SFrame payload format mode (a=sframe)
        self.dropped: Counter[str] = Counter()  # the edge's own drops (sends that failed)
        self.events: list[object] = []  # core events other than stream creation, in order
        self.answer_hook: Callable[[Offer, Answer], Answer] | None = None  # rewrites answers (attacks)
        self._ready: dict[str, asyncio.Task] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def fingerprint(self) -> Fingerprint:
        """The SFU certificate's fingerprint (what its answers carry)."""
        return self.certificate.fingerprint()

    async def accept(self, offer: Offer) -> Answer:
        """Open a leg for a participant's offer; the leg joins the core once its handshake is done.

        Raises:
            ValueError: the name is taken or the fingerprint is malformed (MalformedFingerprint).
        """
        if offer.name in self.legs:
            raise ValueError(f"a participant named {offer.name!r} is already in the call")
        leg = await listen_leg(certificate=self.certificate, name=offer.name,
                               remote_fingerprint=Fingerprint.parse(offer.fingerprint),
                               profiles=self.profiles, on_media=self._on_media)
        self.legs[offer.name] = leg
        self._ready[offer.name] = asyncio.ensure_future(self._admit(leg, dict(offer.ssrcs)))
        self.packetization[offer.name] = offer.rtp_sframe  # forwarded opaque: any mode is fine
        answer = Answer(leg.local_addr, str(self.fingerprint), rtp_sframe=offer.rtp_sframe)
        return answer if self.answer_hook is None else self.answer_hook(offer, answer)

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until every accepted leg finished its handshake and joined the core."""
        if self._ready:
            await asyncio.wait_for(asyncio.gather(*self._ready.values()), timeout)

    async def _admit(self, leg: UDPLeg, ssrcs: dict[str, int]) -> None:
        await leg.handshake()
        now = self._now()
        out = self.core.add_leg(leg.name, now)
        for kind, ssrc in ssrcs.items():
            self.core.add_stream(leg.name, ssrc, kind, now)  # type: ignore[arg-type]
        self._send(out, rtcp=True)

    # --- media -----------------------------------------------------------------------------------

    def _on_media(self, leg: UDPLeg, event: RTPReceived | RTCPReceived) -> None:
        """The hot path: one decrypted packet into the core, its deliveries out (no event per packet)."""
        now = self._now()
        if type(event) is RTPReceived:
            self._send(self.core.receive_rtp(leg.name, event.data, now), rtcp=False)
        else:
            self._send(self.core.receive_rtcp(leg.name, event.data, now), rtcp=True)
        if self._timer is not None or self.core.get_timer() is not None:
            self._arm_timer()

    def _send(self, datagrams: list[tuple[object, bytes]], *, rtcp: bool) -> None:
        if self.core.pending_events:  # announcements first: a subscriber learns a stream before its packets
            self._drain_events()
        legs = self.legs
        for dest, data in datagrams:
            leg = legs.get(dest)  # type: ignore[arg-type]
            try:
                if leg is None:
                    raise KeyError(dest)
                if rtcp:
                    leg.send_rtcp(data)
                else:
                    leg.send_rtp(data)
            except (KeyError, TransportError):
                self.dropped["send_failed"] += 1

    def announce_streams(self) -> None:
        """Announce every publisher stream to every other leg now, before its first packet
        (:meth:`SFUCore.open_streams`); announcements are delivered at once."""
        self.core.open_streams(self._now())
        self._drain_events()

    def request_key_frames(self) -> None:
        """Ask every video publisher for a key frame now (the SFU's own RTCP PLI, RFC 4585 §6.3.1, as
        when a subscriber joins; throttled per stream like any PLI)."""
        now = self._now()
        for info in self.core.streams():
            if info.kind == "video":
                self._send(self.core.request_key_frame(info.leg, info.ssrc, now), rtcp=True)

    def _drain_events(self) -> None:
        while (event := self.core.next_event()) is not None:
            if isinstance(event, OutgoingStreamCreated):
                member = self.signalling.members.get(event.source_leg)  # type: ignore[arg-type]
                message = StreamAnnounced(event.ssrc, event.source_leg, member, event.kind,  # type: ignore[arg-type]
                                          self.packetization.get(event.source_leg))  # type: ignore[arg-type]
                self.signalling.announce(event.dest_leg, message)  # type: ignore[arg-type]
            else:
                self.events.append(event)

    def _arm_timer(self) -> None:
        when = self.core.get_timer()
        if self._timer is not None and (when is None or self._timer.when() != when):
            self._timer.cancel()
            self._timer = None
        if when is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._send(self.core.handle_timer(self._now()), rtcp=False)
        self._arm_timer()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # --- results ---------------------------------------------------------------------------------

    def keylog(self) -> list[KeyLogEntry]:
        """Every leg's SRTP keys and 5-tuple, as the SFU holds them (legs that completed a handshake)."""
        return [leg.keylog_entry() for leg in self.legs.values() if leg.keys is not None]

    def write_keylog(self, path) -> None:
        """Write :meth:`keylog` to ``path`` (JSON, owner-readable only)."""
        write_keylog(path, self.keylog())

    def transport_dropped(self) -> Counter[str]:
        """Datagrams the legs dropped before the core saw them (wrong source, SRTP failures, ...)."""
        total: Counter[str] = Counter()
        for leg in self.legs.values():
            total.update(leg.dropped)
        return total

    def all_dropped(self) -> Counter[str]:
        """Every drop at the SFU, by reason: transport, core (datagrams and deliveries), edge."""
        total = self.transport_dropped()
        total.update(self.core.dropped)
        total.update(self.core.dropped_deliveries)
        total.update(self.dropped)
        total.update({f"relay_{k}": v for k, v in self.signalling.dropped.items()})
        return total

    async def close(self) -> None:
        """Close every leg (close_notify) and wait until the sockets are closed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._ready.values():
            task.cancel()
        await asyncio.gather(*self._ready.values(), return_exceptions=True)
        for leg in self.legs.values():
            leg.close()
        await asyncio.gather(*(leg.wait_closed() for leg in self.legs.values()))
