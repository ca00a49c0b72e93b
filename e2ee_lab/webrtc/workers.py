"""An aiortc call's participants in worker processes: the call's side (``run_webrtc_call(..., workers=K)``).

In one process every aiortc participant shares one event loop and one GIL with the SFU. With
``workers=K`` :func:`start_workers` starts K worker processes (:mod:`e2ee_lab.webrtc.worker`)
before any aiortc object exists, each a fresh interpreter (``python -m``). A fork was measured
too (8.5 ms, against about 1.1 s of imports for a fresh interpreter, paid by the K workers in
parallel): in a forked child asyncio no longer counts the parent's loop as running (its record
carries the pid), so a new loop would start, but the child would inherit the call's other threads'
locks as they stood, every descriptor of the call's process (and of a notebook's kernel), and the
parent's loop objects, whose finalizers would run there; aiortc must build its peer connections
on the loop that runs them anyway, so a fork saves nothing else. Participant ``i`` goes to worker
``i mod K``; each worker runs its group on an asyncio loop of its own. The SFU stays in the call's process.
Media still crosses loopback UDP between each participant's and the SFU's peer connections, with
ICE restricted to 127.0.0.1 on both sides.

The call drives a worker's participants through :class:`RemoteParticipant`, a stand-in with the
methods :mod:`e2ee_lab.webrtc.call` calls on a participant (``answer``, ``pc.connectionState``,
``join_keys``, ``on_signal``, ``keys_ready``, ``arm``), each turned into messages of
:mod:`e2ee_lab.webrtc.worker_protocol` over a socket pair. The SFU's signalling relay treats a
stand-in as any participant: it registers it, joins it with the identity key and session the
worker announced in its answer, and delivers roster updates and key messages to it, which go on to
the worker (where they are validated and given to the member); the member's key messages come back
and enter the relay as its own. Media starts at one loop time for all: asyncio's default loop
clock is ``time.monotonic()``, which all processes of a machine share (CLOCK_MONOTONIC); the
workers report their reading when ready and the call checks it.

At the end (:meth:`WorkerPool.finish`) each worker closes its peer connections, sends its
participants' records (:mod:`e2ee_lab.webrtc.worker_records`) and stays until the call, which has
them then, hangs up (:meth:`~e2ee_lab.webrtc.worker_protocol.Link.linger`); the stand-ins adopt them, and
their sinks judge every decoded frame against every publisher's records
(:meth:`WorkerPool.judge`), so :func:`~e2ee_lab.webrtc.call._collect` and the summary read them
as they read live participants. Every worker's CPU joins ``summary["cpu"]``, and
``summary["workers"]`` reports each (``pid``, ``participants``, ``exit_code``, ``died``, ``reason``,
``dropped``: messages it refused).

Failures: a worker that dies or misses a deadline before media starts fails the call with a
:class:`~e2ee_lab.webrtc.errors.WorkerError` naming it; one that dies during the call, or does not
report within :data:`FINISH_TIMEOUT` s of the end, is killed and reported (its participants keep
empty records, ``real_time`` is false with the reason), and the call goes on; what its publishers
sent before cannot be judged (their records died with them), so others count those frames as
``unknown_frame``, never as decoded. Workers die with the
call's process (``PR_SET_PDEATHSIG``), sit in a process group of their own and ignore SIGINT (a
terminal's Ctrl-C goes to the call alone, even while a worker still imports), and are killed and reaped by
:meth:`WorkerPool.kill` on any error, cancellation or Ctrl-C: no process is left behind.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from e2ee_lab.call.participant import SPEECH_STAGGER, participant_name
from e2ee_lab.crypto.keys import Curve, KeyAgreementError, PublicIdentity, RekeyPolicy, RosterUpdate
from e2ee_lab.media.scene import Scene, VideoSize
from e2ee_lab.media.speech import SpeechSource
from e2ee_lab.rtp import RTPSFrameMode

from .errors import MalformedMessage, WorkerError
from .participant import WebRTCParticipant
from .sdp import check_loopback
from .worker_protocol import TO_CALL, Link, decode_hex, encode_roster
from .worker_records import MemberRecord, ParticipantResult, ReplayedSink, SenderRecords

WORKER_MODULE = "e2ee_lab.webrtc.worker"
READY_TIMEOUT = 60.0  # seconds for a worker's interpreter, imports, participants and clips
REPLY_TIMEOUT = 15.0  # seconds for a worker's answer to an offer
FINISH_TIMEOUT = 15.0  # seconds from "finish" until a worker's records are in (else it is killed)
EXIT_GRACE = 2.0  # seconds a worker that sent its records has to exit before it is killed
CLOCK_TOLERANCE = 0.05  # seconds a worker's loop clock may stray from time.monotonic()
#: a test's hook: called with the workers' pids right after media is released
_ON_MEDIA: Callable[[list[int]], None] | None = None


def check_workers(workers: int, participants: int) -> None:
    """ValueError unless ``workers`` is 0, or 1..``participants`` (at least one participant each);
    TypeError for another type than int."""
    if not isinstance(workers, int) or isinstance(workers, bool):
        raise TypeError(f"workers must be an int, not {type(workers).__name__}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, not {workers}")
    if workers > participants:
        raise ValueError(f"{workers} workers for {participants} Python participants: "
                         "each worker needs at least one participant")


def key_policy_fields(policy: RekeyPolicy) -> dict:
    """A rekey policy as the setup message's JSON."""
    return {"switch_delay": policy.switch_delay, "grace": policy.grace, "rekey_interval": policy.rekey_interval,
            "checks": dict(vars(policy.checks))}


class RemotePeerConnection:
    """What the call reads of a worker participant's peer connection: its state, as last reported."""

    connectionState = "new"


class RemoteParticipant:
    """The call's stand-in for a participant in a worker (module docstring); after
    :meth:`adopt` it carries the participant's records under the names
    :class:`~e2ee_lab.webrtc.participant.WebRTCParticipant` uses."""

    remote = True
    origin = WebRTCParticipant.origin  # reads ``senders`` and ``origins`` only

    def __init__(self, index: int, size: VideoSize, seed: int, *, encode: str, rtp_sframe, reproducible_keys: bool,
                 clock: Callable[[], float]) -> None:
        self.index, self.name = index, participant_name(index)
        self.scene = Scene(index, seed=seed, width=size.width, height=size.height, fps=size.fps)
        self.speech = SpeechSource(offset_s=index * SPEECH_STAGGER)
        self.encode, self.reproducible_keys = encode, reproducible_keys
        self.rtp_sframe = None if rtp_sframe is None else RTPSFrameMode(rtp_sframe)
        self.pc = RemotePeerConnection()
        self.worker: ParticipantWorker | None = None
        self.offer: str | None = None
        self.answer_sdp: str | None = None
        self.public: PublicIdentity | None = None
        self.key_session: bytes | None = None
        self.member_index: int | None = None
        self._relay = None
        self._clock = clock
        self._keys: dict[tuple[int, tuple[int, ...]], bool] = {}
        self._answer: asyncio.Future | None = None
        self.adopt(None)

    def __repr__(self) -> str:
        return f"RemoteParticipant({self.name!r}, {self.pc.connectionState})"

    # --- setup, as the call drives a participant -----------------------------------------------------

    async def answer(self, offer: str) -> str:
        """Send the SFU's offer to the worker; its answer (loopback only).

        Raises:
            WorkerError: the worker died or did not answer in time.  NotLoopback: see check_loopback.
        """
        self.worker.check()
        self.offer = offer
        self._answer = asyncio.get_running_loop().create_future()
        self.worker.link.send("offer", name=self.name, sdp=offer)
        try:
            self.answer_sdp = await asyncio.wait_for(asyncio.shield(self._answer), REPLY_TIMEOUT)
        except asyncio.TimeoutError:
            raise WorkerError(f"{self.worker.describe()} did not answer {self.name}'s offer "
                              f"within {REPLY_TIMEOUT} s") from None
        check_loopback(self.answer_sdp, where=f"{self.name}'s answer")
        return self.answer_sdp

    def join_keys(self, relay) -> None:
        """Join the group key agreement through the SFU's signalling relay, for the worker."""
        self.worker.check()
        self._relay = relay
        relay.register(self.name, self.on_signal)
        self.member_index = relay.join(self.name, self.public, self.key_session, self._clock())
        self.member = MemberRecord(self.member_index, None, {})  # its index until the records come
        self.worker.link.send("joined", name=self.name, index=self.member_index)  # before any update: they come soon

    def on_signal(self, message: object) -> None:
        """A relay delivery (roster update or key message), passed on to the worker."""
        if isinstance(message, RosterUpdate):
            self.worker.link.send("roster", name=self.name, update=encode_roster(message))
        elif isinstance(message, (bytes, bytearray)):
            self.worker.link.send("key_message", name=self.name, data=bytes(message).hex())
        else:
            self.worker.dropped["signal_unknown_type"] += 1

    def keys_ready(self, epoch: int, members: list[int]) -> bool:
        """The worker's latest answer for (``epoch``, ``members``), asking again (it comes soon)."""
        self.worker.check()
        self.worker.link.send("keys?", name=self.name, epoch=epoch, members=list(members))
        return self._keys.get((epoch, tuple(members)), False)

    def arm(self, members: dict[str, int]) -> None:
        self.worker.link.send("arm", name=self.name, members=dict(members))

    # --- the worker's messages -------------------------------------------------------------------------

    def on_answer(self, fields: dict) -> None:
        self.public = PublicIdentity(Curve(fields["curve"]), decode_hex(fields["identity"], "identity"))
        self.key_session = decode_hex(fields["session"], "session")
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(fields["sdp"])

    def on_relay(self, fields: dict) -> None:
        if self._relay is None or self.member_index is None:
            raise MalformedMessage(f"{self.name} relayed a key message before it joined", "relay_before_join")
        self._relay.relay(self.member_index, fields["recipient"], decode_hex(fields["data"], "key message"),
                          self._clock())

    def fail(self, error: WorkerError) -> None:
        self.pc.connectionState = "failed"
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)

    # --- after the call --------------------------------------------------------------------------------

    def adopt(self, result: ParticipantResult | None, truth=None) -> None:
        """Carry ``result``'s records (None: empty ones, for a worker that sent nothing)."""
        r = result
        self.senders = r.senders if r else {k: SenderRecords(k, -1, [], Counter()) for k in ("audio", "video")}
        self.origins = r.origins if r else {}
        self.packets = r.packets if r else Counter()
        self.wire = r.wire if r else []
        self.plis_sent, self.plis_received = (r.plis_sent, r.plis_received) if r else (0, 0)
        self.plis_by_ssrc = r.plis_by_ssrc if r else Counter()
        self.rtp_sframe_agreed = r.rtp_sframe_agreed if r else None
        self.packetization = r.packetization if r else "codec"
        self.member = r.member if r else None
        self.video = SimpleNamespace(thumbnails=r.thumbnails if r else {})
        self.sinks = [ReplayedSink(s, truth) for s in r.sinks] if r else []
        self._counters = r.counters if r else Counter()

    def counters(self) -> Counter:
        """Every drop the participant counted in its worker."""
        return Counter(self._counters)


class ParticipantWorker:
    """One worker process, its socket and its participants' stand-ins."""

    def __init__(self, process: subprocess.Popen, link: Link, people: list[RemoteParticipant]) -> None:
        self.process, self.link, self.people = process, link, people
        self.by_name = {p.name: p for p in people}
        self.dropped: Counter[str] = Counter()  # its messages this end refused
        self.result: dict | None = None
        self.error = ""  # what the worker said before it ended, if anything
        self.failure: str | None = None  # set once it has ended without its results
        self._killed = False
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self.ended = loop.create_future()
        self._task = asyncio.ensure_future(self._read())
        for p in people:
            p.worker = self

    @property
    def pid(self) -> int:
        return self.process.pid

    def describe(self) -> str:
        return f"worker {self.pid} ({', '.join(p.name for p in self.people)})"

    def check(self) -> None:
        """WorkerError if the worker has ended without its results."""
        if self.failure is not None:
            raise WorkerError(self.failure)

    async def _read(self) -> None:
        try:
            while True:
                message = await self.link.receive()
                if message is None:
                    break
                op, fields = message
                if op == "result":
                    self.result = fields
                    self.link.close()  # the worker lingers until this end hangs up (Link.linger)
                    break
                try:
                    self._dispatch(op, fields)
                except MalformedMessage as err:
                    self.dropped[err.reason] += 1
                except (TypeError, ValueError, KeyAgreementError):  # an identity key that is none, a list of lists
                    self.dropped["bad_message"] += 1
        finally:
            if self.result is None:
                await self._ended_without_result()
            if not self.ended.done():
                self.ended.set_result(None)

    def _dispatch(self, op: str, fields: dict) -> None:
        if op == "ready":
            if not self.ready.done():
                self.ready.set_result(fields)
            return
        if op == "error":
            self.error = fields["reason"]
            return
        p = self.by_name.get(fields["name"])
        if p is None:
            raise MalformedMessage(f"{op} for an unknown participant", "unknown_participant")
        if op == "answer":
            p.on_answer(fields)
        elif op == "state":
            p.pc.connectionState = fields["state"]
        elif op == "relay":
            p.on_relay(fields)
        elif op == "keys":
            p._keys[fields["epoch"], tuple(fields["members"])] = fields["ready"]

    async def _ended_without_result(self) -> None:
        for _ in range(50):  # the socket closes a moment before the process is gone
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.02)
        code = self.process.poll()
        said = f": {self.error}" if self.error else ""
        how = f"exited with code {code}" if code is not None else "closed its socket"
        self.failure = self.failure or f"{self.describe()} {how} before sending its results{said}"
        if self._killed:  # the call killed it: nobody waits for these any more
            return
        error = WorkerError(self.failure)
        for p in self.people:
            p.fail(error)
        if not self.ready.done():
            self.ready.set_exception(error)

    def kill(self) -> int | None:
        """SIGKILL it if it still runs, reap it; its exit code."""
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        self._task.cancel()
        self.link.close()
        self._killed = True
        for future in (self.ready, *(p._answer for p in self.people if p._answer is not None)):
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: the failure is reported where the call noticed it
        return code

    def report(self) -> dict:
        names = [p.name for p in self.people]
        dropped = Counter(self.dropped)
        if self.result is not None:
            dropped.update(self.result.get("dropped", {}))
        return {"pid": self.pid, "participants": names, "exit_code": self.process.poll(),
                "died": self.result is None, "reason": self.failure or "", "dropped": dict(sorted(dropped.items()))}


class WorkerPool:
    """The K workers of one call (module docstring). Build with :func:`start_workers`."""

    def __init__(self, workers: list[ParticipantWorker]) -> None:
        self.workers = workers
        self.people = sorted((p for w in workers for p in w.people), key=lambda p: p.index)

    def check(self) -> None:
        """WorkerError if any worker has ended without its results."""
        for w in self.workers:
            w.check()

    def start_media(self, at: float) -> None:
        """Release every worker's tracks at loop time ``at``."""
        for w in self.workers:
            if w.failure is None:
                w.link.send("start", at=at)
        if _ON_MEDIA is not None:
            _ON_MEDIA([w.pid for w in self.workers])

    async def finish(self, timeout: float | None = None, *, peer: int | None = None,
                     epoch: int | None = None) -> list[dict]:
        """Ask every worker for its records; adopt them (a worker that has not sent them within
        ``timeout`` s, default :data:`FINISH_TIMEOUT`, is killed and reported; its participants
        keep empty records). ``peer``, ``epoch``: each member also computes its safety number with
        member ``peer`` and its group code of ``epoch`` (the browser call compares them). Returns one
        report per worker and its CPU row (``cpu``, None for a dead one)."""
        for w in self.workers:
            if w.failure is None:
                w.link.send("finish", peer=peer, epoch=epoch)
        ended = [w.ended for w in self.workers]
        await asyncio.wait(ended, timeout=FINISH_TIMEOUT if timeout is None else timeout)
        for _ in range(int(EXIT_GRACE / 0.02)):  # a worker exits on its own once its records are sent
            if all(w.process.poll() is not None for w in self.workers if w.result is not None):
                break
            await asyncio.sleep(0.02)
        reports = []
        for w in self.workers:
            if not w.ended.done():
                w.failure = f"{w.describe()} did not send its records within {FINISH_TIMEOUT} s and was killed"
            code = w.kill()
            if w.result is None and w.failure is None:
                w.failure = f"{w.describe()} exited with code {code} before sending its results"
            results = (w.result or {}).get("participants") or [None] * len(w.people)
            for p, result in zip(w.people, results):
                p.adopt(result)
            reports.append({**w.report(), "cpu": (w.result or {}).get("cpu")})
        return reports

    def judge(self, truth) -> None:
        """Judge every stand-in's decoded frames against ``truth`` (every publisher adopted first)."""
        for p in self.people:
            for sink in p.sinks:
                sink.truth = truth
                sink.replay()

    def kill(self) -> None:
        """Kill and reap every worker still running (errors, cancellation, Ctrl-C)."""
        for w in self.workers:
            w.kill()


async def start_workers(workers: int, participants: int, *, size: VideoSize, setup: dict,
                        clock: Callable[[], float]) -> WorkerPool:
    """Start ``workers`` processes for participants 0..``participants``-1 (``i`` in worker ``i mod
    workers``), send each its setup (``setup``: the fields of the protocol's ``setup`` but
    ``indices``) and wait until every one is ready.

    Raises:
        WorkerError: a worker did not start, refused its setup, or its clock is not this one.
    """
    loop = asyncio.get_running_loop()
    if abs(loop.time() - time.monotonic()) > CLOCK_TOLERANCE:
        raise WorkerError("this event loop's clock is not time.monotonic(): workers could not share it")
    groups = [list(range(participants))[k::workers] for k in range(workers)]
    started: list[ParticipantWorker] = []
    try:
        for group in groups:
            people = [RemoteParticipant(i, size, setup["seed"], encode=setup["encode"], rtp_sframe=setup["rtp_sframe"],
                                        reproducible_keys=setup["reproducible_keys"], clock=clock) for i in group]
            started.append(await _spawn(people))
        sent = time.monotonic()
        for w, group in zip(started, groups):
            w.link.send("setup", indices=group, **setup)
        for w in started:
            try:
                ready = await asyncio.wait_for(asyncio.shield(w.ready), READY_TIMEOUT)
            except asyncio.TimeoutError:
                raise WorkerError(f"{w.describe()} was not ready within {READY_TIMEOUT} s") from None
            if not sent <= ready["monotonic"] <= time.monotonic() or abs(ready["loop_time"] - ready["monotonic"]) > CLOCK_TOLERANCE:
                raise WorkerError(f"{w.describe()} reads another clock (monotonic {ready['monotonic']}, "
                                  f"loop {ready['loop_time']}; here {time.monotonic()})")
    except BaseException:
        for w in started:
            w.kill()
        raise
    return WorkerPool(started)


async def _spawn(people: list[RemoteParticipant]) -> ParticipantWorker:
    """Start one worker process for ``people`` with one end of a fresh socket pair."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the directory holding this e2ee_lab package
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    try:
        process = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, str(theirs.fileno()), str(os.getpid())],
                                   pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
                                   process_group=0)  # a terminal's Ctrl-C reaches the call, not its workers
    finally:
        theirs.close()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    return ParticipantWorker(process, Link(reader, writer, accepts=TO_CALL, pickles=True), people)
