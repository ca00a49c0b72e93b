"""The package's import contracts: one-way layers, checked on the source with ``ast``.

Every ``import`` and ``from ... import`` in every module counts, wherever it is: at module level,
inside a function (a lazy import still makes the module depend on the other at run time), and
under ``if TYPE_CHECKING:`` (a type still names the layer it comes from). ``importlib.import_module``
with a string literal counts too; with a computed name it is only allowed where
:data:`DYNAMIC_IMPORTS` says why (the stack registry finds the stacks, the attacks package loads its
exports, and the media package its own, on first use), so a dynamic import cannot hide a dependency.

The contracts (DESIGN.md §3, issue 18):

- no import cycle among the package's modules;
- the packages' layers (:data:`PACKAGE_LAYERS`, the table of README.md's Layout): a module imports
  its own layer and those below, never one above (another stack than the lab's is a layer above
  ``call``; a new stack package belongs in a layer here, or the next contract still holds for it);
- the shared layers (:data:`FOUNDATION`) import nothing from ``labs`` or from a stack built on
  them: ``webrtc``, ``browser`` and every package that registers a stack (a ``stack.py``, found as
  :func:`e2ee_lab.call.stacks.discover` finds them), except the lab's own ``call``;
- ``webrtc`` imports nothing from ``browser``;
- the sans-I/O core (``crypto``, ``rtp``, ``sfu`` but its asyncio edge ``sfu.server``) imports
  nothing from ``transport``, ``capture``, ``call`` or the stacks, and no event loop, socket,
  thread, clock or subprocess (:data:`NO_IO`);
- ``analysis`` flows one way (:data:`ANALYSIS_LAYERS`): decoding → views → tables → figures →
  the ``analyze`` command; a module may import its own layer and those below.

The last tests run the checker on a temporary package with deliberate violations and require each
to be reported, so the contracts cannot pass by checking nothing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "e2ee_lab"

PACKAGE_LAYERS = (  # lowest first, as README.md's Layout table; "" is the package's own __init__ (the face)
    ("config", "media"),
    ("crypto", "rtp", "sfu"),
    ("transport", "capture", "sfu.server", "interop"),
    ("call", "analysis.sfu_view"),
    ("analysis", "attacks", "bench"),
    ("webrtc",),
    ("browser",),
    ("janus", "native"),  # Janus as the SFU; a libwebrtc member: namespace children reusing browser.isolation
    ("labs", "reports", "cli", "doctor", ""),
)
FOUNDATION = ("config", "media", "crypto", "rtp", "sfu", "transport", "capture", "interop", "call",
              "analysis", "attacks", "bench")
SANS_IO_CORE = ("crypto", "rtp", "sfu")
SANS_IO_EDGE = ("sfu.server",)  # the SFU's asyncio edge: outside the core
NO_IO = ("asyncio", "socket", "selectors", "threading", "concurrent", "multiprocessing", "subprocess",
         "time", "scapy", "pylibsrtp")
ANALYSIS_LAYERS = (  # lowest first
    ("analysis.reader", "analysis.offline", "analysis.sfu_view", "analysis.loss_recovery"),
    ("analysis.views", "analysis.view_speech"),
    ("analysis.leakage", "analysis.threat_model"),
    ("analysis.plots",),
    ("analysis.command",),
)
DYNAMIC_IMPORTS = {  # module -> why it may import a computed module name
    "call.stacks": "discover() imports every e2ee_lab/<package>/stack.py: the stacks register themselves",
    "attacks": "the package's exports load from its submodules on first use (PEP 562), not the call stack",
    "media": "the package's exports load from its submodules on first use (PEP 562), not PyAV",
    "labs.instructor.judge": "the grader's judge imports every lab module before any student code runs",
    "labs.instructor.grade": "the grader imports the lab modules a master's cells name, to read their checks",
}


@dataclass(frozen=True)
class Import:
    """One import statement: who imports what (a module of the package, or an external top name)."""

    module: str  # importer, relative to the package ("call.run")
    target: str  # imported module relative to the package ("webrtc.call"), or "<external>.name"
    line: int
    lazy: bool  # inside a function

    def __str__(self) -> str:
        where = " (inside a function)" if self.lazy else ""
        return f"{self.module or '__init__'}:{self.line} imports {self.target or 'the package __init__'}{where}"


# --- the checker -------------------------------------------------------------------------------------


def modules(root: Path, package: str) -> dict[str, Path]:
    """Module name relative to ``package`` ("" for the package itself) -> its file."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root / package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _relative(name: str, package: str) -> str | None:
    """``name`` (absolute) relative to ``package``: "" for the package itself, None if outside it."""
    if name == package:
        return ""
    return name[len(package) + 1:] if name.startswith(package + ".") else None


def _within(name: str, package: str, known: dict[str, Path]) -> str | None:
    """The module of the package that importing ``name`` loads (its longest known prefix), or None."""
    relative = _relative(name, package)
    if relative is None:
        return None
    parts = relative.split(".") if relative else []
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, known: dict[str, Path], package: str) -> list[str]:
    """Absolute names an import brings in; ``from X import Y`` names X.Y when Y is a module, else X."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    source = node.module or ""
    if node.level:  # relative to the importer's package, one level up per extra dot
        base = [package, *module.split(".")] if module else [package]
        if known[module].name != "__init__.py":
            base.pop()
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    return [f"{source}.{alias.name}" if _relative(f"{source}.{alias.name}", package) in known else source
            for alias in node.names]


def _dynamic(node: ast.AST) -> ast.expr | None:
    """The argument of ``importlib.import_module(...)`` / ``__import__(...)``, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return node.args[0] if name in ("import_module", "__import__") else None


def imports(root: Path, package: str) -> tuple[list[Import], list[Import]]:
    """Every import in the package, and the computed-name dynamic imports (target "<computed>")."""
    known = modules(root, package)
    found, dynamic = [], []

    def visit(node: ast.AST, module: str, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names = []
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                names = _targets(child, module, known, package)
            elif (arg := _dynamic(child)) is not None:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names = [arg.value]
                else:
                    dynamic.append(Import(module, "<computed>", child.lineno, inner))
            for name in names:
                inside = _within(name, package, known)
                target = inside if inside is not None else "<external>." + name.split(".")[0]
                if target != module:
                    found.append(Import(module, target, child.lineno, inner))
            visit(child, module, inner)

    for module, path in known.items():
        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), module, False)
    return found, dynamic


def cycles(found: list[Import]) -> list[list[str]]:
    """The import cycles: strongly connected groups of two or more modules (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if not imp.target.startswith("<external>"):
            graph.setdefault(imp.module, set()).add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def _under(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def stack_packages(root: Path, package: str) -> tuple[str, ...]:
    """Packages that register a stack (an ``<package>/<name>/stack.py``), the lab's ``call`` too."""
    return tuple(sorted(p.parent.name for p in (root / package).glob("*/stack.py")))


def forbidden(found: list[Import], importers: tuple[str, ...], targets: tuple[str, ...],
              *, except_importers: tuple[str, ...] = ()) -> list[Import]:
    """Imports by a module under ``importers`` (not under ``except_importers``) of a module under
    ``targets`` (external top-level names as ``<external>.name``)."""
    return [i for i in found if _under(i.module, importers) and not _under(i.module, except_importers)
            and _under(i.target, targets)]


def upward(found: list[Import], layers: tuple[tuple[str, ...], ...]) -> list[Import]:
    """Imports from a module of one layer into a module of a higher layer (a module belongs to the
    layer of its longest listed prefix; modules under no layer are not judged)."""
    def level(name: str) -> int | None:
        entries = [(len(entry), n) for n, layer in enumerate(layers) for entry in layer
                   if name == entry or (entry and name.startswith(entry + ".")) or (not entry and not name)]
        return max(entries)[1] if entries else None

    return [i for i in found if (a := level(i.module)) is not None and (b := level(i.target)) is not None
            and b > a]


def violations(root: Path, package: str) -> dict[str, list]:
    """Every contract of the module docstring, by name, with what breaks it (empty: it holds)."""
    found, dynamic = imports(root, package)
    stacks = tuple(s for s in stack_packages(root, package) if s != "call")
    core_forbidden = ("transport", "capture", "call", "webrtc", "browser", "labs", *stacks,
                      *(f"<external>.{name}" for name in NO_IO))
    return {
        "no import cycle": cycles(found),
        "the packages' layers": upward(found, PACKAGE_LAYERS),
        "the shared layers import no stack above call, and no lab": forbidden(
            found, FOUNDATION, ("webrtc", "browser", "labs", *stacks)),
        "webrtc imports nothing from browser": forbidden(found, ("webrtc",), ("browser", "labs")),
        "the sans-I/O core does no I/O and imports no edge": forbidden(
            found, SANS_IO_CORE, core_forbidden, except_importers=SANS_IO_EDGE),
        "analysis flows one way": upward(found, ANALYSIS_LAYERS),
        "dynamic imports only where allowed": [d for d in dynamic if d.module not in DYNAMIC_IMPORTS],
    }


# --- the package keeps its contracts -------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken() -> dict[str, list]:
    return violations(ROOT, PACKAGE)


CONTRACTS = ("no import cycle", "the packages' layers", "the shared layers import no stack above call, and no lab",
             "webrtc imports nothing from browser", "the sans-I/O core does no I/O and imports no edge",
             "analysis flows one way", "dynamic imports only where allowed")


@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_package_keeps_its_import_contract(broken, contract):
    assert broken[contract] == [], "\n".join(map(str, broken[contract]))


def test_the_checker_sees_the_package():
    found, dynamic = imports(ROOT, PACKAGE)
    pairs = {(i.module, i.target) for i in found}
    assert ("call.run", "call.common") in pairs and ("webrtc.call", "call.common") in pairs
    assert ("sfu.server", "<external>.asyncio") in pairs
    assert ("analysis.plots.capture", "analysis.view_speech") in pairs  # a lazy import counts
    assert ("analysis.plots.keys", "crypto.keys.timeline") in pairs  # a TYPE_CHECKING import counts
    assert {d.module for d in dynamic} == set(DYNAMIC_IMPORTS)
    assert {"call", "webrtc", "browser"} <= set(stack_packages(ROOT, PACKAGE))


# --- and the checker catches each kind of violation ----------------------------------------------------


VIOLATING_TREE = {
    "__init__.py": "",
    "call/__init__.py": "",
    "call/stack.py": "",
    "call/run.py": "from pkg.call import common\n\ndef run():\n    from pkg.webrtc import call  # lazy\n",
    "call/common.py": "",
    "webrtc/__init__.py": "",
    "webrtc/stack.py": "",
    "webrtc/call.py": "from ..browser import page\n",
    "browser/__init__.py": "",
    "browser/page.py": "",
    "janus/__init__.py": "",
    "janus/stack.py": "from pkg.call.common import run\n",
    "crypto/__init__.py": "",
    "crypto/sframe.py": "import asyncio\nfrom pkg.transport import udp\n",
    "rtp/__init__.py": "",
    "rtp/packetizer.py": "import time\n",
    "sfu/__init__.py": "",
    "sfu/core.py": "from pkg.janus import stack\n",
    "sfu/server.py": "import asyncio\nfrom pkg.transport import udp\n",
    "transport/__init__.py": "",
    "transport/udp.py": "def handshake():\n    from pkg.call import run\n",
    "labs/__init__.py": "",
    "labs/keys.py": "",
    "analysis/__init__.py": "",
    "analysis/offline.py": "from pkg.analysis import views\n",
    "analysis/views.py": "from . import offline\n",
    "analysis/plots/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.labs.keys import Timeline\n",
    "analysis/reader.py": "import importlib\nNAME = 'x'\nimportlib.import_module(NAME)\n",
}


@pytest.fixture
def violating(tmp_path) -> dict[str, list]:
    for name, text in VIOLATING_TREE.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return violations(tmp_path, "pkg")


def _pairs(found: list) -> set[tuple[str, str]]:
    return {(i.module, i.target) for i in found}


def test_the_checker_reports_a_cycle(violating):
    assert violating["no import cycle"] == [["analysis.offline", "analysis.views"]]


def test_the_checker_reports_imports_into_a_higher_layer(violating):
    assert _pairs(violating["the packages' layers"]) == {
        ("transport.udp", "call.run"), ("call.run", "webrtc.call"), ("webrtc.call", "browser.page"),
        ("crypto.sframe", "transport.udp"), ("analysis.plots", "labs.keys"),
        ("sfu.core", "janus.stack")}  # janus is a layer of its own now: climbing to it breaks the layers too


def test_the_checker_reports_a_lazy_import_of_a_stack_and_a_lab_import_under_type_checking(violating):
    got = violating["the shared layers import no stack above call, and no lab"]
    assert ("call.run", "webrtc.call") in _pairs(got)  # lazy, inside run()
    assert [i.lazy for i in got if i.module == "call.run"] == [True]
    assert ("analysis.plots", "labs.keys") in _pairs(got)  # under TYPE_CHECKING
    assert ("sfu.core", "janus.stack") in _pairs(got)  # a stack that registers itself: found by its stack.py
    assert ("janus.stack", "call.common") not in _pairs(got)  # a stack may build on call


def test_the_checker_reports_webrtc_importing_browser_by_a_relative_import(violating):
    assert _pairs(violating["webrtc imports nothing from browser"]) == {("webrtc.call", "browser.page")}


def test_the_checker_reports_io_in_the_core_but_not_at_its_edge(violating):
    got = _pairs(violating["the sans-I/O core does no I/O and imports no edge"])
    assert {("crypto.sframe", "<external>.asyncio"), ("crypto.sframe", "transport.udp"),
            ("rtp.packetizer", "<external>.time"), ("sfu.core", "janus.stack")} == got


def test_the_checker_reports_analysis_flowing_upward(violating):
    assert _pairs(violating["analysis flows one way"]) == {("analysis.offline", "analysis.views")}


def test_the_checker_reports_a_computed_import(violating):
    got = violating["dynamic imports only where allowed"]
    assert [(d.module, d.line) for d in got] == [("analysis.reader", 3)]


# --- module size: a long module says why ---------------------------------------------------------------

LONG = 500  # lines (issue 18): a module beyond it carries "Over 500 lines: <reason>" in its docstring


def long_modules_without_a_reason(root: Path, package: str) -> list[str]:
    """The modules of ``package`` over :data:`LONG` lines whose docstring gives no reason for it."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > LONG and "Over 500 lines: " not in (ast.get_docstring(ast.parse(text)) or ""):
            found.append(str(path.relative_to(root)))
    return found


def test_every_module_over_500_lines_says_why():
    assert long_modules_without_a_reason(ROOT, PACKAGE) == []


def test_the_size_check_reports_a_long_module_without_a_reason(tmp_path):
    (tmp_path / "pkg").mkdir()
    body = "x = 1\n" * (LONG + 1)
    (tmp_path / "pkg" / "short.py").write_text('"""Short."""\n' + "x = 1\n" * 10)
    (tmp_path / "pkg" / "long.py").write_text('"""Long."""\n' + body)
    (tmp_path / "pkg" / "explained.py").write_text('"""Long.\n\nOver 500 lines: one table.\n"""\n' + body)
    assert long_modules_without_a_reason(tmp_path, "pkg") == ["pkg/long.py"]
