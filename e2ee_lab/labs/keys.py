"""Notebook 04 (group key agreement): the scripted key timeline, the tables, the hostile-server scenarios, the checks.

The scripted call is :func:`~e2ee_lab.crypto.keys.timeline.simulate_timeline` (the key simulation:
:class:`e2ee_lab.crypto.keys.Group` with real X25519/P-256, HKDF, AES-GCM key messages and SFrame
frames, RFC 9605 §5.1 sender keys, every frame tried at every listener, members or not), so the
notebook can show who can decrypt which frames across joins and leaves, and what the switch-over
delay and the grace period of :class:`~e2ee_lab.crypto.keys.RekeyPolicy` cost; this module turns
its :class:`~e2ee_lab.crypto.keys.timeline.Timeline` into tables. The hostile-server scenarios run
the same in-memory group against the fixed members and the naive ones
(:meth:`~e2ee_lab.crypto.keys.RekeyPolicy.naive`): key substitution (:func:`mitm_scenario`), a
ghost in a REKEY (:func:`ghost_in_rekey`), a ghost by a JOIN shown to one member
(:func:`ghost_by_join`, :func:`group_code_table`), a key message replayed from an earlier call
(:func:`replay_from_earlier_call`), a frame on another member's stream and a member forging as
another (:func:`attribution_table`), and a leaver's forgeries after the switch
(:func:`leaver_forgeries`). The tasks' checks recompute their answers from the same code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict

import pandas as pd

from e2ee_lab.crypto.keys import MITM, TRANSITIONS, Curve, Group, KeyMessage, RekeyPolicy
from e2ee_lab.crypto.keys.timeline import DEFAULT_SCRIPT, FrameOutcome, Timeline, simulate_timeline
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import call_safely, whole_number
from e2ee_lab.labs.key_attacks import (
    attribution_table, ghost_by_join, ghost_in_rekey, group_code_table, leaver_forgeries, replay_from_earlier_call,
)

__all__ = [  # the timeline's names (the notebook calls lab.simulate_timeline), and this module's own
    "DEFAULT_SCRIPT", "FrameOutcome", "Timeline", "simulate_timeline",
    "timeline_table", "who_reads_what", "undecrypted_by_members", "relay_table", "transition_table",
    "mitm_scenario", "safety_table", "check_leaver_frames", "check_grace_losses", "check_mitm_detector",
    # the hostile-server scenarios (e2ee_lab.labs.key_attacks)
    "ghost_in_rekey", "ghost_by_join", "group_code_table", "replay_from_earlier_call", "attribution_table",
    "leaver_forgeries",
]
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
    """What the SFU carried for key agreement: header fields in clear (the recipient's call session
    among them), the rest ciphertext."""
    rows = []
    for recipient, data in group.relay:
        msg = KeyMessage.parse(data)
        rows.append({"from": _name(msg.sender), "to": _name(recipient), "session (start)": msg.session[:4].hex() + "…",
                     "seq": msg.seq, "epoch": msg.epoch, "bytes": len(data),
                     "ciphertext (start)": msg.ciphertext[:12].hex() + "…"})
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


@check
def check_leaver_frames(answer: set[int] | None) -> Feedback:
    """Task 1: the frame numbers B decrypts although they were sent after B left (default timeline)."""
    if answer is None:
        return unanswered("Task 1")
    numbers = [whole_number(x) for x in answer] if isinstance(answer, (set, list, tuple)) else [None]
    if None in numbers:
        return not_yet("the answer is a set of frame numbers (whole numbers), e.g. {10, 11}.")
    timeline = simulate_timeline()
    expected, left = _leaver_reads_after_leaving(timeline), timeline.presence["B"][1]
    sent = {o.frame: o.sent_at for o in timeline.frames}
    answer = set(numbers)
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


@check
def check_grace_losses(answer: int | None) -> Feedback:
    """Task 2: how many more frames members fail to decrypt with grace = 0 than with the default."""
    if answer is None:
        return unanswered("Task 2")
    answer = whole_number(answer)
    if answer is None:
        return not_yet("your prediction is a whole number of frames, e.g. 3.")
    base = simulate_timeline()
    zero = simulate_timeline(policy=RekeyPolicy(grace=0.0))
    expected = undecrypted_by_members(zero) - undecrypted_by_members(base)
    if answer == expected:
        changes = sum(1 for _, start, _, _ in base.epochs if start > base.start)
        return correct(f"{expected} frames: at each of the {changes} key changes, the old-key frames sent in the "
                       f"last {base.latency:g} s before the switch-over are still in flight when a receiver with "
                       "grace 0 deletes the old key. The grace period keeps old keys for the frames in flight.")
    if answer == 0:
        return not_yet("with grace 0 a receiver deletes an old key the moment its sender switches; is any "
                       "frame encrypted just before that still travelling?")
    if answer == undecrypted_by_members(zero):
        return not_yet("that count includes the frames D misses right after joining, which happen with any "
                       "grace; subtract the default timeline's count.")
    return not_yet(f"not {answer}. Count, for each key change, the frames sent less than the latency "
                   f"({base.latency:g} s) before the switch-over, per sender→receiver pair, or compare "
                   "undecrypted_by_members() of the two timelines.")


MITM_PAIRS = ((0, 1), (0, 2), (1, 2))


def probe_mitm_detector(detector: Callable[[Group, int, int], bool | None], *lab_objects) -> dict:
    """Task 3's probe: the student's detector on every pair of an honest and an attacked group."""
    honest = Group(policy=RekeyPolicy(rekey_interval=None), seed=41)
    attacked, _, _ = mitm_scenario(seed=43)
    for _ in range(3):
        honest.join(0.0)
    return {f"{name} {a}-{b}": call_safely(detector, group, a, b)
            for name, group in (("honest", honest), ("attacked", attacked)) for a, b in MITM_PAIRS}


@check(probe=probe_mitm_detector)
def check_mitm_detector(detector: Callable[[Group, int, int], bool | None] | None) -> Feedback:
    """Task 3: ``detector(group, a, b)`` says True exactly when a and b see different safety numbers (a
    build task: the check sees what :func:`probe_mitm_detector` recorded)."""
    if detector is None:
        return unanswered("Task 3")
    if not isinstance(detector, Probed) or not isinstance(detector.outputs, dict):
        return not_yet("write a function of (group, a, b) that returns True or False.")
    verdicts = {}
    for name in ("honest", "attacked"):
        for a, b in MITM_PAIRS:
            out = detector.outputs.get(f"{name} {a}-{b}")
            if not isinstance(out, dict) or ("value" not in out and "raised" not in out):
                return not_yet("write a function of (group, a, b) that returns True or False.")
            if "raised" in out:
                return not_yet(f"your function raised {out['raised']}")
            verdicts[(name, a, b)] = out["value"]
    if any(v is None for v in verdicts.values()):
        return unanswered("Task 3")
    if any(verdicts[("honest", a, b)] for a, b in MITM_PAIRS):
        return not_yet("it flags a pair in the honest call: both sides of an honest pair compute the same number.")
    if not verdicts[("attacked", 0, 1)]:
        return not_yet("it misses the attack on A–B: compare what each member of the pair computes for the other.")
    if verdicts[("attacked", 0, 2)] or verdicts[("attacked", 1, 2)]:
        return not_yet("it flags A–C or B–C, which the attacker left alone: compare the two numbers of one pair.")
    return correct("A and B compute different numbers because each pinned an attacker key for the other; the "
                   "untouched pairs match. Reading the numbers out over another channel is what exposes a "
                   "malicious signalling server.")
