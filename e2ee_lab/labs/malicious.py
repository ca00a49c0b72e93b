"""Notebook 05 (a malicious SFU): every attack in real calls, what the receivers did, and the checks.

:func:`run_attack` and :func:`attack_matrix` run the policies of :mod:`e2ee_lab.attacks.sfu` (and two
attacks on the SFU's signalling) in real calls (:func:`~e2ee_lab.call.run_call`, DTLS-SRTP legs on
loopback, VP8 and Opus, SFrame in ``e2ee`` mode) and measure, per attack and mode, what the
subscribers' receive pipelines did with the attacked video frames. Calls are real time, so several
attacks share a call, each on its own (publisher → subscriber) pairs (:func:`plan_calls`): three
participants give six pairs, and every attack's row is measured on its pairs only. The
signalling attacks: *downgrade-signalling* drops SDP ``a=sframe`` from the SFU's answer to one
member (``SFUServer.answer_hook``), who then sends without SFrame; *key-substitution* serves the
SFU's own identity keys to two members and re-seals their key messages
(:class:`~e2ee_lab.crypto.keys.MITM` on the relay), which only a safety-number comparison reveals.

The sans-I/O halves run without a call: :func:`replay_across_rekey` here, and (re-exported from
:mod:`e2ee_lab.attacks.sfu` for the notebook) ``sample_frames``, ``tamper_sweep``, ``payload_layout``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from e2ee_lab.analysis.sfu_view import reassemble, view_packets
from e2ee_lab.attacks.sfu import (  # sample_frames, tamper_sweep, payload_layout: for the notebook
    AttackPolicy, Delay, Drop, Honest, Inject, PairRouter, Reorder, Replay, Tamper, payload_layout, sample_frames,
    tamper_sweep,
)
from e2ee_lab.call import CALL_KEY_POLICY, CallResult, run_call
from e2ee_lab.call.participant import participant_name
from e2ee_lab.config import Size, lab_size
from e2ee_lab.crypto.keys import MITM, Curve, Group, RekeyPolicy, SafetyNumberMismatch, frame_origin, safety_number
from e2ee_lab.crypto.keys.sender_keys import DEFAULT_SUITE
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.labs import Feedback, correct, not_yet, unanswered
from e2ee_lab.media.codecs import DecodeError, VP8Decoder, picture_matches
from e2ee_lab.media.scene import to_rgb, video_size

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


class _RelayAsGroup:
    """What :class:`~e2ee_lab.crypto.keys.MITM` needs of a group, backed by the call's signalling relay."""

    curve, suite = Curve.X25519, DEFAULT_SUITE  # what the call's participants use

    def __init__(self, relay) -> None:
        self.relay, self.directory = relay, relay.directory

    @property
    def interceptor(self):
        return self.relay.interceptor

    @interceptor.setter
    def interceptor(self, hook) -> None:
        self.relay.interceptor = hook


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
        victims = {pub for pub, _ in plan.pairs.get("downgrade-signalling", [])}
        if victims:
            sfu.answer_hook = lambda offer, answer: (
                dataclasses.replace(answer, sframe=False) if offer.name in victims else answer)
        if "key-substitution" in plan.pairs:
            pair = plan.pairs["key-substitution"][0]
            run.mitm = MITM(_RelayAsGroup(sfu.signalling), {index[pair[0]], index[pair[1]]}, seed=seed)

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


def mitm_reads(result: CallResult, mitm: MITM, publishers: Iterable[str]) -> int:
    """Video frames of ``publishers`` the key-substituting SFU decrypted and decoded to the sent picture."""
    packets = view_packets(result.view)
    packets = packets[(packets.kind == "video") & packets.publisher.isin(set(publishers))]
    sent = result.sent[result.sent.kind == "video"]
    index = {(p, int(t)): int(i) for p, t, i in zip(sent.participant, sent.timestamp, sent.frame_index)}
    decoders: dict[str, VP8Decoder] = {}
    read = 0
    for publisher, frame in reassemble(packets)[0]:
        try:
            rgb = to_rgb(decoders.setdefault(publisher, VP8Decoder()).decode(mitm.unprotect(frame.data)))
        except (SFrameError, DecodeError):
            continue
        i = index.get((publisher, frame.timestamp), -1)
        read += i >= 0 and picture_matches(rgb, result.scenes[publisher].rgb(i))
    return read


def safety_numbers(result: CallResult) -> pd.DataFrame:
    """Per pair of members: the safety number each computes from the keys it pinned, and if they match."""
    ids, rows = result.identities, []
    names = sorted(ids)
    for i, a in enumerate(names):
        for b in (b for b in names[i + 1:] if b in ids[a] and a in ids[b]):
            first, second = safety_number(ids[a][a], ids[a][b]), safety_number(ids[b][b], ids[b][a])
            try:
                first.verify(second)
                match = True
            except SafetyNumberMismatch:
                match = False
            rows.append((a, b, str(first), str(second), match))
    return pd.DataFrame(rows, columns=["first", "second", "first's number", "second's number", "match"])


# --- sans-I/O: tampering real frames, replaying across a rekey ---------------------------------------


def replay_across_rekey(policy: RekeyPolicy = REKEY_POLICY, after: Sequence[float] | None = None,
                        seed: int = 0) -> pd.DataFrame:
    """Alice's old frames replayed to Bob at times ``after`` a rekey (sans-I/O :class:`Group`).

    Alice and Bob join at t = 0; from t = 0.5 s Alice sends five frames under her epoch-1 key and Bob
    decrypts them; at t = 1 s the signalling starts a periodic rekey (fresh keys, epoch 2); then the
    SFU re-sends Alice's first old frame. Default times: just after the rekey, after the senders'
    switch, just before and after the end of the grace period (``switch_delay + grace``), and later.
    One row per replay: seconds after the rekey, the KID's epoch, Bob's verdict, the epoch Alice
    sends in then, and whether her fresh frame decrypts.
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
        rows.append({"seconds after rekey": round(dt, 3), "old frame's epoch": frame_origin(old[0])[0],
                     "replayed old frame": verdict, "epoch Alice sends in": frame_origin(fresh)[0],
                     "fresh frame": "accepted" if ok else "?"})
    return pd.DataFrame(rows)


def attack_list(participants: int = 3) -> pd.DataFrame:
    """The attacks, what the SFU does in each, and the call and pairs :func:`plan_calls` gives them."""
    rows = []
    for number, plan in enumerate(plan_calls(ATTACK_NAMES, participants), start=1):
        for name, pairs in plan.pairs.items():
            rows.append({"attack": name, "the SFU": ATTACKS[name].does, "call": number,
                         "rekey in the call": plan.rekey, "pairs": ", ".join(f"{p}→{q}" for p, q in pairs)})
    order = {n: i for i, n in enumerate(ATTACK_NAMES)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[r["attack"]])).set_index("attack")


# --- tables ------------------------------------------------------------------------------------------


def matrix_view(table: pd.DataFrame, mode: str | None = None) -> pd.DataFrame:
    """The matrix columns a reader needs, optionally for one mode."""
    cols = ["attack", "mode", "frames", "delivered", "displayed", "wrong_displayed", "rejected", "caught_by",
            "collateral", "sfu_read", "outcome", "note"]
    rows = table if mode is None else table[table["mode"] == mode]
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
    return f"{row.outcome}" + (f": {row.note}" if row.note else f" ({row.frames} frames)")


def results_table(table: pd.DataFrame) -> pd.DataFrame:
    """One line per attack and a column per mode: what happened, quotable."""
    verdicts = table.assign(verdict=table.apply(_verdict, axis=1))
    out = verdicts.pivot(index="attack", columns="mode", values="verdict")
    out = out.reindex([a for a in ATTACK_NAMES if a in out.index])
    out.insert(0, "the SFU", [ATTACKS[a].does for a in out.index])
    return out


def what_each_check_caught(table: pd.DataFrame, mode: str = "e2ee") -> pd.DataFrame:
    """For ``mode``: per attack, how many attacked frames each receiver check rejected."""
    rows = table[(table["mode"] == mode) & (table["rejected"] > 0)]
    counts = {a: dict(_reasons(rb)) for a, rb in zip(rows.attack, rows.rejected_by)}
    out = pd.DataFrame.from_dict(counts, orient="index").fillna(0).astype(int)
    return out.rename(columns=lambda r: CHECKS.get(r, r))


def _reasons(rejected_by: str) -> list[tuple[str, int]]:
    pairs = [item.rsplit(" ", 1) for item in rejected_by.split(", ") if item]
    return [(k, int(v)) for k, v in pairs]


# --- checks ------------------------------------------------------------------------------------------

#: Task 1's attacks (e2ee mode), and what a student may name as the check.
PREDICT = ("tamper-tag", "replay", "replay-same-seq", "replay-rekey", "inject", "downgrade-inject", "drop")
CHECK_NAMES = ("SFrame auth tag", "replay window", "unknown KID", "SFrame header", "SRTP replay check", "none")
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
                        "(lab 03): which KID does it name, and does any member use that KID?",
    "drop": "nothing arrives: can any receiver check reject a frame it never sees?",
}
REKEY_CHOICES = {
    "a": "SRTP's replay check rejects the copies.",
    "b": "The copies carry the old epoch's KID: the receiver keeps that key, with its replay window, only "
         "for the grace period and then deletes it, so they fail as replays or with an unknown KID.",
    "c": "The new key decrypts the old frames into garbage, which the VP8 decoder refuses.",
    "d": "After the rekey the sender's CTR restarted at 0, so the old CTRs look like future frames.",
}
_REKEY_HINTS = {
    "a": "the SFU renumbered the copies (fresh sequence slots), so SRTP accepted them; compare the "
         "replay-same-seq row, where it did not.",
    "c": "a receiver never tries the new key on an old frame: the KID in the authenticated header picks "
         "the key, and nothing is decrypted when that key is missing.",
    "d": "each key has its own CTR sequence and its own replay window; the old frames' KID still names the "
         "old key. Look at the 'replayed old frame' column of the sans-I/O table.",
}


#: The check each Task 1 attack meets by design (a run may show another too, e.g. when a late old key
#: still held its replay window): both are accepted.
DESIGNED = {"tamper-tag": "SFrame auth tag", "replay": "replay window", "replay-same-seq": "SRTP replay check",
            "replay-rekey": "unknown KID", "inject": "SFrame auth tag", "downgrade-inject": "unknown KID",
            "drop": "none"}


def check_predictions(answer: Mapping[str, str] | None, table: pd.DataFrame) -> Feedback:
    """Task 1: for each attack of :data:`PREDICT`, the check that caught it in e2ee mode (measured or
    :data:`DESIGNED`)."""
    if answer is None:
        return unanswered("Task 1")
    if not isinstance(answer, Mapping) or set(answer) != set(PREDICT):
        return not_yet(f"the answer is a dict with the keys {', '.join(PREDICT)}; each value one of "
                       f"{', '.join(CHECK_NAMES)}.")
    e2ee = table[table["mode"] == "e2ee"].set_index("attack")
    for attack in PREDICT:
        row = e2ee.loc[attack]
        seen = {row.caught_by.lower(), DESIGNED[attack].lower()}
        seen |= {CHECKS.get(k, k).lower() for k, _ in _reasons(row.rejected_by)}
        if str(answer[attack]).strip().lower() not in seen:
            return not_yet(f"{attack}: not {answer[attack]!r}. {_PREDICT_HINTS[attack]}")
    return correct("every forged, tampered or replayed frame met a check before the decoder: the AEAD tag, "
                   "the CTR window, the key lookup, and (for old sequence numbers) SRTP. A drop meets none.")


def check_rekey_replay(answer: str | None) -> Feedback:
    """Task 2: why replaying frames across a rekey fails (a letter of :data:`REKEY_CHOICES`)."""
    if answer is None:
        return unanswered("Task 2")
    letter = str(answer).strip().lower().strip("()")
    if letter not in REKEY_CHOICES:
        return not_yet(f"answer with one letter: {', '.join(REKEY_CHOICES)}.")
    if letter != "b":
        return not_yet(_REKEY_HINTS[letter])
    return correct("keys are per sender and epoch, named by the KID the header carries and authenticates. "
                   "While the old key is kept its replay window rejects the copies; once it is deleted the KID "
                   "is unknown. Deleting old keys after a grace period is what makes the rekey final.")


def still_works(table: pd.DataFrame, mode: str = "e2ee") -> set[str]:
    """Attacks whose ``mode`` row shows an effect the receivers did not prevent."""
    rows = table[table["mode"] == mode]
    return set(rows[rows.outcome.isin(["not prevented", "SFU reads", "displayed"])].attack)


def check_still_works(answer: Iterable[str] | None, table: pd.DataFrame) -> Feedback:
    """Task 3: the set of attacks that still work against the e2ee call."""
    if answer is None:
        return unanswered("Task 3")
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        return not_yet("the answer is a set of attack names, e.g. {'drop'}.")
    given, truth = {str(a) for a in answer}, still_works(table)
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
    return str(table[(table["mode"] == "e2ee") & (table.attack == name)].outcome.iloc[0])


def _note_of(table: pd.DataFrame, name: str) -> str:
    return str(table[(table["mode"] == "e2ee") & (table.attack == name)].note.iloc[0])


def check_mismatched(answer: Iterable[str] | None, result: CallResult) -> Feedback:
    """Task 4: the two members whose safety numbers differ after the key substitution."""
    if answer is None:
        return unanswered("Task 4")
    numbers = safety_numbers(result)
    bad = numbers[~numbers.match]
    truth = {str(bad["first"].iloc[0]), str(bad["second"].iloc[0])} if len(bad) else set()
    given = {str(a).lower() for a in answer} if not isinstance(answer, str) else {answer.lower()}
    if given != truth:
        return not_yet(f"not {sorted(given)}: in the safety-number table, find the pair whose two numbers "
                       "differ (match is False); every other pair reads the same 60 digits on both sides.")
    return correct(f"{' and '.join(sorted(truth))} pinned the SFU's keys for each other. Their call worked and "
                   "nothing in the media path noticed; reading the numbers aloud (or scanning a QR code) would.")
