"""Every notebook and its solution: executed at ci size, kept stripped, and generated from one source.

Student notebooks must run top to bottom (their checks say "not yet" without raising); solution
notebooks must run too, and every check in them must say "correct". The student notebooks that run
are those of a **student release** (``make student-release``, built once into a temporary folder),
in a kernel that imports the release's copy of the package: so the release's notebooks run without
the instructor module, and the tree's student notebooks, which equal them, are covered too. A lab's
student notebook and its solution execute at the same time, in two kernels (the calls inside wait
on real time as much as they compute, so on 2 cores the pair takes little longer than one). In labs 10
and 11 the student notebook runs as on a machine without Chromium or Janus (Binder, a laptop
without them): it must show the recorded tables then, while the solution runs the live browser and
Janus calls (two of each at once made those pairs the suite's slowest). The solution notebook is the
master: each student notebook must equal :func:`e2ee_lab.labs.assign.student_version` of it (cell
types and sources; outputs and ids ignored), so the two cannot drift. After editing a lab, run
``python -m e2ee_lab.labs.assign generate`` (master edited) or ``convert NN`` (both edited).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from e2ee_lab.labs import CORRECT, NOT_YET
from e2ee_lab.labs import assign

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9]*.ipynb"))


@functools.cache
def release() -> Path:
    """A student release of this tree, built once per test session (removed at exit)."""
    from e2ee_lab.labs.instructor.release import build

    dest = Path(tempfile.mkdtemp(prefix="e2ee-lab-release-")) / "release"
    atexit.register(shutil.rmtree, dest.parent, True)
    build(dest)
    return dest


#: the student notebooks that run without a local stack (module docstring): notebook -> environment
WITHOUT_STACK = {"10_browser_participant.ipynb": {"E2EE_LAB_CHROMIUM": "/nonexistent"},
                 "11_production_sfu.ipynb": {"E2EE_LAB_JANUS": "/nonexistent"}}


async def _execute(path: Path, package_root: Path | None = None, extra: dict | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, E2EE_LAB_SIZE="ci", **(extra or {}))
    if package_root is not None:  # the kernel imports this copy of e2ee_lab (PYTHONPATH precedes the install)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), env.get("PYTHONPATH")]))
    await NotebookClient(nb, timeout=300, kernel_name="python3",
                         resources={"metadata": {"path": str(path.parent)}}).async_execute(env=env)
    return nb


_RUNS: dict[str, dict[str, nbformat.NotebookNode | BaseException]] = {}


def _executed(path: Path) -> nbformat.NotebookNode:
    """``path`` executed; the first request for a lab runs its student notebook and solution together."""
    name = path.name
    if name not in _RUNS:
        pair = {"student": (release() / "notebooks" / name, release(), WITHOUT_STACK.get(name)),
                "solution": (ROOT / "notebooks" / "solutions" / name, None)}
        if not _has_solution_cells(pair["solution"][0]):
            del pair["solution"]

        async def run() -> list:
            return await asyncio.gather(*(_execute(*p) for p in pair.values()), return_exceptions=True)

        _RUNS[name] = dict(zip(pair, asyncio.run(run())))
    result = _RUNS[name]["solution" if path.parent.name == "solutions" else "student"]
    if isinstance(result, BaseException):
        raise result
    return result


def _text_outputs(nb: nbformat.NotebookNode) -> list[str]:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                texts.append(out["text"])
            for key in ("text/plain", "text/markdown"):
                if key in out.get("data", {}):
                    texts.append(out["data"][key])
    return texts


def _has_solution_cells(path: Path) -> bool:
    return any(assign.is_solution_cell(c) for c in nbformat.read(path, as_version=4).cells)


def test_there_are_notebooks_and_each_has_a_solution():
    assert NOTEBOOKS, "no notebooks found"
    assert [p.name for p in NOTEBOOKS] == [p.name for p in SOLUTIONS]


def test_notebooks_are_numbered_once_each():
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), numbers


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_title_names_the_notebook_number(path):
    first = nbformat.read(path, as_version=4).cells[0]
    title = first.source.splitlines()[0]
    assert first.cell_type == "markdown" and re.match(rf"# (Lab )?{path.name[:2]}\b", title), title


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_runs(path):
    """The release's copy of ``path`` runs top to bottom on the release's package."""
    nb = _executed(path)
    assert nb.cells
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    record = [o["data"]["application/vnd.e2ee-lab.run+json"] for c in nb.cells for o in c.get("outputs", [])
              if "application/vnd.e2ee-lab.run+json" in o.get("data", {})]
    assert record and record[-1]["lab"] == path.name[:2] and record[-1]["size"] == "ci"
    if path.name in WITHOUT_STACK:  # it took the recorded path, as on a machine without the stack
        assert any("no Chromium: " in t or "no Janus call here" in t for t in _text_outputs(nb)), path.name


@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: "solutions/" + p.name)
def test_solution_notebook_passes_every_check(path):
    if not _has_solution_cells(path):
        pytest.skip("no task cells: the student notebook is the same notebook and runs above")
    texts = _text_outputs(_executed(path))
    verdicts = [t for t in texts if t.lstrip("✅❌ *").startswith((CORRECT, NOT_YET))]
    assert verdicts, "the solution runs no check"
    assert all(NOT_YET not in t for t in verdicts), verdicts


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.name)
def test_committed_notebook_is_stripped(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"cells {dirty} carry outputs; strip them before committing"


# --- one source per lab: the student notebook is generated from the master -----------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_is_generated_from_its_master(path):
    master = nbformat.read(ROOT / "notebooks" / "solutions" / path.name, as_version=4)
    student = nbformat.read(path, as_version=4)
    assert not assign.drift(student, master), (
        f"{path.name} drifted from its master; run `python -m e2ee_lab.labs.assign generate {path.name[:2]}`"
        f" (or `convert {path.name[:2]}` if you edited both): {assign.drift(student, master)}")
    assert not assign.leaked_solution_marks(student)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_cells_of_a_master_carry_the_student_text(path):
    master = nbformat.read(path, as_version=4)
    for cell in master.cells:
        if assign.is_solution_cell(cell):
            assert isinstance(cell.metadata.get(assign.STUDENT_KEY), str), cell.get("id")
    headlines = [c for c in master.cells if "headline" in c.metadata.get("tags", [])]
    assert len(headlines) <= 1, "at most one headline figure per notebook"


def _pair():
    """A small (student, solution) pair with every kind of difference the converter handles."""
    shared = [new_markdown_cell("# Lab 99 — a test lab"), new_code_cell("import math")]
    student = new_notebook(cells=shared + [
        new_code_cell("answer = None"), new_markdown_cell("Hint: try harder."),
        new_code_cell("check(answer)"), new_code_cell("# scratch space")])
    solution = new_notebook(cells=shared + [
        new_code_cell("answer = math.pi"), new_code_cell("print('worked example')"),
        new_code_cell("check(answer)")])
    return student, solution


def test_tag_master_round_trips_every_kind_of_difference():
    student, solution = _pair()
    master = assign.tag_master(student, solution)
    assert assign.cell_view(assign.student_version(master)) == assign.cell_view(student)
    # the master still reads as the solution, apart from empty placeholders for student-only cells
    assert [s for s in assign.cell_view(master) if s[1]] == assign.cell_view(solution)
    tagged = [c for c in master.cells if assign.is_solution_cell(c)]
    assert [c.metadata[assign.STUDENT_KEY] for c in tagged] == [
        "answer = None", "", "Hint: try harder.", "# scratch space"]


def test_tag_master_is_idempotent_and_the_student_version_leaks_nothing():
    student, solution = _pair()
    master = assign.tag_master(student, solution)
    again = assign.tag_master(student, master)
    assert assign.cell_view(again) == assign.cell_view(master)
    assert [c.metadata for c in again.cells] == [c.metadata for c in master.cells]
    generated = assign.student_version(master)
    assert not assign.leaked_solution_marks(generated)
    assert "math.pi" not in json.dumps(generated)


def test_drift_is_reported_and_a_malformed_master_is_rejected():
    student, solution = _pair()
    master = assign.tag_master(student, solution)
    student.cells[2].source = "answer = 3"
    assert assign.drift(student, master) and "replace" in assign.drift(student, master)[0]
    master.cells[2].metadata.pop(assign.STUDENT_KEY)
    with pytest.raises(assign.MalformedMaster):
        assign.student_version(master)


def test_command_line_converts_checks_and_generates(tmp_path, capsys):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    student, solution = _pair()
    nbformat.write(student, tmp_path / "99_test.ipynb")
    nbformat.write(solution, solutions / "99_test.ipynb")
    assert assign.main(["check", "--solutions", str(solutions)]) == 1  # untagged: the pair differs
    assert assign.main(["convert", "99", "--solutions", str(solutions)]) == 0
    assert assign.main(["check", "--solutions", str(solutions)]) == 0
    (tmp_path / "99_test.ipynb").unlink()
    assert assign.main(["generate", "--solutions", str(solutions)]) == 0
    regenerated = nbformat.read(tmp_path / "99_test.ipynb", as_version=4)
    assert assign.cell_view(regenerated) == assign.cell_view(student)
    assert assign.main(["generate", "42", "--solutions", str(solutions)]) == 2
    assert "missing_notebook" in capsys.readouterr().err
