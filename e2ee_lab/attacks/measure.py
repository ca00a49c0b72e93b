"""What the receivers did with each attack of a call: the rows of the attack matrix.

:func:`measure` reads one :class:`~e2ee_lab.attacks.runner.AttackRun` (a real call with its
attacks) from the receivers' records: which attacked video frames reached each subscriber's frame
transform, which passed it, which were shown, and which check refused the rest (:data:`CHECKS`).
For the attacks on the group key agreement it also reads the members' own counters (a refused
roster update, a refused key message) and what the attacker could decrypt.

The receivers' checks: the SFrame AEAD tag (RFC 9605 §4.4), its replay window (§9.3) and key
lookup by KID (§4.4.1), attribution of a frame to the member and media kind its authenticated KID
names (§6.1.1), the SRTP replay check (RFC 3711 §3.3.2), the VP8 decoder (RFC 6386); and the
fixed members' checks on the key agreement (:class:`~e2ee_lab.crypto.keys.KeyChecks`: the roster
check, call binding, retirement of a sender's old keys at its first new-epoch frame). Two are
comparisons people make, not receivers: safety numbers against key substitution, group codes
against a ghost shown to some members only.
"""

from __future__ import annotations

from collections import Counter
import pandas as pd

from e2ee_lab.attacks.catalog import ATTACKS, AttackRun
from e2ee_lab.attacks.signalling import frames_read, mitm_reads, safety_numbers
from e2ee_lab.call import CallResult
from e2ee_lab.crypto.keys import EPOCH_SHIFT

DISPLAYED = ("", "garbage_picture", "unknown_frame")  # receiver reasons with a picture on screen
WRONG = ("garbage_picture", "unknown_frame")  # ... showing something the publisher did not send

#: What caught an attack, by the receiver's drop reason or the member's refusal (the names the tasks use).
CHECKS = {"auth": "SFrame auth tag", "replay": "replay window", "unknown_kid": "unknown KID",
          "kid_stream_mismatch": "attribution by KID", "malformed": "SFrame header", "undecodable": "VP8 decoder",
          "srtp": "SRTP replay check", "safety": "safety numbers", "roster_mismatch": "roster check",
          "retired": "retirement at a new-epoch frame", "wrong_call": "call binding",
          "group_code": "group codes", "": "none"}

MATRIX_COLUMNS = ("attack", "mode", "key_policy", "pairs", "frames", "delivered", "accepted", "displayed",
                  "wrong_displayed", "rejected", "rejected_by", "caught_by", "collateral", "sfu_read", "outcome",
                  "note")
_READ_ALL = ("none", "key-substitution", "downgrade-signalling", "ghost-member")  # rows over every frame


def measure(name: str, run: AttackRun) -> dict:
    """The matrix row of attack ``name`` in ``run`` (columns :data:`MATRIX_COLUMNS`).

    ``key_policy``: the members' checks ("fixed" or "naive"; "-" in dtls-srtp, which has no key
    agreement). ``frames``: frames the attack touched on its pairs (for none, key-substitution,
    downgrade-signalling and ghost-member every video frame of the pairs' publishers);
    ``delivered``/``accepted``/``displayed``: those that reached the receiver's frame transform /
    passed it / produced a picture; ``wrong_displayed``: a picture the publisher did not send
    (garbage, forged, or another member's); ``rejected_by``: the receivers' drop reasons;
    ``caught_by``: the check that stopped the attack (:data:`CHECKS`); ``collateral``: the pairs'
    other frames not shown correctly; ``sfu_read``: the publishers' video frames the SFU (or its
    ghost) could decode.
    """
    spec, r = ATTACKS[name], run.result
    pairs = run.plan.pairs[name]
    log = [a for p in run.policies[name] for a in p.log if a.action != "rekey"]
    video = r.received[r.received.kind == "video"].sort_values("arrival")
    on_pairs = video[[(p, s) in pairs for p, s in zip(video.publisher, video.receiver)]]
    hit, frames = _attacked(name, log, on_pairs, r, pairs)
    rejected = hit[~hit.reason.isin(DISPLAYED)]
    reasons = Counter(rejected.reason)
    row = {"attack": name, "mode": run.mode, "key_policy": run.key_policy,
           "pairs": ", ".join(f"{p}→{s}" for p, s in pairs),
           "frames": frames, "delivered": len(hit), "accepted": int(hit.decrypted.sum()),
           "displayed": int(hit.reason.isin(DISPLAYED).sum()),
           "wrong_displayed": int(hit.reason.isin(WRONG).sum()), "rejected": len(rejected),
           "rejected_by": ", ".join(f"{k} {v}" for k, v in reasons.most_common()),
           "caught_by": _caught_by(name, run, reasons, frames, len(hit)),
           "collateral": int((~on_pairs.index.isin(hit.index) & (on_pairs.reason != "")).sum()),
           "sfu_read": _sfu_read(name, run, pairs)}
    row["outcome"] = _outcome(spec.goal, row)
    row["note"] = _note(name, run, hit, on_pairs, row)
    return row


def _attacked(name: str, log, on_pairs: pd.DataFrame, r: CallResult, pairs) -> tuple[pd.DataFrame, int]:
    """The receiver records of the attacked frames, and how many frames the attack touched."""
    if name in _READ_ALL:
        sent = r.sent[(r.sent.kind == "video") & r.sent.participant.isin({p for p, _ in pairs})]
        return on_pairs, sum(int((sent.participant == p).sum()) for p, _ in pairs)
    keys = {(a.publisher, a.subscriber, a.timestamp) for a in log}
    mask = [(p, s, t) in keys for p, s, t in zip(on_pairs.publisher, on_pairs.receiver, on_pairs.timestamp)]
    hit = on_pairs[mask]
    if name.startswith("replay"):  # the copies: every record of a replayed frame after its first
        hit = hit[hit.duplicated(["publisher", "receiver", "timestamp"], keep="first")]
    return hit, len(keys)


def key_drops(result: CallResult, reason: str, names=None) -> int:
    """How many roster updates or key messages the members (``names``, default all) refused for ``reason``."""
    return sum(p["dropped"].get(f"keys_{reason}", 0) for p in result.summary["participants"]
               if names is None or p["name"] in names)


def _caught_by(name: str, run: AttackRun, reasons: Counter, frames: int, delivered: int) -> str:
    e2ee = run.mode != "dtls-srtp"
    if name == "key-substitution" and e2ee:
        return CHECKS["safety"] if not safety_numbers(run.result).match.all() else CHECKS[""]
    if name == "ghost-member":
        return CHECKS["roster_mismatch"] if e2ee and key_drops(run.result, "roster_mismatch") else CHECKS[""]
    if name == "cross-call-replay" and e2ee and key_drops(run.result, "wrong_call"):
        return CHECKS["wrong_call"]
    if name == "leaver-forgery" and e2ee and reasons and reasons.most_common(1)[0][0] == "unknown_kid":
        return CHECKS["retired"]  # the old KID was still in its grace period (10 s): only retirement deleted it
    if ATTACKS[name].goal == "disrupt":
        return CHECKS[""]
    # A copy that never arrived: the SFU's own SRTP refused to protect a sequence number twice (the
    # edge counts it as send_failed; a receiver's SRTP would have dropped it as a replay).
    refused = run.result.summary["sfu"]["dropped"].get("send_failed", 0)
    if name.startswith("replay") and frames and not delivered and refused:
        return CHECKS["srtp"]
    if not reasons:
        return CHECKS[""]
    return CHECKS.get(reasons.most_common(1)[0][0], reasons.most_common(1)[0][0])


def _sfu_read(name: str, run: AttackRun, pairs) -> int:
    publishers = {p for p, _ in pairs}
    if name == "key-substitution" and run.mitm is not None and run.mode != "dtls-srtp":
        return mitm_reads(run.result, run.mitm, publishers)
    ghost = run.agents.get("ghost-member")
    if name == "ghost-member" and ghost is not None:
        ghost.open()  # type: ignore[attr-defined]
        return frames_read(run.result, ghost.unprotect, publishers)  # type: ignore[attr-defined]
    f = run.result.sfu.frames
    return int(f[(f.kind == "video") & f.publisher.isin(publishers)].matches.sum())


def _outcome(goal: str, row: dict) -> str:
    if goal == "none":
        return "honest"
    if goal == "read":
        return "SFU reads" if row["sfu_read"] else "protected"
    if goal == "disrupt":
        return "not prevented" if row["frames"] else "not run"
    return "displayed" if row["displayed"] else ("rejected" if row["frames"] else "not run")


def _note(name: str, run: AttackRun, hit: pd.DataFrame, on_pairs: pd.DataFrame, row: dict) -> str:
    if name in _KEY_NOTES:
        return _KEY_NOTES[name](run, row) if run.mode != "dtls-srtp" else _NO_KEYS[name]
    if name == "delay" and len(hit):  # against every other video frame of the call (median: robust)
        video = run.result.received[run.result.received.kind == "video"]
        other = video[~video.index.isin(on_pairs.index)].latency
        return f"latency {hit.latency.median() - other.median():+.2f} s" if len(other) else ""
    if name == "reorder" and len(hit):
        return f"{int(hit.reason.isin(DISPLAYED).sum())} shown out of order"
    if name == "drop":
        subscribers = {s for _, s in run.plan.pairs[name]}
        losses = sum(v for p in run.result.summary["participants"] if p["name"] in subscribers
                     for k, v in p["dropped"].items() if "lost" in k or "missing" in k)
        return f"{losses} losses reported"
    if name == "downgrade-signalling" and run.mode != "dtls-srtp":
        return "receivers fail closed; the SFU reads the victim"
    if name == "key-substitution" and run.mode != "dtls-srtp":
        return "safety numbers differ" if not safety_numbers(run.result).match.all() else "safety numbers match"
    return ""


# --- notes of the attacks on the key agreement -----------------------------------------------------

_NO_KEYS = {
    "ghost-member": "no frame keys: the SFU reads every frame without a ghost",
    "stream-swap": "no KID: nothing tells the receiver whose frame it is",
    "leaver-forgery": "no frame keys: the SFU forges at will, no leaver needed",
    "cross-call-replay": "no key messages to replay: the SFU forges at will",
}


def _ghost_note(run: AttackRun, row: dict) -> str:
    refused = key_drops(run.result, "roster_mismatch")
    if refused:
        return f"the members refused the ghost's REKEY ({refused} roster_mismatch)"
    ghost = run.agents.get("ghost-member")
    keys = ghost.open() if ghost is not None else {}  # type: ignore[attr-defined]
    names = [run.plan.names[s] if s < len(run.plan.names) else f"member {s}" for s in sorted({s for s, _ in keys})]
    numbers = "safety numbers match" if safety_numbers(run.result).match.all() else "safety numbers differ"
    return f"the ghost got the new keys of {', '.join(names) or 'nobody'}; {numbers}"


def _swap_note(run: AttackRun, row: dict) -> str:
    (victim, sub), (source, _) = run.plan.pairs["stream-swap"]
    if row["displayed"]:
        return f"{sub} was shown {row['displayed']} of {source}'s frames as {victim}'s"
    return f"{sub} showed none of {source}'s {row['frames']} frames as {victim}'s"


def _leaver_note(run: AttackRun, row: dict) -> str:
    leaver = run.agents.get("leaver-forgery")
    if leaver is None or leaver.epoch is None:  # type: ignore[attr-defined]
        return "the ex-member never left"
    epoch = leaver.epoch  # type: ignore[attr-defined]
    after = [a.detail.rsplit("KID ", 1)[-1] for p in run.policies["leaver-forgery"] for a in p.log]
    spoke = sum(int(k, 16) >> EPOCH_SHIFT > epoch for k in after if k.startswith("0x"))
    return (f"{leaver.user} left keeping its epoch-{epoch} keys; before {spoke} of {len(after)} "  # type: ignore[attr-defined]
            f"forgeries the impersonated sender had spoken on epoch {epoch + 1}")


def _replay_note(run: AttackRun, row: dict) -> str:
    if "cross-call-replay" not in run.agents:
        return "no earlier call recorded"
    sub = run.plan.pairs["cross-call-replay"][0][1]
    wrong, replayed = key_drops(run.result, "wrong_call", {sub}), key_drops(run.result, "replay", {sub})
    if wrong:
        return f"{sub} refused the earlier call's key message ({wrong} wrong_call)"
    return (f"{sub} installed the earlier call's key and refused the genuine one ({replayed} replay); "
            f"{row['collateral']} genuine frames not shown")


_KEY_NOTES = {"ghost-member": _ghost_note, "stream-swap": _swap_note, "leaver-forgery": _leaver_note,
              "cross-call-replay": _replay_note}


def parse_rejected_by(rejected_by: str) -> list[tuple[str, int]]:
    """The (reason, count) pairs of a matrix row's ``rejected_by`` text (as :func:`measure` writes it)."""
    pairs = [item.rsplit(" ", 1) for item in rejected_by.split(", ") if item]
    return [(k, int(v)) for k, v in pairs]
