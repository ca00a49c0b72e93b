"""The installable lab: pins, the conda environment, the console script and the two commands."""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# aiortc 1.16.0's private attributes are what the encoded-transform hooks use; these four move together.
PINNED = {"aiortc": "1.16.0", "av": "18.1.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}


def _environment_pip_list() -> list[str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    return [l.strip()[2:] for l in lines[start + 1:] if l.strip().startswith("- ")]


def test_environment_yml_lists_exactly_the_pyproject_dependencies():
    pip_list = _environment_pip_list()
    assert pip_list[-1] == "-e ."
    assert sorted(pip_list[:-1]) == sorted(PYPROJECT["project"]["dependencies"])


def test_environment_yml_uses_conda_forge_and_python_311():
    text = (ROOT / "environment.yml").read_text()
    assert "- conda-forge" in text and "- nodefaults" in text and "python=3.11" in text


@pytest.mark.parametrize("name,version", sorted(PINNED.items()))
def test_webrtc_stack_is_pinned_and_installed_at_the_pin(name, version):
    assert f"{name}=={version}" in PYPROJECT["project"]["dependencies"]
    assert md.version(name) == version


def test_console_script_runs():
    exe = shutil.which("e2ee-lab", path=str(Path(sys.executable).parent))
    assert exe, "the e2ee-lab console script is not installed in this environment"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "bench" in out.stdout


def test_makefile_targets_create_the_venv_and_use_it():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run:", "test:", "lab:"):
        assert re.search(rf"^{target} \$\(STAMP\)", makefile, re.M), target
    assert "python3 -m venv $(VENV)" in makefile


def test_ci_runs_make_test_and_nothing_else():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [l for l in script.splitlines() if l and not l.lstrip().startswith("#")]
    assert commands[-1].strip() == "make test"
    assert "libpcap0.8" in script and "tshark" in script


def test_no_machine_paths_in_tracked_text():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    machine_paths = {f"{ROOT.parent}/", f"{Path.home()}/"} - {"//"}
    bad = []
    for f in files:
        p = ROOT / f
        if p.is_file() and p.suffix in {".py", ".md", ".ipynb", ".toml", ".yml", ".json", ".txt", ""}:
            text = p.read_text(errors="ignore")
            bad += [(f, m) for m in machine_paths if m in text]
    assert not bad, bad


# --- a newcomer reads the README: its two commands are what CI and the reports rely on ----------

README = (ROOT / "README.md").read_text()


def _readme_section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 3)
    return README[start:end if end != -1 else None]


def _make_recipe(target: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    found = re.search(rf"^{target}:[^\n]*\n((?:\t[^\n]*\n)+)", makefile, re.M)
    assert found, f"no `{target}` target in the Makefile"
    return found.group(1)


def test_readme_gives_exactly_the_two_commands():
    block = re.search(r"```\n(.*?)```", _readme_section("The two commands"), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_make_run_writes_the_reports_index_the_readme_names():
    assert "-m e2ee_lab.reports" in _make_recipe("run") and "E2EE_LAB_SIZE=full" in _make_recipe("run")
    assert "E2EE_LAB_SIZE=ci" in _make_recipe("test") and "-m pytest" in _make_recipe("test")
    from e2ee_lab import reports

    assert "--out" not in _make_recipe("run")
    assert f"{reports.DEFAULT_OUT.as_posix()}/{reports.INDEX}" in README


def test_ci_has_no_hidden_step_and_installs_only_what_the_readme_names():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [l.strip() for l in script.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert not [c for c in commands if re.search(r"\b(pip|python3?|conda|venv)\b", c)], commands
    apt = re.findall(r"apt-get install ([^>&|;\n]+)", script)
    packages = {w for args in apt for w in args.split() if not w.startswith("-")}
    assert packages, "expected .ci/run to install apt packages"
    named = set(re.findall(r"apt-get install ([\w.+-]+)", README)) | set(re.findall(r"`([\w.+-]+)`", README))
    assert packages <= named, packages - named


def test_readme_lists_every_notebook_and_shows_existing_figures():
    missing = [p.name for p in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")) if p.name not in README]
    assert not missing, f"the README's course map does not list {missing}"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images and all((ROOT / i).is_file() for i in images), images


def test_readme_says_how_to_launch_on_binder_and_jupyterhub():
    section = _readme_section("Launch it elsewhere")
    assert "mybinder.org/v2/gh/<owner>/<repository>/" in section and "environment.yml" in section
    assert "JupyterHub" in section and "pip install" in section
    assert (ROOT / "environment.yml").is_file()
