"""The scripted key timeline: a simulated call, every frame tried at every listener (RFC 9605 §5.1).

:func:`simulate_timeline` runs :class:`~e2ee_lab.crypto.keys.simulation.Group` (real X25519/P-256,
HKDF, AES-GCM key messages and SFrame frames, RFC 9605 §5.1 sender keys) through a script of joins
and leaves and tries every frame at every listener, members or not, so a reader sees who can
decrypt which frames across joins and leaves, and what the switch-over delay and the grace period
of :class:`~e2ee_lab.crypto.keys.roster.RekeyPolicy` cost. The result is a :class:`Timeline` of
:class:`FrameOutcome` rows, which notebook 04 tabulates (:mod:`e2ee_lab.labs.keys`) and draws
(:func:`e2ee_lab.analysis.plots.key_timeline`). Sans-I/O: the clock is the script's.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from e2ee_lab.crypto.keys.identity import Curve
from e2ee_lab.crypto.keys.roster import RekeyPolicy
from e2ee_lab.crypto.keys.sender_keys import frame_origin
from e2ee_lab.crypto.keys.simulation import Group
from e2ee_lab.crypto.sframe import SFrameError


@dataclass(frozen=True)
class FrameOutcome:
    """One frame as one listener fared with it."""

    frame: int  # frame number in sending order
    sender: str  # sender's name
    sent_at: float  # seconds
    epoch: int  # epoch of the key it was encrypted with
    receiver: str  # listener's name
    attempted_at: float  # when the listener tried to decrypt it
    member_at_send: bool  # the listener was in the call when the frame was sent
    decrypted: bool
    reason: str  # "" when decrypted, else the SFrameError reason


@dataclass(frozen=True)
class Timeline:
    """The result of :func:`simulate_timeline`."""

    frames: tuple[FrameOutcome, ...]
    epochs: tuple[tuple[int, float, str, str], ...]  # (epoch, start, change, subject name or "")
    presence: dict[str, tuple[float, float | None]]  # name -> (joined, left or None)
    policy: RekeyPolicy
    latency: float
    frame_interval: float
    start: float
    end: float


DEFAULT_SCRIPT: tuple[tuple[float, str, str], ...] = (
    (0.0, "join", "A"), (0.0, "join", "B"), (0.0, "join", "C"), (10.0, "join", "D"), (20.0, "leave", "B"))


def simulate_timeline(script: Sequence[tuple[float, str, str]] = DEFAULT_SCRIPT, *, start: float = 5.0,
                      end: float = 30.0, policy: RekeyPolicy = RekeyPolicy(), frame_interval: float = 0.2,
                      latency: float = 0.3, curve: Curve = Curve.X25519, seed: int | None = 0) -> Timeline:
    """Run a call from ``script`` ((time, "join"|"leave", name) steps) and try every frame at every listener.

    Each member sends a frame every ``frame_interval`` seconds from ``start`` to ``end`` while in the
    call (the default ``start`` lets the first members' keys settle); every frame reaches
    every name in the script ``latency`` seconds later (as if the SFU forwarded it to everyone). A
    leaver keeps all its keys; a frame that reached someone before they joined is retried, with
    their keys, the moment they join (an SFU recording it for them).
    """
    group, names, presence = Group(curve=curve, policy=policy, seed=seed), {}, {}
    order = itertools.count()  # ties: arrivals, then roster changes, then sends, each in FIFO order
    queue = [(step[0], 1, next(order), ("roster",) + tuple(step[1:])) for step in script]
    steps = range(int((end - start) / frame_interval) + 1)
    queue += [(round(start + k * frame_interval, 9), 2, next(order), ("send",)) for k in steps]
    heapq.heapify(queue)
    outcomes: list[FrameOutcome] = []
    waiting: dict[str, list[tuple]] = {}
    listeners = [name for _, _, name in script]
    while queue:
        now, _, _, item = heapq.heappop(queue)
        if item[0] == "roster":
            _scripted_change(group, names, presence, item[1], item[2], now)
            for frame_args in waiting.pop(item[2], []) if item[1] == "join" else []:
                outcomes.append(_attempt(group, names, presence, *frame_args, now))
        elif item[0] == "send":
            for name in [n for n, idx in names.items() if idx in group.members]:
                frame = group.send_frame(names[name], b"frame from " + name.encode(), now)
                number = len(group.frames) - 1
                for who in dict.fromkeys(listeners):
                    if who != name:
                        heapq.heappush(queue, (now + latency, 0, next(order), ("arrive", number, name, now, frame, who)))
        else:
            _, number, name, sent, frame, who = item
            args = (number, name, sent, frame, who)
            if who in names:
                outcomes.append(_attempt(group, names, presence, *args, now))
            else:
                waiting.setdefault(who, []).append(args)
        group.tick(now)
    epochs = tuple((e, t, change.value, _name_of(names, subject)) for e, t, change, subject in group.epochs)
    return Timeline(tuple(sorted(outcomes, key=lambda o: (o.frame, o.receiver))), epochs, presence, policy,
                    latency, frame_interval, start, end)


def _name_of(names: dict[str, int], index: int | None) -> str:
    return next((n for n, i in names.items() if i == index), "")


def _scripted_change(group: Group, names: dict, presence: dict, action: str, name: str, now: float) -> None:
    if action == "join":
        names[name] = group.join(now)
        presence[name] = (now, None)
    elif action == "leave":
        group.leave(names[name], now)
        presence[name] = (presence[name][0], now)
    else:
        raise ValueError(f"script action must be 'join' or 'leave', got {action!r}")


def _attempt(group: Group, names: dict, presence: dict, number: int, sender: str, sent: float,
             frame: bytes, who: str, now: float) -> FrameOutcome:
    joined, left = presence[who]
    member_at_send = joined <= sent and (left is None or sent < left)
    try:
        group.receive_frame(names[who], frame, now)
        ok, reason = True, ""
    except SFrameError as err:
        ok, reason = False, err.reason
    return FrameOutcome(number, sender, sent, frame_origin(frame).epoch, who, now, member_at_send, ok, reason)
