"""Grade submitted lab notebooks: rerun the lab clean, take the student's answers as data, judge them.

``python -m e2ee_lab.labs.instructor.grade submissions/*.ipynb`` prints one row per submission:
the lab, the student id and size its run record names, each task's verdict, the score, and what a
reviewer should look at. How a verdict is made (:mod:`.judge`):

- the lab's own cells (from the master in ``notebooks/solutions/``, never from the submission) run
  once per (lab, size, student id, data sources) in a fresh judge process, with the settings the
  submission's **run record** names (:func:`e2ee_lab.labs.session.start`);
- the submission's own cells (its answers, and anything else it added or changed) run in a
  throwaway child of that process, which can only hand back plain data;
- the master's check cells run in another child of the clean judge on those answers. Only their
  verdicts count: the submission's outputs, its check cells and anything it printed are ignored.

Submissions that share a lab and settings share one run of the lab's cells, so a class with the
shipped parameters costs one lab run plus a few seconds per student. Executing a submission still
runs the student's code on this machine (as ``nobody`` when the grader is root): grade in a
throwaway container. INSTRUCTORS.md ("Grading") states what this guarantees and what it does not.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pandas as pd

from e2ee_lab.labs import CORRECT, NOT_YET, check_spec, is_check
from e2ee_lab.labs.assign import is_solution_cell, student_version
from e2ee_lab.labs.session import RUN_MIME

SOLUTIONS = Path(__file__).resolve().parents[3] / "notebooks" / "solutions"
NO_VERDICT = "—"
_TASK = re.compile(r"^#{2,4}\s*Task\s+(\d+)", re.MULTILINE)
_LAB = re.compile(r"^#\s+Lab\s+(\d{2})\b", re.MULTILINE)
_CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(")
MISSING_CHROMIUM = "/nonexistent/e2ee-lab-recorded-browser"
MISSING_JANUS = "/nonexistent/e2ee-lab-recorded-janus"


def _norm(source: str) -> str:
    return " ".join(source.split())


def _python(source: str) -> str:
    """A cell's source as plain Python (IPython's magics turned into calls)."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


# --- the master: lab cells, check cells, answers --------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One check call of the master: its task heading, the call, and the answer expressions."""

    task: str  # "Task 1"
    call: str  # 'lab.check_header_decoding(answer_header)'
    function: str  # 'lab.check_header_decoding'
    answers: tuple[str, ...]  # the first n arguments ('answer_header',)
    probe: bool  # a build task: the first answer is a function, probed in the student's child


@dataclass(frozen=True)
class LabPlan:
    """What the judge runs for a lab, from its master."""

    lab: str
    cwd: str
    lab_cells: tuple[str, ...]
    tasks: tuple[Task, ...]
    student_cells: frozenset[str]  # normalised sources of the student version's code cells
    answer_cells: frozenset[str]  # ... of which the answer placeholders and the start cell


def _modules(import_sources: Iterable[str]) -> dict[str, object]:
    """Names the master's cells bind to lab modules (``lab`` → e2ee_lab.labs.sframe)."""
    names: dict[str, object] = {}
    for source in import_sources:
        try:
            tree = ast.parse(_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("e2ee_lab"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    try:
                        names[alias.asname or alias.name] = importlib.import_module(full)
                    except ImportError:
                        pass
    return names


def _tasks_of(source: str, task: str, modules: dict[str, object]) -> list[Task]:
    out = []
    for node in ast.walk(ast.parse(_python(source))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("check_") and isinstance(node.func.value, ast.Name)):
            continue
        func = getattr(modules.get(node.func.value.id), node.func.attr, None)
        if not is_check(func):
            raise ValueError(f"{ast.unparse(node.func)} is not a @check function")
        spec = check_spec(func)
        answers = tuple(ast.unparse(a) for a in node.args[: spec["answers"]])
        out.append(Task(task, ast.unparse(node), ast.unparse(node.func), answers, spec["probe"] is not None))
    return out


def plan_lab(master_path: Path) -> LabPlan:
    """The judge's plan for the lab whose master is ``master_path``."""
    master = nbformat.read(master_path, as_version=4)
    code = [c for c in master.cells if c.cell_type == "code"]
    modules = _modules(c.source for c in code)
    lab_cells, tasks, task = [], [], "before the tasks"
    for cell in master.cells:
        if cell.cell_type == "markdown":
            for number in _TASK.findall(cell.source):
                task = f"Task {int(number)}"
            continue
        if cell.cell_type != "code" or is_solution_cell(cell):
            continue
        if _CHECK_CALL.search(cell.source):
            tasks += _tasks_of(cell.source, task, modules)
        else:
            lab_cells.append(cell.source)
    student = student_version(master)
    answer_cells = {_norm(c.metadata["student"]) for c in code if is_solution_cell(c)}
    answer_cells |= {_norm(c.source) for c in code if "labs.start(" in c.source}
    return LabPlan(master_path.name[:2], str(master_path.parent.parent), tuple(lab_cells), tuple(tasks),
                   frozenset(_norm(c.source) for c in student.cells if c.cell_type == "code"),
                   frozenset(answer_cells))


# --- a submission ---------------------------------------------------------------------------------


def lab_number(nb: nbformat.NotebookNode, path: Path) -> str:
    """The lab a notebook belongs to: ``# Lab NN`` in its title, else its file name's first digits."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and (m := _LAB.search(cell.source)):
            return m.group(1)
    m = re.search(r"(?<!\d)(\d{2})_", path.name)
    return m.group(1) if m else "?"


def run_record(nb: nbformat.NotebookNode) -> dict:
    """The last run record saved in the notebook's outputs ({} if none): lab, student, size, sources."""
    found: dict = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            record = output.get("data", {}).get(RUN_MIME)
            if isinstance(record, dict):
                found = record
    return found


@dataclass(frozen=True)
class Settings:
    """How the judge reruns a lab: the submissions that agree on these share one run."""

    lab: str
    size: str
    student: str
    sources: tuple[tuple[str, str], ...]

    def environment(self) -> dict[str, str]:
        """The judge's environment variables for these settings."""
        env = dict(os.environ, E2EE_LAB_SIZE=self.size, E2EE_LAB_STUDENT=self.student, MPLBACKEND="Agg")
        values = dict(self.sources)
        if any(v == "recording" for k, v in values.items() if k.startswith("capture")):
            env["E2EE_LAB_NO_SNIFF"] = "1"
        if values.get("browser") == "recorded":
            env["E2EE_LAB_CHROMIUM"] = MISSING_CHROMIUM
        if values.get("janus") == "recorded":
            env["E2EE_LAB_JANUS"] = MISSING_JANUS
        return env


def settings_of(nb: nbformat.NotebookNode, lab: str, size: str | None = None) -> tuple[Settings, list[str]]:
    """The settings a submission recorded (``size`` overrides), and notes for the reviewer."""
    record, notes = run_record(nb), []
    if not record:
        notes.append("no run record: graded at full size with the shipped values")
    elif record.get("lab") != lab:
        notes.append(f"run record of lab {record.get('lab')!r}")
    recorded_size = record.get("size") if record.get("size") in ("ci", "full") else "full"
    if size and size != recorded_size:
        notes.append(f"ran at {recorded_size}, regraded at {size}")
    sources = record.get("sources") if isinstance(record.get("sources"), dict) else {}
    return Settings(lab, size or recorded_size, str(record.get("student") or ""),
                    tuple(sorted((str(k), str(v)) for k, v in sources.items()))), notes


def own_cells(nb: nbformat.NotebookNode, plan: LabPlan) -> tuple[list[str], dict[str, int]]:
    """The submission's code cells that are not lab cells (run in the student's child), and counts of
    what a reviewer may want to see: lab cells changed or added, lab cells missing."""
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    own = [s for s in code if _norm(s) not in plan.student_cells]
    outside = [s for s in own if _norm(s) not in plan.answer_cells and not _CHECK_CALL.search(s)
               and not _is_answer_like(s)]
    missing = len(plan.student_cells - plan.answer_cells - {_norm(s) for s in code})
    return own, {"added or changed": len(outside), "lab cells missing": missing}


def _is_answer_like(source: str) -> bool:
    """A cell that only assigns names or defines functions (how students write answers)."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return False
    return all(isinstance(n, (ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.Expr, ast.Import, ast.ImportFrom))
               for n in tree.body)


@dataclass(frozen=True)
class Verdict:
    """One check's verdict from the judge."""

    task: str
    ok: bool
    message: str


@dataclass(frozen=True)
class Submission:
    """The grade of one notebook."""

    path: Path
    lab: str
    student: str
    size: str
    verdicts: tuple[Verdict, ...]
    tasks: tuple[str, ...]
    review: tuple[str, ...] = ()  # notes for a human: no run record, changed lab cells, cells that raised
    seconds: float = 0.0  # the submission's own share: its child and its checks (not the lab's run)
    errors: tuple[str, ...] = field(default=())
    judge: dict = field(default_factory=dict)  # the judge's lab run: seconds, size and student it ran with

    def status(self, task: str) -> str:
        """``correct``, ``not yet`` or :data:`NO_VERDICT` (every check of a task must pass)."""
        found = [v for v in self.verdicts if v.task == task]
        if not found:
            return NO_VERDICT
        return CORRECT if all(v.ok for v in found) else NOT_YET


# --- running the judge ----------------------------------------------------------------------------


def _child_user() -> int | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


def judge(plan: LabPlan, settings: Settings, cells: dict[str, list[str]], *, timeout: float = 300,
          lab_timeout: float = 1800, child_user: int | None | str = "auto") -> tuple[dict, dict[str, dict]]:
    """Run one judge process for ``settings``: (its lab record, {submission id: its record}).

    ``child_user``: the uid the student's children run as; "auto" is ``nobody`` when the grader is
    root, else None (the grader's own user).

    Raises:
        RuntimeError: the judge process failed before judging (its traceback in the message).
    """
    from e2ee_lab.labs.instructor.judge import not_dumpable

    not_dumpable()  # a student's child of the judge cannot open this process's pipes either
    package = Path(__file__).resolve().parents[2]
    job = {"cwd": plan.cwd, "lab_cells": list(plan.lab_cells), "timeout": timeout,
           "child_user": _child_user() if child_user == "auto" else child_user,
           "watch": [str(package), str(Path(plan.cwd).parent / "data")],
           "tasks": [{"task": t.task, "call": t.call, "function": t.function, "answers": list(t.answers),
                      "probe": t.probe} for t in plan.tasks]}
    lines = [json.dumps(job)] + [json.dumps({"id": sid, "cells": own}) for sid, own in cells.items()]
    proc = subprocess.run([sys.executable, "-m", "e2ee_lab.labs.instructor.judge"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, env=settings.environment(), cwd=plan.cwd,
                          timeout=lab_timeout + timeout * 2 * max(1, len(cells)))
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if not lines or "judge_error" in lines[0]:
        detail = lines[0]["judge_error"] if lines else proc.stderr[-2000:]
        raise RuntimeError(f"the judge failed (exit {proc.returncode}): {detail}")
    return lines[0], {r["id"]: r for r in lines[1:] if "id" in r}


def _submission(path: Path, record: dict | None, plan: LabPlan, settings: Settings, notes: list[str],
                counts: dict[str, int], lab: dict) -> Submission:
    tasks = tuple(dict.fromkeys(t.task for t in plan.tasks))
    review = list(notes) + [f"{n} {what}" for what, n in counts.items() if n]
    if lab.get("lab_errors"):
        review.append(f"the lab's own cells raised in the judge: {lab['lab_errors'][0]}")
    if record is None:
        return Submission(path, plan.lab, settings.student, settings.size, (), tasks, tuple(review),
                          errors=("the judge returned nothing for this submission",), judge=lab)
    if record.get("student_problem"):
        review.append(f"its cells: {record['student_problem']}")
    if record.get("tampered"):
        review.append(record["tampered"])
    if record.get("verdict_problem"):
        review.append(f"the checks: {record['verdict_problem']}")
    verdicts = tuple(Verdict(v["task"], bool(v["ok"]), v["message"] or v.get("error", "")) for v in record["verdicts"])
    errors = tuple(record.get("student_errors", []))
    if errors:
        review.append(f"{len(errors)} of its cells raised")
    broken = [v["error"] for v in record["verdicts"] if v.get("error")]
    if broken:
        review.append(f"a check failed on an answer: {broken[0]}")
    seconds = float(record.get("student_seconds", 0)) + float(record.get("check_seconds", 0))
    return Submission(path, plan.lab, settings.student, settings.size, verdicts, tasks, tuple(review), seconds, errors,
                      lab)


def grade(paths: Sequence[str | Path], *, solutions: str | Path = SOLUTIONS, size: str | None = None,
          timeout: float = 300, jobs: int = 1, child_user: int | None | str = "auto") -> list[Submission]:
    """Grade ``paths`` (see the module docstring); one :class:`Submission` per readable notebook.

    Raises:
        OSError, nbformat.reader.NotJSONError: a file is not a readable notebook.
    """
    groups: dict[Settings, list] = {}
    plans: dict[str, LabPlan] = {}
    for index, path in enumerate(map(Path, paths)):
        nb = nbformat.read(path, as_version=4)
        lab = lab_number(nb, path)
        masters = sorted(Path(solutions).glob(f"{lab}_*.ipynb"))
        if not masters:
            raise ValueError(f"{path}: no master for lab {lab!r} in {solutions}")
        plan = plans.setdefault(lab, plan_lab(masters[0]))
        settings, notes = settings_of(nb, lab, size)
        cells, counts = own_cells(nb, plan)
        groups.setdefault(settings, []).append((str(index), path, cells, notes, counts))

    def one_group(item) -> list[tuple[int, Submission]]:
        settings, members = item
        plan = plans[settings.lab]
        lab, records = judge(plan, settings, {sid: cells for sid, _, cells, _, _ in members}, timeout=timeout,
                             child_user=child_user)
        return [(int(sid), _submission(path, records.get(sid), plan, settings, notes, counts, lab))
                for sid, path, _, notes, counts in members]

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        graded = [pair for result in pool.map(one_group, groups.items()) for pair in result]
    return [sub for _, sub in sorted(graded, key=lambda pair: pair[0])]


def grade_table(submissions: Iterable[Submission]) -> pd.DataFrame:
    """One row per submission: lab, student, size, each task's status, score, notes for review."""
    submissions = list(submissions)
    names = [s.path.name for s in submissions]
    tasks = sorted({t for s in submissions for t in s.tasks}, key=lambda t: int(t.split()[-1]))
    rows = []
    for sub in submissions:
        name = sub.path.name if names.count(sub.path.name) == 1 else str(sub.path)
        row: dict[str, object] = {"notebook": name, "lab": sub.lab, "student": sub.student or "-", "size": sub.size}
        row.update({task: sub.status(task) if task in sub.tasks else "" for task in tasks})
        passed = sum(sub.status(t) == CORRECT for t in sub.tasks)
        row.update({"score": f"{passed}/{len(sub.tasks)}", "review": "; ".join(sub.review)})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.set_index("notebook") if len(table) else table


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns 0, or 1 when a file could not be graded."""
    parser = argparse.ArgumentParser(prog="python -m e2ee_lab.labs.instructor.grade",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="submitted .ipynb files")
    parser.add_argument("--size", choices=("ci", "full"), help="override the size the run records name")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for a submission's own cells")
    parser.add_argument("--jobs", type=int, default=1, help="judge processes at once (one per lab and settings)")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, help="folder of the master notebooks")
    parser.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    readable, failed = [], 0
    for path in args.notebooks:
        try:
            nbformat.read(path, as_version=4)
            readable.append(path)
        except (OSError, ValueError) as err:  # NotJSONError is a ValueError
            print(f"{path}: cannot grade ({type(err).__name__}: {err})", file=sys.stderr)
            failed = 1
    began = time.monotonic()
    try:
        graded = grade(readable, solutions=args.solutions, size=args.size, timeout=args.timeout, jobs=args.jobs)
    except (ValueError, RuntimeError) as err:
        print(f"cannot grade: {err}", file=sys.stderr)
        return 1
    table = grade_table(graded)
    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        print(table.to_string() if len(table) else "nothing graded")
    print(f"graded {len(graded)} submission(s) in {time.monotonic() - began:.1f} s", file=sys.stderr)
    if args.csv:
        table.to_csv(args.csv)
    return failed


if __name__ == "__main__":
    sys.exit(main())
