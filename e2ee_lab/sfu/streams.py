"""Per-stream state of the SFU core: a publisher stream and its sequence numbering per subscriber.

:class:`OutStream` keeps each outgoing stream's sequence numbers continuous across SFU drops and
insertions (RFC 3550 §5.1), so a subscriber sees upstream loss as a gap and an SFU drop as none.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from e2ee_lab.media.frame import Kind
from e2ee_lab.rtp.seqnum import SEQ_MOD, SequenceUnwrapper
from e2ee_lab.sfu.events import LegId


@dataclass(frozen=True)
class StreamInfo:
    """A publisher stream known to the core."""

    leg: LegId  # publishing leg
    ssrc: int  # publisher's SSRC
    kind: Kind  # "audio" or "video"


@dataclass
class Stream:
    """A publisher stream: its info, sequence unwrapping, last PLI and outgoing streams."""

    info: StreamInfo
    unwrapper: SequenceUnwrapper = field(default_factory=SequenceUnwrapper)
    last_pli: float | None = None
    outs: dict[LegId, OutStream] = field(default_factory=dict)  # subscriber -> its outgoing stream


class OutStream:
    """Sequence numbering of one (publisher stream, subscriber) pair.

    An original packet with extended sequence number ``ext`` gets slot
    ``base + (ext - first) - drops_before(ext) + inserts_before(ext)`` modulo 2^16. Drops and
    inserts only count when they happen at the head (beyond every slot already handed out), so a
    number once given never moves; both therefore stay sorted and only grow at the end. Drops are
    kept as runs of consecutive numbers: the loudest-speaker selection withholds a silent speaker's
    audio from every subscriber, 50 packets a second, and a list of every one grew without bound (a
    room of 50 could hold up to ~400 million entries after an hour: 47 withheld streams x 49
    subscribers x 50 a second).
    Packets inserted before the first original (a replay towards a new subscriber) take the first
    slots and push the originals back: they do not anchor the numbering, since the packet they copy
    can be far older than the stream's head.
    """

    __slots__ = ("ssrc", "base", "first", "highest", "drop_starts", "drop_ends", "prior_drops", "inserts",
                 "early_inserts")

    def __init__(self, ssrc: int, base: int) -> None:
        self.ssrc = ssrc
        self.base = base
        self.first: int | None = None
        self.highest = 0
        # Run i of dropped originals: drop_starts[i] <= ext < drop_ends[i], after prior_drops[i] drops.
        self.drop_starts: list[int] = []
        self.drop_ends: list[int] = []
        self.prior_drops: list[int] = []
        self.inserts: list[int] = []
        self.early_inserts = 0

    def seq_for(self, ext: int) -> int:
        """The slot of original packet ``ext`` (stable: a duplicate gets the same number)."""
        first = self.first
        if first is None:
            self._anchor(ext)
            first = ext
        if ext > self.highest:
            self.highest = ext
        if self.drop_starts or self.inserts:
            return self._slot(ext)
        return (self.base + ext - first) % SEQ_MOD

    def fresh(self, ext: int) -> int:
        """A new slot after everything handed out so far (replayed or injected packet)."""
        if self.first is None:
            self.early_inserts += 1
            return (self.base + self.early_inserts - 1) % SEQ_MOD
        seq = self._slot(self.highest + 1)
        self.inserts.append(self.highest)
        return seq

    def drop(self, ext: int) -> None:
        """Original ``ext`` will not be sent: close its gap when it is at the head."""
        self._anchor(ext)
        if ext > self.highest:
            ends = self.drop_ends
            if ends and ends[-1] == ext:  # the run goes on
                ends[-1] = ext + 1
            else:
                self.prior_drops.append(self.dropped)
                self.drop_starts.append(ext)
                ends.append(ext + 1)
            self.highest = ext

    @property
    def dropped(self) -> int:
        """How many originals were dropped at the head so far."""
        if not self.drop_starts:
            return 0
        return self.prior_drops[-1] + self.drop_ends[-1] - self.drop_starts[-1]

    def _anchor(self, ext: int) -> None:
        if self.first is None:
            self.first = ext
            self.highest = ext - 1
            self.inserts = [ext - 1] * self.early_inserts

    def _slot(self, ext: int) -> int:
        assert self.first is not None
        shift = bisect_left(self.inserts, ext) - self._drops_below(ext)
        return (self.base + ext - self.first + shift) % SEQ_MOD

    def _drops_below(self, ext: int) -> int:
        i = bisect_left(self.drop_starts, ext) - 1  # the last run that starts below ext
        if i < 0:
            return 0
        return self.prior_drops[i] + min(self.drop_ends[i], ext) - self.drop_starts[i]
