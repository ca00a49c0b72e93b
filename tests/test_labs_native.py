"""Lab 07's libwebrtc section: live results with wrtc, recorded ones without, the same verdicts."""

import pytest

from e2ee_lab.interop import wrtc_problem
from e2ee_lab.labs import native


def _check_tables(nonce, replay):
    pitfall = nonce.loc["one KID for audio and video (pitfall)"]
    fix = nonce.loc["one KID per media kind (fix)"]
    assert pitfall["same (key, nonce)"] and pitfall["video recovered"]
    assert pitfall["recovered bytes"] == native.VIDEO_FRAME[:43].decode()
    assert not fix["same (key, nonce)"] and not fix["video recovered"]
    assert replay.loc["libwebrtc SFrameTransform (wrtc)", "replays_accepted"] == 5
    assert replay.loc["e2ee_lab SFrameContext (window 128)", "replays_refused"] == 5


def test_recorded_results_have_the_live_verdicts(monkeypatch, capsys):
    monkeypatch.setattr(native, "wrtc_problem", lambda: "wrtc is not installed (test)")
    _check_tables(native.nonce_reuse_table(), native.replay_table())
    assert "recorded with wrtc 0.1.0" in capsys.readouterr().out


@pytest.mark.skipif(wrtc_problem() is not None, reason=str(wrtc_problem()))
def test_live_results_with_wrtc():
    _check_tables(native.nonce_reuse_table(), native.replay_table())


def test_lab_10_shows_the_recorded_native_call_where_it_cannot_run(monkeypatch, capsys):
    import e2ee_lab.native as package

    monkeypatch.setattr(package, "native_problem", lambda: "not root (test)")
    summary = native.native_call()
    assert capsys.readouterr().out == "not root (test): showing the call data/make_native_call.py recorded\n"
    assert [p["name"] for p in summary["participants"]] == ["alice", "bob", "libwebrtc"]
    table = native.native_directions(summary)
    assert len(table) == 8 and set(table.index.get_level_values("kind")) == {"video", "audio"}
    assert (table.decoded >= 0.95 * table.sent).all()  # the recording meets the 95 % both ways
    assert table.loc[("alice → libwebrtc", "audio"), "counted over"] == "whole call"
    flags = native.native_key_frames(summary)
    assert list(flags.index) == ["alice", "bob"] and (flags["read as key frames"] > 0).all()
