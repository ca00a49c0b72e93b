"""The student release: what an instructor hands out, with no answer in it.

``make student-release DEST=dir`` (``python -m e2ee_lab.labs.instructor.release DEST``) writes:

- the package ``e2ee_lab/`` without this instructor package (nothing else imports it);
- the student notebooks, generated from the masters (:func:`e2ee_lab.labs.assign.student_version`),
  outputs stripped; no ``notebooks/solutions/``, no ``INSTRUCTORS.md``;
- ``data/``, ``README.md``, the licences, ``pyproject.toml``, ``environment.yml``, ``hub/`` (the
  JupyterHub image) and a small Makefile (``make lab``, ``make doctor``, ``make run``).

It then scans the written tree for every answer of the masters and the instructor module
(:mod:`.leaks`) and fails (exit 1) on any finding outside :data:`~.leaks.KNOWN_OPEN`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from e2ee_lab.labs.assign import read, student_version, write
from e2ee_lab.labs.instructor import leaks

ROOT = Path(__file__).resolve().parents[3]
SOLUTIONS = ROOT / "notebooks" / "solutions"
TOP_FILES = ("README.md", "LICENSE", "LICENSE-CONTENT.md", "pyproject.toml", "environment.yml")
TREES = ("e2ee_lab", "data", "hub")
LEFT_OUT = ("e2ee_lab/labs/instructor/",)
MAKEFILE = """\
# The student release of e2ee-lab. `make lab` opens JupyterLab on notebooks/ (creating .venv and
# installing the package first), `make doctor` checks this machine, `make run` executes every notebook
# at full size into reports/.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.e2ee-lab-installed

.PHONY: lab doctor run

$(PY):
\tpython3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
\t$(PY) -m pip install --quiet --disable-pip-version-check -e .
\ttouch $@

lab: $(STAMP)
\t$(VENV)/bin/jupyter lab notebooks/

doctor: $(STAMP)
\t$(VENV)/bin/e2ee-lab doctor

run: $(STAMP)
\tE2EE_LAB_SIZE=full $(PY) -m e2ee_lab.reports
"""


class LeakFound(Exception):
    """The written release contains an answer; ``reason`` is fixed."""

    reason = "answer_in_release"


def _tracked(root: Path) -> list[str]:
    """Files of ``root`` under version control (every file, without git)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
        return [p for p in out.stdout.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]


def _wanted(rel: str) -> bool:
    if rel.startswith(LEFT_OUT) or "__pycache__" in rel or rel.endswith(".pyc"):
        return False
    return rel in TOP_FILES or rel.split("/", 1)[0] in TREES


def build(dest: str | Path, root: Path = ROOT) -> list[Path]:
    """Write the release into ``dest`` (which must not exist or be empty); return the files written."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty")
    written = []
    for rel in filter(_wanted, _tracked(root)):
        source, target = root / rel, dest / rel
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            written.append(target)
    (dest / "notebooks").mkdir(parents=True, exist_ok=True)
    for master in sorted((root / "notebooks" / "solutions").glob("[0-9]*.ipynb")):
        target = dest / "notebooks" / master.name
        write(student_version(read(master)), target)
        written.append(target)
    (dest / "Makefile").write_text(MAKEFILE)
    written.append(dest / "Makefile")
    return written


def check(dest: str | Path, root: Path = ROOT) -> tuple[list[leaks.Finding], list[leaks.Finding]]:
    """(findings to fix, known open findings) of a written release."""
    return leaks.open_findings(leaks.scan(dest, leaks.answers(root / "notebooks" / "solutions")))


def main(argv: list[str] | None = None) -> int:
    """``python -m e2ee_lab.labs.instructor.release DEST``: write and scan; exit 1 on a leak."""
    parser = argparse.ArgumentParser(prog="python -m e2ee_lab.labs.instructor.release", description=__doc__.split("\n")[0])
    parser.add_argument("dest", type=Path, help="an empty or new folder")
    args = parser.parse_args(argv)
    try:
        written = build(args.dest)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fix, known = check(args.dest)
    print(f"wrote {len(written)} files to {args.dest}")
    for finding in known:
        print(f"known, open: {finding} ({leaks.KNOWN_OPEN[(finding.answer.lab, finding.answer.task)]})")
    for finding in fix:
        print(f"ANSWER IN RELEASE: {finding}", file=sys.stderr)
    return 1 if fix else 0


if __name__ == "__main__":
    sys.exit(main())
