"""Start and stop Janus inside a private network namespace, leaving no process behind.

:class:`JanusServer` writes a configuration (:mod:`e2ee_lab.janus.config`) into a run directory,
builds the loopback shim (:mod:`e2ee_lab.janus.shim`) and starts ``janus`` with the shim in its
``LD_PRELOAD`` (its environment only), its output to ``run_dir/janus.log``. It refuses to start
unless the current network namespace has no interface but ``lo`` (:func:`isolation_problem`):
the caller is the child process of :mod:`e2ee_lab.janus.isolated`, which ``unshare -n`` created.
Once the HTTP API answers, Janus's ``info`` must list VideoRoom as the only plugin and HTTP as the
only transport, or it is stopped again.

Clean-up, in four layers: :meth:`JanusServer.stop` (SIGTERM, then SIGKILL after
:data:`STOP_TIMEOUT`) runs on leaving the ``with`` block, also on an exception; an ``atexit``
hook stops any server still running when the interpreter exits; Janus is started under
``setpriv --pdeathsig KILL``, so the kernel kills it if the thread that started it dies (even by
SIGKILL); and it stays in its parent's process group, which :mod:`e2ee_lab.janus.isolated` kills
as a whole on a timeout. Start Janus from a thread that lives as long as it should (the
namespace child's main thread).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import subprocess
import time
import weakref
from pathlib import Path

from . import http
from .config import JanusConfig, find_lib_dir, write_config
from .errors import JanusError, JanusStartFailed, JanusUnavailable, NotIsolated
from .shim import build_shim

START_TIMEOUT = 15.0  # seconds until the HTTP API must answer
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
PLUGINS = {"janus.plugin.videoroom"}
TRANSPORTS = {"janus.transport.http"}
_running: weakref.WeakSet[JanusServer] = weakref.WeakSet()


def janus_binary() -> str | None:
    """The ``janus`` executable (``$E2EE_LAB_JANUS`` if set, else ``janus`` on the PATH), or None."""
    return shutil.which(os.environ.get("E2EE_LAB_JANUS") or "janus")


def interfaces() -> list[str]:
    """The network interfaces of the calling thread's network namespace (``if_nameindex``; not
    ``/sys/class/net``, which shows the namespace sysfs was mounted in)."""
    return sorted(name for _, name in socket.if_nameindex())


def isolation_problem() -> str | None:
    """Why Janus may not start in this network namespace (an interface besides ``lo``), or None."""
    others = [name for name in interfaces() if name != "lo"]
    if others:
        return f"this network namespace has interfaces besides lo: {', '.join(others)}"
    return None


def _command(binary: str, main: Path, run_dir: Path) -> list[str]:
    """Janus's command line; under ``setpriv --pdeathsig KILL`` (util-linux, like ``unshare``)
    where installed, so the kernel kills Janus when the thread that started it dies."""
    janus = [binary, "-C", str(main), "-F", str(run_dir), "-o"]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *janus] if setpriv else janus


def _schedstat_ns(task: Path) -> int | None:
    """Nanoseconds ``task`` has spent on a CPU (first field of its ``schedstat``), or None."""
    try:
        return int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stat_seconds(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far per thread name of process ``pid``, threads of one name (digits removed:
    one ``hloop`` per handle) added up. From each thread's ``/proc/PID/task/TID/schedstat``
    (nanoseconds on a CPU); where the kernel keeps none, from ``stat`` (10 ms ticks). Threads that
    have ended are not counted."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")].rstrip("0123456789 ")
        ns = _schedstat_ns(task)
        out[name] = out.get(name, 0.0) + (ns / 1e9 if ns is not None else _stat_seconds(stat))
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid``'s live threads so far (user + system), in seconds
    (:func:`thread_cpu`, nanosecond resolution where ``schedstat`` exists)."""
    return sum(thread_cpu(pid).values())


class JanusServer:
    """One Janus process in this (private) network namespace; use as ``async with``.

    Args:
        run_dir: a directory for the configuration and ``janus.log`` (created).
        debug_level: Janus's log level (0-7; 4 = info).
    """

    def __init__(self, run_dir: str | Path, *, debug_level: int = 4) -> None:
        self.run_dir = Path(run_dir)
        self.debug_level = debug_level
        self.config: JanusConfig | None = None
        self.process: subprocess.Popen | None = None
        self.info: dict = {}
        self.shim: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def log_path(self) -> Path:
        return self.run_dir / "janus.log"

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of Janus's log (empty before it started)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def start(self) -> JanusServer:
        """Start Janus and wait until its API answers with the expected plugin and transport.

        Raises:
            JanusUnavailable: no ``janus`` binary or library folder, or no C compiler for the shim.
            NotIsolated: this network namespace has an interface besides ``lo``.
            JanusStartFailed: Janus exited, did not answer, or loaded other plugins/transports.
        """
        binary, lib_dir = janus_binary(), find_lib_dir()
        if binary is None or lib_dir is None:
            raise JanusUnavailable("Janus is not installed (apt-get install janus janus-tools)")
        problem = isolation_problem()
        if problem is not None:
            raise NotIsolated(f"Janus runs only in a private network namespace: {problem}")
        self.shim = build_shim()
        self.config = JanusConfig(run_dir=self.run_dir, lib_dir=lib_dir, debug_level=self.debug_level)
        main = write_config(self.config)
        env = {**os.environ, "LD_PRELOAD": str(self.shim)}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(_command(binary, main, self.run_dir), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.run_dir)
        _running.add(self)
        try:
            self.info = await self._wait_ready()
            self._check_modules()
        except BaseException:
            self.stop()
            raise
        return self

    async def _wait_ready(self) -> dict:
        assert self.config is not None and self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise JanusStartFailed(f"janus exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return await http.request_json(self.config.api_url + "/info", None, timeout=2.0)
            except (OSError, JanusError):
                await asyncio.sleep(0.05)
        raise JanusStartFailed(f"janus did not answer within {START_TIMEOUT} s:\n{self.log_tail()}")

    def _check_modules(self) -> None:
        plugins, transports = set(self.info.get("plugins", {})), set(self.info.get("transports", {}))
        if plugins != PLUGINS or transports != TRANSPORTS:
            raise JanusStartFailed(f"janus loaded plugins {sorted(plugins)} and transports "
                                   f"{sorted(transports)}; expected only VideoRoom and HTTP")

    def cpu_seconds(self) -> float:
        """Janus's CPU time so far (user + system, all threads), from ``/proc``."""
        if self.pid is None:
            raise JanusError("janus is not running")
        return cpu_seconds(self.pid)

    def thread_cpu(self) -> dict[str, float]:
        """Janus's CPU time so far per thread name (:func:`thread_cpu`)."""
        if self.pid is None:
            raise JanusError("janus is not running")
        return thread_cpu(self.pid)

    def stop(self) -> int | None:
        """Stop Janus (SIGTERM, SIGKILL after :data:`STOP_TIMEOUT` s) and reap it; returns its
        exit status (None if it never started). Safe to call twice."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _running.discard(self)
        return process.returncode

    async def __aenter__(self) -> JanusServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()
