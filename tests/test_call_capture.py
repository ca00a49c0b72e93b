"""Tests of a captured call and its three views: e2ee_lab.call.capture and e2ee_lab.analysis.views.

One short real call per mode (module fixtures, ci size, 2 participants, 2 s): the dtls-srtp call
with ``capture="auto"`` (scapy sniffing where permitted, here usually), the e2ee call with sniffing
switched off (``E2EE_LAB_NO_SNIFF``) so that "auto" must fall back to the socket tap. The analysis
of each pcap (with and without the SFU's key log, with and without the members' frame keys) must
give back the call's own counts. tshark checks skip where tshark is missing; the recordings in
``data/captures/`` are analysed without running a call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess

import pytest

from e2ee_lab.analysis import plots
from e2ee_lab.analysis.offline import analyze
from e2ee_lab.analysis.views import (
    CAPTURES_DIR,
    VIEWS,
    CapturedCall,
    analyze_views,
    noise_image,
    receiver_view,
    recording,
)
from e2ee_lab.call import (
    CallCapture,
    FrameKeys,
    FrameKeysError,
    add_call_arguments,
    read_frame_keys,
    run_call,
    write_frame_keys,
)
from e2ee_lab.call.capture import FRAME_KEYS_FORMAT, keep_call_datagrams
from e2ee_lab.capture import KeyLogMissing, read_pcap, sniff_problem
from e2ee_lab.capture.pcap import Datagram, write_datagrams
from e2ee_lab.labs import capture as lab
from e2ee_lab.transport.srtp import SRTPMasterKey

SECONDS, PEOPLE = 2.0, 2
DELIVERY = 0.95
MODES = ["dtls-srtp", "e2ee"]
LOOPBACK = {"127.0.0.1", "::1"}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    plain = run_call("dtls-srtp", PEOPLE, SECONDS, seed=1, size="ci",
                     out=tmp_path_factory.mktemp("dtls-srtp"), capture="auto")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("E2EE_LAB_NO_SNIFF", "1")
        e2ee = run_call("e2ee", PEOPLE, SECONDS, seed=2, size="ci",
                        out=tmp_path_factory.mktemp("e2ee"), capture="auto")
    return {"dtls-srtp": plain, "e2ee": e2ee}


@pytest.fixture(scope="module")
def views(results):
    return {mode: analyze_views(CapturedCall.from_result(r)) for mode, r in results.items()}


def per_leg(frames, direction: str) -> dict:
    part = frames[frames.direction == direction]
    return {k: int(v) for k, v in part.groupby(["leg", "kind"]).size().items()}


def records(df, who: str) -> dict:
    return {k: int(v) for k, v in df.groupby([who, "kind"]).size().items()}


# --- the capture ----------------------------------------------------------------------------------


def test_auto_sniffs_where_permitted_and_falls_back_to_the_tap_in_one_line(results):
    plain, e2ee = results["dtls-srtp"].capture, results["e2ee"].capture
    assert plain.backend == ("sniff" if sniff_problem() is None else "tap")
    assert e2ee.backend == "tap"
    assert "E2EE_LAB_NO_SNIFF" in e2ee.note and "socket tap" in e2ee.note and "\n" not in e2ee.note
    for result in results.values():
        assert result.capture.path == result.out / "capture.pcap" and result.capture.path.exists()
        written = json.loads((result.out / "summary.json").read_text())
        assert written["capture"]["backend"] == result.capture.backend
        assert written["capture"]["datagrams"] == len(read_pcap(result.capture.path).datagrams)


@pytest.mark.parametrize("mode", MODES)
def test_the_capture_spans_the_call_from_client_hellos_to_close_notify(views, mode):
    p = views[mode].wire.packets
    legs = set(p[p.kind == "rtp"].leg)
    hellos = p[p.detail.str.startswith("ClientHello")]
    assert p.detail.iloc[0].startswith("ClientHello use_srtp=")  # the first datagram of the file
    assert set(hellos.leg) == legs and len(legs) == PEOPLE
    assert hellos.detail.str.contains("use_srtp=0x0007").all()  # SRTP_AEAD_AES_128_GCM
    last_media = p[p.kind.isin(["rtp", "rtcp"])].no.max()
    alerts = p[(p.kind == "dtls") & (p.no > last_media)]
    assert (alerts.detail == "Alert").all() and set(alerts.leg) == legs


@pytest.mark.parametrize("mode", MODES)
def test_every_captured_datagram_has_loopback_addresses(results, mode):
    capture = results[mode].capture
    datagrams = read_pcap(capture.path).datagrams
    assert len(datagrams) == capture.datagrams > 0 and capture.all_loopback
    assert all(d.src[0] in LOOPBACK and d.dst[0] in LOOPBACK for d in datagrams)


def test_keep_call_datagrams_leaves_out_other_programs_and_flags_non_loopback(tmp_path):
    path = tmp_path / "mixed.pcap"
    write_datagrams(path, [
        Datagram(1, 1.0, ("127.0.0.1", 4000), ("127.0.0.1", 5000), b"\x80" * 20),
        Datagram(2, 1.1, ("127.0.0.1", 6000), ("127.0.0.1", 7000), b"other program"),
        Datagram(3, 1.2, ("10.0.0.2", 5000), ("10.0.0.2", 4001), b"\x80" * 30),
    ])
    assert keep_call_datagrams(path, {5000}) == (2, 1, False)
    kept = read_pcap(path).datagrams
    assert [(d.src[1], d.dst[1], d.time) for d in kept] == [(4000, 5000, 1.0), (5000, 4001, 1.2)]


def test_capture_off_and_bad_capture_modes(tmp_path):
    import asyncio

    async def off():
        recorder = CallCapture(tmp_path, "off")
        await recorder.start()
        return await recorder.finish([{"local": ("127.0.0.1", 5000), "remote": None}])

    assert asyncio.run(off()) is None and not (tmp_path / "capture.pcap").exists()
    with pytest.raises(ValueError, match="capture must be one of"):
        run_call("e2ee", PEOPLE, SECONDS, capture="everything")


def test_cli_call_captures_to_the_output_directory(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    assert parser.parse_args([]).capture == "auto"
    args = parser.parse_args(["--mode", "dtls-srtp", "--participants", "2", "--seconds", "0.5",
                              "--size", "ci", "--capture", "tap", "--out", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "(tap) to" in out and f"e2ee-lab analyze {tmp_path}" in out
    r = analyze(tmp_path / "capture.pcap", tmp_path / "sfu-keys.json")
    assert r.summary()["video_frames_decodable"] == r.summary()["video_frames"] > 0


def test_cli_call_that_cannot_run_here_prints_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    monkeypatch.setenv("E2EE_LAB_NO_SNIFF", "1")
    args = parser.parse_args(["--seconds", "0.5", "--size", "ci", "--capture", "sniff", "--out", str(tmp_path)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("call: live capture is switched off") and "--capture auto" in err
    assert len(err.strip().splitlines()) == 1
    args = parser.parse_args(["--browser", "1", "--size", "ci", "--out", str(tmp_path)])  # lab stack
    assert args.func(args) == 2 and "needs stack='webrtc'" in capsys.readouterr().err


# --- the analysis gives back the call's counts ----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_analysis_of_pcap_and_key_log_reproduces_the_calls_frame_counts(results, views, mode):
    result, v = results[mode], views[mode]
    assert per_leg(v.sfu.frames, "to_sfu") == records(result.sent, "participant")
    assert per_leg(v.sfu.frames, "from_sfu") == records(result.received, "receiver")
    assert per_leg(v.wire.frames, "to_sfu") and len(v.wire.frames) == len(v.sfu.frames)
    sfu = result.summary["sfu"]
    inbound = v.sfu.frames[v.sfu.frames.direction == "to_sfu"]
    assert (inbound.kind == "video").sum() == sfu["video_frames_seen"]
    assert ((inbound.kind == "video") & inbound.decodable).sum() == sfu["video_frames_decodable"]
    assert not v.sfu.dropped and not v.wire.dropped


def test_dtls_srtp_sfu_view_decodes_the_sent_pictures(views):
    v = views["dtls-srtp"]
    video = v.sfu.frames[v.sfu.frames.kind == "video"]
    assert video.decodable.mean() >= DELIVERY and video.matches[video.decodable].all()
    assert set(zip(video.width.dropna(), video.height.dropna())) == {(320, 240)}
    got = v.receiver.frames[v.receiver.frames.kind == "video"]
    assert got.decodable.mean() >= DELIVERY and not v.receiver.dropped
    assert v.panel("sfu").picture is not None and v.panel("wire").picture is None


def test_e2ee_sfu_view_decodes_nothing_and_every_stream_is_flat(views):
    v = views["e2ee"]
    assert v.sfu.frames.decodable.sum() == 0
    entropy = v.stream_entropy("sfu")
    assert len(entropy) == 4 * PEOPLE and (entropy.entropy >= 7.9).all()
    starts = v.sfu.frames.sframe_kid.dropna().astype(int)
    kids = {kid for k in v.call.frame_keys.keys for kid in k.kids.values()}
    assert set(starts) <= kids and len(starts) == len(v.sfu.frames)
    got = v.receiver.frames[v.receiver.frames.kind == "video"]
    assert got.decodable.mean() >= DELIVERY and got.decrypted.all()
    assert v.panel("sfu").picture is None and v.panel("receiver").picture is not None
    assert "SFrame ciphertext (KID" in v.panel("sfu").what


def test_plaintext_vp8_is_high_entropy_too_so_only_a_decoder_decides(views):
    plain = views["dtls-srtp"].stream_entropy("sfu")
    assert (plain[plain.kind == "video"].entropy >= 7.5).all()
    counts = {m: v.counts().set_index(["view", "kind"]).share for m, v in views.items()}
    assert counts["dtls-srtp"]["sfu", "video"] >= DELIVERY and counts["e2ee"]["sfu", "video"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_the_wire_view_decodes_nothing(views, mode):
    wire = views[mode].wire
    assert not wire.keyed and wire.packets.decrypted.sum() == 0
    assert wire.frames.decodable.sum() == 0 and wire.frames.decoded[wire.frames.kind == "video"].sum() == 0
    assert (views[mode].stream_entropy("wire").entropy >= 7.9).all()


def test_the_sfu_never_holds_the_frame_keys(results):
    result = results["e2ee"]
    keylog = (result.out / "sfu-keys.json").read_bytes().lower()
    pcap = result.capture.path.read_bytes()
    for key in result.frame_keys.keys:
        assert key.base_key.hex().encode() not in keylog and key.base_key not in pcap
    assert results["dtls-srtp"].frame_keys is None


# --- bad input: typed errors or counted failures --------------------------------------------------


def test_a_truncated_call_pcap_keeps_the_whole_records(results, tmp_path):
    result = results["dtls-srtp"]
    raw = result.capture.path.read_bytes()
    (tmp_path / "capture.pcap").write_bytes(raw[: len(raw) // 3 + 5])
    cut = analyze(tmp_path / "capture.pcap", result.keylog)
    assert cut.skipped == {"pcap_truncated": 1}
    assert set(cut.dropped) <= {"frame_incomplete"}  # a frame whose last packets were cut off
    assert 0 < len(cut.frames) < len(result.sent) + len(result.received)


def test_wrong_sfu_keys_fail_every_srtp_packet(results):
    result = results["dtls-srtp"]

    def spoil(key: SRTPMasterKey) -> SRTPMasterKey:
        return SRTPMasterKey(bytes(b ^ 0x5A for b in key.key), key.salt)

    wrong = [dataclasses.replace(e, client_write=spoil(e.client_write),
                                 server_write=spoil(e.server_write)) for e in result.keylog]
    v = analyze_views(CapturedCall.from_result(result), keylog=wrong)
    srtp = v.wire.packets.kind.isin(["rtp", "rtcp"]).sum()
    assert v.sfu.dropped == {"srtp_auth_failed": srtp} and len(v.sfu.frames) == 0
    assert len(v.receiver.frames) == 0
    with pytest.raises(KeyLogMissing):
        analyze(result.capture.path, result.out / "no-such-keys.json")


def test_missing_or_wrong_frame_keys_are_counted_per_frame(views):
    v = views["e2ee"]
    out = (v.sfu.frames.direction == "from_sfu").sum()
    none = receiver_view(v.sfu, "e2ee", None, v.call.truth)
    assert none.dropped == {"no_frame_keys": out} and none.frames.decodable.sum() == 0
    keys = v.call.frame_keys
    wrong = FrameKeys(keys.suite, tuple(dataclasses.replace(k, base_key=bytes(len(k.base_key)))
                                        for k in keys.keys))
    spoiled = receiver_view(v.sfu, "e2ee", wrong, v.call.truth)
    assert spoiled.dropped == {"sframe_auth": out} and not spoiled.frames.decrypted.any()
    with pytest.raises(ValueError, match="receiver view"):
        receiver_view(v.sfu, "clear-prefix", keys, v.call.truth)


def test_frame_key_files_round_trip_and_reject_malformed_ones(results, tmp_path):
    keys = results["e2ee"].frame_keys
    write_frame_keys(tmp_path / "frame-keys.json", keys)
    body = json.loads((tmp_path / "frame-keys.json").read_text())
    assert body["format"] == FRAME_KEYS_FORMAT and "SECRET" in body["note"]
    assert read_frame_keys(tmp_path / "frame-keys.json") == keys
    assert body["reproducible_keys"] is False and keys.reproducible is False
    first = body["keys"][0]
    bad = [("not json", "{"), ("other format", json.dumps({"format": "x"})),
           ("version 1", json.dumps({**body, "version": 1})),
           ("kid mismatch", json.dumps({**body, "keys": [{**first, "kids": {**first["kids"], "video": 7}}]})),
           ("kind missing", json.dumps({**body, "keys": [{**first, "kids": {"audio": first["kids"]["audio"]}}]})),
           ("no kids", json.dumps({**body, "keys": [{k: v for k, v in first.items() if k != "kids"}]})),
           ("member out of range", json.dumps({**body, "keys": [{**first, "member": 256}]})),
           ("short key", json.dumps({**body, "keys": [{**first, "base_key": "00"}]})),
           ("reproducible not a bool", json.dumps({**body, "reproducible_keys": "no"})),
           ("no reproducible flag", json.dumps({k: v for k, v in body.items() if k != "reproducible_keys"})),
           ("no suite", json.dumps({k: v for k, v in body.items() if k != "suite"})),
           ("keys_from_os not members", json.dumps({**body, "keys_from_os": ["page"]}))]
    for name, text in bad:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(FrameKeysError):
            read_frame_keys(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        read_frame_keys(tmp_path / "absent.json")
    # a reproducible call with a browser page: the file says whose keys the seed does not give
    mixed = dataclasses.replace(keys, reproducible=True, from_os=(2,))
    write_frame_keys(tmp_path / "mixed.json", mixed)
    body = json.loads((tmp_path / "mixed.json").read_text())
    assert body["keys_from_os"] == [2] and "Except member(s) 2" in body["note"] and "SECRET" not in body["note"]
    assert read_frame_keys(tmp_path / "mixed.json") == mixed


def test_loading_an_incomplete_call_is_a_clear_error(results, tmp_path):
    with pytest.raises(FileNotFoundError, match="capture.pcap"):
        CapturedCall.load(tmp_path)
    with pytest.raises(ValueError, match="without capture"):
        CapturedCall.from_result(dataclasses.replace(results["e2ee"], capture=None))


# --- tshark ---------------------------------------------------------------------------------------


def tshark(*args: str) -> list[str]:
    out = subprocess.run(["tshark", *args], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def as_rtp(result) -> list[str]:
    return [arg for e in result.keylog for arg in ("-d", f"udp.port=={e.server[1]},rtp")]


@needs_tshark
@pytest.mark.parametrize("mode", MODES)
def test_tshark_sees_use_srtp_on_every_leg_and_the_same_rtp_packets(results, views, mode):
    result = results[mode]
    hellos = tshark("-r", str(result.capture.path), "-Y", "dtls.handshake.type == 1", "-T", "fields",
                    "-e", "udp.dstport", "-e", "dtls.use_srtp.protection_profile")
    assert {line.split("\t")[0] for line in hellos} == {str(e.server[1]) for e in result.keylog}
    assert all(line.split("\t")[1] == "0x0007" for line in hellos)
    rtp = tshark("-r", str(result.capture.path), *as_rtp(result), "-Y", "rtp.version == 2 && !rtcp",
                 "-T", "fields", "-e", "rtp.seq")
    assert len(rtp) == (views[mode].sfu.packets.kind == "rtp").sum() > 0


@needs_tshark
def test_tshark_reads_the_key_frames_in_the_decrypted_dtls_srtp_pcap(results, views, tmp_path):
    result, v = results["dtls-srtp"], views["dtls-srtp"]
    decrypted = v.sfu.write(tmp_path)["decrypted"]
    keyframes = tshark("-r", str(decrypted), *as_rtp(result), "-d", "rtp.pt==96,vp8",
                       "-Y", "vp8.pld.s == 1 && vp8.hdr.frametype == 0", "-T", "fields",
                       "-e", "vp8.keyframe.start_code", "-e", "vp8.keyframe.width",
                       "-e", "vp8.keyframe.height")
    expected = ((v.sfu.frames.kind == "video") & (v.sfu.frames.frame_type == "key")).sum()
    assert keyframes == ["0x9d012a\t320\t240"] * expected and expected >= 2 * PEOPLE


# --- the recordings in data/ ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded():
    return {mode: analyze_views(recording(mode)) for mode in MODES}


@pytest.mark.parametrize("mode", MODES)
def test_the_recordings_analyse_to_the_counts_in_their_summary(recorded, mode):
    v = recorded[mode]
    summary, truth = v.call.summary, v.call.truth.frames
    assert v.call.source == "recording" and summary["mode"] == mode
    sent = per_leg(v.sfu.frames, "to_sfu")
    for p in summary["participants"]:
        for kind in ("video", "audio"):
            assert sent[p["name"], kind] == p[f"{kind}_frames_sent"]
    received = truth[truth.direction == "from_sfu"]
    assert per_leg(v.sfu.frames, "from_sfu") == records(received, "leg")
    inbound = v.sfu.frames[(v.sfu.frames.direction == "to_sfu") & (v.sfu.frames.kind == "video")]
    assert inbound.decodable.sum() == summary["sfu"]["video_frames_decodable"]
    assert len(v.wire.packets) == summary["capture"]["datagrams"]
    assert v.sfu.summary()["all_loopback"] and not v.sfu.dropped
    got = v.receiver.frames[v.receiver.frames.kind == "video"]
    assert got.decodable.mean() >= DELIVERY


def test_the_recordings_are_small_and_only_the_e2ee_one_has_frame_keys():
    total = sum(p.stat().st_size for p in CAPTURES_DIR.rglob("*") if p.is_file())
    assert total < 3 * 1024 * 1024
    assert (CAPTURES_DIR / "e2ee" / "frame-keys.json").exists()
    assert not (CAPTURES_DIR / "dtls-srtp" / "frame-keys.json").exists()


def test_the_lab_checks_accept_the_right_answers_from_a_recording(recorded):
    plain, e2ee = recorded["dtls-srtp"], recorded["e2ee"]
    assert lab.check_badge_packet(lab.badge_packet(plain), plain).ok
    assert not lab.check_badge_packet(1, plain).ok  # a ClientHello
    first = lab.first_media_packet(plain)  # starts Alice's key frame, which spans several packets
    starts = lab.check_badge_packet(first, plain)
    assert first < lab.badge_packet(plain) and not starts.ok and "starts that frame" in starts.message
    assert not lab.check_badge_packet(None, plain).ok
    for n in (2, 7):  # a later frame of bob's: each student gets a publisher and an n of their own
        right = lab.badge_packet(plain, "bob", n)
        assert lab.check_badge_packet(right, plain, "bob", n).ok and not lab.check_badge_packet(right, plain, "alice", n).ok
        for wrong in (right - 1, right + 1):
            hint = lab.check_badge_packet(wrong, plain, "bob", n).message
            assert "already" not in hint and "too" not in hint  # no side of the answer
    assert lab.check_entropy_statement("B").ok and not lab.check_entropy_statement("A").ok
    headers = lab.media_headers(lab.decrypt(e2ee.call, lab.wire_packet(e2ee.call, lab.first_media_packet(e2ee))))
    assert "SFrame header" in set(headers.layer)


# --- figures --------------------------------------------------------------------------------------


def test_the_figures_draw_from_the_views(views, tmp_path):
    for figure in (plots.three_views, plots.payload_bytes, plots.frame_metadata, plots.decodable_share):
        fig = figure(views)
        assert fig.axes, figure.__name__
    from e2ee_lab.analysis.command import save_headline_figure

    png = save_headline_figure(tmp_path / "three_views.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 300_000
    assert set(VIEWS) == {"wire", "sfu", "receiver"}


def test_noise_image_lays_bytes_out_in_four_by_three():
    image = noise_image(bytes(range(200)))
    assert image.shape[1] == 16 and image.shape[0] == 13
    assert image[0, 0] == 0 and image[-1, -1] != image[-1, -1]  # NaN padding


def _rtp_fields(datagram):
    if len(datagram) < 12 or not 128 <= datagram[0] <= 191 or 192 <= datagram[1] <= 223:
        return None
    return int.from_bytes(datagram[8:12], "big"), int.from_bytes(datagram[2:4], "big")


def test_the_rtp_reader_build_task_refuses_rtcp_short_datagrams_and_crashes(recorded):
    e2ee = recorded["e2ee"]
    payloads = lab.udp_payloads(e2ee.call)
    assert len(payloads) == len(e2ee.wire.packets) and all(payloads)
    assert lab.check_rtp_fields(_rtp_fields, e2ee, payloads).ok
    assert not lab.check_rtp_fields(_rtp_fields, e2ee, payloads[:-1]).ok  # another call's datagrams
    no_rtcp = lab.check_rtp_fields(lambda d: _rtp_fields(d) if d[:1] and d[1] < 192 or len(d) < 12
                                   else (int.from_bytes(d[8:12], "big"), int.from_bytes(d[2:4], "big")), e2ee, payloads)
    assert not no_rtcp.ok and "RTCP" in no_rtcp.message
    crashes = lab.check_rtp_fields(lambda d: _rtp_fields(d) if len(d) >= 12 else d[20], e2ee, payloads)
    assert not crashes.ok and "raised IndexError" in crashes.message
    swapped = lab.check_rtp_fields(lambda d: tuple(reversed(r)) if (r := _rtp_fields(d)) else None, e2ee, payloads)
    assert not swapped.ok and "bytes 8-11" in swapped.message
    as_list = lab.check_rtp_fields(lambda d: list(r) if (r := _rtp_fields(d)) else None, e2ee, payloads)
    assert not as_list.ok


def test_the_hostile_datagrams_are_per_student(monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": "s1", "record": None})
    first = lab._hostile_datagrams()
    assert [_rtp_fields(data) for _, data, _ in first] == [truth for _, _, truth in first]
    session._state["student"] = "s2"
    assert lab._hostile_datagrams() != first
