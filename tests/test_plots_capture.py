"""The speech strips of the three-views figure (e2ee_lab.analysis.plots.capture) and the views' speech
they draw (e2ee_lab.analysis.view_speech), from the recorded captures in data/captures/ (no call is run)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from e2ee_lab.analysis import plots  # noqa: E402
from e2ee_lab.analysis.plots.capture import SPEECH_HEARD  # noqa: E402
from e2ee_lab.analysis.view_speech import speech_correlation, view_speech  # noqa: E402
from e2ee_lab.analysis.views import VIEWS, analyze_views, recording  # noqa: E402

MODES = ("dtls-srtp", "e2ee")
QUIET_RMS = 100.0  # int16 RMS of silence, as the offline analysis counts it


@pytest.fixture(scope="module")
def views():
    return {mode: analyze_views(recording(mode)) for mode in MODES}


@pytest.fixture(scope="module")
def strips(views):
    """gid -> (the sent speech line, the decoded line or None) of each speech axis."""
    fig = plots.three_views(views)
    out = {}
    for ax in fig.axes:
        gid = ax.get_gid() or ""
        if gid.startswith("speech:"):
            lines = {line.get_label(): line.get_ydata() for line in ax.lines}
            out[gid] = (lines["sent"], lines.get("decoded"), ax.get_title())
    return out


def _rms(y) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(y, float) * 32768)))) if y is not None else 0.0


def test_the_figure_has_a_speech_strip_under_every_view_of_every_mode(strips):
    assert set(strips) == {f"speech:{mode}:{view}" for mode in MODES for view in VIEWS}


def test_dtls_srtp_sfu_strip_plays_the_sent_speech(strips):
    sent, got, title = strips["speech:dtls-srtp:sfu"]
    assert _rms(got) > 10 * QUIET_RMS
    assert speech_correlation(np.asarray(sent) * 32768, np.asarray(got) * 32768) >= 0.9
    assert "the speech" in title


def test_e2ee_sfu_strip_is_noise_not_speech(strips):
    """Opus has no integrity check: the SFU's decoder turns SFrame ciphertext into loud noise,
    which does not correlate with what was said."""
    sent, got, title = strips["speech:e2ee:sfu"]
    assert speech_correlation(np.asarray(sent) * 32768, np.asarray(got) * 32768) < 0.1
    assert _rms(got) > QUIET_RMS
    assert "noise" in title and "the speech" not in title


@pytest.mark.parametrize("mode", MODES)
def test_receivers_hear_the_speech_and_the_wire_nothing(strips, mode):
    sent, got, title = strips[f"speech:{mode}:receiver"]
    assert speech_correlation(np.asarray(sent) * 32768, np.asarray(got) * 32768) >= 0.9
    _, wire, wire_title = strips[f"speech:{mode}:wire"]
    assert wire is None and "nothing" in wire_title


def test_strip_titles_carry_the_analysis_count_of_intelligible_frames(views):
    fig = plots.three_views(views)
    labels = {ax.get_gid(): ax.get_xlabel() for ax in fig.axes if ax.get_gid()}
    for mode, v in views.items():
        counts = v.counts().set_index(["view", "kind"])
        for view in VIEWS:
            row = counts.loc[(view, "audio")]
            assert f"{row.decodable} of {row.judged} speech frames" in labels[f"speech:{mode}:{view}"]


def test_a_receiver_without_frame_keys_hears_silence():
    v = analyze_views(recording("e2ee"), frame_keys=None)
    got = view_speech(v, "receiver")
    assert not np.any(got)
    assert speech_correlation(v.call.truth.speech["alice"], got) == 0.0


def test_view_speech_lays_chunks_out_by_the_sent_frame_index(views):
    v = views["dtls-srtp"]
    got = view_speech(v, "sfu", "bob")
    sent = v.call.truth.speech["bob"]
    assert len(got) >= len(sent) and len(got) % 960 == 0
    assert speech_correlation(sent, got) >= SPEECH_HEARD
    assert view_speech(v, "wire") is None


def test_speech_correlation_finds_the_opus_delay_and_rejects_noise_and_silence():
    rng = np.random.default_rng(0)
    sent = (rng.standard_normal(48_000) * 3000).astype(np.int16)
    delayed = np.concatenate([np.zeros(305, np.int16), sent])
    assert speech_correlation(sent, delayed) > 0.99
    assert speech_correlation(sent, np.concatenate([np.zeros(100, np.int16), sent])) < 0.1
    noise = (rng.standard_normal(48_400) * 3000).astype(np.int16)
    assert abs(speech_correlation(sent, noise)) < 0.05
    assert speech_correlation(sent, np.zeros(48_400, np.int16)) == 0.0
    assert speech_correlation(sent, None) == 0.0
    assert speech_correlation(sent, sent[:500]) == 0.0
