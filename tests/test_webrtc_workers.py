"""The aiortc call's participants in worker processes (:mod:`e2ee_lab.webrtc.workers`).

A short e2ee call (ci size, 3 participants, 1 s, 2 workers) against the same call in one process:
every receiver decodes >= 95 %, the summaries have the same fields, the participants ran in the
workers' pids and every candidate was loopback. Failures: a worker killed and one stopped during
the media are reported and the call ends; a worker that cannot start fails the call in one line;
Ctrl-C on the command leaves no worker behind; the command refuses nonsense. A browser call with
its Python members in a worker (Chromium only). The protocol: every malformed message is counted,
never a crash, both in memory and against a real worker process; a worker that sent its results
stays until the call hangs up (the results' end was lost under load). A call's process killed outright
(SIGKILL: no cleanup of its own runs) takes its worker along, through PR_SET_PDEATHSIG, without a
whole call around it. No timing asserts.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2ee_lab.cli import main
from e2ee_lab.crypto.keys import Curve, IdentityKeyPair, RosterUpdate
from e2ee_lab.crypto.keys.group_code import RosterEntry
from e2ee_lab.crypto.keys.roster import Change
from e2ee_lab.webrtc import run_webrtc_call, run_webrtc_call_async
from e2ee_lab.webrtc import workers as webrtc_workers
from e2ee_lab.webrtc.errors import MalformedMessage
from utils import CAN_SEE_CHILDREN, alive, interrupt_command
from e2ee_lab.webrtc.worker_protocol import (
    HEADER, TO_CALL, TO_WORKER, Link, decode_roster, encode_json, encode_pickle, encode_roster,
)

PEOPLE, SECONDS = 3, 1.0
ROOM = {"size": "ci", "encode": "clip", "seed": 4}


def _schema(value, path: str = "") -> dict[str, str]:
    """Every field of a summary, recursively (list rows as ``a[].b``; drop counters as one field)
    -> its value's type."""
    fields: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else key
            fields[name] = type(item).__name__
            if key not in ("dropped", "garbage_sent"):
                fields |= _schema(item, name)
    elif isinstance(value, list):
        for row in value:
            fields |= _schema(row, f"{path}[]")
    return fields


@pytest.fixture(scope="module")
def calls():
    return {k: run_webrtc_call("e2ee", PEOPLE, SECONDS, workers=k, **ROOM) for k in (2, 0)}


def test_every_receiver_decodes_what_workers_sent(calls):
    summary = calls[2].summary
    for p in summary["participants"]:
        for kind in ("video", "audio"):
            assert p[f"{kind}_frames_expected"] > 0
            assert p[f"{kind}_frames_decoded"] >= 0.95 * p[f"{kind}_frames_expected"], (p["name"], kind)
        assert p["video_frames_sent"] > 0 and p["dropped"] == {}
    assert summary["loopback"]["candidates_loopback"] and summary["loopback"]["sockets_loopback"]
    received = calls[2].received
    assert (received.frame_index >= 0).all() and received.decoded.mean() >= 0.95
    assert set(calls[2].pictures["alice"]) == {"bob", "carol"}  # the latest matching pictures came back
    assert calls[2].frame_keys is not None and len(calls[2].frame_keys.keys) >= PEOPLE


def test_the_participants_ran_in_the_workers(calls):
    summary = calls[2].summary
    reports = summary["workers"]
    assert [r["participants"] for r in reports] == [["alice", "carol"], ["bob"]]
    assert all(r["exit_code"] == 0 and not r["died"] and r["dropped"] == {} for r in reports), reports
    processes = summary["cpu"]["processes"]
    assert [p["pid"] for p in processes] == [os.getpid()] + [r["pid"] for r in reports]
    assert len({p["pid"] for p in processes}) == 3 and all(p["cpu_s"] > 0 for p in processes)
    assert processes[0]["role"].startswith("call: the aiortc SFU")


def test_the_summary_keeps_the_one_process_calls_fields(calls):
    with_workers, alone = (_schema(calls[k].summary) for k in (2, 0))
    assert set(with_workers) - set(alone) == {
        "workers", "workers[].pid", "workers[].participants", "workers[].exit_code", "workers[].died",
        "workers[].reason", "workers[].dropped", "timing.workers_ready_s"}
    assert set(alone) - set(with_workers) == set()
    retyped = {name: (kind, with_workers[name]) for name, kind in alone.items()
               if "NoneType" not in (kind, with_workers[name]) and kind != with_workers[name]}
    assert retyped == {}
    assert calls[0].summary.get("workers") is None  # workers=0 is the one-process call as before


def test_dead_and_hung_workers_are_reported_and_the_call_ends(monkeypatch):
    def kill_bob_and_stop_carol(pids: list[int]) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.4, os.kill, pids[1], signal.SIGKILL)
        loop.call_later(0.4, os.kill, pids[2], signal.SIGSTOP)

    monkeypatch.setattr(webrtc_workers, "_ON_MEDIA", kill_bob_and_stop_carol)
    monkeypatch.setattr(webrtc_workers, "FINISH_TIMEOUT", 1.0)
    began = time.monotonic()
    result = run_webrtc_call("e2ee", PEOPLE, SECONDS, workers=3, **ROOM)
    assert time.monotonic() - began < 60
    summary = result.summary
    alice, bob, carol = summary["workers"]
    assert not alice["died"] and bob["died"] and carol["died"]
    assert "exited with code -9" in bob["reason"] and "(bob)" in bob["reason"]
    assert "did not send its records" in carol["reason"] and "killed" in carol["reason"]
    assert summary["real_time"] is False and "bob" in summary["real_time_reason"]
    rows = {p["name"]: p for p in summary["participants"]}
    assert rows["bob"]["video_frames_sent"] == 0 and rows["carol"]["audio_frames_sent"] == 0
    # alice received what bob and carol sent before, but their records died with them: unjudged
    alices = result.received[result.received.receiver == "alice"]
    assert len(alices) > 0 and set(alices.reason) == {"unknown_frame"} and rows["alice"]["video_frames_decoded"] == 0
    assert [p["pid"] for p in summary["cpu"]["processes"]] == [os.getpid(), alice["pid"]]


def test_a_worker_that_cannot_start_fails_the_call_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(webrtc_workers, "WORKER_MODULE", "e2ee_lab.no_such_module")
    command = ["call", "--stack", "webrtc", "--size", "ci", "--seconds", "1", "--capture", "off", "--workers", "2"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "exited with code 1 before sending its results" in err and "(alice, carol)" in err


def test_the_command_refuses_nonsense(capsys):
    common = ["call", "--stack", "webrtc", "--size", "ci", "--seconds", "1", "--capture", "off"]
    assert main([*common, "--workers", "-1"]) == 2
    assert "workers must be >= 0" in capsys.readouterr().err
    assert main([*common, "--participants", "2", "--workers", "3"]) == 2
    assert "3 workers for 2 Python participants" in capsys.readouterr().err
    with pytest.raises(ValueError, match="during"):
        asyncio.run(run_webrtc_call_async("e2ee", 2, 1.0, workers=1, during=lambda sfu, people: None, **ROOM))


@pytest.mark.skipif(not CAN_SEE_CHILDREN, reason="needs /proc/PID/task/TID/children")
def test_ctrl_c_on_the_command_leaves_no_worker_behind(tmp_path):
    args = ["call", "--stack", "webrtc", "--participants", "2", "--seconds", "30", "--size", "ci", "--workers", "2",
            "--capture", "off", "--out", str(tmp_path)]
    workers, code, stderr = interrupt_command(args, tmp_path, children=2, after=2.5)  # into the media
    assert not [pid for pid in workers if alive(pid)]
    assert code == 130 and "call: interrupted" in stderr


# --- the protocol ---------------------------------------------------------------------------------


def _update() -> RosterUpdate:
    entries = tuple(RosterEntry(i, f"p{i}", IdentityKeyPair.generate(Curve.X25519, seed=i).public, bytes(16))
                    for i in range(2))
    return RosterUpdate(1, Change.JOIN, 1, entries, b"\x01" * 32)


def test_roster_updates_cross_as_json_and_bad_ones_are_refused():
    update = _update()
    assert decode_roster(encode_roster(update)) == update
    fields = encode_roster(update)
    first = fields["members"][0]
    for broken in ({**fields, "members": [{**first, "identity": "00" * 31}]},  # not an X25519 key
                   {**fields, "members": [{**first, "session": "00"}]}, {**fields, "members": [{**first, "index": 999}]},
                   {**fields, "members": [{**first, "curve": "rsa"}]}, {**fields, "members": [{**first, "user": 5}]},
                   {**fields, "change": "explode"}, {**fields, "epoch": "1"}, {**fields, "members": "all"},
                   {**fields, "previous_code": "zz"}, {k: v for k, v in fields.items() if k != "subject"}):
        with pytest.raises(MalformedMessage) as caught:
            decode_roster(broken)
        assert caught.value.reason == "signal_bad_roster"


def test_a_link_counts_every_malformed_frame_and_reads_on():
    async def run() -> tuple[list, dict]:
        reader = asyncio.StreamReader()
        frames = [encode_pickle({"evil": True}), HEADER.pack(b"J", 2_000_000) + b"\0" * 2_000_000,
                  HEADER.pack(b"J", 5) + b"{nope", encode_json("launch"), encode_json("offer", name="alice"),
                  encode_json("offer", name="alice", sdp=7), encode_json("start", at=True),
                  encode_json("offer", name="alice", sdp="v=0"), b"X" + HEADER.pack(b"J", 3)[1:] + b"abc",
                  encode_json("finish")]
        for frame in frames:
            reader.feed_data(frame)
        reader.feed_eof()
        link = Link(reader, None, accepts=TO_WORKER)  # type: ignore[arg-type]
        got = [await link.receive(), await link.receive()]
        return got, dict(link.dropped)

    got, dropped = asyncio.run(run())
    assert got == [("offer", {"name": "alice", "sdp": "v=0"}), None]  # a frame that is no frame ends the link
    assert dropped == {"signal_pickle_refused": 1, "signal_oversize": 1, "signal_not_json": 1,
                       "signal_unknown_op": 1, "signal_bad_field": 3, "signal_broken_stream": 1}


def test_the_call_reads_only_its_own_ops():
    assert {"setup", "offer", "roster", "key_message", "finish"} <= set(TO_WORKER)
    assert not set(TO_CALL) & {"setup", "roster", "key_message"}


def test_a_worker_stays_until_the_call_has_its_results():
    async def run() -> tuple:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        call = Link(*await asyncio.open_unix_connection(sock=ours), accepts=TO_CALL, pickles=True)
        worker = Link(*await asyncio.open_unix_connection(sock=theirs), accepts=TO_WORKER)
        await worker.send_result({"participants": []})
        lingering = asyncio.ensure_future(worker.linger(5))
        call.send("finish")  # a message the worker never handles: read and dropped
        await asyncio.sleep(0.1)
        waited = not lingering.done()
        got = await asyncio.wait_for(call.receive(), 2)
        after = await asyncio.wait_for(call.receive(), 2)  # the worker half-closed: nothing after
        call.close()
        await asyncio.wait_for(lingering, 2)  # and it leaves once the call hangs up
        return waited, got, after

    assert asyncio.run(run()) == (True, ("result", {"participants": []}), None)


def test_a_real_worker_survives_garbage_and_reports_it():
    async def run() -> tuple[dict, int]:
        people = [webrtc_workers.RemoteParticipant(0, webrtc_workers.VideoSize(320, 240, 15), 0, encode="live",
                                                   rtp_sframe=None, reproducible_keys=False, clock=lambda: 0.0)]
        worker = await webrtc_workers._spawn(people)
        try:
            writer = worker.link.writer
            for frame in (encode_pickle(os.getpid), encode_json("roster", name="alice", update={}),
                          encode_json("key_message", name="mallory", data="00"), encode_json("key_message", name="x"),
                          encode_json("start", at="now")):
                writer.write(frame)
            worker.link.send("finish")
            await asyncio.wait_for(worker.ended, 30)
            return worker.result, await asyncio.get_running_loop().run_in_executor(None, worker.process.wait)
        finally:
            worker.kill()

    result, code = asyncio.run(run())
    assert code == 0 and result["participants"] == [] and result["cpu"]["cpu_s"] > 0
    dropped = result["dropped"]
    assert dropped == {"signal_pickle_refused": 1, "signal_unknown_participant": 2, "signal_bad_field": 2}


#: a call's process reduced to the part that matters here: it starts one worker as a call does, forks
#: a holder that keeps the call's end of the worker's socket open (so that the worker cannot learn of
#: the call's death from the socket's end, only from PR_SET_PDEATHSIG), says both pids and waits
_CALL_THAT_WAITS = """
import asyncio, os, time
from e2ee_lab.webrtc import workers
async def spawn():
    people = [workers.RemoteParticipant(0, workers.VideoSize(320, 240, 15), 0, encode="live", rtp_sframe=None,
                                        reproducible_keys=False, clock=lambda: 0.0)]
    return await workers._spawn(people)
worker = asyncio.run(spawn())
holder = os.fork()
if holder == 0:
    time.sleep(60)
    os._exit(0)
print(worker.process.pid, holder, flush=True)
time.sleep(60)
"""


def _ignores_sigint(pid: int) -> bool:
    """Whether ``pid`` ignores SIGINT (the worker does so just before it asks for PR_SET_PDEATHSIG)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    ignored = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), 16)
    return bool(ignored & (1 << (signal.SIGINT - 1)))


def test_a_call_killed_outright_takes_its_worker_along():
    call = subprocess.Popen([sys.executable, "-c", _CALL_THAT_WAITS], stdout=subprocess.PIPE, text=True)
    worker = holder = None
    try:
        worker, holder = map(int, call.stdout.readline().split())
        deadline = time.monotonic() + 30
        while not _ignores_sigint(worker) and alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(worker) and _ignores_sigint(worker), "the worker did not start"
        time.sleep(0.2)  # past the prctl that follows
        call.kill()
        call.wait()
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker) and alive(holder)  # the worker's socket was still open
    finally:
        call.kill()
        call.wait()
        for pid in (worker, holder):
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGKILL)


# --- with a browser page ---------------------------------------------------------------------------


@pytest.mark.browser
def test_a_browser_call_with_its_python_members_in_a_worker():
    from e2ee_lab.browser import find_chromium, run_browser_call

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    result = run_browser_call("e2ee", 2, 1.0, size="ci", encode="clip", workers=1)
    summary = result.summary
    (report,) = summary["workers"]
    assert report["participants"] == ["alice", "bob"] and not report["died"], report
    for name, leg in summary["browser_to_python"].items():  # the page's video, judged after the call
        assert leg["decoded"] >= 0.9 * leg["sent"] > 0, name
    for name, leg in summary["python_to_browser"].items():
        assert leg["decoded"] > 0 and leg["pixel_matches"] == leg["pixel_samples"], name
    assert summary["group_codes"]["match"] and all(s["match"] for s in summary["safety_numbers"].values())
    assert [p["pid"] for p in summary["cpu"]["processes"]][-1] == report["pid"]
    assert summary["loopback"]["candidates_loopback"]
