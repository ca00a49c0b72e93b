"""Smoke tests of e2ee_lab.bench, its figures and the ``e2ee-lab bench`` command: structure, never speed.

Also the SFU core's fast path that ``bench sfu`` measures (it must forward exactly what aiortc's parse +
serialize path forwards) and the checks of notebook 08 (:mod:`e2ee_lab.labs.overhead`).
"""

from __future__ import annotations

import json
import math
import sys

import pandas as pd
import pytest
from aiortc.rtp import RtpPacket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

import e2ee_lab.bench.pipeline as pipeline_module
from e2ee_lab.analysis.plots import call_envelope, pipeline_stages, sfu_capacity, transform_cpu, transform_overhead
from e2ee_lab.bench import (BENCHMARKS, MODES, SCHEMES, SFU_MODES, STAGES, aesgcm_bulk_rate, bench_pipeline,
                            bench_receiver, bench_sfu, bench_sframe, bench_transforms, format_pipeline,
                            format_receiver, format_sfu, format_sframe,
                            format_transforms, machine_info, measured_overhead, media_set, predicted_overhead,
                            room_traffic)
from e2ee_lab.bench.sfu import summarize
from e2ee_lab.bench.sfu_profile import (CATEGORIES, RECEIVE, ROUTING, SEND, WAITING, FuncKey, SFUProfile, categorize,
                                        format_profile, rule_category, short_path, summarize_profile)
from e2ee_lab.cli import _bench_kwargs, build_parser, main
from e2ee_lab.crypto.sframe import overhead
from e2ee_lab.labs import overhead as overhead_lab
from e2ee_lab.sfu import Forward, HonestPolicy, SFUCore
from e2ee_lab.sfu.wire import extensions_map

TINY = {"repeat": 2, "number": 3, "progress": False}


def test_bench_sframe_returns_one_row_per_suite_and_size():
    df = bench_sframe(sizes=[64, 1_000], suites=[1, 4], **TINY)
    assert list(zip(df["suite"], df["size"])) == [(1, 64), (1, 1_000), (4, 64), (4, 1_000)]
    timed = ["protect_us", "unprotect_us", "gcm_encrypt_us", "gcm_decrypt_us"]
    assert (df[timed] > 0).all().all() and (df[[c.replace("_us", "_iqr_us") for c in timed]] >= 0).all().all()
    expected = (df["protect_us"] + df["unprotect_us"]) / (df["gcm_encrypt_us"] + df["gcm_decrypt_us"])
    assert df["ratio_gcm"].tolist() == pytest.approx(expected.tolist())
    ctr_rows, gcm_rows = df[df["suite"] == 1], df[df["suite"] == 4]
    assert ctr_rows["ratio_ctr_hmac"].notna().all() and gcm_rows["ratio_ctr_hmac"].isna().all()
    assert gcm_rows["ctr_hmac_encrypt_us"].isna().all()
    # The suite-4 goal applies at 1 KB only (among these sizes), and its verdict is a bool there.
    assert df.loc[(df["suite"] == 4) & (df["size"] == 1_000), "goal"].item() == 2.0
    assert isinstance(df.loc[(df["suite"] == 4) & (df["size"] == 1_000), "goal_met"].item(), bool)
    assert df.loc[df["size"] == 64, "goal"].isna().all()
    assert (df["number"] == 3).all() and (df["repeat"] == 2).all()


def test_machine_is_described():
    info = machine_info()
    assert {"cpu", "aes_ni", "cores", "python", "openssl", "cryptography"} <= set(info)
    assert "OpenSSL" in info["openssl"] and isinstance(info["aes_ni"], bool)


def test_format_names_suites_and_columns():
    df = bench_sframe(sizes=[32], suites=[5], **TINY)
    text = format_sframe(df)
    assert "AES_256_GCM_SHA512_128" in text and "ratio vs gcm" in text and "openssl" in text


def test_bad_counts_raise_value_error():
    with pytest.raises(ValueError):
        bench_sframe(sizes=[32], suites=[4], repeat=0, progress=False)


def test_cli_bench_writes_csv_and_prints_table(tmp_path, capsys):
    out = tmp_path / "deep" / "sframe.csv"
    argv = ["bench", "sframe", "--repeat", "1", "--number", "2", "--sizes", "50", "--suites", "2", "4",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "protect µs" in table and "AES_128_CTR_HMAC_SHA256_64" in table
    assert pd.read_csv(out)[["suite", "size"]].values.tolist() == [[2, 50], [4, 50]]


def test_cli_bench_json_is_valid_and_complete(tmp_path, capsys):
    argv = ["bench", "sframe", "--json", "--repeat", "1", "--number", "2", "--sizes", "50", "--suites", "4",
            "--out", str(tmp_path / "s.csv"), "--no-progress"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    (row,) = payload["sframe"]["rows"]
    assert row["suite"] == 4 and row["size"] == 50 and row["ratio_ctr_hmac"] is None
    assert math.isfinite(row["ratio_gcm"]) and payload["sframe"]["machine"]["python"]


def test_cli_bench_choices_come_from_the_registry():
    parser = build_parser()
    assert parser.parse_args(["bench", "all"]).name == "all"
    for name in BENCHMARKS:
        assert parser.parse_args(["bench", name]).name == name
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "no-such-benchmark"])
    with pytest.raises(SystemExit):
        parser.parse_args([])


# --- one receiver of a big room, in memory ------------------------------------------------------------


def test_bench_receiver_times_every_verified_frame_and_splits_out_the_dependencies_and_stages():
    df = bench_receiver(publishers=2, seconds=0.5, repeat=2, progress=False)
    rows = {r["kind"]: r for r in df.to_dict("records")}
    assert set(rows) == {"audio", "video"}
    assert rows["audio"]["frames"] == 2 * 25 and rows["audio"]["packets_per_frame"] == 1.0  # 2 speakers, 20 ms
    assert rows["video"]["frames"] == 2 * 15 and rows["video"]["packets_per_frame"] > 1  # 0.5 s at 30 fps, full size
    for r in rows.values():  # timings are positive; how they compare is the benchmark's finding, not asserted here
        assert all(r[c] > 0 for c in ("us_per_frame", "parse_us", "unprotect_us", "reassembly_us", "transform_us"))
        assert r["rest_us"] == pytest.approx(r["us_per_frame"] - r["parse_us"] - r["unprotect_us"], abs=0.11)
        assert r["glue_us"] == pytest.approx(r["us_per_frame"] - r["reassembly_us"] - r["transform_us"], abs=0.11)
    assert df.attrs["options"] == {"publishers": 2, "speakers": 2, "seconds": 0.5, "repeat": 2}
    text = format_receiver(df)
    assert "aiortc parse" in text and "SFrame unprotect" in text and "reassembly" in text and text.count("\n") == 3


def test_bench_receiver_refuses_a_receiver_that_did_not_verify_every_frame(monkeypatch):
    from e2ee_lab.call.pipeline import MediaSender

    monkeypatch.setattr(MediaSender, "sent_data", lambda self, kind, timestamp: b"not what was sent")
    with pytest.raises(RuntimeError, match="did not verify every frame"):
        bench_receiver(publishers=1, seconds=0.2, repeat=1, progress=False)


@pytest.mark.parametrize("bad", [{"publishers": 0}, {"repeat": 0}, {"seconds": 0}])
def test_bench_receiver_refuses_bad_arguments(bad):
    with pytest.raises(ValueError):
        bench_receiver(progress=False, **bad)


# --- transforms and pipeline on real frames (tiny sizes) ---------------------------------------------

SMALL_MEDIA = ["opus", "vp8-320x240"]


@pytest.fixture(scope="module")
def transforms_df():
    return bench_transforms(media=SMALL_MEDIA, frames=4, repeat=2, number=1, progress=False)


@pytest.fixture(scope="module")
def pipeline_df():
    return bench_pipeline(media=SMALL_MEDIA, frames=3, repeat=1, number=1, progress=False)


def test_media_sets_hold_real_key_and_delta_frames():
    video = media_set("vp8-320x240", 4)
    assert video.frame_types() == ["key", "delta", "delta", "delta"]  # key forced at position 0
    assert video.frames[0].data[3:6] == b"\x9d\x01\x2a"  # the VP8 key-frame start code, RFC 6386 §9.1
    assert (video.width, video.height, video.fps) == (320, 240, 30)
    audio = media_set("opus", 4)
    assert audio.frame_types() == ["audio"] * 4 and audio.fps == 50
    assert audio.bitrate_bps == sum(len(f.data) for f in audio.frames) * 8 * 50 / 4


@pytest.mark.parametrize("bad", [{"name": "vp9-320x240"}, {"name": "vp8-100x100"}, {"name": "opus", "frames": 0}],
                         ids=["codec", "size", "frames"])
def test_media_set_refuses_bad_arguments(bad):
    with pytest.raises(ValueError):
        media_set(**bad)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_measured_overhead_is_exactly_what_overhead_predicts(scheme):
    frames = media_set("opus", 10).frames  # CTR 0..9: the SFrame header grows from 1 to 2 bytes at 8
    assert measured_overhead(frames, scheme) == predicted_overhead(scheme, 10)


def test_predicted_overhead_values():
    assert predicted_overhead("none", 2) == [0, 0]
    assert predicted_overhead("clear-prefix", 2) == [30, 30]  # 16-byte tag + 12-byte IV + 2 bytes
    assert predicted_overhead("sframe-4", 9)[7:] == [17, 18]  # KID 1: 1-byte header, then CTR needs a byte
    assert predicted_overhead("sframe-3", 1) == [5]  # 4-byte tag


def test_bench_transforms_rows_and_columns(transforms_df):
    df = transforms_df
    groups = [("opus", "audio"), ("vp8-320x240", "key"), ("vp8-320x240", "delta")]
    assert list(zip(df["media"], df["frame_type"], df["scheme"])) == [(m, t, s) for m, t in groups for s in SCHEMES]
    assert df["overhead_bytes"].tolist() == pytest.approx(df["overhead_predicted"].tolist())
    timed = ["protect_us", "unprotect_us", "gcm_encrypt_us", "gcm_decrypt_us"]
    assert (df[timed] > 0).all().all()
    per_second = (df["protect_us"] + df["unprotect_us"]) * df["fps"]
    assert df["core_pct"].tolist() == pytest.approx((per_second / 1e4).tolist())
    # The ceiling: each frame's bytes at AES-128-GCM's bulk rate through cryptography, one rate per run.
    rate = df.attrs["bulk_rate"]
    assert math.isfinite(rate) and rate > 0 and "AES-128-GCM bulk rate" in df.attrs["note"]
    assert df["ceiling_us"].tolist() == pytest.approx((df["mean_size"] / rate * 1e6).tolist())
    assert df.loc[df["frame_type"] == "key", "frames"].eq(1).all()


def test_encrypted_schemes_grow_every_frame_and_none_does_not(transforms_df):
    df = transforms_df
    none, encrypted = df[df["scheme"] == "none"], df[df["scheme"] != "none"]
    assert (none["overhead_bytes"] == 0).all() and (none["overhead_bitrate_pct"] == 0).all()
    assert (encrypted["overhead_bytes"] >= 5).all() and (encrypted["overhead_bitrate_pct"] > 0).all()
    # The same bytes are a larger share of small audio frames than of video key frames.
    sframe4 = df[df["scheme"] == "sframe-4"].set_index("frame_type")
    assert sframe4.loc["audio", "overhead_pct"] > sframe4.loc["key", "overhead_pct"]


def test_bench_transforms_refuses_unknown_scheme_and_media():
    with pytest.raises(ValueError):
        bench_transforms(media=["opus"], schemes=["rot13"], progress=False)
    with pytest.raises(ValueError):
        bench_transforms(media=["h264-320x240"], progress=False)


def test_format_transforms_has_the_table(transforms_df):
    text = format_transforms(transforms_df)
    assert "sframe-5" in text and "clear-prefix" in text and "% bitrate" in text and "ceiling µs" in text
    assert f"{machine_info()['openssl']} via cryptography" in text  # the ceiling's library, named


def test_aesgcm_bulk_rate_is_bytes_per_second_of_the_same_library():
    assert 0 < aesgcm_bulk_rate(buffer_bytes=4096, repeat=3) < math.inf
    assert aesgcm_bulk_rate(buffer_bytes=4096, repeat=1, key_bytes=32) > 0  # AES-256-GCM (suite 5)


@pytest.mark.parametrize("bad", [{"buffer_bytes": 0}, {"repeat": 0}, {"key_bytes": 15}], ids=["size", "repeat", "key"])
def test_aesgcm_bulk_rate_refuses_bad_arguments(bad):
    with pytest.raises(ValueError):
        aesgcm_bulk_rate(**bad)


def test_bench_pipeline_rows_and_stages(pipeline_df):
    df = pipeline_df
    expected = [(m, c, mode) for m in SMALL_MEDIA for c in (False, True) for mode in MODES]
    assert list(zip(df["media"], df["codec"], df["mode"])) == expected
    for stage in STAGES:
        codec_only = stage in ("encode", "decode")
        assert df.loc[df["codec"], f"{stage}_us"].gt(0).all()
        assert df.loc[~df["codec"], f"{stage}_us"].isna().all() == codec_only
    assert (df["frames"] == 3).all() and (df["packets_per_frame"] >= 1).all()
    base = df[df["mode"] == "dtls-srtp"]
    assert (base["added_us"] == 0).all() and base["goal_met"].isna().all()
    assert (base["verdict"] == "").all()
    e2ee = df[df["mode"] != "dtls-srtp"]
    assert (e2ee["goal_us"] == 50).all() and e2ee["goal_met"].map(type).eq(bool).all()  # one run: IQR 0
    assert e2ee["verdict"].tolist() == ["met" if (a < 50) else "MISSED" for a in e2ee["added_us"]]


@pytest.mark.parametrize(("added", "spread", "verdict", "met"),
                         [(10.0, 5.0, "met", True), (60.0, 5.0, "MISSED", False), (10.0, 80.0, "unresolved", None)],
                         ids=["met", "missed", "too-noisy"])
def test_goal_verdict_says_unresolved_when_runs_scatter_more_than_the_goal(added, spread, verdict, met):
    goal = pipeline_module._goal(True, added, spread)
    assert (goal["verdict"], goal["goal_met"], goal["goal_us"]) == (verdict, met, 50.0)
    assert pipeline_module._goal(False, added, spread)["verdict"] == ""


def test_pipeline_e2ee_frames_are_larger_on_the_wire_by_the_overhead(pipeline_df):
    rows = pipeline_df[~pipeline_df["codec"]].set_index(["media", "mode"])
    # Opus: one packet per frame, so the wire grows by exactly the transform's overhead (CTR 0..2).
    assert rows.loc[("opus", "e2ee"), "wire_bytes"] - rows.loc[("opus", "dtls-srtp"), "wire_bytes"] == 17
    assert rows.loc[("opus", "clear-prefix"), "wire_bytes"] - rows.loc[("opus", "dtls-srtp"), "wire_bytes"] == 30
    video = rows.loc["vp8-320x240"]
    assert video.loc["e2ee", "wire_bytes"] > video.loc["dtls-srtp", "wire_bytes"]
    assert video["frame_bytes"].nunique() == 1  # the same encoded frames went in for every mode


def test_bench_pipeline_refuses_unknown_mode():
    with pytest.raises(ValueError):
        bench_pipeline(media=["opus"], modes=["tls"], progress=False)


def test_format_pipeline_prints_stages_and_verdicts(pipeline_df):
    text = format_pipeline(pipeline_df)
    assert "route" in text and "+E2EE" in text
    assert text.count("goal: ") == len(pipeline_df[pipeline_df["mode"] != "dtls-srtp"])
    assert "E2EE goal (SFrame, whole path without the codec): met on" in text


def test_figures_draw_from_bench_results(transforms_df, pipeline_df):
    for fig, panels in ((transform_overhead(transforms_df), 2), (transform_cpu(transforms_df), 2),
                        (pipeline_stages(pipeline_df), 1), (pipeline_stages(pipeline_df, codec=True), 1)):
        assert isinstance(fig, Figure) and len(fig.axes) == panels
    protect_panel = transform_cpu(transforms_df).axes[0]
    assert "AES-GCM bulk rate (ceiling)" in [line.get_label() for line in protect_panel.lines]
    bars = transform_overhead(transforms_df).axes[0].patches
    assert len(bars) == len(SMALL_MEDIA) * len(SCHEMES)


def test_cli_bench_pipeline_ignores_options_it_does_not_take(tmp_path, capsys):
    out = tmp_path / "p.csv"
    argv = ["bench", "pipeline", "--media", "opus", "--frames", "2", "--repeat", "1", "--number", "1",
            "--codec", "off", "--suites", "4", "--sizes", "100", "--out", str(out), "--no-progress", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["pipeline"]["rows"]
    assert [r["mode"] for r in rows] == list(MODES) and all(r["encode_us"] is None for r in rows)
    assert [r["goal_met"] is None for r in rows] == [True, False, False]
    assert pd.read_csv(out)["mode"].tolist() == list(MODES)


def test_cli_bench_transforms_writes_csv(tmp_path, capsys):
    out = tmp_path / "t.csv"
    argv = ["bench", "transforms", "--media", "opus", "--frames", "2", "--repeat", "1", "--number", "1",
            "--no-ceiling", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "sframe-4" in capsys.readouterr().out
    written = pd.read_csv(out)
    assert written["scheme"].tolist() == list(SCHEMES) and written["ceiling_us"].isna().all()


# --- bench sfu: the SFU's speed in a two-process load, and the fast path it measures --------------------

SFU_ROOMS = [2, 3]


@pytest.fixture(scope="module")
def sfu_df():
    return bench_sfu(rooms=SFU_ROOMS, repeat=2, number=120, progress=False)


def test_bench_sfu_rows_and_verdicts(sfu_df):
    df = sfu_df
    assert list(zip(df["participants"], df["mode"])) == [(n, m) for n in SFU_ROOMS for m in SFU_MODES]
    assert (df["runs"] == 2).all() and (df["sent"] == 120).all() and (df["forwarded"] > 0).all()
    bare, e2ee = df[df["mode"] == "bare"], df[df["mode"] == "e2ee"]
    assert bare["ratio_bare"].isna().all() and (bare[["goal_pps", "goal_ratio", "goal_e2ee"]] == "").all().all()
    sfu = df[df["mode"] != "bare"]
    assert (sfu["ratio_bare"] > 0).all() and sfu["goal_pps"].isin(["met", "MISSED"]).all()
    assert sfu["goal_ratio"].isin(["met", "MISSED"]).all()
    assert (e2ee["ratio_e2ee"] > 0).all() and e2ee["goal_e2ee"].isin(["within noise", "differs"]).all()
    assert df.loc[df["mode"] != "e2ee", "ratio_e2ee"].isna().all()
    assert {"machine", "loop", "load_start", "load_end", "elapsed_s"} <= set(df.attrs)


def test_bench_sfu_every_packet_it_took_in_went_to_every_other_participant(sfu_df):
    runs = pd.DataFrame(sfu_df.attrs["runs"])
    assert len(runs) == len(SFU_ROOMS) * len(SFU_MODES) * 2
    # Real SRTP across two processes: nothing failed authentication or was refused by the core ...
    assert (runs["dropped"] == 0).all()
    # ... and each packet the forwarder read was sent to each other participant, bare or SFU.
    assert (runs["forwarded"] == runs["received"] * (runs["participants"] - 1)).all()
    assert (runs["cpu_s"] > 0).all() and (runs["received"] <= runs["sent"]).all()


def test_format_sfu_and_figure(sfu_df):
    text = format_sfu(sfu_df)
    assert "pkt/s/core" in text and "e2ee/dtls" in text and "load average" in text
    assert text.count("goal: ") == 5
    fig = sfu_capacity(sfu_df)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == len(SFU_MODES) + 1  # one per mode and the goal line


def _runs(us: dict[str, list[float]], participants: int = 4) -> pd.DataFrame:
    rows = [{"participants": participants, "mode": mode, "run": run, "sent": 100, "received": 100,
             "forwarded": 10_000, "cpu_s": value * 10_000 / 1e6, "wall_s": 1.0}
            for mode, values in us.items() for run, value in enumerate(values)]
    return pd.DataFrame(rows)


def test_summarize_pairs_runs_and_judges_the_goals():
    df = summarize(_runs({"bare": [10.0, 10.0], "dtls-srtp": [14.0, 14.0], "e2ee": [14.1, 14.1]})).set_index("mode")
    assert df.loc["dtls-srtp", "ratio_bare"] == pytest.approx(1.4)
    assert df.loc["dtls-srtp", "pps_per_core"] == pytest.approx(1e6 / 14)
    assert df.loc["e2ee", "ratio_e2ee"] == pytest.approx(14.1 / 14)
    assert tuple(df.loc["dtls-srtp", ["goal_pps", "goal_ratio"]]) == ("met", "met")
    assert df.loc["e2ee", "goal_e2ee"] == "within noise"
    slow = summarize(_runs({"bare": [10.0, 10.0], "dtls-srtp": [30.0, 30.0], "e2ee": [40.0, 40.0]})).set_index("mode")
    assert tuple(slow.loc["dtls-srtp", ["goal_pps", "goal_ratio"]]) == ("MISSED", "MISSED")
    assert slow.loc["e2ee", "goal_e2ee"] == "differs"


@pytest.mark.parametrize("bad", [{"rooms": [1]}, {"modes": ["tls"]}, {"loop": "tokio"}, {"video": "opus"},
                                 {"repeat": 0}, {"target": 0}], ids=["room", "mode", "loop", "video", "repeat", "target"])
def test_bench_sfu_refuses_bad_arguments_before_starting(bad):
    with pytest.raises(ValueError):
        bench_sfu(progress=False, **bad)


def test_room_traffic_is_real_frames_and_their_sframe_ciphertext():
    plain, sealed = room_traffic("dtls-srtp"), room_traffic("e2ee")
    assert [f.kind for f in plain].count("video") == 30 and [f.kind for f in plain].count("audio") == 50
    assert [f.timestamp for f in sealed] == [f.timestamp for f in plain]
    # One SFrame sender (suite 4, KID 1) seals them in order: header + 16-byte tag per frame.
    assert [len(s.data) - len(p.data) for s, p in zip(sealed, plain)] == [overhead(4, 1, i) for i in range(80)]
    assert sealed[0].data[0] == 0x10  # config byte: KID 1 in K, CTR 0 in C (RFC 9605 §4.3)


def test_cli_gives_bench_sfu_only_the_options_it_takes():
    args = build_parser().parse_args(["bench", "sfu", "--number", "50", "--media", "opus", "--no-progress"])
    assert _bench_kwargs(args, bench_sfu) == {"repeat": 7, "number": 50, "progress": False}
    args = build_parser().parse_args(["bench", "sfu", "--rooms", "2", "--loop", "uvloop"])
    assert _bench_kwargs(args, bench_sfu) == {"repeat": 7, "number": None, "progress": True, "rooms": [2],
                                              "loop": "uvloop"}


def test_bench_sfu_without_uvloop_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # ``import uvloop`` now fails, as when not installed
    with pytest.raises(ImportError, match="pip install"):
        bench_sfu(rooms=[2], loop="uvloop", progress=False)
    assert main(["bench", "sfu", "--loop", "uvloop", "--rooms", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uvloop" in err and "pip install 'e2ee-lab[fast]'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["bench", "sfu", "--rooms", "1"], ["bench", "sframe", "--suites", "9"],
                                  ["bench", "transforms", "--profile"],
                                  ["bench", "sfu", "--profile", "--rooms", "2", "4"],
                                  ["bench", "receiver", "--publishers", "0"]],
                         ids=["room-of-1", "suite-9", "profile-not-sfu", "profile-two-rooms", "no-publisher"])
def test_cli_bad_option_values_exit_2_with_one_line(argv, capsys):
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("e2ee-lab bench")


def _key(path: str, name: str, line: int = 1) -> FuncKey:
    return (path, line, name)


SEND_RTP = _key("/x/e2ee_lab/transport/udp.py", "send_rtp")
UNPROTECT = _key("/x/site-packages/pylibsrtp/__init__.py", "unprotect")
PROTECT = _key("/x/site-packages/pylibsrtp/__init__.py", "protect")
PROCESS = _key("/x/site-packages/pylibsrtp/__init__.py", "__process")
LEN = _key("~", "<built-in method builtins.len>", 0)
EPOLL = _key("~", "<method 'poll' of 'select.epoll' objects>", 0)


def _stats() -> dict:
    """A made-up profile: __process runs 3 s under protect and 1 s under unprotect; len 2 s under __process."""
    edge = lambda calls, self_s: (calls, calls, self_s, self_s)  # noqa: E731
    return {
        SEND_RTP: (3, 3, 1.0, 8.0, {}), PROTECT: (3, 3, 0.5, 6.0, {SEND_RTP: edge(3, 0.5)}),
        UNPROTECT: (1, 1, 0.5, 2.0, {}), PROCESS: (4, 4, 4.0, 6.0, {PROTECT: edge(3, 3.0), UNPROTECT: edge(1, 1.0)}),
        LEN: (8, 8, 2.0, 2.0, {PROCESS: edge(8, 2.0)}), EPOLL: (2, 2, 5.0, 5.0, {}),
        _key("/x/e2ee_lab/sfu/core.py", "receive_rtp"): (1, 1, 1.0, 1.0, {}),
    }


def test_profile_rules_and_callers_split_self_time():
    assert short_path("/a/b/lib/python3.11/site-packages/pylibsrtp/__init__.py") == "pylibsrtp/__init__.py"
    assert short_path("/repo/e2ee_lab/sfu/core.py") == "e2ee_lab/sfu/core.py"
    assert (rule_category(PROTECT), rule_category(UNPROTECT), rule_category(PROCESS)) == (SEND, RECEIVE, None)
    shares = categorize(_stats())
    assert shares[PROCESS] == pytest.approx({SEND: 0.75, RECEIVE: 0.25})  # split by its self time per caller
    assert shares[LEN] == pytest.approx({SEND: 0.75, RECEIVE: 0.25})  # ... and handed down to what it calls
    categories, functions = summarize_profile(_stats(), forwarded=1_000)
    table = categories.set_index("category")
    # busy = 14 s - 5 s waiting; send = 1 + 0.5 + 0.75 * (4 + 2) = 6 s; receive = 0.5 + 0.25 * 6 = 2 s
    assert table.loc[SEND, "self_s"] == pytest.approx(6.0) and table.loc[RECEIVE, "self_s"] == pytest.approx(2.0)
    assert table.loc[ROUTING, "share_pct"] == pytest.approx(100 / 9) and math.isnan(table.loc[WAITING, "share_pct"])
    assert table["share_pct"].sum() == pytest.approx(100.0) and list(table.index) == list(CATEGORIES)
    assert table.loc[SEND, "us_per_packet"] == pytest.approx(6_000.0)
    assert functions["function"].iloc[0] == "<method 'poll' of 'select.epoll' objects>"  # sorted by self time
    assert functions.set_index("function").loc["pylibsrtp/__init__.py:1(__process)", "category"] == SEND
    text = format_profile(SFUProfile(4, "e2ee", "asyncio", 500, 1_000, 9.0, categories, functions), top=3)
    assert "room of 4" in text and "66.7" in text and "(idle)" in text and "top 3 functions" in text


def test_profile_survives_a_cycle_of_unnamed_functions():
    a, b = _key("/x/helpers.py", "a"), _key("/x/helpers.py", "b")
    stats = {SEND_RTP: (1, 1, 1.0, 3.0, {}), a: (2, 2, 1.0, 2.0, {SEND_RTP: (1, 1, 0.5, 1.0), b: (1, 1, 0.5, 1.0)}),
             b: (1, 1, 1.0, 1.0, {a: (1, 1, 1.0, 1.0)})}
    shares = categorize(stats)
    assert shares[a] == {SEND: 1.0} and shares[b] == {SEND: 1.0}


def test_cli_bench_sfu_profile_prints_where_the_time_goes(tmp_path, capsys):
    out = tmp_path / "profile.csv"
    argv = ["bench", "sfu", "--profile", "--rooms", "2", "--repeat", "1", "--number", "200", "--out", str(out),
            "--no-progress", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["participants"], payload["mode"]) == (2, "e2ee")
    assert 0 < payload["received"] == payload["forwarded"] <= 200  # a room of 2: one copy per packet read
    shares = {row["category"]: row["share_pct"] for row in payload["categories"]}
    assert shares[SEND] > 0 and shares[RECEIVE] > 0 and shares[ROUTING] > 0 and shares[WAITING] is None
    assert sum(v for v in shares.values() if v is not None) == pytest.approx(100.0)
    functions = pd.read_csv(out).set_index("function")
    core = [f for f in functions.index if f.startswith("e2ee_lab/sfu/core.py:") and f.endswith("(receive_rtp)")]
    assert len(core) == 1 and functions.loc[core[0], "category"] == ROUTING
    assert functions.loc[core[0], "calls"] == payload["received"]  # every packet read went through the core


class _Reserialize(HonestPolicy):
    """Forwards everything, as a replacement packet: the core's parse + serialize path."""

    def on_rtp(self, inbound, dests):
        return [Forward(d, inbound, packet=inbound.packet) for d in dests]


class _HonestSubclass(HonestPolicy):
    """Honest, but not the HonestPolicy type itself: the core's general policy path."""


_EXTMAP = extensions_map({1: "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
                           2: "urn:ietf:params:rtp-hdrext:sdes:mid"})  # the SFU forwards only id 1


@st.composite
def _packets(draw) -> list[bytes]:
    seq, out = draw(st.integers(0, 65535)), []
    for _ in range(draw(st.integers(1, 6))):
        video = draw(st.booleans())
        packet = RtpPacket(payload_type=96 if video else 111, marker=draw(st.integers(0, 1)), sequence_number=seq,
                           timestamp=draw(st.integers(0, 2**32 - 1)), ssrc=0xA0 if video else 0xA1,
                           payload=draw(st.binary(min_size=1, max_size=40)))
        packet.csrc = draw(st.lists(st.integers(0, 2**32 - 1), max_size=3))
        packet.padding_size = draw(st.sampled_from([0, 0, 1, 4]))
        packet.extensions.audio_level = draw(st.none() | st.tuples(st.booleans(), st.integers(0, 127)))
        packet.extensions.mid = draw(st.none() | st.sampled_from(["0", "video"]))  # not forwarded: rewritten
        out.append(packet.serialize(_EXTMAP))
        seq = (seq + draw(st.integers(1, 3))) % 65536
    return out


def _forwarded(policy, packets: list[bytes]) -> tuple[list[tuple[str, bytes]], pd.DataFrame]:
    core = SFUCore(policy=policy, seed=5)
    for leg in "ABC":
        core.add_leg(leg)
    out = [d for p in packets for d in core.receive_rtp("A", p, 1.0)]
    return out, core.view.to_dataframe()


def _fields(data: bytes) -> tuple:
    p = RtpPacket.parse(data, _EXTMAP)
    return (p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc, p.csrc, p.payload, p.padding_size,
            p.extensions.audio_level, p.extensions.mid, len(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_packets())
def test_sfu_fast_path_forwards_what_parse_and_serialize_forward(packets):
    fast, fast_view = _forwarded(HonestPolicy(), packets)
    for policy in (_HonestSubclass(), _Reserialize()):
        slow, slow_view = _forwarded(policy, packets)
        assert [leg for leg, _ in fast] == [leg for leg, _ in slow]
        assert [_fields(d) for _, d in fast] == [_fields(d) for _, d in slow]
        # Random RTP padding is drawn anew by aiortc's serialize; without padding the bytes are equal.
        assert [d for (_, d), (_, e) in zip(fast, slow) if d[0] & 0x20 == 0] == \
               [e for (_, d), (_, e) in zip(fast, slow) if d[0] & 0x20 == 0]
        pd.testing.assert_frame_equal(fast_view, slow_view)
    assert all(_fields(d)[9] is None for _, d in fast)  # the MID extension (id 2) is not forwarded


def test_sfu_fast_path_counts_a_malformed_extension_like_aiortc():
    packet = bytearray(RtpPacket(payload_type=111, sequence_number=1, ssrc=0xA1, payload=b"x").serialize())
    packet[0] |= 0x10  # X bit, then an audio-level element (id 1) claiming 2 bytes in a 1-word block
    packet[12:12] = b"\xbe\xde\x00\x01\x11\x00\x00\x00"
    core = SFUCore(seed=1)
    for leg in "AB":
        core.add_leg(leg)
    assert core.receive_rtp("A", bytes(packet), 0.0) == [] and core.dropped == {"malformed_rtp": 1}
    assert core.receive_rtp("A", bytes(packet), 0.0) == [] and core.dropped == {"malformed_rtp": 2}  # not cached


# --- notebook 08's checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(("check", "answer", "ok", "phrase"), [
    (overhead_lab.check_overhead_kbps, None, False, "unanswered"),
    (overhead_lab.check_overhead_kbps, 22 * 8 * 30 / 1024, True, "5.16 kbit/s"),
    (overhead_lab.check_overhead_kbps, 22 * 8 * 30 / 1000, True, "1024"),
    (overhead_lab.check_overhead_kbps, 16 * 8 * 30 / 1024, False, "tag alone"),
    (overhead_lab.check_overhead_kbps, 22 * 30, False, "bytes per second"),
    (overhead_lab.check_overhead_kbps, "5", False, "number"),
    (overhead_lab.check_sfu_cost, overhead_lab.TASK2_OPTIONS.letter_of("same-work").upper(), True, "same in both modes"),
    (overhead_lab.check_sfu_cost, overhead_lab.TASK2_OPTIONS.letter_of("sframe-reencrypt"), False, "no SFrame key"),
    (overhead_lab.check_sfu_cost, "z", False, "one letter"),
    (overhead_lab.check_core_share, 0.084, True, "840 µs"),
    (overhead_lab.check_core_share, 0.00084, False, "multiply by 100"),
    (overhead_lab.check_core_share, 3 * 30 * 6 / 1e4, False, "audio streams"),
    (overhead_lab.check_core_share, (30 * 6 + 50 * 2) / 1e4, False, "one publisher"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_notebook_08_checks(check, answer, ok, phrase):
    feedback = check(answer)
    assert feedback.ok is ok and phrase in feedback.message


def test_notebook_08_prediction_compared_with_the_run(capsys, monkeypatch):
    monkeypatch.setattr(overhead_lab, "_sfu_runs", [])
    right = overhead_lab.TASK2_OPTIONS.letter_of("same-work")
    assert overhead_lab.predict(right) == right and "before the SFU was measured" in capsys.readouterr().out
    overhead_lab._sfu_runs.append("ci")
    overhead_lab.predict(right)
    assert "AFTER" in capsys.readouterr().out
    calm = pd.DataFrame({"ratio_e2ee": [0.97, 1.04]})
    noisy = pd.DataFrame({"ratio_e2ee": [0.6, 1.5]})
    assert overhead_lab.check_sfu_cost(right, calm).ok and "same within noise" in overhead_lab.check_sfu_cost(right, calm).message
    assert "quieter machine" in overhead_lab.check_sfu_cost(right, noisy).message
    wrong = overhead_lab.check_sfu_cost(overhead_lab.TASK2_OPTIONS.letter_of("no-srtp"), calm)
    assert not wrong.ok and "0.97 to 1.04" in wrong.message


def _overhead_formula(suite, kid, ctr):
    def extension(value):
        return 0 if value < 8 else (value.bit_length() + 7) // 8
    return 1 + extension(kid) + extension(ctr) + {1: 10, 2: 8, 3: 4, 4: 16, 5: 16}[suite]


@pytest.mark.parametrize(("func", "ok", "phrase"), [
    (_overhead_formula, True, "matches the encoder"),
    (lambda s, k, c: _overhead_formula(s, k, c) - 1, False, "config byte"),
    (lambda s, k, c: _overhead_formula(s, k, c) + (k < 8) + (c < 8), False, "3-bit field"),
    (lambda s, k, c: _overhead_formula(4, k, c), False, "depends on the suite"),
    (lambda s, k, c: 1 + k.bit_length() // 8 + c.bit_length() // 8 + 16 + (s < 4) * (_overhead_formula(s, 0, 0) - 17),
     False, "fewest bytes"),
    (lambda s, k, c: float(_overhead_formula(s, k, c)), False, "as an int"),
    (lambda s, k, c: 1 / 0, False, "ZeroDivisionError"),
    (None, False, "unanswered"),
], ids=["right", "no-config", "small-values", "one-tag", "boundaries", "float", "raises", "none"])
def test_notebook_08_overhead_function_against_the_encoder(func, ok, phrase):
    feedback = overhead_lab.check_overhead_function(func)
    assert feedback.ok is ok and phrase in feedback.message, feedback.message


def test_notebook_08_overhead_cases_are_per_student_and_cover_every_suite(monkeypatch):
    shipped = overhead_lab.overhead_cases()
    assert {suite for suite, _, _ in shipped} == {1, 2, 3, 4, 5}
    assert any(kid < 8 and ctr < 8 for _, kid, ctr in shipped)
    assert all(overhead_lab.encoder_overhead(*case) == overhead(*case) for case in shipped)
    monkeypatch.setenv("E2EE_LAB_STUDENT", "s0000001")
    assert overhead_lab.overhead_cases() != shipped


# --- bench sframe --peer wrtc ---------------------------------------------------------------------


def test_bench_sframe_refuses_an_unknown_peer():
    with pytest.raises(ValueError, match="unknown peer"):
        bench_sframe(sizes=[100], suites=[4], repeat=1, number=1, progress=False, peer="openssl")


def test_bench_sframe_puts_wrtc_beside_the_lab_and_bare_gcm():
    from e2ee_lab.interop import wrtc_problem

    if wrtc_problem():
        pytest.skip(wrtc_problem())
    df = bench_sframe(sizes=[100], suites=[1, 4], repeat=1, number=20, progress=False, peer="wrtc")
    for column in ("protect_us", "wrtc_protect_us", "wrtc_unprotect_us", "gcm_encrypt_us", "ratio_wrtc"):
        assert (df[column] > 0).all(), column
    table = format_sframe(df)
    assert "wrtc protect µs" in table and "gcm enc µs" in table and "lab/wrtc" in table


# --- call: the envelope (one tiny real call) -----------------------------------------------------------


def test_call_room_sizes_parse_and_bad_ones_are_refused():
    from e2ee_lab.bench.call import parse_participants

    assert parse_participants("2,4, 8,12") == (2, 4, 8, 12)
    for bad in ("", "2,x", "1,4"):
        with pytest.raises(ValueError, match="participants"):
            parse_participants(bad)


def test_call_shares_fall_back_to_decoded_where_a_stack_does_not_verify():
    from e2ee_lab.bench.call import shares

    rows = [{"video_frames_expected": 100, "video_frames_verified": 90, "video_frames_decoded": 10,
             "video_frames_late": 5, "audio_frames_expected": 200, "audio_frames_verified": None,
             "audio_frames_decoded": 150, "audio_frames_late": 0},
            {"video_frames_expected": 100, "video_frames_verified": 99, "video_frames_decoded": 30,
             "video_frames_late": 0, "audio_frames_expected": 0, "audio_frames_verified": 0,
             "audio_frames_decoded": 0, "audio_frames_late": 0}]
    assert shares({"participants": rows}) == {"video_verified_min": 0.9, "audio_verified_min": 0.75,
                                              "video_decoded_share": 0.2, "late_share": 0.0125}


def test_cli_bench_call_runs_a_room_and_prints_its_verdict(tmp_path, capsys):
    argv = ["bench", "call", "--participants", "2", "--seconds", "0.5", "--size", "ci", "--no-progress",
            "--out", str(tmp_path / "call.csv")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "whole calls, one per room size (encode clip, views 1, workers 0, loop asyncio)" in printed
    assert "2 participants: " in printed
    df = pd.read_csv(tmp_path / "call.csv")
    (row,) = df.to_dict("records")
    assert row["participants"] == 2 and row["publishers"] == 2 and row["stack"] == "lab"
    assert 0 <= row["video_verified_min"] <= 1 and 0 <= row["late_share"] <= 1
    assert row["cpu_s_per_participant_s"] > 0 and row["latency_p50_ms"] <= row["latency_p95_ms"]
    assert 0 < row["sfu_process_cpu_s_per_s"] and row["workers"] == 0
    fig = call_envelope(pd.concat([df, df.assign(workers=2, real_time=False)]))
    left, right = fig.axes
    assert len(left.get_legend().get_texts()) == 3  # one process, 2 workers, the 95 % mark
    assert right.get_ylabel() == "CPU-seconds per participant-second"
    assert main(["bench", "call", "--participants", "2", "--stack", "webrtc", "--publishers", "1",
                 "--no-progress", "--out", str(tmp_path / "x.csv")]) == 2


def test_recorded_envelope_has_both_modes_every_room_and_draws(capsys):
    """Lab 08's recording (data/make_envelope.py) loads, covers what the script ran, and draws."""
    assert overhead_lab.ENVELOPE_PATH.stat().st_size < 16_000  # a few KB, rows and metadata only
    df = overhead_lab.recorded_envelope()
    assert "recorded " in capsys.readouterr().out
    rooms = list(overhead_lab.ENVELOPE_OPTIONS["participants"])
    assert set(df["mode"]) == {"dtls-srtp", "e2ee"}
    for mode, rows in df.groupby("mode"):
        assert sorted(rows["participants"]) == rooms, mode
    assert (df["workers"] == 2).all() and (df["size"] == "full").all() and (df["seconds"] == 5).all()
    assert {"load_before", "load_after", "sfu_process_cpu_s_per_s", "real_time"} <= set(df.columns)
    meta = df.attrs["meta"]
    assert meta["machine"]["cores"] >= 1 and set(meta["load_average_1min"]) == {"before", "after"}
    assert meta["command"].startswith("e2ee-lab bench call") and meta["began_utc"] <= meta["ended_utc"]
    table = overhead_lab.envelope_summary(df)
    assert len(table) == 2 * len(rooms) and list(table["participants"]) == sorted(rooms * 2)
    assert (table["cores used"] > 0).all()
    left, right = call_envelope(df).axes
    assert [t.get_text() for t in left.get_legend().get_texts()] == [
        "lab dtls-srtp, 2 workers", "lab e2ee, 2 workers", "95 %"]


def test_bench_call_takes_a_browser_on_the_webrtc_stack_only(tmp_path):
    from e2ee_lab.bench.call import bench_call

    with pytest.raises(ValueError, match="browser"):
        bench_call([2], stack="lab", browser=1, seconds=0.5, size="ci", progress=False)
    assert main(["bench", "call", "--participants", "2", "--browser", "1", "--no-progress",
                 "--out", str(tmp_path / "x.csv")]) == 2  # the lab stack: refused in one line
