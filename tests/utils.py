"""Shared test helpers: test vectors live as JSON in ``tests/data/`` and are read through here; the
interfaces besides ``lo``; the command line as a terminal starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent / "data"

#: ``e2ee-lab`` as a terminal starts it, Ctrl-C raising KeyboardInterrupt: a command started from a
#: background job of a script inherits SIGINT ignored (POSIX shells ignore it in asynchronous lists
#: without job control), and then no Ctrl-C could reach it, whatever the call does
AS_FROM_A_TERMINAL = [sys.executable, "-c", "import runpy, signal, sys; signal.signal(signal.SIGINT, "
                      "signal.default_int_handler); sys.argv[0] = 'e2ee-lab'; runpy.run_module('e2ee_lab.cli', "
                      "run_name='__main__')"]


def load_vectors(name: str) -> Any:
    """Load ``tests/data/<name>`` (``.json`` may be omitted) and return the parsed JSON."""
    path = DATA / (name if name.endswith(".json") else f"{name}.json")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def other_interfaces() -> dict[str, list[str]]:
    """Every network device besides ``lo`` that is not down, with its IPv4 and non-link-local IPv6
    addresses (the kernel's devices, not libpcap's pseudo-devices such as any or nflog)."""
    from scapy.arch import get_if_addr, in6_getifaddr

    def up(iface: str) -> bool:
        state = Path(f"/sys/class/net/{iface}/operstate")
        return not state.exists() or state.read_text().strip() != "down"

    v6 = [(addr, iface) for addr, scope, iface in in6_getifaddr() if not addr.startswith("fe80")]
    return {i: [a for a in [get_if_addr(i)] if a != "0.0.0.0"] + [a for a, at in v6 if at == i]
            for i in sorted(os.listdir("/sys/class/net")) if i != "lo" and up(i)}


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


#: what :func:`interrupt_command` needs to see a command's children
CAN_SEE_CHILDREN = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def interrupt_command(args: list[str], tmp_path: Path, *, children: int, after: float = 0.0,
                      sig: int = signal.SIGINT) -> tuple[set[int], int, str]:
    """Run ``e2ee-lab args`` as from a terminal until it has ``children`` child processes, ``after``
    s more, then press Ctrl-C (or send ``sig``: SIGKILL kills it outright); returns (those children,
    its exit code, its stderr) once it ended and its children are gone, or 10 s passed. Fails the
    test if it still runs 30 s after the signal."""
    stderr = tmp_path / "stderr.txt"  # a file, not a pipe: a chatty command cannot block on a full pipe
    with stderr.open("wb") as err:
        call = subprocess.Popen([*AS_FROM_A_TERMINAL, *args], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline, seen = time.monotonic() + 60, set()
        while len(seen) < children and time.monotonic() < deadline and call.poll() is None:
            seen = _children(call.pid)
            time.sleep(0.1)
        assert len(seen) == children, stderr.read_text()[-2000:] if call.poll() is not None else "no children"
        time.sleep(after)
        call.send_signal(sig)
        try:
            call.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the command still ran 30 s after signal {sig}; its stderr ends: {stderr.read_text()[-2000:]}")
    finally:
        if call.poll() is None:
            call.kill()
            call.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    return seen, call.returncode, stderr.read_text()
