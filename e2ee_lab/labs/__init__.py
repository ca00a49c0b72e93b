"""Offline checks for the notebooks' tasks.

Every task in a notebook ends with a check cell that calls one function from this package. A check
never raises on a wrong or missing answer (a shipped notebook must run top to bottom): it returns a
:class:`Feedback` that prints as ``correct: ...`` or ``not yet: ...`` with a hint saying why. The
test suite executes the solution notebooks and requires every check in them to say ``correct``.
"""

from __future__ import annotations

from dataclasses import dataclass

CORRECT = "correct"
NOT_YET = "not yet"


@dataclass(frozen=True)
class Feedback:
    """The verdict of one check: ``ok`` and a sentence for the student."""

    ok: bool
    message: str

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
