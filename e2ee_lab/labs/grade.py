"""Grade submitted lab notebooks offline: run each one and read the verdicts of its check cells.

Every task of a lab ends with a check cell whose output starts with ``correct`` or ``not yet``
(:class:`e2ee_lab.labs.Feedback`). :func:`grade_notebook` executes a submission with nbclient (the
same engine as the test suite; a failing cell does not stop the run), assigns each verdict to the
``### Task N`` heading above it, and compares the submission's check cells with those of the lab's
master in ``notebooks/solutions/``: a check cell that is not in the master (edited, or replaced by a
``print("correct")``) is listed under ``checks edited``. The command line::

    python -m e2ee_lab.labs.grade submissions/*.ipynb            # execute each, print a table
    python -m e2ee_lab.labs.grade --no-execute --csv grades.csv submissions/*.ipynb

Executing a submission runs the student's code on this machine: grade in a throwaway account or
container. ``--no-execute`` reads the outputs saved in the file instead (quick, but trusts them).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

from e2ee_lab.labs import CORRECT, NOT_YET

SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "solutions"
NO_VERDICT = "—"
_TASK = re.compile(r"^#{2,4}\s*Task\s+(\d+)", re.MULTILINE)
_LAB = re.compile(r"^#\s+Lab\s+(\d{2})\b", re.MULTILINE)
_CHECK = re.compile(r"\bcheck_\w+\s*\(")


@dataclass(frozen=True)
class Verdict:
    """One check's output: the task it belongs to, pass or not, and the message."""

    task: str  # "Task 1"
    ok: bool
    message: str


@dataclass(frozen=True)
class Submission:
    """The grade of one notebook."""

    path: Path
    lab: str  # "01", or "?" when neither the title nor the file name says
    verdicts: tuple[Verdict, ...]
    tasks: tuple[str, ...]  # every "Task N" heading of the notebook, in order
    edited_checks: tuple[str, ...] = ()  # check-cell sources not found in the master
    errors: tuple[str, ...] = field(default=())  # "ename: evalue" of cells that raised

    def status(self, task: str) -> str:
        """``correct``, ``not yet`` or :data:`NO_VERDICT` for ``task`` (the last check of it wins)."""
        found = [v for v in self.verdicts if v.task == task]
        if not found:
            return NO_VERDICT
        return CORRECT if found[-1].ok else NOT_YET


def _verdict_text(output: dict) -> str | None:
    """The verdict an output shows (``correct: ...`` / ``not yet: ...``), or None."""
    texts = [output.get("text", "")]
    texts += [output.get("data", {}).get(k, "") for k in ("text/markdown", "text/plain")]
    for text in texts:
        text = "".join(text) if isinstance(text, list) else text
        text = text.lstrip("✅❌ *'\"").replace("**", "")
        if text.startswith((CORRECT, NOT_YET)):
            return text.strip()
    return None


def read_verdicts(nb: nbformat.NotebookNode) -> tuple[tuple[Verdict, ...], tuple[str, ...], tuple[str, ...]]:
    """(verdicts, task headings, errors) of an executed notebook, in cell order; errors of cells
    tagged ``raises-exception`` (meant to fail) are not counted."""
    verdicts, tasks, errors = [], [], []
    task = "before the tasks"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for number in _TASK.findall(cell.source):
                task = f"Task {int(number)}"
                tasks.append(task)
            continue
        expected_error = "raises-exception" in cell.metadata.get("tags", [])
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error" and not expected_error:
                errors.append(f"{output.get('ename')}: {output.get('evalue')}")
            text = _verdict_text(output)
            if text is not None:
                verdicts.append(Verdict(task, text.startswith(CORRECT), text))
    return tuple(verdicts), tuple(tasks), tuple(errors)


def lab_number(nb: nbformat.NotebookNode, path: Path) -> str:
    """The lab a notebook belongs to: ``# Lab NN`` in its title, else its file name's first digits."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (m := _LAB.search(cell.source)):
            return m.group(1)
    m = re.search(r"(?<!\d)(\d{2})_", path.name)
    return m.group(1) if m else "?"


def check_sources(nb: nbformat.NotebookNode) -> list[str]:
    """The sources of the code cells that call a ``check_...`` function, whitespace-normalised."""
    return [" ".join(c.source.split()) for c in nb.cells if c.cell_type == "code" and _CHECK.search(c.source)]


def _master(lab: str, solutions: Path) -> nbformat.NotebookNode | None:
    found = sorted(solutions.glob(f"{lab}_*.ipynb"))
    return nbformat.read(found[0], as_version=4) if found else None


def grade_notebook(path: str | Path, *, execute: bool = True, timeout: int = 600,
                   solutions: str | Path = SOLUTIONS) -> Submission:
    """Grade one submission (see the module docstring).

    Raises:
        OSError, nbformat.reader.NotJSONError: the file is not a readable notebook.
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if execute:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent.resolve())}})
        client.execute()
    verdicts, tasks, errors = read_verdicts(nb)
    lab = lab_number(nb, path)
    master = _master(lab, Path(solutions))
    edited: tuple[str, ...] = ()
    if master is not None:
        known = set(check_sources(master))
        edited = tuple(s for s in check_sources(nb) if s not in known)
    return Submission(path, lab, verdicts, tasks, edited, errors)


def grade_table(submissions: Iterable[Submission]) -> pd.DataFrame:
    """One row per submission: lab, each task's status, score, edited check cells, cell errors.

    Rows are named by file name, or by the path as given where two submissions share a name."""
    submissions = list(submissions)
    names = [s.path.name for s in submissions]
    tasks = sorted({t for s in submissions for t in s.tasks}, key=lambda t: int(t.split()[-1]))
    rows = []
    for sub in submissions:
        name = sub.path.name if names.count(sub.path.name) == 1 else str(sub.path)
        row: dict[str, object] = {"notebook": name, "lab": sub.lab}
        row.update({task: sub.status(task) if task in sub.tasks else "" for task in tasks})
        passed = sum(sub.status(t) == CORRECT for t in sub.tasks)
        row.update({"score": f"{passed}/{len(sub.tasks)}", "checks edited": len(sub.edited_checks),
                    "errors": len(sub.errors)})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.set_index("notebook") if len(table) else table


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns 0, or 1 when a file could not be read."""
    parser = argparse.ArgumentParser(prog="python -m e2ee_lab.labs.grade", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="submitted .ipynb files")
    parser.add_argument("--no-execute", action="store_true", help="read the saved outputs, do not run")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--size", choices=("ci", "full"), help="E2EE_LAB_SIZE for the runs")
    parser.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    if args.size:
        os.environ["E2EE_LAB_SIZE"] = args.size
    graded, failed = [], 0
    for path in args.notebooks:
        try:
            graded.append(grade_notebook(path, execute=not args.no_execute, timeout=args.timeout))
        except (OSError, ValueError) as err:  # NotJSONError is a ValueError
            print(f"{path}: cannot grade ({type(err).__name__}: {err})", file=sys.stderr)
            failed = 1
    table = grade_table(graded)
    print(table.to_string() if len(table) else "nothing graded")
    for sub in graded:
        for source in sub.edited_checks:
            print(f"{sub.path.name}: check cell not in the master: {source[:80]}")
    if args.csv:
        table.to_csv(args.csv)
    return failed


if __name__ == "__main__":
    sys.exit(main())
