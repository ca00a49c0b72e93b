"""The receive side: depacketization, reordering and frame reassembly (a small jitter buffer).

:class:`FrameAssembler` takes RTP packets of any number of SSRCs, possibly reordered, duplicated or
lost, and returns events (:mod:`e2ee_lab.rtp.events`). Packets are grouped into frames by
``(payload type, RTP timestamp)`` per SSRC (RFC 3550 §5.1: all packets of a video frame share its
timestamp); a VP8 frame is complete when the packets from the one with S=1 and PID=0
(RFC 7741 §4.4) to the one with the marker bit (§4.1) are all present, an Opus frame is one packet
(RFC 7587 §4.2). Frame boundaries come from the descriptor, the marker bit and the timestamp only,
never from the VP8 bitstream, so SFrame ciphertext reassembles like plaintext. Frames are released
in sequence order: a complete frame right after the last released one goes out at once; a frame
behind a gap waits until some pending frame has had no new packet for ``horizon_packets`` arrivals
of its stream (or ``max_wait`` seconds of the ``now`` values passed in); then the oldest frame is
resolved, delivered if complete or reported lost. The first frame of a stream is released when
it is complete and the stream has brought ``startup_packets`` packets (0: at once, as aiortc's and
libwebrtc's buffers do; a packet older than a released frame is then dropped as late).
Sequence numbers are extended with :class:`SequenceUnwrapper`. Sans-I/O: no clock; time only
enters through ``now`` arguments. Drop, count, continue: every bad packet adds one to
``dropped[reason]`` and yields a :class:`PacketDropped` event; nothing raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from .errors import EmptyPayload, RTPError, UnknownPayloadType
from .events import FrameAssembled, FrameLost, PacketDropped, PacketsMissing, RTPEvent
from .extensions import AudioLevel, parse_rtp
from .formats import Codec
from .seqnum import SEQ_MOD, SequenceUnwrapper
from .vp8 import VP8PayloadDescriptor

DEFAULT_HORIZON_PACKETS = 32  # arrivals without news before the oldest pending frame is resolved
DEFAULT_HISTORY = 1024  # released sequence numbers remembered to tell duplicates from late packets
MAX_FRAME_PACKETS = 2048  # a frame with more packets is refused (about 2.4 MB at 1180 B a packet)


@dataclass
class _Packet:
    seq: int  # extended sequence number
    marker: bool
    starts_frame: bool
    data: bytes  # payload after the descriptor
    payload_size: int  # whole RTP payload, descriptor included
    audio_level: AudioLevel | None
    mid: str | None
    picture_id: int | None
    non_reference: bool


@dataclass
class _Pending:
    codec: Codec
    payload_type: int
    timestamp: int
    packets: dict[int, _Packet] = field(default_factory=dict)
    last_arrival: int = 0  # stream arrival index of the newest packet
    last_time: float | None = None  # ``now`` of the newest packet
    starts: list[int] = field(default_factory=list)  # seqs of the packets that start a frame
    ends: list[int] = field(default_factory=list)  # seqs of the packets with the marker bit

    @property
    def first_seq(self) -> int:
        return min(self.packets)

    def add(self, packet: _Packet) -> None:
        self.packets[packet.seq] = packet
        if packet.starts_frame:
            self.starts.append(packet.seq)
        if packet.marker:
            self.ends.append(packet.seq)

    def span(self) -> tuple[int, int] | None:
        """Extended ``(first, last)`` sequence numbers of the complete frame, or None (asked on
        every packet: the start and marker packets are kept aside, so an unfinished frame is cheap)."""
        if self.codec is Codec.OPUS:
            return (self.first_seq, self.first_seq)
        if not self.starts or not self.ends:
            return None
        start = min(self.starts)
        ends = [s for s in self.ends if s >= start]
        if not ends:
            return None
        end = min(ends)
        if end - start + 1 <= len(self.packets) and all(s in self.packets for s in range(start, end + 1)):
            return (start, end)
        return None


class _Stream:
    """Per-SSRC state: unwrapper, pending frames, what has been released."""

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.unwrapper = SequenceUnwrapper()
        self.pending: dict[tuple[int, int], _Pending] = {}
        self.by_seq: dict[int, tuple[int, int]] = {}
        self.fillers: set[int] = set()  # padding-only packets not yet passed
        self.released_through: int | None = None  # every extended seq <= this is resolved
        self.recent: dict[int, None] = {}  # released seqs (insertion-ordered, bounded)
        self.arrivals = 0

    def head(self) -> _Pending:
        if len(self.pending) == 1:  # the usual case: one frame under way
            return next(iter(self.pending.values()))
        return min(self.pending.values(), key=lambda f: f.first_seq)

    def skip_fillers(self) -> None:
        while self.released_through is not None and self.released_through + 1 in self.fillers:
            self.released_through += 1
            self.fillers.discard(self.released_through)

    def stale(self, horizon: int, max_wait: float | None, now: float | None) -> bool:
        oldest = min(self.pending.values(), key=lambda f: f.last_arrival)
        if self.arrivals - oldest.last_arrival >= horizon:
            return True
        times = [f.last_time for f in self.pending.values() if f.last_time is not None]
        if max_wait is None or now is None or not times:
            return False
        return now - min(times) >= max_wait


class FrameAssembler:
    """Reassembles frames of every SSRC it is fed; one per receiver (or per SFU view).

    ``payload_types`` maps each payload type to its :class:`Codec` (as ``a=rtpmap`` does);
    ``extensions_map`` must equal the sender's (audio level, MID ids). Counters: ``stats``
    (``packets_received``, ``frames_assembled``, ``frames_lost``, ``packets_missing``,
    ``padding_only``) and ``dropped`` (one key per drop reason).
    """

    def __init__(
        self,
        payload_types: Mapping[int, Codec],
        *,
        extensions_map: HeaderExtensionsMap | None = None,
        horizon_packets: int = DEFAULT_HORIZON_PACKETS,
        max_wait: float | None = None,
        startup_packets: int = 0,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        """Raises ``ValueError`` for a horizon below 1, negative waits or history below 1."""
        if horizon_packets < 1 or startup_packets < 0 or history < 1:
            raise ValueError("horizon_packets and history must be >= 1, startup_packets >= 0")
        if max_wait is not None and max_wait < 0:
            raise ValueError(f"max_wait {max_wait} is negative")
        self.payload_types = dict(payload_types)
        self.extensions_map = extensions_map or HeaderExtensionsMap()
        self.horizon_packets = horizon_packets
        self.max_wait = max_wait
        self.startup_packets = startup_packets
        self.history = history
        # Whether a frame's packet that just arrived in order can never make its stream stale (see
        # _insert): only a horizon of 1 packet or a max_wait of 0 s resolves a frame that got news.
        self._quick_wait = horizon_packets > 1 and (max_wait is None or max_wait > 0)
        self.stats: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self._streams: dict[int, _Stream] = {}

    # --- public API ----------------------------------------------------------------------------

    def receive(self, packet: bytes | RtpPacket, now: float | None = None) -> list[RTPEvent]:
        """Feed one packet (bytes, or an aiortc ``RtpPacket`` already parsed) and get the events.

        ``now`` (seconds, any origin) is only used for ``max_wait`` and the ``arrival`` field.
        Bad packets become :class:`PacketDropped` events and ``dropped`` counts; never raises.
        """
        if isinstance(packet, RtpPacket):
            rtp = packet
        else:
            try:
                rtp = parse_rtp(packet, self.extensions_map)
            except RTPError as err:
                return [self._drop(err.reason, None, None, str(err))]
        self.stats["packets_received"] += 1
        stream = self._streams.get(rtp.ssrc)
        if stream is None:
            stream = self._streams[rtp.ssrc] = _Stream(rtp.ssrc)
        try:
            return self._insert(stream, rtp, now)
        except RTPError as err:
            return [self._drop(err.reason, rtp.ssrc, rtp.sequence_number, str(err))]

    def poll(self, now: float) -> list[RTPEvent]:
        """Resolve frames whose ``max_wait`` has passed at time ``now`` (call from a timer)."""
        events: list[RTPEvent] = []
        for stream in self._streams.values():
            events += self._release(stream, now, force=False)
        return events

    def flush(self) -> list[RTPEvent]:
        """End of input: release every complete frame in order and report the rest lost."""
        events: list[RTPEvent] = []
        for stream in self._streams.values():
            events += self._release(stream, None, force=True)
        return events

    def pending_frames(self, ssrc: int) -> int:
        """How many frames of ``ssrc`` wait in the buffer (0 for an unknown SSRC)."""
        stream = self._streams.get(ssrc)
        return len(stream.pending) if stream else 0

    # --- insertion -----------------------------------------------------------------------------

    def _drop(self, reason: str, ssrc: int | None, seq: int | None, detail: str) -> PacketDropped:
        self.dropped[reason] += 1
        return PacketDropped(reason=reason, ssrc=ssrc, sequence_number=seq, detail=detail)

    def _depacketize(self, rtp: RtpPacket, ext_seq: int) -> tuple[Codec, _Packet]:
        codec = self.payload_types.get(rtp.payload_type)
        if codec is None:
            raise UnknownPayloadType(f"payload type {rtp.payload_type} is not configured")
        descriptor = None
        if codec is Codec.VP8:
            descriptor, data = VP8PayloadDescriptor.parse(rtp.payload)
        elif not rtp.payload:
            raise EmptyPayload("Opus RTP payload is 0 bytes")
        else:
            data = bytes(rtp.payload)
        packet = _Packet(
            seq=ext_seq,
            marker=bool(rtp.marker),
            starts_frame=descriptor.starts_frame if descriptor else True,
            data=data,
            payload_size=len(rtp.payload),
            audio_level=AudioLevel.from_aiortc(rtp.extensions.audio_level),
            mid=rtp.extensions.mid,
            picture_id=descriptor.picture_id if descriptor else None,
            non_reference=descriptor.non_reference if descriptor else False,
        )
        return codec, packet

    def _classify_old(self, stream: _Stream, ext_seq: int) -> str | None:
        """``"duplicate"``/``"late"`` for a packet the stream has seen or passed, else None."""
        if ext_seq in stream.by_seq or ext_seq in stream.fillers or ext_seq in stream.recent:
            return "duplicate"
        if stream.released_through is not None and ext_seq <= stream.released_through:
            return "late"
        return None

    def _insert(self, stream: _Stream, rtp: RtpPacket, now: float | None) -> list[RTPEvent]:
        ext_seq = stream.unwrapper.unwrap(rtp.sequence_number)
        old = self._classify_old(stream, ext_seq)
        if old:
            return [self._drop(old, stream.ssrc, rtp.sequence_number, f"seq {ext_seq}")]
        if not rtp.payload and rtp.padding_size:
            self.stats["padding_only"] += 1  # RFC 3550 §5.1 padding-only (probing) packet
            stream.fillers.add(ext_seq)
            stream.arrivals += 1
            return self._release(stream, now, force=False)
        codec, packet = self._depacketize(rtp, ext_seq)
        if (codec is Codec.OPUS and not stream.pending and not stream.fillers
                and stream.released_through is not None and ext_seq == stream.released_through + 1):
            stream.arrivals += 1  # the usual audio packet: the next one in order, a frame by itself
            return self._deliver(stream, _Pending(codec, rtp.payload_type, rtp.timestamp, {ext_seq: packet}),
                                 (ext_seq, ext_seq), now, pending=False)
        key = (rtp.payload_type, rtp.timestamp)
        frame = stream.pending.get(key) or _Pending(codec, rtp.payload_type, rtp.timestamp)
        if len(frame.packets) >= MAX_FRAME_PACKETS:
            detail = f"frame at timestamp {rtp.timestamp} exceeds {MAX_FRAME_PACKETS} packets"
            return [self._drop("oversized_frame", stream.ssrc, rtp.sequence_number, detail)]
        stream.pending[key] = frame
        frame.add(packet)
        frame.last_arrival, frame.last_time = stream.arrivals, now
        stream.by_seq[ext_seq] = key
        stream.arrivals += 1
        if codec is Codec.VP8 and not frame.ends and len(stream.pending) == 1 and not stream.fillers \
                and self._quick_wait:
            return []  # what _release finds: the only frame has no marker packet yet, and it just got news
        return self._release(stream, now, force=False)

    # --- release -------------------------------------------------------------------------------

    def _release(self, stream: _Stream, now: float | None, *, force: bool) -> list[RTPEvent]:
        events: list[RTPEvent] = []
        while stream.pending:
            stream.skip_fillers()
            head = stream.head()
            span = head.span()
            if span and self._may_release(stream, span[0]):
                events += self._deliver(stream, head, span, now)
                continue
            if not force and not stream.stale(self.horizon_packets, self.max_wait, now):
                break
            events += self._missing(stream, (span or (head.first_seq,))[0])
            events += self._deliver(stream, head, span, now) if span else self._lose(stream, head)
        if force:
            stream.fillers.clear()
        return events

    def _may_release(self, stream: _Stream, start: int) -> bool:
        if stream.released_through is None:
            return stream.arrivals >= self.startup_packets
        return start == stream.released_through + 1

    def _missing(self, stream: _Stream, upto: int) -> list[RTPEvent]:
        """Report the unseen sequence numbers between the last released one and ``upto``."""
        if stream.released_through is None:
            return []
        first = stream.released_through + 1
        seen = {s for s in stream.fillers if first <= s < upto}
        count = upto - first - len(seen)
        if count <= 0:
            return []
        self.stats["packets_missing"] += count
        return [PacketsMissing(stream.ssrc, first % SEQ_MOD, count)]

    def _forget(self, stream: _Stream, frame: _Pending, through: int, *, pending: bool = True) -> None:
        if pending:
            del stream.pending[(frame.payload_type, frame.timestamp)]
        for seq in frame.packets:
            if pending:
                stream.by_seq.pop(seq, None)
            stream.recent[seq] = None
        while len(stream.recent) > self.history:
            stream.recent.pop(next(iter(stream.recent)))
        previous = stream.released_through
        stream.released_through = through if previous is None else max(previous, through)
        if stream.fillers:
            stream.fillers = {s for s in stream.fillers if s > stream.released_through}

    def _deliver(
        self, stream: _Stream, frame: _Pending, span: tuple[int, int], now: float | None,
        *, pending: bool = True,
    ) -> list[RTPEvent]:
        """The frame's event; ``pending=False``: a frame that never waited (not in ``stream.pending``)."""
        start, end = span
        packets = [frame.packets[s] for s in range(start, end + 1)]
        first, last = packets[0], packets[-1]
        self._forget(stream, frame, end, pending=pending)
        self.stats["frames_assembled"] += 1
        event = FrameAssembled(
            ssrc=stream.ssrc,
            payload_type=frame.payload_type,
            codec=frame.codec,
            timestamp=frame.timestamp,
            first_sequence_number=start % SEQ_MOD,
            last_sequence_number=end % SEQ_MOD,
            packet_count=len(packets),
            data=b"".join(p.data for p in packets),
            marker=last.marker,
            payload_sizes=tuple(p.payload_size for p in packets),
            audio_level=first.audio_level,
            mid=first.mid,
            picture_id=first.picture_id,
            non_reference=first.non_reference,
            arrival=now,
        )
        return [event]

    def _holes(self, stream: _Stream, frame: _Pending, first: int, last: int) -> list[RTPEvent]:
        """Report the runs of sequence numbers missing inside a lost frame's received range."""
        events: list[RTPEvent] = []
        run_start = None
        for seq in range(first, last + 2):
            absent = seq <= last and seq not in frame.packets and seq not in stream.fillers
            if absent and run_start is None:
                run_start = seq
            elif not absent and run_start is not None:
                self.stats["packets_missing"] += seq - run_start
                events.append(PacketsMissing(stream.ssrc, run_start % SEQ_MOD, seq - run_start))
                run_start = None
        return events

    def _lose(self, stream: _Stream, frame: _Pending) -> list[RTPEvent]:
        first, last = min(frame.packets), max(frame.packets)
        holes = self._holes(stream, frame, first, last)
        self._forget(stream, frame, last)
        self.stats["frames_lost"] += 1
        lost = FrameLost(
            ssrc=stream.ssrc,
            payload_type=frame.payload_type,
            timestamp=frame.timestamp,
            first_sequence_number=first % SEQ_MOD,
            last_sequence_number=last % SEQ_MOD,
            packets_received=len(frame.packets),
        )
        return holes + [lost]
