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
