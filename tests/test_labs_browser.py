"""Tests for e2ee_lab.labs.browser (notebook 10): the task checks, on the recorded figures (no Chromium)."""

from __future__ import annotations

import pandas as pd
import pytest

from e2ee_lab.analysis import loss_recovery
from e2ee_lab.labs import browser as lab


@pytest.fixture
def views() -> pd.DataFrame:
    return lab.views_table(None)


RIGHT = {"SFU, e2ee": "nothing", "SFU, dtls-srtp": "the picture", "Alice, e2ee": "the picture",
         "Alice, dtls-srtp": "the picture"}


def _says(feedback, ok: bool, *words: str) -> None:
    assert feedback.ok is ok, feedback
    for w in words:
        assert w in feedback.message, feedback


def test_prediction_right(views, capsys, monkeypatch):
    monkeypatch.setattr(lab, "_calls_run", [])
    assert lab.predict(dict(RIGHT)) == RIGHT and "before the browser calls" in capsys.readouterr().out
    _says(lab.check_prediction(dict(RIGHT), views), True, "all four")


@pytest.mark.parametrize("answer, hint", [
    (None, "unanswered"),
    ({k: None for k in RIGHT}, "unanswered"),
    ({**RIGHT, "SFU, e2ee": "the picture"}, "frame key the SFU never received"),
    ({**RIGHT, "Alice, e2ee": "nothing"}, "WebCrypto"),
    ({**RIGHT, "SFU, dtls-srtp": "some"}, "one of"),
    ({"e2ee": 0, "dtls-srtp": 47}, "keys"),
], ids=["none", "all-none", "sfu-decodes-e2ee", "alice-cannot", "not-an-outcome", "old-shape"])
def test_prediction_wrong(views, answer, hint):
    _says(lab.check_prediction(answer, views), False, hint)


def test_prediction_after_the_calls_says_so(capsys, monkeypatch):
    monkeypatch.setattr(lab, "_calls_run", ["browser_calls"])
    lab.predict(dict(RIGHT))
    assert "AFTER" in capsys.readouterr().out


def _by_arithmetic(ctr):
    if ctr < 8:
        return ctr % 2 == 0
    return ((ctr.bit_length() + 7) // 8 - 1) % 2 == 0


def test_key_frame_bit_right():
    assert lab.ALICE_VIDEO_KID == 0x1100
    _says(lab.check_key_frame_bit(_by_arithmetic), True, "low bit of C")
    _says(lab.check_key_frame_bit(lambda ctr: lab.sframe_header(lab.ALICE_VIDEO_KID, ctr)[0] & 1 == 0), True)
    # the KID's bits never reach bit 0: the same function is right with any KID
    _says(lab.check_key_frame_bit(lambda ctr: lab.sframe_header(1, ctr)[0] & 1 == 0), True)


@pytest.mark.parametrize("func, hint", [
    (None, "unanswered"),
    (lambda ctr: ctr % 2 == 0, "length"),          # reads the counter's own low bit
    (lambda ctr: ctr % 2 == 0 if ctr < 8 else ctr < 256, "length"),  # forgets 3-byte counters
    (lambda ctr: ctr % 2 == 1 if ctr < 8 else _by_arithmetic(ctr), "C field itself"),
    (lambda ctr: 1 if _by_arithmetic(ctr) else 0, "True or False"),
    (lambda ctr: lab.sframe_header(lab.ALICE_VIDEO_KID, ctr)[0] >> 7 & 1 == 0, "from the left"),  # X, not P
    (lambda ctr: 1 / 0, "ZeroDivisionError"),
    ("yes", "function"),
], ids=["none", "ctr-parity", "below-256", "small-inverted", "ints", "bit-7", "raises", "not-callable"])
def test_key_frame_bit_wrong(func, hint):
    _says(lab.check_key_frame_bit(func), False, hint)


def test_key_frame_counters_are_drawn_per_student(monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    drawn = {}
    for student in ("", "s1", "s2"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        ctrs = lab.key_frame_ctrs()
        assert set(lab.KEY_FRAME_EDGES) <= set(ctrs) and max(ctrs) < 2**64
        assert {(c.bit_length() + 7) // 8 for c in ctrs if c >= 8} == set(range(1, 9))
        drawn[student] = ctrs
        assert lab.check_key_frame_bit(_by_arithmetic).ok
    assert len(set(drawn.values())) == 3
    table = {c: _by_arithmetic(c) for c in drawn["s1"]}  # a table of one student's outputs fails another's
    monkeypatch.setenv(session.STUDENT_ENV, "s2")
    assert not lab.check_key_frame_bit(lambda ctr: table[ctr]).ok


def _truth() -> dict:
    return {letter: lab.recovery_after_loss(sid, ctr) for letter, (sid, ctr) in lab._scenario_cases().items()}


def test_loss_reasoning_right_and_per_student(monkeypatch):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    answers = set()
    for student in ("", "s1", "s2", "s3"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        table = lab.loss_scenarios()
        assert list(table.index) == list("abcdef") and "recovered" not in " ".join(table.columns)
        truth = _truth()
        assert sorted(truth.values()) == sorted(["next key frame"] * 2 + ["at once"] * 2 + ["never"] * 2)
        _says(lab.check_loss_reasoning(truth), True, "odd lengths")
        answers.add(tuple(sorted(truth.items())))
    assert len(answers) > 1


def test_loss_reasoning_agrees_with_the_measured_runs():
    # Chrome's recorded loss runs (data/browser/lab10.json): the rule the check uses gives what Chrome did
    table = lab.loss_table(lab.RECORDED["loss"])
    for run, row in table.drop(index="clear-prefix").iterrows():
        ctr = int(row["lost frame's CTR"])
        measured = row["recovered after (s)"]
        rule = lab.recovery_after_loss("sframe-1", ctr)
        assert rule == ("never" if measured == lab.NEVER else "at once"), run
        assert measured == lab.NEVER or float(measured) < 0.5
    assert float(table.loc["clear-prefix", "recovered after (s)"]) > 0.5  # waited for a real key frame


def test_loss_reasoning_hints_diagnose_without_naming_the_answer():
    cases = lab._scenario_cases()
    truth = _truth()
    vp8 = {l for l, (sid, ctr) in cases.items() if ctr is not None and sid != "payload-format"}
    all_never = {l: ("never" if l in vp8 else truth[l]) for l in cases}
    _says(lab.check_loss_reasoning(all_never), False, "not every SFrame counter")
    clear = next(l for l, (sid, _) in cases.items() if sid == "clear-prefix")
    _says(lab.check_loss_reasoning({**truth, clear: "at once"}), False, "frame tag travels in the clear")
    fmt = next(l for l, (sid, _) in cases.items() if sid == "payload-format")
    _says(lab.check_loss_reasoning({**truth, fmt: "never"}), False, "decrypts the frame")
    parity = {l: lab._parity_guess(sid, ctr) for l, (sid, ctr) in cases.items()}
    if parity != truth:
        _says(lab.check_loss_reasoning(parity), False, "own low bit")
    for answer in (None, {"a": None}, {k: "soon" for k in cases}, ["at once"]):
        assert not lab.check_loss_reasoning(answer).ok
    for letter in vp8:  # one wrong SFrame answer: the generic hint, which names no letter and no value
        other = "at once" if truth[letter] == "never" else "never"
        message = lab.check_loss_reasoning({**truth, letter: other}).message
        assert f"'{letter}'" not in message and "at once" not in message and "never" not in message.split("not yet")[-1]


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
