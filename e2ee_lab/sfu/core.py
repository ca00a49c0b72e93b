"""The SFU core: routing, SSRC mapping, sequence continuity, key-frame requests, drop counting.

A sans-I/O Selective Forwarding Middlebox (RFC 7667 §3.7) on plaintext RTP/RTCP: the edge SRTP-
unprotects each datagram with the leg's key, calls :meth:`SFUCore.receive_rtp` or
:meth:`SFUCore.receive_rtcp` with the leg id and ``now``, and SRTP-protects every returned
``(leg, bytes)`` with that leg's key. Every leg publishes and subscribes: each publisher stream
(learned from the first packet of a new SSRC on the leg; kind from the payload type, default
96 = VP8 video, 111 = Opus audio) goes to every other leg.

Choices, as a real SFU makes them:

- **SSRC per (publisher stream, subscriber)**: each outgoing stream gets its own SFU-chosen random
  SSRC (RFC 3550 §8.1), unique across the SFU and distinct from every publisher SSRC, so a
  subscriber never sees an SSRC of its own (§8.2) and each outgoing stream has its own sequence
  space. ``ssrc_map()`` and :class:`OutgoingStreamCreated` events map them back.
- **Sequence numbers rewritten per outgoing stream**, starting at a random value (RFC 3550 §5.1):
  upstream loss stays visible as a gap, an SFU drop (policy :class:`Drop`) closes its gap so the
  subscriber sees no loss, a reordered packet keeps its own slot, and a replayed or injected
  packet (``fresh_seq``) takes the next slot. Timestamps, marker, payload type, CSRCs and payload
  pass unchanged; only the header extensions in ``extmap`` are forwarded (as an SFU forwards only
  negotiated extensions, RFC 8285 §5).
- **RTCP terminates at the SFU**; a PLI (RFC 4585 §6.3.1) from a subscriber is mapped back to the
  publisher's SSRC and forwarded (throttled per stream to one per ``pli_interval`` s), and a PLI
  goes to the publisher of every video stream when a new leg joins, so it starts on a key frame
  (the RTCP half of the core: :mod:`e2ee_lab.sfu.feedback`). Leaving legs' streams end with an
  RTCP BYE (RFC 3550 §6.6) to every remaining leg.

In a big room the core can forward the audio of the loudest speakers only (``loudest=N``, active
while the room has more than ``loudest_above`` legs; :mod:`e2ee_lab.sfu.loudest`), chosen from the
RFC 6464 level each audio packet carries in the clear, as Jitsi Videobridge's audio last-N does.

Bad input is dropped, counted in ``dropped[reason]`` and reported as :class:`PacketDropped`;
``receive_*`` never raise. ``packets_in == packets_routed + sum(dropped.values())`` always holds.

The hot path works on the packet's bytes (:mod:`e2ee_lab.sfu.wire`): the fixed header (RFC 3550
§5.1) is read with one ``struct`` call and checked exactly as aiortc's ``RtpPacket.parse`` checks
it (CSRC count, extension length, padding), the extension block (RFC 8285) is parsed once per
distinct block (cached) to validate it and to learn whether forwarding would change it; when it
would not, each delivery is the packet with SSRC and sequence number written into a copy of its
header, with no parse or serialize. An :class:`HonestPolicy` core skips the policy objects altogether; any other
policy gets parsed :class:`InboundRTP` packets as before, and a replacement packet is serialized
with aiortc. The view tap stores raw bytes and parses them when read.

Over 500 lines: the hot path, the policy path and the leg and stream bookkeeping share every
stream's state (sequence rewriting, outgoing streams, the speaker selection's closed gaps); the
RTCP half already lives in :mod:`e2ee_lab.sfu.feedback`, the speaker choice in :mod:`e2ee_lab.sfu.loudest`.
"""

from __future__ import annotations

import copy
import random
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

from aiortc.rtp import RtcpByePacket, RtpPacket

from e2ee_lab.config import LOUDEST_ROOM_SIZE
from e2ee_lab.media.frame import Kind
from e2ee_lab.rtp.seqnum import SEQ_MOD
from e2ee_lab.sfu.errors import (
    KindMismatch,
    LegExists,
    SFUError,
    SSRCCollision,
    UnknownLeg,
    UnknownPayloadType,
    UnknownSSRC,
)
from e2ee_lab.sfu.events import (
    Event,
    LegId,
    OutgoingStreamCreated,
    PacketDropped,
    PacketForwarded,
    StreamAdded,
    SubscriberJoined,
    SubscriberLeft,
)
from e2ee_lab.sfu.feedback import RTCPFeedback
from e2ee_lab.sfu.loudest import LoudestSpeakers
from e2ee_lab.sfu.policy import Decision, Drop, Forward, HonestPolicy, InboundRTP, Policy
from e2ee_lab.sfu.streams import OutStream, Stream, StreamInfo
from e2ee_lab.sfu.view import ViewTap
from e2ee_lab.sfu.wire import FIXED_HEADER, RTPCheck, extensions_map, rewrite

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  # RFC 6464 §4
DEFAULT_PAYLOAD_KINDS: Mapping[int, Kind] = {96: "video", 111: "audio"}
DEFAULT_EXTMAP: Mapping[int, str] = {1: AUDIO_LEVEL_URI}
KINDS = ("audio", "video")
Datagram = tuple[LegId, bytes]


@dataclass(frozen=True)
class _RawInbound(InboundRTP):
    """An :class:`InboundRTP` that also carries the bytes each delivery is made from."""

    template: bytes = b""  # the packet as it is forwarded, before SSRC and sequence are rewritten


# --- the core ------------------------------------------------------------------------------------


class SFUCore(RTCPFeedback):
    """The SFU's protocol logic for one call: legs in, plaintext RTP/RTCP in and out.

    Args:
        policy: what to forward (default :class:`HonestPolicy`).
        view: the view tap recording what the SFU reads (default: a :class:`ViewTap` keeping
            payloads and recording both directions).
        payload_kinds: payload type -> "audio"/"video"; other payload types are dropped.
        extmap: RFC 8285 extension id -> URI the SFU parses and forwards (default: audio level
            at id 1); URIs aiortc's ``HeaderExtensionsMap`` does not know are ignored.
        learn_ssrcs: learn publisher streams from their first packet; if False, only streams
            declared with :meth:`add_stream` are forwarded.
        pli_interval: minimum seconds between PLIs forwarded to one publisher stream.
        packet_events: emit :class:`PacketForwarded` / :class:`PacketDropped` events.
        seed: seeds the SFU's SSRC and initial sequence number choices (None: random).
        loudest: forward the audio of only this many loudest speakers (RFC 6464 levels,
            :class:`~e2ee_lab.sfu.loudest.LoudestSpeakers`) while the room has more than
            ``loudest_above`` legs; None (default): every microphone to every other leg. Audio
            withheld this way is not a drop: its gap is closed on the subscriber's stream.

    Counters: ``packets_in`` (datagrams given to ``receive_rtp``/``receive_rtcp``),
    ``packets_routed`` (accepted ones), ``dropped[reason]`` (the rest, so
    ``packets_in == packets_routed + sum(dropped.values())``), ``packets_forwarded`` (RTP
    returned, one per delivery), ``dropped_deliveries[reason]`` (deliveries not made: policy
    drops, ``unknown_dest``, ``unknown_stream``), ``plis_sent``, ``feedback_ignored[reason]``
    and ``rtcp_seen[class name]``; ``audio_forwarded[subscriber leg]`` (audio packets sent to
    each leg: one Opus frame each) and ``audio_withheld`` (deliveries the loudest-speaker
    selection did not make). Events queue up until taken with :meth:`next_event`.
    """

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        view: ViewTap | None = None,
        payload_kinds: Mapping[int, Kind] = DEFAULT_PAYLOAD_KINDS,
        extmap: Mapping[int, str] = DEFAULT_EXTMAP,
        learn_ssrcs: bool = True,
        pli_interval: float = 0.5,
        packet_events: bool = True,
        seed: int | None = None,
        loudest: int | None = None,
        loudest_above: int = LOUDEST_ROOM_SIZE,
    ) -> None:
        bad = {pt: k for pt, k in payload_kinds.items() if k not in KINDS or not 0 <= pt < 128}
        if bad:
            raise ValueError(f"payload_kinds entries must be 0..127 -> audio/video, got {bad}")
        self.policy = policy if policy is not None else HonestPolicy()
        self.view = view if view is not None else ViewTap()
        self.payload_kinds = dict(payload_kinds)
        self.learn_ssrcs = learn_ssrcs
        self.pli_interval = pli_interval
        self.packet_events = packet_events
        self._extmap = extensions_map(extmap)
        self._check_rtp = RTPCheck(self._extmap)  # the hot path's header checks (sfu.wire)
        self._rng = random.Random(seed)
        self._legs: dict[LegId, list[int]] = {}
        self._dests: dict[LegId, tuple[LegId, ...]] = {}  # leg -> every other leg, in order
        self._streams: dict[int, Stream] = {}
        self._out: dict[tuple[int, LegId], OutStream] = {}
        self._out_index: dict[tuple[LegId, int], int] = {}
        self._used_ssrcs: set[int] = set()
        self._events: deque[Event] = deque()
        self.rtcp_ssrc = self._new_ssrc()  # sender SSRC of the SFU's own RTCP
        self.packets_in = 0  # datagrams given to receive_rtp / receive_rtcp
        self.packets_routed = 0  # datagrams accepted (RTP handed to the policy, RTCP read)
        self.packets_forwarded = 0  # RTP packets returned for sending (one per delivery)
        self.plis_sent = 0  # PLIs returned for sending
        self.dropped: Counter[str] = Counter()  # datagrams not accepted, by reason
        self.dropped_deliveries: Counter[str] = Counter()  # deliveries not made, by reason
        self.feedback_ignored: Counter[str] = Counter()  # RTCP feedback read, not acted on
        self.rtcp_seen: Counter[str] = Counter()  # RTCP packets read, by aiortc class name
        self.speakers = LoudestSpeakers(loudest) if loudest is not None else None
        self.loudest_above = loudest_above
        self.audio_forwarded: Counter[LegId] = Counter()  # audio packets (= frames) per subscriber leg
        self.audio_withheld = 0  # audio deliveries not made because the stream was not among the loudest

    # --- legs and streams ------------------------------------------------------------------------

    @property
    def legs(self) -> tuple[LegId, ...]:
        """The legs, in the order they were added."""
        return tuple(self._legs)

    def add_leg(self, leg_id: LegId, now: float = 0.0) -> list[Datagram]:
        """Add a participant's leg; it receives every other leg's streams from now on.

        Returns:
            RTCP PLIs ``(publisher_leg, bytes)`` asking every video publisher for a key frame.
        Raises:
            LegExists: ``leg_id`` is already a leg.
        """
        if leg_id in self._legs:
            raise LegExists(f"leg {leg_id!r} already exists")
        self._legs[leg_id] = []
        self._update_dests()
        self._emit(SubscriberJoined(time=now, leg=leg_id))
        out: list[Datagram] = []
        for stream in list(self._streams.values()):
            if stream.info.kind == "video":
                out += self._request_key_frame(stream, now, "join", leg_id, force=True)
        return out

    def remove_leg(self, leg_id: LegId, now: float = 0.0) -> list[Datagram]:
        """Remove a leg: forget its streams and stop forwarding to and from it.

        Returns:
            RTCP BYEs ``(leg, bytes)`` naming, for each remaining leg, the outgoing SSRCs that
            carried the removed leg's streams.
        Raises:
            UnknownLeg: ``leg_id`` is not a leg.
        """
        if leg_id not in self._legs:
            raise UnknownLeg(f"leg {leg_id!r} is not a leg")
        ssrcs = tuple(self._legs.pop(leg_id))
        self._update_dests()
        byes: dict[LegId, list[int]] = {}
        for key in [k for k in self._out if k[1] == leg_id or k[0] in ssrcs]:
            out = self._out.pop(key)
            if key[0] in self._streams:
                self._streams[key[0]].outs.pop(key[1], None)
            del self._out_index[(key[1], out.ssrc)]
            if key[1] != leg_id:
                byes.setdefault(key[1], []).append(out.ssrc)
        for ssrc in ssrcs:
            del self._streams[ssrc]
            if self.speakers is not None:
                self.speakers.forget(ssrc)
        self._emit(SubscriberLeft(time=now, leg=leg_id, streams=ssrcs))
        return [(leg, bytes(RtcpByePacket(sources=s))) for leg, s in byes.items()]

    def add_stream(self, leg_id: LegId, ssrc: int, kind: Kind, now: float = 0.0) -> None:
        """Declare a publisher stream (as signalled in SDP ``a=ssrc``) before its first packet.

        Raises:
            UnknownLeg: ``leg_id`` is not a leg.
            SSRCCollision: the SSRC is already in use.
            ValueError: ``kind`` is not "audio"/"video" or ``ssrc`` is not 32-bit.
        """
        if leg_id not in self._legs:
            raise UnknownLeg(f"leg {leg_id!r} is not a leg")
        if kind not in KINDS or not 0 <= ssrc < 1 << 32:
            raise ValueError(f"need a 32-bit ssrc and audio/video, got {ssrc}, {kind!r}")
        self._register(leg_id, ssrc, kind, 0, now)

    def open_streams(self, now: float = 0.0) -> None:
        """Create now every outgoing stream still missing (each known publisher stream to each other
        leg), as if each had forwarded a packet: their :class:`OutgoingStreamCreated` events let the
        edge announce every SSRC before media flows (the lab's worker processes need that)."""
        for stream in list(self._streams.values()):
            for dest in self._dests[stream.info.leg]:
                if dest not in stream.outs:
                    self._new_out_stream(stream, dest, now)

    def _update_dests(self) -> None:
        self._dests = {leg: tuple(d for d in self._legs if d != leg) for leg in self._legs}

    def streams(self) -> list[StreamInfo]:
        """Every publisher stream currently known."""
        return [s.info for s in self._streams.values()]

    def ssrc_map(self) -> dict[tuple[int, LegId], int]:
        """(publisher SSRC, subscriber leg) -> SFU-chosen SSRC, for every outgoing stream."""
        return {key: out.ssrc for key, out in self._out.items()}

    def stream_of(self, leg_id: LegId, ssrc: int) -> StreamInfo | None:
        """The publisher stream behind outgoing SSRC ``ssrc`` on subscriber leg ``leg_id``."""
        source = self._out_index.get((leg_id, ssrc))
        return None if source is None else self._streams[source].info

    # --- RTP -------------------------------------------------------------------------------------

    def receive_rtp(self, leg_id: LegId, data: bytes, now: float) -> list[Datagram]:
        """Handle one plaintext RTP packet from ``leg_id``; never raises on bad input.

        Returns:
            ``(subscriber_leg, rtp_bytes)`` to SRTP-protect and send, as the policy decided.
        """
        self.packets_in += 1
        if type(data) is not bytes:
            data = bytes(data)
        try:
            if leg_id not in self._legs:
                raise UnknownLeg(f"RTP from leg {leg_id!r}, which is not a leg")
            header = self._check_rtp(data)
            stream = self._streams.get(header[4])
            if stream is None or stream.info.leg != leg_id or \
                    stream.info.kind != self.payload_kinds.get(header[1] & 0x7F):
                stream = self._stream_for(leg_id, header[4], header[1] & 0x7F, now)
        except SFUError as exc:
            self._drop_datagram(exc, leg_id, len(data), now)
            return []
        self.packets_routed += 1
        kind = stream.info.kind
        ext_seq = stream.unwrapper.unwrap(header[2])
        self.view.record_raw(now, "in", leg_id, data, kind, leg_id, header[4], self._extmap)
        if kind == "audio" and not self._audible(stream, data, ext_seq, now):
            return []
        if type(self.policy) is HonestPolicy:  # its decisions are known: forward to every other leg
            return self._forward_all(stream, header, ext_seq, now)
        template = header[5]
        packet = RtpPacket.parse(data, self._extmap)  # cannot fail: _check_rtp made aiortc's checks
        inbound = _RawInbound(time=now, leg=leg_id, kind=kind, ext_seq=ext_seq, packet=packet,
                              size=len(data), template=template)
        return self._apply(self.policy.on_rtp(inbound, list(self._dests[leg_id])), now)

    @property
    def selecting_speakers(self) -> bool:
        """True while the room is big enough for the loudest-speaker selection (``loudest`` set)."""
        return self.speakers is not None and len(self._legs) > self.loudest_above

    def _audible(self, stream: Stream, data: bytes, ext_seq: int, now: float) -> bool:
        """False when the selection withholds this audio packet (its subscribers' gaps are closed)."""
        if not self.selecting_speakers:
            return True
        if self.speakers.heard(stream.info.ssrc, self._check_rtp.audio_level(data), now):  # type: ignore[union-attr]
            return True
        dests = self._dests[stream.info.leg]
        for dest in dests:
            out = stream.outs.get(dest)
            if out is not None:
                out.drop(ext_seq)
        self.audio_withheld += len(dests)
        return False

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` should next be called (the policy holds packets), or None."""
        return self.policy.next_timer()

    def handle_timer(self, now: float) -> list[Datagram]:
        """Release what the policy has due at ``now``; returns RTP ``(leg, bytes)`` to send."""
        return self._apply(self.policy.on_timer(now), now)

    def _stream_for(self, leg_id: LegId, ssrc: int, pt: int, now: float) -> Stream:
        kind = self.payload_kinds.get(pt)
        if kind is None:
            raise UnknownPayloadType(f"payload type {pt} is not mapped", ssrc=ssrc)
        stream = self._streams.get(ssrc)
        if stream is None:
            if not self.learn_ssrcs:
                raise UnknownSSRC(f"SSRC {ssrc:#010x} was not declared", ssrc=ssrc)
            return self._register(leg_id, ssrc, kind, pt, now)
        if stream.info.leg != leg_id:
            raise SSRCCollision(f"SSRC {ssrc:#010x} belongs to another leg", ssrc=ssrc)
        if stream.info.kind != kind:
            raise KindMismatch(f"{kind} PT {pt} on {stream.info.kind} SSRC {ssrc:#010x}", ssrc=ssrc)
        return stream

    def _register(self, leg_id: LegId, ssrc: int, kind: Kind, pt: int, now: float) -> Stream:
        if ssrc in self._streams or ssrc in self._used_ssrcs:
            raise SSRCCollision(f"SSRC {ssrc:#010x} is already in use", ssrc=ssrc)
        stream = Stream(StreamInfo(leg=leg_id, ssrc=ssrc, kind=kind))
        self._streams[ssrc] = stream
        self._legs[leg_id].append(ssrc)
        self._emit(StreamAdded(time=now, leg=leg_id, ssrc=ssrc, kind=kind, payload_type=pt))
        return stream

    # --- applying decisions ----------------------------------------------------------------------

    def _apply(self, decisions: list[Decision], now: float) -> list[Datagram]:
        out: list[Datagram] = []
        for decision in decisions:
            if isinstance(decision, Forward):
                sent = self._forward(decision, now)
                if sent is not None:
                    out.append(sent)
            elif isinstance(decision, Drop):
                self._drop_delivery(decision, decision.reason, now)
            else:
                raise TypeError(f"policy returned {decision!r}, not Forward or Drop")
        return out

    def _forward_all(self, stream: Stream, header: tuple, ext_seq: int, now: float) -> list[Datagram]:
        """What :class:`HonestPolicy` decides, without its objects: the packet to every other leg.

        ``header`` is :meth:`_check_rtp`'s result. Per delivery: the outgoing stream's SSRC and
        sequence slot packed into a new fixed header before the rest of the packet (one ``struct``
        pack, one concatenation); the view tap takes all deliveries of the packet in one append.
        """
        b0, b1, seq, timestamp, ssrc, template = header
        src_leg, kind = stream.info.leg, stream.info.kind
        body, pack, outs = memoryview(template)[12:], FIXED_HEADER.pack, stream.outs
        events, result = self.packet_events, []
        for dest in self._dests[src_leg]:
            out = outs.get(dest)
            if out is None:
                out = self._new_out_stream(stream, dest, now)
            out_seq = out.seq_for(ext_seq)
            data = pack(b0, b1, out_seq, timestamp, out.ssrc) + body
            result.append((dest, data))
            if events:
                self._emit(PacketForwarded(
                    time=now, source_leg=src_leg, source_ssrc=ssrc, source_seq=seq, dest_leg=dest,
                    ssrc=out.ssrc, seq=out_seq, size=len(data), modified=False, fresh_seq=False))
        self.packets_forwarded += len(result)
        if kind == "audio":
            forwarded = self.audio_forwarded
            for dest, _ in result:
                forwarded[dest] += 1
        self.view.record_deliveries(now, tuple(result), kind, src_leg, ssrc, self._extmap)
        return result

    def _forward(self, decision: Forward, now: float) -> Datagram | None:
        src, dest = decision.source, decision.dest
        out = self._out_stream(src, dest, now)
        if out is None:
            return None
        seq = out.fresh(src.ext_seq) if decision.fresh_seq else out.seq_for(src.ext_seq)
        template = getattr(src, "template", None) if decision.packet is None else None
        if template:  # the packet as received: rewrite its header in a copy
            data = rewrite(template, seq, out.ssrc)
            self.view.record_raw(now, "out", dest, data, src.kind, src.leg, src.ssrc, self._extmap)
        else:  # a replacement packet (tamper, inject) or an InboundRTP made by the policy
            packet = copy.copy(decision.packet if decision.packet is not None else src.packet)
            packet.ssrc, packet.sequence_number = out.ssrc, seq
            data = packet.serialize(self._extmap)
            self.view.record(
                time=now, direction="out", leg=dest, packet=packet, size=len(data),
                kind=src.kind, publisher=(src.leg, src.ssrc),
            )
        self.packets_forwarded += 1
        if src.kind == "audio":
            self.audio_forwarded[dest] += 1
        if self.packet_events:
            self._emit(
                PacketForwarded(
                    time=now, source_leg=src.leg, source_ssrc=src.ssrc, source_seq=src.seq,
                    dest_leg=dest, ssrc=out.ssrc, seq=seq, size=len(data),
                    modified=decision.packet is not None, fresh_seq=decision.fresh_seq,
                )
            )
        return dest, data

    def _out_stream(self, src: InboundRTP, dest: LegId, now: float) -> OutStream | None:
        """The outgoing stream for a delivery, created on first use; None (counted) if gone."""
        stream = self._streams.get(src.ssrc)
        if stream is None or stream.info.leg != src.leg:
            self._drop_delivery(Drop(dest, src), "unknown_stream", now)
            return None
        if dest not in self._legs:
            self._drop_delivery(Drop(dest, src), "unknown_dest", now)
            return None
        out = self._out.get((src.ssrc, dest))
        return out if out is not None else self._new_out_stream(stream, dest, now)

    def _new_out_stream(self, stream: Stream, dest: LegId, now: float) -> OutStream:
        """Choose the SSRC and first sequence number of ``stream`` towards ``dest`` (RFC 3550 §8.1)."""
        info = stream.info
        out = OutStream(self._new_ssrc(), self._rng.randrange(SEQ_MOD))
        self._out[(info.ssrc, dest)] = out
        stream.outs[dest] = out
        self._out_index[(dest, out.ssrc)] = info.ssrc
        self._emit(
            OutgoingStreamCreated(
                time=now, source_leg=info.leg, source_ssrc=info.ssrc, dest_leg=dest,
                ssrc=out.ssrc, kind=info.kind,
            )
        )
        return out

    def _drop_delivery(self, decision: Drop, reason: str, now: float) -> None:
        src = decision.source
        out = self._out.get((src.ssrc, decision.dest))
        if out is not None:
            out.drop(src.ext_seq)
        self.dropped_deliveries[reason] += 1
        if self.packet_events:
            self._emit(
                PacketDropped(
                    time=now, leg=src.leg, reason=reason, size=src.size, ssrc=src.ssrc,
                    dest_leg=decision.dest,
                )
            )

    def _drop_datagram(self, exc: SFUError, leg_id: LegId, size: int, now: float) -> None:
        """Drop, count, continue: the one place where a bad datagram ends."""
        self.dropped[exc.reason] += 1
        if self.packet_events:
            event = PacketDropped(time=now, leg=leg_id, reason=exc.reason, size=size, ssrc=exc.ssrc)
            self._emit(event)

    # --- events, counters, helpers ---------------------------------------------------------------

    def next_event(self) -> Event | None:
        """The oldest event not yet taken, or None."""
        return self._events.popleft() if self._events else None

    @property
    def pending_events(self) -> int:
        """How many events wait to be taken with :meth:`next_event`."""
        return len(self._events)

    def counters(self) -> dict[str, int]:
        """Every counter, flat (``dropped.<reason>``, ...), for JSON summaries."""
        flat = {
            "packets_in": self.packets_in,
            "packets_routed": self.packets_routed,
            "packets_forwarded": self.packets_forwarded,
            "plis_sent": self.plis_sent,
        }
        for prefix in ("dropped", "dropped_deliveries", "feedback_ignored", "rtcp_seen"):
            flat.update({f"{prefix}.{k}": v for k, v in sorted(getattr(self, prefix).items())})
        return flat

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _new_ssrc(self) -> int:
        """A random non-zero SSRC not used by any publisher or outgoing stream (RFC 3550 §8.1)."""
        while True:
            ssrc = self._rng.randrange(1, 1 << 32)
            if ssrc not in self._used_ssrcs and ssrc not in self._streams:
                self._used_ssrcs.add(ssrc)
                return ssrc
