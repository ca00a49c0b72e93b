"""Execute every notebook and its solution at ci size, and keep the committed ones stripped.

Student notebooks must run top to bottom (their checks say "not yet" without raising); solution
notebooks must run too, and every check in them must say "correct".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from e2ee_lab.labs import CORRECT, NOT_YET

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9]*.ipynb"))


def _execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    os.environ["E2EE_LAB_SIZE"] = "ci"
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


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


def test_there_are_notebooks_and_each_has_a_solution():
    assert NOTEBOOKS, "no notebooks found"
    assert [p.name for p in NOTEBOOKS] == [p.name for p in SOLUTIONS]


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_runs(path):
    _execute(path)


@pytest.mark.notebook
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: "solutions/" + p.name)
def test_solution_notebook_passes_every_check(path):
    texts = _text_outputs(_execute(path))
    verdicts = [t for t in texts if t.lstrip("✅❌ *").startswith((CORRECT, NOT_YET))]
    assert verdicts, "the solution runs no check"
    assert all(NOT_YET not in t for t in verdicts), verdicts


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.name)
def test_committed_notebook_is_stripped(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"cells {dirty} carry outputs; strip them before committing"
