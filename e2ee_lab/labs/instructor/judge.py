"""The grader's judge: one process that runs a lab's own code, then judges submissions against it.

``python -m e2ee_lab.labs.instructor.judge`` reads one job (JSON on stdin, from
:mod:`e2ee_lab.labs.instructor.grade`) and writes one JSON line per submission to its stdout:

1. In a fresh interpreter, with the size, student id and data sources the submissions recorded
   (environment set by the grader), it runs the master's **lab cells** (every code cell that is
   neither an answer cell nor a check cell) in an IPython shell, then imports every lab module.
   No student code has run in this process, and none ever will.
2. Per submission it forks a **student child**: it closes the judge's result channel, becomes its
   own session, drops to an unprivileged user when the judge is root, sends its output to
   /dev/null, runs the submission's own cells (those that are not lab cells) on a copy of the
   lab's state, and writes the answers back through a pipe as plain data
   (:func:`e2ee_lab.labs.answers.to_plain`; for a build task, what the check's probe recorded of
   the student's function). It is killed with its process group when it is done or out of time.
3. It then forks a **verdict child** of the clean judge: it calls each master check with the
   answers rebuilt from that plain data and the lab's own objects, and returns the verdicts
   (``Feedback.ok`` and message) through a pipe. Its changes to the lab's state die with it.

A verdict is therefore computed by the released check code, imported by a process that never ran
student code, from answers that are data. The threat model and its limits are in INSTRUCTORS.md
("Grading").
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pkgutil
import resource
import select
import signal
import sys
import time
import traceback
from typing import Any

from e2ee_lab.labs.plain import from_plain, to_plain

READ_LIMIT = 64 * 2**20  # bytes a student child may send back
PR_SET_DUMPABLE = 4


def not_dumpable() -> None:
    """Make this process non-dumpable (Linux): its /proc files (open pipes, memory) become root's, so
    another process of the same user (a student's child) cannot open or read them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing to do
        pass


def fingerprint(roots: list[str]) -> str:
    """SHA-256 over every file's path and content under ``roots`` (the package, data/)."""
    import hashlib

    digest = hashlib.sha256()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                digest.update(path.encode() + b"\0")
                try:
                    with open(path, "rb") as f:
                        digest.update(f.read())
                except OSError:
                    digest.update(b"unreadable")
    return digest.hexdigest()


class _NoNewImports:
    """A meta path finder that refuses every module not imported yet (the verdict child runs only
    code the judge loaded before any student code ran)."""

    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"the verdict child imports nothing new ({name})")


def _child_pipe() -> tuple[int, int]:
    read_end, write_end = os.pipe()
    return read_end, write_end


def _read_all(fd: int, pid: int, timeout: float) -> tuple[bytes, str]:
    """Everything a child writes to ``fd`` until EOF, the limit or ``timeout``; then the child's
    process group is killed and reaped. Returns (data, problem or "")."""
    data, deadline, problem = bytearray(), time.monotonic() + timeout, ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            problem = f"timed out after {timeout:g} s"
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        data += chunk
        if len(data) > READ_LIMIT:
            problem = "sent too much data"
            break
    os.close(fd)
    for sig in (signal.SIGKILL,):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    _, status = os.waitpid(pid, 0)
    if not problem and os.WIFSIGNALED(status) and not data:
        problem = f"died from signal {os.WTERMSIG(status)}"
    return bytes(data), problem


def _drop_privileges(user: int | None, home: str | None) -> None:
    if user is None or home is None or os.geteuid() != 0:
        return
    os.chown(home, user, user)  # made by the judge with mkdtemp: a fresh, private folder
    os.environ.update(HOME=home, MPLCONFIGDIR=home, IPYTHONDIR=home)
    os.setgroups([])
    os.setgid(user)
    os.setuid(user)


def _become_throwaway(keep: int, result_fd: int, user: int | None, home: str | None, cpu_seconds: int) -> None:
    """In a freshly forked child: nothing of the judge's channels stays reachable."""
    os.setsid()
    os.close(result_fd)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, keep)
    os.closerange(keep + 1, 4096)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
    _drop_privileges(user, home)
    if user is not None and os.getuid() == user:
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))


def _answers_in_child(shell, cells: list[str], tasks: list[dict]) -> dict:
    """Run the student's cells, then evaluate each task's answer expressions as plain data."""
    errors = []
    for source in cells:
        try:
            result = shell.run_cell(source, store_history=False, silent=True)
            if result.error_in_exec is not None or result.error_before_exec is not None:
                err = result.error_in_exec or result.error_before_exec
                errors.append(f"{type(err).__name__}: {err}"[:200])
        except BaseException as exc:  # noqa: BLE001 - SystemExit or worse from a student's cell
            errors.append(f"{type(exc).__name__}"[:200])
    out = []
    for task in tasks:
        values = []
        for i, expr in enumerate(task["answers"]):
            try:
                value = eval(compile(expr, "<answer>", "eval"), shell.user_ns)  # noqa: S307 - untrusted child
            except BaseException:  # noqa: BLE001 - unanswered: the name is missing or its expression fails
                value = None
            if i == 0 and task["probe"] and callable(value):
                values.append({"probed": _probe(task, shell.user_ns, value)})
            else:
                values.append(to_plain(value))
        out.append(values)
    return {"answers": out, "errors": errors}


def _probe(task: dict, namespace: dict, func: Any) -> Any:
    from e2ee_lab.labs import check_spec

    try:
        check = eval(compile(task["function"], "<check>", "eval"), namespace)  # noqa: S307 - untrusted child
        call = ast.parse(task["call"], mode="eval").body
        context = [eval(compile(ast.Expression(a), "<arg>", "eval"), namespace) for a in call.args[1:]]  # noqa: S307
        kwargs = {k.arg: eval(compile(ast.Expression(k.value), "<arg>", "eval"), namespace) for k in call.keywords}  # noqa: S307
        return to_plain(check_spec(check)["probe"](func, *context, **kwargs))
    except BaseException:  # noqa: BLE001 - the probe itself was broken by the student's code
        return None


def _rebuild(task: dict, values: list) -> list:
    from e2ee_lab.labs import Probed

    out = []
    for i, value in enumerate(values):
        if i == 0 and task["probe"] and isinstance(value, dict) and set(value) == {"probed"}:
            out.append(Probed(from_plain(value["probed"])))
        else:
            out.append(from_plain(value))
    return out


def _verdicts_in_child(shell, tasks: list[dict], answers: list[list]) -> list[dict]:
    """Call each master check with the rebuilt answers and the lab's own context arguments."""
    from e2ee_lab.labs import Feedback

    verdicts = []
    for task, values in zip(tasks, answers):
        try:
            call = ast.parse(task["call"], mode="eval").body
            ns = shell.user_ns
            func = eval(compile(task["function"], "<check>", "eval"), ns)  # noqa: S307 - the master's code
            context = [eval(compile(ast.Expression(a), "<arg>", "eval"), ns) for a in call.args[len(values):]]  # noqa: S307
            kwargs = {k.arg: eval(compile(ast.Expression(k.value), "<arg>", "eval"), ns) for k in call.keywords}  # noqa: S307
            result = func(*_rebuild(task, values), *context, **kwargs)
            ok = isinstance(result, Feedback) and result.ok
            verdicts.append({"task": task["task"], "ok": ok, "message": str(result)[:2000],
                             "error": getattr(result, "error", "")})
        except Exception as exc:  # noqa: BLE001 - a broken master or lab state: reported, not fatal
            verdicts.append({"task": task["task"], "ok": False, "message": "",
                             "error": f"{type(exc).__name__}: {exc}"[:500]})
    return verdicts


def _fork(work, result_fd: int, timeout: float, user: int | None, throwaway: bool) -> tuple[Any, str]:
    import shutil
    import tempfile

    home = tempfile.mkdtemp(prefix="e2ee-lab-student-") if throwaway and user is not None else None
    read_end, write_end = _child_pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            if throwaway:
                _become_throwaway(write_end, result_fd, user, home, int(timeout) + 1)
            else:
                os.setsid()
                os.close(result_fd)
                sys.meta_path.insert(0, _NoNewImports())
            payload = json.dumps(work()).encode()
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view[: 1 << 16]):]
        finally:
            os._exit(0)
    os.close(write_end)
    data, problem = _read_all(read_end, pid, timeout)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
    if problem:
        return None, problem
    try:
        return json.loads(data), ""
    except ValueError:
        return None, "sent no answers"


def _import_lab_modules() -> None:
    """Load every lab module and the sealed answers now: nothing a child writes to disk later can
    reach the judge (the verdict children import nothing new)."""
    import e2ee_lab.labs
    from e2ee_lab.labs import answers

    for info in pkgutil.iter_modules(e2ee_lab.labs.__path__, "e2ee_lab.labs."):
        if not info.name.startswith("e2ee_lab.labs.instructor"):
            importlib.import_module(info.name)
    answers._tokens()
    importlib.import_module("encodings.idna")  # str.encode("idna") and friends import lazily


def _shell():
    """An IPython shell without a front end: magics work, figures are drawn and not shown."""
    from IPython.core.interactiveshell import InteractiveShell

    class JudgeShell(InteractiveShell):
        def enable_gui(self, gui=None):  # %matplotlib inline: no event loop to hook, nothing to do
            return None

    shell = JudgeShell.instance()
    shell.colors = "NoColor"
    return shell


def run(job: dict, submissions, result_fd: int) -> None:
    """Run the lab's cells once, then judge each submission read from ``submissions`` (one JSON
    line each, read only when its turn comes); results go to ``result_fd``."""
    def emit(record: dict) -> None:
        os.write(result_fd, (json.dumps(record) + "\n").encode())

    shell = _shell()
    os.chdir(job["cwd"])
    began, lab_errors = time.monotonic(), []
    for source in job["lab_cells"]:
        result = shell.run_cell(source, store_history=False)
        err = result.error_in_exec or result.error_before_exec
        if err is not None:
            lab_errors.append(f"{type(err).__name__}: {err}"[:300])
    _import_lab_modules()
    files = fingerprint(job["watch"])
    from e2ee_lab.config import lab_size
    from e2ee_lab.labs.session import student_id

    emit({"lab_seconds": round(time.monotonic() - began, 2), "lab_errors": lab_errors, "size": lab_size(),
          "student": student_id()})
    user, tampered = job.get("child_user"), None
    for line in submissions:
        if not line.strip():
            continue
        sub = json.loads(line)
        if tampered is not None:
            emit({"id": sub["id"], "verdicts": [], "student_problem": f"not graded: {tampered}"})
            continue
        record = _judge_one(shell, job, sub, user, result_fd)
        del sub
        if fingerprint(job["watch"]) != files:
            tampered = "an earlier submission changed files of the package or data/; regrade in a clean copy"
            record["tampered"] = ("it changed files of the package or data/ (its verdicts came from what the "
                                  "judge had loaded before; the submissions after it were not graded)")
        emit(record)


def _judge_one(shell, job: dict, sub: dict, user: int | None, result_fd: int) -> dict:
    t0 = time.monotonic()
    answers, problem = _fork(lambda: _answers_in_child(shell, sub["cells"], job["tasks"]), result_fd,
                             job["timeout"], user, throwaway=True)
    t1 = time.monotonic()
    record = {"id": sub["id"], "student_seconds": round(t1 - t0, 2), "student_problem": problem}
    if answers is not None and isinstance(answers.get("answers"), list) \
            and len(answers["answers"]) == len(job["tasks"]):
        record["student_errors"] = [str(e)[:200] for e in answers.get("errors", [])][:50]
        values = answers["answers"]
    else:
        record["student_errors"] = []
        values = [[None] * len(t["answers"]) for t in job["tasks"]]
    verdicts, vproblem = _fork(lambda: _verdicts_in_child(shell, job["tasks"], values), result_fd,
                               job["timeout"], None, throwaway=False)
    record.update(verdicts=verdicts or [], verdict_problem=vproblem, check_seconds=round(time.monotonic() - t1, 2))
    return record


def main() -> int:
    """Entry point: the job on stdin; results on the original stdout; everything else to stderr."""
    not_dumpable()
    job = json.loads(sys.stdin.readline())
    result_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the lab's own prints and displays go nowhere
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - fd 1, now /dev/null
    try:
        run(job, sys.stdin, result_fd)
    except Exception:  # noqa: BLE001 - report the judge's own failure to the grader, then exit 1
        os.write(result_fd, (json.dumps({"judge_error": traceback.format_exc()[-2000:]}) + "\n").encode())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
