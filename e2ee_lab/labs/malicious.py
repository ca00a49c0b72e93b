"""Notebook 05 (a malicious SFU): the task checks, the tables and the views of the attack matrix.

The attacks and their measurement live in :mod:`e2ee_lab.attacks`: the forwarding policies in
:mod:`~e2ee_lab.attacks.sfu`, the downgrade by SDP rewriting (``a=sframe`` dropped) and the identity-key
substitution in :mod:`~e2ee_lab.attacks.signalling`, the ghost, the forging ex-member and the
cross-call replay in :mod:`~e2ee_lab.attacks.group`, the calls and the matrix (RFC 9605 checks per
attack, mode and key policy) in :mod:`~e2ee_lab.attacks.runner`. This module turns the matrix into
what the notebook shows (:func:`attack_list`, :func:`matrix_view`, :func:`results_table`,
:func:`what_each_check_caught`, :func:`naive_and_fixed`, :func:`replayed_headers`), stores Task 1's
prediction before the calls (:func:`predict`) and checks the tasks (:func:`check_predictions`,
:func:`check_rekey_replay`, :func:`check_still_works`, and the replay window the student builds,
:func:`check_replay_window`, run on the replay attack's frames of the notebook's own matrix and on
sequences drawn per student, against the receivers' :class:`~e2ee_lab.crypto.sframe.context.ReplayWindow`).

Re-exported for the notebook's ``lab.<name>`` cells: ``sample_frames``, ``tamper_sweep``,
``payload_layout`` (:mod:`e2ee_lab.attacks.tamper`), ``run_matrix``, ``run_attacks``,
``replay_across_rekey`` (:mod:`e2ee_lab.attacks.runner`) and ``safety_numbers``
(:mod:`e2ee_lab.attacks.signalling`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from e2ee_lab.attacks import runner as _runner
from e2ee_lab.attacks.runner import (  # run_attacks, replay_across_rekey: for the notebook
    ATTACK_NAMES, ATTACKS, CHECKS, KEY_ATTACKS, Matrix, parse_rejected_by, plan_calls, replay_across_rekey,
    run_attacks,
)
from e2ee_lab.crypto.sframe import MalformedHeader, decode_header
from e2ee_lab.crypto.sframe.context import ReplayWindow
from e2ee_lab.crypto.sframe.errors import ReplayedFrame
from e2ee_lab.rtp.errors import RTPError
from e2ee_lab.rtp.vp8 import VP8PayloadDescriptor
from e2ee_lab.attacks.tamper import payload_layout, sample_frames, tamper_sweep  # for the notebook
from e2ee_lab.attacks.signalling import safety_numbers
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import Choice, Choices, Sealed, call_safely

__all__ = [
    # this module's views, constants and checks
    "attack_list", "matrix_view", "results_table", "what_each_check_caught", "naive_and_fixed", "PREDICT",
    "CHECK_NAMES", "predict", "replayed_headers", "replay_window_size",
    "REKEY_CHOICES", "check_predictions", "check_rekey_replay", "still_works", "check_still_works",
    "check_replay_window",
    # re-exported for the notebook's lab.<name> cells (module docstring)
    "run_matrix", "run_attacks", "replay_across_rekey", "sample_frames", "tamper_sweep", "payload_layout",
    "safety_numbers",
]


_calls_run: list[str] = []  # the matrices this kernel ran (Task 1's prediction comes before them)


@functools.wraps(_runner.run_matrix)
def run_matrix(*args, **kwargs) -> Matrix:
    # the same function, noting the run for predict()
    _calls_run.append("run_matrix")
    return _runner.run_matrix(*args, **kwargs)


def _empty(prediction: object) -> bool:
    """No prediction yet: None, or the shipped dict with every value still empty."""
    return prediction is None or (isinstance(prediction, Mapping) and all(v in (None, "") for v in prediction.values()))


def predict(prediction: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """Take Task 1's prediction and say whether this kernel ran the attack matrix before it; returns it.
    The note is printed, so the saved notebook shows whether the prediction came first."""
    if _empty(prediction):
        print("no prediction stored yet: fill in the dict, then run this cell before the calls.")
    elif _calls_run:
        print("prediction stored AFTER the attack matrix ran in this kernel: for a real prediction, restart "
              "the kernel and run the notebook down to this cell.")
    else:
        print("prediction stored before the attack matrix ran.")
    return prediction


def attack_list(participants: int = 3) -> pd.DataFrame:
    """The attacks, what the SFU does in each, and the call and pairs :func:`plan_calls` gives them."""
    rows = []
    for number, plan in enumerate(plan_calls(ATTACK_NAMES, participants), start=1):
        happens = {"ghost": "the ghost's REKEY", "leave": "a member leaves"}.get(plan.event or "",
                                                                                 "a rekey" if plan.rekey else "")
        for name, pairs in plan.pairs.items():
            rows.append({"attack": name, "the SFU": ATTACKS[name].does, "call": number,
                         "in the call": happens, "pairs": ", ".join(f"{p}→{q}" for p, q in pairs)})
    order = {n: i for i, n in enumerate(ATTACK_NAMES)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[r["attack"]])).set_index("attack")


# --- tables ------------------------------------------------------------------------------------------


def _fixed(table: pd.DataFrame, mode: str | None = None) -> pd.DataFrame:
    """The rows against the fixed members (and dtls-srtp's, which has no key agreement), of ``mode``."""
    rows = table[table.key_policy != "naive"]
    return rows if mode is None else rows[rows["mode"] == mode]


def matrix_view(table: pd.DataFrame, mode: str | None = None, key_policy: str | None = None) -> pd.DataFrame:
    """The matrix columns a reader needs, optionally for one mode and one key policy."""
    cols = ["attack", "mode", "key_policy", "frames", "delivered", "displayed", "wrong_displayed", "rejected",
            "caught_by", "collateral", "sfu_read", "outcome", "note"]
    rows = table if mode is None else table[table["mode"] == mode]
    rows = rows if key_policy is None else rows[rows.key_policy == key_policy]
    return rows[cols].reset_index(drop=True)


def _verdict(row: pd.Series) -> str:
    if row.outcome == "honest":
        return f"honest: {row.displayed} of {row.frames} shown, SFU reads {row.sfu_read}"
    if row.outcome == "displayed":
        refused = f", {row.rejected} refused by the {row.caught_by}" if row.rejected else ", no check fired"
        return f"DISPLAYED {row.displayed} of {row.frames} ({row.wrong_displayed} wrong picture){refused}"
    if row.outcome == "rejected" and not row.delivered:
        return f"none of {row.frames} delivered: {row.caught_by}"
    if row.outcome == "rejected":
        return f"rejected {row.rejected} of {row.frames}: {row.caught_by}"
    if row.outcome == "SFU reads":
        return f"SFU reads {row.sfu_read} frames" + (f"; {row.note}" if row.note else "")
    if row.outcome == "protected" and row.caught_by != "none":
        return f"protected: {row.caught_by}" + (f"; {row.note}" if row.note else "")
    return f"{row.outcome}" + (f": {row.note}" if row.note else f" ({row.frames} frames)")


def _column(mode: str, key_policy: str) -> str:
    return f"{mode}, naive members" if key_policy == "naive" else mode


def results_table(table: pd.DataFrame) -> pd.DataFrame:
    """One line per attack and a column per mode (and per mode with naive members): what happened, quotable."""
    verdicts = table.assign(verdict=table.apply(_verdict, axis=1),
                            column=[_column(m, k) for m, k in zip(table["mode"], table.key_policy)])
    columns = list(dict.fromkeys(verdicts.column))
    out = verdicts.pivot(index="attack", columns="column", values="verdict")[columns].fillna("")
    out = out.reindex([a for a in ATTACK_NAMES if a in out.index])
    out.columns.name = None
    out.insert(0, "the SFU", [ATTACKS[a].does for a in out.index])
    return out


def naive_and_fixed(table: pd.DataFrame, mode: str = "e2ee") -> pd.DataFrame:
    """The attacks on the key agreement in ``mode``: what happened against the naive members and
    against the fixed ones, and the check that made the difference."""
    rows = []
    for attack in KEY_ATTACKS:
        got = {r.key_policy: r for r in table[(table.attack == attack) & (table["mode"] == mode)].itertuples()}
        if {"naive", "fixed"} <= set(got):
            naive, fixed = got["naive"], got["fixed"]
            rows.append({"attack": attack, "naive members": _verdict(pd.Series(naive._asdict())),
                         "fixed members": _verdict(pd.Series(fixed._asdict())), "stopped by": fixed.caught_by})
    return pd.DataFrame(rows).set_index("attack") if rows else pd.DataFrame()


def what_each_check_caught(table: pd.DataFrame, mode: str = "e2ee") -> pd.DataFrame:
    """For ``mode`` with the fixed members: per attack, how many attacked frames each receiver check rejected."""
    rows = _fixed(table, mode)
    rows = rows[rows["rejected"] > 0]
    counts = {a: dict(parse_rejected_by(rb)) for a, rb in zip(rows.attack, rows.rejected_by)}
    out = pd.DataFrame.from_dict(counts, orient="index").fillna(0).astype(int)
    return out.rename(columns=lambda r: CHECKS.get(r, r))


# --- checks ------------------------------------------------------------------------------------------

#: Task 1's attacks (e2ee mode), and what a student may name as the check.
PREDICT = ("tamper-tag", "replay", "replay-same-seq", "replay-rekey", "inject", "downgrade-inject", "drop",
           "stream-swap", "leaver-forgery")
CHECK_NAMES = ("SFrame auth tag", "replay window", "unknown KID", "attribution by KID", "SFrame header",
               "SRTP replay check", "none")
_PREDICT_HINTS = {
    "tamper-tag": "the flipped bit sits in the last bytes of the frame (section 1's layout): which check covers "
                  "those bytes, and what does it compare them with?",
    "replay": "the SFU gave the copies fresh RTP sequence numbers, so SRTP saw new packets. What in a copy did "
              "the SFU leave as it was, and which receiver state would remember it?",
    "replay-same-seq": "the copies are the old packets byte for byte, RTP sequence numbers included: which layer "
                       "of the receiver's leg looks at them first, and what has it seen before?",
    "replay-rekey": "the copies arrive after the rekey: what does the receiver still hold of the old epoch by "
                    "then (section 3: old keys are deleted 0.5 s after the switch, or earlier)?",
    "inject": "the header is plausible (a real KID, a CTR nobody used), so the frame passes every check that "
              "reads only the header. What is left?",
    "downgrade-inject": "plain VP8 read as an SFrame header: its first byte becomes the config byte. Decode it "
                        "(Lab 03) and ask what the receiver compares the KID's fields with before it tries a key.",
    "drop": "nothing arrives: can any receiver check reject a frame it never sees?",
    "stream-swap": "every swapped frame is a genuine frame of another member under that member's key: which of "
                   "Lab 04's checks compares a frame with the stream it arrived on?",
    "leaver-forgery": "the forgeries are sealed under keys of the last epoch, which the leaver held. Each forged "
                      "sender had already spoken on the new epoch: what did the receivers do with its old key "
                      "then (Lab 04, section 6)?",
}
#: Task 2's explanations, lettered (a, b, ...) in each student's own order.
REKEY_CHOICES = Choices("05/T2", {
    "srtp-replay": Choice(
        "SRTP's replay check on each leg rejects the copies, because the SFU sends them again with sequence "
        "numbers it already used.",
        "the SFU renumbered the copies (fresh sequence slots), so SRTP accepted them; compare the "
        "replay-same-seq row, where it did not."),
    "old-kid": Choice(
        "The copies name the old epoch's KID, whose key and replay window a receiver keeps only until it "
        "hears the new epoch or the grace ends.",
        "look at the 'replayed old frame' column of the sans-I/O table: what does the receiver hold for the "
        "old epoch, and for how long?"),
    "garbage": Choice(
        "The new epoch's key decrypts the old frames into garbage, which the VP8 decoder then refuses to "
        "display.",
        "a receiver never tries the new key on an old frame: the KID in the authenticated header picks "
        "the key, and nothing is decrypted when that key is missing."),
    "ctr-restart": Choice(
        "After the rekey the sender's CTR restarted at 0, so the old frames' CTRs look like frames from the "
        "future.",
        "each key has its own CTR sequence and its own replay window; the old frames' KID still names the "
        "old key. Look at the 'replayed old frame' column of the sans-I/O table."),
}, lower=True)


def _name(value: object) -> str | None:
    return " ".join(value.split()).lower() if isinstance(value, str) else None


@check
def check_predictions(answer: Mapping[str, str] | None, table: pd.DataFrame) -> Feedback:
    """Task 1: for each attack of :data:`PREDICT`, the check that caught it in e2ee mode: the one the
    run measured, or the one it meets by design (sealed: ``05/T1/<attack>``; a late old key may make a
    run show another check too, and both are accepted)."""
    if _empty(answer):
        return unanswered("Task 1")
    if not isinstance(answer, Mapping) or set(answer) != set(PREDICT):
        return not_yet(f"the answer is a dict with the keys {', '.join(PREDICT)}; each value one of "
                       f"{', '.join(CHECK_NAMES)}.")
    e2ee = _fixed(table, "e2ee").drop_duplicates("attack").set_index("attack")
    missing = [a for a in PREDICT if a not in e2ee.index]
    if missing:
        return not_yet(f"the matrix has no e2ee row for {', '.join(missing)}: pass the table of lab.run_matrix().")
    for attack in PREDICT:
        row = e2ee.loc[attack]
        seen = {str(row.caught_by).lower()} | {CHECKS.get(k, k).lower() for k, _ in parse_rejected_by(row.rejected_by)}
        given = _name(answer[attack])
        if given is None or (given not in seen and Sealed(f"05/T1/{attack}").opens(given) is None):
            return not_yet(f"{attack}: not {answer[attack]!r}. {_PREDICT_HINTS[attack]}")
    return correct("every forged, tampered, replayed or misplaced frame met a check before the decoder: the AEAD "
                   "tag, the CTR window, the key lookup, attribution by KID, and (for old sequence numbers) SRTP. "
                   "A drop meets none.")


@check
def check_rekey_replay(answer: str | None) -> Feedback:
    """Task 2: why replaying frames across a rekey fails (a letter of :data:`REKEY_CHOICES`; sealed:
    ``05/T2``)."""
    return REKEY_CHOICES.verdict(answer, "Task 2")


def still_works(table: pd.DataFrame, mode: str = "e2ee") -> set[str]:
    """Attacks whose ``mode`` row (fixed members) shows an effect the receivers did not prevent."""
    rows = _fixed(table, mode)
    return set(rows[rows.outcome.isin(["not prevented", "SFU reads", "displayed"])].attack)


@check
def check_still_works(answer: Iterable[str] | None, table: pd.DataFrame) -> Feedback:
    """Task 3: the set of attacks that still work against the e2ee call."""
    if answer is None:
        return unanswered("Task 3")
    if not isinstance(answer, (set, list, tuple)) or not all(isinstance(a, str) for a in answer):
        return not_yet("the answer is a set of attack names, e.g. {'drop'}.")
    given, truth = set(answer), still_works(table)
    unknown = given - set(ATTACK_NAMES)
    if unknown:
        return not_yet(f"{sorted(unknown)} are not attack names; the names are in the 'attack' column.")
    missed = truth - given
    if missed & _SIGNALLING:
        return not_yet("your set misses an attack that never touches a frame's bytes: the SFU can also lie in "
                       "signalling. Did any frame check have a chance to stop such an attack?")
    if missed & _DELIVERY:
        return not_yet("your set misses an attack that changes no frame at all: integrity is not delivery. What "
                       "can an SFU do to a frame's arrival that no receiver check rejects?")
    if missed:
        return not_yet("your set misses an attack whose e2ee row (fixed members) shows an effect no receiver "
                       "prevented: read the outcome column of every e2ee row, not only the displayed ones.")
    if given - truth:
        return not_yet("your set holds an attack that the e2ee receivers (fixed members) stopped: every attacked "
                       "frame rejected, or the key agreement's checks protected the call. Read its e2ee row again.")
    return correct(f"{', '.join(sorted(truth))}: E2EE protects each frame's confidentiality and integrity, "
                   "not its delivery, timing or order, and not the signalling that says who holds which key "
                   "and whether frames are encrypted at all.")


_SIGNALLING = {"downgrade-signalling", "key-substitution"}
_DELIVERY = {"drop", "delay", "reorder"}


def _outcome_of(table: pd.DataFrame, name: str) -> str:
    rows = _fixed(table, "e2ee")
    return str(rows[rows.attack == name].outcome.iloc[0])


def _note_of(table: pd.DataFrame, name: str) -> str:
    rows = _fixed(table, "e2ee")
    return str(rows[rows.attack == name].note.iloc[0])


# --- Task 4: a replay window (build) ---------------------------------------------------------------


def replayed_headers(matrix: Matrix, attack: str = "replay") -> pd.DataFrame:
    """The SFrame headers the SFU sent on the attacked pair's video stream in ``attack``'s e2ee call, in
    the order it sent them (the copies included): ``time``, ``kid``, ``ctr``. Read from the SFU's view
    tap of the notebook's own matrix; no new call."""
    run = matrix.run_of(attack, "e2ee")
    publisher, receiver = run.plan.pairs[attack][0]
    view = run.result.view
    rows = view[(view.direction == "out") & (view.leg == receiver) & (view.publisher_leg == publisher)
                & (view.kind == "video")]
    out = []
    for time, payload in zip(rows.time, rows.payload):
        try:
            descriptor, body = VP8PayloadDescriptor.parse(payload)
            if descriptor.starts_frame:
                kid, ctr, _ = decode_header(body)
                out.append({"time": round(float(time), 3), "kid": hex(kid), "ctr": ctr})
        except (RTPError, MalformedHeader, ValueError):
            continue
    return pd.DataFrame(out, columns=["time", "kid", "ctr"])


def replay_window_size() -> int:
    """Task 4's window size, drawn per student (the lab's receivers use 128 frames)."""
    return params("05").integer("task4 window", 4, 12, 8)


def _window_cases(headers: pd.DataFrame | None) -> list[tuple[str, list[int], int]]:
    """Task 4's inputs: (kind, CTRs in arrival order, window size). The replay attack's stream of the
    notebook's own matrix (one case per KID), then sequences drawn for this student."""
    size = replay_window_size()
    cases = []
    if isinstance(headers, pd.DataFrame) and {"kid", "ctr"} <= set(headers.columns):
        for _, rows in headers.groupby("kid", sort=False):
            cases.append(("the replay attack", [int(c) for c in rows.ctr], size))
    rng = params("05").rng("task4 cases")
    base = rng.randrange(0, 1000)
    top = base + 2 * rng.randrange(size, 2 * size)
    seen = list(range(base, top + 1, 2))  # every other frame so far, the highest last
    late = [c for c in range(top - size + 1, top) if c not in seen]
    before = [c for c in range(base, top + 1) if c not in (top - size, top - size + 1)]
    cases += [
        ("in order", list(range(base, base + size + rng.randrange(3, 9))), size),
        ("reordered", [base, base + 2, base + 1, base + 4, base + 3, base + 5], size),
        ("a copy", [base, base + 1, base + 1, base + 2, base], size),
        ("late, inside the window", [*seen, late[0], late[-1]], size),
        ("just outside the window", [*before, top - size, top - size + 1], size),
        ("a jump", [base, base + 1, base + 1 + 3 * size, base + 2, base + 3 * size], size),
        ("a copy, much later", [*range(base, base + 3 * size), base + size], size),
    ]
    return cases


def _window_truth(ctrs: list[int], size: int) -> list[bool]:
    """What the lab's receivers' :class:`ReplayWindow` does with ``ctrs`` (every frame authentic)."""
    window, out = ReplayWindow(size), []
    for ctr in ctrs:
        try:
            window.check(ctr)
        except ReplayedFrame:
            out.append(False)
            continue
        window.update(ctr)
        out.append(True)
    return out


def probe_replay_window(func: Callable[[list[int], int], list[bool]], headers=None, *lab_objects) -> list[dict]:
    """Task 4's probe: the student's ``replay_ok(ctrs, size)`` on every case of :func:`_window_cases`."""
    return [call_safely(func, list(ctrs), size) for _, ctrs, size in _window_cases(headers)]


def _window_hint(ctrs: list[int], size: int, got: list, want: list[bool]) -> str:
    top, accepted = -1, set()
    for ctr, g, w in zip(ctrs, got, want):
        if g != w:
            if ctr > top:
                return (f"it refused CTR {ctr}, above the highest accepted so far ({top}): a new frame is always "
                        "accepted.")
            if ctr in accepted:
                return f"it accepted CTR {ctr} twice: a copy got through. Remember every CTR you accepted."
            if top - ctr >= size:
                return (f"it accepted CTR {ctr}, {top - ctr} behind the highest ({top}) with a window of {size}: "
                        "a CTR that old cannot be told from a copy any more; refuse it.")
            return (f"it refused CTR {ctr}, {top - ctr} behind the highest ({top}) and never seen: a frame "
                    f"that arrives late but inside the window of {size} is genuine; accept it.")
        if w:
            top, accepted = max(top, ctr), accepted | {ctr}
    return "compare your list with the arrivals one by one."


@check(probe=probe_replay_window)
def check_replay_window(answer, headers: pd.DataFrame | None = None) -> Feedback:
    """Task 4 (build): ``replay_ok(ctrs, size)`` returns, for CTRs in arrival order, True for each frame
    the receiver accepts: never seen and fewer than ``size`` below the highest accepted so far."""
    if answer is None:
        return unanswered("Task 4")
    if not isinstance(answer, Probed):
        return not_yet("define replay_ok(ctrs, size) and pass the function itself.")
    cases, outputs = _window_cases(headers), answer.outputs
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        return not_yet("the check could not run replay_ok on its sequences; pass the function itself.")
    for (kind, ctrs, size), got in zip(cases, outputs):
        if not isinstance(got, dict):
            return not_yet("the check could not read what replay_ok did; pass the function itself.")
        if "raised" in got:
            return not_yet(f"replay_ok raised {got['raised']} on the CTRs {ctrs} (window {size}).")
        value = got.get("value")
        if value is None:
            return unanswered("Task 4")
        if not isinstance(value, (list, tuple)) or len(value) != len(ctrs) or \
                not all(isinstance(v, bool) for v in value):
            return not_yet(f"return a list of {len(ctrs)} booleans for {len(ctrs)} CTRs: one True (accept) or "
                           "False (refuse) per frame, in arrival order.")
        want = _window_truth(ctrs, size)
        if list(value) != want:
            return not_yet(f"{kind}, CTRs {ctrs}, window {size}: {_window_hint(ctrs, size, list(value), want)}")
    return correct("every copy refused and every genuine frame accepted, late ones inside the window included. "
                   "The window needs only the highest CTR and one bit per slot (RFC 3711 §3.3.2 keeps the same "
                   "for SRTP), and a receiver updates it only after the frame authenticated, so a forgery cannot "
                   "move it.")
