"""Running a malicious SFU's attacks in real calls, and measuring what the receivers did.

:data:`ATTACKS` lists the attacks of the matrix: the forwarding policies of :mod:`e2ee_lab.attacks.sfu`
(tamper, replay, drop, delay, reorder, inject, downgrade-inject, stream-swap), the two attacks on
signalling of :mod:`e2ee_lab.attacks.signalling` (downgrade-signalling, key-substitution) and the
three on the group key agreement of :mod:`e2ee_lab.attacks.group` (ghost-member, leaver-forgery,
cross-call-replay). :func:`run_attacks` runs them in real calls (:func:`~e2ee_lab.call.run_call`,
DTLS-SRTP legs on loopback, VP8 and Opus, SFrame (RFC 9605) in ``e2ee`` mode) against the fixed
members or, with ``key_policy="naive"``, against members with every check of
:class:`~e2ee_lab.crypto.keys.KeyChecks` off (the lab's earlier behaviour, kept as the
counter-example); :func:`~e2ee_lab.attacks.measure.measure` gives, per attack, mode and key
policy, what the subscribers' receive pipelines did (:data:`MATRIX_COLUMNS`).

Calls are real time, so several attacks share a call, each on its own (publisher → subscriber)
pairs (:func:`plan_calls`): three participants give six pairs, and every attack's row is measured
on its pairs only. Attacks that change the key agreement mid-call get a call of their own that only
attacks indifferent to a rekey share: the replay across a rekey (a periodic rekey at 0.3 s,
:data:`REKEY_POLICY`), the ghost (its REKEY at 0.3 s) and the leaver (a fourth member without media
leaves at 0.3 s; :data:`EVENT_POLICY`). All calls of one :func:`run_attacks` reuse the members'
long-term identity keys, as devices do (sessions and frame keys are drawn per call): the
cross-call replay takes its recorded key message from an earlier call of the run (or from a short
recording call). :func:`run_matrix` runs every attack in both modes with the fixed members, and
the key-agreement attacks (:data:`KEY_ATTACKS`) again with the naive ones.

:func:`replay_across_rekey` is the sans-I/O half of the replay-rekey attack (a
:class:`~e2ee_lab.crypto.keys.Group`, no call).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from e2ee_lab.attacks.catalog import ATTACK_NAMES, ATTACKS, KEY_ATTACKS, AttackRun, AttackSpec, CallPlan
from e2ee_lab.attacks.group import CrossCallReplay, ExMember, Ghost, recorded_key_message
from e2ee_lab.attacks.measure import CHECKS, MATRIX_COLUMNS, measure, parse_rejected_by
from e2ee_lab.attacks.sfu import (
    AttackPolicy, Delay, Drop, Honest, Inject, PairRouter, Reorder, Replay, StreamSwap, Tamper,
)
from e2ee_lab.attacks.signalling import downgrade_answers, substitute_keys
from e2ee_lab.call import CALL_KEY_POLICY, resolve_key_policy, run_call
from e2ee_lab.call.participant import participant_name
from e2ee_lab.config import Size, lab_size
from e2ee_lab.crypto.keys import Group, IdentityKeyPair, RekeyPolicy, frame_origin
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.media.scene import video_size

__all__ = [
    "MODES", "REKEY_POLICY", "EVENT_POLICY", "EVENT_AT", "FORGE_AT", "KEY_FRAME_DELAY", "RECORDING_SECONDS",
    "CHECKS", "MATRIX_COLUMNS", "AttackSpec", "ATTACKS", "ATTACK_NAMES", "KEY_ATTACKS", "attack_seconds",
    "CallPlan", "plan_calls", "AttackRun", "run_plan", "run_attacks", "run_attack", "Matrix", "run_matrix",
    "attack_matrix", "measure", "parse_rejected_by", "replay_across_rekey",
]

MODES = ("dtls-srtp", "e2ee")
#: Rekey policy of the call that replays across a rekey (at 0.3 s): senders switch 0.25 s after the
#: epoch starts (time for the key messages to cross the relay), receivers delete the old keys 0.5 s
#: later, so the replay at 1.2 s meets a deleted key (a periodic rekey every 0.2 s would be due
#: whenever the SFU asks; the call's roster is polled only then).
REKEY_POLICY = RekeyPolicy(switch_delay=0.25, grace=0.5, rekey_interval=0.2)
#: Rekey policy of the ghost's and the leaver's calls: :data:`~e2ee_lab.call.CALL_KEY_POLICY`'s
#: switch after 0.1 s and 10 s grace (so that only the fixed members' retirement at a sender's first
#: new-epoch frame, never the grace period, stops the leaver's forgeries), and a periodic rekey
#: due whenever the ghost's server asks for one.
EVENT_POLICY = dataclasses.replace(CALL_KEY_POLICY, rekey_interval=0.2)
EVENT_AT = 0.3  #: media seconds: the ghost's REKEY, the ex-member's leave
KEY_FRAME_DELAY = 0.3  #: seconds after the ghost's REKEY: its SFU asks for key frames (members switched after 0.1 s)
FORGE_AT = (0.8, 1.1)  #: media seconds of the sealed forgeries (the leaver's also wait for the impersonated
#:                        sender's first frame under the new epoch, the review's scenario)
RECORDING_SECONDS = 0.3  #: media of the earlier call a cross-call replay records, when the run has none


_SHAPE_SIZE = {"ring": 3, "publisher": 2, "both-ways": 2, "swap": 2, "pair": 1}


def attack_seconds() -> float:
    """Media seconds of each attack call (the attacks' windows end by 1.2 s)."""
    return 1.5 if lab_size() == "ci" else 2.0


# --- planning: attacks onto pairs of a few calls ---------------------------------------------------


def plan_calls(names: Iterable[str] = ATTACK_NAMES, participants: int = 3) -> list[CallPlan]:
    """Pack attacks onto as few calls of ``participants`` as their pairs, rekeys and events allow.

    Raises:
        ValueError: an unknown attack name, fewer than 2 participants, or an attack whose shape
            needs more participants (a stream swap needs 3).
    """
    specs = [ATTACKS[n] if n in ATTACKS else _unknown(n) for n in dict.fromkeys(names)]
    if participants < 2:
        raise ValueError(f"an attack call needs at least 2 participants, not {participants}")
    people = [participant_name(i) for i in range(participants)]
    # Events first (a call each), then attacks that must or must not rekey, then the rest, big shapes first.
    order = sorted(specs, key=lambda s: (0 if s.event else 1 if s.rekey is not None else 2,
                                         {False: 0, True: 1, None: 2}[s.rekey], -_SHAPE_SIZE[s.shape]))
    calls: list[CallPlan] = []
    for spec in order:
        for call in calls:
            pairs = call.fit(spec) if call.admits(spec) else None
            if pairs:
                call.pairs[spec.name] = pairs
                break
        else:
            call = CallPlan(rekey=bool(spec.rekey) and spec.event is None, names=people, event=spec.event)
            pairs = call.fit(spec)
            if not pairs:
                raise ValueError(f"{spec.name} needs more than {participants} participants")
            call.pairs[spec.name] = pairs
            calls.append(call)
    return calls


def _unknown(name: str) -> AttackSpec:
    raise ValueError(f"unknown attack {name!r}; expected one of {', '.join(ATTACK_NAMES)}")


# --- running -------------------------------------------------------------------------------------


def _policy(name: str, pair: tuple[str, str], mode: str, seed: int, size: Size, run: AttackRun,
            other: str | None = None) -> AttackPolicy:
    pub, sub = pair
    e2ee = mode != "dtls-srtp"
    dims = (video_size(size).width, video_size(size).height)
    if name.startswith("tamper-"):
        region = {"tamper-payload": "ciphertext"}.get(name, name.removeprefix("tamper-"))
        return Tamper(pub, sub, region=region, sframe=e2ee, seed=seed)

    def sealed() -> Inject:  # frames sealed by the attack's agent (plain VP8 pictures without one)
        def seal(kid, ctr):
            agent = run.agents.get(name)
            return agent.seal(kid, ctr) if agent is not None else None  # type: ignore[attr-defined]

        def ready(kid):  # the leaver waits until the sender it impersonates has spoken on the new epoch
            agent = run.agents.get(name)
            return agent is None or not hasattr(agent, "ready") or agent.ready(kid)  # type: ignore[attr-defined]
        return Inject(pub, sub, forge="sealed", seal=seal, ready=ready, times=FORGE_AT, picture_size=dims, seed=seed)

    build = {
        "replay": lambda: Replay(pub, sub, seed=seed),
        "replay-same-seq": lambda: Replay(pub, sub, fresh_seq=False, seed=seed),
        "replay-rekey": lambda: Replay(pub, sub, capture=(0.05, 0.3), at=1.2, rekey_at=0.3, seed=seed),
        "drop": lambda: Drop(pub, sub, start=0.4, stop=0.9, seed=seed),
        "delay": lambda: Delay(pub, sub, seed=seed),
        "reorder": lambda: Reorder(pub, sub, seed=seed),
        "inject": lambda: Inject(pub, sub, forge="sframe" if e2ee else "picture", picture_size=dims, seed=seed),
        "downgrade-inject": lambda: Inject(pub, sub, forge="picture", picture_size=dims, seed=seed),
        "stream-swap": lambda: StreamSwap(pub, sub, source=other, seed=seed),
        "leaver-forgery": sealed,
        "cross-call-replay": sealed,
    }.get(name)
    policy = build() if build is not None else Honest(pub, sub, seed=seed)
    policy.name = name
    return policy


def _policies(name: str, pairs: list[tuple[str, str]], mode: str, seed: int, size: Size,
              run: AttackRun) -> list[AttackPolicy]:
    if name == "stream-swap":  # [(victim, sub), (source, sub)]: one policy on both pairs
        return [_policy(name, pairs[0], mode, seed, size, run, other=pairs[1][0])]
    return [_policy(name, pair, mode, seed, size, run) for pair in pairs]


def call_key_policy(plan: CallPlan, key_policy: str = "fixed") -> RekeyPolicy:
    """The members' rekey policy in ``plan``'s call: :data:`EVENT_POLICY` with an event,
    :data:`REKEY_POLICY` with a rekey, else the call's default; every check off for "naive"."""
    policy = EVENT_POLICY if plan.event else REKEY_POLICY if plan.rekey else CALL_KEY_POLICY
    checks = resolve_key_policy(key_policy).checks  # ValueError for another name
    return dataclasses.replace(policy, checks=checks)


def run_plan(plan: CallPlan, mode: str, *, seconds: float | None = None, seed: int = 0, size: Size = "ci",
             key_policy: str = "fixed", identities: dict[str, IdentityKeyPair] | None = None,
             recording: tuple[bytes, bytes | None] | None = None) -> AttackRun:
    """Run one planned call with its attacks installed; returns the :class:`AttackRun`.

    ``key_policy``: the members' checks, "fixed" or "naive". ``identities``: the members' long-term
    identity keys (default: new ones). ``recording``: for a cross-call replay, the key message
    recorded in an earlier call between the same identities and the key it leads to
    (:func:`~e2ee_lab.attacks.group.recorded_key_message`).
    """
    run = AttackRun(mode, plan, None, {}, key_policy=key_policy if mode != "dtls-srtp" else "-")  # type: ignore[arg-type]
    run.policies = {name: _policies(name, pairs, mode, seed, size, run) for name, pairs in plan.pairs.items()}
    index = {name: i for i, name in enumerate(plan.names)}  # member index = join order
    members_policy = call_key_policy(plan, key_policy)

    def setup(sfu) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for policy in (p for ps in run.policies.values() for p in ps if isinstance(p, Replay)):
            policy.on_rekey = lambda now: sfu.signalling.poll(now - t0)
        downgrade_answers(sfu, {pub for pub, _ in plan.pairs.get("downgrade-signalling", [])})
        if "key-substitution" in plan.pairs:
            pair = plan.pairs["key-substitution"][0]
            run.mitm = substitute_keys(sfu, {index[pair[0]], index[pair[1]]}, seed=seed)
        if mode != "dtls-srtp":
            _install_agents(run, sfu, members_policy, lambda: loop.time() - t0, recording, size)

    router = PairRouter([p for ps in run.policies.values() for p in ps])
    run.result = run_call(mode, len(plan.names), seconds or attack_seconds(), seed, size, policy=router,
                          key_policy=members_policy, sfu_setup=setup, identities=identities)
    joined = {n: i for n, i in run.result.members.items() if n in index}
    if joined and joined != index:
        raise RuntimeError(f"members joined out of order: {run.result.members}")
    return run


def _install_agents(run: AttackRun, sfu, policy: RekeyPolicy, clock, recording, size: Size) -> None:
    """The key-agreement attackers of ``run``'s plan, on ``sfu``'s signalling, with their triggers."""
    plan, relay = run.plan, sfu.signalling
    dims = (video_size(size).width, video_size(size).height)
    if "ghost-member" in plan.pairs:
        ghost = run.agents["ghost-member"] = Ghost(relay)

        def rekey(now: float) -> None:  # then a key frame under the keys sealed to the ghost (wall clock:
            ghost.rekey(clock())  # media-time triggers can fire together when packets arrive in a burst)
            asyncio.get_running_loop().call_later(KEY_FRAME_DELAY, sfu.request_key_frames)

        run.policies["ghost-member"][0].call_at(EVENT_AT, rekey)
    if "leaver-forgery" in plan.pairs:
        leaver = run.agents["leaver-forgery"] = ExMember(relay, after=len(plan.names), policy=policy,
                                                         clock=clock, picture_size=dims)
        run.policies["leaver-forgery"][0].call_at(EVENT_AT, lambda now: leaver.leave(clock()))
    if "cross-call-replay" in plan.pairs and recording is not None:
        run.agents["cross-call-replay"] = CrossCallReplay(relay, recording[0], leaked=recording[1],
                                                          epoch=_replay_ends(plan)[2], picture_size=dims)


def run_attacks(names: Iterable[str] = ATTACK_NAMES, mode: str = "e2ee", *, key_policy: str = "fixed",
                participants: int = 3, seconds: float | None = None, seed: int = 0,
                size: Size = "ci") -> tuple[pd.DataFrame, list[AttackRun]]:
    """Run attacks ``names`` in ``mode`` in as few calls as :func:`plan_calls` packs them.

    Args:
        names: attack names (:data:`ATTACK_NAMES`).  mode: a call mode, "dtls-srtp" or "e2ee" (the
            Jitsi-style "clear-prefix" runs too; the check names then mean its AES-GCM tag and trailer).
        key_policy: the members' checks, "fixed" (default) or "naive" (every check of
            :class:`~e2ee_lab.crypto.keys.KeyChecks` off: the counter-example).
        participants: per call (three give six pairs).  seconds: media per call (default
            :func:`attack_seconds`).  seed: pictures, SSRCs and the attacks' choices (keys come from
            the OS; the run's calls share the members' identity keys).
        size: picture size of the calls (default "ci": more participants fit in real time).

    Returns:
        (one :func:`measure` row per attack, the :class:`AttackRun` of each call).
    Raises:
        ValueError: an unknown attack, mode or key policy.  DTLSError, CallSetupError: a call failed to start.
    """
    resolve_key_policy(key_policy)
    identities = {participant_name(i): IdentityKeyPair.generate() for i in range(participants)}
    plans = sorted(plan_calls(names, participants), key=lambda p: "cross-call-replay" in p.pairs)
    runs: list[AttackRun] = []
    for plan in plans:
        recording = None
        if "cross-call-replay" in plan.pairs and mode != "dtls-srtp":
            recording = _recording(runs, plan) or _record(plan, mode, key_policy, identities, seed, size)
        runs.append(run_plan(plan, mode, seconds=seconds, seed=seed, size=size, key_policy=key_policy,
                             identities=identities, recording=recording))
    rows = [measure(name, run) for run in runs for name in run.plan.pairs]
    order = {n: i for i, n in enumerate(ATTACK_NAMES)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[r["attack"]]), columns=MATRIX_COLUMNS), runs


def _replay_ends(plan: CallPlan) -> tuple[int, int, int]:
    """(sender, recipient, epoch of the sender's key the recipient uses) of the cross-call replay."""
    pub, sub = plan.pairs["cross-call-replay"][0]
    return plan.names.index(pub), plan.names.index(sub), len(plan.names) - 1


def _recording(runs: list[AttackRun], plan: CallPlan) -> tuple[bytes, bytes | None] | None:
    """The cross-call replay's key message and leaked key from an earlier call of the run: one whose
    relay carried the pair's genuine message (no key substitution or replay on it) and whose frame
    keys still hold the key it leads to."""
    sender, recipient, epoch = _replay_ends(plan)
    for run in reversed(runs):
        substituted = run.mitm is not None and {sender, recipient} <= run.mitm.victims
        if run.mode == "dtls-srtp" or substituted or "cross-call-replay" in run.plan.pairs:
            continue
        found = recorded_key_message(run.result, sender, recipient, epoch)
        if found is not None and found[1] is not None:
            return found
    return None


def _record(plan: CallPlan, mode: str, key_policy: str, identities, seed: int,
            size: Size) -> tuple[bytes, bytes | None] | None:
    """A short call between the same identities, for the cross-call replay to record from."""
    result = run_call(mode, len(plan.names), RECORDING_SECONDS, seed, size, identities=identities,
                      key_policy=call_key_policy(dataclasses.replace(plan, pairs={}), key_policy))
    return recorded_key_message(result, *_replay_ends(plan))


def run_attack(name: str, mode: str = "e2ee", *, key_policy: str = "fixed", participants: int = 2,
               seconds: float | None = None, seed: int = 0, size: Size = "ci") -> pd.DataFrame:
    """One attack alone in one call of ``participants`` (a stream swap needs 3): its row of the
    matrix (a 1-row DataFrame)."""
    return run_attacks([name], mode, key_policy=key_policy, participants=participants, seconds=seconds,
                       seed=seed, size=size)[0]


@dataclass
class Matrix:
    """:func:`run_matrix`'s result: the table (:data:`MATRIX_COLUMNS`) and the calls behind it."""

    table: pd.DataFrame
    runs: list[AttackRun]

    def run_of(self, attack: str, mode: str, key_policy: str = "fixed") -> AttackRun:
        """The call in which ``attack`` ran in ``mode`` against the ``key_policy`` members (any in dtls-srtp)."""
        return next(r for r in self.runs if r.mode == mode and attack in r.plan.pairs
                    and (mode == "dtls-srtp" or r.key_policy == key_policy))


def run_matrix(names: Iterable[str] = ATTACK_NAMES, modes: Sequence[str] = MODES, *,
               naive: Iterable[str] = KEY_ATTACKS, participants: int = 3, seconds: float | None = None,
               seed: int = 0, size: Size = "ci") -> Matrix:
    """Every attack in every mode against the fixed members, then the attacks of ``names`` among
    ``naive`` against the naive members in every mode with frame keys (dtls-srtp has no key agreement,
    so its rows run once). Four calls per mode for all eighteen attacks at three participants, and
    three for the naive run. Other arguments as :func:`run_attacks`.
    """
    names = list(names)
    naive_names = [n for n in names if n in set(naive)]
    tables, runs = [], []
    for mode, policy, chosen in [*((m, "fixed", names) for m in modes),
                                 *((m, "naive", naive_names) for m in modes if m != "dtls-srtp")]:
        if not chosen:
            continue
        table, mode_runs = run_attacks(chosen, mode, key_policy=policy, participants=participants,
                                       seconds=seconds, seed=seed, size=size)
        tables.append(table)
        runs += mode_runs
    return Matrix(pd.concat(tables, ignore_index=True), runs)


def attack_matrix(names: Iterable[str] = ATTACK_NAMES, modes: Sequence[str] = MODES, **kw) -> pd.DataFrame:
    """:func:`run_matrix`'s table: one row per attack, mode and key policy (columns :data:`MATRIX_COLUMNS`)."""
    return run_matrix(names, modes, **kw).table


# --- sans-I/O: replaying across a rekey ----------------------------------------------------------------


def replay_across_rekey(policy: RekeyPolicy = REKEY_POLICY, after: Sequence[float] | None = None,
                        seed: int = 0, *, naive: bool = False) -> pd.DataFrame:
    """Alice's old frames replayed to Bob at times ``after`` a rekey (sans-I/O :class:`Group`).

    Alice and Bob join at t = 0; from t = 0.5 s Alice sends five frames under her epoch-1 key and Bob
    decrypts them; at t = 1 s the signalling starts a periodic rekey (fresh keys, epoch 2); then the
    SFU re-sends Alice's first old frame. Default times: just after the rekey, after the senders'
    switch, just before and after the end of the grace period (``switch_delay + grace``), and later.
    One row per replay: seconds after the rekey, the KID's epoch, Bob's verdict, the epoch Alice
    sends in then, and whether her fresh frame decrypts. Each row's fresh frame is sent after the
    replay; once Bob has authenticated one under the new epoch, he deletes Alice's old key at once
    (the fixed members' retirement; with ``naive=True``, members without the checks, only the grace
    period ends it), so later replays meet an unknown KID rather than the replay window.
    """
    policy = policy.naive() if naive else policy
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
