"""Every answer the masters and the instructor module contain, and a scan of a tree for them.

:func:`answers` collects them programmatically: the literal (or constant-arithmetic) values that the
masters' answer cells (tagged ``solution``) assign, the returned expressions of answer functions,
and every sealed answer of :mod:`.answers`. :func:`scan` looks for each in the files of a tree
(a student release) in the forms answers leaked in before: the text of a long string answer; a
number with enough digits to be telling, or a small one after ``=`` in a comment (``# ... = 16``);
a tuple's numbers in order on one line (``# KID 10 ... CTR 500``); a dict's key next to its value
(``"shared_group_key": "A"``); the arithmetic that computes an answer (``3 * 30 * 6 + ...``); a
set or dict literal equal to an answer; and, inside a check function, a comparison with a constant
equal to an answer (``if letter != "b"``). A long string that is one of several options in a
tuple or list (shown to every student) is not an answer by itself. The scan is a net for the known
shapes of a leak, not a proof that none exists.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from e2ee_lab.labs.assign import is_solution_cell

TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".json", ".yml", ".yaml", ".txt", ".csv", ".js", ".html", ".toml", ".cfg", ""}
MIN_TEXT = 12  # characters of a string answer searched for as text
#: Places where an answer's shape shows for another reason: (lab, task, file) -> why it is no leak.
ALLOWED = {
    ("05", "Task 1", "e2ee_lab/attacks/measure.py"): "CHECKS names the receiver's drop reasons: the reason "
    "'replay' is called 'replay window', the vocabulary of every answer, not which attack meets it",
}
#: Answers known to ship, each with the reason and who closes it (reported by the release test).
#: Empty since lab 01's confidential line became per student (e2ee_lab/media/scene.py fills a template).
KNOWN_OPEN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True, eq=False)
class Answer:
    """One answer: its lab and task, where it was found, its value and the expression that made it."""

    lab: str
    task: str
    origin: str
    value: Any
    expression: str = ""
    home: tuple[str, ...] = ()  # the lab's check modules and student notebook, relative to the tree


@dataclass(frozen=True, eq=False)
class Finding:
    """An answer found in a file of the scanned tree."""

    path: str
    line: int
    answer: Answer
    how: str

    def __str__(self) -> str:
        return (f"{self.path}:{self.line}: lab {self.answer.lab} {self.answer.task} ({self.answer.origin}) "
                f"{self.how}")


# --- collecting the answers -----------------------------------------------------------------------

_TASK = re.compile(r"^#{2,4}\s*Task\s+(\d+)", re.MULTILINE)
_SAFE = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.operator, ast.unaryop,
         ast.Load, ast.expr_context)


def _constant(node: ast.AST) -> tuple[bool, Any]:
    """(True, value) when ``node`` is literal data or arithmetic on literals, else (False, None)."""
    if not all(isinstance(n, _SAFE) for n in ast.walk(node)):
        return False, None
    try:
        return True, eval(compile(ast.Expression(node), "<answer>", "eval"), {"__builtins__": {}})  # noqa: S307
    except Exception:  # noqa: BLE001 - 1/0 or a huge power: not an answer we can search for
        return False, None


def _python(source: str) -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _cell_answers(source: str, lab: str, task: str, home: tuple[str, ...]) -> Iterator[Answer]:
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return
    for node in tree.body:
        if isinstance(node, ast.Assign):
            ok, value = _constant(node.value)
            if ok:
                expr = ast.unparse(node.value)
                yield Answer(lab, task, "master answer cell", value,
                             expr if not isinstance(node.value, ast.Constant) else "", home)
        elif isinstance(node, ast.FunctionDef):
            for ret in (n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None
                        and not isinstance(n.value, (ast.Constant, ast.Name))):  # `return True` tells nothing
                yield Answer(lab, task, "master answer function", None, ast.unparse(ret.value), home)


_LAB_MODULE = re.compile(r"from e2ee_lab\.labs import (\w+) as lab\b")


def homes(solutions: Path) -> dict[str, tuple[str, ...]]:
    """Per lab, its check modules and its student notebook (paths relative to a tree)."""
    out = {}
    for path in sorted(Path(solutions).glob("[0-9]*.ipynb")):
        text = path.read_text()
        out[path.name[:2]] = tuple(f"e2ee_lab/labs/{m}.py" for m in sorted(set(_LAB_MODULE.findall(text)))) \
            + (f"notebooks/{path.name}",)
    return out


def master_answers(solutions: Path) -> list[Answer]:
    """The answers assigned by the answer cells of every master in ``solutions``."""
    found, where = [], homes(solutions)
    for path in sorted(Path(solutions).glob("[0-9]*.ipynb")):
        task = "before the tasks"
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                task = next((f"Task {int(n)}" for n in _TASK.findall(cell.source)), task)
            elif cell.cell_type == "code" and is_solution_cell(cell):
                found += _cell_answers(cell.source, path.name[:2], task, where[path.name[:2]])
    return found


def instructor_answers(solutions: Path) -> list[Answer]:
    """The instructor module's answers: every whole sealed answer (not the per-item seals, which are
    options, nor the numbers sealed by bucket, which the masters hold) and the designed checks."""
    from e2ee_lab.labs.instructor.answers import DESIGNED, sealed_answers

    found, where = [], homes(solutions)
    for key, (value, _) in sealed_answers().items():
        parts = key.split("/")
        if len(parts) == 2 and not (isinstance(value, tuple) and value[:1] == ("~",)):
            found.append(Answer(parts[0], f"Task {parts[1].lstrip('T')}", f"sealed {key}", value, "",
                                where.get(parts[0], ())))
    found.append(Answer("05", "Task 1", "instructor DESIGNED", dict(DESIGNED), "", where.get("05", ())))
    return found


def answers(solutions: Path) -> list[Answer]:
    """Every answer the masters and the instructor module contain."""
    return master_answers(solutions) + instructor_answers(solutions)


# --- needles ----------------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _number_forms(x: float) -> set[str]:
    """How a telling number may be written: an integer of 100 or more, or a fraction written with
    at least two significant digits in four or more characters (0.084, 5.16, 994.2)."""
    forms: set[str] = set()
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return forms
    if float(x).is_integer():
        if abs(x) >= 100:
            n = int(x)
            forms |= {str(n), f"{n:,}", f"{n:_}"}
        return forms
    for digits in (1, 2, 3, 4):
        text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
        significant = text.replace("-", "").replace(".", "").lstrip("0")
        if len(significant) >= 2 and len(text) >= 4:
            forms.add(text)
    return forms


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return [v for item in value for v in _scalars(item)]
    if isinstance(value, dict):
        return [v for item in value.values() for v in _scalars(item)]
    return [value]


def _option_strings(tree: ast.AST) -> set[str]:
    """String constants that are one of several options: in a tuple or list literal of a lab module,
    or an option id of a :class:`~e2ee_lab.labs.answers.Choices`."""
    options: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) >= 2:
            options |= {_squash(e.value) for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Choices":
            for arg in (a for a in node.args if isinstance(a, ast.Dict)):
                options |= {_squash(k.value) for k in arg.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return options


def _text_lines(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        return [line for cell in nb.get("cells", []) for line in "".join(cell.get("source", "")).splitlines()]
    return path.read_text(errors="ignore").splitlines()


@dataclass(frozen=True, eq=False)
class _Needle:
    """A compiled pattern for one answer: where it applies and what a hit means."""

    answer: Answer
    pattern: re.Pattern
    how: str
    home_only: bool = False
    py_only: bool = False
    comment_only: bool = False
    squashed: bool = False  # matched against lower-case text with whitespace collapsed

    def lines(self, rel: str, texts: dict[bool, tuple[list[str], str]]) -> Iterator[Finding]:
        if (self.home_only and rel not in self.answer.home) or (self.py_only and not rel.endswith(".py")):
            return
        source, text = texts[self.squashed]
        if not self.pattern.search(text):
            return
        for i, line in enumerate(source):
            part = line.split("#", 1)[1] if self.comment_only and "#" in line else ("" if self.comment_only else line)
            if self.pattern.search(part):
                yield Finding(rel, i + 1, self.answer, self.how)


def _compact(expression: str) -> re.Pattern:
    return re.compile(r"\s*".join(re.escape(ch) for ch in re.sub(r"\s+", "", expression)))


def needles(answer: Answer, options: set[str]) -> list[_Needle]:
    """The patterns that would show ``answer`` in a file (see the module docstring)."""
    value = answer.value.decode(errors="replace") if isinstance(answer.value, bytes) else answer.value
    out = []
    if isinstance(value, str) and len(value) >= MIN_TEXT and _squash(value) not in options:
        out.append(_Needle(answer, re.compile(re.escape(_squash(value))), f"contains the text {value!r}", squashed=True))
    if answer.expression and (len(re.findall(r"\*\*|[-+*/]", answer.expression)) >= 2
                              or answer.origin == "master answer function"):
        out.append(_Needle(answer, _compact(answer.expression), f"spells out {answer.expression}",
                           py_only=answer.origin == "master answer function"))
    numbers = [v for v in _scalars(value) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not isinstance(value, (list, tuple, set, dict)) and len(numbers) == 1:
        n = numbers[0]
        for form in _number_forms(n):
            out.append(_Needle(answer, re.compile(rf"(?<![\w.]){re.escape(form)}(?![\w])"), f"contains the number {form}"))
        if isinstance(n, int) and abs(n) < 100:
            out.append(_Needle(answer, re.compile(rf"(?:=|is)\s*{n}(?![\w.])"), f"says = {n} in a comment",
                               home_only=True, py_only=True, comment_only=True))
    if isinstance(value, (tuple, list)) and len(numbers) >= 2 and len(numbers) == len(value):
        pattern = r".*?".join(rf"(?<![\w.]){n}(?![\w.])" for n in numbers)
        out.append(_Needle(answer, re.compile(pattern), f"has {tuple(numbers)} in order on one line", home_only=True))
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool):
                pattern = rf"(?<![\w]){re.escape(k)}[\"']?\s*(?::|=|->|→)\s*[\"']?{re.escape(str(v))}(?![\w])"
                out.append(_Needle(answer, re.compile(pattern, re.I), f"pairs {k!r} with {v!r}"))
    return out


def _literals(tree: ast.AST) -> tuple[list[tuple[int, Any]], list[tuple[int, str, Any]]]:
    """(line, value) of every set, dict and 2+ tuple literal; (line, function, value) of every constant a
    ``check_*`` function compares with."""
    literals, compared = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Set, ast.Dict)) or (isinstance(node, ast.Tuple) and len(node.elts) >= 2):
            ok, value = _constant(node)
            if ok:
                literals.append((node.lineno, value))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("check_"):
            for cmp in (n for n in ast.walk(node) if isinstance(n, ast.Compare)):
                compared += [(cmp.lineno, node.name, side.value) for side in [cmp.left, *cmp.comparators]
                             if isinstance(side, ast.Constant)]
    return literals, compared


def _ast_findings(rel: str, tree: ast.AST, found: list[Answer]) -> Iterator[Finding]:
    literals, compared = _literals(tree)
    for answer in found:
        value = answer.value
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, (set, dict, tuple)):
            yield from (Finding(rel, line, answer, "has a literal equal to the answer")
                        for line, literal in literals if type(literal) is type(value) and literal == value)
        yield from (Finding(rel, line, answer, f"compares with {value!r} in {name}")
                    for line, name, constant in compared if type(constant) is type(value) and constant == value)


def files(root: Path) -> Iterator[Path]:
    """The text files under ``root``."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
            yield path


def scan(root: str | Path, found: Iterable[Answer]) -> list[Finding]:
    """Every place under ``root`` where one of ``found`` shows (see the module docstring)."""
    root, found = Path(root), list(found)
    options: set[str] = set()
    for path in files(root):
        if path.suffix == ".py" and path.parent.name == "labs":
            try:
                options |= _option_strings(ast.parse(path.read_text()))
            except SyntaxError:
                pass
    every = [n for answer in found for n in needles(answer, options)]
    out: list[Finding] = []
    for path in files(root):
        rel = str(path.relative_to(root))
        try:
            lines = _text_lines(path)
        except (ValueError, UnicodeDecodeError):
            continue
        squashed = [_squash(line) for line in lines]
        texts = {False: (lines, "\n".join(lines)), True: (squashed, "\n".join(squashed))}
        for needle in every:
            out += needle.lines(rel, texts)
        if path.suffix == ".py":
            try:
                tree = ast.parse(path.read_text())
            except SyntaxError:
                continue
            out += _ast_findings(rel, tree, found)
    out = [f for f in out if (f.answer.lab, f.answer.task, f.path) not in ALLOWED]
    unique = {(f.path, f.line, f.how, f.answer.lab, f.answer.task): f for f in out}
    return sorted(unique.values(), key=lambda f: (f.path, f.line, f.how))


def open_findings(findings: Iterable[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(findings to fix, findings of :data:`KNOWN_OPEN` answers)."""
    fix, known = [], []
    for f in findings:
        (known if (f.answer.lab, f.answer.task) in KNOWN_OPEN else fix).append(f)
    return fix, known
