"""The student release: what it holds, what it leaves out, and that no answer of the masters is in it.

Its notebooks run top to bottom in tests/test_notebooks.py (the student notebooks executed there are
the release's, on the release's copy of the package).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from e2ee_lab.labs import assign
from e2ee_lab.labs.instructor import leaks, release

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("student") / "release"
    release.build(dest)
    return dest


def test_the_release_holds_the_package_notebooks_data_and_readme_and_nothing_for_instructors(tree):
    assert (tree / "e2ee_lab" / "__init__.py").is_file() and (tree / "README.md").is_file()
    assert (tree / "data" / "captures" / "e2ee" / "capture.pcap").is_file()
    assert (tree / "LICENSE").is_file() and (tree / "LICENSE-CONTENT.md").is_file()
    assert not (tree / "notebooks" / "solutions").exists()
    assert not (tree / "INSTRUCTORS.md").exists()
    assert not (tree / "e2ee_lab" / "labs" / "instructor").exists()
    assert not list(tree.rglob("*solution*.ipynb")) and not (tree / "tests").exists()
    names = sorted(p.name for p in (tree / "notebooks").glob("*.ipynb"))
    assert names == sorted(p.name for p in SOLUTIONS.glob("[0-9]*.ipynb"))
    for name in names:
        shipped = nbformat.read(tree / "notebooks" / name, as_version=4)
        assert assign.cell_view(shipped) == assign.cell_view(nbformat.read(ROOT / "notebooks" / name, as_version=4))
        assert not assign.leaked_solution_marks(shipped)
        assert not any(c.get("outputs") for c in shipped.cells)


def test_no_answer_of_the_masters_or_the_instructor_module_is_in_the_release(tree):
    found = leaks.answers(SOLUTIONS)
    labs = {a.lab for a in found}
    assert len(found) >= 30 and labs >= {f"{n:02d}" for n in range(11)} - {"06"}, sorted(labs)
    fix, known = leaks.open_findings(leaks.scan(tree, found))
    assert fix == [], "\n".join(map(str, fix))
    # every known open answer is still there (remove it from KNOWN_OPEN once it is closed)
    assert {(f.answer.lab, f.answer.task) for f in known} == set(leaks.KNOWN_OPEN)


def _shipped_header_comment() -> str:
    """Issue 14's leak of lab 03 Task 1 (a comment naming the KID and CTR), for today's shipped header."""
    from e2ee_lab.crypto.sframe import decode_header
    from e2ee_lab.labs import sframe

    kid, ctr, _ = decode_header(bytes.fromhex(sframe.task1_header()))
    return f'TASK1_HEADER = "{sframe.task1_header()}"  # KID {kid} in the config byte, CTR {ctr} in two\n'


HISTORIC = {  # the leaks issue 14 names, as they were written in the check modules
    "e2ee_lab/labs/sframe.py": _shipped_header_comment()
                               + '    expected = overhead(TASK3_SUITE, TASK3_KID, TASK3_CTR)  # 1 + 2 + 3 + 10 = 16\n',
    "e2ee_lab/labs/overhead.py": "    expected = core_share_pct()  # (3*30*6 + 3*50*2) µs per second = 840 µs/s = 0.084 %\n",
    "e2ee_lab/labs/malicious.py": 'DESIGNED = {"tamper-tag": "SFrame auth tag", "replay": "replay window", '
                                  '"replay-same-seq": "SRTP replay check",\n            "replay-rekey": "unknown KID", '
                                  '"inject": "SFrame auth tag", "downgrade-inject": "unknown KID",\n            "drop": "none"}\n',
    "e2ee_lab/labs/pitfalls.py": '_TASK1_SECRET = b"caption 14:02 BOB: I resign on Monday, tell no one"\n'
                                 '_ANSWERS = {"shared_group_key": "one-sender", "crash_restore": "persist-ctr"}\n',
    "e2ee_lab/labs/capture.py": 'def check_entropy_statement(choice):\n    if choice == "payload-only":\n        return 1\n',
}


def test_the_scan_finds_the_leaks_issue_14_named(tmp_path):
    for rel, text in HISTORIC.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = leaks.scan(tmp_path, leaks.answers(SOLUTIONS))
    hits = {(f.path, f.answer.lab, f.answer.task) for f in found}
    assert ("e2ee_lab/labs/sframe.py", "03", "Task 1") in hits  # KID ... CTR ...
    assert ("e2ee_lab/labs/sframe.py", "03", "Task 3") in hits  # = 16
    assert ("e2ee_lab/labs/overhead.py", "08", "Task 4") in hits  # 0.084 and the arithmetic
    assert ("e2ee_lab/labs/malicious.py", "05", "Task 1") in hits  # DESIGNED
    assert ("e2ee_lab/labs/pitfalls.py", "07", "Task 1") in hits  # the secret caption
    assert ("e2ee_lab/labs/pitfalls.py", "07", "Task 4") in hits  # the rule of each pitfall
    assert ("e2ee_lab/labs/capture.py", "02", "Task 2") in hits  # the right option in a comparison


def test_the_release_package_runs_without_the_instructor_module(tree):
    code = ("import e2ee_lab, e2ee_lab.labs, importlib, pkgutil; print(e2ee_lab.__file__)\n"
            "[importlib.import_module(m.name) for m in pkgutil.iter_modules(e2ee_lab.labs.__path__, 'e2ee_lab.labs.')]\n"
            "from e2ee_lab.labs import answers; print(len(answers._tokens()))\n"
            "try:\n    import e2ee_lab.labs.instructor\nexcept ImportError:\n    print('no instructor module')\n")
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tree, timeout=300)
    assert out.returncode == 0, out.stderr
    path, tokens, last = out.stdout.split()[0], int(out.stdout.split()[1]), out.stdout.strip().splitlines()[-1]
    assert Path(path).is_relative_to(tree) and tokens == len(json.loads((ROOT / "e2ee_lab/labs/sealed.json").read_text()))
    assert last == "no instructor module"


def test_make_student_release_writes_a_release_and_refuses_a_full_folder(tmp_path, capsys):
    dry = subprocess.run(["make", "-n", "student-release", f"DEST={tmp_path / 'r'}"], cwd=ROOT, capture_output=True,
                         text=True)
    assert "e2ee_lab.labs.instructor.release" in dry.stdout
    assert release.main([str(tmp_path / "r")]) == 0
    assert release.main([str(tmp_path / "r")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_a_dict_answer_is_found_by_its_key_not_by_a_word_ending_in_it():
    answer = leaks.Answer("10", "Task 3", "master answer", {"e": "never"})
    (needle,) = [n for n in leaks.needles(answer, set()) if "pairs" in n.how]
    assert needle.pattern.search('recovery = {"e": "never"}') and needle.pattern.search("e -> never")
    assert not needle.pattern.search("recovered_after_s: float | None  # None: never")
