"""Tests for e2ee_lab.browser: headless Chromium in the aiortc call, with WebCrypto SFrame and
clear-prefix in an Encoded Transform worker and the group key agreement run in the page.

Marked ``browser``; they skip, naming the reason, where no Chromium is installed (``.ci/run``
installs it, so CI runs them). Each call runs in a network namespace with only ``lo`` when this
process may create one (root), else in this process with the page's candidate filter.
"""

from __future__ import annotations

import threading

import pytest
from utils import DATA, load_vectors

from e2ee_lab.browser import find_chromium, netns_problem, run_browser_call, run_vectors_in_browser
from e2ee_lab.browser.call import _recovery, pattern
from e2ee_lab.webrtc import check_loopback

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")]

LOOPBACK = ("127.0.0.1", "::1")


@pytest.fixture(scope="module")
def sframe_call():
    return run_browser_call("e2ee", seconds=4.5, size="ci", sniff_lo=True)


@pytest.fixture(scope="module")
def clear_call():
    return run_browser_call("clear-prefix", seconds=3.0, size="ci")


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

    from scapy.all import AsyncSniffer, get_if_list

    def up(iface: str) -> bool:
        state = Path(f"/sys/class/net/{iface}/operstate")
        return not state.exists() or state.read_text().strip() != "down"

    others = [i for i in get_if_list() if i != "lo" and up(i)]
    if not others:
        pytest.skip("this machine has no interface besides lo")
    sniffer = AsyncSniffer(iface=others, filter="udp or tcp", store=True)
    sniffer.start()
    result = run_browser_call("e2ee", seconds=1.0, size="ci")
    packets = sniffer.stop() or []
    ports = {c.port for pair in result.sdp.values() for text in pair.values() for c in check_loopback(text)}
    ours = [p for p in packets if getattr(p, "sport", None) in ports or getattr(p, "dport", None) in ports]
    assert result.summary["browser_to_python"]
    assert ours == []


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


def test_sframe_loss_is_measured():
    # Pitfall 2: Chrome's VP8 depacketizer reads the SFrame config byte as the VP8 frame tag. With
    # the shared counter past 255 every frame looks like a delta frame: no key frame to recover at.
    result = run_browser_call("e2ee", seconds=6.5, size="ci", drop_at=5.0)
    leg = _one(result.summary["python_to_browser"])
    print("SFrame loss toward Chrome:", leg["loss"], "key frames decoded:", leg["key_frames_decoded"])
    assert leg["loss"]["dropped"] and leg["loss"]["packets_dropped"] >= 1


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
