"""Running a malicious SFU's attacks in real calls, and measuring what the receivers did.

:data:`ATTACKS` lists the attacks of the matrix: the forwarding policies of :mod:`e2ee_lab.attacks.sfu`
(tamper, replay, drop, delay, reorder, inject, downgrade-inject) and the two attacks on signalling of
:mod:`e2ee_lab.attacks.signalling` (downgrade-signalling, key-substitution). :func:`run_attacks`
runs them in real calls (:func:`~e2ee_lab.call.run_call`, DTLS-SRTP legs on loopback, VP8 and Opus,
SFrame (RFC 9605) in ``e2ee`` mode) and :func:`measure` gives, per attack and mode, what the
subscribers' receive pipelines did with the attacked video frames (:data:`MATRIX_COLUMNS`).
Calls are real time, so several attacks share a call, each on its own (publisher → subscriber)
pairs (:func:`plan_calls`): three participants give six pairs, and every attack's row is measured
on its pairs only. :func:`run_matrix` runs every attack in both modes.

The receivers' checks (:data:`CHECKS`): the SFrame AEAD tag (RFC 9605 §4.4), its replay window and
key lookup by KID (§4.3, §5.1 key deletion after a rekey), the SRTP replay check (RFC 3711 §3.3.2),
the VP8 decoder (RFC 6386) and, against key substitution, a safety-number comparison.
:func:`replay_across_rekey` is the sans-I/O half of the replay-rekey attack (a
:class:`~e2ee_lab.crypto.keys.Group`, no call).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from e2ee_lab.attacks.sfu import AttackPolicy, Delay, Drop, Honest, Inject, PairRouter, Reorder, Replay, Tamper
from e2ee_lab.attacks.signalling import downgrade_answers, mitm_reads, safety_numbers, substitute_keys
from e2ee_lab.call import CALL_KEY_POLICY, CallResult, run_call
from e2ee_lab.call.participant import participant_name
from e2ee_lab.config import Size, lab_size
from e2ee_lab.crypto.keys import MITM, Group, RekeyPolicy, frame_origin
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.media.scene import video_size

MODES = ("dtls-srtp", "e2ee")
#: Rekey policy of the call that replays across a rekey (at 0.3 s): senders switch 0.25 s after the
#: epoch starts (time for the key messages to cross the relay), receivers delete the old keys 0.5 s
#: later, so the replay at 1.2 s meets a deleted key (a periodic rekey every 0.2 s would be due
#: whenever the SFU asks; the call's roster is polled only then).
REKEY_POLICY = RekeyPolicy(switch_delay=0.25, grace=0.5, rekey_interval=0.2)
DISPLAYED = ("", "garbage_picture", "unknown_frame")  # receiver reasons with a picture on screen
WRONG = ("garbage_picture", "unknown_frame")  # ... showing something the publisher did not send

#: What caught a frame, by the receiver's drop reason (the names the tasks use).
CHECKS = {"auth": "SFrame auth tag", "replay": "replay window", "unknown_kid": "unknown KID",
          "kid_stream_mismatch": "attribution by KID",
          "malformed": "SFrame header", "undecodable": "VP8 decoder", "srtp": "SRTP replay check",
          "safety": "safety numbers", "": "none"}


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the matrix."""

    name: str
    shape: str  # "pair": one publisher -> subscriber; "publisher": all of one's pairs; "both-ways"
    goal: str  # "display" (get bad frames shown), "disrupt" (drop/delay/reorder), "read", "none"
    rekey: bool | None  # the call must (True) / must not (False) rekey; None: either
    does: str  # what the SFU does


ATTACKS: dict[str, AttackSpec] = {s.name: s for s in (
    AttackSpec("none", "pair", "none", None, "forwards honestly (the baseline)"),
    AttackSpec("tamper-header", "pair", "display", None,
               "flips a bit in the frame header: SFrame KID/CTR (e2ee), VP8 frame tag (dtls-srtp)"),
    AttackSpec("tamper-payload", "pair", "display", None, "flips a bit in the ciphertext / VP8 data"),
    AttackSpec("tamper-tag", "pair", "display", None,
               "flips a bit in the last 16 bytes of the frame: the AEAD tag (e2ee)"),
    AttackSpec("replay", "pair", "display", False, "re-sends 0.4-0.7 s old frames in fresh RTP sequence slots"),
    AttackSpec("replay-same-seq", "pair", "display", False, "re-sends old frames in their old sequence slots"),
    AttackSpec("replay-rekey", "pair", "display", True,
               "triggers a rekey, then re-sends frames of the old epoch in fresh slots"),
    AttackSpec("drop", "pair", "disrupt", None, "drops 0.5 s of frames and closes the sequence gap"),
    AttackSpec("delay", "pair", "disrupt", False, "holds every frame 0.3 s"),
    AttackSpec("reorder", "pair", "disrupt", False, "swaps frames in pairs, renumbered"),
    AttackSpec("inject", "pair", "display", None,
               "forges frames: known KID, future CTR, random ciphertext (e2ee); its own VP8 picture (dtls-srtp)"),
    AttackSpec("downgrade-inject", "pair", "display", None,
               "injects an unencrypted VP8 picture of its own into the member's stream"),
    AttackSpec("downgrade-signalling", "publisher", "read", None,
               "drops a=sframe from its answer to one member, who then sends without SFrame"),
    AttackSpec("key-substitution", "both-ways", "read", None,
               "serves its own identity keys to two members and re-seals their key messages (MITM)"),
)}
ATTACK_NAMES = tuple(ATTACKS)


def attack_seconds() -> float:
    """Media seconds of each attack call (the attacks' windows end by 1.2 s)."""
    return 1.5 if lab_size() == "ci" else 2.0


# --- planning: attacks onto pairs of a few calls ---------------------------------------------------


@dataclass
class CallPlan:
    """One call: whether it rekeys, and the pairs each attack runs on."""

    rekey: bool
    names: list[str]  # participants
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def free(self) -> list[tuple[str, str]]:
        """Pairs no attack uses yet."""
        used = {p for ps in self.pairs.values() for p in ps}
        return [(a, b) for a in self.names for b in self.names if a != b and (a, b) not in used]

    def fit(self, spec: AttackSpec) -> list[tuple[str, str]] | None:
        """Free pairs of the shape ``spec`` needs, or None."""
        free = self.free()
        if spec.shape == "pair":
            return free[:1] or None
        if spec.shape == "publisher":
            for name in self.names:
                mine = [(name, b) for b in self.names if b != name]
                if all(p in free for p in mine):
                    return mine
            return None
        pairs = [[(a, b), (b, a)] for a in self.names for b in self.names if a < b]
        return next((p for p in pairs if all(x in free for x in p)), None)


def plan_calls(names: Iterable[str] = ATTACK_NAMES, participants: int = 3) -> list[CallPlan]:
    """Pack attacks onto as few calls of ``participants`` as their pairs and rekey needs allow.

    Raises:
        ValueError: an unknown attack name, or fewer than 2 participants.
    """
    specs = [ATTACKS[n] if n in ATTACKS else _unknown(n) for n in dict.fromkeys(names)]
    if participants < 2:
        raise ValueError(f"an attack call needs at least 2 participants, not {participants}")
    people = [participant_name(i) for i in range(participants)]
    # Big shapes first; then attacks that must not rekey, those that must, those that do not care.
    order = sorted(specs, key=lambda s: ({"publisher": 0, "both-ways": 1}.get(s.shape, 2),
                                         {False: 0, True: 1, None: 2}[s.rekey]))
    calls: list[CallPlan] = []
    for spec in order:
        for call in calls:
            pairs = call.fit(spec) if spec.rekey in (None, call.rekey) else None
            if pairs:
                call.pairs[spec.name] = pairs
                break
        else:
            call = CallPlan(rekey=bool(spec.rekey), names=people)
            call.pairs[spec.name] = call.fit(spec) or []
            calls.append(call)
    return calls


def _unknown(name: str) -> AttackSpec:
    raise ValueError(f"unknown attack {name!r}; expected one of {', '.join(ATTACK_NAMES)}")


# --- running -------------------------------------------------------------------------------------


@dataclass
class AttackRun:
    """One call of a plan: the result and what each attack's policies logged."""

    mode: str
    plan: CallPlan
    result: CallResult
    policies: dict[str, list[AttackPolicy]]
    mitm: MITM | None = None


def _policy(name: str, pair: tuple[str, str], mode: str, seed: int, size: Size) -> AttackPolicy:
    pub, sub = pair
    e2ee = mode != "dtls-srtp"
    dims = video_size(size)
    if name.startswith("tamper-"):
        region = {"tamper-payload": "ciphertext"}.get(name, name.removeprefix("tamper-"))
        return Tamper(pub, sub, region=region, sframe=e2ee, seed=seed)
    build = {
        "replay": lambda: Replay(pub, sub, seed=seed),
        "replay-same-seq": lambda: Replay(pub, sub, fresh_seq=False, seed=seed),
        "replay-rekey": lambda: Replay(pub, sub, capture=(0.05, 0.3), at=1.2, rekey_at=0.3, seed=seed),
        "drop": lambda: Drop(pub, sub, start=0.4, stop=0.9, seed=seed),
        "delay": lambda: Delay(pub, sub, seed=seed),
        "reorder": lambda: Reorder(pub, sub, seed=seed),
        "inject": lambda: Inject(pub, sub, forge="sframe" if e2ee else "picture",
                                 picture_size=(dims.width, dims.height), seed=seed),
        "downgrade-inject": lambda: Inject(pub, sub, forge="picture", picture_size=(dims.width, dims.height),
                                           seed=seed),
    }.get(name)
    policy = build() if build is not None else Honest(pub, sub, seed=seed)
    policy.name = name
    return policy


def run_plan(plan: CallPlan, mode: str, *, seconds: float | None = None, seed: int = 0,
             size: Size = "ci") -> AttackRun:
    """Run one planned call with its attacks installed; returns the :class:`AttackRun`."""
    policies = {name: [_policy(name, pair, mode, seed, size) for pair in pairs]
                for name, pairs in plan.pairs.items()}
    run = AttackRun(mode, plan, None, policies)  # type: ignore[arg-type]
    index = {name: i for i, name in enumerate(plan.names)}  # member index = join order

    def setup(sfu) -> None:
        t0 = asyncio.get_running_loop().time()
        for policy in (p for ps in policies.values() for p in ps if isinstance(p, Replay)):
            policy.on_rekey = lambda now: sfu.signalling.poll(now - t0)
        downgrade_answers(sfu, {pub for pub, _ in plan.pairs.get("downgrade-signalling", [])})
        if "key-substitution" in plan.pairs:
            pair = plan.pairs["key-substitution"][0]
            run.mitm = substitute_keys(sfu, {index[pair[0]], index[pair[1]]}, seed=seed)

    router = PairRouter([p for ps in policies.values() for p in ps])
    run.result = run_call(mode, len(plan.names), seconds or attack_seconds(), seed, size, policy=router,
                          key_policy=REKEY_POLICY if plan.rekey else CALL_KEY_POLICY, sfu_setup=setup)
    if run.result.members and run.result.members != index:
        raise RuntimeError(f"members joined out of order: {run.result.members}")
    return run


def run_attacks(names: Iterable[str] = ATTACK_NAMES, mode: str = "e2ee", *, participants: int = 3,
                seconds: float | None = None, seed: int = 0,
                size: Size = "ci") -> tuple[pd.DataFrame, list[AttackRun]]:
    """Run attacks ``names`` in ``mode`` in as few calls as :func:`plan_calls` packs them.

    Args:
        names: attack names (:data:`ATTACK_NAMES`).  mode: a call mode, "dtls-srtp" or "e2ee" (the
            Jitsi-style "clear-prefix" runs too; the check names then mean its AES-GCM tag and trailer).
        participants: per call (three give six pairs).  seconds: media per call (default
            :func:`attack_seconds`).  seed: pictures, SSRCs, frame keys and the attacks' choices.
        size: picture size of the calls (default "ci": more participants fit in real time).

    Returns:
        (one :func:`measure` row per attack, the :class:`AttackRun` of each call).
    Raises:
        ValueError: an unknown attack or mode.  DTLSError, CallSetupError: a call failed to start.
    """
    runs = [run_plan(plan, mode, seconds=seconds, seed=seed, size=size)
            for plan in plan_calls(names, participants)]
    rows = [measure(name, run) for run in runs for name in run.plan.pairs]
    order = {n: i for i, n in enumerate(ATTACK_NAMES)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[r["attack"]])), runs


def run_attack(name: str, mode: str = "e2ee", *, participants: int = 2, seconds: float | None = None,
               seed: int = 0, size: Size = "ci") -> pd.DataFrame:
    """One attack alone in one call of ``participants``: its row of the matrix (a 1-row DataFrame)."""
    return run_attacks([name], mode, participants=participants, seconds=seconds, seed=seed, size=size)[0]


@dataclass
class Matrix:
    """:func:`run_matrix`'s result: the table (:data:`MATRIX_COLUMNS`) and the calls behind it."""

    table: pd.DataFrame
    runs: list[AttackRun]

    def run_of(self, attack: str, mode: str) -> AttackRun:
        """The call in which ``attack`` ran in ``mode``."""
        return next(r for r in self.runs if r.mode == mode and attack in r.plan.pairs)


def run_matrix(names: Iterable[str] = ATTACK_NAMES, modes: Sequence[str] = MODES, *, participants: int = 3,
               seconds: float | None = None, seed: int = 0, size: Size = "ci") -> Matrix:
    """Every attack in every mode (three calls per mode for all fourteen attacks at three participants).

    Arguments as :func:`run_attacks`; ``modes`` lists the call modes, one after the other.
    """
    names = list(names)
    tables, runs = [], []
    for mode in modes:
        table, mode_runs = run_attacks(names, mode, participants=participants, seconds=seconds, seed=seed,
                                       size=size)
        tables.append(table)
        runs += mode_runs
    return Matrix(pd.concat(tables, ignore_index=True), runs)


def attack_matrix(names: Iterable[str] = ATTACK_NAMES, modes: Sequence[str] = MODES, **kw) -> pd.DataFrame:
    """:func:`run_matrix`'s table: one row per attack and mode (columns :data:`MATRIX_COLUMNS`)."""
    return run_matrix(names, modes, **kw).table


# --- measuring -----------------------------------------------------------------------------------

MATRIX_COLUMNS = ("attack", "mode", "pairs", "frames", "delivered", "accepted", "displayed", "wrong_displayed",
                  "rejected", "rejected_by", "caught_by", "collateral", "sfu_read", "outcome", "note")


def measure(name: str, run: AttackRun) -> dict:
    """The matrix row of attack ``name`` in ``run`` (columns :data:`MATRIX_COLUMNS`).

    ``frames``: frames the attack touched on its pairs (for none, key-substitution and
    downgrade-signalling every video frame of the pairs); ``delivered``/``accepted``/``displayed``:
    those that reached the receiver's frame transform / passed it / produced a picture;
    ``wrong_displayed``: a picture the publisher did not send (garbage or forged); ``rejected_by``:
    the receivers' drop reasons; ``caught_by``: the check that caught most (:data:`CHECKS`);
    ``collateral``: the pairs' other frames not shown correctly; ``sfu_read``: the publishers' video
    frames the SFU could decode.
    """
    spec, r = ATTACKS[name], run.result
    pairs = run.plan.pairs[name]
    log = [a for p in run.policies[name] for a in p.log if a.action != "rekey"]
    video = r.received[r.received.kind == "video"].sort_values("arrival")
    on_pairs = video[[(p, s) in pairs for p, s in zip(video.publisher, video.receiver)]]
    hit, frames = _attacked(name, log, on_pairs, r, pairs)
    rejected = hit[~hit.reason.isin(DISPLAYED)]
    reasons = Counter(rejected.reason)
    caught = _caught_by(name, run, reasons, frames, len(hit))
    sfu_read = _sfu_read(name, run, pairs)
    row = {"attack": name, "mode": run.mode, "pairs": ", ".join(f"{p}→{s}" for p, s in pairs),
           "frames": frames, "delivered": len(hit), "accepted": int(hit.decrypted.sum()),
           "displayed": int(hit.reason.isin(DISPLAYED).sum()),
           "wrong_displayed": int(hit.reason.isin(WRONG).sum()), "rejected": len(rejected),
           "rejected_by": ", ".join(f"{k} {v}" for k, v in reasons.most_common()), "caught_by": caught,
           "collateral": int((~on_pairs.index.isin(hit.index) & (on_pairs.reason != "")).sum()),
           "sfu_read": sfu_read}
    row["outcome"] = _outcome(spec, row)
    row["note"] = _note(name, run, hit, on_pairs)
    return row


def _attacked(name: str, log, on_pairs: pd.DataFrame, r: CallResult, pairs) -> tuple[pd.DataFrame, int]:
    """The receiver records of the attacked frames, and how many frames the attack touched."""
    if name in ("none", "key-substitution", "downgrade-signalling"):
        sent = r.sent[(r.sent.kind == "video") & r.sent.participant.isin({p for p, _ in pairs})]
        return on_pairs, sum(int((sent.participant == p).sum()) for p, _ in pairs)
    keys = {(a.publisher, a.subscriber, a.timestamp) for a in log}
    mask = [(p, s, t) in keys for p, s, t in zip(on_pairs.publisher, on_pairs.receiver, on_pairs.timestamp)]
    hit = on_pairs[mask]
    if name.startswith("replay"):  # the copies: every record of a replayed frame after its first
        hit = hit[hit.duplicated(["publisher", "receiver", "timestamp"], keep="first")]
    return hit, len(keys)


def _caught_by(name: str, run: AttackRun, reasons: Counter, frames: int, delivered: int) -> str:
    if name == "key-substitution" and run.mode != "dtls-srtp":
        return CHECKS["safety"] if not safety_numbers(run.result).match.all() else CHECKS[""]
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
    f = run.result.sfu.frames
    return int(f[(f.kind == "video") & f.publisher.isin(publishers)].matches.sum())


def _outcome(spec: AttackSpec, row: dict) -> str:
    if spec.goal == "none":
        return "honest"
    if spec.goal == "read":
        return "SFU reads" if row["sfu_read"] else "protected"
    if spec.goal == "disrupt":
        return "not prevented" if row["frames"] else "not run"
    return "displayed" if row["displayed"] else ("rejected" if row["frames"] else "not run")


def _note(name: str, run: AttackRun, hit: pd.DataFrame, on_pairs: pd.DataFrame) -> str:
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


def parse_rejected_by(rejected_by: str) -> list[tuple[str, int]]:
    """The (reason, count) pairs of a matrix row's ``rejected_by`` text (as :func:`measure` writes it)."""
    pairs = [item.rsplit(" ", 1) for item in rejected_by.split(", ") if item]
    return [(k, int(v)) for k, v in pairs]


# --- sans-I/O: replaying across a rekey ----------------------------------------------------------------


def replay_across_rekey(policy: RekeyPolicy = REKEY_POLICY, after: Sequence[float] | None = None,
                        seed: int = 0) -> pd.DataFrame:
    """Alice's old frames replayed to Bob at times ``after`` a rekey (sans-I/O :class:`Group`).

    Alice and Bob join at t = 0; from t = 0.5 s Alice sends five frames under her epoch-1 key and Bob
    decrypts them; at t = 1 s the signalling starts a periodic rekey (fresh keys, epoch 2); then the
    SFU re-sends Alice's first old frame. Default times: just after the rekey, after the senders'
    switch, just before and after the end of the grace period (``switch_delay + grace``), and later.
    One row per replay: seconds after the rekey, the KID's epoch, Bob's verdict, the epoch Alice
    sends in then, and whether her fresh frame decrypts. Each row's fresh frame is sent after the
    replay; once Bob has authenticated one under the new epoch, he deletes Alice's old key at once
    (the fixed members' retirement; with ``policy.naive()`` only the grace period ends it), so later
    replays meet an unknown KID rather than the replay window.
    """
    end = policy.switch_delay + policy.grace
    after = after if after is not None else (0.05, policy.switch_delay + 0.05, end - 0.05, end + 0.05, end + 0.5)
    group = Group(policy=dataclasses.replace(policy, rekey_interval=1.0), seed=seed)
    alice, bob = group.join(0.0), group.join(0.0)
    old = [group.send_frame(alice, b"old frame %d" % i, 0.5 + 0.05 * i) for i in range(5)]
    for i, frame in enumerate(old):
        group.receive_frame(bob, frame, 0.51 + 0.05 * i)
    group.tick(1.0)
    rows = []
    for dt in after:
        now = 1.0 + dt
        group.tick(now)
        try:
            group.receive_frame(bob, old[0], now)
            verdict = "accepted"
        except SFrameError as err:
            verdict = err.reason
        fresh = group.send_frame(alice, b"new frame", now)
        ok = group.receive_frame(bob, fresh, now) == b"new frame"
        rows.append({"seconds after rekey": round(dt, 3), "old frame's epoch": frame_origin(old[0]).epoch,
                     "replayed old frame": verdict, "epoch Alice sends in": frame_origin(fresh).epoch,
                     "fresh frame": "accepted" if ok else "?"})
    return pd.DataFrame(rows)
