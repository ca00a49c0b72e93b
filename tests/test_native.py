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

from e2ee_lab.call.stacks import add_call_arguments, run_call
from e2ee_lab.capture import sniff_problem
from e2ee_lab.crypto.keys import Group, RekeyPolicy, kid_for
from e2ee_lab.crypto.sframe import UnknownKeyId, decode_header
from e2ee_lab.interop import WrtcSFrame, wrtc_problem
from e2ee_lab.media.scene import Scene
from e2ee_lab.native import NativeUnavailable, NotIsolated, native_problem, run_native_call
from e2ee_lab.native.call import key_frame_flags
from e2ee_lab.native.keys import AUDIO_KID_BIT, InstalledKeys, accept_native_audio, plan_keys, send_kids
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


def test_the_native_member_sends_one_kid_per_kind_under_one_base_key(group):
    native = group.members[2]
    changes = plan_keys(native, STREAMS, NAMES, InstalledKeys())
    epoch = native.send_epoch
    own = native.base_keys()[2, epoch]
    assert changes.send == {"video": (kid_for(epoch, 2), own), "audio": (kid_for(epoch, 2) | AUDIO_KID_BIT, own)}
    assert send_kids(epoch, 2)["audio"] != send_kids(epoch, 2)["video"]


def test_each_received_stream_gets_only_its_publishers_keys_and_a_second_plan_is_empty(group):
    native = group.members[2]
    installed = InstalledKeys()
    changes = plan_keys(native, STREAMS, NAMES, installed)
    keys = native.base_keys()
    for publisher, kind in STREAMS:
        member = NAMES[publisher]
        assert changes.add[publisher, kind] == {kid_for(e, s): k for (s, e), k in keys.items() if s == member}
    installed.apply(changes)
    assert not plan_keys(native, STREAMS, NAMES, installed)
    assert not plan_keys(native, [("mallory", "video")], NAMES, installed).add  # not a member: no key


def test_a_rekey_adds_the_new_epoch_then_retires_the_old(group):
    native, installed = group.members[2], InstalledKeys()
    installed.apply(plan_keys(native, STREAMS, NAMES, installed))
    old = set(installed.receive["alice", "video"])
    group.leave(1, 1.0)  # bob leaves: a new epoch, fresh keys from alice and the native member
    group.tick(1.2)
    changes = plan_keys(native, STREAMS, NAMES, installed)
    assert changes.send["video"][0] == kid_for(native.send_epoch, 2) and ("bob", "video") not in changes.add
    assert changes.add["alice", "video"] and not set(changes.add["alice", "video"]) & old and not changes.remove
    installed.apply(changes)
    group.tick(5.0)  # past switch_delay + grace: the old epoch's keys are deleted
    later = plan_keys(native, STREAMS, NAMES, installed)
    assert later.remove["alice", "video"] == old and later.remove["bob", "video"]


@needs_wrtc
def test_libwebrtcs_audio_frames_under_the_audio_kid_open_at_a_lab_member(group):
    native, alice = group.members[2], group.members[0]
    kid, key = plan_keys(native, [], NAMES, InstalledKeys()).send["audio"]
    sender = WrtcSFrame(native.suite, encrypting=True)
    sender.set_key(kid, key)
    frame = sender.protect(b"an Opus frame")
    assert decode_header(frame)[:2] == (kid, 0)
    with pytest.raises(UnknownKeyId):
        alice.unprotect(frame, 0.6)
    assert accept_native_audio(alice, 2) >= 1 and accept_native_audio(alice, 2) == 0
    assert alice.unprotect(frame, 0.6) == b"an Opus frame"


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
    """Audio: every frame its SFrame decryptor passed on (whole call). Video: every picture of the
    window from the first one it decoded on (95 %); before it, only what the SFrame header costs."""
    window = native_call.summary["window"]
    for name, kinds in native_call.summary["native"]["directions"]["lab_to_native"].items():
        audio = kinds["audio"]
        assert audio["decoded"] >= 0.95 * audio["sent"] and audio["played"] >= 0.8 * audio["sent"], (name, audio)
        assert kinds["video"]["sent"] == window["video_frames"]
    assert native_call.summary["native"]["stats"]["alice/video"]["decoderImplementation"] == "libvpx"


@needs_native
def test_libwebrtc_loses_a_members_first_frames_only_when_their_sframe_header_reads_as_delta(native_call):
    """The lab's senders count audio and video under one KID, so a publisher's first video frame (a
    key frame) carries some CTR below 8, which is the header byte's lowest bit; libwebrtc's VP8
    depacketizer reads that bit as VP8's "not a key frame" (RFC 6386 §9.1). With an even CTR it
    decodes from the first frame; with an odd one it drops frames until the key frame its PLI asked
    for, which it reads as a key frame (CTR 8..255: the bit is 0)."""
    sent, received, view = native_call.sent, native_call.received, native_call.view
    frames = native_call.summary["window"]["video_frames"]
    for name in ("alice", "bob"):
        mine = sent[(sent.participant == name) & (sent.kind == "video")].set_index("frame_index")
        got = set(received[(received.receiver == "libwebrtc") & (received.publisher == name)
                           & received.decoded & (received.kind == "video")].frame_index)
        first = min(got)
        later = [i for i in range(first, frames)]
        assert sum(i in got for i in later) >= 0.95 * len(later), name
        first_packet = view[(view.publisher == name) & (view.timestamp == mine.loc[0, "timestamp"])].payload.iloc[0]
        _, ctr, _ = decode_header(VP8PayloadDescriptor.parse(first_packet)[1])
        assert (first == 0) == (ctr % 2 == 0), (name, ctr, first)  # an odd CTR: frame 0 read as delta, lost
        assert ctr < 8 and first <= 15, (name, ctr, first)  # recovered within a second at ci size


@needs_native
def test_libwebrtc_encrypts_audio_and_video_under_two_kids_each_counting_from_zero(native_call):
    view, kids = native_call.view, native_call.summary["native"]["send_kids"]
    headers = {}
    for kind in ("audio", "video"):
        payloads = view[(view.publisher == "libwebrtc") & (view.kind == kind)].drop_duplicates("timestamp").payload
        if kind == "video":
            payloads = [VP8PayloadDescriptor.parse(p)[1] for p in payloads]
        headers[kind] = [decode_header(p)[:2] for p in payloads]
    assert {k for k, _ in headers["audio"]} == {kids["audio"]["kid"]}
    assert {k for k, _ in headers["video"]} == {kids["video"]["kid"]}
    assert kids["audio"]["epoch_member"] == kids["video"]["epoch_member"]
    for kind in ("audio", "video"):
        ctrs = [c for _, c in headers[kind]]
        assert ctrs[0] == 0 and ctrs == sorted(set(ctrs)), kind  # one counter per encryptor, no repeat


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
