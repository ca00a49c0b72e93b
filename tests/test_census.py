"""INSTRUCTORS.md says what the masters do: the task census, the goal → task map and the session plans.

The census and the goals are recomputed from the masters' task headings and "Learning goals"
(:mod:`e2ee_lab.labs.instructor.census`); the session plans add up the times the notebooks state.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2ee_lab.labs.instructor import census
from e2ee_lab.labs.overview import read_lab

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (ROOT / "INSTRUCTORS.md").read_text()
DISCUSSION = 10  # minutes per lab done in class


def _section(title: str) -> str:
    start = GUIDE.index(title)
    return GUIDE[start:GUIDE.index("\n## ", start + 1)]


def _table(text: str, header: str) -> list[list[str]]:
    """The rows (cells stripped) of the Markdown table whose header line starts with ``header``."""
    lines = text[text.index(header):].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[`*]", "", text).split()).lower()


@pytest.fixture(scope="module")
def labs() -> list[census.LabCensus]:
    return census.every_lab()


def test_the_census_table_is_the_masters(labs):
    written = ["| " + " | ".join(row) + " |" for row in _table(_section("## Task census"), "| lab | tasks |")]
    computed = [" ".join(r.split()) for r in census.table_rows(labs)]
    assert [" ".join(r.split()) for r in written] == computed


def test_at_least_half_of_the_classified_tasks_need_thinking(labs):
    done = [lab for lab in labs if lab.classified]
    assert {lab.lab for lab in done} >= {"00", "01", "02", "03"}
    tasks = [kind for lab in done for kind in lab.tasks.values()]
    assert sum(kind in census.THINKING for kind in tasks) * 2 >= len(tasks)


def test_every_goal_of_a_classified_lab_maps_to_its_tasks(labs):
    rows = _table(_section("## Task census"), "| lab | goal | tasks |")
    by_lab: dict[str, list[tuple[str, list[int]]]] = {}
    for lab, goal, tasks in rows:
        numbers = [int(n) for n in re.findall(r"T(\d+)", tasks)]
        assert numbers, (lab, goal)
        by_lab.setdefault(lab, []).append((_plain(goal).rstrip("…").strip(), numbers))
    for lab in labs:
        if not lab.classified:
            assert lab.lab not in by_lab, f"lab {lab.lab} is mapped but not classified"
            continue
        mapped = by_lab.get(lab.lab, [])
        goals = [_plain(g) for g in lab.goals]
        assert len(mapped) == len(goals) >= 3, (lab.lab, mapped, goals)
        for (prefix, numbers), goal in zip(mapped, goals):
            assert len(prefix.split()) >= 4 and goal.startswith(prefix), (lab.lab, prefix, goal)
            assert set(numbers) <= set(lab.tasks), (lab.lab, numbers, sorted(lab.tasks))


def test_a_lab_classifies_every_task_or_none(tmp_path):
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    nb = new_notebook(cells=[new_markdown_cell("## Learning goals\n\n- one\n- two\n  and more\n\n## Tasks"),
                             new_markdown_cell("### Task 1 (build) · x"), new_markdown_cell("### Task 2 · y")])
    path = tmp_path / "42_x.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="every task or none"):
        census.lab_census(path)
    nb.cells[2].source = "### Task 2 (guessing) · y"
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="not one of"):
        census.lab_census(path)
    nb.cells[2].source = "### Task 2 (explain) · y"
    nbformat.write(nb, path)
    lab = census.lab_census(path)
    assert lab.classified and lab.goals == ("one", "two and more") and lab.counts()["explain"] == 1


def test_every_session_plan_fits_its_slot():
    rows = _table(_section("## Suggested combinations"), "| plan | session |")
    assert len(rows) >= 4
    minutes = {p.name[:2]: read_lab(p).minutes for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    for plan, session, in_class, stated, slot, _rest, _homework in rows:
        labs = re.findall(r"\d{2}", in_class)
        total = sum(minutes[lab] for lab in labs) + DISCUSSION * len(labs)
        assert int(stated) == total <= int(slot), (plan, session, labs, total)
