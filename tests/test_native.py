"""Tests for e2ee_lab.native: a libwebrtc (wrtc) participant in the aiortc call, with libwebrtc's SFrame.

Marked ``native``. The call needs wrtc and root (a private network namespace with only ``lo``):
those tests skip, naming the reason, without them. The pure parts (the answer's candidates for
aiortc, the key plan, the ground truth of libwebrtc's timestamps) run everywhere; the refusals run
wherever wrtc imports, and never create a libwebrtc peer connection outside a namespace.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import pandas as pd
import pytest
from utils import other_interfaces

from e2ee_lab.call.capture import FRAME_KEYS_FILE, read_frame_keys
from e2ee_lab.call.stacks import add_call_arguments, run_call
from e2ee_lab.capture import sniff_problem
from e2ee_lab.crypto.keys import Group, KIDStreamMismatch, RekeyPolicy, kid_for, parse_kid
from e2ee_lab.crypto.sframe import AuthenticationFailed, MalformedHeader, UnknownKeyId, decode_header
from e2ee_lab.interop import WrtcSFrame, wrtc_problem
from e2ee_lab.media.scene import Scene
from e2ee_lab.native import NativeUnavailable, NotIsolated, native_problem, run_native_call
from e2ee_lab.native.call import key_frame_flags
from e2ee_lab.native.keys import InstalledKeys, plan_keys, refusal_reason
from e2ee_lab.native.sdp import share_bundle_candidates, stream_labels
from e2ee_lab.native.truth import NativeTruth
from e2ee_lab.rtp.vp8 import VP8PayloadDescriptor
from e2ee_lab.webrtc.sdp import candidates, check_loopback

pytestmark = pytest.mark.native
PROBLEM = native_problem()
needs_native = pytest.mark.skipif(PROBLEM is not None, reason=f"no native call here: {PROBLEM}")
needs_wrtc = pytest.mark.skipif(wrtc_problem() is not None, reason=str(wrtc_problem()))
LAB_SUMMARY_KEYS = {"mode", "participant_count", "seconds", "seed", "size", "srtp_profile", "participants",
                    "sfu", "wire", "garbage_sent"}
LAB_PARTICIPANT_KEYS = {"name", "video_frames_sent", "video_frames_expected", "video_frames_decoded",
                        "audio_frames_sent", "audio_frames_expected", "audio_frames_decoded", "dropped"}
LAB_SFU_KEYS = {"packets_in", "packets_forwarded", "video_frames_seen", "video_frames_decodable",
                "audio_frames_seen", "audio_frames_intelligible", "dropped"}

# libwebrtc M152's answer to an aiortc offer, as wrtc 0.1.0 wrote it (candidates in the first section only)
LIBWEBRTC_ANSWER = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1", "a=cryptex",
    "m=audio 57507 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 127.0.0.1",
    "a=candidate:1 1 udp 2122194687 127.0.0.1 57507 typ host generation 0 network-id 1",
    "a=candidate:2 1 udp 2122267903 ::1 56235 typ host generation 0 network-id 2",
    "a=candidate:3 1 tcp 1518214911 127.0.0.1 9 typ host tcptype active generation 0 network-id 1",
    "a=ice-ufrag:pwJt", "a=mid:0", "a=sendrecv", "a=msid:- a-track", "a=rtpmap:111 opus/48000/2",
    "a=end-of-candidates",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=ice-ufrag:pwJt", "a=mid:1", "a=sendrecv",
    "a=msid:- v-track", "a=rtpmap:96 VP8/90000", "a=end-of-candidates", ""])


# --- the answer, read by aiortc --------------------------------------------------------------------


def test_aiortc_sees_the_usable_candidate_in_every_bundled_section():
    shared = share_bundle_candidates(LIBWEBRTC_ANSWER)
    found = candidates(shared)
    assert {(c.mid, c.address, c.port, c.transport) for c in found} == {
        ("0", "127.0.0.1", 57507, "udp"), ("1", "127.0.0.1", 57507, "udp")}
    assert check_loopback(LIBWEBRTC_ANSWER) and check_loopback(shared)
    # everything but the candidate lines is kept, in order, and end-of-candidates follows them
    kept = [line for line in shared.splitlines() if not line.startswith("a=candidate:")]
    assert kept == [line for line in LIBWEBRTC_ANSWER.splitlines() if line and not line.startswith("a=candidate:")]
    video = shared.split("m=video")[1].splitlines()
    assert video.index("a=end-of-candidates") > max(i for i, x in enumerate(video) if x.startswith("a=candidate:"))


def test_an_answer_without_bundle_or_candidates_is_left_alone():
    unbundled = LIBWEBRTC_ANSWER.replace("a=group:BUNDLE 0 1\r\n", "")
    assert share_bundle_candidates(unbundled) == unbundled
    bare = "\r\n".join(x for x in LIBWEBRTC_ANSWER.split("\r\n") if not x.startswith("a=candidate:"))
    assert share_bundle_candidates(bare) == bare


def test_stream_labels_name_each_mid_by_its_track_id():
    assert stream_labels(LIBWEBRTC_ANSWER) == {"0": "a-track", "1": "v-track"}


# --- keys: the lab's members feeding libwebrtc -------------------------------------------------------


@pytest.fixture
def group():
    """alice (0), bob (1) and the native member (2), all past their first switch-over."""
    g = Group(policy=RekeyPolicy(switch_delay=0.1, grace=1.0, rekey_interval=None), seed=b"native test")
    for t in (0.0, 0.01, 0.02):
        g.join(t)
    g.tick(0.5)
    return g


STREAMS = [("alice", "audio"), ("alice", "video"), ("bob", "video")]
NAMES = {"alice": 0, "bob": 1, "libwebrtc": 2}


def test_the_native_member_sends_under_the_rosters_kid_of_each_kind(group):
    native = group.members[2]
    changes = plan_keys(native, STREAMS, NAMES, InstalledKeys())
    epoch = native.send_epoch
    own = native.base_keys()[2, epoch]
    assert changes.send == {"audio": (kid_for(epoch, 2, "audio"), own), "video": (kid_for(epoch, 2, "video"), own)}
    assert {k: parse_kid(kid) for k, (kid, _) in changes.send.items()} == {
        "audio": (epoch, 2, "audio"), "video": (epoch, 2, "video")}


def test_each_received_stream_gets_only_its_publishers_keys_of_its_kind_and_a_second_plan_is_empty(group):
    native = group.members[2]
    installed = InstalledKeys()
    changes = plan_keys(native, STREAMS, NAMES, installed)
    keys = native.base_keys()
    for publisher, kind in STREAMS:
        member = NAMES[publisher]
        assert changes.add[publisher, kind] == {kid_for(e, s, kind): k for (s, e), k in keys.items() if s == member}
        assert {parse_kid(kid)[1:] for kid in changes.add[publisher, kind]} == {(member, kind)}
    installed.apply(changes)
    assert not plan_keys(native, STREAMS, NAMES, installed)
    assert not plan_keys(native, [("mallory", "video")], NAMES, installed).add  # not a member: no key


def test_old_keys_stay_in_libwebrtc_for_switch_delay_plus_grace_after_the_rekey(group):
    """libwebrtc never says which KID authenticated a frame, so the native member never retires at a
    new-epoch frame: the old epoch's keys leave libwebrtc exactly when the member deletes them."""
    native, installed = group.members[2], InstalledKeys()
    installed.apply(plan_keys(native, STREAMS, NAMES, installed))
    old = set(installed.receive["alice", "video"])
    group.leave(1, 1.0)  # bob leaves: a new epoch, fresh keys from alice and the native member
    group.tick(1.2)
    changes = plan_keys(native, STREAMS, NAMES, installed)
    epoch = native.send_epoch
    assert changes.send == {k: (kid_for(epoch, 2, k), native.base_keys()[2, epoch]) for k in ("audio", "video")}
    assert ("bob", "video") not in changes.add and not changes.remove
    assert set(changes.add["alice", "video"]) == {kid_for(epoch, 0, "video")}
    installed.apply(changes)
    retire = 1.0 + group.policy.switch_delay + group.policy.grace
    group.tick(retire - 0.01)
    assert not plan_keys(native, STREAMS, NAMES, installed)  # still accepted just before the deletion
    group.tick(retire)
    later = plan_keys(native, STREAMS, NAMES, installed)
    assert later.remove["alice", "video"] == old and later.remove["bob", "video"] and not later.add


def test_keys_a_member_retired_by_a_new_epoch_frame_leave_libwebrtc_for_that_kind_only(group):
    """plan_keys follows the member's receive keys; only a frame it authenticated itself moves them."""
    native, installed = group.members[2], InstalledKeys()
    group.leave(1, 1.0)
    group.tick(1.2)
    installed.apply(plan_keys(native, STREAMS, NAMES, installed))
    assert len(installed.receive["alice", "video"]) == 2 and len(installed.receive["alice", "audio"]) == 2
    native.frame_authenticated(0, "video", native.epoch, 1.3)
    changes = plan_keys(native, STREAMS, NAMES, installed)
    assert set(changes.remove) == {("alice", "video")} and not changes.add
    assert {parse_kid(kid).epoch for kid in changes.remove["alice", "video"]} == {native.epoch - 1}


@pytest.mark.parametrize("error,kid,expected", [
    ("keyID", kid_for(2, 1, "video"), "kid_stream_mismatch"),  # bob's video in alice's video stream
    ("keyID", kid_for(2, 0, "audio"), "kid_stream_mismatch"),  # alice's audio in her video stream
    ("keyID", kid_for(1, 0, "video"), "unknown_kid"),  # alice's video under a key not (or no longer) held
    ("keyID", 1 << 12 | 2 << 8, "unknown_kid"),  # kind code 2: not a KID of the lab's layout
    ("authentication", None, AuthenticationFailed.reason), ("syntax", None, MalformedHeader.reason),
], ids=["other-member", "other-kind", "not-held", "not-layout", "auth", "syntax"])
def test_libwebrtcs_refusals_count_as_the_lab_receivers_would(error, kid, expected):
    assert refusal_reason(error, kid, 0, "video") == expected


@needs_wrtc
def test_libwebrtcs_audio_opens_at_a_lab_member_and_the_stream_check_holds_both_ways(group):
    native, alice = group.members[2], group.members[0]
    changes = plan_keys(native, [("alice", "video")], NAMES, InstalledKeys())
    kid, key = changes.send["audio"]
    sender = WrtcSFrame(native.suite, encrypting=True)
    sender.set_key(kid, key)
    frame = sender.protect(b"an Opus frame")
    assert decode_header(frame)[:2] == (kid, 0)
    with pytest.raises(KIDStreamMismatch):  # announced as the native member's video
        alice.unprotect(frame, 0.6, sender=2, kind="video")
    assert alice.unprotect(frame, 0.6, sender=2, kind="audio") == b"an Opus frame"  # no extra key needed
    receiver = WrtcSFrame(native.suite, encrypting=False)  # a decryptor of alice's video stream
    for kid, key in changes.add["alice", "video"].items():
        receiver.set_key(kid, key)
    audio = alice.protect(b"alice's audio", 0.6, kind="audio")
    with pytest.raises(UnknownKeyId):  # libwebrtc: a key-id error, counted as kid_stream_mismatch
        receiver.unprotect(audio)
    assert receiver.unprotect(alice.protect(b"alice's video", 0.6, kind="video")) == b"alice's video"


# --- ground truth of libwebrtc's timestamps --------------------------------------------------------


def _truth(video_rtp: list[int], written: list[float], audio_rtp: list[int] = ()):
    scene = Scene(2, width=64, height=48, fps=15)
    native = SimpleNamespace(name="libwebrtc", scene=scene,
                             written={"video": written, "audio": [i * 0.02 for i in range(50)]})
    view = [(0.0, "libwebrtc", "video", 1, 96, i, ts, True, b"", None, None) for i, ts in enumerate(video_rtp)]
    view += [(0.0, "libwebrtc", "audio", 2, 111, i, ts, True, b"", None, None) for i, ts in enumerate(audio_rtp)]
    truth = NativeTruth()
    truth.native, truth.sfu = native, SimpleNamespace(view=view)
    return truth


def test_video_frames_are_named_one_each_in_order_across_jitter_and_a_skipped_frame():
    written = [i / 15 for i in range(6)]
    written[2] += 0.03  # written late (a slow frame): its picture was stamped late too
    origin = 2**32 - 9000  # libwebrtc's random origin, wrapping
    stamps = [(origin + round(t * 90000)) % 2**32 for t in written]
    del stamps[4]  # libwebrtc's encoder skipped frame 4
    truth = _truth(stamps, written)
    assert [truth.native_index("video", ts) for ts in stamps] == [0, 1, 2, 3, 5]
    index, sent_at, thumb = truth("libwebrtc", "video", stamps[1])
    assert (index, sent_at) == (1, written[1]) and thumb.shape == (12, 16, 3)
    assert truth.native_index("video", 12345) is None  # a timestamp libwebrtc never sent


def test_audio_frames_are_named_by_samples_from_the_first_packet():
    truth = _truth([], [0.0], audio_rtp=[2**32 - 960, 0, 960 * 7])
    assert [truth.native_index("audio", ts) for ts in (2**32 - 960, 0, 960 * 7)] == [0, 1, 8]
    assert truth.native_index("audio", 960 * 60) is None  # beyond what was written
    assert truth("libwebrtc", "audio", 0)[2] is None


def test_key_frame_flags_read_the_sframe_headers_first_bit_as_vp8_would():
    descriptor = bytes(VP8PayloadDescriptor(True, picture_id=1))
    view = pd.DataFrame({"publisher": ["alice"] * 4, "kind": ["video"] * 4, "payload": [
        descriptor + bytes([0x98]) + b"x",  # CTR 8..255: C = 0, read as a key frame
        descriptor + bytes([0x99]) + b"x",  # CTR 256..65535: C = 1, read as a delta frame
        bytes(VP8PayloadDescriptor(False, picture_id=1)) + b"\x00",  # not a frame's first packet
        b""]})
    assert key_frame_flags(view, "alice") == {"key": 1, "delta": 1, "unparsed": 1}


# --- refusals --------------------------------------------------------------------------------------


@needs_wrtc
@pytest.mark.skipif(not other_interfaces(), reason="this machine has no interface besides lo")
def test_no_libwebrtc_participant_outside_a_private_namespace():
    from e2ee_lab.native.participant import NativeParticipant

    with pytest.raises(NotIsolated, match="interfaces besides lo"):
        NativeParticipant(0, mode="e2ee", size=None, frames={}, seed=0, clock=float, key_policy=None, truth=None)


def test_without_root_the_call_says_so_in_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    import e2ee_lab.browser.isolation as isolation

    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(isolation, "_probe", False)  # probe again, as a non-root user would
    problem = native_problem()
    if wrtc_problem() is None:
        assert problem == ("a libwebrtc participant runs only in a private network namespace: "
                           "not root (unshare -n needs CAP_SYS_ADMIN)")
    with pytest.raises(NativeUnavailable):
        run_native_call("e2ee", 1, 1.0, size="ci")
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--stack", "webrtc", "--native", "1", "--size", "ci", "--out", str(tmp_path)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err == f"call: {problem}\n" and err.count("\n") == 1
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the command as another user")
def test_a_user_without_root_gets_one_line_and_exit_2():
    with tempfile.TemporaryDirectory(dir="/tmp") as home:
        os.chmod(home, 0o777)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "MPLCONFIGDIR": home}
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                               "e2ee_lab.cli", "call", "--stack", "webrtc", "--native", "1", "--size", "ci",
                               "--out", os.path.join(home, "out")],
                              capture_output=True, text=True, env=env, cwd=home, timeout=120)
        assert not os.path.exists(os.path.join(home, "out"))
    assert done.returncode == 2, done.stderr
    reason = wrtc_problem() or "a libwebrtc participant runs only in a private network namespace: not root"
    assert done.stderr.startswith(f"call: {reason}") and done.stderr.count("\n") == 1, done.stderr


def test_without_wrtc_the_call_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "wrtc", None)  # import wrtc now fails
    assert native_problem().startswith("wrtc is not installed")
    with pytest.raises(NativeUnavailable, match="pip install -e '.\\[interop\\]'"):
        run_call("e2ee", 1, 1.0, size="ci", stack="webrtc", native_participants=1)


@pytest.mark.parametrize("options,match", [
    ({"stack": "lab"}, "needs stack='webrtc'"), ({"native_participants": 2}, "exactly one native"),
    ({"rtp_sframe": "per-frame"}, "does not take rtp_sframe"), ({"garbage": 5.0}, "garbage"),
    ({"browser_participants": 1}, "cannot be combined"), ({"mode": "clear-prefix"}, "dtls-srtp or e2ee"),
    ({"capture": "tap"}, "socket tap"),
], ids=["stack", "two", "rtp-sframe", "garbage", "browser", "clear-prefix", "tap"])
def test_the_native_stack_refuses_what_it_cannot_do(options, match):
    options = {"stack": "webrtc", "native_participants": 1, **options}
    mode = options.pop("mode", "e2ee")
    with pytest.raises(ValueError, match=match):
        run_call(mode, 2, 1.0, size="ci", **options)


# --- the call ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def native_call(tmp_path_factory):
    """An e2ee call of alice, bob and libwebrtc, with a sniffer on every interface but lo."""
    out = tmp_path_factory.mktemp("native-e2ee")
    sniffer, others = None, {}
    if sniff_problem() is None:
        from scapy.all import AsyncSniffer

        others = other_interfaces()
        if others:
            sniffer = AsyncSniffer(iface=list(others), filter="udp", store=True)
            sniffer.start()
    try:
        result = run_call("e2ee", 2, 3.0, seed=3, size="ci", out=out, stack="webrtc", native_participants=1)
    finally:
        packets = (sniffer.stop() or []) if sniffer is not None else None
    result.sniffed = {"interfaces": others, "packets": packets}
    return result


@needs_native
def test_the_summary_has_the_lab_contract_with_libwebrtc_one_more_row(native_call):
    summary = native_call.summary
    assert LAB_SUMMARY_KEYS <= set(summary) and LAB_SFU_KEYS <= set(summary["sfu"])
    assert summary["stack"] == "webrtc" and summary["participant_count"] == 3
    assert [p["name"] for p in summary["participants"]] == ["alice", "bob", "libwebrtc"]
    for row in summary["participants"]:
        assert LAB_PARTICIPANT_KEYS <= set(row)
    assert (native_call.out / "summary.json").exists() and (native_call.out / "sfu-keys.json").exists()
    assert summary["loopback"]["candidates_loopback"] and summary["native"]["stats"]["sent/video"]["framesSent"] > 0


@needs_native
def test_the_lab_members_decode_libwebrtcs_frames(native_call):
    window = native_call.summary["window"]
    for name, kinds in native_call.summary["native"]["directions"]["native_to_lab"].items():
        for kind, counts in kinds.items():
            assert counts["sent"] >= 0.95 * window[f"{kind}_frames"], (name, kind, counts)
            assert counts["decoded"] >= 0.95 * counts["sent"], (name, kind, counts)


@needs_native
def test_libwebrtc_decodes_the_lab_members_frames(native_call):
    """Audio: every frame its SFrame decryptor passed on (whole call). Video: the window's pictures."""
    window = native_call.summary["window"]
    for name, kinds in native_call.summary["native"]["directions"]["lab_to_native"].items():
        audio, video = kinds["audio"], kinds["video"]
        assert audio["decoded"] >= 0.95 * audio["sent"] and audio["played"] >= 0.8 * audio["sent"], (name, audio)
        assert video["sent"] == window["video_frames"] and video["decoded"] >= 0.95 * video["sent"], (name, video)
    assert native_call.summary["native"]["stats"]["alice/video"]["decoderImplementation"] == "libvpx"


@needs_native
def test_libwebrtc_decodes_each_members_video_from_frame_0_whose_header_reads_as_a_key_frame(native_call):
    """A lab member's video KID has its own counter from 0, and libwebrtc's VP8 depacketizer reads the
    SFrame header's lowest bit as VP8's "not a key frame" (RFC 6386 §9.1): below CTR 8 the bit is the
    CTR's, so frame 0 (CTR 0) reads as a key frame and the odd CTRs 1, 3, 5, 7 as delta frames; from
    8 to 255 it is the low bit of the CTR's length minus one (0: key). libwebrtc decodes from frame 0
    and never asks for a key frame."""
    sent, received, view = native_call.sent, native_call.received, native_call.view
    window = native_call.summary["window"]["video_frames"]
    for name in ("alice", "bob"):
        mine = sent[(sent.participant == name) & (sent.kind == "video")].sort_values("frame_index")
        firsts = [view[(view.publisher == name) & (view.timestamp == ts)].payload.iloc[0] for ts in mine.timestamp]
        ctrs = [decode_header(VP8PayloadDescriptor.parse(p)[1])[1] for p in firsts]
        assert ctrs == list(range(len(mine))) and len(ctrs) >= window, name  # one CTR per frame, from 0
        assert key_frame_flags(view, name) == {"key": len(ctrs) - 4, "delta": 4, "unparsed": 0}, name
        got = set(received[(received.receiver == "libwebrtc") & (received.publisher == name)
                           & received.decoded & (received.kind == "video")].frame_index)
        assert 0 in got and len(got & set(range(window))) >= 0.95 * window, (name, sorted(got))
        assert native_call.summary["native"]["stats"][f"{name}/video"]["pliCount"] == 0, name


@needs_native
def test_libwebrtc_encrypts_audio_and_video_under_the_rosters_kids_each_counting_from_zero(native_call):
    view, kids = native_call.view, native_call.summary["native"]["send_kids"]
    member = native_call.members["libwebrtc"]
    headers = {}
    for kind in ("audio", "video"):
        payloads = view[(view.publisher == "libwebrtc") & (view.kind == kind)].drop_duplicates("timestamp").payload
        if kind == "video":
            payloads = [VP8PayloadDescriptor.parse(p)[1] for p in payloads]
        headers[kind] = [decode_header(p)[:2] for p in payloads]
        epoch = kids[kind]["epoch"]
        assert kids[kind] == {"kid": kid_for(epoch, member, kind), "epoch": epoch, "member": member, "kind": kind}
        assert {k for k, _ in headers[kind]} == {kids[kind]["kid"]}
        ctrs = [c for _, c in headers[kind]]
        assert ctrs[0] == 0 and ctrs == sorted(set(ctrs)), kind  # one counter per encryptor, no repeat
    assert kids["audio"]["epoch"] == kids["video"]["epoch"]


@needs_native
def test_the_call_draws_keys_from_the_os_and_writes_every_members_frame_keys(native_call):
    summary = native_call.summary
    assert summary["reproducible_keys"] is False and summary["key_policy"] == "fixed"
    keys = read_frame_keys(native_call.out / FRAME_KEYS_FILE)
    assert not keys.reproducible
    native = native_call.members["libwebrtc"]
    epoch = summary["native"]["send_kids"]["video"]["epoch"]
    assert {k.member for k in keys.keys if k.epoch == epoch} == set(native_call.members.values())
    mine = next(k for k in keys.keys if (k.member, k.epoch) == (native, epoch))
    assert mine.participant == "libwebrtc" and mine.kids["video"] == summary["native"]["send_kids"]["video"]["kid"]


@needs_native
def test_reproducible_keys_repeat_across_calls_and_default_keys_do_not(native_call, tmp_path):
    """Two calls of seed 3 with reproducible keys hold the same frame keys, libwebrtc's included;
    the default call of seed 3 (the module's) holds other ones."""
    runs = [run_call("e2ee", 2, 1.0, seed=3, size="ci", out=tmp_path / name, stack="webrtc", native_participants=1,
                     reproducible_keys=True) for name in ("a", "b")]
    held = []
    for run in runs:
        assert run.summary["reproducible_keys"] is True and run.frame_keys.reproducible
        assert read_frame_keys(run.out / FRAME_KEYS_FILE) == run.frame_keys
        held.append({(k.member, k.epoch): k.base_key for k in run.frame_keys.keys})
    assert held[0] == held[1] and (runs[0].members["libwebrtc"], 2) in held[0]
    default = {(k.member, k.epoch): k.base_key for k in native_call.frame_keys.keys}
    assert set(default) == set(held[0]) and not set(default.values()) & set(held[0].values())


@needs_native
def test_the_sfu_decodes_none_of_libwebrtcs_frames(native_call):
    frames = native_call.sfu.frames
    mine = frames[frames.publisher == "libwebrtc"]
    assert (mine.kind == "video").sum() >= 0.95 * native_call.summary["window"]["video_frames"]
    assert not mine.matches.any()
    assert native_call.summary["sfu"]["video_frames_decodable"] == 0
    assert native_call.summary["sfu"]["audio_frames_intelligible"] == 0


@needs_native
@pytest.mark.skipif(sniff_problem() is not None, reason=f"cannot sniff: {sniff_problem()}")
def test_nothing_on_other_interfaces_during_a_native_call(native_call):
    sniffed = native_call.sniffed
    if not sniffed["interfaces"]:
        pytest.skip("this machine has no interface besides lo")
    from scapy.layers.inet import IP, UDP

    ports = {int(c) for c in native_call.candidates.port}
    ours = [p for p in sniffed["packets"] if UDP in p
            and ({p[UDP].sport, p[UDP].dport} & ports or (IP in p and p[IP].src.startswith("127.")))]
    print(f"on {list(sniffed['interfaces'])}: {len(sniffed['packets'])} UDP datagrams during the call, "
          f"{len(ours)} from or to the call's {len(ports)} ports or 127/8")
    assert len(ports) >= 6
    assert ours == [], [p.summary() for p in ours]


SHARED = """
import asyncio, webrtc
async def main():
    webrtc.allow_loopback()
    pc = webrtc.RTCPeerConnection(webrtc.RTCConfiguration(ice_servers=[]))
    video, audio = pc.add_track(webrtc.VideoTrackGenerator().track), pc.add_track(webrtc.MediaStreamTrackGenerator("audio"))
    encryptor = webrtc.RTCRtpSFrameEncryptor(webrtc.RTCRtpSFrameEncryptorOptions("AES_128_GCM_SHA256_128"))
    video.transform = encryptor
    try:
        audio.transform = encryptor
        print("accepted")
    except webrtc.InvalidStateError as err:
        print("refused:", err)
    pc.close()
asyncio.run(main())
"""


@needs_native
def test_libwebrtc_refuses_one_encryptor_on_two_senders():
    """So an application cannot share one counter across its audio and video: two encryptors, two KIDs."""
    script = 'ip link set lo up && exec "$@"'
    done = subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", sys.executable, "-c", SHARED],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "refused: The transform is already used by an RTCRtpSender or RTCRtpReceiver"
