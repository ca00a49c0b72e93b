"""Tests for e2ee_lab.labs.browser (notebook 10): the task checks, on the recorded figures (no Chromium)."""

from __future__ import annotations

import pandas as pd
import pytest

from e2ee_lab.analysis import loss_recovery
from e2ee_lab.labs import browser as lab


@pytest.fixture
def views() -> pd.DataFrame:
    return lab.views_table(None)


RIGHT = {"clear-prefix": 2.2, "e2ee, 1-byte CTR": 0.0, "e2ee, 2-byte CTR": "never", "e2ee, 3-byte CTR": 0.0}


@pytest.fixture
def loss() -> lab.LossComparison:
    rows = [{"run": run, "recovered after (s)": seconds} for run, seconds in RIGHT.items()]
    return lab.LossComparison(lab.loss_table(rows))


def _says(feedback, ok: bool, *words: str) -> None:
    assert feedback.ok is ok, feedback
    for w in words:
        assert w in feedback.message, feedback


def _srtp_decoded(views: pd.DataFrame) -> int:
    """What the recorded dtls-srtp call's SFU decoded of the page's video (data/browser/lab10.json)."""
    return int(views.loc["SFU (leg keys)", "dtls-srtp"].split("/")[0])


def test_sfu_decodable_right(views):
    n = _srtp_decoded(views)
    assert n > 10 and views.loc["SFU (leg keys)", "e2ee"].startswith("0/")
    _says(lab.check_sfu_decodable({"e2ee": 0, "dtls-srtp": n}, views), True, str(n))


@pytest.mark.parametrize("answer, hint", [
    (lambda n: None, "unanswered"),
    (lambda n: {"e2ee": n, "dtls-srtp": 0}, "swapped"),
    (lambda n: {"e2ee": 0, "dtls-srtp": n - 1}, "SFU (leg keys)"),
    (lambda n: [0, n], "dict"),
], ids=["none", "swapped", "receiver-count", "list"])
def test_sfu_decodable_wrong(views, answer, hint):
    _says(lab.check_sfu_decodable(answer(_srtp_decoded(views)), views), False, hint)


def test_key_frame_bit_right():
    assert lab.ALICE_VIDEO_KID == 0x1100
    _says(lab.check_key_frame_bit(lambda ctr: lab.sframe_header(lab.ALICE_VIDEO_KID, ctr)[0] & 1 == 0), True, "256")
    # the KID's bits never reach bit 0: the same function is right with any KID
    _says(lab.check_key_frame_bit(lambda ctr: lab.sframe_header(1, ctr)[0] & 1 == 0), True, "0x1100")


@pytest.mark.parametrize("func, hint", [
    (None, "unanswered"),
    (lambda ctr: ctr % 2 == 0, "ctr=9"),          # reads the counter's own low bit
    (lambda ctr: ctr % 2 == 0 if ctr < 8 else ctr < 256, "ctr=65536"),  # forgets 3-byte counters
    (lambda ctr: ctr % 2 == 0 if ctr < 8 else ctr < 256 or ctr >= 65536, "ctr=16777216"),  # and 4-byte ones
    (lambda ctr: 1 / 0, "ZeroDivisionError"),
    ("yes", "function"),
], ids=["none", "ctr-parity", "below-256", "three-lengths", "raises", "not-callable"])
def test_key_frame_bit_wrong(func, hint):
    _says(lab.check_key_frame_bit(func), False, hint)


def test_recovery_right(loss):
    _says(lab.check_recovery(dict(RIGHT), loss), True, "key frame")
    _says(lab.check_recovery({**RIGHT, "clear-prefix": 2.6}, loss), True, "2-byte")  # within 0.5 s


@pytest.mark.parametrize("change, hint", [
    (None, "unanswered"),
    ({"e2ee, 2-byte CTR": 2.1}, "never"),
    ({"e2ee, 1-byte CTR": "never"}, "rendered again after 0.0 s"),
    ({"clear-prefix": 5.0}, "2.2"),
    ({"clear-prefix": "soon"}, "number"),
    ({"e2ee": "never"}, "one entry per run"),
], ids=["none", "2-byte-recovers", "1-byte-never", "far-off", "not-a-number", "old-keys"])
def test_recovery_wrong(loss, change, hint):
    answer = None if change is None else ({"e2ee": "never", "clear-prefix": 2.2} if "e2ee" in change
                                          else {**RIGHT, **change})
    _says(lab.check_recovery(answer, loss), False, hint)


def test_recovery_follows_the_measurement():
    # a run in which the 2-byte counter did recover must not accept "never"
    table = lab.loss_table([{"run": run, "recovered after (s)": 3.0 if seconds == "never" else seconds}
                            for run, seconds in RIGHT.items()])
    _says(lab.check_recovery(dict(RIGHT), lab.LossComparison(table)), False, "3.0")


def test_the_recorded_loss_runs_read_as_the_header_says():
    # data/make_browser.py's record: every SFrame run's lost frame, read from its KID and CTR as Chrome does
    table = lab.loss_table(lab.RECORDED["loss"])
    assert list(table.index) == list(lab.LOSS)
    for run, row in table.drop(index="clear-prefix").iterrows():
        kid = int(row["lost frame's KID"], 16)
        assert kid == lab.ALICE_VIDEO_KID
        bit = lab.sframe_header(kid, int(row["lost frame's CTR"]))[0] & 1
        assert row["Chrome reads it as"] == ("key frame" if bit == 0 else "delta frame"), run
    ctrs = table["lost frame's CTR"].drop(index="clear-prefix").astype(int)
    assert 8 <= ctrs["e2ee, 1-byte CTR"] <= 255 and 256 <= ctrs["e2ee, 2-byte CTR"] <= 65535
    assert 65536 <= ctrs["e2ee, 3-byte CTR"] < 2**24


def test_attach_point():
    _says(lab.check_attach_point("before the answer"), True, "before the answer")
    _says(lab.check_attach_point("in ontrack, after negotiation"), False, "frames went through the worker")
    _says(lab.check_attach_point("either"), False, "PLIs")
    _says(lab.check_attach_point("ontrack"), False, "choose one of")
    _says(lab.check_attach_point(None), False, "unanswered")


def test_vp8_reading_matches_rfc9605_config_byte():
    t = lab.vp8_reading()
    assert t.loc[255, "Chrome reads"] == "key frame" and t.loc[256, "Chrome reads"] == "delta frame"
    assert t.loc[65536, "Chrome reads"] == "key frame" and t.loc[2**24, "Chrome reads"] == "delta frame"
    # X=1 KKK=1 (two KID bytes, 0x1100), Y=1 CCC=1 (two CTR bytes), then KID 0x1100, CTR 0x0100
    assert t.loc[256, "header"] == "9911000100"


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
    assert recorded.table.loc["e2ee, 2-byte CTR", "recovered after (s)"] == lab.NEVER and recorded.timeline == {}
    recorded.figure()
    assert "No screenshot" in lab.screenshot(None).data


def test_at_ci_size_the_loss_runs_are_the_recorded_ones(monkeypatch, capsys):
    def no_call(*args, **kwargs):
        raise AssertionError("no browser call at ci size")

    monkeypatch.setattr(lab, "find_chromium", lambda: "/usr/lib/chromium/chromium")
    monkeypatch.setattr(lab, "lab_size", lambda: "ci")
    monkeypatch.setattr(lab, "_run", no_call)
    loss = lab.loss_comparison()
    assert loss.table.to_dict() == lab.loss_table(lab.RECORDED["loss"]).to_dict() and loss.timeline == {}
    assert "recorded" in capsys.readouterr().out


def test_chrome_and_the_lab_model_side_by_side_name_every_run():
    # Chrome's four loss runs (recorded) beside the model's three packetizations, at the CTR the
    # model used: the model stays stuck where Chrome did (a 2-byte CTR), the payload format does not.
    loss = lab.LossComparison(lab.loss_table(lab.RECORDED["loss"]))
    fix = loss_recovery.loss_comparison(frames=45, drop_frame=15, start_ctr=300)
    table = lab.loss_side_by_side(loss, fix)
    assert table.index.is_unique and len(table) == len(lab.LOSS) + len(loss_recovery.PACKETIZATIONS)
    chrome = table.xs("Chromium 156 (measured)", level="receiver")
    assert list(chrome.index) == [f"VP8 payload format, {run}" for run in lab.LOSS]
    model = table.xs("libwebrtc-like model (lab)", level="receiver")["recovered after (s)"]
    stuck = "VP8 payload format, e2ee, 2-byte CTR"
    assert model[stuck] == chrome.loc[stuck, "recovered after (s)"] == lab.NEVER
    assert all(0 < model[f"SFrame payload format, {m}"] < 1 for m in ("per-frame", "per-packet"))
