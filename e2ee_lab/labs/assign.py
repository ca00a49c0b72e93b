"""One source per lab: the student notebook is generated from its master, the solution notebook.

The master of ``notebooks/NN_name.ipynb`` is ``notebooks/solutions/NN_name.ipynb``, the notebook the
tests execute with every task solved. A master cell that must read differently in the student
version carries the tag ``solution`` (:data:`SOLUTION_TAG`) and keeps the student's text in its
metadata under ``student`` (:data:`STUDENT_KEY`); an empty string there means the cell is absent
from the student version. Every other cell is copied as it is. :func:`student_version` applies that
rule; :func:`tag_master` goes the other way, turning an existing (student, solution) pair into a
tagged master by aligning the two cell lists (:mod:`difflib`) and tagging each solution cell that
differs. A student cell with no counterpart in the solution becomes an empty master cell of the
same type, tagged, so the rule above still regenerates it.

The student notebook never carries the solution: the tag and the metadata key are removed, and the
generated file is written without outputs. The command line::

    python -m e2ee_lab.labs.assign generate [NAMES...]  # write notebooks/NN_*.ipynb from the masters
    python -m e2ee_lab.labs.assign convert NAMES...     # tag the masters from existing pairs, then generate
    python -m e2ee_lab.labs.assign check                # exit 1 if a student notebook drifted

NAMES are file names (``05_malicious_sfu.ipynb``), stems, or two-digit numbers; none means every
master present. This module does no notebook execution: it only rewrites cell lists (nbformat v4).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

SOLUTION_TAG = "solution"
STUDENT_KEY = "student"
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"


class AssignError(Exception):
    """A master or a pair that cannot be turned into a student notebook; ``reason`` is fixed."""

    reason = "assign"


class MalformedMaster(AssignError):
    """A ``solution`` cell without a string under ``metadata.student``."""

    reason = "malformed_master"


class MissingNotebook(AssignError):
    """A name that matches no master (or no student notebook, for ``convert``)."""

    reason = "missing_notebook"


# --- master → student --------------------------------------------------------------------------


def is_solution_cell(cell: NotebookNode) -> bool:
    """True when ``cell`` carries the ``solution`` tag."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _without_solution_marks(metadata: dict) -> dict:
    """``metadata`` minus the ``student`` key and the ``solution`` tag (an emptied tag list goes too)."""
    clean = {k: copy.deepcopy(v) for k, v in metadata.items() if k != STUDENT_KEY}
    tags = [t for t in clean.get("tags", []) if t != SOLUTION_TAG]
    if tags:
        clean["tags"] = tags
    else:
        clean.pop("tags", None)
    return clean


def _stripped(cell: NotebookNode) -> NotebookNode:
    """A copy of ``cell`` with no outputs and no execution count (code cells)."""
    out = copy.deepcopy(cell)
    if out.cell_type == "code":
        out.outputs = []
        out.execution_count = None
    return out


def student_cell(cell: NotebookNode) -> NotebookNode | None:
    """The student version of one master cell, or ``None`` when the cell is absent for students.

    Raises :class:`MalformedMaster` for a ``solution`` cell whose ``metadata.student`` is not a string.
    """
    if not is_solution_cell(cell):
        out = _stripped(cell)
        out.metadata = _without_solution_marks(cell.metadata)
        return out
    text = cell.metadata.get(STUDENT_KEY)
    if not isinstance(text, str):
        raise MalformedMaster(f"solution cell {cell.get('id', '?')} has no string under "
                              f"metadata.{STUDENT_KEY} (got {type(text).__name__})")
    if text == "":
        return None
    out = _stripped(cell)
    out.source = text
    out.metadata = _without_solution_marks(cell.metadata)
    return out


def student_version(master: NotebookNode) -> NotebookNode:
    """The student notebook of ``master``: solution cells replaced by (or dropped for) the student text.

    Cell ids, cell metadata other than the solution marks, and the notebook metadata are kept, so the
    two files stay easy to compare; outputs are dropped. ``master`` is not modified.
    """
    out = copy.deepcopy(master)
    out.cells = [c for c in (student_cell(cell) for cell in master.cells) if c is not None]
    return out


def cell_view(nb: NotebookNode) -> list[tuple[str, str]]:
    """What a reader sees of ``nb``: ``(cell_type, source)`` per cell, ignoring outputs, ids, metadata."""
    return [(c.cell_type, c.source) for c in nb.cells]


def drift(student: NotebookNode, master: NotebookNode) -> list[str]:
    """How ``student`` differs from :func:`student_version` of ``master``: one line per differing block.

    An empty list means the two agree; the lines name cell indices and the first line of each cell.
    """
    want, have = cell_view(student_version(master)), cell_view(student)
    lines = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=want, b=have, autojunk=False).get_opcodes():
        if op != "equal":
            first = (want[i1:i2] or have[j1:j2])[0][1].splitlines()[:1]
            lines.append(f"{op}: generated cells {i1}-{i2} vs student cells {j1}-{j2} ({first})")
    return lines


def leaked_solution_marks(student: NotebookNode) -> list[int]:
    """Indices of cells in a student notebook that still carry a solution tag or a ``student`` key."""
    return [i for i, c in enumerate(student.cells)
            if is_solution_cell(c) or STUDENT_KEY in c.get("metadata", {})]


# --- (student, solution) pair → tagged master ----------------------------------------------------


def _untagged(cell: NotebookNode) -> NotebookNode:
    out = _stripped(cell)
    out.metadata = _without_solution_marks(cell.metadata)
    return out


def _tagged(solution_cell: NotebookNode, student_text: str) -> NotebookNode:
    out = _untagged(solution_cell)
    out.metadata.setdefault("tags", []).append(SOLUTION_TAG)
    out.metadata[STUDENT_KEY] = student_text
    return out


def _placeholder(student_cell_: NotebookNode) -> NotebookNode:
    """An empty master cell standing for a student-only cell (same type, tagged, the student's text)."""
    maker = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
             "raw": nbformat.v4.new_raw_cell}[student_cell_.cell_type]
    return _tagged(maker(""), student_cell_.source)


def _merge_block(students: Sequence[NotebookNode], solutions: Sequence[NotebookNode]) -> list[NotebookNode]:
    """Master cells for one differing block: pair cells of the same type in order, tag the rest."""
    merged: list[NotebookNode] = []
    for k in range(max(len(students), len(solutions))):
        stu = students[k] if k < len(students) else None
        sol = solutions[k] if k < len(solutions) else None
        if stu is not None and sol is not None and stu.cell_type == sol.cell_type:
            merged.append(_tagged(sol, stu.source))
            continue
        if sol is not None:
            merged.append(_tagged(sol, ""))
        if stu is not None:
            merged.append(_placeholder(stu))
    return merged


def tag_master(student: NotebookNode, solution: NotebookNode) -> NotebookNode:
    """A master from an existing pair: ``solution``'s cells, tagged where ``student`` reads otherwise.

    Existing solution marks in ``solution`` (and its empty placeholder cells) are dropped first, so
    converting a pair twice gives the same master. The result satisfies
    ``cell_view(student_version(master)) == cell_view(student)``.
    """
    sol_cells = [_untagged(c) for c in solution.cells if not (is_solution_cell(c) and c.source == "")]
    want, have = cell_view(student), [(c.cell_type, c.source) for c in sol_cells]
    master = copy.deepcopy(solution)
    master.cells = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=want, b=have, autojunk=False).get_opcodes():
        if op == "equal":
            master.cells.extend(sol_cells[j1:j2])
        else:
            master.cells.extend(_merge_block(student.cells[i1:i2], sol_cells[j1:j2]))
    return master


# --- files --------------------------------------------------------------------------------------


def read(path: Path) -> NotebookNode:
    """Read an nbformat v4 notebook."""
    return nbformat.read(path, as_version=4)


def write(nb: NotebookNode, path: Path) -> None:
    """Write ``nb`` with every output and execution count stripped (the committed form)."""
    nb = copy.deepcopy(nb)
    nb.cells = [_stripped(c) for c in nb.cells]
    nbformat.validate(nb)
    nbformat.write(nb, path)


def masters(names: Iterable[str] = (), solutions: Path = SOLUTIONS) -> list[Path]:
    """The master notebooks named by ``names`` (file names, stems or ``NN`` numbers); all when empty.

    Raises :class:`MissingNotebook` for a name that matches no master.
    """
    every = sorted(solutions.glob("[0-9]*.ipynb"))
    names = list(names)
    if not names:
        return every
    chosen = []
    for name in names:
        hits = [p for p in every if name in (p.name, p.stem, p.name[:2])]
        if not hits:
            raise MissingNotebook(f"no master notebook {name!r} in {solutions}")
        chosen += hits
    return chosen


def student_path(master: Path) -> Path:
    """Where the student version of ``master`` lives: ``notebooks/`` next to ``notebooks/solutions/``."""
    return master.parent.parent / master.name


def generate(master: Path) -> Path:
    """Write the student notebook of ``master`` and return its path."""
    target = student_path(master)
    write(student_version(read(master)), target)
    return target


def convert(master: Path) -> int:
    """Tag ``master`` from the pair (its student notebook, itself), regenerate the student; count tags.

    Raises :class:`MissingNotebook` when the student notebook is not there.
    """
    student = student_path(master)
    if not student.exists():
        raise MissingNotebook(f"{student} is missing: convert needs the student notebook")
    tagged = tag_master(read(student), read(master))
    write(tagged, master)
    generate(master)
    return sum(is_solution_cell(c) for c in tagged.cells)


# --- command line -------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    paths = masters(args.names, args.solutions)
    if args.command == "generate":
        for p in paths:
            print(f"{generate(p)}  (from {p})")
    elif args.command == "convert":
        for p in paths:
            print(f"{p}: {convert(p)} solution cells tagged; wrote {student_path(p)}")
    else:
        bad = 0
        for p in paths:
            lines = drift(read(student_path(p)), read(p)) if student_path(p).exists() else ["missing"]
            bad += bool(lines)
            print(f"{student_path(p).name}: {'ok' if not lines else '; '.join(lines)}")
        return 1 if bad else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m e2ee_lab.labs.assign {generate,convert,check} [NAMES...]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m e2ee_lab.labs.assign",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("generate", "convert", "check"),
                        help="generate: masters → student notebooks; convert: tag masters from "
                             "existing pairs, then generate; check: report drift, exit 1 if any")
    parser.add_argument("names", nargs="*", help="notebooks (file name, stem or NN); default: all")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS, help="folder of the masters")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except AssignError as exc:
        print(f"error ({exc.reason}): {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
