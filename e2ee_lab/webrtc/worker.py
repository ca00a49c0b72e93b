"""One participant worker process of an aiortc call: ``python -m e2ee_lab.webrtc.worker FD PARENT``.

:mod:`e2ee_lab.webrtc.workers` starts this module in a fresh interpreter (no event loop, task,
timer or socket inherited: aiortc's peer connections keep all of those on their loop, so a call's
process that already runs one cannot be forked) with one end of a socket pair as file descriptor
``FD``. It asks Linux to kill it when the call's process ``PARENT`` dies (``PR_SET_PDEATHSIG``),
ignores SIGINT (Ctrl-C goes to the call, which kills its workers), and serves the call's messages
(:mod:`e2ee_lab.webrtc.worker_protocol`) on an asyncio loop of its own:

1. ``setup``: build this worker's :class:`~e2ee_lab.webrtc.participant.WebRTCParticipant` objects
   (scenes, clips, tracks, keys), with the call's clock: asyncio's default loop clock is
   ``time.monotonic()``, one clock for every process of the machine (CLOCK_MONOTONIC), so the
   call's ``t0`` and media start (loop times) mean the same here; ``ready`` reports both readings
   and the call checks them;
2. ``offer`` → ``answer``: each participant answers the SFU's offer inside
   :func:`~e2ee_lab.webrtc.loopback.loopback_ice` (loopback candidates only, both SDPs checked by
   :func:`~e2ee_lab.webrtc.sdp.check_loopback`); its connection state is reported on each change,
   and once connected its ICE sockets get the call's wider receive buffer;
3. the group key agreement: ``joined`` makes it a member, ``roster`` and ``key_message`` are the
   relay's deliveries (validated, then given to the member, which checks them as always), and the
   member's key messages go back as ``relay``; ``keys?`` asks whether it holds an epoch's keys;
4. ``arm`` sets the frame crypto, ``start`` releases the tracks at a loop time, ``finish`` closes
   the peer connections and sends every participant's records back (:func:`participant_result`),
   with this process's CPU seconds, then exits.

Its receivers have no ground truth here (the publishers live in other processes): they record what
they decoded, and the call judges every frame after it. A malformed message is counted
(``signal_*``, in the worker's report), as is one its participant refuses (``signal_refused``);
neither ends the worker. A setup it cannot build or an offer it cannot answer (a non-loopback
candidate, an SDP aiortc refuses) is reported as ``error`` and ends it: the call fails with that reason.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import sys
import time
from collections import Counter

from e2ee_lab.call.common import CPUMeter
from e2ee_lab.crypto.keys import Curve, IdentityKeyPair, KeyChecks, RekeyPolicy
from e2ee_lab.call.participant import key_seed
from e2ee_lab.media.scene import VideoSize

from .loopback import loopback_ice
from .participant import WebRTCParticipant
from .worker_protocol import TO_WORKER, Link, decode_hex, decode_roster
from .errors import MalformedMessage, WebRTCError
from .worker_records import participant_result

PR_SET_PDEATHSIG = 1  # linux/prctl.h
LINGER = 10.0  # seconds a worker that sent its results waits for the call to hang up (Link.linger)
FATAL = ("setup", "offer")  # without these a worker cannot take part: an error ends it, reported


class _PipeRelay:
    """What a member in a worker sees of the SFU's signalling relay: ``relay()`` sends up the pipe."""

    def __init__(self, link: Link, name: str) -> None:
        self.link, self.name = link, name

    def relay(self, sender: int, recipient: int, data: bytes, now: float) -> None:
        self.link.send("relay", name=self.name, recipient=recipient, data=bytes(data).hex())


class Worker:
    """The participants of one worker and the handlers of the call's messages."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.people: dict[str, WebRTCParticipant] = {}
        self.dropped: Counter[str] = Counter()  # messages that named no participant of ours
        self.meter = CPUMeter("worker", whole_process=True)  # its imports included
        self.media: CPUMeter | None = None

    async def serve(self) -> int:
        """Handle messages until ``finish`` (0) or until the call's end closes (1)."""
        while True:
            message = await self.link.receive()
            if message is None:
                return 1
            op, fields = message
            try:
                if op == "finish":
                    await self.finish(_optional_int(fields, "peer"), _optional_int(fields, "epoch"))
                    return 0
                await self.handle(op, fields)
            except MalformedMessage as err:
                self.dropped[err.reason] += 1
            except (WebRTCError, TypeError, ValueError, KeyError) as err:
                if op not in FATAL:  # a message its participant refused: counted, the call goes on
                    self.dropped["signal_refused"] += 1
                    continue
                self.link.send("error", reason=f"{op}: {type(err).__name__}: {err}"[:500])
                await self.link.writer.drain()
                return 2

    async def handle(self, op: str, fields: dict) -> None:
        if op == "setup":
            self.setup(fields)
            return
        if op == "start":
            self.media = CPUMeter("media")
            for p in self.people.values():
                if not p.start.done():
                    p.start.set_result(float(fields["at"]))
            return
        p = self.people.get(fields["name"])
        if p is None:
            raise MalformedMessage(f"{op}: no participant {fields['name'][:40]!r} here", "signal_unknown_participant")
        await getattr(self, "_on_" + op.rstrip("?"))(p, fields)

    def setup(self, fields: dict) -> None:
        if self.people:
            raise MalformedMessage("setup: a second setup", "signal_bad_field")
        loop = asyncio.get_running_loop()
        t0 = float(fields["t0"])

        def clock() -> float:
            return loop.time() - t0

        policy = fields["key_policy"]
        key_policy = RekeyPolicy(policy["switch_delay"], policy["grace"], policy["rekey_interval"],
                                 KeyChecks(**policy["checks"]))
        size = VideoSize(fields["width"], fields["height"], fields["fps"])
        curve = Curve(fields["curve"])
        for i in fields["indices"]:
            p = WebRTCParticipant(i, mode=fields["mode"], size=size, frames=fields["frames"], seed=fields["seed"],
                                  clock=clock, key_policy=key_policy, truth=None, rtp_sframe=fields["rtp_sframe"],
                                  reproducible_keys=fields["reproducible_keys"], encode=fields["encode"])
            if curve is not Curve.X25519:
                p.identity = IdentityKeyPair.generate(curve, seed=key_seed("identity", fields["seed"], i,
                                                                           fields["reproducible_keys"]))
            p.pc.on("connectionstatechange", self._state_reporter(p))
            self.people[p.name] = p
        self.link.send("ready", names=list(self.people), monotonic=time.monotonic(), loop_time=loop.time())

    def _state_reporter(self, p: WebRTCParticipant):
        def report() -> None:
            state = p.pc.connectionState
            if state == "connected":
                from .call import widen_receive_buffers

                widen_receive_buffers([p.pc])
            self.link.send("state", name=p.name, state=state)
        return report

    async def _on_offer(self, p: WebRTCParticipant, fields: dict) -> None:
        with loopback_ice():
            answer = await p.answer(fields["sdp"])  # NotLoopback for a foreign candidate: the worker fails
        self.link.send("answer", name=p.name, sdp=answer, curve=p.identity.public.curve.value,
                       identity=bytes(p.identity.public).hex(), session=p.key_session.hex())

    async def _on_arm(self, p: WebRTCParticipant, fields: dict) -> None:
        members = fields["members"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in members.values()):
            raise MalformedMessage("arm: members must map names to indices", "signal_bad_field")
        p.arm(members)

    async def _on_joined(self, p: WebRTCParticipant, fields: dict) -> None:
        if p.member is None:
            p.become_member(fields["index"], _PipeRelay(self.link, p.name))

    async def _on_roster(self, p: WebRTCParticipant, fields: dict) -> None:
        p.on_signal(decode_roster(fields["update"]))

    async def _on_key_message(self, p: WebRTCParticipant, fields: dict) -> None:
        p.on_signal(decode_hex(fields["data"], "key_message data"))

    async def _on_keys(self, p: WebRTCParticipant, fields: dict) -> None:
        members = fields["members"]
        if not all(isinstance(m, int) for m in members):
            raise MalformedMessage("keys?: members must be indices", "signal_bad_field")
        self.link.send("keys", name=p.name, epoch=fields["epoch"], members=members,
                       ready=p.keys_ready(fields["epoch"], members))

    async def finish(self, peer: int | None, epoch: int | None) -> None:
        """Close the peer connections, send every participant's records and the CPU used (with its
        member's safety number with member ``peer`` and group code of ``epoch``, where given)."""
        media = self.media.stop() if self.media is not None else {"cpu_s": 0.0, "wall_s": 0.0}
        for p in self.people.values():
            await p.close()
        results = [participant_result(p, peer, epoch) for p in self.people.values()]
        cpu = {**self.meter.stop(), "role": "worker: " + ", ".join(self.people),
               "media_cpu_s": media["cpu_s"], "media_wall_s": media["wall_s"]}
        dropped = dict(sorted((self.link.dropped + self.dropped).items()))
        await self.link.send_result({"participants": results, "cpu": cpu, "dropped": dropped})
        await self.link.linger(LINGER)  # the call hangs up once it has the results


def _optional_int(fields: dict, name: str) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessage(f"finish: {name} must be an integer", "signal_bad_field")
    return value


async def main(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    link = Link(reader, writer, accepts=TO_WORKER)
    try:
        return await Worker(link).serve()
    finally:
        link.close()


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the call's process dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(int(sys.argv[2]))
    sys.exit(asyncio.run(main(int(sys.argv[1]))))
