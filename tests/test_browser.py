"""Tests for e2ee_lab.browser: headless Chromium in the aiortc call, with WebCrypto SFrame and
clear-prefix in an Encoded Transform worker and the group key agreement run in the page.

Marked ``browser``; they skip, naming the reason, where no Chromium is installed (``.ci/run``
installs it, so CI runs them). Each call runs in a network namespace with only ``lo`` when this
process may create one (root), else in this process with the page's candidate filter.
"""

from __future__ import annotations

import argparse
import json
import os
import threading

import pytest
from utils import DATA, load_vectors

from e2ee_lab.browser import find_chromium, netns_problem, run_browser_call, run_vectors_in_browser
from e2ee_lab.browser.call import _recovery, pattern, run_for_call
from e2ee_lab.browser.tally import three_views
from e2ee_lab.call.run import add_call_arguments, cli_call, run_call
from e2ee_lab.webrtc import check_loopback

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")]

LOOPBACK = ("127.0.0.1", "::1")


@pytest.fixture(scope="module")
def sframe_call():
    return run_browser_call("e2ee", seconds=4.5, size="ci", sniff_lo=True)


@pytest.fixture(scope="module")
def clear_call():  # the createEncodedStreams fallback; the others use RTCRtpScriptTransform
    return run_browser_call("clear-prefix", seconds=3.0, size="ci", api="legacy")


@pytest.fixture(scope="module")
def srtp_call():
    return run_browser_call("dtls-srtp", seconds=2.0, size="ci")


def _one(d: dict) -> dict:
    assert len(d) == 1
    return next(iter(d.values()))


@pytest.mark.parametrize("name", ["sframe_call", "clear_call"])
def test_browser_to_python_decrypted_and_decoded(name, request):
    result = request.getfixturevalue(name)
    leg = _one(result.summary["browser_to_python"])
    assert leg["sent"] > 20
    assert leg["decoded"] >= 0.95 * leg["sent"], leg
    assert result.summary["browser"]["worker"]["enc:video:self"]["ok"] == leg["sent"]


@pytest.mark.parametrize("name", ["sframe_call", "clear_call"])
def test_python_to_browser_decrypted_rendered_and_pixels_match(name, request):
    result = request.getfixturevalue(name)
    leg = _one(result.summary["python_to_browser"])
    assert leg["transform_frames"] > 0  # pitfall 1: the receive transform really saw the frames
    assert leg["decrypted"] >= 0.95 * leg["sent"], leg
    assert leg["rendered"] >= 0.95 * leg["sent"], leg
    assert leg["pixel_samples"] >= 2 and leg["pixel_matches"] == leg["pixel_samples"], result.pixels


@pytest.mark.parametrize("name", ["sframe_call", "clear_call"])
def test_sfu_decodes_none_of_the_browsers_frames_in_e2ee(name, request):
    sfu = request.getfixturevalue(name).summary["sfu"]
    assert sfu["browser_frames"] > 20
    assert sfu["browser_frames_matching"] == 0


def test_sfu_decodes_the_browsers_frames_in_dtls_srtp(srtp_call):
    sfu = srtp_call.summary["sfu"]
    assert sfu["browser_frames"] > 10
    assert sfu["browser_frames_matching"] >= 0.95 * sfu["browser_frames"]
    assert _one(srtp_call.summary["python_to_browser"])["rendered"] > 10


def test_key_agreement_ran_in_the_page(sframe_call):
    # the page became a member, and Python decrypted its frames with keys only it sent (sealed to P-256)
    assert sframe_call.summary["browser"]["member"] is not None
    assert not sframe_call.summary["browser"]["errors"].get("keys_auth")
    assert _one(sframe_call.summary["browser_to_python"])["decrypted"] > 20


def test_the_page_signals_over_http_in_order_and_nothing_is_refused(sframe_call):
    browser = sframe_call.summary["browser"]
    # offer, member index, at least one roster update and one key message went down the long-poll
    assert browser["signalling"]["to_page"] >= 4
    assert browser["signalling"]["refused"] == 0 and not browser["dropped"]
    assert not [e for e in browser["errors"] if e.startswith("signal_")], browser["errors"]
    assert sframe_call.sdp["chromium"]["answer"].startswith("v=0")


def test_every_candidate_is_loopback(sframe_call):
    for name, pair in sframe_call.sdp.items():
        for which in ("offer", "answer"):
            for c in check_loopback(pair[which], where=f"{name} {which}"):
                assert c.address in LOOPBACK
    assert sframe_call.summary["loopback"]["candidates_loopback"]


@pytest.mark.skipif(netns_problem() is not None, reason=f"no private network namespace: {netns_problem()}")
def test_every_datagram_on_lo_is_loopback_in_the_namespace(sframe_call):
    assert sframe_call.summary["isolation"] == "network namespace with only lo"
    assert sframe_call.summary["loopback"]["page_candidates_before_filter"] == ["127.0.0.1"]
    lo = sframe_call.lo_datagrams
    assert len(lo) > 100
    assert lo.src.str.startswith("127.").all() and lo.dst.str.startswith("127.").all()


@pytest.mark.skipif(netns_problem() is not None, reason=f"no private network namespace: {netns_problem()}")
def test_no_packet_of_the_call_on_other_interfaces():
    from pathlib import Path

    from scapy.all import AsyncSniffer

    def up(iface: str) -> bool:
        state = Path(f"/sys/class/net/{iface}/operstate")
        return not state.exists() or state.read_text().strip() != "down"

    # the kernel's network devices, not libpcap's pseudo-devices (any, nflog, bluetooth-monitor, ...)
    others = [i for i in sorted(os.listdir("/sys/class/net")) if i != "lo" and up(i)]
    if not others:
        pytest.skip("this machine has no interface besides lo")
    # UDP only: the call's media and ICE are UDP, while this machine's own TCP traffic on the other
    # interfaces uses the same ephemeral port range and could collide with a port of the call
    sniffer = AsyncSniffer(iface=others, filter="udp", store=True)
    sniffer.start()
    result = run_browser_call("e2ee", seconds=1.0, size="ci")
    packets = sniffer.stop() or []
    ports = {c.port for pair in result.sdp.values() for text in pair.values() for c in check_loopback(text)}
    ours = [p for p in packets if getattr(p, "sport", None) in ports or getattr(p, "dport", None) in ports]
    assert result.summary["browser_to_python"], result.summary
    assert ours == [], [p.summary() for p in ours]


def test_rfc9605_vectors_pass_inside_the_browser():
    result = run_vectors_in_browser(DATA / "rfc9605-test-vectors.json")
    suites = sorted(r["suite"] for r in result["sframe"])
    assert suites == [4, 5]
    for r in result["sframe"]:
        assert r["key"] and r["salt"] and r["ct"] and r["pt"], r
        assert r["tampered"] == "auth"
    assert result["headers"] == len(load_vectors("rfc9605-test-vectors")["header"])
    assert result["headerFailures"] == 0


def test_clear_prefix_recovers_from_one_lost_frame_within_5_s():
    result = run_browser_call("clear-prefix", seconds=3.5, size="ci", drop_at=1.0)
    loss = _one(result.summary["python_to_browser"])["loss"]
    assert loss["dropped"] and loss["packets_dropped"] >= 1
    assert loss["recovered_after_s"] is not None and loss["recovered_after_s"] < 5.0, loss


def test_sframe_never_recovers_from_a_loss_past_ctr_255():
    # Pitfall 2: Chrome's VP8 depacketizer reads the SFrame config byte as the VP8 frame tag. With
    # the shared counter past 255 every frame looks like a delta frame: no key frame to recover at.
    result = run_browser_call("e2ee", seconds=6.5, size="ci", drop_at=5.0)
    leg = _one(result.summary["python_to_browser"])
    print("SFrame loss toward Chrome:", leg["loss"], "key frames decoded:", leg["key_frames_decoded"])
    assert leg["loss"]["dropped"] and leg["loss"]["packets_dropped"] >= 1
    assert leg["decrypted"] >= 0.95 * leg["sent"]  # the worker kept decrypting every frame ...
    assert leg["loss"]["recovered_after_s"] is None  # ... and Chrome rendered none of them
    assert leg["loss"]["frames_rendered_after_drop"] <= 2, leg["loss"]  # at most frames already in flight
    assert leg["rendered"] < 0.85 * leg["sent"]


def test_receive_transform_set_after_negotiation_sees_no_frame(sframe_call):
    # Pitfall 1: a receive RTCRtpScriptTransform set once negotiation is over (where an offerer's
    # ontrack runs) is ignored: the worker sees no frame, the decoder gets ciphertext and asks for PLIs.
    late = run_browser_call("e2ee", seconds=1.5, size="ci", api="script", transform_in_ontrack=True)
    assert late.summary["api"] == "script"
    leg = _one(late.summary["python_to_browser"])
    assert leg["sent"] > 10
    assert leg["transform_frames"] == 0 and leg["decoded"] == 0 and leg["rendered"] == 0, leg
    assert leg["plis"] > 0
    # set before the answer (the default) the same transform sees every frame
    assert sframe_call.summary["api"] == "script"
    assert _one(sframe_call.summary["python_to_browser"])["transform_frames"] > 20


def test_three_views_of_the_browsers_video(sframe_call, srtp_call):
    e2ee, srtp = three_views(sframe_call), three_views(srtp_call)
    assert e2ee.loc["SFU (leg keys)", "decoded into the picture"] == 0
    assert srtp.loc["SFU (leg keys)", "decoded into the picture"] > 10
    receiver = [v for v in e2ee.index if v.startswith("receiver")]
    assert e2ee.loc[receiver[0], "decoded into the picture"] > 20
    if sframe_call.summary["loopback"]["lo_datagrams"]:  # captured: SRTP hides the payload from the wire
        assert e2ee.loc["wire (no keys)", "frames seen"] > 0
        assert e2ee.loc["wire (no keys)", "decoded into the picture"] == 0


# --- run_call(..., browser_participants=1) and e2ee-lab call --browser ---------------------------


def test_call_command_parses_browser():
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--stack", "webrtc", "--browser", "1", "--participants", "1"])
    assert (args.stack, args.browser, args.participants, args.func) == ("webrtc", 1, 1, cli_call)
    assert parser.parse_args([]).browser == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"stack": "lab"}, "stack='webrtc'"),
    ({"browser_participants": 2}, "exactly one browser"),
    ({"capture": "tap"}, "capture must be"),
    ({"garbage": 5.0}, "garbage"),
    ({"srtp_profile": "AES_CM_128_HMAC_SHA1_80"}, "srtp_profile"),
], ids=["lab-stack", "two-browsers", "tap", "garbage", "profile"])
def test_browser_participant_rejects_what_it_cannot_do(kwargs, match):
    args = {"stack": "webrtc", "browser_participants": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_call("e2ee", 1, 1.0, size="ci", **args)
    assert not [t for t in threading.enumerate() if t.name.startswith("e2ee-lab-browser")]


def test_run_for_call_needs_the_webrtc_stack():
    with pytest.raises(ValueError, match="stack='webrtc'"):
        run_for_call("lab", 1, "e2ee", 1, 1.0, 0, "ci", None)


def test_call_command_with_a_browser_prints_the_table(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--stack", "webrtc", "--browser", "1", "--participants", "1", "--seconds", "1.5",
                              "--size", "ci", "--mode", "e2ee", "--capture", "off", "--out", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "chromium" in lines and "alice" in lines and "SFU" in lines, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {r["name"]: r for r in summary["participants"]}
    assert summary["participant_count"] == 2 and summary["stack"] == "webrtc"
    for me, other in (("alice", "chromium"), ("chromium", "alice")):
        assert rows[me]["video_frames_expected"] == rows[other]["video_frames_sent"] > 10
        # a 1.5 s call: delivery is tested on the longer calls above; here that the counts are the page's
        assert rows[me]["video_frames_decoded"] >= 0.75 * rows[me]["video_frames_expected"], rows[me]
    assert summary["sfu"]["video_frames_decodable"] == 0 < summary["sfu"]["video_frames_seen"]
    assert (tmp_path / "sfu-keys.json").exists()


def test_recovery_measure():
    assert _recovery([0, 100, 200], None) == {"dropped": False}
    got = _recovery([0, 100, 200, 1200, 1300], 150)
    assert got["recovered_after_s"] == 1.05
    assert _recovery([0, 100, 200], 150)["recovered_after_s"] is None


def test_pattern_halves():
    rgb = pattern(64, 48)
    assert rgb.shape == (48, 64, 3)
    assert tuple(rgb[0, 0]) != tuple(rgb[0, -1])


def test_no_browser_thread_left_behind():
    assert not [t for t in threading.enumerate() if t.name.startswith("e2ee-lab-browser")]
