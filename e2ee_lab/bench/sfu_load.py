"""The two processes of the SFU benchmark: publishers that send pre-protected SRTP, and the SFU.

``bench sfu`` (:mod:`e2ee_lab.bench.sfu`) starts the SFU's process with :func:`start_worker` (a
fresh interpreter, so it works from scripts, notebooks and tests alike), and that process starts
the publishers' the same way; each pair talks over a ``multiprocessing`` pipe.
:func:`run_publishers` holds every participant's leg (a DTLS client, RFC 5764 §4.1, handshake with
the SFU over loopback) and, per run, protects ``count`` real RTP packets (RFC 7741 VP8 and RFC 7587
Opus, interleaved as one second of a call, SFrame ciphertext in ``e2ee``) with each leg's SRTP key
(RFC 3711, RFC 7714 AES-GCM) *before* the clock starts, then sends them from the legs' sockets at
a fixed high rate, reading nothing back (the kernel drops what nobody reads). The forwarders'
sockets ask for large receive buffers (``SO_RCVBUF``, capped by ``net.core.rmem_max``), so the
burst queues up and the forwarder drains it at full speed once the publishers are idle.
:func:`run_sfu` is the measured process: per room it serves the legs with the lab's
:class:`~e2ee_lab.sfu.server.SFUServer` (as in a call) and, in ``bare`` runs, with a
:class:`BareForwarder` on sockets of its own holding the same keys (SRTP unprotect, protect per
subscriber, sendto: no routing state, no view tap, the ceiling of this design in Python). Each run
reads ``time.process_time`` and the forwarded count before the publishers start and after its
sockets have gone quiet; with ``LoadPlan.profile`` a ``cProfile`` profiler runs over exactly those
spans of the timed runs and its statistics go back to the caller (:mod:`e2ee_lab.bench.sfu_profile`).
Every socket is loopback (:func:`~e2ee_lab.transport.udp.open_udp`); every wait has a timeout, so a
run is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import asyncio
import cProfile
import itertools
import os
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection

import pylibsrtp

from e2ee_lab.media.frame import EncodedFrame
from e2ee_lab.rtp import Codec, RTPPacketizer
from e2ee_lab.sfu.server import Offer, SFUServer
from e2ee_lab.transport import Certificate, UDPLeg, check_loopback, connect_leg, open_udp

VIDEO_PT, AUDIO_PT = 96, 111  # the SFU's default payload-type map
SSRC_BASE = 0x5F000000  # participant i sends video SSRC base + 2i, audio base + 2i + 1
QUIET_SECONDS = 0.03  # a run ends when nothing was forwarded for this long after the last send
PACE_EVERY = 32  # the sender checks its clock every this many packets
STEP_TIMEOUT = 60.0  # seconds any single step (handshakes, preparing, a run) may take
RECEIVE_BUFFER = 8 * 2**20  # SO_RCVBUF asked for on the forwarders' sockets (the kernel may cap it)
_SEQ_TS = struct.Struct("!HI")  # RTP sequence number and timestamp (bytes 2-7)

Address = tuple[str, int]


@dataclass(frozen=True)
class LoadPlan:
    """What both processes run: rooms, modes, runs and the traffic of one participant."""

    rooms: tuple[int, ...]  # participants per room
    modes: tuple[str, ...]  # "bare", "dtls-srtp", "e2ee"
    repeat: int  # timed runs per (room, mode)
    packets: tuple[int, ...]  # packets the publishers send per run, per room
    rates: tuple[float, ...]  # packets per second the publishers send at, per room
    traffic: dict[str, tuple[EncodedFrame, ...]]  # frame-transform mode -> one second of frames
    period: dict[str, int]  # RTP timestamp span of one second, "audio"/"video"
    warmup: int  # untimed packets per room and mode before the timed runs
    loop: str  # "asyncio" or "uvloop"
    profile: bool = False  # run cProfile over the timed spans and send its statistics at the end


def traffic_mode(mode: str) -> str:
    """The payloads a benchmark mode sends: ``bare`` forwards the ``dtls-srtp`` packets."""
    return "dtls-srtp" if mode == "bare" else mode


def new_event_loop(name: str) -> asyncio.AbstractEventLoop:
    """An asyncio (default) or uvloop event loop; ImportError when uvloop is asked for but absent."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name != "asyncio":
        raise ValueError(f"unknown event loop {name!r}; expected asyncio or uvloop")
    return asyncio.new_event_loop()


class _Pipe:
    """Messages from a ``multiprocessing`` connection, awaited without blocking the loop."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                self._queue.put_nowait(self.conn.recv())
        except EOFError:
            self._queue.put_nowait(("eof",))
            self._loop.remove_reader(self.conn.fileno())

    async def next(self, timeout: float = STEP_TIMEOUT) -> tuple:
        """The next message (a tuple whose first item names it)."""
        return await asyncio.wait_for(self._queue.get(), timeout)

    async def recv(self, expect: str, timeout: float = STEP_TIMEOUT) -> tuple:
        """The next message, which must be a tuple starting with ``expect``."""
        message = await self.next(timeout)
        if message[0] != expect:
            raise RuntimeError(f"expected {expect!r} from the other process, got {message[0]!r}")
        return message

    def send(self, *message: object) -> None:
        """Send ``message`` (a tuple) to the other process."""
        self.conn.send(message)

    def close(self) -> None:
        self._loop.remove_reader(self.conn.fileno())


# --- the publishers ------------------------------------------------------------------------------


class _Publisher:
    """One participant: its leg, and its packets of one second of a call per traffic mode."""

    def __init__(self, index: int, plan: LoadPlan) -> None:
        self.name = f"p{index:02d}"
        self.ssrcs = {"video": SSRC_BASE + 2 * index, "audio": SSRC_BASE + 2 * index + 1}
        self.certificate = Certificate.generate(self.name)
        self.leg: UDPLeg | None = None
        self.cycle = {mode: self._packetize(frames, index) for mode, frames in plan.traffic.items()}
        self.spans = {self.ssrcs[k]: span for k, span in plan.period.items()}
        self.next_seq = {ssrc: 0 for ssrc in self.ssrcs.values()}
        self.position = self.laps = 0  # where in the cycle the next packet comes from

    def _packetize(self, frames: Sequence[EncodedFrame], index: int) -> list[tuple[int, bytes]]:
        """(SSRC, RTP bytes) of the frames in order, by the lab's packetizer (RFC 7741, 7587)."""
        packetizers = {
            "video": RTPPacketizer(Codec.VP8, ssrc=self.ssrcs["video"], payload_type=VIDEO_PT, seed=index),
            "audio": RTPPacketizer(Codec.OPUS, ssrc=self.ssrcs["audio"], payload_type=AUDIO_PT, seed=index),
        }
        out = []
        for frame in frames:
            packetizer = packetizers[frame.kind]
            out += [(packetizer.ssrc, data) for data in packetizer.serialize(frame)]
        return out

    def offer(self) -> Offer:
        return Offer(self.name, str(self.certificate.fingerprint()), dict(self.ssrcs))

    def packets(self, mode: str) -> Iterator[bytes]:
        """SRTP packets without end: the mode's second of packets again and again, each with the
        next sequence number of its stream and timestamps a second later per lap, protected."""
        assert self.leg is not None and self.leg.srtp is not None
        protect, cycle = self.leg.srtp.tx.protect, self.cycle[mode]
        while True:
            if self.position >= len(cycle):
                self.position, self.laps = 0, self.laps + 1
            ssrc, template = cycle[self.position]
            self.position += 1
            _, ts = _SEQ_TS.unpack_from(template, 2)
            packet = bytearray(template)
            _SEQ_TS.pack_into(packet, 2, self.next_seq[ssrc], (ts + self.laps * self.spans[ssrc]) % 2**32)
            self.next_seq[ssrc] = (self.next_seq[ssrc] + 1) % 2**16
            yield protect(packet)

    def sends(self, mode: str, target: Address) -> Iterator[tuple[Callable, bytes, Address]]:
        """(sendto of the leg's socket, SRTP packet, ``target``) without end."""
        assert self.leg is not None and self.leg.transport is not None
        sendto, target = self.leg.transport.sendto, check_loopback(tuple(target))
        for packet in self.packets(mode):
            yield sendto, packet, target


async def _publishers(conn: Connection, plan: LoadPlan) -> None:
    pipe = _Pipe(conn)
    people: list[_Publisher] = []
    batch: list[tuple[Callable, bytes, Address]] = []
    try:
        while True:
            message = await pipe.next(timeout=600)
            match message:
                case ("room", count):
                    people = [_Publisher(i, plan) for i in range(count)]
                    pipe.send("offers", [p.offer() for p in people])
                case ("answers", answers):
                    await _connect(people, answers)
                    pipe.send("connected")
                case ("prepare", mode, targets, count):
                    batch = _prepare(people, mode, targets, count)
                    pipe.send("ready", len(batch))
                case ("go", rate):
                    sent, seconds = _blast(batch, rate)
                    batch = []
                    await asyncio.sleep(0)
                    pipe.send("sent", sent, seconds)
                case ("close",):
                    await _close(people)
                    people = []
                    pipe.send("closed")
                case ("exit",) | ("eof",):  # done, or the SFU's process is gone
                    return
                case _:
                    raise RuntimeError(f"unexpected message {message[0]!r} from the SFU process")
    finally:
        await _close(people)
        pipe.close()


async def _connect(people: list[_Publisher], answers: Sequence) -> None:
    async def one(person: _Publisher, answer) -> None:
        person.leg = await connect_leg(answer.address, certificate=person.certificate,
                                       remote_fingerprint=answer.fingerprint, name=person.name,
                                       timeout=STEP_TIMEOUT)
        person.leg.transport.pause_reading()  # subscribers read nothing: the kernel drops what arrives
    await asyncio.gather(*(one(p, a) for p, a in zip(people, answers)))


def _prepare(people: list[_Publisher], mode: str, targets: Sequence[Address],
             count: int) -> list[tuple[Callable, bytes, Address]]:
    """``count`` protected packets, the participants' in turn, with the socket and address to use."""
    streams = [person.sends(mode, target) for person, target in zip(people, targets)]
    return list(itertools.islice(itertools.chain.from_iterable(zip(*streams)), count))


def _blast(batch: list[tuple[Callable, bytes, Address]], rate: float) -> tuple[int, float]:
    """Send the batch at ``rate`` packets per second (sleeping when ahead); (sent, seconds)."""
    start = time.perf_counter()
    for i, (send, packet, addr) in enumerate(batch):
        if i % PACE_EVERY == 0:
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0.0005:
                time.sleep(ahead)
        send(packet, addr)
    return len(batch), time.perf_counter() - start


async def _close(people: list[_Publisher]) -> None:
    legs = [p.leg for p in people if p.leg is not None]
    for leg in legs:
        leg.close()
    await asyncio.gather(*(leg.wait_closed() for leg in legs))
    for person in people:
        person.leg = None


def run_publishers(conn: Connection, plan: LoadPlan) -> None:
    """The publishers' process: follow the SFU process's commands until "exit"."""
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        runner.run(_publishers(conn, plan))


def start_worker(role: str, plan: LoadPlan) -> tuple[subprocess.Popen, Connection]:
    """Start a Python process running :func:`main` as ``role`` ("sfu" or "publishers") with ``plan``.

    Returns the process and this side of the pipe to it (the plan already sent).
    """
    ours, theirs = Pipe()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds e2ee_lab/
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    argv = [sys.executable, "-c", _WORKER, role, str(theirs.fileno())]
    proc = subprocess.Popen(argv, pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
    theirs.close()
    ours.send(plan)
    return proc, ours


def stop_worker(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait for a worker to exit; terminate (then kill) it if it does not in time."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the bare forwarder --------------------------------------------------------------------------


class _BareLeg(asyncio.DatagramProtocol):
    """One socket of the bare forwarder: unprotect, then protect and send to every other leg."""

    def __init__(self, forwarder: BareForwarder, rx: pylibsrtp.Session) -> None:
        self.forwarder, self.rx = forwarder, rx
        self.dests: list[tuple[Callable[[bytes], bytes], Callable, Address]] = []

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            plain = self.rx.unprotect(data)
        except pylibsrtp.Error:
            self.forwarder.dropped += 1
            return
        self.forwarder.received += 1
        for protect, sendto, peer in self.dests:
            sendto(protect(plain), peer)
        self.forwarder.forwarded += len(self.dests)


class BareForwarder:
    """The ceiling: each leg's SRTP (pylibsrtp, the legs' DTLS keys) and a sendto per subscriber.

    No SSRC or sequence rewriting, no view tap, no events, no per-leg state beyond the sessions:
    what any SFU in Python with asyncio and libsrtp has to do for each forwarded packet.
    """

    def __init__(self) -> None:
        self.received = self.forwarded = self.dropped = 0
        self.addresses: list[Address] = []
        self._transports: list[asyncio.DatagramTransport] = []

    @classmethod
    async def open(cls, legs: Sequence[UDPLeg]) -> BareForwarder:
        """A forwarder for the participants of ``legs`` (the SFU's, handshakes done)."""
        self = cls()
        ends = []
        for leg in legs:
            keys = leg.keys
            assert keys is not None and leg.remote_addr is not None
            rx = _session(keys.remote_key, keys.profile, inbound=True)
            tx = _session(keys.local_key, keys.profile, inbound=False)
            transport, protocol = await open_udp(lambda rx=rx: _BareLeg(self, rx))
            enlarge_receive_buffer(transport)
            self._transports.append(transport)
            name = transport.get_extra_info("sockname")
            self.addresses.append((name[0], name[1]))
            ends.append((protocol, (tx.protect, transport.sendto, leg.remote_addr)))
        for protocol, _ in ends:
            protocol.dests = [dest for other, dest in ends if other is not protocol]
        return self

    def close(self) -> None:
        for transport in self._transports:
            transport.close()


def enlarge_receive_buffer(transport: asyncio.BaseTransport) -> int:
    """Ask for :data:`RECEIVE_BUFFER` bytes of receive buffer; returns what the kernel granted."""
    sock = transport.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    except OSError:
        pass
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def _session(key, profile, *, inbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND
    policy = pylibsrtp.Policy(key=bytes(key), ssrc_type=kind, srtp_profile=profile.libsrtp_id)
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


# --- the SFU process -----------------------------------------------------------------------------


class _Room:
    """The SFU side of one room: the lab's SFU server and a bare forwarder on the same keys."""

    def __init__(self, server: SFUServer, names: list[str], bare: BareForwarder) -> None:
        self.server, self.bare = server, bare
        self.sfu_addresses = [server.legs[n].local_addr for n in names]
        self.receive_buffer = min(enlarge_receive_buffer(server.legs[n].transport) for n in names)

    def targets(self, mode: str) -> list[Address]:
        return self.bare.addresses if mode == "bare" else self.sfu_addresses

    def counts(self, mode: str) -> tuple[int, int, int]:
        """(received, forwarded, dropped) so far by the forwarder of ``mode``."""
        if mode == "bare":
            return self.bare.received, self.bare.forwarded, self.bare.dropped
        core, server = self.server.core, self.server
        dropped = sum(server.transport_dropped().values()) + sum(core.dropped.values())
        return core.packets_in, core.packets_forwarded - server.dropped["send_failed"], dropped


async def _open_room(pipe: _Pipe, count: int) -> _Room:
    server = SFUServer()
    pipe.send("room", count)
    _, offers = await pipe.recv("offers")
    answers = [await server.accept(offer) for offer in offers]
    pipe.send("answers", answers)
    await server.wait_ready(timeout=STEP_TIMEOUT)
    await pipe.recv("connected")
    bare = await BareForwarder.open([server.legs[o.name] for o in offers])
    return _Room(server, [o.name for o in offers], bare)


async def _run(pipe: _Pipe, room: _Room, mode: str, count: int, rate: float,
               profiler: cProfile.Profile | None = None) -> dict[str, float]:
    """One timed run: CPU seconds of this process and packets forwarded while the publishers send
    (``profiler``, if given, runs over the same span)."""
    pipe.send("prepare", traffic_mode(mode), room.targets(mode), count)
    await pipe.recv("ready")
    received0, forwarded0, dropped0 = room.counts(mode)
    if profiler is not None:
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    pipe.send("go", rate)
    _, sent, send_seconds = await pipe.recv("sent")
    last, still = room.counts(mode)[1], time.perf_counter()
    while time.perf_counter() - still < QUIET_SECONDS:
        await asyncio.sleep(QUIET_SECONDS / 6)
        now = room.counts(mode)[1]
        if now != last:
            last, still = now, time.perf_counter()
    cpu, wall = time.process_time() - cpu0, still - wall0
    if profiler is not None:
        profiler.disable()
    received, forwarded, dropped = room.counts(mode)
    room.server.core.view.clear()  # the tap's rows are not what is measured; keep memory flat
    return {"sent": sent, "send_s": send_seconds, "received": received - received0,
            "forwarded": forwarded - forwarded0, "dropped": dropped - dropped0, "cpu_s": cpu, "wall_s": wall}


async def _sfu(pub_conn, out_conn, plan: LoadPlan) -> None:
    pipe = _Pipe(pub_conn)
    profiler = cProfile.Profile() if plan.profile else None
    try:
        for room_index, participants in enumerate(plan.rooms):
            room = await _open_room(pipe, participants)
            count, rate = plan.packets[room_index], plan.rates[room_index]
            try:
                for mode in plan.modes:  # warm-up: first packets, stream creation, caches
                    await _run(pipe, room, mode, min(plan.warmup, count), rate)
                for run in range(plan.repeat):
                    shift = run % len(plan.modes)  # rotate the order so no mode always goes first
                    for mode in plan.modes[shift:] + plan.modes[:shift]:
                        result = await _run(pipe, room, mode, count, rate, profiler)
                        out_conn.send(("run", {"participants": participants, "mode": mode, "run": run,
                                               "rate": rate, "rcvbuf": room.receive_buffer} | result))
            finally:
                room.bare.close()
                await room.server.close()
                pipe.send("close")
                await pipe.recv("closed")
        pipe.send("exit")
        if profiler is not None:
            profiler.create_stats()
            out_conn.send(("profile", profiler.stats))  # type: ignore[attr-defined]
    finally:
        pipe.close()


def run_sfu(out_conn: Connection, plan: LoadPlan) -> None:
    """The SFU's process: start the publishers, run every room, report each run on ``out_conn``.

    Sends ``("run", row)`` per timed run, with ``plan.profile`` then ``("profile", stats)`` (the
    pstats dict of the timed spans), then ``("done",)``; or ``("error", traceback)``.
    """
    publishers, pub_conn = None, None
    try:
        publishers, pub_conn = start_worker("publishers", plan)
        with asyncio.Runner(loop_factory=lambda: new_event_loop(plan.loop)) as runner:
            runner.run(_sfu(pub_conn, out_conn, plan))
        out_conn.send(("done",))
    except BaseException:  # the caller's process must learn why, whatever it was
        out_conn.send(("error", traceback.format_exc()))
    finally:
        if pub_conn is not None:
            pub_conn.close()
        if publishers is not None:
            stop_worker(publishers)


_WORKER = "import sys; from e2ee_lab.bench.sfu_load import main; main(sys.argv[1:])"


def main(argv: Sequence[str]) -> None:
    """A worker's entry point, ``argv`` = ``[ROLE, FD]``: read the plan from pipe FD, run ROLE."""
    role, conn = argv[0], Connection(int(argv[1]))
    plan = conn.recv()
    if role == "sfu":
        run_sfu(conn, plan)
    elif role == "publishers":
        run_publishers(conn, plan)
    else:
        raise SystemExit(f"unknown role {role!r}")
    conn.close()
