"""The lab's call on a real WebRTC stack: aiortc peer connections through an aiortc SFU, on loopback.

:func:`run_webrtc_call` runs the same call as :func:`e2ee_lab.call.run_call` (same participants,
scenes, speech, modes, key agreement and frame transforms) with aiortc doing ICE (RFC 8445, host
candidates on 127.0.0.1 only), DTLS-SRTP (RFC 5764; aiortc ↔ aiortc negotiates
SRTP_AEAD_AES_256_GCM, RFC 7714), RTP/RTCP, jitter buffers and codecs:

1. the SFU offers to each participant, the participant answers; every SDP must carry only
   loopback candidates (:func:`~e2ee_lab.webrtc.sdp.check_loopback`), gathered inside
   :func:`~e2ee_lab.webrtc.loopback.loopback_ice`;
2. the call waits until every peer connection on both sides is ``connected``;
3. in the e2ee modes the participants agree frame keys through the SFU's signalling relay;
4. media starts (each participant's camera and microphone tracks) and runs for ``seconds``
   (the *measured window*), then for :data:`TAIL` s more, so that aiortc's jitter buffers (which
   release a frame only when the next one arrives; audio holds four) give up the window's last
   frames; the tail's frames are sent and received but not counted;
5. the SFU's key log is exported, everything is closed, and the capture (if any) is stopped.

**Frames counted.** Media starts only after every leg is connected and every member holds every
key, so every frame of the window is "sent after the connection was up". A receiver's
``*_frames_expected`` is the number of window frames the others sent; ``*_frames_decoded`` the
number of those it decoded (video: the picture matches the sent one). The SFU's counts come from
its decoding attempt on the packets it forwarded (:func:`~e2ee_lab.analysis.sfu_view.analyze_packets`),
over the whole call.

The result (:class:`WebRTCCallResult`) has every summary field of the lab's call, with the same
meaning (:func:`_summary` says how each is filled here), plus PLI counts, the SDPs, candidates and
DTLS roles; the SFU's key log in the lab's format, and with ``capture="sniff"``
(or ``"auto"`` where sniffing is permitted) the call's pcap, which :mod:`e2ee_lab.analysis`
reads unchanged. The socket tap cannot see aiortc's sockets: ``capture="tap"`` raises, and
``"auto"`` without capture rights records nothing and says so.

**Workers.** With ``workers=K`` the participants live in K worker processes started before any
aiortc object exists (:mod:`e2ee_lab.webrtc.workers`); the SFU, the signalling relay and the
capture stay here, the steps above are the same (driven through stand-ins over a socket pair), and
each receiver's frames are judged after the call, here, against every publisher's records (live
receivers judge them as they arrive against :class:`SentIndex`; a worker's cannot, its publishers
live elsewhere): the summary has the same fields with the same meaning, plus ``workers`` (one
report per worker) and each worker's row in ``cpu``. ``workers=0`` (the default) is the
one-process call.

Over 500 lines: the aiortc call's run and its summary (the lab's fields filled from aiortc's
records, late frames dated from the tracks' schedule) read the same participants and SFU; the
summary is the part that could move out.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from e2ee_lab.analysis.sfu_view import SFUView, analyze_packets, sent_speech, wire_packets
from e2ee_lab.call.capture import CallCapture, CaptureInfo, FrameKeys, call_frame_keys
from e2ee_lab.call.frame_keys import MODES
from e2ee_lab.call.pipeline import PLAYOUT_BUDGET, ReceivedFrame, SentFrame
from e2ee_lab.call.common import (
    CALL_KEY_POLICY,
    DEFAULT_PROFILE,
    START_DELAY,
    CallConfig,
    CPUMeter,
    cpu_summary,
    real_time_verdict,
    records_table,
    resolve_key_policy,
    run_blocking,
    wait_for_group_keys,
    write_outputs,
)
from e2ee_lab.capture import sniff_problem
from e2ee_lab.config import Size, lab_size
from e2ee_lab.crypto.keys import RekeyPolicy
from e2ee_lab.media.scene import Scene, video_size
from e2ee_lab.media.speech import FRAME_MS
from e2ee_lab.rtp import RTPSFrameMode
from e2ee_lab.transport import KeyLogEntry
from e2ee_lab.transport.udp import RECEIVE_BUFFER

from . import aiortc_hooks
from .aiortc_hooks import check_aiortc
from .errors import CaptureImpossible, ConnectionFailed
from .loopback import loopback_ice
from .participant import WebRTCParticipant
from .sdp import candidates, dtls_setup
from .sfu import WebRTCSFU
from .transform import RTP_WRAP
from .workers import WorkerPool, check_workers, key_policy_fields, start_workers

STACK = "webrtc"
TAIL = 0.3  # seconds of media after the measured window, not counted (flushes the jitter buffers)
DRAIN = 0.3  # seconds to wait after the last frame for packets in flight
CONNECT_TIMEOUT = 10.0  # seconds until every peer connection must be connected
LOOPBACK_IPS = ("127.0.0.1", "::1")
#: an experiment on a running call's media: ``during(sfu, participants)`` (:func:`run_webrtc_call_async`)
During = Callable[[WebRTCSFU, list[WebRTCParticipant]], Awaitable[None]]


@dataclass
class WebRTCCallResult:
    """What an aiortc call produced; the fields shared with :class:`~e2ee_lab.call.CallResult`
    mean the same (``summary``, ``sent``, ``received``, ``sfu``, ``wire``, ``keylog``, ``relay``,
    ``pictures``, ``scenes``, ``speech``, ``sockets``, ``names``, ``members``, ``capture``,
    ``frame_keys``).

    ``view``: every publisher packet the SFU received (after SRTP). ``stolen``: the frames its
    jitter buffers completed and kept from the decoder. ``sdp[name]``: the SFU's offer and the
    participant's answer. ``candidates``: every ICE candidate of every SDP. ``handshakes``: per leg
    and side the ``a=setup`` value, the DTLS role taken and the SRTP profile negotiated.
    ``plis``: PLI counts (module :mod:`e2ee_lab.webrtc.call` docstring).
    """

    config: CallConfig
    summary: dict
    sent: pd.DataFrame
    received: pd.DataFrame
    sfu: SFUView
    wire: SFUView
    view: pd.DataFrame
    stolen: pd.DataFrame
    keylog: list[KeyLogEntry]
    relay: pd.DataFrame
    pictures: dict[str, dict[str, tuple[int, np.ndarray]]]
    scenes: dict[str, Scene]
    speech: dict[str, np.ndarray]
    sockets: list[dict]
    sdp: dict[str, dict[str, str]]
    candidates: pd.DataFrame
    handshakes: pd.DataFrame
    names: list[str] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)
    out: Path | None = None
    capture: CaptureInfo | None = None
    frame_keys: FrameKeys | None = None
    stack: str = STACK

    def delivery(self, kind: str = "video") -> pd.Series:
        """Per receiver: window frames decoded / window frames the others sent, for ``kind``."""
        return pd.Series({p["name"]: p[f"{kind}_frames_decoded"] / max(1, p[f"{kind}_frames_expected"])
                          for p in self.summary["participants"]}, name=f"{kind} delivery")


# --- ground truth ------------------------------------------------------------------------------------


class SentIndex:
    """What each publisher sent, by the RTP timestamp receivers see (module docstring of participant).

    Calling it with ``(publisher, kind, rtp_timestamp)`` returns ``(frame index, send time,
    thumbnail or None)``, or None for a frame it does not know; receivers judge what they decoded
    against it. Fill ``people`` (name -> participant) before media starts.
    """

    def __init__(self) -> None:
        self.people: dict[str, WebRTCParticipant] = {}
        self._origins: dict[tuple[str, str], int] = {}

    def origin(self, publisher: str, kind: str) -> int | None:
        if (publisher, kind) not in self._origins:
            found = self.people[publisher].origin(kind)
            if found is None:
                return None
            self._origins[publisher, kind] = found
        return self._origins[publisher, kind]

    def __call__(self, publisher: str, kind: str, timestamp: int):
        person, origin = self.people.get(publisher), self.origin(publisher, kind)
        if person is None or origin is None:
            return None
        record = person.senders[kind].record((timestamp - origin) % RTP_WRAP)
        if record is None or record.reason:
            return None
        thumb = person.video.thumbnails.get(record.frame_index) if kind == "video" else None
        return record.frame_index, record.time, thumb


# --- the call ----------------------------------------------------------------------------------------


def validate_call(mode: str, participants: int, seconds: float, size: Size | None) -> Size:
    """The call's size (``size`` or :func:`lab_size`); ValueError for a bad mode, count or duration."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if not 2 <= participants <= 255:
        raise ValueError(f"a call needs 2..255 participants, not {participants}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    return size or lab_size()


def capture_mode(mode: str) -> tuple[str, str | None]:
    """The capture this stack can make for ``mode``: ("sniff" | "off", note or None).

    Raises:
        CaptureImpossible: ``"tap"`` (the tap only sees the lab's own sockets, not aiortc's).
        ValueError: an unknown mode.
    """
    if mode not in ("auto", "sniff", "tap", "off"):
        raise ValueError(f"capture must be auto, sniff, tap or off, not {mode!r}")
    if mode == "tap":
        raise CaptureImpossible("the socket tap sees only the lab's own sockets, not aiortc's: use sniff")
    if mode == "auto":
        problem = sniff_problem()
        if problem is not None:
            return "off", f"capture: {problem}; the socket tap cannot see aiortc's sockets, so nothing is recorded"
        return "sniff", None
    return mode, None


async def run_webrtc_call_async(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 3.0,
                                seed: int = 0, size: Size | None = None, out: str | Path | None = None, *,
                                capture: str = "off", key_policy: RekeyPolicy | str = CALL_KEY_POLICY,
                                during: During | None = None,
                                rtp_sframe: str | None = None, reproducible_keys: bool = False,
                                encode: str = "live", workers: int = 0) -> WebRTCCallResult:
    """Run one aiortc call in the running event loop (see :func:`run_webrtc_call`).

    ``during(sfu, people)``, if given, is a coroutine function started when media is released
    (``START_DELAY`` s before the first frame) and awaited before anything closes: an experiment on
    the running call (ask for a key frame, drop packets with ``sfu.forward_filter``, change a key).
    """
    started = time.perf_counter()
    meter = CPUMeter("call: the aiortc SFU (and the setup)" if workers else "call: the aiortc SFU and every participant")
    size = validate_call(mode, participants, seconds, size)
    check_workers(workers, participants)
    if workers and during is not None:
        raise ValueError("an experiment (during) needs the participants in this process: workers=0")
    if rtp_sframe is not None:
        if mode != "e2ee":
            raise ValueError(f"--rtp-sframe needs --mode e2ee, not {mode}")
        rtp_sframe = RTPSFrameMode(rtp_sframe).value
    key_policy = resolve_key_policy(key_policy)
    how, note = capture_mode(capture)
    check_aiortc()
    recorder = CallCapture(out, how)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> float:
        return loop.time() - t0

    dims = video_size(size)
    window = {"video": int(round(seconds * dims.fps)), "audio": int(round(seconds * 1000 / FRAME_MS))}
    frames = {"video": window["video"] + int(np.ceil(TAIL * dims.fps)),
              "audio": window["audio"] + int(np.ceil(TAIL * 1000 / FRAME_MS))}
    truth = SentIndex()
    pool: WorkerPool | None = None
    if workers:  # before any aiortc object: each worker builds its participants (and clips) itself
        pool = await start_workers(workers, participants, size=dims, clock=clock, setup=worker_setup(
            mode, dims, frames, seed, key_policy, rtp_sframe, reproducible_keys, encode, t0))
    try:
        people = pool.people if pool else [
            WebRTCParticipant(i, mode=mode, size=dims, frames=frames, seed=seed, clock=clock,
                              key_policy=key_policy, truth=truth, rtp_sframe=rtp_sframe,
                              reproducible_keys=reproducible_keys, encode=encode)
            for i in range(participants)]  # with encode="clip" each scene is encoded here, before the call
        truth.people = {p.name: p for p in people}
        sfu = WebRTCSFU([p.name for p in people], key_policy=key_policy, clock=clock, rtp_sframe=rtp_sframe)
        timing: dict[str, float] = {"workers_ready_s": clock()} if pool else {}
        await recorder.start()
    except BaseException:
        if pool is not None:
            pool.kill()
        raise
    reports: list[dict] = []
    try:
        with loopback_ice():
            for p in people:
                await sfu.accept(p.name, await p.answer(await sfu.offer(p.name)))
        await _wait_connected(sfu, people, pool.check if pool else None)
        timing["connected_s"] = clock()
        await _agree_keys(sfu, people, mode)
        for p in people:
            p.arm(sfu.signalling.members)
        start = loop.time() + START_DELAY
        timing["media_start_s"] = start - t0
        if pool is not None:
            pool.start_media(start)
        for p in people:
            if pool is None:
                p.start.set_result(start)
        experiment = asyncio.ensure_future(during(sfu, people)) if during is not None else None
        media_meter = CPUMeter("media")
        await asyncio.sleep(START_DELAY + seconds + TAIL + DRAIN)
        if experiment is not None:
            await experiment
        media_load = media_meter.stop()
        keylog, sockets = sfu.keylog(), sfu.sockets()
        handshakes = _handshakes(sfu, people)
        if pool is not None:  # the workers close their peer connections and send their records
            reports = await pool.finish()
            pool.judge(truth)
    finally:
        if pool is not None:
            pool.kill()
        for p in people:
            if pool is None:
                await p.close()
        await sfu.close()
        await recorder.stop()
    result = _collect(mode, participants, seconds, seed, size, sfu, people, keylog, sockets, handshakes)
    result.config = replace(result.config, rtp_sframe=rtp_sframe, reproducible_keys=bool(reproducible_keys),
                            key_policy=key_policy.name)
    result.capture = await recorder.finish(sockets)
    mark_late(result.received, timing["media_start_s"], dims.fps)
    result.summary = _summary(result, sfu, people, window, timing)
    result.summary["capture"] = result.capture.summary() if result.capture else {"note": note}
    result.summary["elapsed_s"] = round(time.perf_counter() - started, 2)
    load = {**meter.stop(), "media_cpu_s": media_load["cpu_s"], "media_wall_s": media_load["wall_s"]}
    result.summary["cpu"] = cpu_summary([load, *(r["cpu"] for r in reports if r["cpu"])], participants, seconds)
    if workers:
        result.summary["workers"] = [{k: v for k, v in r.items() if k != "cpu"} for r in reports]
        died = [r["reason"] for r in reports if r["died"]]
        if died:
            result.summary.update(real_time=False, real_time_reason="; ".join(died))
    if out is not None:
        write_outputs(result, out)
    return result


def mark_late(received: pd.DataFrame, media_start: float, fps: float) -> None:
    """Fill ``delay`` and ``late`` of the receivers' rows (in place) from each frame's capture time.

    The tracks pace themselves: frame ``i`` of a kind is captured at ``media_start + i * interval``
    (seconds since the call started; ``1/fps`` for video, 20 ms for audio). ``arrival`` here is
    when the receiver read the decoded frame from aiortc's track (after its jitter buffer and
    decoder), so ``delay`` is capture to playout-ready; rows of unknown frames keep NaN, not late.
    """
    if received.empty:
        return
    interval = np.where(received.kind == "video", 1.0 / fps, FRAME_MS / 1000)
    known = received.frame_index >= 0
    captured = media_start + received.frame_index * interval
    received["delay"] = np.where(known, received.arrival - captured, np.nan)
    received["late"] = known & (received["delay"] > PLAYOUT_BUDGET)


def run_webrtc_call(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 3.0, seed: int = 0,
                    size: Size | None = None, out: str | Path | None = None, *, capture: str = "off",
                    key_policy: RekeyPolicy | str = CALL_KEY_POLICY,
                    rtp_sframe: str | None = None, reproducible_keys: bool = False,
                    encode: str = "live", workers: int = 0) -> WebRTCCallResult:
    """Run the lab's call on aiortc and return a :class:`WebRTCCallResult` (script or notebook).

    Args:
        mode: "dtls-srtp", "e2ee" (SFrame) or "clear-prefix".
        participants: how many (each subscribes to every other one's audio and video).
        seconds: the measured window of media (real time); :data:`TAIL` s more are sent, not counted.
        seed: reproducible pictures and speech offsets (keys too with ``reproducible_keys``; DTLS
            keys are always fresh).
        size: "ci" (320x240, 15 fps) or "full" (640x480, 30 fps); default :func:`lab_size`.
        out: a directory for ``summary.json``, ``sfu-keys.json`` (and ``capture.pcap``), or None.
        capture: "off" (default), "sniff" (scapy on ``lo``, needs root or CAP_NET_RAW) or "auto"
            (sniff where permitted, else nothing, with a note in ``summary["capture"]``).
        key_policy: rekey policy of the roster and the members (e2ee modes), or "fixed" / "naive"
            (:func:`~e2ee_lab.call.common.resolve_key_policy`).
        rtp_sframe: "per-frame" or "per-packet" (e2ee only): the SFU offers ``a=sframe`` and the
            participants send the SFrame RTP payload format (:mod:`e2ee_lab.webrtc.payload_format`).
        reproducible_keys: derive identity keys, sessions and frame keys from ``seed``.
        encode: "live" (default: each participant renders and VP8-encodes its camera during the
            call) or "clip" (each scene encoded once before the call and sent through aiortc's
            pre-encoded path, every frame still through the participant's frame transform; a PLI
            waits for the clip's next key frame, every second). Receivers decode every frame either way.
        workers: 0 (default): every participant in this process, with the SFU; K >= 1: the
            participants in K worker processes (:mod:`e2ee_lab.webrtc.workers`; the SFU stays here,
            at most one worker per participant); the summary then has ``workers`` and each
            worker's CPU.

    Raises:
        ValueError: a bad mode, count, duration, size, encode or workers.  CaptureImpossible: ``capture="tap"``.
        WorkerError: a worker failed before media started.
        NotLoopback: an SDP named a non-loopback address.  ConnectionFailed: a leg did not connect.
        AiortcChanged: the installed aiortc lacks a private attribute the hooks need.
        CallSetupError: the key agreement did not settle.  CaptureNotPermitted: sniff without rights.
    """
    def job() -> WebRTCCallResult:
        return asyncio.run(run_webrtc_call_async(mode, participants, seconds, seed, size, out,
                                                 capture=capture, key_policy=key_policy,
                                                 rtp_sframe=rtp_sframe, reproducible_keys=reproducible_keys,
                                                 encode=encode, workers=workers))

    return run_blocking(job, "e2ee-lab-webrtc")


def run_for_stack(stack: str, mode: str, participants: int, seconds: float, seed: int,
                  size: Size | None, out: str | Path | None, *, srtp_profile: str | None = None,
                  garbage: float = 0.0, capture: str = "off", policy=None,
                  key_policy: RekeyPolicy | str = CALL_KEY_POLICY, sfu_setup=None,
                  sender_options=None, rtp_sframe: str | None = None,
                  reproducible_keys: bool = False, encode: str = "live", workers: int = 0) -> WebRTCCallResult:
    """``run_call(..., stack="webrtc")`` (registered by :mod:`e2ee_lab.webrtc.stack`): runs
    :func:`run_webrtc_call`. The lab-only options must be left at their defaults; the SRTP profile
    is aiortc's choice (AEAD_AES_256_GCM between two aiortc peers, ``summary["srtp_profile"]``).

    Raises:
        ValueError: an unknown stack, or a lab-only option (garbage, policy, sfu_setup,
            sender_options, an SRTP profile other than the lab's default) was set.
    """
    if stack != STACK:
        raise ValueError(f"unknown stack {stack!r}; expected 'lab' or {STACK!r}")
    lab_only = {"garbage": garbage, "policy": policy, "sfu_setup": sfu_setup, "sender_options": sender_options}
    lab_only["srtp_profile"] = None if srtp_profile in (None, DEFAULT_PROFILE) else srtp_profile
    given = [name for name, value in lab_only.items() if value]
    if given:
        raise ValueError(f"the {STACK} stack does not support {', '.join(given)} (lab stack only)")
    return run_webrtc_call(mode, participants, seconds, seed, size, out, capture=capture,
                           key_policy=key_policy, rtp_sframe=rtp_sframe, reproducible_keys=reproducible_keys,
                           encode=encode, workers=workers)


async def _wait_connected(sfu: WebRTCSFU, people: list, check: Callable[[], None] | None = None) -> None:
    """Until every peer connection (SFU side and participant side) is ``connected``; then widen
    their sockets' receive buffers (:func:`widen_receive_buffers`; a worker widens its own).
    ``check``, if given, raises when the call cannot go on (a worker died)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT
    while not (sfu.connected() and all(p.pc.connectionState == "connected" for p in people)):
        if check is not None:
            check()
        if loop.time() > deadline:
            states = {p.name: p.pc.connectionState for p in people}
            raise ConnectionFailed(f"not all legs connected within {CONNECT_TIMEOUT} s: {states}")
        await asyncio.sleep(0.01)
    widen_receive_buffers([*sfu.pcs.values(), *(p.pc for p in people if not getattr(p, "remote", False))])


def worker_setup(mode: str, dims, frames: dict[str, int], seed: int, key_policy: RekeyPolicy,
                 rtp_sframe: str | None, reproducible_keys: bool, encode: str, t0: float,
                 curve: str = "x25519") -> dict:
    """The ``setup`` message's fields for this call's workers (:mod:`e2ee_lab.webrtc.worker`)."""
    return {"mode": mode, "width": dims.width, "height": dims.height, "fps": dims.fps, "frames": dict(frames),
            "seed": seed, "key_policy": key_policy_fields(key_policy), "rtp_sframe": rtp_sframe,
            "reproducible_keys": bool(reproducible_keys), "encode": encode, "t0": t0, "curve": curve}


def widen_receive_buffers(pcs) -> list[int]:
    """Ask :data:`~e2ee_lab.transport.udp.RECEIVE_BUFFER` bytes of receive buffer on every ICE
    socket of ``pcs``, as the lab's own legs do; returns the sizes the kernel granted (capped by
    ``net.core.rmem_max``). The default (208 KiB) holds about 90 datagrams: a full-size key frame
    forwarded while one Python process is busy overflowed it (3 Python members and a browser:
    644 of 19,081 datagrams lost, RcvbufErrors in /proc/net/snmp), and aiortc then waited for the
    next key frame."""
    granted = []
    for pc in pcs:
        for sock in aiortc_hooks.ice_sockets(pc):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            granted.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    return granted


async def _agree_keys(sfu: WebRTCSFU, people: list[WebRTCParticipant], mode: str) -> None:
    """The e2ee modes' group key agreement, through the SFU's signalling relay (as the lab's call)."""
    if mode == "dtls-srtp":
        return
    for p in people:
        p.join_keys(sfu.signalling)
        await asyncio.sleep(0.01)  # let the roster update and key messages cross the relay
    await wait_for_group_keys(sfu.signalling, people)


# --- results -----------------------------------------------------------------------------------------


def _handshakes(sfu: WebRTCSFU, people: list[WebRTCParticipant]) -> pd.DataFrame:
    rows = []
    for p in people:
        entry = sfu.leg_keys(p.name)
        sfu_role = sfu.dtls_role(p.name)
        other = "client" if sfu_role == "server" else "server"
        for side, sdp, role in (("sfu", sfu.offers[p.name], sfu_role), ("participant", p.answer_sdp, other)):
            rows.append({"leg": p.name, "side": side, "sdp": "offer" if side == "sfu" else "answer",
                         "setup": ",".join(sorted(set(dtls_setup(sdp or "")))), "dtls_role": role,
                         "profile": entry.profile.value})
    return pd.DataFrame(rows)


def sent_rows(people: list[WebRTCParticipant]) -> list[SentFrame]:
    """One :class:`~e2ee_lab.call.pipeline.SentFrame` per frame the participants sent, with the RTP
    timestamp on the wire (frames a transform dropped are left out)."""
    rows = []
    for p in people:
        for kind, transform in p.senders.items():
            origin = p.origin(kind)
            if origin is None:
                continue
            for r in transform.records:
                if r.reason:
                    continue
                wire = (origin + r.media_timestamp) % RTP_WRAP
                rows.append(SentFrame(p.name, kind, r.frame_index, transform.ssrc, wire, r.frame_type,
                                      r.encoded_size, r.sent_size, p.packets[transform.ssrc, wire], r.time))
    return rows


def _collect(mode, participants, seconds, seed, size, sfu: WebRTCSFU, people: list[WebRTCParticipant],
             keylog, sockets, handshakes) -> WebRTCCallResult:
    profile = keylog[0].profile.value if keylog else "none"
    config = CallConfig(mode, participants, float(seconds), seed, size, profile, 0.0)
    sent = records_table(sent_rows(people), SentFrame)
    received = records_table((r for p in people for s in p.sinks for r in s.records + s.dropped_records()),
                             ReceivedFrame)
    scenes = {p.name: p.scene for p in people}
    audio = sent[sent.kind == "audio"].groupby("participant").frame_index.max()
    speech = {p.name: sent_speech(p.speech, int(audio.get(p.name, -1)) + 1) for p in people}
    view = sfu.view_packets()
    sframe = [p.name for p in people if p.rtp_sframe_agreed]
    sfu_view = analyze_packets(view, sent, scenes=scenes, speech=speech, sframe_publishers=sframe)
    ssrcs = {t.ssrc: p.name for p in people for t in p.senders.values()}
    wire = analyze_packets(wire_packets([d for p in people for d in p.wire], ssrcs), sent,
                           scenes=scenes, speech=speech, sframe_publishers=sframe)
    relay = pd.DataFrame([(m.time, m.sender, m.recipient, len(m.data), m.data) for m in sfu.signalling.relayed],
                         columns=["time", "sender", "recipient", "size", "data"])
    pictures = {p.name: {s.publisher: s.latest_picture for s in p.sinks
                         if s.kind == "video" and s.latest_picture is not None} for p in people}
    sdp = {p.name: {"offer": sfu.offers.get(p.name, ""), "answer": p.answer_sdp or ""} for p in people}
    cands = pd.DataFrame([{"leg": name, "sdp": which, **vars(c)} for name, pair in sdp.items()
                          for which, text in pair.items() for c in candidates(text)])
    result = WebRTCCallResult(
        config=config, summary={}, sent=sent, received=received, sfu=sfu_view, wire=wire, view=view,
        stolen=sfu.stolen_frames(), keylog=keylog, relay=relay, pictures=pictures, scenes=scenes,
        speech=speech, sockets=sockets, sdp=sdp, candidates=cands, handshakes=handshakes,
        names=[p.name for p in people], members=dict(sfu.signalling.members))
    result.frame_keys = call_frame_keys(people)
    return result


def participant_row(p: WebRTCParticipant, sent: pd.DataFrame, received: pd.DataFrame,
                    window: dict[str, int]) -> dict:
    """One participant's row of ``summary["participants"]``: window frames sent, expected, decoded."""
    row: dict = {"name": p.name}
    for kind in ("video", "audio"):
        counted = sent[(sent.kind == kind) & (sent.frame_index < window[kind])]
        got = received[(received.receiver == p.name) & (received.kind == kind) & received.decoded
                       & (received.frame_index >= 0) & (received.frame_index < window[kind])]
        row[f"{kind}_frames_sent"] = int((counted.participant == p.name).sum())
        row[f"{kind}_frames_expected"] = int((counted.participant != p.name).sum())
        row[f"{kind}_frames_decoded"] = int(len(got))
        arrived = received[(received.receiver == p.name) & (received.kind == kind)
                           & (received.frame_index >= 0) & (received.frame_index < window[kind])]
        row[f"{kind}_frames_verified"] = None  # not measured: aiortc's receivers decode every frame
        row[f"{kind}_frames_late"] = int(arrived.late.sum())
        row[f"{kind}_frames_on_time"] = int((arrived.decrypted & ~arrived.late).sum())
        if kind == "video":
            latency = got.latency.dropna()
            row["video_latency_ms"] = round(1000 * statistics.median(latency), 1) if len(latency) else None
    row.update(plis_sent=p.plis_sent, plis_received=p.plis_received, packetization=p.packetization,
               dropped=dict(sorted(p.counters().items())))
    return row


def wire_summary(wire: SFUView, people: list[WebRTCParticipant]) -> dict:
    """``summary["wire"]`` as the lab's: datagrams sampled, frames seen and decodable without keys."""
    counts = wire.summary()
    return {"srtp_packets": sum(len(p.wire) for p in people),
            **{k: counts[k] for k in ("video_frames_seen", "video_frames_decodable",
                                      "audio_frames_seen", "audio_frames_intelligible")}}


def _summary(result: WebRTCCallResult, sfu: WebRTCSFU, people: list[WebRTCParticipant],
             window: dict[str, int], timing: dict[str, float]) -> dict:
    """The JSON-ready summary: every field of the lab call's summary (:mod:`e2ee_lab.call.run`), with
    the same meaning, plus this stack's own (``stack``, ``window``, ``timing``, ``plis``,
    ``loopback``; per participant ``video_latency_ms``; for the SFU ``frames_stolen`` and
    ``plis_forwarded``).

    How the shared fields are filled here: frame counts cover the measured window (module
    docstring); ``srtp_profile`` is the one aiortc negotiated; ``wire`` is an eavesdropper's
    attempt, without any key, on the first :data:`~e2ee_lab.call.participant.WIRE_SAMPLE` SRTP
    datagrams each participant sent (copied below aiortc's SRTP, as on ``lo``); ``garbage_sent``
    is always ``{}`` (no garbage datagram was sent: this stack has no garbage injector, and
    :func:`run_for_stack` refuses ``garbage``), which is also the lab's value for a call without
    garbage. ``*_frames_late`` / ``*_frames_on_time`` and the ``real_time`` verdict count window
    frames against their capture time (:func:`mark_late`). ``capture``, ``elapsed_s`` and ``cpu``
    are added by the caller.
    """
    config = result.config
    rows = [participant_row(p, result.sent, result.received, window) for p in people]
    stolen = result.stolen
    sfu_summary = {"packets_in": sfu.packets_in, "packets_forwarded": sfu.packets_forwarded,
                   **result.sfu.summary(),
                   "frames_stolen": {k: int((stolen.kind == k).sum()) for k in ("video", "audio")},
                   "plis_sent": sfu.plis_sent, "plis_forwarded": sfu.plis_forwarded,
                   "key_messages_relayed": len(result.relay), "dropped": dict(sorted(sfu.dropped.items()))}
    per_stream = Counter()
    for p in people:
        per_stream.update({(p.name, ssrc): n for ssrc, n in p.plis_by_ssrc.items()})
    addresses = [a for row in result.sockets for a in (row["local"], row["remote"])]
    return {
        "stack": STACK, "mode": config.mode, "participant_count": config.participants,
        "seconds": config.seconds, "seed": config.seed, "size": config.size,
        "srtp_profile": config.srtp_profile,
        "rtp_sframe": next((p.rtp_sframe.value for p in people if p.rtp_sframe), None),
        "reproducible_keys": config.reproducible_keys, "key_policy": config.key_policy,
        "window": {**{f"{k}_frames": v for k, v in window.items()},
                   "definition": "frames captured in the first `seconds` of media; media starts after "
                                 "every leg is connected and every member holds every key"},
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "participants": rows, "sfu": sfu_summary,
        "wire": wire_summary(result.wire, people), "garbage_sent": {},
        "plis": {"sent_by_receivers": sum(p.plis_sent for p in people),
                 "forwarded_by_sfu": sfu.plis_forwarded, "sent_by_sfu": sfu.plis_sent,
                 "received_by_publishers": sum(p.plis_received for p in people),
                 "max_per_stream": max(per_stream.values(), default=0)},
        "loopback": {"sdp_candidates": len(result.candidates),
                     "candidates_loopback": bool(result.candidates.address.isin(LOOPBACK_IPS).all()),
                     "sockets_loopback": all(a[0] in LOOPBACK_IPS for a in addresses)},
        "playout_budget_s": PLAYOUT_BUDGET,
        **real_time_verdict(rows),
        "publishers": config.participants,  # every aiortc participant sends video
        "encode": people[0].encode if people else "live", "views": None,  # aiortc decodes every stream
        "loudest": {"n": None, "room_above": None, "active": False,  # the aiortc SFU forwards every microphone
                    "selection_changes": 0, "audio_withheld": 0},
    }
