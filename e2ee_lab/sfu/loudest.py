"""Which audio an SFU forwards in a big room: the N loudest speakers, by their RFC 6464 audio level.

In a room of many, forwarding every microphone to everyone costs each subscriber N-1 audio streams
that are almost all silence. Jitsi Videobridge can forward the audio of the few loudest speakers
only (its `jvb-audio-last-n` setting, off by default: -1), choosing them from the RFC 6464 ``ssrc-audio-level`` header extension each
publisher puts on every audio packet (a 7-bit level in -dBov, 0 loudest, 127 silence; RFC 6464 §3),
which the SFU can read because it travels outside the media payload, in the clear even when the
frames are end-to-end encrypted. That is also why the lab's metadata lesson (Lab 06) has a design
reason: an SFU that selects speakers needs the level.

:class:`LoudestSpeakers` is sans-I/O: :meth:`LoudestSpeakers.heard` takes a stream's level and
``now`` and says whether that packet is forwarded. Each stream's loudness (``127 - level``) is
smoothed (exponential moving average, weight :data:`SMOOTHING` for the new packet); every
:data:`RESELECT_INTERVAL` s, and when a stream is first heard, the ``n`` loudest streams heard
within :data:`STALE_AFTER` s become the selection (ties: the stream heard first wins), so the set
does not flap packet by packet. A packet
without the extension counts as silence. The core (:class:`~e2ee_lab.sfu.core.SFUCore`) uses it
when the room has more than ``loudest_above`` legs (:data:`e2ee_lab.config.LOUDEST_ROOM_SIZE`).
"""

from __future__ import annotations

from dataclasses import dataclass

SILENCE = 127  # RFC 6464 §3: the level of digital silence (-127 dBov)
SMOOTHING = 0.2  # weight of a new packet's loudness in the moving average (20 ms packets: ~0.1 s)
RESELECT_INTERVAL = 0.2  # seconds between choices of the loudest streams
STALE_AFTER = 1.0  # seconds without a packet after which a stream is no longer a candidate
DEFAULT_LOUDEST = 3  # N: a handful of simultaneous speakers is all a listener follows


@dataclass
class _Speaker:
    loudness: float  # smoothed 127 - level
    last_heard: float
    order: int  # first heard: the tie-break


class LoudestSpeakers:
    """Choose the ``n`` loudest audio streams from their RFC 6464 levels (module docstring).

    Args:
        n: how many streams are forwarded (>= 1).

    Raises:
        ValueError: ``n`` below 1.

    Counters: ``selection_changes`` (choices that replaced a selected stream), ``packets_forwarded`` and
    ``packets_withheld`` (packets :meth:`heard` said yes / no to).
    """

    def __init__(self, n: int = DEFAULT_LOUDEST) -> None:
        if n < 1:
            raise ValueError(f"the loudest-speaker selection needs n >= 1, not {n}")
        self.n = n
        self.selected: frozenset[int] = frozenset()
        self.selection_changes = 0
        self.packets_forwarded = 0
        self.packets_withheld = 0
        self._speakers: dict[int, _Speaker] = {}
        self._next_choice: float | None = None

    def heard(self, ssrc: int, level: int | None, now: float) -> bool:
        """An audio packet of stream ``ssrc`` with RFC 6464 ``level`` (None: no extension) arrived
        at ``now``; True if it is to be forwarded (its stream is among the selected)."""
        loudness = SILENCE - (SILENCE if level is None else min(max(level, 0), SILENCE))
        speaker = self._speakers.get(ssrc)
        if speaker is None:  # a new stream is a candidate at once
            self._speakers[ssrc] = _Speaker(float(loudness), now, len(self._speakers))
        else:
            speaker.loudness += SMOOTHING * (loudness - speaker.loudness)
            speaker.last_heard = now
        if speaker is None or self._next_choice is None or now >= self._next_choice:
            self._choose(now)
        if ssrc in self.selected:
            self.packets_forwarded += 1
            return True
        self.packets_withheld += 1
        return False

    def forget(self, ssrc: int) -> None:
        """Stream ``ssrc`` ended (its leg left): no longer a candidate."""
        self._speakers.pop(ssrc, None)
        self.selected = self.selected - {ssrc}

    def _choose(self, now: float) -> None:
        live = [(s, x) for s, x in self._speakers.items() if now - x.last_heard <= STALE_AFTER]
        live.sort(key=lambda item: (-item[1].loudness, item[1].order))
        chosen = frozenset(s for s, _ in live[: self.n])
        if self.selected - chosen:  # a selected speaker was replaced (filling free places is not a change)
            self.selection_changes += 1
        self.selected = chosen
        self._next_choice = now + RESELECT_INTERVAL

    def loudness(self) -> dict[int, float]:
        """Each candidate stream's smoothed loudness (127 - level; higher is louder)."""
        return {s: round(x.loudness, 2) for s, x in self._speakers.items()}
