"""Tests for e2ee_lab.browser: headless Chromium in the aiortc call, with WebCrypto SFrame and
clear-prefix in an Encoded Transform worker and the group key agreement run in the page.

Marked ``browser``; they skip, naming the reason, where no Chromium is installed (``.ci/run``
installs it, so CI runs them). Each call runs in a network namespace with only ``lo`` when this
process may create one (root), else in this process with the page's candidate filter.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from utils import DATA, load_vectors, other_interfaces

from e2ee_lab.browser import find_chromium, netns_problem, run_browser_call, run_vectors_in_browser
from e2ee_lab.browser.call import pattern, run_for_call
from e2ee_lab.browser.tally import three_views
from e2ee_lab.call.pipeline import thumbnail
from e2ee_lab.call import add_call_arguments, cli_call, run_call
from e2ee_lab.call.capture import read_frame_keys
from e2ee_lab.capture import sniff_problem
from e2ee_lab.crypto.keys import kid_for
from e2ee_lab.media.codecs import PICTURE_MATCH_MAE, mean_abs_error
from e2ee_lab.webrtc import check_loopback
from e2ee_lab.webrtc.sdp import candidates

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


def test_the_screenshot_shows_the_pattern_and_the_received_video(sframe_call):
    from PIL import Image

    layout, dpr = sframe_call.stats["layout"], sframe_call.stats["layout"]["dpr"]
    shot = Image.open(io.BytesIO(sframe_call.screenshot))
    assert shot.format == "PNG"
    assert shot.size == (round(layout["viewport"][0] * dpr), round(layout["viewport"][1] * dpr))
    rgb = np.asarray(shot.convert("RGB"))

    def crop(box: list[float]) -> np.ndarray:
        x, y, w, h = (round(v * dpr) for v in box)
        assert 0 <= x and x + w <= rgb.shape[1] and 0 <= y and y + h <= rgb.shape[0], ("off screen", box)
        return rgb[y:y + h, x:x + w]

    # the page's own pattern: grey 64 on the left, grey 192 on the right (the white bar moves)
    local = crop(layout["local"])
    quarter = local.shape[1] // 4
    assert np.median(local[:, :quarter], axis=(0, 1)).tolist() == [64, 64, 64]
    assert np.median(local[:, -quarter:], axis=(0, 1)).tolist() == [192, 192, 192]
    # the received video: the picture the page last read back from it (judged against what Alice
    # sent, test above), give or take the moving ball; neither blank nor the page's own pattern
    video = next(r for r in sframe_call.stats["remote"] if r["kind"] == "video")
    where = layout["remote"][video["mid"]]
    shown = Image.fromarray(crop(where["box"])).resize((where["width"], where["height"]))
    shown = thumbnail(np.asarray(shown))
    last = video["samples"][-1]
    read = np.frombuffer(base64.b64decode(last["pixels"]), np.uint8).reshape(last["height"], last["width"], 3)
    print("screenshot", shot.size, "received video vs last canvas read: MAE", round(mean_abs_error(shown, read), 1))
    assert mean_abs_error(shown, read) <= PICTURE_MATCH_MAE
    assert shown.std() > 30
    assert mean_abs_error(shown, thumbnail(pattern(where["width"], where["height"]))) > 3 * PICTURE_MATCH_MAE


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
    summary = sframe_call.summary
    assert summary["browser"]["member"] is not None
    assert not [e for e in summary["browser"]["errors"] if e.startswith("keys_")], summary["browser"]["errors"]
    assert _one(summary["browser_to_python"])["decrypted"] > 20
    # the page (WebCrypto) and Alice (Python) computed the same group code over the same roster
    codes = summary["group_codes"]
    assert codes["match"] and set(codes["codes"]) == {"alice", "chromium"} and len(codes["codes"]["chromium"]) == 30
    assert summary["safety_numbers"]["alice"]["match"] and len(summary["safety_numbers"]["alice"]["digits"]) == 60
    assert summary["browser"]["key_state"]["state"] == "active" and summary["browser"]["key_state"]["sendEpoch"] == codes["epoch"]


def test_the_page_credits_frames_by_kid_and_retired_the_old_epoch(sframe_call):
    summary, stats = sframe_call.summary, sframe_call.stats
    alice = 0  # alice joined first
    leg = _one(summary["python_to_browser"])
    assert summary["browser"]["credited"][f"{alice}:video"] == leg["decrypted"] > 20
    assert summary["browser"]["credited"][f"{alice}:audio"] == _one_row(summary, "chromium")["audio_frames_decoded"] > 50
    # alice switched to epoch 1 (the page's join) before media: her epoch-0 keys are gone from the worker
    installed = stats["frameKeys"]
    assert installed["floor"] == {f"{alice}:audio": 1, f"{alice}:video": 1}
    assert sorted(installed["receiveKids"]) == ["1000", "1100"] and installed["send"] == {"audio": "1001", "video": "1101"}
    assert _one_row(summary, "chromium")["dropped"] == {}


def _one_row(summary: dict, name: str) -> dict:
    return next(r for r in summary["participants"] if r["name"] == name)


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


# --- without the namespace (no root): the page's candidate filter, and nothing on other interfaces ---


def _family(pid: int) -> list[int]:
    """``pid`` and all its descendants (Chromium's browser, zygote, renderer and network processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        if stat:
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    family, todo = [], [pid]
    while todo:
        family.append(todo.pop())
        todo += children.get(family[-1], [])
    return family


def _udp_ports(pids: list[int]) -> set[int]:
    """Local ports of the UDP sockets (IPv4 and IPv6) the processes ``pids`` hold open now."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # the process ended meanwhile
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # the descriptor was closed meanwhile
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[9]) in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class _SocketWatch(threading.Thread):
    """Every UDP port this process and its children (Chromium) open while it runs, polled every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ports: set[int] = set()
        self.pids: set[int] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            family = _family(os.getpid())
            self.pids.update(family)
            self.ports |= _udp_ports(family)

    def stop(self) -> None:
        self._done.set()
        self.join()


@pytest.mark.skipif(sniff_problem() is not None, reason=f"cannot sniff: {sniff_problem()}")
def test_without_the_namespace_nothing_leaves_on_other_interfaces_and_the_filter_strips():
    from scapy.all import AsyncSniffer
    from scapy.layers.inet import UDP

    others = other_interfaces()
    sniffer = AsyncSniffer(iface=list(others), filter="udp", store=True) if others else None
    if sniffer is not None:
        sniffer.start()
    watch = _SocketWatch()
    watch.start()
    try:
        result = run_browser_call("e2ee", seconds=2.0, size="ci", isolate="off")
    finally:
        watch.stop()
        packets = (sniffer.stop() or []) if sniffer is not None else []
    # (a) no UDP datagram from or to any port a socket of this process or of Chromium had open
    ours = [p for p in packets if UDP in p and {p[UDP].sport, p[UDP].dport} & watch.ports]
    print(f"other interfaces {others}: {len(packets)} UDP datagrams, {len(ours)} of the call;"
          f" {len(watch.ports)} UDP ports of {len(watch.pids)} processes watched")
    assert len(watch.ports) >= 3 and len(watch.pids) > 3  # the SFU's, a participant's, Chromium's
    assert ours == [], [p.summary() for p in ours]
    assert {c.port for pair in result.sdp.values() for text in pair.values() for c in candidates(text)} <= watch.ports
    # (b) the page's own answer offered the machine's other addresses; the filter removed them all
    assert result.summary["isolation"].startswith("none (asked)")
    raw = candidates(result.sdp["chromium"]["raw_answer"])
    stripped = result.summary["browser"]["errors"].get("non_loopback_candidate_stripped", 0)
    print("page candidates before the filter:", result.summary["loopback"]["page_candidates_before_filter"],
          "stripped:", stripped)
    assert stripped == len([c for c in raw if c.address not in LOOPBACK])
    if any(others.values()):
        assert stripped > 0 and {c.address for c in raw} & {a for addrs in others.values() for a in addrs}
        # Chrome still checks from those candidates (over lo, source = another interface's address):
        # the SFU refuses them, so no peer-reflexive pair off loopback is ever nominated
        assert result.summary["sfu"]["dropped"].get("ice_check_not_loopback", 0) > 0
    assert all(a[0] in LOOPBACK for leg in result.keylog for a in (leg.client, leg.server)), result.keylog
    answer = check_loopback(result.sdp["chromium"]["answer"], where="the filtered answer")
    assert answer and all(c.address in LOOPBACK for c in answer)
    # (c) and media still flows both ways
    assert _one(result.summary["browser_to_python"])["decrypted"] > 10
    assert _one(result.summary["python_to_browser"])["decrypted"] > 10


@pytest.mark.skipif(sniff_problem() is not None, reason=f"cannot sniff: {sniff_problem()}")
def test_chromium_looks_up_no_name_on_other_interfaces():
    # Names only Chromium asks for: a fresh one the page fetches, and the Google hosts its background
    # services look up within seconds of starting (despite --disable-background-networking)
    import asyncio
    import secrets

    from scapy.all import AsyncSniffer
    from scapy.layers.dns import DNSQR

    from e2ee_lab.browser import Chromium

    others = other_interfaces()
    if not others:
        pytest.skip("this machine has no interface besides lo")
    label = f"e2ee-lab-{secrets.token_hex(6)}"

    async def browse() -> str:
        async with Chromium() as chrome:
            got = await chrome.page.evaluate(f"fetch('http://{label}.test/').then(() => 'fetched', String)")
            await asyncio.sleep(3.0)
        return got

    sniffer = AsyncSniffer(iface=list(others), filter="port 53", store=True)
    sniffer.start()
    try:
        fetched = asyncio.run(browse())
    finally:
        packets = sniffer.stop() or []
    names = sorted({p[DNSQR].qname.decode(errors="replace") for p in packets if DNSQR in p})
    print(f"DNS on {list(others)} while Chromium ran: {len(packets)} packets, names {names}")
    assert fetched.startswith("TypeError"), fetched
    assert not [n for n in names if label in n or any(g in n for g in ("google", "gstatic", "gvt1"))], names


def test_rfc9605_vectors_pass_inside_the_browser():
    vectors = load_vectors("rfc9605-test-vectors")  # suites 1-5, and 6-8 from draft-barnes-sframe-iana-256
    vectors["sframe"] = vectors["sframe"] + load_vectors("sframe-aes256-ctr-vectors")["sframe_aes_256_ctr_hmac"]
    result = run_vectors_in_browser(vectors)
    suites = sorted(r["suite"] for r in result["sframe"])
    assert suites == [1, 2, 3, 4, 5, 6, 7, 8]
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


@pytest.mark.parametrize("jump, ctrs, reads, recovers", [
    (0, (8, 255), "key frame", True),  # Alice's video counter where 1 s of video puts it
    (300, (256, 65535), "delta frame", False),  # where 20 s of video would
    (65530, (65536, 2**24 - 1), "key frame", True),  # where 73 minutes of video would
], ids=["1-byte-ctr", "2-byte-ctr", "3-byte-ctr"])
def test_sframe_after_a_loss_chrome_reads_the_ctr_length_as_the_key_frame_bit(jump, ctrs, reads, recovers):
    # Pitfall 2: Chrome's VP8 depacketizer reads the SFrame config byte's bit 0 (the low bit of the
    # CTR's length in bytes minus one) as the VP8 P bit. Every frame then looks like a key frame, or
    # none does: after a loss Chrome plays on at once, or never finds a key frame again.
    result = run_browser_call("e2ee", seconds=3.5, size="ci", drop_at=1.0, video_ctr_jump=jump)
    leg = _one(result.summary["python_to_browser"])
    loss = leg["loss"]
    print("SFrame loss toward Chrome:", loss, "key frames decoded:", leg["key_frames_decoded"])
    assert loss["dropped"] and loss["packets_dropped"] >= 1
    assert loss["sframe"]["kid_hex"] == "0x1100" and ctrs[0] <= loss["sframe"]["ctr"] <= ctrs[1]
    assert loss["sframe"]["reads_as"] == reads
    assert leg["decrypted"] >= 0.95 * leg["sent"]  # the worker decrypted every frame in all three
    if recovers:
        assert loss["recovered_after_s"] is not None and loss["recovered_after_s"] < 1.0, loss
        assert loss["frames_rendered_after_drop"] >= 20
    else:  # Alice answered the PLI with a real key frame; it read as a delta frame too
        assert loss["recovered_after_s"] is None and loss["frames_rendered_after_drop"] <= 2, loss
        assert leg["plis"] >= 1 and loss["key_frames_sent_after"] >= 1
        assert leg["rendered"] < 0.5 * leg["sent"]


def test_video_ctr_jump_needs_e2ee():
    with pytest.raises(ValueError, match="video_ctr_jump"):
        run_browser_call("clear-prefix", seconds=1.0, size="ci", video_ctr_jump=300)


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
    # the members' secret, apart from the SFU's key log: alice's keys and the page's, as alice got them
    keys = read_frame_keys(tmp_path / "frame-keys.json")
    assert not keys.reproducible and "(the members' secret)" in out
    assert {k.participant for k in keys.keys} == {"alice", "chromium"}
    page = next(k for k in keys.keys if k.participant == "chromium")
    assert page.kids == {"audio": kid_for(page.epoch, page.member, "audio"), "video": kid_for(page.epoch, page.member, "video")}


def test_pattern_halves():
    rgb = pattern(64, 48)
    assert rgb.shape == (48, 64, 3)
    assert tuple(rgb[0, 0]) != tuple(rgb[0, -1])


def test_no_browser_thread_left_behind():
    assert not [t for t in threading.enumerate() if t.name.startswith("e2ee-lab-browser")]
