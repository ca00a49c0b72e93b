"""Tests for e2ee_lab.labs.janus (notebook 11): the recorded calls, the tables, the figures and the
task checks, on the calls ``data/make_janus.py`` recorded (they run without root or Janus)."""

from __future__ import annotations

import ipaddress

import pytest
from matplotlib.figure import Figure

from e2ee_lab.labs import janus as lab


@pytest.fixture(scope="module")
def calls():
    return {mode: lab.RecordedCall.load(mode) for mode in lab.MODES}


def test_the_recorded_calls_meet_the_goals_they_illustrate(calls):
    for mode, call in calls.items():
        s = call.summary
        assert s["mode"] == mode and s["stack"] == "janus" and len(s["participants"]) == 3
        for row in s["participants"]:
            assert row["video_frames_decoded"] >= 0.95 * row["video_frames_expected"] > 0
        assert len(call.streams) == 18 and set(call.recording.kind) == {"audio", "video"}
    srtp, e2ee = calls["dtls-srtp"].summary["sfu"], calls["e2ee"].summary["sfu"]
    assert srtp["video_frames_decodable"] >= 0.95 * srtp["video_frames_seen"] > 0
    assert e2ee["video_frames_decodable"] == 0 < e2ee["video_frames_seen"]
    assert calls["dtls-srtp"].picture is not None and calls["e2ee"].picture is None


def test_without_janus_status_and_calls_say_so_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("E2EE_LAB_JANUS", str(tmp_path / "no-janus"))
    lab.status()
    got = lab.janus_calls()
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("No Janus call here (Janus is not installed") and "data/janus/" in out[0]
    assert len(out) == 2 and all(isinstance(c, lab.RecordedCall) for c in got.values())


def test_tables_and_figures_from_the_recorded_calls(calls, capsys):
    lab.call_table(calls)
    assert capsys.readouterr().out.count("SFU        packets in") == 2
    assert set(lab.recording_table(calls)["mode"]) == set(lab.MODES)
    gives = lab.what_the_recording_gives(calls)
    assert gives.loc["… into the picture that was sent", "e2ee"] == 0
    both = lab.metadata_in_both_modes(calls)
    assert both.loc["all pairs 127.0.0.1 <-> 127.0.0.1"].all()
    assert list(lab.admin_streams(calls["e2ee"]).columns) == lab.ADMIN_VIEW
    table = lab.capacity(calls)
    assert {"Janus 1.1.2", "lab SFU (Python)"} <= set(table.sfu) and (table.us_per_packet > 0).all()
    assert isinstance(lab.playback_figure(calls), Figure) and isinstance(lab.capacity_figure(table), Figure)


def test_the_shim_and_the_configuration_shown_are_the_real_ones():
    assert "IFF_LOOPBACK" in lab.shim_source().data and "dlsym(RTLD_NEXT" in lab.shim_source().data
    text = lab.config_excerpt().data
    assert 'ice_enforce_list = "lo"' in text and 'admin_ip = "127.0.0.1"' in text and 'ip = "127.0.0.1"' in text
    assert list(lab.fences().columns) == ["fence", "applies to", "what it guarantees", "code"]


# --- Task 1 -------------------------------------------------------------------------------------------


def test_the_reference_pair_parser_is_correct(calls):
    assert lab.check_pair_parser(lab._both_loopback, calls["e2ee"]).ok


def _naive(pair):
    return pair.startswith("127.0.0.1") and " <-> 127.0.0.1" in pair


def _raises(pair):
    left, right = pair.split(" <-> ")
    return ipaddress.ip_address(left.split(":")[0]).is_loopback and ipaddress.ip_address(right.split(":")[0]).is_loopback


@pytest.mark.parametrize("func,hint", [
    (None, "unanswered"), ("not a function", "must be a function"),
    (lambda pair: True, "another machine"), (_naive, "host name"),
    (_raises, "raised ValueError"), (lambda pair: "yes" if "10.0" not in pair else "", "truthy"),
], ids=["none", "string", "always", "prefix", "raises", "truthy"])
def test_pair_parser_check_names_what_is_wrong(calls, func, hint):
    feedback = lab.check_pair_parser(func, calls["e2ee"])
    assert not feedback.ok and hint in feedback.message


# --- Tasks 2 and 3 --------------------------------------------------------------------------------------


RIGHT = {"e2ee: janus-pp-rec writes the video file": "yes", "e2ee: the video file shows the picture": "no",
         "e2ee: the audio file plays": "noise", "dtls-srtp: the video file shows the picture": "yes"}


def test_recording_prediction_is_compared_with_the_calls(calls, capsys, monkeypatch):
    monkeypatch.setattr(lab, "_calls_run", [])
    assert lab.predict(dict(RIGHT)) == RIGHT and "before the Janus calls" in capsys.readouterr().out
    assert {k: lab.recording_outcome(calls, k) for k in RIGHT} == RIGHT
    assert lab.check_recording_prediction(dict(RIGHT), calls).ok
    monkeypatch.setattr(lab, "_calls_run", ["janus_calls"])
    lab.predict(dict(RIGHT))
    assert "AFTER" in capsys.readouterr().out


@pytest.mark.parametrize("change, hint", [
    ({"e2ee: janus-pp-rec writes the video file": "no"}, "does not decode"),
    ({"e2ee: the video file shows the picture": "yes"}, "no frame key"),
    ({"e2ee: the audio file plays": "nothing"}, "integrity"),
    ({"dtls-srtp: the video file shows the picture": "no"}, "as the encoder made it"),
    ({"e2ee: the audio file plays": "music"}, "one of"),
], ids=["converter-refuses", "picture", "audio-nothing", "plain-no-picture", "not-an-option"])
def test_recording_prediction_hints(calls, change, hint):
    feedback = lab.check_recording_prediction({**RIGHT, **change}, calls)
    assert not feedback.ok and hint in feedback.message
    assert not lab.check_recording_prediction(None, calls).ok
    assert not lab.check_recording_prediction({k: None for k in RIGHT}, calls).ok
    assert "keys" in lab.check_recording_prediction({"frames": 1}, calls).message


def _letters(*ids: str) -> set[str]:
    by_id = {sid: letter for letter, sid in lab.statement_letters().items()}
    return {by_id[sid] for sid in ids}


HELD = ("addresses", "counters", "talking", "srtp-profile", "kid", "srtp-keys")


def test_metadata_check_is_recomputed_from_the_call(calls):
    call = calls["e2ee"]
    assert lab.kept_in_e2ee(call) == {"addresses", "counters", "talking", "srtp-profile"}
    assert lab.kept_in_e2ee(calls["dtls-srtp"]) == set(lab.FROM_THE_CALL)
    right = _letters(*HELD)
    assert lab.check_metadata(right, call).ok
    assert lab.check_metadata({x.lower() for x in right}, call).ok
    assert "no picture" in lab.check_metadata(right | _letters("pictures"), call).message
    assert "RFC 6464" in lab.check_metadata(right - _letters("talking"), call).message
    assert "key messages" in lab.check_metadata(right | _letters("frame-keys"), call).message
    assert "in the clear" in lab.check_metadata(right - _letters("kid"), call).message
    assert "DTLS peer" in lab.check_metadata(right - _letters("srtp-keys"), call).message
    assert not lab.check_metadata({"Z"}, call).ok and not lab.check_metadata(7, call).ok
    # the dtls-srtp call's own data shows the pictures and the words: the check follows the run
    assert lab.check_metadata(right | _letters("pictures", "words"), calls["dtls-srtp"]).ok


def test_metadata_letters_are_per_student(monkeypatch, calls):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    orders = set()
    for student in ("", "s1", "s2", "s3"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        letters = lab.statement_letters()
        assert sorted(letters.values()) == sorted(lab.METADATA_STATEMENTS)
        assert lab.check_metadata(_letters(*HELD), calls["e2ee"]).ok
        orders.add(tuple(letters.values()))
    assert len(orders) == 4


def test_pair_cases_are_drawn_per_student(monkeypatch, calls):
    from e2ee_lab.labs import session

    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    drawn = {}
    for student in ("", "s1", "s2"):
        monkeypatch.setenv(session.STUDENT_ENV, student)
        cases = lab.drawn_pair_cases()
        assert all(lab._both_loopback(text) is want for text, want, _ in cases)
        drawn[student] = cases
        assert lab.check_pair_parser(lab._both_loopback, calls["e2ee"]).ok
    assert len({tuple(c) for c in drawn.values()}) == 3
    table = {text: want for text, want, _ in lab._pair_cases(calls["e2ee"])}  # s2's answers, learnt by heart
    assert lab.check_pair_parser(lambda pair: table[pair], calls["e2ee"]).ok
    monkeypatch.setenv(session.STUDENT_ENV, "s1")
    assert not lab.check_pair_parser(lambda pair: table[pair], calls["e2ee"]).ok
