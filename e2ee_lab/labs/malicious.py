"""Notebook 05 (a malicious SFU): the task checks, the tables and the views of the attack matrix.

The attacks and their measurement live in :mod:`e2ee_lab.attacks`: the forwarding policies in
:mod:`~e2ee_lab.attacks.sfu`, the downgrade by SDP rewriting (``a=sframe`` dropped) and the identity-key
substitution in :mod:`~e2ee_lab.attacks.signalling`, the ghost, the forging ex-member and the
cross-call replay in :mod:`~e2ee_lab.attacks.group`, the calls and the matrix (RFC 9605 checks per
attack, mode and key policy) in :mod:`~e2ee_lab.attacks.runner`. This module turns the matrix into
what the notebook shows (:func:`attack_list`, :func:`matrix_view`, :func:`results_table`,
:func:`what_each_check_caught`, :func:`naive_and_fixed`) and checks the four tasks
(:func:`check_predictions`, :func:`check_rekey_replay`, :func:`check_still_works`,
:func:`check_mismatched`).

Re-exported for the notebook's ``lab.<name>`` cells: ``sample_frames``, ``tamper_sweep``,
``payload_layout`` (:mod:`e2ee_lab.attacks.tamper`), ``run_matrix``, ``run_attacks``,
``replay_across_rekey`` (:mod:`e2ee_lab.attacks.runner`) and ``safety_numbers``
(:mod:`e2ee_lab.attacks.signalling`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from e2ee_lab.attacks.runner import (  # run_matrix, run_attacks, replay_across_rekey: for the notebook
    ATTACK_NAMES, ATTACKS, CHECKS, KEY_ATTACKS, parse_rejected_by, plan_calls, replay_across_rekey, run_attacks,
    run_matrix,
)
from e2ee_lab.attacks.tamper import payload_layout, sample_frames, tamper_sweep  # for the notebook
from e2ee_lab.attacks.signalling import safety_numbers
from e2ee_lab.call import CallResult
from e2ee_lab.labs import Feedback, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import Choice, Choices, Sealed

__all__ = [
    # this module's views, constants and checks
    "attack_list", "matrix_view", "results_table", "what_each_check_caught", "naive_and_fixed", "PREDICT",
    "CHECK_NAMES",
    "REKEY_CHOICES", "check_predictions", "check_rekey_replay", "still_works", "check_still_works",
    "check_mismatched",
    # re-exported for the notebook's lab.<name> cells (module docstring)
    "run_matrix", "run_attacks", "replay_across_rekey", "sample_frames", "tamper_sweep", "payload_layout",
    "safety_numbers",
]


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
PREDICT = ("tamper-tag", "replay", "replay-same-seq", "replay-rekey", "inject", "downgrade-inject", "drop")
CHECK_NAMES = ("SFrame auth tag", "replay window", "unknown KID", "attribution by KID", "SFrame header",
               "SRTP replay check", "none")
_PREDICT_HINTS = {
    "tamper-tag": "the flipped bit sits in the last 16 bytes of the frame: what does AES-GCM compare them with?",
    "replay": "the SFU gave the copies fresh RTP sequence numbers, so SRTP saw new packets; which SFrame-layer "
              "state remembers the CTRs it has accepted?",
    "replay-same-seq": "the copies kept their old RTP sequence numbers: which layer numbers packets, and what "
                       "does it do with a number it has already protected?",
    "replay-rekey": "the copies arrived after the receiver had deleted the old epoch's key: what happens to a "
                    "frame whose header names a key the receiver does not hold?",
    "inject": "the header is plausible (a real KID, a CTR nobody used); what can the forger not compute "
              "without the key?",
    "downgrade-inject": "plain VP8 read as an SFrame header: its first byte becomes the config byte. Decode it "
                        "(lab 03): which member and media kind does that KID name, and is that the stream "
                        "it arrived on?",
    "drop": "nothing arrives: can any receiver check reject a frame it never sees?",
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
    if answer is None:
        return unanswered("Task 1")
    if not isinstance(answer, Mapping) or set(answer) != set(PREDICT):
        return not_yet(f"the answer is a dict with the keys {', '.join(PREDICT)}; each value one of "
                       f"{', '.join(CHECK_NAMES)}.")
    e2ee = _fixed(table, "e2ee").set_index("attack")
    for attack in PREDICT:
        row = e2ee.loc[attack]
        seen = {str(row.caught_by).lower()} | {CHECKS.get(k, k).lower() for k, _ in parse_rejected_by(row.rejected_by)}
        given = _name(answer[attack])
        if given is None or (given not in seen and Sealed(f"05/T1/{attack}").opens(given) is None):
            return not_yet(f"{attack}: not {answer[attack]!r}. {_PREDICT_HINTS[attack]}")
    return correct("every forged, tampered or replayed frame met a check before the decoder: the AEAD tag, "
                   "the CTR window, the key lookup, and (for old sequence numbers) SRTP. A drop meets none.")


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
    for name in sorted(truth - given):
        return not_yet(f"{name} is missing: look at its e2ee row (outcome {_outcome_of(table, name)!r}, "
                       f"note {_note_of(table, name)!r}). Did any receiver check stop it?")
    for name in sorted(given - truth):
        return not_yet(f"{name} did not work in e2ee mode: its e2ee row says {_outcome_of(table, name)!r}.")
    return correct(f"{', '.join(sorted(truth))}: E2EE protects each frame's confidentiality and integrity, "
                   "not its delivery, timing or order, and not the signalling that says who holds which key "
                   "and whether frames are encrypted at all.")


def _outcome_of(table: pd.DataFrame, name: str) -> str:
    rows = _fixed(table, "e2ee")
    return str(rows[rows.attack == name].outcome.iloc[0])


def _note_of(table: pd.DataFrame, name: str) -> str:
    rows = _fixed(table, "e2ee")
    return str(rows[rows.attack == name].note.iloc[0])


@check
def check_mismatched(answer: Iterable[str] | None, result: CallResult) -> Feedback:
    """Task 4: the two members whose safety numbers differ after the key substitution."""
    if answer is None:
        return unanswered("Task 4")
    if isinstance(answer, str):
        answer = {answer}
    if not isinstance(answer, (set, list, tuple)) or not all(isinstance(a, str) for a in answer):
        return not_yet("the answer is a set of two names, e.g. {'alice', 'bob'}.")
    numbers = safety_numbers(result)
    bad = numbers[~numbers.match]
    truth = {str(bad["first"].iloc[0]), str(bad["second"].iloc[0])} if len(bad) else set()
    given = {a.strip().lower() for a in answer}
    if given != truth:
        return not_yet(f"not {sorted(given)}: in the safety-number table, find the pair whose two numbers "
                       "differ (match is False); every other pair reads the same 60 digits on both sides.")
    return correct(f"{' and '.join(sorted(truth))} pinned the SFU's keys for each other. Their call worked and "
                   "nothing in the media path noticed; reading the numbers aloud (or scanning a QR code) would.")
