"""Lab 05's checks that need no call (e2ee_lab.labs.malicious): the replay window Task 4 builds, the
prediction note of Task 1. The checks on a real matrix are in test_attacks_sfu.py; the generic battery
(hostile inputs, every probe) in test_labs_checks.py."""

from __future__ import annotations

import pandas as pd
import pytest

from e2ee_lab.labs import malicious as lab
from e2ee_lab.labs import session

HEADERS = pd.DataFrame({"time": range(16), "kid": ["0x2100"] * 16, "ctr": [*range(12), 2, 3, 4, 5]})


def replay_ok(ctrs, size):
    top, accepted, out = -1, set(), []
    for ctr in ctrs:
        ok = ctr > top or (top - ctr < size and ctr not in accepted)
        if ok:
            top, accepted = max(top, ctr), accepted | {ctr}
        out.append(ok)
    return out


def off_by_one(ctrs, size):
    return replay_ok(ctrs, size + 1)


def seen_only(ctrs, size):
    seen, out = set(), []
    for ctr in ctrs:
        out.append(ctr not in seen)
        seen.add(ctr)
    return out


def increasing_only(ctrs, size):
    top, out = -1, []
    for ctr in ctrs:
        out.append(ctr > top)
        top = max(top, ctr)
    return out


@pytest.fixture
def student():
    def use(sid: str | None) -> None:
        session.start("05", student=sid)
    yield use
    session.start("05", student=None)


@pytest.mark.parametrize("sid", [None, "s1", "s2"])
def test_the_window_check_accepts_the_rule_and_names_each_mistake(student, sid):
    student(sid)
    assert lab.check_replay_window(replay_ok, HEADERS).ok
    assert lab.check_replay_window(replay_ok, None).ok  # without the run's headers: the drawn sequences
    assert "cannot be told" in lab.check_replay_window(off_by_one, HEADERS).message
    assert "cannot be told" in lab.check_replay_window(seen_only, HEADERS).message
    assert "late but inside the window" in lab.check_replay_window(increasing_only, HEADERS).message
    assert "twice" in lab.check_replay_window(lambda c, s: [True] * len(c), HEADERS).message
    assert not lab.check_replay_window(lambda c, s: [True], HEADERS).ok
    assert not lab.check_replay_window(lambda c, s: 1 / 0, HEADERS).ok
    assert "unanswered" in lab.check_replay_window(lambda c, s: None, HEADERS).message


def test_the_window_cases_are_per_student_and_agree_with_the_receivers_window(student):
    sizes, cases = set(), []
    for sid in ("s1", "s2", "s3", "s4"):
        student(sid)
        sizes.add(lab.replay_window_size())
        cases.append([c for _, c, _ in lab._window_cases(None)])
    assert len(sizes) > 1 and cases[0] != cases[1]
    student(None)
    for kind, ctrs, size in lab._window_cases(HEADERS):
        assert lab._window_truth(ctrs, size) == replay_ok(ctrs, size), kind
    edge = next(c for k, c, _ in lab._window_cases(None) if k == "just outside the window")
    assert lab._window_truth(edge, lab.replay_window_size())[-2:] == [False, True]


def test_the_prediction_note_says_whether_the_matrix_ran(capsys, monkeypatch):
    monkeypatch.setattr(lab, "_calls_run", [])
    lab.predict({"drop": "none"})
    assert "before the attack matrix" in capsys.readouterr().out
    monkeypatch.setattr(lab, "_calls_run", ["run_matrix"])
    lab.predict({"drop": "none"})
    assert "AFTER" in capsys.readouterr().out


def test_an_empty_prediction_is_unanswered():
    for empty in (dict.fromkeys(lab.PREDICT), dict.fromkeys(lab.PREDICT, "")):  # the shipped cell has ""
        assert "unanswered" in lab.check_predictions(empty, pd.DataFrame()).message
