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
(:func:`leaver_forgeries`). The tasks' checks recompute their answers from the same code: Task 2's
prediction is stored by :func:`predict` (which notes whether a timeline with another grace period ran
first), Task 3's detector runs on calls whose attacked pair is drawn per student, and Task 4's roster
check on per-student updates judged by the members' own
:func:`~e2ee_lab.crypto.keys.check_member_set`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import asdict

import pandas as pd

from e2ee_lab.crypto.keys import (MITM, TRANSITIONS, Change, Curve, Group, IdentityKeyPair, KeyMessage, RekeyPolicy,
                                  RosterEntry, RosterUpdate, UnexpectedRoster, check_member_set)
from e2ee_lab.crypto.keys import timeline as _timeline
from e2ee_lab.crypto.keys.timeline import DEFAULT_SCRIPT, FrameOutcome, Timeline
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import call_safely, whole_number
from e2ee_lab.labs.key_attacks import (
    attribution_table, ghost_by_join, ghost_in_rekey, group_code_table, leaver_forgeries, replay_from_earlier_call,
)

__all__ = [  # the timeline's names (the notebook calls lab.simulate_timeline), and this module's own
    "DEFAULT_SCRIPT", "FrameOutcome", "Timeline", "simulate_timeline",
    "timeline_table", "who_reads_what", "undecrypted_by_members", "relay_table", "transition_table",
    "mitm_scenario", "safety_table", "predict", "check_leaver_frames", "check_grace_losses", "check_mitm_detector",
    "check_roster_check",
    # the hostile-server scenarios (e2ee_lab.labs.key_attacks)
    "ghost_in_rekey", "ghost_by_join", "group_code_table", "replay_from_earlier_call", "attribution_table",
    "leaver_forgeries",
]
# --- tables for the notebook ------------------------------------------------------------------------

_policies_run: list[str] = []  # the grace periods of this kernel's timelines other than the default (Task 2)


@functools.wraps(_timeline.simulate_timeline)
def simulate_timeline(*args, **kwargs) -> Timeline:
    # the same function, noting a non-default grace period for predict()
    timeline = _timeline.simulate_timeline(*args, **kwargs)
    if timeline.policy.grace != RekeyPolicy().grace:
        _policies_run.append(f"grace {timeline.policy.grace:g} s")
    return timeline


def predict(prediction: int | None) -> int | None:
    """Take Task 2's prediction and say whether a timeline with another grace period ran before it;
    returns it. The note is printed, so the saved notebook shows whether the prediction came first."""
    if prediction is None:
        print("no prediction stored yet: replace the None, then run this cell before the next one.")
    elif _policies_run:
        print(f"prediction stored AFTER a timeline with {_policies_run[0]} ran in this kernel: for a real "
              "prediction, restart the kernel and run the notebook down to this cell.")
    else:
        print("prediction stored before any timeline with another grace period ran.")
    return prediction


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
    timeline = _timeline.simulate_timeline()
    expected, left = _leaver_reads_after_leaving(timeline), timeline.presence["B"][1]
    sent = {o.frame: o.sent_at for o in timeline.frames}
    answer = set(numbers)
    if any(f in sent and sent[f] < left for f in answer):
        return not_yet(f"your set holds frames sent before B left at {left:.0f} s; the task asks only for later "
                       "ones (the sent_at column).")
    if answer - set(expected):
        return not_yet("your set holds frames B does not decrypt, or frames that are not in B's rows: keep only "
                       "B's rows (receiver == 'B') where decrypted is True.")
    if set(expected) - answer:
        return not_yet("your set misses frames B decrypts after leaving. Look at every sender, not just one, "
                       "and at the whole time between B's leave and the dashed switch-over.")
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
    base = _timeline.simulate_timeline()
    zero = _timeline.simulate_timeline(policy=RekeyPolicy(grace=0.0))
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


def _mitm_groups() -> tuple[Group, Group, tuple[int, int]]:
    """Task 3's calls, drawn for this student: an honest group, an attacked one, and its victim pair."""
    p = params("04")
    victims = p.choice("task3 victims", MITM_PAIRS, MITM_PAIRS[0])
    honest = Group(policy=RekeyPolicy(rekey_interval=None), seed=p.seed("task3 honest", 41))
    for _ in range(3):
        honest.join(0.0)
    attacked = Group(policy=RekeyPolicy(rekey_interval=None), seed=p.seed("task3 attacked", 43))
    MITM(attacked, victims=set(victims), seed=p.seed("task3 attacker", 44))
    for _ in range(3):
        attacked.join(0.0)
    return honest, attacked, victims


def probe_mitm_detector(detector: Callable[[Group, int, int], bool | None], *lab_objects) -> dict:
    """Task 3's probe: the student's detector on every pair of this student's honest and attacked groups."""
    honest, attacked, _ = _mitm_groups()
    return {f"{name} {a}-{b}": call_safely(detector, group, a, b)
            for name, group in (("honest", honest), ("attacked", attacked)) for a, b in MITM_PAIRS}


@check(probe=probe_mitm_detector)
def check_mitm_detector(detector: Callable[[Group, int, int], bool | None] | None) -> Feedback:
    """Task 3: ``detector(group, a, b)`` says True exactly when a and b see different safety numbers (a
    build task: the check sees what :func:`probe_mitm_detector` recorded; the attacked pair is drawn
    per student)."""
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
    if any(not isinstance(v, bool) for v in verdicts.values()):
        return not_yet("return True or False, not another value.")
    victims = params("04").choice("task3 victims", MITM_PAIRS, MITM_PAIRS[0])
    if any(verdicts[("honest", a, b)] for a, b in MITM_PAIRS):
        return not_yet("it flags a pair in the honest call: both sides of an honest pair compute the same number.")
    if not verdicts[("attacked", *victims)]:
        return not_yet("it misses the attacked pair of the second call: compare what each member of the pair "
                       "computes for the other.")
    if any(verdicts[("attacked", a, b)] for a, b in MITM_PAIRS if (a, b) != victims):
        return not_yet("it flags a pair the attacker left alone: compare the two numbers of one pair.")
    return correct("the attacked pair computes different numbers because each pinned an attacker key for the "
                   "other; the untouched pairs match. Reading the numbers out over another channel is what "
                   "exposes a malicious signalling server.")


# --- Task 4: the roster check (build) -------------------------------------------------------------------

#: Task 4's kinds of roster update: (change, what the server did), honest ones twice.
ROSTER_KINDS = (
    "rekey", "rekey", "rekey, ghost", "rekey, member missing", "rekey with a subject", "rekey, index twice",
    "join", "join", "join, ghost", "join of a member", "join, newcomer not listed",
    "leave", "leave", "leave of a stranger", "leave, leaver still listed", "leave, ghost for the leaver",
)
_ROSTER_HINTS = {
    "rekey": "it refused a genuine REKEY, which lists exactly the members already there (in any order: compare "
             "sets, not lists).",
    "join": "it refused a genuine JOIN, which lists the members already there and the newcomer (in any order).",
    "leave": "it refused a genuine LEAVE, which lists the members already there but the leaver (in any order).",
    "rekey, ghost": "it accepted a REKEY that lists someone nobody saw join: a ghost. A REKEY keeps the member set.",
    "rekey, member missing": "it accepted a REKEY that drops a member without a LEAVE: a REKEY keeps the member set.",
    "rekey with a subject": "it accepted a REKEY that names a subject: only a JOIN or a LEAVE has one.",
    "rekey, index twice": "it accepted an update that lists one index twice: two entries for one member are two "
                          "keys to seal to, one of them perhaps the server's.",
    "join, ghost": "it accepted a JOIN that lists the newcomer and one more: a JOIN adds exactly its subject.",
    "join of a member": "it accepted a JOIN of someone already in the call: the subject of a JOIN must be new.",
    "join, newcomer not listed": "it accepted a JOIN that does not list its own newcomer.",
    "leave of a stranger": "it accepted a LEAVE of someone who was never in the call: the leaver must be a peer.",
    "leave, leaver still listed": "it accepted a LEAVE that still lists the leaver, who would get the fresh keys.",
    "leave, ghost for the leaver": "it accepted a LEAVE that lists a new member in the leaver's place: a LEAVE "
                                   "removes exactly its subject and adds no one.",
}


def _roster_cases() -> list[tuple[str, set[int], str, int | None, list[int], int]]:
    """Task 4's updates, drawn for this student: (kind, peers, change, subject, listed, own index).
    ``listed`` is the update's member indices without the member's own, in the server's order."""
    rng = params("04").rng("task4 cases")
    cases = []
    for kind in rng.sample(ROSTER_KINDS, len(ROSTER_KINDS)):
        me, others = rng.randrange(12), list(range(12))
        others.remove(me)
        rng.shuffle(others)
        n = rng.randint(2, 5)
        peers, (new, ghost) = set(others[:n]), others[n:n + 2]
        some = rng.choice(sorted(peers))
        change = kind.split()[0].rstrip(",")
        listed, subject = {
            "rekey": (peers, None), "rekey, ghost": (peers | {ghost}, None),
            "rekey, member missing": (peers - {some}, None), "rekey with a subject": (peers, some),
            "rekey, index twice": (peers, None),
            "join": (peers | {new}, new), "join, ghost": (peers | {new, ghost}, new),
            "join of a member": (peers, some), "join, newcomer not listed": (peers, new),
            "leave": (peers - {some}, some), "leave of a stranger": (peers, new),
            "leave, leaver still listed": (peers, some), "leave, ghost for the leaver": ((peers - {some}) | {ghost}, some),
        }[kind]
        listed = rng.sample(sorted(listed), len(listed)) + ([some] if kind == "rekey, index twice" else [])
        cases.append((kind, peers, change, subject, listed, me))
    return cases


@functools.cache
def _roster_identity():
    return IdentityKeyPair.generate(Curve.X25519, seed=404).public


def _members_check_accepts(peers: set[int], change: str, subject: int | None, listed: list[int], me: int) -> bool:
    """What the fixed members' own roster check (:func:`~e2ee_lab.crypto.keys.check_member_set`) says."""
    entries = [RosterEntry(i, f"member {i}", _roster_identity(), bytes(16)) for i in [me, *listed]]
    update = RosterUpdate(epoch=7, change=Change(change), subject=subject, members=tuple(entries))
    try:
        check_member_set(update, entries[0], set(peers), own_join=False)
    except UnexpectedRoster:
        return False
    return True


def probe_roster_check(func: Callable[[set, str, int | None, list], bool], *lab_objects) -> list[dict]:
    """Task 4's probe: the student's ``roster_ok(peers, change, subject, listed)`` on this student's updates."""
    return [call_safely(func, set(peers), change, subject, list(listed))
            for _, peers, change, subject, listed, _ in _roster_cases()]


@check(probe=probe_roster_check)
def check_roster_check(answer) -> Feedback:
    """Task 4 (build): ``roster_ok(peers, change, subject, listed)`` accepts exactly the updates the fixed
    members' roster check accepts, on this student's honest and hostile updates (ghosts among them)."""
    if answer is None:
        return unanswered("Task 4")
    if not isinstance(answer, Probed):
        return not_yet("define roster_ok(peers, change, subject, listed) and pass the function itself.")
    cases, outputs = _roster_cases(), answer.outputs
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        return not_yet("the check could not run roster_ok on its updates; pass the function itself.")
    for (kind, peers, change, subject, listed, me), got in zip(cases, outputs):
        if not isinstance(got, dict):
            return not_yet("the check could not read what roster_ok did; pass the function itself.")
        if "raised" in got:
            return not_yet(f"roster_ok raised {got['raised']} for a {change.upper()} with peers {sorted(peers)}, "
                           f"subject {subject} and listed {listed}: return True or False for every update.")
        if got.get("value") is None:
            return unanswered("Task 4")
        if not isinstance(got.get("value"), bool):
            return not_yet("roster_ok returns True (accept) or False (refuse), not another value.")
        if got["value"] != _members_check_accepts(peers, change, subject, listed, me):
            return not_yet(f"peers {sorted(peers)}, {change.upper()} of {subject}, listed {listed}: "
                           f"{_ROSTER_HINTS[kind]}")
    return correct(f"all {len(cases)} updates judged as the members' own check judges them. A member that "
                   "refuses a roster its change does not imply seals no key to a ghost in a REKEY; what it "
                   "cannot refuse is a ghost shown as a legitimate JOIN, which only comparing group codes (a "
                   "split view) or looking at the list (a ghost shown to everyone) reveals.")
