"""Lab 04's checks (e2ee_lab.labs.keys): hints that leak nothing, the predict note, the build tasks'
per-student inputs. The generic battery (hostile inputs, every probe) is in test_labs_checks.py."""

from __future__ import annotations

import re

import pytest

from e2ee_lab.labs import keys as lab
from e2ee_lab.labs import session


def roster_ok(peers, change, subject, listed):
    if len(set(listed)) != len(listed):
        return False
    got = set(listed)
    if change == "join":
        return subject is not None and subject not in peers and got == peers | {subject}
    if change == "leave":
        return subject in peers and got == peers - {subject}
    return change == "rekey" and subject is None and got == peers


def mitm_suspected(group, a, b):
    return group.members[a].safety_number(b) != group.members[b].safety_number(a)


@pytest.fixture
def student():
    def use(sid: str | None) -> None:
        session.start("04", student=sid)
    yield use
    session.start("04", student=None)


def test_leaver_hints_name_no_frame_and_no_count():
    truth = set(range(275, 305))
    for answer in (truth - {300}, truth | {305}, {280}, truth | {100}):
        feedback = lab.check_leaver_frames(answer)
        assert not feedback.ok and not re.search(r"\b\d{2,}\b(?! s)", feedback.message), feedback.message
    assert lab.check_leaver_frames(truth).ok


def test_the_prediction_note_says_whether_a_zero_grace_timeline_ran(capsys, monkeypatch):
    monkeypatch.setattr(lab, "_policies_run", [])
    lab.predict(3)
    assert "before any timeline" in capsys.readouterr().out
    lab.simulate_timeline()  # the default grace does not count
    lab.predict(3)
    assert "before any timeline" in capsys.readouterr().out
    lab.simulate_timeline(policy=lab.RekeyPolicy(grace=0.0))
    lab.predict(3)
    assert "AFTER" in capsys.readouterr().out


@pytest.mark.parametrize("sid", [None, "s1", "s2"])
def test_the_roster_check_accepts_the_rule_and_refuses_near_misses(student, sid):
    student(sid)
    assert lab.check_roster_check(roster_ok).ok
    as_lists = lab.check_roster_check(lambda p, c, s, l: roster_ok(p, c, s, l) and l == sorted(l))
    assert not as_lists.ok
    no_duplicates = lab.check_roster_check(lambda p, c, s, l: roster_ok(p, c, s, list(set(l))))
    assert not no_duplicates.ok and "twice" in no_duplicates.message
    no_subject_rule = lab.check_roster_check(
        lambda p, c, s, l: set(l) == {"join": p | {s}, "leave": p - {s}}.get(c, p) and len(set(l)) == len(l))
    assert not no_subject_rule.ok
    assert not lab.check_roster_check(lambda *a: True).ok and not lab.check_roster_check(lambda *a: 1 / 0).ok


def test_the_roster_updates_differ_between_students(student):
    seen = []
    for sid in ("s1", "s2"):
        student(sid)
        seen.append([(sorted(p), c, s, l) for _, p, c, s, l, _ in lab._roster_cases()])
    assert seen[0] != seen[1]
    kinds = {kind for kind, *_ in lab._roster_cases()}
    assert kinds == set(lab.ROSTER_KINDS)


def test_a_detector_by_pair_indices_fails_for_some_student(student):
    for sid in ("s1", "s2", "s3", "s4", "s5", "s6"):
        student(sid)
        assert lab.check_mitm_detector(mitm_suspected).ok
    verdicts = []
    for sid in ("s1", "s2", "s3", "s4", "s5", "s6"):
        student(sid)
        verdicts.append(lab.check_mitm_detector(
            lambda g, a, b: (a, b) == (0, 1) and mitm_suspected(g, a, b)).ok)
    assert not all(verdicts)
