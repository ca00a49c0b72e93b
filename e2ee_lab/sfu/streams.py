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
    number once given never moves; both lists therefore stay sorted and only grow by appending.
    Packets inserted before the first original (a replay towards a new subscriber) take the first
    slots and push the originals back: they do not anchor the numbering, since the packet they copy
    can be far older than the stream's head.
    """

    __slots__ = ("ssrc", "base", "first", "highest", "drops", "inserts", "early_inserts")

    def __init__(self, ssrc: int, base: int) -> None:
        self.ssrc = ssrc
        self.base = base
        self.first: int | None = None
        self.highest = 0
        self.drops: list[int] = []
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
        if self.drops or self.inserts:
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
            self.drops.append(ext)
            self.highest = ext

    def _anchor(self, ext: int) -> None:
        if self.first is None:
            self.first = ext
            self.highest = ext - 1
            self.inserts = [ext - 1] * self.early_inserts

    def _slot(self, ext: int) -> int:
        assert self.first is not None
        shift = bisect_left(self.inserts, ext) - bisect_left(self.drops, ext)
        return (self.base + ext - self.first + shift) % SEQ_MOD
