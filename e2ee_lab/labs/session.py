"""Who runs a lab, at which size, on which data: the student id, per-student parameters, the run record.

The first code cell of every lab calls :func:`start`::

    from e2ee_lab import labs
    labs.start("03", student=None)  # your student id, e.g. "s1234567" (or set E2EE_LAB_STUDENT)

It fixes the **student id** for the kernel (the argument, else ``$E2EE_LAB_STUDENT``, else
:data:`DEFAULT_STUDENT`: the shipped values) and shows one line, the **run record**: lab, student,
size, package and Python versions, and where each call's data came from. The record is a display
output with the MIME type :data:`RUN_MIME`, updated in place (``display_id``) whenever a helper
reports a data source (:func:`note_source`: a live capture or the recording, Chromium or its
recorded results). Saved with the notebook, it tells the grader how to rerun the lab.

:func:`params` gives a lab its **per-student parameters**: deterministic per (student, lab, name),
different between students, and the ``default`` for the shipped notebooks (no student id). They
are not secrets: anyone can compute another id's values, which is fine, since a value is a task's
input, never its answer.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from e2ee_lab.config import lab_size

STUDENT_ENV = "E2EE_LAB_STUDENT"
DEFAULT_STUDENT = ""
RUN_MIME = "application/vnd.e2ee-lab.run+json"
DISPLAY_ID = "e2ee-lab-run"
T = TypeVar("T")

_state: dict[str, Any] = {"student": None, "record": None}


def student_id() -> str:
    """The student id of this process: set by :func:`start`, else ``$E2EE_LAB_STUDENT``, else ""."""
    if _state["student"] is not None:
        return _state["student"]
    return os.environ.get(STUDENT_ENV, DEFAULT_STUDENT).strip()


@dataclass(frozen=True)
class Params:
    """The per-student parameters of one lab (see the module docstring)."""

    student: str
    lab: str

    @property
    def is_default(self) -> bool:
        """True for the shipped notebooks (no student id): every parameter takes its default."""
        return self.student == DEFAULT_STUDENT

    def rng(self, name: str) -> random.Random:
        """A random generator for ``name``, the same for the same (student, lab, name)."""
        digest = hashlib.sha256(f"e2ee-lab params\x00{self.student}\x00{self.lab}\x00{name}".encode()).digest()
        return random.Random(int.from_bytes(digest[:16], "big"))

    def choice(self, name: str, options: Sequence[T], default: T) -> T:
        """One of ``options``; ``default`` for the shipped notebooks."""
        return default if self.is_default else self.rng(name).choice(list(options))

    def integer(self, name: str, low: int, high: int, default: int) -> int:
        """An integer in ``[low, high]``; ``default`` for the shipped notebooks."""
        return default if self.is_default else self.rng(name).randint(low, high)

    def seed(self, name: str, default: int = 0) -> int:
        """A 32-bit seed (for a recorded call, a scene); ``default`` for the shipped notebooks."""
        return self.integer(name, 1, 2**32 - 1, default)

    def shuffled(self, name: str, items: Sequence[T]) -> list[T]:
        """``items`` in this student's order. The shipped notebooks are shuffled too (by the empty
        id), so no question keeps the order its author wrote it in."""
        out = list(items)
        self.rng(name).shuffle(out)
        return out


def params(lab: str) -> Params:
    """The per-student parameters of lab ``lab`` ("03") for the current student."""
    return Params(student_id(), str(lab))


# --- the run record ---------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("e2ee-lab")
    except PackageNotFoundError:
        return "unknown"


def run_record() -> dict:
    """The current run record (a copy): lab, student, size, versions, data sources."""
    return dict(_state["record"] or {})


def _text(record: dict) -> str:
    sources = "; ".join(f"{k}: {v}" for k, v in record.get("sources", {}).items())
    who = record["student"] or "none (the shipped values)"
    return (f"e2ee-lab run record · lab {record['lab']} · student {who} · size {record['size']} · "
            f"e2ee-lab {record['package']} · Python {record['python']}" + (f" · {sources}" if sources else ""))


def _show(update: bool) -> None:
    record = _state["record"]
    try:
        from IPython import get_ipython
        from IPython.display import display, update_display
    except ImportError:  # pragma: no cover - IPython ships with the package's dependencies
        return
    if get_ipython() is None:
        return
    bundle = {RUN_MIME: record, "text/plain": _text(record)}
    (update_display if update else display)(bundle, raw=True, display_id=DISPLAY_ID)


def start(lab: str, student: str | None = None) -> None:
    """Begin lab ``lab``: fix the student id and show the run record (:func:`run_record` reads it).

    Args:
        lab: the lab's two-digit number, "03".
        student: the student id; None or "" means ``$E2EE_LAB_STUDENT``, or the shipped values.
    """
    if student is not None and str(student).strip():
        _state["student"] = str(student).strip()
    else:
        _state["student"] = None
    _state["record"] = {"lab": str(lab), "student": student_id(), "size": lab_size(), "package": _version(),
                        "python": platform.python_version(), "sources": {}}
    _show(update=False)


def note_source(what: str, source: str) -> None:
    """Record where ``what`` came from ("capture e2ee" → "live" or "recording"); updates the
    record shown by :func:`start` (nothing happens before :func:`start`)."""
    if _state["record"] is None:
        return
    _state["record"]["sources"][what] = source
    _show(update=True)
