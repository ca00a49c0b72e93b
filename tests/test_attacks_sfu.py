"""Tests for e2ee_lab.attacks (sfu: the policies; signalling, runner: the matrix) and e2ee_lab.labs.malicious.

Three layers: the tamper functions and SFrame's checks on real VP8 frames (sans-I/O, 10,000
tampered frames across the five suites); each policy wired into a real :class:`SFUCore` with real
packetized SFrame frames and a real receiver (sans-I/O, no sockets); and the attack matrix from real
calls (both modes, fixed and naive members: the session's ``attack_matrix`` of ``conftest.py``). The
attacks on the group key agreement have their own file, ``test_attacks_group.py``.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from e2ee_lab.attacks import runner, signalling
from e2ee_lab.attacks.sfu import FUTURE_CTR_STEP, Delay, Drop, Honest, Inject, PairRouter, Reorder, Replay, Tamper
from e2ee_lab.attacks.tamper import (
    REGIONS, TAG_LEN, flip_bit, forged_picture, forged_vp8_frame, region_span, sample_frames, tamper_frame,
    tamper_payload, tamper_sweep,
)
from e2ee_lab.crypto.sframe import (
    AuthenticationFailed, CipherSuite, ReplayedFrame, SFrameContext, SFrameError, decode_header,
)
from e2ee_lab.crypto.transforms import make_transform
from e2ee_lab.labs import malicious as lab
from e2ee_lab.media.codecs import VP8Decoder, picture_matches
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.media.scene import to_rgb
from e2ee_lab.rtp import Codec, FrameAssembled, FrameAssembler, FrameLost, PacketsMissing, RTPPacketizer
from e2ee_lab.rtp import VP8PayloadDescriptor, parse_rtp
from e2ee_lab.sfu import SFUCore
from e2ee_lab.sfu.server import Answer, Offer

SSRC, FPS = 0xA11CE, 15


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return sample_frames(16)


def _protect(frames: list[bytes], *, e2ee: bool = True, suite: int = 4, seed: int = 1):
    """Each frame through a sender transform, as EncodedFrames; and a matching receiver."""
    mode = "e2ee" if e2ee else "dtls-srtp"
    pair = make_transform(mode, suite=suite, seed=seed)
    meta = FrameMetadata(SSRC, 96, "video")
    sent = [pair.sender.transform(EncodedFrame(d, 1000 + 6000 * i, meta, "key" if i == 0 else "delta"))
            for i, d in enumerate(frames)]
    return sent, pair.receiver


def _receiver(e2ee: bool = True, suite: int = 4, seed: int = 1):
    """Another receiver for the keys :func:`_protect` uses (each subscriber has its own window)."""
    return make_transform("e2ee" if e2ee else "dtls-srtp", suite=suite, seed=seed).receiver


# --- tamper functions and SFrame's checks, sans-I/O ------------------------------------------------


def test_flip_bit_inverts_exactly_one_bit_and_checks_its_arguments():
    assert flip_bit(b"\x00\xff", 1, 0) == b"\x00\xfe"
    assert flip_bit(b"\x00\xff", 0, 7) == b"\x80\xff"
    for offset, bit in ((2, 0), (-1, 0), (0, 8)):
        with pytest.raises(ValueError):
            flip_bit(b"\x00\xff", offset, bit)


def test_regions_are_where_rfc9605_puts_them(frames):
    sent, _ = _protect(frames[:3])
    frame = sent[1].data
    hlen = decode_header(frame)[2]
    assert region_span(frame, "header", first=True, last=True) == (0, hlen)
    assert region_span(frame, "tag", first=True, last=True) == (len(frame) - TAG_LEN, len(frame))
    assert region_span(frame, "ciphertext", first=True, last=True) == (hlen, len(frame) - TAG_LEN)
    assert region_span(frame, "header", first=False, last=True) is None  # only in the first packet
    assert region_span(frame, "tag", first=True, last=False) is None  # only in the last packet
    assert region_span(frame[:2], "ciphertext", first=True, last=True) is None
    with pytest.raises(ValueError):
        region_span(frame, "trailer", first=True, last=True)
    with pytest.raises(ValueError):
        tamper_frame(b"\x01", "ciphertext", random.Random(0))


@pytest.mark.parametrize("region", REGIONS)
def test_tamper_frame_changes_one_bit_inside_its_region(frames, region):
    sent, _ = _protect(frames[:2])
    frame = sent[1].data
    start, end = region_span(frame, region, first=True, last=True)
    rng = random.Random(3)
    for _ in range(50):
        bad = tamper_frame(frame, region, rng)
        diff = [i for i, (a, b) in enumerate(zip(frame, bad)) if a != b]
        assert len(bad) == len(frame) and len(diff) == 1 and start <= diff[0] < end
        assert bin(frame[diff[0]] ^ bad[diff[0]]).count("1") == 1


def test_10000_tampered_frames_across_the_five_suites_are_all_rejected(frames):
    sweep = tamper_sweep(frames, suites=range(1, 6), per_suite=2000, seed=7)
    assert sweep.tampered.sum() == 10_000
    assert sweep.rejected.sum() == 10_000
    assert sweep.genuine_ok.sum() == 10_000  # each genuine twin decrypted after its tampered copy
    body = sweep[sweep.region != "header"]
    assert set(",".join(body.reasons).replace(" ", "").split(",")) <= {f"auth{n}" for n in range(10_001)}
    header_reasons = {r.split()[0] for rs in sweep[sweep.region == "header"].reasons for r in rs.split(", ")}
    assert header_reasons <= {"auth", "unknown_kid", "malformed", "replay"}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_bit_flip_anywhere_in_a_frame_is_rejected(frames, data):
    suite = data.draw(st.sampled_from(list(CipherSuite)))
    sent, receiver = _protect(frames[2:3], suite=suite, seed=5)
    frame = sent[0].data
    position = data.draw(st.integers(0, 8 * len(frame) - 1))
    with pytest.raises(SFrameError):
        receiver.transform(sent[0].replace(data=flip_bit(frame, position // 8, position % 8)))
    assert receiver.transform(sent[0]).data == frames[2]


def test_replay_window_in_window_replay_and_old_frames_rejected_out_of_order_accepted_once():
    send, recv = SFrameContext(4), SFrameContext(4, window=128)
    send.add_send_key(1, b"k" * 16)
    recv.add_receive_key(1, b"k" * 16)
    ct = [send.protect(1, b"frame %d" % i) for i in range(300)]
    for i in range(200):
        if i != 150:
            recv.unprotect(ct[i])
    with pytest.raises(ReplayedFrame, match="already received"):
        recv.unprotect(ct[190])  # in the window, seen: a replay
    with pytest.raises(ReplayedFrame, match="outside"):
        recv.unprotect(ct[10])  # 189 behind the newest: older than the window
    assert recv.unprotect(ct[150]) == b"frame 150"  # late but new: accepted once
    with pytest.raises(ReplayedFrame):
        recv.unprotect(ct[150])


@pytest.mark.parametrize("naive", [False, True], ids=["fixed", "naive"])
def test_a_replay_across_a_rekey_meets_the_old_keys_window_then_an_unknown_kid(naive):
    # The old key lives until the grace period ends; the fixed members delete it earlier, as soon
    # as Bob has authenticated one of Alice's frames under the new epoch (an earlier row's fresh frame).
    policy = runner.REKEY_POLICY.naive() if naive else runner.REKEY_POLICY
    rows = runner.replay_across_rekey(policy).to_dict("records")
    grace_end = policy.switch_delay + policy.grace
    old_epoch = rows[0]["old frame's epoch"]
    for i, row in enumerate(rows):
        spoken = any(r["epoch Alice sends in"] > old_epoch for r in rows[:i])
        retired = row["seconds after rekey"] >= grace_end or (spoken and not naive)
        assert row["replayed old frame"] == ("unknown_kid" if retired else "replay"), row
    verdicts = [row["replayed old frame"] for row in rows]
    assert verdicts.count("replay") == (3 if naive else 2) and verdicts[-1] == "unknown_kid"
    assert {row["fresh frame"] for row in rows} == {"accepted"}
    assert rows[-1]["epoch Alice sends in"] == old_epoch + 1


# --- policies in a real SFU core, sans-I/O -----------------------------------------------------------


class Wire:
    """Alice publishes real packetized frames through an SFUCore to Bob and Carol, with a clock."""

    def __init__(self, policy, frames: list[bytes], *, e2ee: bool = True) -> None:
        self.sent, self.receiver = _protect(frames, e2ee=e2ee)
        self.receivers = {"bob": self.receiver, "carol": _receiver(e2ee)}
        packetizer = RTPPacketizer(Codec.VP8, ssrc=SSRC, payload_type=96, seed=2)
        self.packets = [packetizer.serialize(f) for f in self.sent]
        self.core = SFUCore(policy=policy, seed=3)
        for leg in ("alice", "bob", "carol"):
            self.core.add_leg(leg)
        self.out: dict[str, list[tuple[float, bytes]]] = {"bob": [], "carol": []}

    def run(self, *, until: float | None = None) -> None:
        now = 0.0
        for i, packets in enumerate(self.packets):
            now = i / FPS
            self._timers(now)
            for p in packets:
                self._take(self.core.receive_rtp("alice", p, now), now)
        self._timers(until if until is not None else now + 5.0)

    def _timers(self, now: float) -> None:
        while (when := self.core.get_timer()) is not None and when <= now:
            self._take(self.core.handle_timer(when), when)

    def _take(self, datagrams, now: float) -> None:
        for leg, data in datagrams:
            self.out[leg].append((now, data))

    def received(self, leg: str = "bob") -> list:
        return [parse_rtp(d) for _, d in self.out[leg]]

    def frames_at(self, leg: str = "bob") -> tuple[list[FrameAssembled], list]:
        assembler, events = FrameAssembler({96: Codec.VP8}), []
        for now, data in self.out[leg]:
            events += assembler.receive(data, now)
        events += assembler.flush()
        frames = [e for e in events if isinstance(e, FrameAssembled)]
        return frames, [e for e in events if isinstance(e, (FrameLost, PacketsMissing))]

    def outcomes(self, leg: str = "bob") -> list[tuple[int, str]]:
        """(timestamp, "ok" or the SFrameError reason) per frame the leg reassembled, in order."""
        results = []
        for f in self.frames_at(leg)[0]:
            try:
                self.receivers[leg].transform(EncodedFrame(f.data, f.timestamp, FrameMetadata(SSRC, 96, "video")))
                results.append((f.timestamp, "ok"))
            except SFrameError as err:
                results.append((f.timestamp, err.reason))
        return results

    def timestamp(self, i: int) -> int:
        return self.sent[i].timestamp


def _seqs(packets) -> list[int]:
    return [p.sequence_number for p in packets]


def _contiguous(seqs: list[int]) -> bool:
    return all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))


@pytest.mark.parametrize("region", REGIONS)
def test_tamper_policy_flips_one_bit_of_its_region_for_one_subscriber_only(frames, region):
    wire = Wire(Tamper("alice", "bob", region=region, start=0.1, stop=0.6), frames)
    wire.run()
    originals = [p for packets in wire.packets for p in packets]
    bob, carol = wire.out["bob"], wire.out["carol"]
    assert [parse_rtp(d).payload for _, d in carol] == [parse_rtp(p).payload for p in originals]
    policy = wire.core.policy
    tampered_ts = {a.timestamp for a in policy.log}
    in_window = {wire.timestamp(i) for i in range(len(frames)) if 0.1 <= i / FPS < 0.6}
    assert tampered_ts == in_window
    for (_, got), sent in zip(bob, originals):
        a, b = parse_rtp(sent), parse_rtp(got)
        diff = [i for i, (x, y) in enumerate(zip(a.payload, b.payload)) if x != y]
        if a.timestamp not in tampered_ts or not diff:
            assert a.payload == b.payload
            continue
        assert len(diff) == 1 and bin(a.payload[diff[0]] ^ b.payload[diff[0]]).count("1") == 1
        _, body = VP8PayloadDescriptor.parse(a.payload)
        offset = diff[0] - (len(a.payload) - len(body))
        start, end = region_span(body, region, first=VP8PayloadDescriptor.parse(a.payload)[0].starts_frame,
                                 last=bool(a.marker))
        assert start <= offset < end
    outcomes = dict(wire.outcomes("bob"))
    assert {ts for ts, r in outcomes.items() if r != "ok"} == tampered_ts
    assert all(r == "ok" for _, r in wire.outcomes("carol"))


def test_tamper_payload_returns_none_for_packets_without_the_region(frames):
    wire = Wire(Honest("alice", "bob"), frames[:1])
    key_packets = wire.packets[0]
    assert len(key_packets) > 2, "the key frame spans several packets"
    middle = parse_rtp(key_packets[1])
    rng = random.Random(0)
    assert tamper_payload(middle.payload, "header", rng, marker=False) is None
    assert tamper_payload(middle.payload, "tag", rng, marker=False) is None
    assert tamper_payload(b"", "tag", rng, marker=True) is None


def test_replay_in_fresh_slots_passes_the_rtp_layer_and_meets_the_replay_window(frames):
    wire = Wire(Replay("alice", "bob", capture=(0.1, 0.3), at=0.6), frames)
    wire.run()
    bob = wire.received()
    assert _contiguous(_seqs(bob)), "fresh slots: no duplicate or missing sequence number"
    replayed = [a.timestamp for a in wire.core.policy.log if a.action == "replay"]
    assert replayed == [wire.timestamp(i) for i in range(len(frames)) if 0.1 <= i / FPS < 0.3]
    outcomes = wire.outcomes("bob")
    copies = [r for ts, r in outcomes if ts in replayed][len(replayed):]
    assert copies == ["replay"] * len(replayed)
    assert sum(r == "ok" for _, r in outcomes) == len(frames)


def test_replay_in_old_slots_repeats_sequence_numbers(frames):
    wire = Wire(Replay("alice", "bob", capture=(0.1, 0.3), at=0.6, fresh_seq=False), frames)
    wire.run()
    seqs = _seqs(wire.received())
    assert len(seqs) > len(set(seqs)), "the copies reuse sequence numbers SRTP has already seen"


def test_replay_asks_for_a_rekey_once(frames):
    policy = Replay("alice", "bob", capture=(0.0, 0.2), at=0.8, rekey_at=0.4)
    calls: list[float] = []
    policy.on_rekey = calls.append
    Wire(policy, frames).run()
    assert len(calls) == 1 and [a.action for a in policy.log].count("rekey") == 1


def test_drop_is_invisible_to_the_receiver(frames):
    wire = Wire(Drop("alice", "bob", start=0.2, stop=0.5), frames)
    wire.run()
    dropped = {a.timestamp for a in wire.core.policy.log}
    assert dropped == {wire.timestamp(i) for i in range(len(frames)) if 0.2 <= i / FPS < 0.5}
    assert _contiguous(_seqs(wire.received()))
    got, losses = wire.frames_at("bob")
    assert not losses and {f.timestamp for f in got}.isdisjoint(dropped)
    assert all(r == "ok" for _, r in wire.outcomes("bob"))
    assert wire.core.dropped_deliveries["attack_drop"] == sum(len(wire.packets[i]) for i in range(len(frames))
                                                              if wire.timestamp(i) in dropped)


def test_delay_holds_packets_until_the_timer_in_order(frames):
    policy = Delay("alice", "bob", delay=0.3, start=0.2)
    wire = Wire(policy, frames)
    wire.run(until=0.0 + (len(frames) - 1) / FPS)  # stop the clock at the last frame
    held = len(policy._held)
    assert held > 0 and policy.next_timer() is not None
    wire._timers(10.0)
    assert policy.next_timer() is None
    times = [t for t, d in wire.out["bob"] if parse_rtp(d).timestamp == wire.timestamp(len(frames) - 1)]
    assert times and min(times) >= (len(frames) - 1) / FPS + 0.3 - 1e-9
    assert _contiguous(_seqs(wire.received())) and all(r == "ok" for _, r in wire.outcomes("bob"))


def test_reorder_swaps_frames_in_fresh_slots_and_sframe_accepts_them(frames):
    wire = Wire(Reorder("alice", "bob", start=0.1, stop=0.6), frames)
    wire.run()
    outcomes = wire.outcomes("bob")  # decrypts: call once (the receiver's window remembers)
    order = [ts for ts, _ in outcomes]
    sent_order = [f.timestamp for f in wire.sent]
    assert sorted(order) == sorted(sent_order) and order != sent_order
    held = [a.timestamp for a in wire.core.policy.log if a.detail == "held"]
    for ts in held:
        assert order.index(ts) == order.index(sent_order[sent_order.index(ts) + 1]) + 1
    assert _contiguous(_seqs(wire.received()))
    assert all(r == "ok" for _, r in outcomes), "a CTR window accepts late frames once"


def test_inject_sframe_forgery_has_a_known_kid_and_a_future_ctr_and_fails_authentication(frames):
    wire = Wire(Inject("alice", "bob", times=(0.2, 0.4)), frames)
    wire.run()
    forged = {a.timestamp for a in wire.core.policy.log}
    assert len(forged) == 2
    real = {f.timestamp: f.data for f in wire.frames_at("bob")[0] if f.timestamp not in forged}
    fakes = [f for f in wire.frames_at("bob")[0] if f.timestamp in forged]
    kids = {decode_header(d)[0] for d in real.values()}
    for fake in fakes:
        kid, ctr, _ = decode_header(fake.data)
        assert kid in kids and ctr >= FUTURE_CTR_STEP
    outcomes = wire.outcomes("bob")
    assert [r for ts, r in outcomes if ts in forged] == ["auth", "auth"]
    assert [r for ts, r in outcomes if ts not in forged] == ["ok"] * len(frames)
    with pytest.raises(AuthenticationFailed):
        wire.receiver.transform(EncodedFrame(fakes[0].data, 0, FrameMetadata(SSRC, 96, "video")))


def test_injected_picture_decodes_in_dtls_srtp_and_fails_closed_in_e2ee(frames):
    for e2ee in (False, True):
        wire = Wire(Inject("alice", "bob", times=(0.2,), forge="picture"), frames, e2ee=e2ee)
        wire.run()
        forged = {a.timestamp for a in wire.core.policy.log}
        fake = next(f for f in wire.frames_at("bob")[0] if f.timestamp in forged)
        assert fake.data == forged_vp8_frame()
        if e2ee:
            assert dict(wire.outcomes("bob"))[fake.timestamp] != "ok"
        else:
            picture = to_rgb(VP8Decoder().decode(fake.data))
            assert picture_matches(picture, forged_picture())


def test_router_gives_each_pair_its_own_policy(frames):
    router = PairRouter([Tamper("alice", "bob", region="tag", start=0, stop=9),
                         Drop("alice", "carol", start=0, stop=9)])
    wire = Wire(router, frames)
    wire.run()
    assert not wire.out["carol"]
    assert {r for _, r in wire.outcomes("bob")} == {"auth"}
    assert router.next_timer() is None


def test_policy_arguments_are_checked():
    with pytest.raises(ValueError):
        Tamper("a", "b", region="trailer")
    with pytest.raises(ValueError):
        Inject("a", "b", forge="audio")
    with pytest.raises(ValueError):
        Inject("a", "b", forge="sealed")  # without a sealer
    with pytest.raises(ValueError):
        Inject("a", "b", forge="sframe", seal=lambda kid, ctr: None)


def test_a_sealed_injection_waits_until_ready_and_falls_back_to_a_picture_without_a_sealer_key(frames):
    kids_seen: list[int | None] = []

    def ready(kid):
        kids_seen.append(kid)
        return len(kids_seen) >= 3  # not ready for the first two due frames

    sealed = Inject("alice", "bob", times=(0.2,), forge="sealed", ready=ready,
                    seal=lambda kid, ctr: b"SEALED" + kid.to_bytes(2, "big"))
    wire = Wire(sealed, frames)
    wire.run()
    (action,) = sealed.log
    due = next(i for i in range(len(frames)) if i / FPS >= 0.2)  # the first frame at or after 0.2 s
    assert kids_seen[:3] == [kids_seen[0]] * 3 and kids_seen[0] is not None  # the stream's KID each time
    assert (action.timestamp + 1) % (1 << 32) == wire.timestamp(due + 2)  # injected two frames late
    fake = next(f for f in wire.frames_at("bob")[0] if f.timestamp == action.timestamp)
    assert fake.data == b"SEALED" + kids_seen[0].to_bytes(2, "big")
    plain = Inject("alice", "bob", times=(0.2,), forge="sealed", seal=lambda kid, ctr: None)
    wire = Wire(plain, frames)
    wire.run()
    fake = next(f for f in wire.frames_at("bob")[0] if f.timestamp == plain.log[0].timestamp)
    assert fake.data == forged_vp8_frame()  # no key to seal with: the SFU's own picture


def test_call_at_fires_each_callback_once_at_its_media_time(frames):
    policy = Honest("alice", "bob")
    calls: list[tuple[str, float]] = []
    policy.call_at(0.5, lambda now: calls.append(("late", policy.elapsed)))
    policy.call_at(0.2, lambda now: calls.append(("early", policy.elapsed)))
    Wire(policy, frames).run()
    assert [name for name, _ in calls] == ["early", "late"]
    assert 0.2 <= calls[0][1] < 0.2 + 1 / FPS and 0.5 <= calls[1][1] < 0.5 + 1 / FPS


# --- planning ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("participants, calls", [(3, 4), (4, 4)])
def test_plan_puts_every_attack_once_on_disjoint_pairs(participants, calls):
    # Three participants: six pairs a call, 23 pairs in all, and four kinds of call (no rekey, a
    # rekey, the ghost's REKEY, the leaver's LEAVE) that no attack with a rekey need may share.
    plans = runner.plan_calls(runner.ATTACK_NAMES, participants=participants)
    assert len(plans) == calls
    placed = [name for plan in plans for name in plan.pairs]
    assert sorted(placed) == sorted(runner.ATTACK_NAMES)
    assert sorted(p.event for p in plans if p.event) == ["ghost", "leave"]
    for plan in plans:
        pairs = [p for ps in plan.pairs.values() for p in ps]
        assert len(pairs) == len(set(pairs)) <= participants * (participants - 1)
        for name in plan.pairs:
            spec = runner.ATTACKS[name]
            if spec.event is not None:
                assert plan.event == spec.event
            elif plan.event is not None or spec.rekey is not None:
                assert spec.rekey is None if plan.event else spec.rekey in (None, plan.rekey)
    with pytest.raises(ValueError):
        runner.plan_calls(["sing"])


# --- the matrix from real calls ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix(attack_matrix) -> runner.Matrix:
    return attack_matrix


def _row(matrix, attack: str, mode: str, key_policy: str = "fixed"):
    table = matrix.table
    return table[(table.attack == attack) & (table["mode"] == mode)
                 & table.key_policy.isin({key_policy, "-"})].iloc[0]


REJECTED_IN_E2EE = ("tamper-header", "tamper-payload", "tamper-tag", "replay", "replay-rekey", "inject",
                    "downgrade-inject")
SFRAME_REASONS = {"auth", "unknown_kid", "malformed", "replay", "kid_stream_mismatch"}


def test_matrix_has_every_attack_in_both_modes_and_the_key_attacks_against_naive_members(matrix):
    table = matrix.table
    assert list(table.columns) == list(runner.MATRIX_COLUMNS)
    assert len(table) == 2 * len(runner.ATTACK_NAMES) + len(runner.KEY_ATTACKS)
    assert set(table[table["mode"] == "dtls-srtp"].key_policy) == {"-"}  # no key agreement, no policy
    assert set(table[table.key_policy == "naive"].attack) == set(runner.KEY_ATTACKS)
    assert len(matrix.runs) == 4 + 4 + 3  # dtls-srtp, e2ee fixed, e2ee naive
    for run in matrix.runs:
        for name, policies in run.policies.items():
            if name not in ("none", "downgrade-signalling", "key-substitution", "ghost-member"):
                assert any(p.log for p in policies), f"{name} did nothing in {run.mode}"


@pytest.mark.parametrize("attack", REJECTED_IN_E2EE)
def test_e2ee_receivers_reject_every_attacked_frame(matrix, attack):
    row = _row(matrix, attack, "e2ee")
    assert row.frames > 0 and row.delivered > 0
    assert row.displayed == 0 and row.accepted == 0 and row.rejected == row.delivered
    assert {k for k, _ in runner.parse_rejected_by(row.rejected_by)} <= SFRAME_REASONS
    assert row.sfu_read == 0 and row.outcome == "rejected"


def test_e2ee_catches_each_attack_with_the_expected_check(matrix):
    reasons = {a: {k for k, _ in runner.parse_rejected_by(_row(matrix, a, "e2ee").rejected_by)} for a in REJECTED_IN_E2EE}
    assert reasons["tamper-payload"] == reasons["tamper-tag"] == {"auth"}
    assert reasons["replay"] == {"replay"}
    assert reasons["replay-rekey"] <= {"unknown_kid", "replay"}
    assert reasons["inject"] <= {"auth", "unknown_kid"}


def test_injected_and_downgraded_frames_are_never_displayed_in_e2ee(matrix):
    for attack in ("inject", "downgrade-inject", "downgrade-signalling"):
        row = _row(matrix, attack, "e2ee")
        assert row.delivered > 0 and row.displayed == 0 and row.wrong_displayed == 0
    signalled = _row(matrix, "downgrade-signalling", "e2ee")
    assert signalled.sfu_read > 0, "the victim fell back to plain frames, which the SFU decodes"


def test_dtls_srtp_receivers_display_tampered_replayed_and_forged_frames_unchecked(matrix):
    for attack in ("tamper-payload", "tamper-tag", "replay", "replay-rekey", "inject", "downgrade-inject"):
        row = _row(matrix, attack, "dtls-srtp")
        assert row.displayed > 0 and row.outcome == "displayed", attack
        assert not ({k for k, _ in runner.parse_rejected_by(row.rejected_by)} & SFRAME_REASONS)
    for attack in ("inject", "downgrade-inject"):
        forged = _row(matrix, attack, "dtls-srtp")
        assert forged.wrong_displayed == forged.delivered > 0
    assert _row(matrix, "tamper-tag", "dtls-srtp").caught_by == "none"
    assert (matrix.table[matrix.table["mode"] == "dtls-srtp"].sfu_read > 0).all()


def test_srtp_refuses_old_sequence_numbers_in_both_modes(matrix):
    for mode in runner.MODES:
        row = _row(matrix, "replay-same-seq", mode)
        assert row.frames > 0 and row.delivered == 0 and row.caught_by == "SRTP replay check"


def test_drop_delay_and_reorder_are_not_prevented_in_either_mode(matrix):
    for mode in runner.MODES:
        drop, delay, reorder = (_row(matrix, a, mode) for a in ("drop", "delay", "reorder"))
        assert drop.frames > 0 and drop.delivered == 0 and drop.caught_by == "none"
        assert delay.delivered > 0 and delay.displayed == delay.delivered
        assert float(delay.note.split()[1]) > 0.1, delay.note
        assert reorder.displayed > 0 and reorder.outcome == "not prevented"


def test_key_substitution_reads_e2ee_media_silently_until_safety_numbers_are_compared(matrix):
    row = _row(matrix, "key-substitution", "e2ee")
    assert row.delivered > 0 and row.displayed == row.delivered and row.rejected == 0
    assert row.sfu_read > 0 and row.caught_by == "safety numbers"
    run = matrix.run_of("key-substitution", "e2ee")
    numbers = signalling.safety_numbers(run.result)
    victims = set(run.plan.pairs["key-substitution"][0])
    mismatched = numbers[~numbers.match]
    assert len(mismatched) == 1 and {mismatched["first"].iloc[0], mismatched["second"].iloc[0]} == victims
    assert _row(matrix, "none", "e2ee").sfu_read == 0


def test_strip_sframe_drops_a_sframe_only_from_the_victims_answers():
    hook = signalling.strip_sframe({"bob"})
    answer = Answer(("127.0.0.1", 5000), "sha-256 AB")
    offers = {name: Offer(name, "sha-256 CD", {"video": 1}) for name in ("alice", "bob")}
    assert hook(offers["bob"], answer) == dataclasses.replace(answer, sframe=False)
    assert hook(offers["alice"], answer) is answer


def test_parse_rejected_by_reads_what_measure_writes():
    assert runner.parse_rejected_by("auth 12, unknown_kid 3") == [("auth", 12), ("unknown_kid", 3)]
    assert runner.parse_rejected_by("") == []


def test_run_attack_runs_one_attack_alone():
    row = runner.run_attack("tamper-tag", "e2ee", participants=2, seed=2)
    assert len(row) == 1 and row.attack.iloc[0] == "tamper-tag"
    assert row.rejected.iloc[0] == row.delivered.iloc[0] > 0 and row.displayed.iloc[0] == 0


# --- tables, figure and checks ---------------------------------------------------------------------------


def test_results_table_and_figure(matrix):
    table = lab.results_table(matrix.table)
    assert list(table.index) == list(runner.ATTACK_NAMES)
    assert list(table.columns) == ["the SFU", *runner.MODES, "e2ee, naive members"]
    assert table.loc["tamper-tag", "e2ee, naive members"] == ""  # the naive run has the key attacks only
    assert table.loc["tamper-tag", "e2ee"].startswith("rejected")
    assert table.loc["tamper-tag", "dtls-srtp"].startswith("DISPLAYED")
    caught = lab.what_each_check_caught(matrix.table)
    assert caught.loc["tamper-tag", "SFrame auth tag"] == _row(matrix, "tamper-tag", "e2ee").rejected
    from e2ee_lab.analysis import plots

    assert isinstance(plots.attack_matrix(matrix.table), Figure)


def test_checks_accept_the_measured_answers_and_hint_otherwise(matrix):
    table = matrix.table
    e2ee = table[(table["mode"] == "e2ee") & (table.key_policy != "naive")].set_index("attack")
    answer = {a: e2ee.loc[a].caught_by for a in lab.PREDICT}
    assert lab.check_predictions(answer, table).ok
    assert not lab.check_predictions(None, table).ok
    wrong = dict(answer, **{"tamper-tag": "replay window"})
    feedback = lab.check_predictions(wrong, table)
    assert not feedback.ok and "tamper-tag" in feedback.message and "replay window" in feedback.message
    assert "SFrame auth tag" not in feedback.message  # the hint does not name the check
    letter = lab.REKEY_CHOICES.letter_of  # the options are lettered per student
    assert lab.check_rekey_replay(letter("old-kid")).ok and not lab.check_rekey_replay(letter("srtp-replay")).ok
    assert "renumbered" in lab.check_rekey_replay(letter("srtp-replay")).message
    truth = lab.still_works(table)
    assert truth == {"drop", "delay", "reorder", "downgrade-signalling", "key-substitution"}
    assert lab.check_still_works(truth, table).ok
    for missing in truth:  # the hint names the kind of attack missing, never the attack
        feedback = lab.check_still_works(truth - {missing}, table)
        assert not feedback.ok and not any(name in feedback.message for name in runner.ATTACK_NAMES)
    assert not lab.check_still_works(truth | {"inject"}, table).ok
    headers = lab.replayed_headers(matrix)
    assert (headers.ctr.diff() < 0).any()  # the copies are in the stream the SFU sent
