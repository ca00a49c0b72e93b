"""The task census and the goal → task map of INSTRUCTORS.md, recomputed from the masters.

A master classifies each task in its heading: ``### Task 3 (build) · A strict header parser``, with
one of :data:`TYPES`. A lab whose task headings carry no type is *not classified yet*; one that
classifies some tasks and not others is an error. Its learning goals are the bullets under its
"Learning goals" heading. ``python -m e2ee_lab.labs.instructor.census`` prints the census table and
the classified labs' goals as Markdown rows for INSTRUCTORS.md; ``tests/test_census.py`` fails when
INSTRUCTORS.md no longer says what the masters do.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

SOLUTIONS = Path(__file__).resolve().parents[3] / "notebooks" / "solutions"
#: The task types, in the census table's column order.
TYPES = ("look-up", "mechanics", "arithmetic", "multiple choice", "reasoning", "build", "explain", "predict")
#: The types that need thinking (the issue's "reasoning or build" tasks): at least half of all tasks.
THINKING = ("reasoning", "build", "explain", "predict")
NOT_CLASSIFIED = "not classified yet"

_TASK = re.compile(r"^#{2,4}\s*Task\s+(\d+)(?:\s*\(([^)]*)\))?", re.MULTILINE)
_GOALS = re.compile(r"learning goals", re.IGNORECASE)


@dataclass(frozen=True)
class LabCensus:
    """One lab's tasks by number (type or None when unclassified) and its learning goals."""

    lab: str
    tasks: dict[int, str | None]
    goals: tuple[str, ...]

    @property
    def classified(self) -> bool:
        """True when every task names its type."""
        return bool(self.tasks) and all(self.tasks.values())

    def counts(self) -> dict[str, int]:
        """Tasks per type (:data:`TYPES` order)."""
        return {t: sum(1 for v in self.tasks.values() if v == t) for t in TYPES}


def _goals(text: str) -> tuple[str, ...]:
    """The bullets after the first "Learning goals" line of ``text``, each joined into one line."""
    match = _GOALS.search(text)
    if not match:
        return ()
    goals: list[str] = []
    for line in text[match.end():].splitlines()[1:]:
        if line.startswith("- "):
            goals.append(line[2:].strip())
        elif goals and line.startswith("  ") and line.strip():
            goals[-1] += " " + line.strip()
        elif goals:
            break
    return tuple(goals)


def lab_census(master: Path) -> LabCensus:
    """The census of one master (``NN_name.ipynb``).

    Raises:
        ValueError: a task classified twice with different types, a type not in :data:`TYPES`, or a
            lab that classifies some of its tasks and not others.
    """
    nb = nbformat.read(master, as_version=4)
    tasks: dict[int, str | None] = {}
    goals: tuple[str, ...] = ()
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        goals = goals or _goals(cell.source)
        for number, kind in _TASK.findall(cell.source):
            kind = kind.strip().lower() or None
            if kind is not None and kind not in TYPES:
                raise ValueError(f"{master.name}: Task {number} has type {kind!r}, not one of {', '.join(TYPES)}")
            if int(number) in tasks and kind and tasks[int(number)] not in (None, kind):
                raise ValueError(f"{master.name}: Task {number} is classified twice ({tasks[int(number)]}, {kind})")
            tasks[int(number)] = tasks.get(int(number)) or kind
    census = LabCensus(master.name[:2], tasks, goals)
    if any(tasks.values()) and not census.classified:
        raise ValueError(f"{master.name}: classify every task or none "
                         f"(unclassified: {[n for n, k in tasks.items() if not k]})")
    return census


def every_lab(solutions: Path = SOLUTIONS) -> list[LabCensus]:
    """The census of every master, in lab order."""
    return [lab_census(p) for p in sorted(Path(solutions).glob("[0-9][0-9]_*.ipynb"))]


def table_rows(labs: list[LabCensus]) -> list[str]:
    """The census table's Markdown rows (one per lab, then the total of the classified labs)."""
    rows = []
    for lab in labs:
        if not lab.classified:
            rows.append(f"| {lab.lab} | {NOT_CLASSIFIED} |" + " |" * (len(TYPES) + 1))
            continue
        counts = lab.counts()
        thinking = sum(counts[t] for t in THINKING)
        rows.append(f"| {lab.lab} | {len(lab.tasks)} | " + " | ".join(str(counts[t]) for t in TYPES)
                    + f" | {thinking} of {len(lab.tasks)} |")
    done = [lab for lab in labs if lab.classified]
    total = {t: sum(lab.counts()[t] for lab in done) for t in TYPES}
    n = sum(total.values())
    thinking = sum(total[t] for t in THINKING)
    rows.append(f"| classified labs | {n} | " + " | ".join(str(total[t]) for t in TYPES) + f" | {thinking} of {n} |")
    return rows


def main() -> int:
    """Print the census table and the classified labs' goals (Markdown rows for INSTRUCTORS.md)."""
    labs = every_lab()
    print("| lab | tasks | " + " | ".join(TYPES) + " | thinking |")
    print("|---" * (len(TYPES) + 3) + "|")
    print("\n".join(table_rows(labs)))
    print()
    for lab in labs:
        if lab.classified:
            for goal in lab.goals:
                print(f"| {lab.lab} | {goal} | T? |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
