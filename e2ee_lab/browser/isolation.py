"""Run a browser call in a private network namespace that has only ``lo``.

Chrome gathers ICE candidates on every interface and has no switch to limit them to loopback
(``--allow-loopback-in-peer-connection`` adds ``lo``, it removes nothing). The page filters its
answer's candidates, but the strongest guarantee is a namespace with no other interface:
``unshare -n`` (root, or CAP_SYS_ADMIN) creates one, ``ip link set lo up`` enables its loopback,
and the whole call (HTTP server, aiortc SFU and participants, Chromium) runs inside it in a child
process (``python -m e2ee_lab.browser.in_netns IN OUT``: pickled arguments in, pickled
:class:`~e2ee_lab.browser.call.BrowserCallResult` out). Where that is not permitted the call runs
in this process and says so in ``summary["isolation"]``. The page's filter is not enough there:
Chrome still sends ICE checks from its stripped host candidates (e.g. the eth0 address) to the
SFU's 127.0.0.1; they travel over ``lo`` with that address as the source, and aioice would learn a
peer-reflexive pair off loopback. The SFU ignores checks from non-loopback sources
(``aiortc_hooks.refuse_foreign_checks``; counted as ``ice_check_not_loopback``), so only the
127.0.0.1 pair can be nominated.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import IsolationFailed

NETNS_TIMEOUT = 240.0  # seconds a call in the namespace may take
CHILD_MODULE = "e2ee_lab.browser.in_netns"  # what the child process runs (it imports .call, not this)
_probe: str | None | bool = False  # cached netns_problem() (False: not probed yet)


def netns_problem() -> str | None:
    """Why a private network namespace cannot be made here, or None when it can (probed once)."""
    global _probe
    if _probe is not False:
        return _probe  # type: ignore[return-value]
    problem = None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        problem = "not root (unshare -n needs CAP_SYS_ADMIN)"
    elif not (shutil.which("unshare") and shutil.which("ip")):
        problem = "unshare or ip (iproute2) is not installed"
    else:
        probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
        if probe.returncode != 0:
            problem = f"unshare -n failed: {probe.stderr.decode(errors='replace').strip()}"
    _probe = problem
    return problem


def resolve_isolation(isolate: str) -> tuple[str, str]:
    """("netns" | "off", a note for the summary).

    Raises:
        ValueError: an unknown choice.  IsolationFailed: "netns" where it is not permitted.
    """
    if isolate not in ("auto", "netns", "off"):
        raise ValueError(f"isolate must be auto, netns or off, not {isolate!r}")
    if isolate == "off":
        return "off", "none (asked): the page strips non-loopback candidates"
    problem = netns_problem()
    if problem is None:
        return "netns", "network namespace with only lo"
    if isolate == "netns":
        raise IsolationFailed(problem)
    return "off", f"none ({problem}): the page strips non-loopback candidates"


def run_in_netns(kwargs: dict):
    """Run :func:`~e2ee_lab.browser.call.run_browser_call_async` with ``kwargs`` in a fresh
    namespace with only ``lo``; returns its result.

    Raises:
        IsolationFailed: the child failed (the end of its stderr is in the message).
    """
    result = run_module_in_netns(CHILD_MODULE, kwargs)
    result.summary["isolation"] = "network namespace with only lo"
    return result


def run_module_in_netns(module: str, kwargs: dict, timeout: float = NETNS_TIMEOUT):
    """Run ``python -m MODULE IN OUT`` in a fresh network namespace with only ``lo`` up and return
    what it pickled to OUT (it reads its pickled ``kwargs`` from IN). The child leads a session of
    its own, and the whole session's process group (every process it started and did not move
    out) is killed when the child times out, when this call is interrupted, and after it exits.

    Raises:
        IsolationFailed: the child failed or took more than ``timeout`` s (the end of its stderr
            is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="e2ee-lab-netns-") as tmp:
        inp, out = Path(tmp) / "in.pickle", Path(tmp) / "out.pickle"
        inp.write_bytes(pickle.dumps(kwargs))
        script = 'ip link set lo up && exec "$@"'
        cmd = ["unshare", "-n", "sh", "-c", script, "sh", sys.executable, "-m", module, str(inp), str(out)]
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise IsolationFailed(f"the call in the namespace took more than {timeout} s") from None
        finally:
            _kill_group(child)
        if child.returncode != 0 or not out.exists():
            tail = stderr.decode(errors="replace").strip().splitlines()[-15:]
            raise IsolationFailed("the call in the namespace failed:\n" + "\n".join(tail))
        return pickle.loads(out.read_bytes())


def _kill_group(child: subprocess.Popen) -> None:
    """SIGKILL every process left in ``child``'s process group, then reap ``child``."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is empty: everything has exited
        pass
    child.wait()
