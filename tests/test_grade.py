"""The grader cannot be fooled: only the master's checks, run by a clean judge on plain answers, count.

Lab 03 (static answers, a few seconds per run) is executed once as shipped and once solved, like
a student would before handing in; every attack below is made from those executed notebooks, and
all of them are graded by one judge run. None may score; the solved notebook must score full, at
the size its run record names.
"""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_output

from e2ee_lab.crypto.sframe import decode_header
from e2ee_lab.labs import CORRECT
from e2ee_lab.labs import sframe
from e2ee_lab.labs.instructor import grade

ROOT = Path(__file__).resolve().parents[1]
LAB = "03_sframe_by_hand.ipynb"
TASKS = ("Task 1", "Task 2", "Task 3", "Task 4")

pytestmark = pytest.mark.notebook


def _run(path: Path, size: str) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, E2EE_LAB_SIZE=size)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute(env=env)
    return nb


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    return {"student": _run(ROOT / "notebooks" / LAB, "ci"),
            "solved-full": _run(ROOT / "notebooks" / "solutions" / LAB, "full")}


def _index(nb, text: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in c.source)


def _attacks(student: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    checks = ("check_header_decoding", "check_tampering", "check_overhead", "check_header_parser")
    out = {}

    nb = copy.deepcopy(student)  # the check cells replaced by a printed verdict (and its saved output)
    for name in checks:
        cell = nb.cells[_index(nb, name)]
        cell.source = 'print("correct: well done")'
        cell.outputs = [new_output("stream", name="stdout", text="correct: well done\n")]
    out["replaced check"] = nb

    nb = copy.deepcopy(student)  # monkeypatching the checks, the seals and the verdict class early on
    nb.cells.insert(_index(nb, "as lab") + 1, new_code_cell(
        "for name in ('check_header_decoding', 'check_tampering', 'check_overhead', 'check_header_parser'):\n"
        "    setattr(lab, name, lambda *a: lab.correct(''))\n"
        "import e2ee_lab.labs as L, e2ee_lab.labs.answers as A\n"
        "A.Sealed.opens = lambda self, answer: 'pwned'\n"
        "L.Feedback.ok = True\nL.Feedback.__bool__ = lambda self: True"))
    out["monkeypatch"] = nb

    nb = copy.deepcopy(student)  # an extra cell printing a verdict after each real check
    for name in checks:
        nb.cells.insert(_index(nb, name) + 1, new_code_cell('from e2ee_lab.labs import correct\ncorrect("yes")'))
    out["extra correct cell"] = nb

    nb = copy.deepcopy(student)  # the check edited to pass the right literal; the answers stay wrong
    kid, ctr, _ = decode_header(bytes.fromhex(sframe.task1_header()))  # the shipped (no id) header
    nb.cells[_index(nb, "check_header_decoding")].source = f"lab.check_header_decoding(({kid}, {ctr}), header)"
    nb.cells[_index(nb, "answer_overhead = None")].source = "answer_overhead = 15"
    nb.cells[_index(nb, "check_overhead")].source = "lab.check_overhead(16)"
    nb.cells[_index(nb, "check_header_parser")].source = (
        "from e2ee_lab.crypto.sframe import decode_header\nlab.check_header_parser(decode_header)")
    out["edited check"] = nb

    nb = copy.deepcopy(student)  # answers of the wrong type, with rigged equality
    nb.cells[_index(nb, "answer_header = None")].source = (
        "class Always(tuple):\n    def __eq__(self, other): return True\n    __hash__ = tuple.__hash__\n"
        "answer_header = Always((1, 2))")
    nb.cells[_index(nb, "answer_tampering = {")].source = (
        "class Any(str):\n    def __eq__(self, other): return True\n    __hash__ = str.__hash__\n"
        "answer_tampering = {k: Any('x') for k in lab.TASK2_DESCRIPTIONS}")
    nb.cells[_index(nb, "answer_overhead = None")].source = "answer_overhead = '16'"
    nb.cells[_index(nb, "def parse_header")].source = (
        "class Yes(tuple):\n    def __eq__(self, other): return True\n    __hash__ = tuple.__hash__\n"
        "def parse_header(data):\n    return Yes((0, 0, 0))")
    out["wrong types"] = nb

    nb = copy.deepcopy(student)  # the kernel itself: print, an IPython hook, a thread printing verdicts
    nb.cells.insert(_index(nb, "answer_header = None"), new_code_cell(
        "import builtins, sys, threading, time\n"
        "builtins.print = lambda *a, **k: sys.__stdout__.write('correct: forged\\n')\n"
        "get_ipython().events.register('pre_run_cell', lambda *a: sys.__stdout__.write('correct: forged\\n'))\n"
        "def spam():\n    while True:\n        sys.__stdout__.write('correct: forged\\n'); time.sleep(0.01)\n"
        "threading.Thread(target=spam, daemon=True).start()"))
    out["kernel attack"] = nb
    return out


def _write(tmp_path: Path, notebooks: dict[str, nbformat.NotebookNode]) -> list[Path]:
    paths = []
    for name, nb in notebooks.items():
        path = tmp_path / f"{name.replace(' ', '_')}.ipynb"
        nbformat.write(nb, path)
        paths.append(path)
    return paths


def test_no_attack_scores_and_the_solved_notebook_scores_full_at_its_own_size(executed, tmp_path):
    attacks = _attacks(executed["student"])
    one_right = _attacks(executed["student"])["wrong types"]
    one_right.cells[_index(one_right, "answer_overhead = ")].source = "answer_overhead = 16"
    notebooks = {**attacks, "as shipped": executed["student"], "solved at full size": executed["solved-full"],
                 "one right": one_right}
    graded = {p.stem.replace("_", " "): sub for p, sub in
              zip(_write(tmp_path, notebooks), grade.grade(_write(tmp_path, notebooks)))}
    for name in attacks:
        assert [graded[name].status(t) for t in TASKS] == ["not yet"] * 4, (name, graded[name].verdicts)
    assert [graded["as shipped"].status(t) for t in TASKS] == ["not yet"] * 4
    full = graded["solved at full size"]
    assert [full.status(t) for t in TASKS] == [CORRECT] * 4, full.verdicts
    assert full.size == "full" and full.judge["size"] == "full"  # regraded at the size it ran at
    assert graded["as shipped"].judge["size"] == "ci"
    assert "1 added or changed" in "; ".join(graded["monkeypatch"].review)  # shown for review
    # each submission is judged on its own answers, though all of one lab and size share one judge
    assert [graded["one right"].status(t) for t in TASKS] == ["not yet", "not yet", CORRECT, "not yet"]


def test_a_submission_that_changes_the_package_stops_the_grading_of_the_rest(executed, tmp_path):
    marker = ROOT / "data" / f".tamper-{uuid.uuid4().hex}"
    tamper = copy.deepcopy(executed["student"])
    tamper.cells.insert(_index(tamper, "answer_header = None"), new_code_cell(
        f"import os\nopen({str(marker)!r}, 'w').write('x')"))
    paths = _write(tmp_path, {"tamper": tamper, "after it": executed["solved-full"]})
    mode = (ROOT / "data").stat().st_mode
    try:
        os.chmod(ROOT / "data", 0o777)  # as root the child runs as nobody: let it write, as a same-user child could
        first, second = grade.grade(paths, size="ci")
    finally:
        os.chmod(ROOT / "data", mode)
        created = marker.exists()
        marker.unlink(missing_ok=True)
    assert created, "the tampering child could not write into data/"
    assert "changed files" in "; ".join(first.review)
    assert not any(second.status(t) == CORRECT for t in TASKS) and not second.verdicts
    assert "not graded" in "; ".join(second.review)


def test_settings_follow_the_run_record():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Lab 02 — x")])
    record = {"lab": "02", "student": "s1", "size": "full",
              "sources": {"capture e2ee": "recording", "browser": "recorded", "janus": "recorded"}}
    cell = new_code_cell("labs.start('02')")
    cell.outputs = [new_output("display_data", data={"application/vnd.e2ee-lab.run+json": record, "text/plain": "r"})]
    nb.cells.append(cell)
    settings, notes = grade.settings_of(nb, "02")
    env = settings.environment()
    assert (settings.size, settings.student, notes) == ("full", "s1", [])
    assert env["E2EE_LAB_SIZE"] == "full" and env["E2EE_LAB_STUDENT"] == "s1"
    assert env["E2EE_LAB_NO_SNIFF"] == "1" and env["E2EE_LAB_CHROMIUM"] == grade.MISSING_CHROMIUM
    assert env["E2EE_LAB_JANUS"] == grade.MISSING_JANUS
    bare, notes = grade.settings_of(nbformat.v4.new_notebook(), "02")
    assert bare.size == "full" and "no run record" in notes[0]


@pytest.mark.parametrize("master", sorted((ROOT / "notebooks" / "solutions").glob("[0-9]*.ipynb")),
                         ids=lambda p: p.name[:2])
def test_every_master_has_a_plan_whose_answers_are_its_answer_cells(master):
    """Every check call of a master names @check functions, and its answer arguments are names the
    master's answer cells assign (what the judge reads from a student's cells)."""
    import ast

    plan = grade.plan_lab(master)
    assert plan.tasks and plan.lab_cells
    master_nb = nbformat.read(master, as_version=4)
    assigned = set()
    for cell in master_nb.cells:
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            for node in ast.walk(ast.parse(grade._python(cell.source))):
                if isinstance(node, (ast.Name, ast.FunctionDef)) and isinstance(getattr(node, "ctx", ast.Store()), ast.Store):
                    assigned.add(getattr(node, "id", getattr(node, "name", None)))
    for task in plan.tasks:
        assert set(task.answers) <= assigned, (task.call, assigned)


def test_the_table_orders_tasks_and_names_duplicates_by_path(tmp_path):
    subs = [grade.Submission(tmp_path / "a" / "x.ipynb", "03", "s1", "ci", (grade.Verdict("Task 1", True, "ok"),),
                             ("Task 1",)),
            grade.Submission(tmp_path / "b" / "x.ipynb", "07", "", "full", (grade.Verdict("Task 10", False, "no"),),
                             ("Task 2", "Task 10"), ("no run record",))]
    table = grade.grade_table(subs)
    assert list(table.columns) == ["lab", "student", "size", "Task 1", "Task 2", "Task 10", "score", "review"]
    assert list(table.index) == [str(tmp_path / "a" / "x.ipynb"), str(tmp_path / "b" / "x.ipynb")]
    assert list(table.iloc[1][["Task 1", "Task 2", "Task 10", "score"]]) == ["", grade.NO_VERDICT, "not yet", "0/2"]
    assert table.iloc[1]["review"] == "no run record" and table.iloc[0]["student"] == "s1"


def test_the_command_reports_an_unreadable_file_and_a_lab_without_master(tmp_path, capsys):
    (tmp_path / "broken.ipynb").write_text("{not json")
    assert grade.main([str(tmp_path / "broken.ipynb")]) == 1
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Lab 42 — none")]),
                   tmp_path / "42_x.ipynb")
    assert grade.main([str(tmp_path / "42_x.ipynb")]) == 1
    assert "no master for lab '42'" in capsys.readouterr().err


def _bound_names(source: str) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(grade._python(source))):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("master", sorted((ROOT / "notebooks" / "solutions").glob("[0-9]*.ipynb")),
                         ids=lambda p: p.name[:2])
def test_no_later_cell_rebinds_an_answer(master):
    """The judge runs a student's own cells after the lab's, so an answer that a later cell rebinds (a
    build task's function named like an earlier task's answer) reaches its check as the wrong value."""
    plan = grade.plan_lab(master)
    cells = [c for c in nbformat.read(master, as_version=4).cells if c.cell_type == "code"]
    for task in plan.tasks:
        for name in task.answers:
            binders = [c for c in cells if name in _bound_names(c.source)]
            assert len(binders) == 1 and "solution" in binders[0].metadata.get("tags", []), (task.call, name)


def _bound_names(source: str) -> set[str]:
    """Names a cell binds at its top level (def, class, assignment, import)."""
    import ast

    tree = ast.parse(grade._python(source))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("master", sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb")),
                         ids=lambda p: p.name[:2])
def test_no_lab_cell_needs_a_name_only_the_students_cells_define(master):
    # The judge runs the master's lab cells without the student's: a lab cell that calls the student's
    # function (a demo after a build task) raises there and flags every submission for review. Such a
    # cell belongs to the student (tagged solution, its text in metadata.student), as check cells do.
    import ast

    plan = grade.plan_lab(master)
    nb = nbformat.read(master, as_version=4)
    students = set().union(*[_bound_names(c.source) for c in nb.cells
                             if c.cell_type == "code" and grade.is_solution_cell(c)] or [set()])
    labs = set().union(*[_bound_names(s) for s in plan.lab_cells] or [set()])
    for source in plan.lab_cells:
        used = {n.id for n in ast.walk(ast.parse(grade._python(source))) if isinstance(n, ast.Name)}
        assert not used & (students - labs), (master.name, source[:80])
