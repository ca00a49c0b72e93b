"""Notebook 04 (group key agreement): the scripted key timeline, the tables, the MITM scenario, the checks.

The scripted call runs :class:`e2ee_lab.crypto.keys.Group` (real X25519/P-256, HKDF, AES-GCM key
messages and SFrame frames, RFC 9605 §5.1 sender keys) and tries every frame at every listener,
members or not, so the notebook can show who can decrypt which frames across joins and leaves, and
what the switch-over delay and the grace period of :class:`~e2ee_lab.crypto.keys.RekeyPolicy` cost.
The tasks' checks recompute their answers from the same code.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pandas as pd

from e2ee_lab.crypto.keys import (
    MITM, TRANSITIONS, Curve, Group, KeyMessage, RekeyPolicy, frame_origin,
)
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.labs import Feedback, correct, not_yet, unanswered


# --- the scripted call behind the key timeline --------------------------------------------------


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
    return FrameOutcome(number, sender, sent, frame_origin(frame)[0], who, now, member_at_send, ok, reason)


# --- tables for the notebook ------------------------------------------------------------------------


def _name(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else str(index)


def timeline_table(timeline: Timeline) -> pd.DataFrame:
    """One row per (frame, listener), columns as :class:`FrameOutcome`."""
    return pd.DataFrame([asdict(o) for o in timeline.frames])


def who_reads_what(timeline: Timeline) -> pd.DataFrame:
    """Listeners × epochs: "decrypted / reached" frame counts, the table form of the timeline figure."""
    df = timeline_table(timeline)
    counts = df.groupby(["receiver", "epoch"])["decrypted"].agg(["sum", "count"])
    cells = counts["sum"].astype(str) + " / " + counts["count"].astype(str)
    return cells.unstack("epoch").fillna("-").rename_axis(columns="epoch of the frame's key")


def undecrypted_by_members(timeline: Timeline) -> int:
    """Frames a listener failed to decrypt although it was in the call when they were sent."""
    return sum(1 for o in timeline.frames if o.member_at_send and not o.decrypted)


def relay_table(group: Group) -> pd.DataFrame:
    """What the SFU carried for key agreement: header fields in clear, the rest ciphertext."""
    rows = []
    for recipient, data in group.relay:
        msg = KeyMessage.parse(data)
        rows.append({"from": _name(msg.sender), "to": _name(recipient), "seq": msg.seq, "epoch": msg.epoch,
                     "bytes": len(data), "ciphertext (start)": msg.ciphertext[:12].hex() + "…"})
    return pd.DataFrame(rows)


def transition_table() -> pd.DataFrame:
    """The member state machine of :data:`e2ee_lab.crypto.keys.TRANSITIONS` as rows."""
    rows = [(state.name, trigger.value, new.name) for (state, trigger), new in TRANSITIONS.items()]
    return pd.DataFrame(rows, columns=["state", "event", "next state"])


def mitm_scenario(*, curve: Curve = Curve.X25519, seed: int = 5) -> tuple[Group, MITM, pd.DataFrame]:
    """A call of A, B and C whose signalling substitutes keys between A and B; who reads each frame.

    Returns the group, the attacker and a table: for a frame from each member, whether each other
    member and the attacker decrypt it.
    """
    group = Group(curve=curve, policy=RekeyPolicy(rekey_interval=None), seed=seed)
    mitm = MITM(group, victims={0, 1}, seed=seed + 1)
    for _ in range(3):
        group.join(0.0)
    rows = []
    for sender in sorted(group.members):
        frame = group.send_frame(sender, f"hello from {_name(sender)}".encode(), 5.0)
        row = {"frame from": _name(sender)}
        for receiver in sorted(group.members):
            row[f"{_name(receiver)} decrypts"] = "-" if receiver == sender else \
                _reads(lambda: group.receive_frame(receiver, frame, 5.0))
        row["attacker decrypts"] = _reads(lambda: mitm.unprotect(frame))
        rows.append(row)
    return group, mitm, pd.DataFrame(rows)


def _reads(attempt: Callable[[], bytes]) -> bool:
    try:
        attempt()
        return True
    except SFrameError:
        return False


def safety_table(group: Group) -> pd.DataFrame:
    """For each pair, the 12 digit groups of the safety number each side computes, and whether they match."""
    rows = {}
    for a, b in itertools.combinations(sorted(group.members), 2):
        ab, ba = group.members[a].safety_number(b), group.members[b].safety_number(a)
        for seer, number in ((a, ab), (b, ba)):
            rows[f"{_name(a)}–{_name(b)}", f"{_name(seer)} sees"] = number.groups() + [ab == ba]
    columns = [str(i) for i in range(1, 13)] + ["match"]
    index = pd.MultiIndex.from_tuples(list(rows), names=["pair", "seen by"])
    return pd.DataFrame(list(rows.values()), index=index, columns=columns)


# --- task checks --------------------------------------------------------------------------------------


def _leaver_reads_after_leaving(timeline: Timeline, leaver: str = "B") -> dict[int, float]:
    left = timeline.presence[leaver][1]
    return {o.frame: o.sent_at for o in timeline.frames
            if o.receiver == leaver and o.decrypted and left is not None and o.sent_at >= left}


def check_leaver_frames(answer: set[int] | None) -> Feedback:
    """Task 1: the frame numbers B decrypts although they were sent after B left (default timeline)."""
    if answer is None:
        return unanswered("Task 1")
    timeline = simulate_timeline()
    expected, left = _leaver_reads_after_leaving(timeline), timeline.presence["B"][1]
    sent = {o.frame: o.sent_at for o in timeline.frames}
    answer = {int(x) for x in answer}
    early = sorted(f for f in answer if f in sent and sent[f] < left)
    if early:
        return not_yet(f"frames {early[:5]} were sent before B left at {left:.0f} s; count only later ones.")
    extra, missing = sorted(answer - set(expected)), sorted(set(expected) - answer)
    if extra:
        return not_yet(f"B cannot read frames {extra[:5]}: they were sent after the others switched to their "
                       f"fresh keys. Filter the table on receiver == 'B' and decrypted.")
    if missing:
        return not_yet(f"you found {len(answer)} of {len(expected)} frames. Look at every sender, not just one, "
                       "and at the time between B's leave and the dashed switch-over.")
    last = max(expected.values())
    return correct(f"B reads the {len(expected)} frames sent from {left:.0f} s to {last:.1f} s: the others keep "
                   f"their old keys for switch_delay = {timeline.policy.switch_delay:g} s so the fresh keys can "
                   "reach everyone first. That delay is the leaver's window; shorter is safer, too short drops "
                   "frames at members whose key message is late.")


def check_grace_losses(answer: int | None) -> Feedback:
    """Task 2: how many more frames members fail to decrypt with grace = 0 than with the default."""
    if answer is None:
        return unanswered("Task 2")
    base = simulate_timeline()
    zero = simulate_timeline(policy=RekeyPolicy(grace=0.0))
    expected = undecrypted_by_members(zero) - undecrypted_by_members(base)
    if int(answer) == expected:
        changes = sum(1 for _, start, _, _ in base.epochs if start > base.start)
        return correct(f"{expected} frames: at each of the {changes} key changes, the old-key frames sent in the "
                       f"last {base.latency:g} s before the switch-over are still in flight when a receiver with "
                       "grace 0 deletes the old key. The grace period keeps old keys for the frames in flight.")
    if int(answer) == 0:
        return not_yet("with grace 0 a receiver deletes an old key the moment its sender switches; is any "
                       "frame encrypted just before that still travelling?")
    if int(answer) == undecrypted_by_members(zero):
        return not_yet("that count includes the frames D misses right after joining, which happen with any "
                       "grace; subtract the default timeline's count.")
    return not_yet(f"not {answer}. Count, for each key change, the frames sent less than the latency "
                   f"({base.latency:g} s) before the switch-over, per sender→receiver pair, or compare "
                   "undecrypted_by_members() of the two timelines.")


def check_mitm_detector(detector: Callable[[Group, int, int], bool | None] | None) -> Feedback:
    """Task 3: ``detector(group, a, b)`` says True exactly when a and b see different safety numbers."""
    if detector is None:
        return unanswered("Task 3")
    honest = Group(policy=RekeyPolicy(rekey_interval=None), seed=41)
    attacked, _, _ = mitm_scenario(seed=43)
    for _ in range(3):
        honest.join(0.0)
    try:
        verdicts = {(name, a, b): detector(group, a, b) for name, group in (("honest", honest), ("attacked", attacked))
                    for a, b in ((0, 1), (0, 2), (1, 2))}
    except Exception as err:  # a student's function may raise anything; report it as a hint
        return not_yet(f"your function raised {type(err).__name__}: {err}")
    if any(v is None for v in verdicts.values()):
        return unanswered("Task 3")
    if any(verdicts[("honest", a, b)] for a, b in ((0, 1), (0, 2), (1, 2))):
        return not_yet("it flags a pair in the honest call: both sides of an honest pair compute the same number.")
    if not verdicts[("attacked", 0, 1)]:
        return not_yet("it misses the attack on A–B: compare group.members[a].safety_number(b) with "
                       "group.members[b].safety_number(a).")
    if verdicts[("attacked", 0, 2)] or verdicts[("attacked", 1, 2)]:
        return not_yet("it flags A–C or B–C, which the attacker left alone: compare the two numbers of one pair.")
    return correct("A and B compute different numbers because each pinned an attacker key for the other; the "
                   "untouched pairs match. Reading the numbers out over another channel is what exposes a "
                   "malicious signalling server.")
