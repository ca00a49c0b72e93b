"""Notebook 01 (the call): the stored prediction, the per-student line, the hints, and the build task
(the SFU "understood" test) against real calls. (Robustness of every check: tests/test_labs_checks.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from e2ee_lab.call import run_call
from e2ee_lab.labs import call as lab
from e2ee_lab.labs import session
from e2ee_lab.media.scene import secret_line

RIGHT = {"dtls-srtp video": "every frame", "dtls-srtp audio": "speech", "e2ee video": "no frame",
         "e2ee audio": "noise"}


@pytest.fixture(scope="module")
def calls():
    """One short real call per mode, three participants as in the notebook, a non-zero seed."""
    return {mode: run_call(mode, 3, 1.5, seed=77, size="ci") for mode in ("dtls-srtp", "e2ee")}


def test_the_prediction_says_whether_it_came_before_the_calls(monkeypatch, capsys):
    monkeypatch.setattr(lab, "_calls_run", [])
    assert lab.predict(RIGHT) is RIGHT
    assert "before any call" in capsys.readouterr().out
    lab._calls_run.append("dtls-srtp")
    lab.predict(RIGHT)
    assert "AFTER 1 call" in capsys.readouterr().out


def test_the_prediction_is_compared_with_both_runs(calls):
    plain, e2ee = calls["dtls-srtp"], calls["e2ee"]
    assert {key: lab.sfu_outcome(calls[key.split()[0]], key.split()[1]) for key in RIGHT} == RIGHT
    assert lab.check_prediction(RIGHT, plain, e2ee).ok
    for key, wrong in [("e2ee audio", "nothing"), ("e2ee video", "some frames"), ("dtls-srtp audio", "noise")]:
        feedback = lab.check_prediction({**RIGHT, key: wrong}, plain, e2ee)
        assert not feedback.ok and key in feedback.message
    assert lab.check_prediction(dict.fromkeys(RIGHT), plain, e2ee).message.startswith("Task 1 is still unanswered")
    assert "one of" in lab.check_prediction({**RIGHT, "e2ee audio": "silence"}, plain, e2ee).message


def test_the_confidential_line_follows_the_seed_and_the_hint_gives_nothing_away(calls):
    plain = calls["dtls-srtp"]
    line = plain.scenes["alice"].secret
    assert line == "CONFIDENTIAL: " + secret_line(0, 77) != "CONFIDENTIAL: " + secret_line(0, 0)
    assert lab.check_confidential(line.split(": ", 1)[1].upper() + "!", plain).ok
    wrong = lab.check_confidential(line[:-3], plain)
    assert not wrong.ok and "of the" not in wrong.message and line.split(": ", 1)[1] not in wrong.message
    bob = lab.check_confidential(plain.scenes["bob"].secret, plain)
    assert not bob.ok and "another participant" in bob.message


def test_a_students_calls_use_their_own_seed(monkeypatch):
    monkeypatch.setattr(session, "_state", {"student": None, "record": None})
    monkeypatch.delenv(session.STUDENT_ENV, raising=False)
    assert lab.call_seed() == 0  # the shipped notebook: the recordings' seed
    seeds = set()
    for i in range(10):
        session._state["student"] = f"s{i}"
        seeds.add(lab.call_seed())
    assert len(seeds) == 10 and 0 not in seeds


def test_key_holder_hints_name_no_missing_party(calls):
    e2ee = calls["e2ee"]
    leg, frame = "SRTP key of alice's leg", "alice's frame key"
    for answer in ({leg: {"alice", "sfu"}, frame: {"alice", "bob"}}, {leg: {"alice", "sfu", "bob"}, frame: set()}):
        feedback = lab.check_key_holders(answer, e2ee)
        assert not feedback.ok and "missing" not in feedback.message and "carol" not in feedback.message
    assert lab.check_key_holders({leg: {"alice", "sfu"}, frame: {"alice", "bob", "carol"}}, e2ee).ok


def _correlation_test(sent, heard):
    sent, heard = np.asarray(sent, float), np.asarray(heard, float)
    if len(sent) < 2 or sent.std() == 0 or heard.std() == 0:
        return False
    return bool(np.corrcoef(sent, heard)[0, 1] > 0.5)


def test_the_understood_build_task_takes_a_correlation_and_refuses_the_usual_shortcuts(calls):
    plain, e2ee = calls["dtls-srtp"], calls["e2ee"]
    sent, heard = lab.speech_pair(plain)
    assert len(sent) == len(heard) and np.corrcoef(sent, heard)[0, 1] > 0.9  # the delay is removed
    assert lab.check_understood(_correlation_test, plain, e2ee).ok
    produced_sound = lab.check_understood(lambda s, h: bool(np.abs(h).max() > 0), plain, e2ee)
    assert not produced_sound.ok and "e2ee" in produced_sound.message
    loud_enough = lab.check_understood(lambda s, h: bool(np.std(h) > 0.5 * np.std(s)), plain, e2ee)
    assert not loud_enough.ok
    def crashes_on_silence(s, h):
        if not np.any(h):
            raise ZeroDivisionError("silence")
        return _correlation_test(s, h)

    crashing = lab.check_understood(crashes_on_silence, plain, e2ee)
    assert not crashing.ok and "silence" in crashing.message
    assert not lab.check_understood(lambda s, h: 1, plain, e2ee).ok  # not a bool
