"""The RTP payload format for SFrame, receive side: reassembly (-02 §5.2) and the decrypting receiver.

Pinned to draft-ietf-avtcore-rtp-sframe-02 (see :mod:`e2ee_lab.rtp.sframe_format`). §5.2: each
packet joins the set of received packets of its SSRC; the smallest run of packets consecutive in
sequence number from one with S=1 to one with E=1 is taken out of the set; a run whose T bits or
payload types differ is discarded (steps 6-7); the descriptors are removed and the fragments
concatenated into the SFrame ciphertext. Since a run is complete only when its last missing packet
arrives, only runs through the newest packet are searched. :class:`SFrameDepacketizer` does this
and nothing more, which is also what an SFU can do (it emits :class:`SFrameAssembled`).
:class:`SFrameReceiver` decrypts each run with a caller-given ``unprotect`` and continues as §5.2
says: T=0 (raw) gives the frame at once (:class:`FrameAssembled`); T=1 (packetized) rebuilds the
RTP packet with the plaintext payload and hands it to the codec's :class:`FrameAssembler`. The set
is bounded: a packet ``horizon`` sequence numbers behind the newest is dropped as expired, a
packet seen before as a duplicate. Drop, count, continue: nothing raises on input.
Limitation (stated, counted): a T=1 ciphertext spread over several packets, which -02 allows but
the lab's packetizer never sends, is dropped as ``sframe_packetized_fragmented``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from ..crypto.sframe import SFrameError
from .errors import InconsistentFragments, RTPError, UnknownPayloadType, UnsupportedFragmentation
from .events import FrameAssembled, PacketDropped, RTPEvent, SFrameAssembled
from .extensions import AudioLevel, parse_rtp
from .formats import Codec
from .reassembly import MAX_FRAME_PACKETS, FrameAssembler
from .seqnum import SEQ_MOD, SequenceUnwrapper
from .sframe_format import SFramePayloadDescriptor

DEFAULT_SFRAME_HORIZON = 512  # sequence numbers a fragment may wait behind the newest packet
DEFAULT_SFRAME_HISTORY = 1024  # consumed sequence numbers remembered to spot duplicates


@dataclass
class _Fragment:
    descriptor: SFramePayloadDescriptor
    rtp: RtpPacket
    data: bytes  # fragment after the descriptor


class _SFrameStream:
    """Per-SSRC state: unwrapper, the set of received packets, recently consumed numbers."""

    def __init__(self) -> None:
        self.unwrapper = SequenceUnwrapper()
        self.fragments: dict[int, _Fragment] = {}
        self.consumed: dict[int, None] = {}  # insertion-ordered, bounded

    def run_through(self, seq: int) -> tuple[int, int] | None:
        """The smallest S..E run of consecutive packets that contains ``seq``, or None."""
        start = seq
        while not self.fragments[start].descriptor.start:
            start -= 1
            if start not in self.fragments or self.fragments[start].descriptor.end:
                return None
        end = seq
        while not self.fragments[end].descriptor.end:
            end += 1
            if end not in self.fragments or self.fragments[end].descriptor.start:
                return None
            if end - start >= MAX_FRAME_PACKETS:
                return None
        return start, end


class SFrameDepacketizer:
    """Reassembles SFrame ciphertexts of every SSRC it is fed (-02 §5.2 steps 1-9).

    Counters: ``stats`` (``packets_received``, ``sframe_frames``, ``fragments_expired``) and
    ``dropped`` (one key per reason: the RTP errors' reasons, ``duplicate``, ``expired``).
    """

    def __init__(
        self,
        *,
        extensions_map: HeaderExtensionsMap | None = None,
        horizon: int = DEFAULT_SFRAME_HORIZON,
        history: int = DEFAULT_SFRAME_HISTORY,
    ) -> None:
        """Raises ``ValueError`` for a horizon or history below 1."""
        if horizon < 1 or history < 1:
            raise ValueError("horizon and history must be >= 1")
        self.extensions_map = extensions_map or HeaderExtensionsMap()
        self.horizon = horizon
        self.history = history
        self.stats: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self._streams: dict[int, _SFrameStream] = {}

    def receive(self, packet: bytes | RtpPacket, now: float | None = None) -> list[RTPEvent]:
        """Feed one RTP packet; returns :class:`SFrameAssembled` and :class:`PacketDropped`."""
        if isinstance(packet, RtpPacket):
            rtp = packet
        else:
            try:
                rtp = parse_rtp(packet, self.extensions_map)
            except RTPError as err:
                return [self._drop(err.reason, None, None, str(err))]
        self.stats["packets_received"] += 1
        try:
            descriptor, data = SFramePayloadDescriptor.parse(rtp.payload)
        except RTPError as err:
            return [self._drop(err.reason, rtp.ssrc, rtp.sequence_number, str(err))]
        stream = self._streams.setdefault(rtp.ssrc, _SFrameStream())
        return self._insert(stream, _Fragment(descriptor, rtp, data), now)

    def pending_packets(self, ssrc: int | None = None) -> int:
        """Packets of ``ssrc`` (of every SSRC when None) waiting for the rest of their run."""
        if ssrc is None:
            return sum(len(s.fragments) for s in self._streams.values())
        stream = self._streams.get(ssrc)
        return len(stream.fragments) if stream else 0

    def _drop(self, reason: str, ssrc: int | None, seq: int | None, detail: str) -> PacketDropped:
        self.dropped[reason] += 1
        return PacketDropped(reason=reason, ssrc=ssrc, sequence_number=seq, detail=detail)

    def _insert(self, stream: _SFrameStream, fragment: _Fragment, now: float | None) -> list:
        rtp = fragment.rtp
        seq = stream.unwrapper.unwrap(rtp.sequence_number)
        if seq in stream.fragments or seq in stream.consumed:
            return [self._drop("duplicate", rtp.ssrc, rtp.sequence_number, f"seq {seq}")]
        if seq <= stream.unwrapper.highest - self.horizon:
            detail = f"seq {seq} is {self.horizon}+ behind the newest"
            return [self._drop("expired", rtp.ssrc, rtp.sequence_number, detail)]
        stream.fragments[seq] = fragment
        events = self._expire(stream, rtp.ssrc)
        run = stream.run_through(seq)
        if run is not None:
            events.append(self._take(stream, rtp.ssrc, run, now))
        return events

    def _expire(self, stream: _SFrameStream, ssrc: int) -> list[RTPEvent]:
        floor = stream.unwrapper.highest - self.horizon
        old = [s for s in stream.fragments if s <= floor]
        for s in old:
            self._consume(stream, s)
        if not old:
            return []
        self.stats["fragments_expired"] += len(old)
        self.dropped["expired"] += len(old)
        detail = f"{len(old)} fragments waited {self.horizon}+ packets for their run"
        return [PacketDropped("expired", ssrc, min(old) % SEQ_MOD, detail)]

    def _consume(self, stream: _SFrameStream, seq: int) -> _Fragment:
        fragment = stream.fragments.pop(seq)
        stream.consumed[seq] = None
        while len(stream.consumed) > self.history:
            stream.consumed.pop(next(iter(stream.consumed)))
        return fragment

    def _take(self, stream: _SFrameStream, ssrc: int, run: tuple[int, int], now) -> RTPEvent:
        start, end = run
        fragments = [self._consume(stream, s) for s in range(start, end + 1)]  # step 5
        first, last = fragments[0], fragments[-1]
        if len({f.descriptor.packetized for f in fragments}) > 1:  # step 6
            err = InconsistentFragments(f"T bits differ in the run {start}..{end}")
            return self._drop(err.reason, ssrc, start % SEQ_MOD, str(err))
        if len({f.rtp.payload_type for f in fragments}) > 1:  # step 7
            err = InconsistentFragments(f"payload types differ in the run {start}..{end}")
            return self._drop(err.reason, ssrc, start % SEQ_MOD, str(err))
        self.stats["sframe_frames"] += 1
        return SFrameAssembled(
            ssrc=ssrc,
            payload_type=first.rtp.payload_type,
            packetized=first.descriptor.packetized,
            timestamp=first.rtp.timestamp,
            first_sequence_number=start % SEQ_MOD,
            last_sequence_number=end % SEQ_MOD,
            packet_count=len(fragments),
            ciphertext=b"".join(f.data for f in fragments),
            marker=bool(last.rtp.marker),
            payload_sizes=tuple(len(f.rtp.payload) for f in fragments),
            audio_level=AudioLevel.from_aiortc(first.rtp.extensions.audio_level),
            mid=first.rtp.extensions.mid,
            arrival=now,
        )


class SFrameReceiver:
    """A receiver of SFrame RTP streams: reassembly, decryption, then frames (-02 §5.2 10-13).

    ``payload_types`` maps payload types to codecs as ``a=rtpmap`` does; ``unprotect(ciphertext,
    ssrc)`` returns the plaintext or raises one of ``errors`` (default
    :class:`~e2ee_lab.crypto.sframe.SFrameError`; a caller whose ``unprotect`` also checks the KID
    against the stream adds its own family), counted under its ``reason``. Emits :class:`FrameAssembled` for each decrypted frame and
    :class:`PacketDropped` for every refusal. ``depacketizer`` and ``assembler`` (the codec
    reassembly of per-packet content) are exposed for their counters; ``dropped`` sums all.
    """

    def __init__(
        self,
        payload_types: Mapping[int, Codec],
        unprotect: Callable[[bytes, int], bytes],
        *,
        extensions_map: HeaderExtensionsMap | None = None,
        horizon: int = DEFAULT_SFRAME_HORIZON,
        errors: tuple[type[Exception], ...] = (SFrameError,),
        **assembler_kwargs,
    ) -> None:
        self.payload_types = dict(payload_types)
        self._unprotect = unprotect
        self._errors = errors
        self.depacketizer = SFrameDepacketizer(extensions_map=extensions_map, horizon=horizon)
        self.assembler = FrameAssembler(
            self.payload_types, extensions_map=extensions_map, **assembler_kwargs
        )
        self.decrypt_dropped: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()

    @property
    def dropped(self) -> Counter[str]:
        """Every drop, by reason: reassembly, decryption and codec reassembly together."""
        return self.depacketizer.dropped + self.decrypt_dropped + self.assembler.dropped

    def receive(self, packet: bytes | RtpPacket, now: float | None = None) -> list[RTPEvent]:
        """Feed one RTP packet; returns frames and drops. Never raises on input."""
        events: list[RTPEvent] = []
        for event in self.depacketizer.receive(packet, now):
            if isinstance(event, SFrameAssembled):
                events += self._open(event, now)
            else:
                events.append(event)
        return events

    def flush(self) -> list[RTPEvent]:
        """End of input: release what the codec reassembly still holds (per-packet content)."""
        return self.assembler.flush()

    def _refuse(self, err: Exception, run: SFrameAssembled) -> list[RTPEvent]:
        reason = getattr(err, "reason", "sframe")
        self.decrypt_dropped[reason] += 1
        return [PacketDropped(reason, run.ssrc, run.first_sequence_number, str(err))]

    def _open(self, run: SFrameAssembled, now: float | None) -> list[RTPEvent]:
        codec = self.payload_types.get(run.payload_type)
        if codec is None:
            err = UnknownPayloadType(f"payload type {run.payload_type} is not configured")
            return self._refuse(err, run)
        if run.packetized and run.packet_count > 1:
            err = UnsupportedFragmentation(f"T=1 ciphertext over {run.packet_count} packets")
            return self._refuse(err, run)
        try:
            plaintext = self._unprotect(run.ciphertext, run.ssrc)
        except self._errors as err:
            return self._refuse(err, run)
        self.stats["frames_decrypted"] += 1
        if run.packetized:
            return self.assembler.receive(_rebuild(run, plaintext), now)
        self.stats["frames_assembled"] += 1
        return [_raw_frame(run, codec, plaintext)]


def _rebuild(run: SFrameAssembled, payload: bytes) -> RtpPacket:
    """The codec RTP packet that per-packet SFrame protected (§5.2 step 13)."""
    packet = RtpPacket(
        payload_type=run.payload_type,
        marker=int(run.marker),
        sequence_number=run.first_sequence_number,
        timestamp=run.timestamp,
        ssrc=run.ssrc,
        payload=payload,
    )
    packet.extensions.audio_level = run.audio_level.as_aiortc() if run.audio_level else None
    packet.extensions.mid = run.mid
    return packet


def _raw_frame(run: SFrameAssembled, codec: Codec, plaintext: bytes) -> FrameAssembled:
    """The media frame of a raw (T=0) run: the plaintext with the RTP metadata (§5.2 step 12)."""
    return FrameAssembled(
        ssrc=run.ssrc,
        payload_type=run.payload_type,
        codec=codec,
        timestamp=run.timestamp,
        first_sequence_number=run.first_sequence_number,
        last_sequence_number=run.last_sequence_number,
        packet_count=run.packet_count,
        data=plaintext,
        marker=run.marker,
        payload_sizes=run.payload_sizes,
        audio_level=run.audio_level,
        mid=run.mid,
        arrival=run.arrival,
    )
