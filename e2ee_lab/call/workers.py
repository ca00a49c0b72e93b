"""Participants in worker processes: the media phase of a call spread over cores.

Every participant of the lab's call normally lives in the call's one process, with the SFU: one
core, one GIL. With ``workers=K`` (:func:`~e2ee_lab.call.run.run_lab_call`) the call sets up as
always in its own process (offer/answer, a DTLS handshake per leg, the group key agreement, the
pipelines), and then hands each participant's media phase to one of K worker processes, forked
(``os.fork``) so that each inherits its participants exactly as they are: leg sockets, SRTP
sessions, frame keys, pre-encoded clips. A worker gives each of its legs' sockets to a new event
loop of its own (asyncio's, or uvloop's with ``loop="uvloop"``) and runs its participants' media
in real time; the call's process keeps the SFU
(and only reads the SFU's sockets from then on). Every datagram still crosses loopback UDP through
the SFU, SRTP-protected per leg.

Receivers in a worker verify frames of publishers in other workers against the publishers' planned
ground truth (:meth:`~e2ee_lab.call.pipeline.MediaSender.plan`), which clips make known in advance:
workers need ``encode="clip"``.

When its media phase is over, a worker sends its participants' records and counters back through
a pipe (:meth:`~e2ee_lab.call.participant.Participant.media_result`), with the CPU seconds it used,
and exits; the call adopts them and carries on (summary, analysis, closing the legs). A worker
that dies or stays past its deadline is reported (``summary["workers"]``, ``died``), its
participants keep empty records, and the call goes on: nothing waits for it. Workers die with the
call's process (``PR_SET_PDEATHSIG``), ignore SIGINT (Ctrl-C goes to the call, which kills them),
and are killed and reaped by it on any error or cancellation: no process is left behind.

Forking copies the whole process, so it is done only from the main thread of a script (the
``e2ee-lab`` command, ``bench call``); a notebook's kernel, whose call runs on a helper thread,
is refused.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection

from e2ee_lab.call.common import CPUMeter

DEADLINE_MARGIN = 15.0  # seconds past media end + drain a worker may take before it is killed
POLL = 0.05  # seconds between looks at the workers' pipes
PR_SET_PDEATHSIG = 1  # linux/prctl.h

# A test's hook, called in each worker with its participants after its sockets are its own.
_CHILD_HOOK: Callable[[Sequence], None] | None = None


def check_workers(workers: int) -> None:
    """ValueError unless ``workers`` processes can be forked here (>= 0; main thread; POSIX fork)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, not {workers}")
    if workers and (not hasattr(os, "fork") or threading.current_thread() is not threading.main_thread()):
        raise ValueError("workers fork the call's process: run it from a script's main thread "
                         "(the e2ee-lab command), not from a notebook")


async def run_media_in_workers(people: Sequence, start: float, seconds: float, workers: int,
                               drain: Callable[[list], Awaitable[None]], loop: str = "asyncio") -> list[dict]:
    """Run every participant's media phase (from loop time ``start`` for ``seconds``) in ``workers``
    forked processes, each on a ``loop`` ("asyncio" or "uvloop") of its own, then :meth:`adopt`
    what each sent back; returns one report per worker (``pid``, ``participants``, ``exit_code``,
    ``died``, ``reason``, ``cpu``). The call's own loop must be asyncio's (it stops reading the
    participants' sockets with ``pause_reading``, which uvloop's UDP transports lack)."""
    groups = [list(people[k::workers]) for k in range(workers) if people[k::workers]]
    runner = _runner(loop)
    for p in people:  # from now on the workers read the participants' sockets
        p.leg.transport.pause_reading()
    children: list[tuple[int, list, Connection]] = []
    gc.collect()
    gc.freeze()  # the inherited heap is never collected in a worker (no finalizer of the call's objects runs there)
    try:
        for group in groups:
            receiving, sending = Pipe(duplex=False)
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                receiving.close()
                _child(group, start, seconds, sending, drain, runner)
            sending.close()
            children.append((pid, group, receiving))
        deadline = start + seconds + 5.0 + DEADLINE_MARGIN
        return await _gather(children, deadline)
    finally:
        gc.unfreeze()
        for pid, _, conn in children:
            _reap(pid, kill=True)
            conn.close()


async def _gather(children: list[tuple[int, list, Connection]], deadline: float) -> list[dict]:
    loop = asyncio.get_running_loop()
    reports: dict[int, dict] = {}
    while len(reports) < len(children):
        for pid, group, conn in children:
            if pid in reports:
                continue
            names = [p.name for p in group]
            report = {"pid": pid, "participants": names, "exit_code": None, "died": False, "reason": "", "cpu": None}
            ended = False  # the pipe is closed without a result
            if conn.poll():
                try:
                    payload = conn.recv()
                except (EOFError, OSError):
                    payload, ended = None, True
                if payload is not None:
                    for p, result in zip(group, payload["participants"]):
                        p.adopt(result)
                    report.update(cpu=payload["cpu"], exit_code=_reap(pid, kill=False, wait=True))
                    reports[pid] = report
                    continue
            code = _reap(pid, kill=False)
            if code is None and ended:
                code = _reap(pid, kill=False, wait=True)
            if code is not None:
                reports[pid] = {**report, "exit_code": code, "died": True,
                                "reason": f"worker {pid} ({', '.join(names)}) exited with code {code} "
                                          "before sending its results"}
            elif loop.time() > deadline:
                reports[pid] = {**report, "exit_code": _reap(pid, kill=True), "died": True,
                                "reason": f"worker {pid} ({', '.join(names)}) missed its deadline and was killed"}
        if len(reports) < len(children):
            await asyncio.sleep(POLL)
    return [reports[pid] for pid, _, _ in children]


def _reap(pid: int, *, kill: bool, wait: bool = False) -> int | None:
    """The worker's exit code if it has exited (reaped now), else None; ``kill`` first sends SIGKILL."""
    try:
        if kill:
            os.kill(pid, signal.SIGKILL)
        done, status = os.waitpid(pid, 0 if kill or wait else os.WNOHANG)
    except (ProcessLookupError, ChildProcessError):
        return -1  # already reaped
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


# --- the worker ---------------------------------------------------------------------------------------


def _child(group: list, start: float, seconds: float, conn: Connection,
           drain: Callable[[list], Awaitable[None]], runner: Callable) -> None:
    """The worker's whole life, in the forked process: never returns."""
    code = 1
    try:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        meter = CPUMeter("worker: " + ", ".join(p.name for p in group))
        box: dict = {}

        def main() -> None:  # a thread of its own: the inherited loop still counts as running here
            try:
                box["value"] = runner(_child_main(group, start, seconds, drain))
            except BaseException as exc:  # reported below, the worker exits non-zero
                box["error"] = exc

        thread = threading.Thread(target=main, name="e2ee-lab-worker")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        results, media = box["value"]
        conn.send({"participants": results,
                   "cpu": {**meter.stop(), "media_cpu_s": media["cpu_s"], "media_wall_s": media["wall_s"]}})
        code = 0
    except BaseException:  # the worker must exit whatever happened; the call reports it
        traceback.print_exc(file=sys.stderr)
    finally:
        try:
            conn.close()
        finally:
            os._exit(code)


async def _child_main(group: list, start: float, seconds: float,
                      drain: Callable[[list], Awaitable[None]]) -> tuple[list[dict], dict]:
    for p in group:
        await _take_socket(p.leg)
    if _CHILD_HOOK is not None:
        _CHILD_HOOK(group)
    media = CPUMeter("media")
    await asyncio.gather(*(p.run(start, seconds) for p in group))
    await drain(group)
    for p in group:
        p.finish()
    load = media.stop()
    return [p.media_result() for p in group], load


def _runner(loop: str) -> Callable:
    """``asyncio.run`` for "asyncio", ``uvloop.run`` for "uvloop" (ImportError without it)."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run
    return asyncio.run


async def _take_socket(leg) -> None:
    """Give ``leg``'s inherited socket to this process's loop (a duplicate descriptor, same port)."""
    loop = asyncio.get_running_loop()
    inherited = leg.transport.get_extra_info("socket")
    sock = socket.socket(fileno=os.dup(inherited.fileno()))
    protocol = leg.protocol
    protocol._timer, protocol._timer_at = None, None  # the parent's loop handles are not ours
    protocol.closed = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    leg.transport = transport


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the call's process dies (no orphan left behind)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the call died before the request took effect
        os._exit(1)
