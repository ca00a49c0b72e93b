"""Integration tests of the call: real DTLS-SRTP legs on loopback, real VP8/Opus, an SFU in the middle.

Each mode runs once per session (module-scoped fixtures, ci size, 3 participants, 3 s): the
dtls-srtp call also records what was left running after it (tasks, threads, sockets), the e2ee call
runs from inside a running event loop (the notebook path) with garbage sent to the SFU's ports.
A few unit tests wire the sans-I/O media pipeline together in memory, without sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import threading

import numpy as np
import pandas as pd
import pytest
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket

from e2ee_lab.analysis.sfu_view import (
    FRAME_COLUMNS,
    SFUView,
    _judge_speech,
    analyze_packets,
    byte_entropy,
    ciphertext_entropy,
    sent_speech,
    view_packets,
)
from e2ee_lab.call import (
    CALL_KEY_POLICY, add_call_arguments, cli_call, read_frame_keys, resolve_key_policy, run_call, run_call_async,
)
from e2ee_lab.call.common import format_summary, real_time_verdict, records_table
from e2ee_lab.call.frame_keys import make_frame_crypto
from e2ee_lab.call.garbage import SPOOFED_KINDS, STRANGER_KINDS
from e2ee_lab.call.pipeline import PLAYOUT_BUDGET, MediaReceiver, MediaSender, ReceivedFrame, SentFrame
from e2ee_lab.crypto.keys import KeyMessage
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import FRAME_SAMPLES, SpeechSource
from e2ee_lab.sfu.server import Offer, SFUServer
from e2ee_lab.transport import Certificate, DTLSError, Fingerprint, connect_leg

SECONDS = 3.0
PEOPLE = 3
DELIVERY = 0.95
GARBAGE_RATE = 40.0


def _socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the directory's own descriptor, already closed
            pass
    return count


def _lab_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("e2ee-lab")]


@pytest.fixture(scope="module")
def dtls_call():
    """dtls-srtp, awaited in our own loop so that leftovers can be inspected before it closes."""
    async def run():
        sockets_before = _socket_fds()
        result = await run_call_async("dtls-srtp", PEOPLE, SECONDS, seed=1, size="ci")
        await asyncio.sleep(0)
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return result, {"tasks": leftovers, "sockets": _socket_fds() - sockets_before,
                        "threads": _lab_threads()}

    return asyncio.run(run())


@pytest.fixture(scope="module")
def e2ee_call():
    """e2ee from inside a running loop (as in a notebook), with garbage sent to the SFU."""
    async def from_notebook():
        return run_call("e2ee", PEOPLE, SECONDS, seed=2, size="ci", garbage=GARBAGE_RATE)

    return asyncio.run(from_notebook())


@pytest.fixture(scope="module")
def clear_prefix_call():
    return run_call("clear-prefix", PEOPLE, SECONDS, seed=3, size="ci")


@pytest.fixture(scope="module")
def calls(dtls_call, e2ee_call, clear_prefix_call):
    return {"dtls-srtp": dtls_call[0], "e2ee": e2ee_call, "clear-prefix": clear_prefix_call}


MODES = ["dtls-srtp", "e2ee", "clear-prefix"]


# --- delivery and what the SFU can read ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_receiver_decodes_95_percent_of_what_the_others_sent(calls, mode):
    result = calls[mode]
    for p in result.summary["participants"]:
        assert p["video_frames_expected"] >= DELIVERY * (PEOPLE - 1) * SECONDS * 15  # ci: 15 fps
        assert p["video_frames_decoded"] >= DELIVERY * p["video_frames_expected"], p
        assert p["audio_frames_decoded"] >= DELIVERY * p["audio_frames_expected"], p
    decoded = result.received[result.received.decoded & (result.received.kind == "video")]
    assert (decoded.mae < 10).all()


@pytest.mark.parametrize("mode", MODES)
def test_the_summary_says_whether_the_call_kept_real_time(calls, mode):
    summary, received = calls[mode].summary, calls[mode].received
    assert summary["playout_budget_s"] == PLAYOUT_BUDGET
    for p in summary["participants"]:
        mine = received[received.receiver == p["name"]]
        for kind in ("video", "audio"):
            of_kind = mine[mine.kind == kind]
            assert p[f"{kind}_frames_late"] == int(of_kind.late.sum())
            assert p[f"{kind}_frames_on_time"] == int((of_kind.decrypted & ~of_kind.late).sum())
            assert (of_kind.late == (of_kind.delay > PLAYOUT_BUDGET)).all()
    assert summary["real_time"] == real_time_verdict(summary["participants"])["real_time"]
    assert isinstance(summary["real_time_reason"], str) and summary["real_time_reason"]
    (process,) = summary["cpu"]["processes"]
    assert process["pid"] == os.getpid() and 0 < process["cpu_s"] and 0 < process["wall_s"]
    assert format_summary(summary).splitlines()[-1].startswith("real time: ")


@pytest.mark.parametrize("mode", MODES)
def test_a_three_person_room_has_every_camera_on_and_every_microphone_forwarded(calls, mode):
    summary = calls[mode].summary
    assert summary["publishers"] == PEOPLE and summary["loudest"]["active"] is False
    assert summary["loudest"]["audio_withheld"] == 0 and summary["encode"] == "live" and summary["views"] is None
    received = calls[mode].received
    assert (received.decoded <= received.verified).all() and (received.verified <= received.decrypted).all()
    sent = calls[mode].sent
    for p in summary["participants"]:
        assert p["audio_frames_expected"] == int(((sent.kind == "audio") & (sent.participant != p["name"])).sum())


def test_dtls_srtp_sfu_decodes_the_pictures_and_they_match(calls):
    result = calls["dtls-srtp"]
    sfu = result.summary["sfu"]
    assert sfu["video_frames_seen"] >= DELIVERY * len(result.sent[result.sent.kind == "video"])
    assert sfu["video_frames_decodable"] >= DELIVERY * sfu["video_frames_seen"]
    video = result.sfu.frames[result.sfu.frames.kind == "video"]
    assert video[video.matches].mae.mean() < 8
    assert set(result.sfu.pictures) == set(result.names)


def test_dtls_srtp_sfu_recovers_the_speech(calls):
    sfu = calls["dtls-srtp"].summary["sfu"]
    assert all(c > 0.8 for c in sfu["speech_correlation"].values()), sfu["speech_correlation"]
    assert sfu["audio_frames_intelligible"] >= 0.9 * sfu["audio_frames_seen"]


def test_a_picture_that_is_not_the_sent_one_does_not_count_as_decodable(calls):
    plain = calls["dtls-srtp"]
    names = plain.names
    swapped = {name: plain.scenes[names[(i + 1) % len(names)]] for i, name in enumerate(names)}
    view = analyze_packets(view_packets(plain.view), plain.sent, scenes=swapped, speech=plain.speech)
    video = view.frames[view.frames.kind == "video"]
    assert video.decoded.all() and not video.matches.any()
    assert set(video.reason) == {"garbage_picture"} and (video.mae > 20).all()
    assert view.summary()["video_frames_decodable"] == 0


@pytest.mark.parametrize("mode", ["e2ee", "clear-prefix"])
def test_encrypted_modes_leave_the_sfu_nothing_to_decode(calls, mode):
    result = calls[mode]
    sfu = result.summary["sfu"]
    assert sfu["video_frames_seen"] >= DELIVERY * len(result.sent[result.sent.kind == "video"])
    assert sfu["video_frames_decodable"] == 0
    if mode == "e2ee":  # libvpx refuses every SFrame ciphertext (clear-prefix keeps VP8's header: garbage pictures)
        assert sfu["video_frames_decoded"] == 0
    # Opus turns any bytes into some audio, so "decoded" says nothing there; intelligibility does
    assert sfu["audio_frames_intelligible"] == 0
    assert all(c < 0.2 for c in sfu["speech_correlation"].values()), sfu["speech_correlation"]


@pytest.mark.parametrize("mode", ["e2ee", "clear-prefix"])
def test_ciphertext_beyond_the_clear_prefix_has_full_entropy(calls, mode):
    entropy = ciphertext_entropy(view_packets(calls[mode].view), mode)
    assert set(entropy) == set(calls[mode].names)
    assert all(bits >= 7.9 for bits in entropy.values()), entropy


def test_byte_entropy_of_known_inputs():
    assert byte_entropy(b"") == 0.0
    assert byte_entropy(b"\x00" * 100) == 0.0
    assert byte_entropy(bytes(range(256)) * 4) == pytest.approx(8.0)


def _judged(chunks: dict[int, np.ndarray], sent: np.ndarray) -> pd.Series:
    """``_judge_speech`` on one publisher whose decoder produced ``chunks`` (index -> PCM)."""
    rows = [{"publisher": "p", "kind": "audio", "ssrc": 1, "timestamp": 960 * i, "frame_index": i,
             "frame_type": "audio", "packets": 1, "size": 80, "decoded": True, "matches": False,
             "mae": 0.0, "reason": ""} for i in range(len(sent) // FRAME_SAMPLES)]
    view = SFUView(frames=pd.DataFrame(rows, columns=list(FRAME_COLUMNS)))
    _judge_speech(view, {"p": chunks}, {"p": sent})
    return view.frames.matches


def test_one_chunk_of_speech_in_a_stream_of_noise_is_not_intelligible():
    sent = sent_speech(SpeechSource(), 100)  # 2 s of the speech sample
    assert _judged({i: sent[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] for i in range(100)}, sent).all()
    loud = max(range(100), key=lambda i: float(np.abs(sent[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]).sum()))
    rng = np.random.default_rng(7)
    noise = {i: rng.integers(-3000, 3000, FRAME_SAMPLES).astype(np.int16) for i in range(100)}
    noise[loud] = sent[loud * FRAME_SAMPLES:(loud + 1) * FRAME_SAMPLES]  # a chance hit, as ciphertext can give
    assert not _judged(noise, sent).any()


@pytest.mark.parametrize("mode", MODES)
def test_an_eavesdropper_on_the_wire_decodes_nothing(calls, mode):
    wire = calls[mode].summary["wire"]
    assert wire["audio_frames_seen"] > 0
    assert wire["video_frames_decodable"] == 0 and wire["audio_frames_intelligible"] == 0


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_dtls_handshake_ran_on_every_leg_and_checked_the_signalled_fingerprint(calls, mode):
    result = calls[mode]
    hs = result.handshakes
    assert sorted(hs.leg.unique()) == sorted(result.names) and len(hs) == 2 * PEOPLE
    assert (hs.version == "DTLSv1.2").all()
    assert (hs.profile == "AEAD_AES_128_GCM").all()
    assert (hs.peer_fingerprint == hs.expected_fingerprint).all()
    by_leg = {entry.leg: entry for entry in result.keylog}
    assert by_leg == result.participant_keys  # both ends of each leg hold the same keys


def test_srtp_keys_differ_per_leg_and_per_run(calls):
    keys = [bytes(k) for r in calls.values() for e in r.keylog for k in (e.client_write, e.server_write)]
    assert len(keys) == 2 * PEOPLE * len(calls)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("mode", ["e2ee", "clear-prefix"])
def test_frame_keys_come_from_key_messages_the_sfu_cannot_open(calls, mode):
    result = calls[mode]
    assert len(result.relay) == PEOPLE * (PEOPLE - 1)  # each joiner's key to and from everyone
    for data in result.relay.data:
        KeyMessage.parse(data)
    for name in result.names:
        assert result.key_holders[f"{name}'s frame key"] == set(result.names)
        assert result.key_holders[f"SRTP key of {name}'s leg"] == {name, "sfu"}


def test_dtls_srtp_mode_has_no_frame_keys(calls):
    result = calls["dtls-srtp"]
    assert result.relay.empty
    assert not [k for k in result.key_holders if "frame key" in k]


# --- robustness, loopback, clean stop -------------------------------------------------------------


def test_garbage_is_counted_and_dropped_while_the_call_goes_on(e2ee_call):
    sent = e2ee_call.summary["garbage_sent"]
    dropped = e2ee_call.summary["sfu"]["dropped"]
    assert set(sent) == set(STRANGER_KINDS + SPOOFED_KINDS)
    assert sum(dropped.values()) >= sum(sent.values())
    assert dropped["unexpected_source"] >= sum(sent[k] for k in STRANGER_KINDS)
    assert dropped["srtp_auth_failed"] >= sent["bad_tag"]
    assert dropped["srtp_malformed"] + dropped["srtp_auth_failed"] >= sent["truncated_rtp"] + sent["bad_tag"]
    assert dropped["srtp_replay"] >= sent["replay"] // 2
    assert dropped["unknown_ssrc"] >= sent["unknown_ssrc"] + sent["replay"] // 2
    for p in e2ee_call.summary["participants"]:
        assert p["video_frames_decoded"] >= DELIVERY * p["video_frames_expected"]


@pytest.mark.parametrize("mode", MODES)
def test_every_socket_and_key_log_endpoint_is_loopback(calls, mode):
    result = calls[mode]
    addresses = [a for s in result.sockets for a in (s["local"], s["remote"]) if a is not None]
    addresses += [a for e in result.keylog for a in (e.client, e.server)]
    assert len(addresses) >= 4 * PEOPLE
    assert all(ipaddress.ip_address(host) == ipaddress.ip_address("127.0.0.1") for host, _ in addresses)


def test_the_call_stops_cleanly(dtls_call, e2ee_call):
    _, leftovers = dtls_call
    assert leftovers == {"tasks": [], "sockets": 0, "threads": []}
    assert _lab_threads() == []


def test_bad_arguments_are_refused_before_anything_starts():
    with pytest.raises(ValueError, match="mode"):
        run_call("plaintext", size="ci")
    with pytest.raises(ValueError, match="participants"):
        run_call("e2ee", participants=1, size="ci")
    with pytest.raises(ValueError):
        run_call("e2ee", size="ci", srtp_profile="NULL_NULL")


def test_a_wrong_fingerprint_fails_the_handshake():
    async def run():
        sfu = SFUServer()
        mine, impostor = Certificate.generate(), Certificate.generate()
        answer = await sfu.accept(Offer("mallory", str(mine.fingerprint()), {"video": 1, "audio": 2}))
        try:
            with pytest.raises(DTLSError):
                await connect_leg(answer.address, certificate=mine, timeout=2.0,
                                  remote_fingerprint=impostor.fingerprint())
        finally:
            await sfu.close()

    asyncio.run(run())


def test_cli_writes_the_summary_and_the_sfu_key_log(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--mode", "dtls-srtp", "--participants", "2", "--seconds", "1.5",
                              "--size", "ci", "--out", str(tmp_path),
                              "--srtp-profile", "AES_CM_128_HMAC_SHA1_80"])
    assert args.func(args) == 0 and args.func is cli_call
    summary = json.loads((tmp_path / "summary.json").read_text())
    keylog = json.loads((tmp_path / "sfu-keys.json").read_text())
    assert summary["mode"] == "dtls-srtp" and len(summary["participants"]) == 2
    for p in summary["participants"]:
        assert {"video_frames_sent", "video_frames_decoded", "audio_frames_sent",
                "audio_frames_decoded"} <= set(p)
        assert p["video_frames_decoded"] >= DELIVERY * p["video_frames_expected"]
    assert {"packets_in", "packets_forwarded", "video_frames_seen", "video_frames_decodable",
            "audio_frames_seen", "dropped"} <= set(summary["sfu"])
    assert [leg["profile"] for leg in keylog["legs"]] == ["AES_CM_128_HMAC_SHA1_80"] * 2
    assert all(len(leg["client_write"]["master_salt"]) == 28 for leg in keylog["legs"])
    assert "alice" in capsys.readouterr().out


def _cli_call(tmp_path, name: str, mode: str, *extra: str):
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    out = tmp_path / name
    args = parser.parse_args(["--mode", mode, "--participants", "2", "--seconds", "0.3", "--size", "ci",
                              "--seed", "7", "--capture", "off", "--out", str(out), *extra])
    assert args.func(args) == 0
    return out, read_frame_keys(out / "frame-keys.json"), json.loads((out / "summary.json").read_text())


def test_frame_keys_come_from_the_os_unless_the_call_asks_for_reproducible_keys(tmp_path, capsys):
    # Finding 1: keys followed from the public seed. Two calls with one seed now hold different
    # keys; with --reproducible-keys they hold the same, and the call says so.
    runs = {name: _cli_call(tmp_path, name, "e2ee", *extra)
            for name, extra in (("a", ()), ("b", ()), ("c", ("--reproducible-keys",)),
                                ("d", ("--reproducible-keys",)))}
    printed = capsys.readouterr().out
    base = {name: {(k.epoch, k.member): k.base_key for k in keys.keys} for name, (_, keys, _) in runs.items()}
    assert set(base["a"]) == set(base["b"]) == {(0, 0), (1, 0), (1, 1)}  # (epoch, member): Bob joins at 1
    assert set(base["a"].values()).isdisjoint(base["b"].values())
    assert base["c"] == base["d"] and set(base["c"].values()).isdisjoint(base["a"].values())
    for name, (out, keys, summary) in runs.items():
        reproducible = name in "cd"
        assert summary["reproducible_keys"] is keys.reproducible is reproducible
        body = json.loads((out / "frame-keys.json").read_text())
        assert body["note"].startswith("SECRET") is not reproducible and ("seed" in body["note"]) is reproducible
        assert (out / "frame-keys.json").stat().st_mode & 0o777 == 0o600
    assert printed.count("keys REPRODUCIBLE from the seed") == 2 and printed.count("keys from the OS") == 2
    assert printed.count("frame-keys.json (the members' secret)") == 4


def test_a_clear_prefix_call_writes_its_frame_keys_and_a_naive_call_says_so(tmp_path):
    out, keys, summary = _cli_call(tmp_path, "cp", "clear-prefix", "--key-policy", "naive")
    assert summary["key_policy"] == "naive" and summary["reproducible_keys"] is False
    assert {k.participant for k in keys.keys} == {"alice", "bob"} and keys.suite.nh == 32
    assert all(p["audio_frames_decoded"] > 0 for p in summary["participants"])


def test_key_policy_names():
    assert resolve_key_policy("fixed") is CALL_KEY_POLICY
    assert resolve_key_policy("naive") == CALL_KEY_POLICY.naive()
    with pytest.raises(ValueError, match="naive"):
        run_call("e2ee", size="ci", key_policy="paranoid")
    with pytest.raises(TypeError):
        resolve_key_policy(3)


# --- the pipeline in memory (no sockets) ----------------------------------------------------------


def _pipeline_pair():
    scene = Scene(0, width=160, height=120, fps=15)
    sender = MediaSender("alice", scene=scene, speech=SpeechSource(), crypto=make_frame_crypto("dtls-srtp", None),
                         ssrcs={"video": 1111, "audio": 2222}, seed=0, srtp_overhead=16)
    truth = {"alice": sender}
    receiver = MediaReceiver("bob", crypto=make_frame_crypto("dtls-srtp", None), rtcp_ssrc=9,
                             truth=lambda pub, kind, ts: truth[pub].sent(kind, ts))
    receiver.announce(1111, "alice", 0, "video")
    receiver.announce(2222, "alice", 0, "audio")
    return sender, receiver


def test_pipeline_round_trip_in_memory():
    sender, receiver = _pipeline_pair()
    for i in range(10):
        for packet in sender.video_frame(i, i / 15) + sender.audio_frame(i, i / 15):
            assert receiver.receive_rtp(packet, i / 15) == []
    receiver.flush(1.0)
    assert len(receiver.records) == 20 and all(r.decoded for r in receiver.records)
    assert [r.frame_index for r in receiver.records if r.kind == "video"] == list(range(10))


def test_a_lost_frame_makes_the_receiver_send_a_pli_and_the_sender_a_key_frame():
    sender, receiver = _pipeline_pair()
    for packet in sender.video_frame(0, 0.0):
        receiver.receive_rtp(packet, 0.0)
    sender.video_frame(1, 0.07)  # lost on the way
    plis = []
    for i in range(2, 10):  # the gap is given up on after REASSEMBLY_WAIT (0.25 s)
        for packet in sender.video_frame(i, i / 15):
            plis += receiver.receive_rtp(packet, i / 15)
    assert len(plis) == 1 and receiver.plis_sent == 1  # throttled: one per interval
    (pli,) = RtcpPacket.parse(plis[0])
    assert isinstance(pli, RtcpPsfbPacket) and pli.fmt == RTCP_PSFB_PLI and pli.media_ssrc == 1111
    sender.handle_rtcp(plis[0])
    sender.handle_rtcp(b"\x81\xcegarbage")
    assert sender.plis_received == 1 and sender.dropped["malformed_rtcp"] == 1
    sender.video_frame(10, 10 / 15)
    assert [r.frame_type for r in sender.records][-2:] == ["delta", "key"]


def test_frame_crypto_needs_a_member_for_the_e2ee_modes():
    with pytest.raises(ValueError, match="member"):
        make_frame_crypto("e2ee", None)
    with pytest.raises(ValueError, match="mode"):
        make_frame_crypto("plaintext", None)
    assert make_frame_crypto("dtls-srtp", None).mode == "dtls-srtp"


def test_fingerprint_in_an_offer_is_what_sdp_carries():
    cert = Certificate.generate()
    text = str(cert.fingerprint())
    assert text.startswith("sha-256 ") and Fingerprint.parse(text) == cert.fingerprint()


def test_the_records_table_equals_pandas_own_conversion_of_the_records():
    received = [ReceivedFrame("bob", "alice", kind, ssrc, 90 * i, i, frame_type, 2, 1100 + i, 0.5 + i / 30,
                              np.nan if i % 3 else 0.02, True, i % 2 == 0, np.nan, "" if i % 2 == 0 else "late",
                              0.03, bool(i % 4 == 1), True)
                for i, (kind, ssrc, frame_type) in enumerate([("video", 7, "key"), ("audio", 9, None)] * 5)]
    sent = [SentFrame("alice", "audio", i, 9, 960 * i, None, 80, 96, 1, i / 50, speaking=i % 2 == 0) for i in range(4)]
    for records, record_type in [(received, ReceivedFrame), (sent, SentFrame)]:
        table = records_table(iter(records), record_type)
        expected = pd.DataFrame(records, columns=list(record_type.__dataclass_fields__))  # via dataclasses.asdict
        pd.testing.assert_frame_equal(table, expected)
        assert list(table.columns) == list(record_type.__dataclass_fields__) and len(table) == len(records)
    empty = records_table([], ReceivedFrame)
    assert empty.empty and list(empty.columns) == list(ReceivedFrame.__dataclass_fields__)
