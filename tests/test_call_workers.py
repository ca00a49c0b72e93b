"""Participants in worker processes (:mod:`e2ee_lab.call.workers`): a short call (ci size, 4
participants, 1 s, 2 workers), a worker that dies, Ctrl-C on the command, and the command killed
outright (SIGKILL). No timing asserts:
the checks are on what each process did and on what is left running."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from e2ee_lab.call import run_call
from e2ee_lab.call import workers as call_workers
from utils import CAN_SEE_CHILDREN, alive, interrupt_command

PEOPLE, SECONDS = 4, 1.0
ROOM = {"size": "ci", "encode": "clip", "views": 1, "capture": "off"}


@pytest.fixture(scope="module")
def call():
    return run_call("e2ee", PEOPLE, SECONDS, seed=4, workers=2, **ROOM)


def test_each_worker_runs_its_participants_and_reports_its_cpu(call):
    summary = call.summary
    reports = summary["workers"]
    assert [r["participants"] for r in reports] == [["alice", "carol"], ["bob", "dave"]]
    assert all(r["exit_code"] == 0 and not r["died"] for r in reports), [r["reason"] for r in reports]
    processes = summary["cpu"]["processes"]
    assert [p["pid"] for p in processes] == [os.getpid()] + [r["pid"] for r in reports]
    assert all(p["cpu_s"] > 0 and p["media_cpu_s"] <= p["cpu_s"] for p in processes)


def test_the_call_adopts_what_the_workers_sent_and_received(call):
    sent, received = call.sent, call.received
    assert set(sent.participant) == set(received.receiver) == set(call.names)
    assert sent.sent_at.notna().all()  # the real records replaced the planned ones
    assert (received.verified == received.decrypted).all() and received.verified.any()
    for p in call.summary["participants"]:
        mine = received[received.receiver == p["name"]]
        assert p["video_frames_verified"] == int((mine.verified & (mine.kind == "video")).sum()) > 0
        assert p["audio_frames_verified"] > 0


def test_a_worker_that_dies_is_reported_and_the_call_ends(monkeypatch):
    def die_with_bob(group):
        if any(p.name == "bob" for p in group):
            os._exit(3)

    monkeypatch.setattr(call_workers, "_CHILD_HOOK", die_with_bob)
    result = run_call("e2ee", PEOPLE, SECONDS, seed=4, workers=2, **ROOM)
    summary = result.summary
    dead = [r for r in summary["workers"] if r["died"]]
    assert [r["participants"] for r in dead] == [["bob", "dave"]] and dead[0]["exit_code"] == 3
    assert summary["real_time"] is False and "bob, dave" in summary["real_time_reason"]
    assert "exited with code 3" in summary["real_time_reason"]
    rows = {p["name"]: p for p in summary["participants"]}
    assert rows["bob"]["video_frames_sent"] == 0 and rows["alice"]["video_frames_verified"] > 0


def test_workers_are_refused_where_they_cannot_run():
    with pytest.raises(ValueError, match="clip"):
        run_call("e2ee", PEOPLE, SECONDS, workers=2, size="ci", capture="off")
    with pytest.raises(ValueError, match=">= 0"):
        run_call("e2ee", PEOPLE, SECONDS, workers=-1, **ROOM)
    caught = []

    def from_a_thread():
        try:
            run_call("e2ee", PEOPLE, SECONDS, workers=2, **ROOM)
        except ValueError as exc:
            caught.append(str(exc))

    thread = threading.Thread(target=from_a_thread)
    thread.start()
    thread.join()
    assert caught and "main thread" in caught[0]


@pytest.mark.skipif(not CAN_SEE_CHILDREN, reason="needs /proc/PID/task/TID/children")
def test_ctrl_c_on_the_command_leaves_no_worker_behind(tmp_path):
    args = ["call", "--participants", "2", "--seconds", "30", "--size", "ci", "--encode", "clip", "--workers", "2",
            "--capture", "off", "--out", str(tmp_path)]
    workers, code, stderr = interrupt_command(args, tmp_path, children=2, after=0.0)
    assert not [pid for pid in workers if alive(pid)]
    assert code == 130 and "call: interrupted" in stderr


@pytest.mark.skipif(not CAN_SEE_CHILDREN, reason="needs /proc/PID/task/TID/children")
def test_a_call_killed_outright_takes_its_workers_along(tmp_path):
    """SIGKILL leaves the call no cleanup of its own: PR_SET_PDEATHSIG kills the workers, within the
    10 s the helper waits, long before their 30 s of media would have ended."""
    args = ["call", "--participants", "2", "--seconds", "30", "--size", "ci", "--encode", "clip", "--workers", "2",
            "--capture", "off", "--out", str(tmp_path)]
    workers, code, _ = interrupt_command(args, tmp_path, children=2, after=0.5, sig=signal.SIGKILL)
    assert code == -signal.SIGKILL and not [pid for pid in workers if alive(pid)]


def test_a_call_and_its_workers_run_on_uvloop():
    pytest.importorskip("uvloop")
    import uvloop

    assert call_workers._runner("uvloop") is uvloop.run and call_workers._runner("asyncio") is asyncio.run
    for workers in (2, 0):  # in workers, or the whole call in this process
        result = run_call("e2ee", 2, 0.5, seed=4, workers=workers, loop="uvloop", **ROOM)
        assert all(not r["died"] for r in result.summary.get("workers", []))
        assert len(result.received) > 0 and result.received.verified.any()
    with pytest.raises(ValueError, match="loop"):
        run_call("e2ee", 2, 0.5, loop="trio", **ROOM)
