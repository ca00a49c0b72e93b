"""Notebook 07 (crypto pitfalls): the per-student pairs of the recovery build task, the per-student
tag length and rate-limit setting, and hints that never confirm part of an answer. (Every check's
robustness is tested in tests/test_labs_checks.py, the grader in tests/test_grade.py.)"""

from __future__ import annotations

import math

import pytest

from e2ee_lab.attacks.crypto import xor_bytes
from e2ee_lab.crypto.sframe import decode_header
from e2ee_lab.labs import Probed, session
from e2ee_lab.labs import pitfalls as lab
from e2ee_lab.labs.instructor.answers import DESIGN_RULES, forgery_days


@pytest.fixture
def student(monkeypatch):
    """Set the student id of this process (as ``labs.start`` does)."""
    monkeypatch.setattr(session, "_state", {"student": None, "record": None})

    def use(student_id: str) -> None:
        session._state["student"] = student_id or None
        monkeypatch.setenv(session.STUDENT_ENV, student_id)
    return use


def recover(frame_1, frame_2, known_1, nt):
    h = decode_header(frame_1)[2]
    return xor_bytes(xor_bytes(frame_1[h:-nt], frame_2[h:-nt]), known_1)


# --- Task 1: the recovery, on pairs of every shape ---------------------------------------------------


def test_each_student_gets_pairs_of_every_tag_and_several_header_lengths(student):
    seen = set()
    for i in range(12):
        student(f"s{i}")
        cases = lab._reuse_cases()
        assert [(c.frame_1, c.frame_2) for c in cases] == [(c.frame_1, c.frame_2) for c in lab._reuse_cases()]
        assert {c.nt for c in cases} == {16, 10, 8, 4}
        assert any(len(c.known_1) < len(c.secret) for c in cases) and any(len(c.known_1) > len(c.secret) for c in cases)
        for c in cases:
            assert c.frame_1[:c.header_length] == c.frame_2[:c.header_length]  # one (KID, CTR): one nonce
            assert decode_header(c.frame_1)[2] == c.header_length
        seen.add(cases[0].frame_1)
        lengths = {c.header_length for c in cases}
        assert len(lengths) >= 2
    assert len(seen) == 12


def test_the_recovery_check_passes_a_right_function_and_names_the_usual_slips(student):
    student("s3")
    assert lab.check_recovery(recover).ok
    slips = {
        "C1 ⊕ C2": lambda f1, f2, k, nt: xor_bytes(f1[decode_header(f1)[2]:-nt], f2[decode_header(f1)[2]:-nt]),
        "known plaintext itself": lambda f1, f2, k, nt: k,
        "1-byte header": lambda f1, f2, k, nt: xor_bytes(xor_bytes(f1[1:-nt], f2[1:-nt]), k),
        "16-byte tag": lambda f1, f2, k, nt: xor_bytes(xor_bytes(f1[decode_header(f1)[2]:-16],
                                                                 f2[decode_header(f1)[2]:-16]), k),
        "bytes: a keystream byte": lambda f1, f2, k, nt: recover(f1, f2, k, nt)[:-1],
        "return bytes": lambda f1, f2, k, nt: recover(f1, f2, k, nt).hex(),
        "raised ZeroDivisionError": lambda f1, f2, k, nt: 1 / 0,
    }
    for phrase, func in slips.items():
        feedback = lab.check_recovery(func)
        assert not feedback.ok and phrase in feedback.message, (phrase, feedback.message)
    assert lab.check_recovery(Probed(None)).ok is False


def test_no_recovery_hint_shows_or_confirms_a_plaintext_byte(student):
    student("s5")
    cases = lab._reuse_cases()
    secrets = [c.secret for c in cases]

    def prefix_then_junk(f1, f2, k, nt):
        right = recover(f1, f2, k, nt)
        return right[:5] + bytes(len(right) - 5)

    for func in (prefix_then_junk, lambda f1, f2, k, nt: recover(f1, f2, k, nt)[:10]):
        message = lab.check_recovery(func).message
        assert not any(s[8:20].decode() in message for s in secrets)
    same = lab.check_recovery(prefix_then_junk).message
    other = lab.check_recovery(lambda f1, f2, k, nt: bytes(len(recover(f1, f2, k, nt)))).message
    assert same == other  # a correct prefix reads exactly like zeros of the right length


# --- Tasks 2 and 3: per-student values, exact checks ----------------------------------------------------


def test_tasks_2_and_3_take_each_students_values(student):
    values = set()
    for i in range(30):
        student(f"s{i}")
        nt, setting = lab.task2_tag_bytes(), lab.task3_setting()
        values.add((nt, setting["ptime_ms"], setting["chance_pct"]))
        assert lab.check_expected_attempts(2 ** (8 * nt)).ok
        assert not lab.check_expected_attempts(2 ** (8 * nt - 1)).ok
        days = forgery_days(setting["ptime_ms"], setting["chance_pct"])
        assert lab.check_forgery_days(days).ok and lab.check_forgery_days(days * 1.005).ok
        assert not lab.check_forgery_days(days * 1.05).ok
        mean = 2**32 * setting["ptime_ms"] / 1000 / 86400
        assert "mean" in lab.check_forgery_days(mean).message
        assert "days" in lab.check_forgery_days(days * 86400).message
    assert len(values) >= 12
    student("")
    assert lab.task2_tag_bytes() == 3 and lab.task3_setting() == {"ptime_ms": 20, "chance_pct": 50}
    assert math.isclose(forgery_days(20, 50), math.log(2) * 2**32 * 0.02 / 86400, rel_tol=1e-9)


# --- Task 4: letters per student, and a hint that confirms nothing --------------------------------------


def test_the_rules_hint_never_counts_or_names_the_right_pairings(student):
    for i in range(10):
        student(f"s{i}")
        right = {name: lab.RULES.letter_of(rule) for name, rule in DESIGN_RULES.items()}
        assert lab.check_design_rules(right).ok
        names = list(right)
        rotated = {name: right[names[(k + 1) % len(names)]] for k, name in enumerate(names)}
        message = lab.check_design_rules(rotated).message
        assert " of 5" not in message and "differ" not in message
        one_swap = dict(right)
        one_swap["flood_short_tag"], one_swap["old_frame_again"] = right["old_frame_again"], right["flood_short_tag"]
        assert not lab.check_design_rules(one_swap).ok
        twice = dict(right, crash_restore=right["shared_group_key"])
        assert "every letter once" in lab.check_design_rules(twice).message
