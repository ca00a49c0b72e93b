"""A malicious SFU: forwarding policies that tamper, replay, drop, delay, reorder and inject.

E2EE takes the media away from the SFU; it does not make the SFU harmless. Every attack here is a
:class:`~e2ee_lab.sfu.policy.Policy` the SFU core runs on one (publisher → subscriber) pair; the two
attacks on signalling (answer rewriting, key substitution) are in :mod:`e2ee_lab.attacks.signalling`,
and :mod:`e2ee_lab.attacks.runner` runs them all in calls. Where each attacked byte lies in an RTP
payload (SFrame header, ciphertext, tag; RFC 9605 §4.2-4.3 in RFC 7741 VP8 packets), and the
sans-I/O tamper and forgery functions the policies call, are :mod:`e2ee_lab.attacks.tamper`.

- :class:`Tamper`: one bit flipped per frame in the header, the ciphertext or the tag.
- :class:`Replay`: frames re-sent later, in fresh sequence slots so SRTP's replay check
  (RFC 3711 §3.3.2, hop by hop) passes; optionally in their old slots (SRTP refuses them), and
  optionally across a rekey the SFU's signalling triggers.
- :class:`Drop`, :class:`Delay`, :class:`Reorder`: what no frame-level crypto prevents.
- :class:`Inject`: forged frames: a plausible SFrame header (a known KID, a future CTR) and random
  ciphertext, an unencrypted VP8 frame the SFU encoded itself (downgrade), or a real SFrame frame
  sealed under a key the attacker obtained (an ex-member's old key, a key of an earlier call).
- :class:`StreamSwap`: one member's frames on another member's stream (misattribution).

Any policy can also change the key agreement mid-call at a media time (:meth:`AttackPolicy.call_at`:
a rekey the signalling starts, a member that leaves).

Policies log what they did in
``log`` (:class:`AttackAction`); :class:`PairRouter` runs several at once, each on its own pairs.
Like every policy they only make decisions: the core applies them, the edge re-applies SRTP.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aiortc.rtp import RtpPacket

from e2ee_lab.attacks.tamper import REGIONS, forged_vp8_frame, sframe_forgery, tamper_payload
from e2ee_lab.crypto.sframe import MalformedHeader, decode_header
from e2ee_lab.rtp import RTPError, VP8PayloadDescriptor
from e2ee_lab.rtp.vp8 import PICTURE_ID_MOD, vp8_payloads
from e2ee_lab.sfu.events import LegId
from e2ee_lab.sfu.policy import Decision, Forward, InboundRTP, Policy
from e2ee_lab.sfu.policy import Drop as DropDecision

FORGED_PAYLOAD = 1100  #: bytes of frame data per forged RTP packet
FUTURE_CTR_STEP = 1000  #: how far ahead of the stream's last CTR a forged frame's CTR is
CLOCK_RATES = {"video": 90_000, "audio": 48_000}  #: RTP clock rates (RFC 7741 §4.1, RFC 7587 §4.1)
TS_MOD = 1 << 32  #: RTP timestamps wrap at 2^32 (RFC 3550 §5.1)


# --- the policies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackAction:
    """One thing an attack did to one frame of one pair (a row of a policy's ``log``)."""

    time: float  # SFU clock when it happened
    attack: str  # the policy's name
    action: str  # "tamper", "replay", "drop", "delay", "reorder", "inject", "rekey"
    publisher: LegId  # whose stream
    subscriber: LegId  # who got (or missed) it
    timestamp: int  # RTP timestamp of the frame (forged frames: the forged one)
    detail: str = ""  # e.g. "tag byte 1041 bit 3"


class AttackPolicy(Policy):
    """A policy that attacks the ``kind`` stream of ``publisher`` towards ``subscriber`` only.

    Every other delivery is forwarded honestly. Time windows are in seconds of media time: the
    frame's RTP timestamp minus that of the first frame of the stream the policy saw, on the
    stream's clock (90 kHz video, 48 kHz Opus: RFC 7741 §4.1, RFC 7587 §4.1). The capture clock
    picks the same frames on every run, however late the packets arrive.

    Args:
        publisher, subscriber: the pair (leg ids, i.e. participant names).
        kind: the attacked stream, "video" (default) or "audio".
        start, stop: the attack window.
        seed: seeds the policy's random choices (bits, forged bytes).
    """

    name = "attack"

    def __init__(self, publisher: LegId, subscriber: LegId, *, kind: str = "video", start: float = 0.3,
                 stop: float = 1.0, seed: int = 0) -> None:
        self.publisher, self.subscriber, self.kind = publisher, subscriber, kind
        self.start, self.stop = start, stop
        self.rng = random.Random(f"{self.name}:{seed}:{publisher}:{subscriber}")
        self.log: list[AttackAction] = []
        self._ts0: int | None = None  # RTP timestamp of the first frame seen
        self._timestamp: int | None = None  # RTP timestamp of the current frame
        self._calls: list[tuple[float, Callable[[float], None]]] = []  # (media time, callback)

    def claims(self, publisher: LegId, subscriber: LegId) -> bool:
        """True for the attacked pair."""
        return publisher == self.publisher and subscriber == self.subscriber

    @property
    def elapsed(self) -> float:
        """Media seconds from the stream's first frame to the current frame (RTP timestamps)."""
        if self._ts0 is None or self._timestamp is None:
            return 0.0
        return ((self._timestamp - self._ts0) % TS_MOD) / CLOCK_RATES[self.kind]

    def call_at(self, seconds: float, callback: Callable[[float], None]) -> None:
        """Call ``callback(now)`` once, at the pair's first frame from ``seconds`` of media time on:
        how an attack changes the key agreement mid-call (a rekey, a member leaving)."""
        self._calls = sorted([*self._calls, (seconds, callback)], key=lambda c: c[0])

    def in_window(self) -> bool:
        """The current frame is in ``[start, stop)``."""
        return self.start <= self.elapsed < self.stop

    def on_rtp(self, inbound: InboundRTP, dests: Sequence[LegId]) -> list[Decision]:
        """Honest forwarding, except for the attacked pair's packets (:meth:`handle`)."""
        mine = [d for d in dests if self.claims(inbound.leg, d)] if inbound.kind == self.kind else []
        out: list[Decision] = [Forward(d, inbound) for d in dests if d not in mine]
        if mine:
            new_frame = self._track(inbound)
            while new_frame and self._calls and self.elapsed >= self._calls[0][0]:
                self._calls.pop(0)[1](inbound.time)
            for dest in mine:
                out += self.handle(inbound, dest, new_frame)
        return out

    def handle(self, inbound: InboundRTP, dest: LegId, new_frame: bool) -> list[Decision]:
        """The decisions for one packet of the attacked pair (honest here)."""
        return [Forward(dest, inbound)]

    def record(self, inbound: InboundRTP, dest: LegId, action: str, detail: str = "",
               timestamp: int | None = None) -> None:
        """Add an :class:`AttackAction` to ``log``."""
        ts = inbound.packet.timestamp if timestamp is None else timestamp
        self.log.append(AttackAction(inbound.time, self.name, action, inbound.leg, dest, ts, detail))

    def _track(self, inbound: InboundRTP) -> bool:
        timestamp = inbound.packet.timestamp
        if self._ts0 is None:
            self._ts0 = timestamp
        if timestamp == self._timestamp:
            return False
        self._timestamp = timestamp
        return True


class Honest(AttackPolicy):
    """Forwards the pair honestly (the baseline row of the attack matrix)."""

    name = "none"


class Tamper(AttackPolicy):
    """Flips one random bit of ``region`` ("header", "ciphertext" or "tag") in every frame in the window.

    ``sframe``: the header is an SFrame header (e2ee) rather than the VP8 frame tag (dtls-srtp).
    """

    name = "tamper"

    def __init__(self, publisher: LegId, subscriber: LegId, *, region: str, sframe: bool = True,
                 **window) -> None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; expected one of {', '.join(REGIONS)}")
        self.name = f"tamper-{'payload' if region == 'ciphertext' else region}"
        super().__init__(publisher, subscriber, **window)
        self.region, self.sframe = region, sframe

    def handle(self, inbound: InboundRTP, dest: LegId, new_frame: bool) -> list[Decision]:
        """The packet with one bit flipped when it holds the region of a frame in the window."""
        changed = None
        if self.in_window():
            changed = tamper_payload(inbound.packet.payload, self.region, self.rng,
                                     marker=bool(inbound.packet.marker), sframe=self.sframe)
        if changed is None:
            return [Forward(dest, inbound)]
        self.record(inbound, dest, "tamper", changed[1])
        return [Forward(dest, inbound, packet=inbound.copy_packet(payload=changed[0]))]


class Replay(AttackPolicy):
    """Keeps the packets of frames in ``capture`` and re-sends them all at ``at`` s.

    Args:
        capture: window of frames to keep, seconds.
        at: when the burst goes out (before the first packet of the frame starting then).
        fresh_seq: True: each replayed packet takes a new sequence slot (SRTP accepts it); False:
            its old slot (SRTP's replay protection refuses it).
        rekey_at: when to ask the SFU's signalling for a rekey (``on_rekey(now)``), or None.
    """

    name = "replay"

    def __init__(self, publisher: LegId, subscriber: LegId, *, capture: tuple[float, float] = (0.1, 0.4),
                 at: float = 0.8, fresh_seq: bool = True, rekey_at: float | None = None, **kw) -> None:
        super().__init__(publisher, subscriber, start=capture[0], stop=capture[1], **kw)
        self.at, self.fresh_seq, self.rekey_at = at, fresh_seq, rekey_at
        self.on_rekey: Callable[[float], None] | None = None  # installed with the signalling
        self.rekeyed_at: float | None = None
        self.kept: list[InboundRTP] = []
        self._sent = False

    def handle(self, inbound: InboundRTP, dest: LegId, new_frame: bool) -> list[Decision]:
        """Keep, forward, and at ``at`` put the whole kept burst before this frame."""
        if new_frame and self.rekey_at is not None and self.rekeyed_at is None and self.elapsed >= self.rekey_at:
            self.rekeyed_at = inbound.time
            self.record(inbound, dest, "rekey")
            if self.on_rekey is not None:
                self.on_rekey(inbound.time)
        out: list[Decision] = []
        if new_frame and not self._sent and self.elapsed >= self.at:
            self._sent = True
            for ts in dict.fromkeys(p.packet.timestamp for p in self.kept):
                self.record(inbound, dest, "replay", "fresh slots" if self.fresh_seq else "old slots", ts)
            out = [Forward(dest, old, fresh_seq=self.fresh_seq) for old in self.kept]
        if self.in_window():
            self.kept.append(inbound)
        return out + [Forward(dest, inbound)]


class Drop(AttackPolicy):
    """Drops every frame in the window; the core closes the sequence gap, so nothing shows a loss.

    (:class:`~e2ee_lab.sfu.policy.Drop` is the core's decision, imported here as ``DropDecision``.)
    """

    name = "drop"

    def handle(self, inbound: InboundRTP, dest: LegId, new_frame: bool) -> list[Decision]:
        """A ``DropDecision`` for the packets of frames in the window."""
        if not self.in_window():
            return [Forward(dest, inbound)]
        if new_frame:
            self.record(inbound, dest, "drop")
        return [DropDecision(dest, inbound, reason="attack_drop")]


class Delay(AttackPolicy):
    """Holds every packet from ``start`` on for ``delay`` seconds (own sequence slots, order kept)."""

    name = "delay"

    def __init__(self, publisher: LegId, subscriber: LegId, *, delay: float = 0.3, start: float = 0.3,
                 **kw) -> None:
        super().__init__(publisher, subscriber, start=start, stop=float("inf"), **kw)
        self.delay = delay
        self._held: list[tuple[float, Forward]] = []

    def handle(self, inbound: InboundRTP, dest: LegId, new_frame: bool) -> list[Decision]:
        """Nothing now for packets of frames from ``start`` on: they come out of :meth:`on_timer`."""
        if not self.in_window():
            return [Forward(dest, inbound)]
        if new_frame:
            self.record(inbound, dest, "delay", f"{self.delay:g} s")
        self._held.append((inbound.time + self.delay, Forward(dest, inbound)))
        return []

    def on_timer(self, now: float) -> list[Decision]:
        """The held packets that are due, in arrival order."""
        due = 0
        while due < len(self._held) and self._held[due][0] <= now:
            due += 1
        out, self._held = [f for _, f in self._held[:due]], self._held[due:]
        return out

    def next_timer(self) -> float | None:
        """When the oldest held packet is due."""
        return self._held[0][0] if self._held else None


class Reorder(AttackPolicy):
    """Swaps frames in pairs inside the window: holds one, sends the next, then the held one.

    The held frame's slots are dropped (the core closes the gap) and it goes out in fresh slots
    after its successor, so the receiver's jitter buffer cannot sort it back by sequence number.
    """

    name = "reorder"

    def __init__(self, publisher: LegId, subscriber: LegId, **window) -> None:
        super().__init__(publisher, subscriber, **window)
        self._held: list[InboundRTP] = []
        self._holding = False  # the frame in progress is the held one

    def handle(self, inbound: InboundRTP, dest: LegId, new_frame: bool) -> list[Decision]:
        """Hold the first frame of each pair; release it after the last packet of the second."""
        if new_frame:
            self._holding = not self._held and self.in_window()
            if self._holding or self._held:
                self.record(inbound, dest, "reorder", "held" if self._holding else "sent first")
        if self._holding:
            self._held.append(inbound)
            return [DropDecision(dest, inbound, reason="attack_reorder")]
        out: list[Decision] = [Forward(dest, inbound)]
        if self._held and inbound.packet.marker:
            out += [Forward(dest, held, fresh_seq=True) for held in self._held]
            self._held = []
        return out


class Inject(AttackPolicy):
    """Puts a forged frame into the stream before the first frame after each of ``times``.

    Args:
        times: seconds at which to inject.
        forge: "sframe" (a header with the stream's last KID and a CTR :data:`FUTURE_CTR_STEP`
            ahead, then random bytes the size of the last frame), "picture" (:func:`forged_vp8_frame`,
            unencrypted: a downgrade) or "sealed" (``seal(kid, ctr)`` with the stream's last KID and
            CTR: a real SFrame frame under a key the attacker holds, e.g. a leaver's old key; the
            picture when ``seal`` returns None, as in dtls-srtp mode).
        picture_size: (width, height) of the forged picture.
        seal: the forger of "sealed" frames.
        ready: ``ready(kid)`` with the stream's last KID (None before one): a due injection waits
            until it is True (e.g. until the impersonated sender has spoken under a newer epoch).
    """

    name = "inject"

    def __init__(self, publisher: LegId, subscriber: LegId, *, times: Iterable[float] = (0.4, 0.7, 1.0),
                 forge: str = "sframe", picture_size: tuple[int, int] = (320, 240),
                 seal: Callable[[int | None, int | None], bytes | None] | None = None,
                 ready: Callable[[int | None], bool] | None = None, **kw) -> None:
        if forge not in ("sframe", "picture", "sealed") or (forge == "sealed") != (seal is not None):
            raise ValueError(f"forge must be 'sframe', 'picture' or 'sealed' (with seal), not {forge!r}")
        self.name = {"sframe": "inject", "picture": "downgrade-inject"}.get(forge, "inject")
        super().__init__(publisher, subscriber, **kw)
        self.times, self.forge, self.picture_size, self.seal = sorted(times), forge, picture_size, seal
        self.ready = ready
        self._header: tuple[int, int] | None = None  # (KID, CTR) of the last frame
        self._size = 0  # bytes of the last complete frame
        self._current = 0

    def handle(self, inbound: InboundRTP, dest: LegId, new_frame: bool) -> list[Decision]:
        """Forged packets in fresh slots before this frame, when an injection is due."""
        out: list[Decision] = []
        if new_frame:
            self._size, self._current = self._current or self._size, 0
            kid = self._header[0] if self._header else None
            if self.times and self.elapsed >= self.times[0] and (self.ready is None or self.ready(kid)):
                self.times.pop(0)
                out = self._forged(inbound, dest)
        self._learn(inbound.packet.payload)
        return out + [Forward(dest, inbound)]

    def _learn(self, payload: bytes) -> None:
        try:
            descriptor, body = VP8PayloadDescriptor.parse(payload)
        except RTPError:
            return
        self._current += len(body)
        if descriptor.starts_frame:
            try:
                self._header = decode_header(body)[:2]
            except MalformedHeader:
                self._header = None

    def forged_frame(self) -> bytes:
        """The frame bytes of the next forgery."""
        if self.forge == "sealed":
            sealed = self.seal(*(self._header or (None, None)))  # type: ignore[misc]
            return sealed if sealed is not None else forged_vp8_frame(*self.picture_size)
        if self.forge == "picture" or self._header is None:
            return forged_vp8_frame(*self.picture_size)
        kid, ctr = self._header
        return sframe_forgery(kid, ctr + FUTURE_CTR_STEP, self._size or 600, self.rng)

    def _forged(self, inbound: InboundRTP, dest: LegId) -> list[Decision]:
        timestamp = (inbound.packet.timestamp - 1) % (1 << 32)  # no real frame has it
        frame = self.forged_frame()
        payloads = vp8_payloads(frame, picture_id=self.rng.randrange(PICTURE_ID_MOD),
                                max_payload=FORGED_PAYLOAD)
        after = f", after KID {self._header[0]:#x}" if self.forge == "sealed" and self._header else ""
        self.record(inbound, dest, "inject", f"{self.forge}, {len(frame)} bytes{after}", timestamp)
        return [Forward(dest, inbound, fresh_seq=True, packet=RtpPacket(
            payload_type=inbound.packet.payload_type, marker=int(i == len(payloads) - 1),
            sequence_number=0, timestamp=timestamp, ssrc=inbound.ssrc, payload=p))
            for i, p in enumerate(payloads)]


class StreamSwap(AttackPolicy):
    """Forwards ``source``'s frames to ``subscriber`` on ``publisher``'s stream, from the first frame on.

    The subscriber's SSRC for ``publisher`` (as signalling announced it) carries ``source``'s frames
    in fresh sequence slots; ``publisher``'s own frames and ``source``'s stream towards the
    subscriber are not sent, so the subscriber sees ``source`` in ``publisher``'s place. Only a
    receiver that attributes each frame by its authenticated KID notices (RFC 9605 §6.1.1). The
    log names ``publisher`` (where the frame was shown) and the source frame's RTP timestamp.
    """

    name = "stream-swap"

    def __init__(self, publisher: LegId, subscriber: LegId, *, source: LegId, **kw) -> None:
        super().__init__(publisher, subscriber, **kw)
        self.source = source
        self._anchor: InboundRTP | None = None  # a packet of publisher's stream: where source's go
        self._held: list[InboundRTP] = []  # source's packets that came before the first anchor
        self._moved_ts: int | None = None

    def claims(self, publisher: LegId, subscriber: LegId) -> bool:
        """The two pairs: publisher → subscriber and source → subscriber."""
        return subscriber == self.subscriber and publisher in (self.publisher, self.source)

    def on_rtp(self, inbound: InboundRTP, dests: Sequence[LegId]) -> list[Decision]:
        """Drop the publisher's packets, move the source's onto the publisher's stream."""
        mine = [d for d in dests if self.claims(inbound.leg, d)] if inbound.kind == self.kind else []
        out: list[Decision] = [Forward(d, inbound) for d in dests if d not in mine]
        if not mine:
            return out
        if inbound.leg == self.publisher:
            self._anchor = inbound
            held, self._held = self._held, []
            return out + [self._move(p) for p in held]  # its own packet: neither sent nor counted
        if self._anchor is None:
            self._held.append(inbound)
            return out
        return out + [self._move(inbound)]

    def _move(self, packet: InboundRTP) -> Forward:
        if packet.packet.timestamp != self._moved_ts:
            self._moved_ts = packet.packet.timestamp
            self.log.append(AttackAction(packet.time, self.name, "swap", self.publisher, self.subscriber,
                                         packet.packet.timestamp, f"{self.source}'s frame"))
        assert self._anchor is not None
        return Forward(self.subscriber, self._anchor, packet=packet.copy_packet(), fresh_seq=True)


class PairRouter(Policy):
    """Runs several attack policies at once, each on the pairs it claims; the rest is honest."""

    name = "router"

    def __init__(self, policies: Iterable[AttackPolicy]) -> None:
        self.policies = list(policies)

    def on_rtp(self, inbound: InboundRTP, dests: Sequence[LegId]) -> list[Decision]:
        """Each destination goes to the first policy claiming (publisher, destination)."""
        out: list[Decision] = []
        rest = list(dests)
        for policy in self.policies:
            mine = [d for d in rest if policy.claims(inbound.leg, d)]
            if mine:
                out += policy.on_rtp(inbound, mine)
                rest = [d for d in rest if d not in mine]
        return out + [Forward(d, inbound) for d in rest]

    def on_timer(self, now: float) -> list[Decision]:
        """Every policy's due decisions."""
        return [d for p in self.policies for d in p.on_timer(now)]

    def next_timer(self) -> float | None:
        """The earliest of the policies' timers."""
        times = [t for p in self.policies if (t := p.next_timer()) is not None]
        return min(times) if times else None
