"""``e2ee-lab doctor``: one line per item, exit 1 only when a lab cannot run; every environment
variable the package reads is in its report, in config.ENVIRONMENT and in the README."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from e2ee_lab import doctor
from e2ee_lab.config import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
ITEMS = ["python", "packages", "loopback", "capture", "chromium", "wrtc", "tshark", "netns", "cores", "memory"]


def _report() -> tuple[int, list[str]]:
    out = io.StringIO()
    status = doctor.report(out)
    return status, out.getvalue().splitlines()


def test_one_line_per_item_then_the_environment_then_a_verdict():
    status, lines = _report()
    items = [line.split()[1] for line in lines[: len(ITEMS)]]
    assert items == ITEMS
    assert all(line.split()[0] in ("ok", "warn", "FAIL") for line in lines[: len(ITEMS)])
    env = [line.split()[1] for line in lines[len(ITEMS):-1]]
    assert env == list(ENVIRONMENT)
    failed = [line.split()[1] for line in lines[: len(ITEMS)] if line.startswith("FAIL")]
    assert status == (1 if failed else 0) and lines[-1].startswith("FAIL" if failed else "ok")


def test_the_required_items_pass_on_the_test_machine():
    found = {item.name: item for item in doctor.items()}
    for name in ("python", "packages", "loopback"):
        assert found[name].status == "ok", found[name]


def test_without_capture_rights_or_chromium_it_warns_and_still_passes(monkeypatch):
    monkeypatch.setenv("E2EE_LAB_NO_SNIFF", "1")
    monkeypatch.setenv("E2EE_LAB_CHROMIUM", "/nonexistent/chromium")
    found = {item.name: item for item in doctor.items()}
    assert found["capture"].status == "warn" and "recordings" in found["capture"].detail
    assert found["chromium"].status == "warn" and "recorded" in found["chromium"].detail
    assert "'1'" in "\n".join(doctor.environment())


def test_wrtc_is_named_with_its_version_or_warned_about(monkeypatch):
    import importlib.metadata as md

    found = {item.name: item for item in doctor.items()}
    try:
        version = md.version("wrtc")
    except md.PackageNotFoundError:
        version = None
    if version is not None:
        assert found["wrtc"].status == "ok" and found["wrtc"].detail.startswith(f"wrtc {version} ")
    monkeypatch.setitem(sys.modules, "wrtc", None)  # import wrtc now fails
    item = {item.name: item for item in doctor.items()}["wrtc"]
    assert item.status == "warn" and item.detail.startswith("wrtc is not installed") and "recorded" in item.detail


def test_a_failing_item_makes_the_exit_status_1(monkeypatch):
    monkeypatch.setattr(doctor, "MIN_FREE_MB", 10**12)  # more memory than any machine has
    monkeypatch.setitem(doctor.PINNED, "aiortc", "0.0.0")
    status, lines = _report()
    assert status == 1 and lines[-1].startswith("FAIL: packages, memory")


def test_the_command_line_prints_the_report_and_exits_with_its_status():
    out = subprocess.run([sys.executable, "-m", "e2ee_lab.cli", "doctor"], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, E2EE_LAB_NO_SNIFF="1"))
    assert out.returncode == _report()[0]
    assert out.stdout.splitlines()[0].split()[1] == "python"


def test_every_environment_variable_the_package_reads_is_documented():
    read = set()
    for path in (ROOT / "e2ee_lab").rglob("*.py"):
        read |= set(re.findall(r"[\"'](E2EE_LAB_[A-Z_]+)[\"']", path.read_text()))
    readme = (ROOT / "README.md").read_text()
    assert read == set(ENVIRONMENT), read ^ set(ENVIRONMENT)
    assert [name for name in ENVIRONMENT if f"`{name}`" not in readme] == []


def test_lab_00_starts_with_the_doctor():
    for folder in ("notebooks", "notebooks/solutions"):
        nb = nbformat.read(ROOT / folder / "00_overview.ipynb", as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert "doctor.report()" in first.source


def test_temporary_folders_of_a_kernel_are_gone_when_it_exits(tmp_path):
    code = ("from e2ee_lab.config import scratch_dir\n"
            "d = scratch_dir('e2ee-lab-test-'); (d / 'capture.pcap').write_bytes(b'x'); print(d)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, E2EE_LAB_TMP=str(tmp_path)))
    made = Path(out.stdout.strip())
    assert out.returncode == 0 and made.parent == tmp_path and made.name.startswith("e2ee-lab-test-")
    assert not made.exists()
