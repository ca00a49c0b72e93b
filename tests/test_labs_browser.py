"""Tests for e2ee_lab.labs.browser (notebook 10): the task checks, on the recorded figures (no Chromium)."""

from __future__ import annotations

import pandas as pd
import pytest

from e2ee_lab.labs import browser as lab


@pytest.fixture
def views() -> pd.DataFrame:
    return lab.views_table(None)


@pytest.fixture
def loss() -> lab.LossComparison:
    return lab.LossComparison(pd.DataFrame(lab.RECORDED["loss"]).set_index("framing"))


def _says(feedback, ok: bool, *words: str) -> None:
    assert feedback.ok is ok, feedback
    for w in words:
        assert w in feedback.message, feedback


def test_sfu_decodable_right(views):
    _says(lab.check_sfu_decodable({"e2ee": 0, "dtls-srtp": 44}, views), True, "44")


@pytest.mark.parametrize("answer, hint", [
    (None, "unanswered"),
    ({"e2ee": 44, "dtls-srtp": 0}, "swapped"),
    ({"e2ee": 0, "dtls-srtp": 43}, "SFU (leg keys)"),
    ([0, 44], "dict"),
], ids=["none", "swapped", "receiver-count", "list"])
def test_sfu_decodable_wrong(views, answer, hint):
    _says(lab.check_sfu_decodable(answer, views), False, hint)


def test_key_frame_bit_right():
    _says(lab.check_key_frame_bit(lambda ctr: lab.sframe_header(1, ctr)[0] & 1 == 0), True, "256")


@pytest.mark.parametrize("func, hint", [
    (None, "unanswered"),
    (lambda ctr: ctr % 2 == 0, "ctr=9"),          # reads the counter's own low bit
    (lambda ctr: ctr % 2 == 0 if ctr < 8 else ctr < 256, "ctr=65536"),  # forgets 3-byte counters
    (lambda ctr: 1 / 0, "ZeroDivisionError"),
    ("yes", "function"),
], ids=["none", "ctr-parity", "below-256", "raises", "not-callable"])
def test_key_frame_bit_wrong(func, hint):
    _says(lab.check_key_frame_bit(func), False, hint)


def test_recovery_right(loss):
    _says(lab.check_recovery({"clear-prefix": 2.0, "e2ee": "never"}, loss), True, "key frame")


@pytest.mark.parametrize("answer, hint", [
    (None, "unanswered"),
    ({"clear-prefix": 2.1, "e2ee": 2.1}, "never"),
    ({"clear-prefix": 5.0, "e2ee": "never"}, "2.158"),
    ({"clear-prefix": "soon", "e2ee": "never"}, "number"),
    ({"sframe": "never"}, "dict"),
], ids=["none", "sframe-recovers", "far-off", "not-a-number", "wrong-keys"])
def test_recovery_wrong(loss, answer, hint):
    _says(lab.check_recovery(answer, loss), False, hint)


def test_recovery_follows_the_measurement():
    # a run in which SFrame did recover must not accept "never"
    table = pd.DataFrame([{"framing": "clear-prefix", "recovered after (s)": 2.0},
                          {"framing": "e2ee", "recovered after (s)": 3.0}]).set_index("framing")
    _says(lab.check_recovery({"clear-prefix": 2.0, "e2ee": "never"}, lab.LossComparison(table)), False, "3.0")


def test_attach_point():
    _says(lab.check_attach_point("before the answer"), True, "before the answer")
    _says(lab.check_attach_point("in ontrack, after negotiation"), False, "frames went through the worker")
    _says(lab.check_attach_point("either"), False, "PLIs")
    _says(lab.check_attach_point("ontrack"), False, "choose one of")
    _says(lab.check_attach_point(None), False, "unanswered")


def test_vp8_reading_matches_rfc9605_config_byte():
    t = lab.vp8_reading()
    assert t.loc[255, "Chrome reads"] == "key frame" and t.loc[256, "Chrome reads"] == "delta frame"
    assert t.loc[256, "header"] == "190100"  # X=0 K=1, Y=1 C=1 (two CTR bytes), CTR 0x0100


def test_code_excerpts_come_from_the_package():
    assert "function pipe(" in lab.js_excerpt("worker.js", "function pipe(")
    page = lab.js_excerpt("client.js", "function attach(", "// The SFU's offer")
    assert "RTCRtpScriptTransform" in page and "createEncodedStreams" in page and "readOffer" not in page
    assert "attach_sender" in lab.python_transform().data and "createEncodedStreams" in lab.seed_snippet().data


def test_without_chromium_every_helper_returns_the_record(monkeypatch, capsys):
    monkeypatch.setattr(lab, "find_chromium", lambda: None)
    lab.status()
    assert lab.browser_calls() is None
    assert "not installed" in capsys.readouterr().out
    assert list(lab.views_table(None).columns) == ["e2ee", "dtls-srtp"]
    assert lab.late_transform(None).loc["in ontrack, after negotiation", "frames through the worker"] == 0
    recorded = lab.loss_comparison()
    assert recorded.table.loc["e2ee", "recovered after (s)"] == lab.NEVER and recorded.timeline == {}
    recorded.figure()
    assert "No screenshot" in lab.screenshot(None).data


def test_at_ci_size_the_loss_runs_are_the_recorded_ones(monkeypatch, capsys):
    def no_call(*args, **kwargs):
        raise AssertionError("no browser call at ci size")

    monkeypatch.setattr(lab, "find_chromium", lambda: "/usr/lib/chromium/chromium")
    monkeypatch.setattr(lab, "lab_size", lambda: "ci")
    monkeypatch.setattr(lab, "_run", no_call)
    loss = lab.loss_comparison()
    assert loss.table.loc["clear-prefix", "recovered after (s)"] == 2.158
    assert "recorded" in capsys.readouterr().out
