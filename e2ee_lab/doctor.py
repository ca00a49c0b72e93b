"""``e2ee-lab doctor``: can this machine (a laptop, a hub's user container) run the labs?

One line per item, each ``ok``, ``warn`` (the labs still run: they say so and use the recordings)
or ``FAIL`` (a lab will not run): Python, the packages and their pins, loopback UDP, live capture
(root or CAP_NET_RAW, libpcap), Chromium (lab 10), libwebrtc through ``wrtc`` (labs 07 and 10),
tshark (the interop tests), a private network namespace (lab 10's isolation), cores and free memory (container limits included), then every
environment variable the package reads with its current value (:data:`e2ee_lab.config.ENVIRONMENT`).
The exit status is 1 when an item fails, else 0. Lab 00's first cell calls :func:`report`.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import platform
import re
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from e2ee_lab.config import ENVIRONMENT

MIN_PYTHON = (3, 11)
#: Packages the labs import, with the versions aiortc's private attributes need (pyproject.toml).
PINNED = {"aiortc": "1.16.0", "av": "18.1.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}
REQUIRED = ("cryptography", "scapy", "numpy", "pandas", "matplotlib", "nbclient", "ipykernel")
MIN_CORES = 2
#: Free memory one student's labs need at full size: the largest peak `e2ee-lab bench labs` measured
#: (1,347 MiB, lab 09; INSTRUCTORS.md, "Running it on a hub"), rounded up.
MIN_FREE_MB = 1536


@dataclass(frozen=True)
class Item:
    """One line of the report."""

    name: str
    status: str  # "ok", "warn" or "FAIL"
    detail: str

    def __str__(self) -> str:
        return f"{self.status:<4} {self.name:<16} {self.detail}"


def _python() -> Item:
    ok = sys.version_info[:2] >= MIN_PYTHON
    return Item("python", "ok" if ok else "FAIL",
                f"{platform.python_version()} ({sys.executable}); needs >= {'.'.join(map(str, MIN_PYTHON))}")


def _packages() -> Item:
    problems = []
    for name, want in PINNED.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = None
        if have != want:
            problems.append(f"{name} {have or 'missing'} (needs {want})")
    for name in REQUIRED:
        try:
            md.version(name)
        except md.PackageNotFoundError:
            problems.append(f"{name} missing")
    if problems:
        return Item("packages", "FAIL", "; ".join(problems) + " — pip install -e . in the repository")
    return Item("packages", "ok", ", ".join(f"{n} {v}" for n, v in PINNED.items()) + f", and {', '.join(REQUIRED)}")


def _loopback() -> Item:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        try:
            rx.bind(("127.0.0.1", 0))
            rx.settimeout(2.0)
            tx.sendto(b"e2ee-lab doctor", rx.getsockname())
            _, peer = rx.recvfrom(64)
            port = rx.getsockname()[1]
        except OSError as exc:
            return Item("loopback", "FAIL", f"UDP on 127.0.0.1 does not work here: {exc}")
    return Item("loopback", "ok", f"UDP datagram 127.0.0.1:{peer[1]} -> 127.0.0.1:{port} arrived")


def _capture() -> Item:
    from e2ee_lab.capture import sniff_problem

    problem = sniff_problem()
    if problem is None:
        return Item("capture", "ok", "live capture on lo (root or CAP_NET_RAW, libpcap)")
    return Item("capture", "warn", f"{problem}: labs 02 and 09 read the recordings in data/captures/ instead")


def _chromium() -> Item:
    from e2ee_lab.browser import chromium_version, find_chromium

    binary = find_chromium()
    if binary is None:
        return Item("chromium", "warn", "not found (apt-get install chromium, or E2EE_LAB_CHROMIUM): "
                                        "lab 10 shows its recorded results")
    try:
        version = chromium_version(binary) or "version unknown"
    except (OSError, ValueError) as exc:  # a binary that cannot run (wrong architecture, a broken install)
        return Item("chromium", "warn", f"{binary} does not run ({exc}): lab 10 shows its recorded results")
    return Item("chromium", "ok", f"{version} ({binary})")


def _wrtc() -> Item:
    from e2ee_lab.interop import wrtc_problem

    problem = wrtc_problem()
    if problem is not None:
        return Item("wrtc", "warn", f"{problem}: labs 07 and 10 show their recorded libwebrtc results")
    return Item("wrtc", "ok", f"wrtc {md.version('wrtc')} (libwebrtc's SFrame: lab 07; lab 10's call also "
                              "needs root, see netns)")


def _tshark() -> Item:
    binary = shutil.which("tshark")
    if binary is None:
        return Item("tshark", "warn", "not found (apt-get install tshark): only the interop tests need it")
    return Item("tshark", "ok", binary)


def _netns() -> Item:
    from e2ee_lab.browser import netns_problem

    problem = netns_problem()
    if problem is None:
        return Item("netns", "ok", "unshare -n works: lab 10's browser and libwebrtc run in a namespace with only lo")
    return Item("netns", "warn", f"{problem}: lab 10 runs the browser on 127.0.0.1 without that isolation "
                                 "and shows the recorded libwebrtc call")


def _cgroup(name: str) -> str | None:
    """A cgroup v2 file of this process's cgroup, or None."""
    try:
        line = Path("/proc/self/cgroup").read_text().splitlines()[0]
        path = Path("/sys/fs/cgroup") / line.split("::", 1)[1].lstrip("/") / name
        return path.read_text().strip()
    except (OSError, IndexError):
        return None


def usable_cores() -> float:
    """CPUs this process may use: its affinity, capped by a cgroup v2 ``cpu.max`` quota."""
    cores: float = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = (_cgroup("cpu.max") or "max").split()
    if quota[0] != "max":
        cores = min(cores, int(quota[0]) / int(quota[1]))
    return cores


def free_memory_mb() -> float | None:
    """MiB this process can still allocate: MemAvailable, capped by a cgroup v2 ``memory.max``."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)
    free = int(found.group(1)) / 1024 if found else None
    limit, used = _cgroup("memory.max"), _cgroup("memory.current")
    if free is not None and limit not in (None, "max") and used is not None:
        free = min(free, (int(limit) - int(used)) / 2**20)
    return free


def _cores() -> Item:
    cores = usable_cores()
    status = "ok" if cores >= MIN_CORES else "warn"
    return Item("cores", status, f"{cores:g} usable (labs 09 and 10 want {MIN_CORES}: real-time calls fall "
                                 "behind on fewer)")


def _memory() -> Item:
    free = free_memory_mb()
    if free is None:
        return Item("memory", "warn", "cannot read /proc/meminfo")
    status = "ok" if free >= MIN_FREE_MB else "FAIL"
    return Item("memory", status, f"{free:,.0f} MiB free (one lab needs {MIN_FREE_MB:,} MiB)")


CHECKS: tuple[Callable[[], Item], ...] = (_python, _packages, _loopback, _capture, _chromium, _wrtc, _tshark,
                                          _netns, _cores, _memory)


def items() -> list[Item]:
    """Every item, in the order of the report; an item whose probe itself fails is a FAIL line."""
    out = []
    for probe in CHECKS:
        try:
            out.append(probe())
        except Exception as exc:  # noqa: BLE001 - the doctor reports, it never crashes
            out.append(Item(probe.__name__.strip("_"), "FAIL", f"the check failed: {type(exc).__name__}: {exc}"))
    return out


def environment() -> list[str]:
    """One line per environment variable the package reads: its value here, and what it does."""
    lines = []
    for name, what in ENVIRONMENT.items():
        value = os.environ.get(name)
        lines.append(f"env  {name:<20} {'unset' if value is None else repr(value)}: {what}")
    return lines


def report(file=None) -> int:
    """Print the report; return the exit status (1 if any item failed)."""
    file = file or sys.stdout
    found = items()
    for item in found:
        print(item, file=file)
    for line in environment():
        print(line, file=file)
    failed = [i.name for i in found if i.status == "FAIL"]
    print(f"{'FAIL: ' + ', '.join(failed) if failed else 'ok: every lab can run here'}", file=file)
    return 1 if failed else 0


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    """``e2ee-lab doctor`` takes no options."""
    parser.set_defaults(func=lambda args: report())
