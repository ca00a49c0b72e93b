"""Offline checks for the notebooks' tasks, and what every check is built from.

Every task in a notebook ends with a check cell that calls one function from this package. A check
never raises (a shipped notebook must run top to bottom, whatever a student typed): it returns a
:class:`Feedback` that prints as ``correct: ...`` or ``not yet: ...`` with a hint saying why. The
test suite executes the solution notebooks and requires every check in them to say ``correct``.

A check is a function decorated with :func:`check`. The decorator is what makes the promise hold:

- the first ``answers`` arguments (the student's answers) reach the check as plain Python data
  (:func:`e2ee_lab.labs.plain.plain_copy`): an object with a rigged ``__eq__`` or ``__hash__``
  arrives as an :class:`~e2ee_lab.labs.plain.Opaque` placeholder, which equals nothing;
- a build task passes a ``probe``: a function that calls the student's code on the check's own
  inputs and returns plain data (outputs, or the name of the exception raised), so the verdict
  never needs the student's function itself (the grader runs the probe in a throwaway process);
- an exception inside the check becomes a ``not yet`` whose :attr:`Feedback.error` names it, so a
  bug shows in the tests (``tests/test_labs_checks.py`` fails on it) but never in a lesson.

Per-student parameters, sealed answers and multiple choice live in :mod:`.session` and
:mod:`.answers`; INSTRUCTORS.md ("How to write a task") shows them together.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CORRECT = "correct"
NOT_YET = "not yet"
CHECK_MARK = "__e2ee_lab_check__"


@dataclass(frozen=True)
class Feedback:
    """The verdict of one check: ``ok`` and a sentence for the student.

    ``error`` is empty unless the check itself failed on the input (``"TypeError: ..."``): the
    student still reads a ``not yet``, and the tests treat it as a bug in the check.
    """

    ok: bool
    message: str
    error: str = ""

    def __str__(self) -> str:
        return f"{CORRECT if self.ok else NOT_YET}: {self.message}"

    def __bool__(self) -> bool:
        return self.ok

    def _repr_markdown_(self) -> str:
        mark = "✅" if self.ok else "❌"
        return f"{mark} **{CORRECT if self.ok else NOT_YET}**: {self.message}"

    def __repr__(self) -> str:
        return str(self)


def correct(message: str) -> Feedback:
    """A passing verdict."""
    return Feedback(True, message)


def not_yet(message: str) -> Feedback:
    """A failing verdict with a hint."""
    return Feedback(False, message)


def unanswered(task: str) -> Feedback:
    """The verdict for a task whose answer is still ``None`` (the shipped student notebook)."""
    return Feedback(False, f"{task} is still unanswered: replace the None in the task cell.")


@dataclass(frozen=True)
class Probed:
    """What a build task's probe recorded of the student's function: plain data only."""

    outputs: Any


def _with_plain_answers(args: tuple, kwargs: dict, count: int, probe: Callable | None) -> tuple:
    head = list(args[:count])
    if probe is not None and head and callable(head[0]) and not isinstance(head[0], Probed):
        head[0] = Probed(plain_copy(probe(head[0], *args[count:], **kwargs)))
    head = [Probed(plain_copy(a.outputs)) if isinstance(a, Probed) else plain_copy(a) for a in head]
    return (*head, *args[count:])


def check(func: Callable | None = None, *, answers: int = 1, probe: Callable | None = None):
    """Decorate a task check: plain answers in, a :class:`Feedback` out, never an exception.

    Args:
        answers: how many leading positional arguments are the student's answers (the rest are
            the lab's own objects: a call, a table). The grader passes exactly these.
        probe: for a build task, ``probe(student_function, *lab_objects) -> plain data`` (it gets
            the check's other arguments too); the check then receives a :class:`Probed` instead of
            the function. A probe must not raise either: record an
            exception of the student's code as data (:func:`e2ee_lab.labs.plain.call_safely`).
    """

    def wrap(f: Callable[..., Feedback]) -> Callable[..., Feedback]:
        @functools.wraps(f)
        def guarded(*args: Any, **kwargs: Any) -> Feedback:
            try:
                result = f(*_with_plain_answers(args, kwargs, answers, probe), **kwargs)
            except Exception as exc:  # noqa: BLE001 - the promise: a check never raises
                error = f"{type(exc).__name__}: {exc}"
                return Feedback(False, "the check could not read this answer "
                                       f"({type(exc).__name__}); check its type against the task cell.", error)
            if not isinstance(result, Feedback):
                return Feedback(False, "the check returned no verdict.", f"returned {type(result).__name__}")
            return result

        setattr(guarded, CHECK_MARK, {"answers": answers, "probe": probe})
        return guarded

    return wrap(func) if func is not None else wrap


def is_check(obj: object) -> bool:
    """True for a function decorated with :func:`check`."""
    return callable(obj) and hasattr(obj, CHECK_MARK)


def check_spec(obj: object) -> dict:
    """``{"answers": n, "probe": probe or None}`` of a check (KeyError-free: {} for non-checks)."""
    return dict(getattr(obj, CHECK_MARK, {}))


from e2ee_lab.labs.plain import plain_copy  # noqa: E402  (imports nothing of the package)
from e2ee_lab.labs.session import params, start, student_id  # noqa: E402  (re-exported API)

__all__ = ["CORRECT", "NOT_YET", "Feedback", "Probed", "check", "check_spec", "correct", "is_check",
           "not_yet", "params", "start", "student_id", "unanswered"]
