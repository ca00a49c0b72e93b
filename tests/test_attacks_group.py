"""Tests for the attacks on the group key agreement (e2ee_lab.attacks.group, the stream swap, their matrix rows).

Two layers: the stream swap wired into a real :class:`SFUCore` with SFrame frames of a real
:class:`~e2ee_lab.crypto.keys.Group` (sans-I/O), and the four rows of the attack matrix from real
calls (the session's ``attack_matrix``: both modes, fixed and naive members), each asserted from
the receivers' records and the members' own counters.
"""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from e2ee_lab.attacks import runner
from e2ee_lab.attacks.group import CrossCallReplay, ExMember, Ghost, recorded_key_message
from e2ee_lab.attacks.measure import key_drops
from e2ee_lab.attacks.sfu import StreamSwap
from e2ee_lab.attacks.signalling import safety_numbers
from e2ee_lab.crypto.keys import (
    Group, KeyMessage, KIDStreamMismatch, MessageTampered, RekeyPolicy, parse_kid,
)
from e2ee_lab.crypto.sframe import decode_header
from e2ee_lab.labs import malicious as lab
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.rtp import Codec, FrameAssembled, FrameAssembler, RTPPacketizer, parse_rtp
from e2ee_lab.sfu import SFUCore

POLICY = RekeyPolicy(switch_delay=0.1, grace=10.0, rekey_interval=None)
POLICIES = pytest.mark.parametrize("policy", [POLICY, POLICY.naive()], ids=["fixed", "naive"])
SSRCS = {"alice": 0xA11CE, "bob": 0xB0B}


# --- the stream swap, sans-I/O ---------------------------------------------------------------------------


def _swap_through_core(group: Group) -> tuple[SFUCore, list[tuple[float, bytes]], dict[int, bytes]]:
    """Alice (member 0) and Bob (member 1) publish SFrame frames through an SFUCore whose policy moves
    Bob's frames onto Alice's stream towards Carol; returns the core, Carol's datagrams and Bob's
    frames by RTP timestamp."""
    core = SFUCore(policy=StreamSwap("alice", "carol", source="bob"), seed=3)
    for leg in ("alice", "bob", "carol"):
        core.add_leg(leg)
    packetizers = {n: RTPPacketizer(Codec.VP8, ssrc=SSRCS[n], payload_type=96, seed=i) for i, n in enumerate(SSRCS)}
    carol, bobs = [], {}
    for i in range(8):
        now = 1.0 + i / 15  # after the members switched to the last join's epoch
        for index, name in enumerate(SSRCS):
            data = group.send_frame(index, f"{name} frame {i}".encode() * 40, now)
            frame = EncodedFrame(data, 1000 * (index + 1) + 6000 * i, FrameMetadata(SSRCS[name], 96, "video"), "delta")
            if name == "bob":
                bobs[frame.timestamp] = data
            for packet in packetizers[name].serialize(frame):
                carol += [(now, d) for leg, d in core.receive_rtp(name, packet, now) if leg == "carol"]
    return core, carol, bobs


@POLICIES
def test_a_stream_swap_puts_bobs_frames_on_alices_ssrc_and_only_the_kid_tells(policy):
    group = Group(policy=policy, seed=5)
    for _ in range(3):
        group.join(0.0)
    core, datagrams, bobs = _swap_through_core(group)
    alice_ssrc = core.ssrc_map()[SSRCS["alice"], "carol"]
    on_alice = [parse_rtp(d) for _, d in datagrams if parse_rtp(d).ssrc == alice_ssrc]
    assert {p.timestamp for p in on_alice} == set(bobs)  # every frame on Alice's SSRC is Bob's, and only those
    seqs = [p.sequence_number for p in on_alice]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))  # fresh slots, no gap
    assert (SSRCS["bob"], "carol") not in core.ssrc_map()  # Bob's own stream never reached Carol
    assembler = FrameAssembler({96: Codec.VP8})
    frames = [e for now, d in datagrams if parse_rtp(d).ssrc == alice_ssrc
              for e in assembler.receive(d, now) if isinstance(e, FrameAssembled)]
    assert len(frames) == len(bobs)
    for frame in frames:
        assert parse_kid(decode_header(frame.data)[0]).member == 1  # Bob's KID, on the stream announced as Alice's
        if policy.checks.attribution:
            with pytest.raises(KIDStreamMismatch):
                group.receive_frame(2, frame.data, 2.0, sender=0, kind="video")
        else:  # the naive receiver decrypts it with Bob's key and shows it in Alice's place
            assert group.receive_frame(2, frame.data, 2.0, sender=0, kind="video").startswith(b"bob frame")


def test_a_replay_between_fresh_identity_keys_does_not_even_open():
    # The cross-call replay needs long-term identities: with identity keys drawn per call the pairwise
    # key differs, and the recorded message fails its tag even at a naive member.
    first, second = Group(policy=POLICY.naive()), Group(policy=POLICY.naive())
    for group in (first, second):
        group.join(0.0), group.join(0.0)
    recorded = next(data for recipient, data in first.relay if recipient == 1)
    bob = second.members[1]
    before = bob.snapshot()
    with pytest.raises(MessageTampered):
        bob.receive_key_message(recorded, 1.0)
    assert bob.snapshot() == before


def test_the_agents_need_a_key_agreement_to_attack():
    from e2ee_lab.sfu.server import SignallingRelay

    relay = SignallingRelay(POLICY)
    leaver = ExMember(relay, after=2, policy=POLICY, clock=lambda: 0.0)
    leaver.leave(1.0)  # never joined (dtls-srtp: nobody joins): nothing happens
    assert leaver.left_at is None and leaver.seal(0x1001, 0) is None
    ghost = Ghost(relay)
    assert ghost.open() == {} and ghost.index is None
    first = Group(policy=POLICY)
    first.join(0.0), first.join(0.0)
    replay = CrossCallReplay(relay, first.relay[0][1], leaked=None, epoch=1)
    assert replay.seal(0x1000, 0) is None  # no leaked key: no forgery


def test_plan_gives_events_their_own_calls_and_the_swap_three_participants():
    plans = runner.plan_calls(runner.KEY_ATTACKS)
    events = {p.event: p for p in plans if p.event}
    assert set(events) == {"ghost", "leave"}
    assert events["leave"].pairs["leaver-forgery"] == [("alice", "bob"), ("bob", "carol"), ("carol", "alice")]
    for plan in plans:
        for name in plan.pairs:
            assert runner.ATTACKS[name].rekey is None or name in ("ghost-member", "leaver-forgery") or not plan.event
    swap = next(p.pairs["stream-swap"] for p in plans if "stream-swap" in p.pairs)
    assert swap[0][1] == swap[1][1] and swap[0][0] != swap[1][0]  # two publishers, one subscriber
    with pytest.raises(ValueError, match="more than 2"):
        runner.plan_calls(["stream-swap"], participants=2)


# --- the four rows, from real calls --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix(attack_matrix) -> runner.Matrix:
    return attack_matrix


def _row(matrix, attack: str, mode: str = "e2ee", key_policy: str = "fixed"):
    table = matrix.table
    rows = table[(table.attack == attack) & (table["mode"] == mode) & table.key_policy.isin({key_policy, "-"})]
    assert len(rows) == 1
    return rows.iloc[0]


def test_each_key_attack_succeeds_in_dtls_srtp_and_against_naive_members_and_fails_against_fixed(matrix):
    for attack in runner.KEY_ATTACKS:
        fixed, naive, plain = (_row(matrix, attack, "e2ee", "fixed"), _row(matrix, attack, "e2ee", "naive"),
                               _row(matrix, attack, "dtls-srtp"))
        won = {"SFU reads", "displayed"}
        assert naive.outcome in won and plain.outcome in won, attack
        assert fixed.outcome in {"rejected", "protected"} and fixed.caught_by != "none", attack
        assert fixed.displayed == (fixed.delivered if attack == "ghost-member" else 0)  # the ghost touches no frame
    table = lab.naive_and_fixed(matrix.table)
    assert list(table.index) == list(runner.KEY_ATTACKS)
    assert dict(table["stopped by"]) == {"ghost-member": "roster check", "stream-swap": "attribution by KID",
                                         "leaver-forgery": "retirement at a new-epoch frame",
                                         "cross-call-replay": "call binding"}


def test_ghost_member(matrix):
    naive_run, fixed_run = (matrix.run_of("ghost-member", "e2ee", p) for p in ("naive", "fixed"))
    naive, fixed = _row(matrix, "ghost-member", "e2ee", "naive"), _row(matrix, "ghost-member", "e2ee", "fixed")
    ghost = naive_run.agents["ghost-member"]
    members = range(len(naive_run.plan.names))
    assert sorted(ghost.shown_to) == list(members)  # every member's REKEY listed the ghost
    keys = ghost.open()
    epoch = max(e for _, e in keys)
    assert {s for s, e in keys if e == epoch} == set(members)  # every member sealed its fresh key to it
    assert naive_run.result.summary["sfu"]["dropped"]["relay_no_such_member"] >= len(members)
    assert naive.sfu_read > 0 and naive.caught_by == "none" and key_drops(naive_run.result, "roster_mismatch") == 0
    assert safety_numbers(naive_run.result).match.all()  # pairwise safety numbers see nothing
    assert fixed_run.agents["ghost-member"].open() == {} and fixed.sfu_read == 0
    assert key_drops(fixed_run.result, "roster_mismatch") == len(members)
    assert fixed.caught_by == "roster check" and fixed.outcome == "protected"
    assert fixed.displayed == fixed.delivered == fixed.frames > 0  # the call went on unharmed
    plain = _row(matrix, "ghost-member", "dtls-srtp")
    assert plain.sfu_read == plain.frames > 0  # without frame keys the SFU needs no ghost


def test_stream_swap(matrix):
    for policy in ("naive", "fixed"):
        run = matrix.run_of("stream-swap", "e2ee", policy)
        (victim, sub), (source, _) = run.plan.pairs["stream-swap"]
        received = run.result.received
        shown_as_victim = received[(received.receiver == sub) & (received.publisher == victim)
                                   & (received.kind == "video")]
        sources = set(run.result.sent[(run.result.sent.participant == source)].timestamp)
        assert set(shown_as_victim.timestamp) <= sources  # everything on the victim's stream was the source's
        row = _row(matrix, "stream-swap", "e2ee", policy)
        assert row.frames > 0 and row.delivered > 0
        if policy == "naive":
            assert row.displayed == row.delivered == row.accepted and row.wrong_displayed == row.displayed
        else:
            assert row.accepted == row.displayed == 0 and row.rejected == row.delivered
            assert row.rejected_by == f"kid_stream_mismatch {row.rejected}" and row.caught_by == "attribution by KID"
    plain = _row(matrix, "stream-swap", "dtls-srtp")
    assert plain.displayed == plain.delivered > 0 and plain.caught_by == "none"


def test_leaver_forgery(matrix):
    for policy in ("naive", "fixed"):
        run, row = matrix.run_of("leaver-forgery", "e2ee", policy), _row(matrix, "leaver-forgery", "e2ee", policy)
        leaver = run.agents["leaver-forgery"]
        assert leaver.left_at is not None and leaver.user not in run.result.members  # it left the roster
        impersonated = {p.publisher for p in run.policies["leaver-forgery"]}
        assert impersonated == set(run.plan.names)  # every remaining member
        forged = [a for p in run.policies["leaver-forgery"] for a in p.log]
        assert len(forged) == row.frames == 2 * len(impersonated)
        for action in forged:  # the review's scenario: the impersonated sender spoke on the new epoch first
            assert int(action.detail.rsplit("KID ", 1)[1], 16) >> 12 == leaver.epoch + 1
        assert row.delivered > 0  # (a forged frame may be lost on a loaded machine; none is ever partly judged)
        if policy == "naive":
            assert row.displayed == row.accepted == row.wrong_displayed == row.delivered and row.rejected == 0
        else:
            assert row.accepted == row.displayed == 0 and row.rejected == row.delivered
            assert row.rejected_by == f"unknown_kid {row.delivered}"
            assert row.caught_by == "retirement at a new-epoch frame"
        assert f"{row.frames} of {row.frames} forgeries" in row.note
    plain = _row(matrix, "leaver-forgery", "dtls-srtp")
    assert plain.displayed == plain.delivered > 0


def test_cross_call_replay(matrix):
    sessions = set()
    for policy in ("naive", "fixed"):
        run, row = matrix.run_of("cross-call-replay", "e2ee", policy), _row(matrix, "cross-call-replay", "e2ee", policy)
        (pub, sub), = run.plan.pairs["cross-call-replay"]
        replay = run.agents["cross-call-replay"]
        assert replay.leaked is not None and replay.replayed_at is not None
        msg = replay.message
        assert (run.plan.names[msg.sender], run.plan.names[msg.recipient]) == (pub, sub)
        genuine = [KeyMessage.parse(bytes(d)) for s, r, d in zip(run.result.relay.sender, run.result.relay.recipient,
                                                                   run.result.relay.data) if (s, r) == (msg.sender, msg.recipient)]
        assert genuine[0].session == msg.session != genuine[1].session  # the earlier call's, then this call's
        sessions.add(genuine[1].session)
        earlier = [r for r in matrix.runs if r.mode == "e2ee" and r.key_policy == policy and r is not run]
        assert any(r.result.identities[sub][pub] == run.result.identities[sub][pub] for r in earlier)  # reused
        if policy == "naive":
            assert key_drops(run.result, "replay", {sub}) == 1 and key_drops(run.result, "wrong_call") == 0
            assert row.displayed == row.accepted == row.delivered > 0  # forged as pub with the earlier key
            genuine_frames = run.result.received[(run.result.received.receiver == sub)
                                                 & (run.result.received.publisher == pub)
                                                 & (run.result.received.kind == "video")]
            # pub's own frames all refused: under the wrong key (auth), and once a forgery's CTR has moved the
            # KID's window far ahead, as too old (replay)
            genuine_frames = genuine_frames[~genuine_frames.timestamp.isin({a.timestamp for p in run.policies[
                "cross-call-replay"] for a in p.log})]
            assert set(genuine_frames.reason) <= {"auth", "replay"} and len(genuine_frames) == row.collateral > 0
        else:
            assert key_drops(run.result, "wrong_call", {sub}) == 1 and key_drops(run.result, "replay") == 0
            assert row.delivered > 0 and row.accepted == 0 and row.rejected_by == f"auth {row.delivered}"
            assert row.caught_by == "call binding"
            assert row.collateral == 0
    assert len(sessions) == 2  # each call its own session ids
    plain = _row(matrix, "cross-call-replay", "dtls-srtp")
    assert plain.displayed == plain.delivered > 0 and "no key messages" in plain.note


def test_recorded_key_message_finds_the_message_and_the_key_it_leads_to(matrix):
    run = matrix.run_of("ghost-member", "e2ee", "naive")  # no key substitution in that call
    data, leaked = recorded_key_message(run.result, 0, 1, 2)
    msg = KeyMessage.parse(data)
    assert (msg.sender, msg.recipient, msg.seq) == (0, 1, 1)
    assert leaked == next(k.base_key for k in run.result.frame_keys.keys if (k.member, k.epoch) == (0, 2))
    assert recorded_key_message(run.result, 0, 0, 2) is None


def test_the_figure_has_a_column_for_the_naive_members(matrix):
    from e2ee_lab.analysis import plots

    figure = plots.attack_matrix(matrix.table)
    assert isinstance(figure, Figure)
    labels = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert labels == ["dtls-srtp", "e2ee", "e2ee\nnaive members"]


def test_identity_keys_are_fresh_per_run_and_shared_by_its_calls(matrix):
    e2ee = [r for r in matrix.runs if r.mode == "e2ee"]
    by_policy = {p: {bytes(r.result.identities["alice"]["alice"]) for r in e2ee if r.key_policy == p}
                 for p in ("fixed", "naive")}
    assert all(len(keys) == 1 for keys in by_policy.values())  # one long-term key per run
    assert by_policy["fixed"] != by_policy["naive"]  # drawn from the OS for each run


# --- Lab 04's in-memory scenarios (e2ee_lab.labs.key_attacks) ------------------------------------------------


def test_lab04_tables_show_each_check_and_its_limits():
    from e2ee_lab.labs import key_attacks as scenarios

    rekey = scenarios.ghost_in_rekey()
    assert rekey.loc["naive"].tolist() == ["ABC", 0, "A, B, C", True]
    assert rekey.loc["fixed"].tolist() == ["nobody", 3, "none", False]
    ghosted, got = scenarios.ghost_by_join()
    assert got.iloc[0].tolist() == [0, "A", True]  # every check passed; the ghost reads A
    codes = scenarios.group_code_table(ghosted)
    assert codes["same as A's"].tolist() == [True, False, False]
    assert codes.loc["B", "group code"] == codes.loc["C", "group code"]
    replay = scenarios.replay_from_earlier_call()
    assert replay.loc["naive"].tolist() == ["installed", "refused (replay)", "the earlier call"]
    assert replay.loc["fixed"].tolist() == ["wrong_call", "installed", "this call"]
    assert replay.loc["naive, identity keys new per call"].tolist() == ["auth", "installed", "this call"]
    attribution = scenarios.attribution_table()
    assert attribution.loc["fixed"].tolist() == ["kid_stream_mismatch", "accepted"]  # a member still forges
    assert attribution.loc["naive"].tolist() == ["accepted", "accepted"]
    leaver = scenarios.leaver_forgeries()
    assert leaver["naive members"].tolist() == ["accepted", "accepted", "accepted", "unknown_kid"]
    assert leaver["fixed members"].tolist() == ["unknown_kid", "accepted", "accepted", "unknown_kid"]
