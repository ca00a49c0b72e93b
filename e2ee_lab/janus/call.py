"""The lab's call through Janus: aiortc participants in a VideoRoom room that Janus itself records.

:func:`run_janus_call` runs the call of :mod:`e2ee_lab.webrtc.call` (same participants, scenes,
speech, modes, key agreement and frame transforms) with Janus's VideoRoom as the SFU. Janus runs
only inside a private network namespace with nothing but ``lo``: the whole call runs in a child
process that ``unshare -n`` creates (:func:`~e2ee_lab.browser.isolation.run_module_in_netns`,
entry :mod:`e2ee_lab.janus.isolated`), where :func:`run_janus_call_async`:

1. starts Janus (:class:`~e2ee_lab.janus.server.JanusServer`) and, as the operator, creates a
   VP8/Opus room with the admin key, ``record: true`` (recordings under ``OUT/janus/recordings``)
   and, in the e2ee modes, ``require_e2ee: true``;
2. each participant publishes (its offer with ``"e2ee": true`` in the e2ee modes), then
   subscribes to every other feed once Janus reported that feed's PeerConnection up
   (``webrtcup``; earlier Janus answers 428 "No such feed");
3. in the e2ee modes the members agree frame keys through the application's signalling relay
   (:class:`~e2ee_lab.sfu.server.SignallingRelay`; Janus carries media only);
4. Janus's CPU time (``/proc``, :func:`~e2ee_lab.janus.server.cpu_seconds`) is read over
   :data:`IDLE` s with every PeerConnection up and no media (its idle rate), then media flows for
   ``seconds`` (+ :data:`~e2ee_lab.webrtc.call.TAIL` s not counted) and Janus's CPU time is read
   from media start to after the drain; its admin API's ``handle_info`` is kept for every handle
   (:mod:`e2ee_lab.janus.admin`);
5. publishers leave (Janus closes the recordings), everything closes, Janus stops; then the
   recordings are converted by ``janus-pp-rec`` and decoded (:mod:`e2ee_lab.janus.recording`):
   that is the SFU's view in the summary.

The summary has every field of the lab call's (``participants``: window frames sent, expected and
decoded per receiver; ``sfu``; ``wire``; ``garbage_sent``, always ``{}``) plus ``janus``: the
per-stream admin view, ICE and DTLS times, CPU time and forwarded packets.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from e2ee_lab.analysis.sfu_view import SFUView, analyze_packets, sent_speech, wire_packets
from e2ee_lab.call.pipeline import ReceivedFrame, SentFrame
from e2ee_lab.call.common import (
    CALL_KEY_POLICY,
    START_DELAY,
    CallConfig,
    records_table,
    resolve_key_policy,
    wait_for_group_keys,
    write_outputs,
)
from e2ee_lab.config import Size
from e2ee_lab.crypto.keys import RekeyPolicy
from e2ee_lab.media.scene import Scene, video_size
from e2ee_lab.media.speech import FRAME_MS
from e2ee_lab.sfu.server import SignallingRelay
from e2ee_lab.transport import KeyLogEntry
from e2ee_lab.webrtc.aiortc_hooks import check_aiortc
from e2ee_lab.webrtc.call import DRAIN, TAIL, participant_row, sent_rows, validate_call, wire_summary
from e2ee_lab.webrtc.sdp import candidates

from .admin import handle_infos, stream_table
from .client import JanusSession, VideoRoom, plugin_data
from .participant import JanusParticipant, RebasedIndex
from .recording import RecordingView, read_recordings, recording_view
from .server import JanusServer

STACK = "janus"
NETNS_TIMEOUT = 300.0  # seconds a Janus call in its namespace may take
IDLE = 0.5  # seconds Janus's CPU is measured with every PeerConnection up before media starts
LOOPBACK_IPS = ("127.0.0.1", "::1")


@dataclass
class JanusCallResult:
    """What a Janus call produced; fields shared with the aiortc call's result mean the same
    (``summary``, ``sent``, ``received``, ``wire``, ``keylog``, ``pictures``, ``scenes``,
    ``speech``, ``names``, ``members``, ``sdp``, ``candidates``).

    ``sfu``: the lab's judging of Janus's recording (:class:`~e2ee_lab.analysis.sfu_view.SFUView`);
    ``recording``: per recorded stream what Janus wrote and ``janus-pp-rec`` gave back;
    ``streams``: the admin API's view, one row per stream (:data:`~e2ee_lab.janus.admin.STREAM_COLUMNS`);
    ``admin``: the raw ``handle_info`` answers by ``"name/role"``; ``keylog``: every leg's SRTP
    keys, exported on the participant's side (the same keys Janus holds); ``janus_log``: the end
    of Janus's log.
    """

    config: CallConfig
    summary: dict
    sent: pd.DataFrame
    received: pd.DataFrame
    sfu: SFUView
    wire: SFUView
    recording: pd.DataFrame
    streams: pd.DataFrame
    admin: dict
    keylog: list[KeyLogEntry]
    pictures: dict[str, dict[str, tuple[int, np.ndarray]]]
    scenes: dict[str, Scene]
    speech: dict[str, np.ndarray]
    sdp: dict[str, dict[str, str]]
    candidates: pd.DataFrame
    names: list[str] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)
    out: Path | None = None
    janus_log: str = ""
    capture: None = None  # no capture of a Janus call (its packets stay in its namespace)
    stack: str = STACK

    def delivery(self, kind: str = "video") -> pd.Series:
        """Per receiver: window frames decoded / window frames the others sent, for ``kind``."""
        return pd.Series({p["name"]: p[f"{kind}_frames_decoded"] / max(1, p[f"{kind}_frames_expected"])
                          for p in self.summary["participants"]}, name=f"{kind} delivery")


def janus_problem() -> str | None:
    """Why a Janus call cannot run here (no Janus, no janus-pp-rec, no namespace), or None."""
    from e2ee_lab.browser.isolation import netns_problem

    from .config import find_lib_dir
    from .server import janus_binary
    from .shim import compiler, shim_path

    if janus_binary() is None or find_lib_dir() is None:
        return "Janus is not installed (apt-get install janus janus-tools)"
    if shutil.which("janus-pp-rec") is None:
        return "janus-pp-rec is not installed (apt-get install janus-tools)"
    if compiler() is None and not shim_path().exists():
        return "no C compiler to build the loopback shim (apt-get install gcc)"
    problem = netns_problem()
    return None if problem is None else f"Janus runs only in a private network namespace: {problem}"


def run_janus_call(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 3.0, seed: int = 0,
                   size: Size | None = None, out: str | Path | None = None, *,
                   key_policy: RekeyPolicy | str = CALL_KEY_POLICY, timeout: float = NETNS_TIMEOUT,
                   reproducible_keys: bool = False) -> JanusCallResult:
    """Run the lab's call through Janus in a private network namespace; returns its result.

    Args:
        mode: "dtls-srtp", "e2ee" (SFrame) or "clear-prefix".
        participants: how many (2..16; each publishes and subscribes to every other one).
        seconds: the measured window of media (real time).
        seed: reproducible pictures and speech offsets (keys too with ``reproducible_keys``; DTLS
            keys are always fresh).
        size: "ci" (320x240, 15 fps) or "full" (640x480, 30 fps); default :func:`lab_size`.
        out: a directory for ``summary.json``, ``sfu-keys.json`` and ``janus/`` (recordings, their
            conversions, Janus's configuration and log, ``admin.json``; the folders ``recordings``,
            ``converted`` and ``run`` under ``janus/`` are emptied first), or None.
        key_policy: rekey policy of the members (e2ee modes), or "fixed" / "naive"
            (:func:`~e2ee_lab.call.common.resolve_key_policy`).
        timeout: seconds the whole call (start, media, conversion) may take.
        reproducible_keys: derive identity keys, sessions and frame keys from ``seed``.

    Raises:
        ValueError: a bad mode, count, duration or size.
        JanusUnavailable: Janus, janus-pp-rec, a C compiler or root is missing (:func:`janus_problem`).
        IsolationFailed: the call in the namespace failed (the end of its stderr is in the message).
    """
    from e2ee_lab.browser.isolation import run_module_in_netns

    from .errors import JanusUnavailable

    size = validate_call(mode, participants, seconds, size)
    key_policy = resolve_key_policy(key_policy)
    if participants > 16:
        raise ValueError(f"a Janus call takes 2..16 participants, not {participants}")
    problem = janus_problem()
    if problem is not None:
        raise JanusUnavailable(problem)
    kwargs = {"mode": mode, "participants": participants, "seconds": seconds, "seed": seed, "size": size,
              "out": str(Path(out).resolve()) if out is not None else None, "key_policy": key_policy,
              "reproducible_keys": bool(reproducible_keys)}
    return run_module_in_netns("e2ee_lab.janus.isolated", kwargs, timeout)


def run_for_stack(stack: str, mode: str, participants: int, seconds: float, seed: int, size: Size | None,
                  out: str | Path | None, *, sfu: str = STACK, capture: str = "off", srtp_profile: str | None = None,
                  garbage: float = 0.0, policy=None, sfu_setup=None, sender_options=None,
                  key_policy: RekeyPolicy | str = CALL_KEY_POLICY, reproducible_keys: bool = False) -> JanusCallResult:
    """``run_call(..., sfu="janus")`` and ``e2ee-lab call --sfu janus`` (:mod:`e2ee_lab.janus.stack`):
    :func:`run_janus_call`.

    Janus picks the SRTP profile (AEAD_AES_256_GCM with aiortc) and no capture is recorded
    (``capture`` "auto" or "off" only; ``summary["capture"]`` says so).

    Raises:
        ValueError: ``sfu`` is not "janus"; ``stack`` names another stack (the Janus call has its
            own aiortc participants); a lab-only option (garbage, policy, sfu_setup,
            sender_options, an SRTP profile other than the lab's default) or a capture was asked for.
    """
    from e2ee_lab.call.common import DEFAULT_PROFILE

    if sfu != STACK:
        raise ValueError(f"unknown SFU {sfu!r}; expected {STACK!r}")
    if stack != "lab":
        raise ValueError(f"the Janus call runs its own aiortc participants: leave out stack={stack!r}")
    lab_only = {"garbage": garbage, "policy": policy, "sfu_setup": sfu_setup, "sender_options": sender_options,
                "srtp_profile": None if srtp_profile in (None, DEFAULT_PROFILE) else srtp_profile,
                "capture": None if capture in ("auto", "off") else capture}
    given = [name for name, value in lab_only.items() if value]
    if given:
        raise ValueError(f"the Janus call does not support {', '.join(given)} (lab stack only)")
    result = run_janus_call(mode, participants, seconds, seed, size, out, key_policy=key_policy,
                            reproducible_keys=reproducible_keys)
    result.summary["capture"] = {"note": "no capture: Janus runs in its own network namespace"}
    if out is not None:
        write_outputs(result, out)
    return result


async def run_janus_call_async(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 3.0,
                               seed: int = 0, size: Size | None = None, out: str | Path | None = None, *,
                               key_policy: RekeyPolicy | str = CALL_KEY_POLICY,
                               reproducible_keys: bool = False) -> JanusCallResult:
    """The call itself, in the running loop of the namespace's child process (see
    :func:`run_janus_call`; Janus refuses to start anywhere else)."""
    size = validate_call(mode, participants, seconds, size)
    check_aiortc()
    with tempfile.TemporaryDirectory(prefix="e2ee-lab-janus-") as tmp:
        base = Path(out) / "janus" if out is not None else Path(tmp)
        result = await _call(mode, participants, seconds, seed, size, base, resolve_key_policy(key_policy),
                             reproducible_keys)
    if out is not None:
        write_outputs(result, out)
        (Path(out) / "janus" / "admin.json").write_text(json.dumps(result.admin, indent=1) + "\n")
    return result


async def _call(mode: str, count: int, seconds: float, seed: int, size: Size, base: Path,
                key_policy: RekeyPolicy, reproducible_keys: bool) -> JanusCallResult:
    started = time.perf_counter()
    for sub in ("recordings", "converted", "run"):
        shutil.rmtree(base / sub, ignore_errors=True)
        (base / sub).mkdir(parents=True)
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> float:
        return loop.time() - t0

    dims = video_size(size)
    window = {"video": int(round(seconds * dims.fps)), "audio": int(round(seconds * 1000 / FRAME_MS))}
    frames = {"video": window["video"] + int(np.ceil(TAIL * dims.fps)),
              "audio": window["audio"] + int(np.ceil(TAIL * 1000 / FRAME_MS))}
    truth = RebasedIndex()
    people = [JanusParticipant(i, mode=mode, size=dims, frames=frames, seed=seed, clock=clock,
                               key_policy=key_policy, truth=truth, reproducible_keys=reproducible_keys)
              for i in range(count)]
    truth.people = {p.name: p for p in people}
    relay = SignallingRelay(key_policy)
    run: dict = {"timing": {}}
    async with JanusServer(base / "run") as janus:
        run["timing"]["janus_up_s"] = clock()
        try:
            await _in_room(janus, people, relay, mode, base / "recordings", seconds, run, clock)
        finally:
            for p in people:
                await p.close()
        run["timing"]["closed_s"] = clock()
        run["log"] = janus.log_tail(30)
    run["timing"]["janus_stopped_s"] = clock()
    feeds = {p.feed: p.name for p in people if p.feed is not None}
    result = _collect(mode, count, seconds, seed, size, people, run, relay)
    result.config = replace(result.config, reproducible_keys=reproducible_keys,
                            key_policy=key_policy.name)
    result.recording, view = _recording(base, feeds, result, dims.fps)
    result.sfu = view.view
    run["timing"]["recording_read_s"] = clock()
    result.summary = _summary(result, people, view, window, run)
    result.summary["elapsed_s"] = round(time.perf_counter() - started, 2)
    return result


async def _in_room(janus: JanusServer, people: list[JanusParticipant], relay: SignallingRelay, mode: str,
                   rec_dir: Path, seconds: float, run: dict, clock) -> None:
    """Steps 1-5 of the module docstring while Janus runs; fills ``run``."""
    assert janus.config is not None
    operator = JanusSession(janus.config.api_url)
    await operator.create()
    try:
        room = secrets.randbelow(1 << 30) + 1
        videoroom = await VideoRoom.attach(operator)
        await videoroom.create_room(room, admin_key=janus.config.admin_key, publishers=len(people),
                                    record=True, rec_dir=str(rec_dir), require_e2ee=mode != "dtls-srtp")
        feeds = {await p.publish(janus.config.api_url, room): p.name for p in people}
        for p in people:
            await p.subscribe(room, {f: n for f, n in feeds.items() if n != p.name})
        run["timing"]["connected_s"] = clock()
        if mode != "dtls-srtp":
            for p in people:
                p.join_keys(relay)
                await asyncio.sleep(0.01)  # let the roster update and key messages cross the relay
            await wait_for_group_keys(relay, people)
        for p in people:
            p.arm(relay.members)
        cpu0, wall0 = janus.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(IDLE)  # every PeerConnection up, no media yet: Janus's idle rate
        run["idle_cpu_share"] = (janus.cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        loop = asyncio.get_running_loop()
        start = loop.time() + START_DELAY
        run["timing"]["media_start_s"] = clock() + START_DELAY
        cpu0, threads0, wall0 = janus.cpu_seconds(), janus.thread_cpu(), time.perf_counter()
        for p in people:
            p.start.set_result(start)
        await asyncio.sleep(START_DELAY + seconds + TAIL + DRAIN)
        run["cpu_s"], run["wall_s"] = janus.cpu_seconds() - cpu0, time.perf_counter() - wall0
        run["timing"]["media_end_s"] = clock()
        run["threads"] = {k: round(v - threads0.get(k, 0.0), 3) for k, v in janus.thread_cpu().items()
                          if v - threads0.get(k, 0.0) > 0}
        handles = {k: v for p in people for k, v in p.handles().items()}
        run["admin"] = {f"{n}/{r}": info for (n, r), info in (await handle_infos(janus.config, handles)).items()}
        run["keylog"] = [e for p in people for e in p.keylog()]
        run["talking"] = _talking(people[0], {p.feed: p.name for p in people})
        run["janus"] = {"pid": janus.pid, "version": janus.info.get("version_string"),
                        "shim": janus.shim.name if janus.shim else None}
        for p in people:
            await p.leave()
    finally:
        await operator.destroy()


def _talking(observer: JanusParticipant, names: dict[int | None, str]) -> dict[str, dict[str, int]]:
    """VideoRoom's ``talking`` / ``stopped-talking`` announcements about each publisher, as one
    participant's publisher handle received them (the room sends them to every publisher)."""
    counts: dict[str, dict[str, int]] = {name: {"talking": 0, "stopped-talking": 0} for name in names.values()}
    if observer.session is None or observer.publisher is None:
        return counts
    for event in observer.session.events[observer.publisher.handle]:
        data = plugin_data(event) or {}
        who, kind = names.get(data.get("id")), data.get("videoroom")  # type: ignore[arg-type]
        if who is not None and kind in ("talking", "stopped-talking"):
            counts[who][kind] += 1
    return counts


def _collect(mode, count, seconds, seed, size, people: list[JanusParticipant], run: dict,
             relay: SignallingRelay) -> JanusCallResult:
    keylog = run.get("keylog", [])
    config = CallConfig(mode, count, float(seconds), seed, size, keylog[0].profile.value if keylog else "none", 0.0)
    sent = records_table(sent_rows(people), SentFrame)
    received = records_table((r for p in people for s in p.sinks for r in s.records + s.dropped_records()),
                             ReceivedFrame)
    scenes = {p.name: p.scene for p in people}
    audio = sent[sent.kind == "audio"].groupby("participant").frame_index.max()
    speech = {p.name: sent_speech(p.speech, int(audio.get(p.name, -1)) + 1) for p in people}
    ssrcs = {t.ssrc: p.name for p in people for t in p.senders.values()}
    wire = analyze_packets(wire_packets([d for p in people for d in p.wire], ssrcs), sent, scenes=scenes, speech=speech)
    pictures = {p.name: {s.publisher: s.latest_picture for s in p.sinks
                         if s.kind == "video" and s.latest_picture is not None} for p in people}
    sdp = {p.name: dict(p.sdp) for p in people}
    cands = pd.DataFrame([{"participant": name, "sdp": which, **vars(c)} for name, texts in sdp.items()
                          for which, text in texts.items() for c in candidates(text)])
    admin = run.get("admin", {})
    return JanusCallResult(
        config=config, summary={}, sent=sent, received=received, sfu=wire, wire=wire,
        recording=pd.DataFrame(), streams=stream_table({tuple(k.split("/")): v for k, v in admin.items()}),
        admin=admin, keylog=keylog, pictures=pictures, scenes=scenes, speech=speech, sdp=sdp,
        candidates=cands, names=[p.name for p in people], members=dict(relay.members),
        janus_log=run.get("log", ""))


def _recording(base: Path, feeds: dict[int, str], result: JanusCallResult, fps: int) -> tuple[pd.DataFrame, RecordingView]:
    recordings = read_recordings(base / "recordings", feeds)
    view = recording_view(recordings, base / "converted", result.sent, scenes=result.scenes,
                          speech=result.speech, fps=fps)
    return view.streams, view


def _summary(result: JanusCallResult, people: list[JanusParticipant], view: RecordingView,
             window: dict[str, int], run: dict) -> dict:
    """The JSON-ready summary (module docstring): the lab call's fields, the SFU's view from
    Janus's recording, and ``janus`` (admin view, times, CPU)."""
    config, streams = result.config, result.streams
    rows = [participant_row(p, result.sent, result.received, window) for p in people]
    pub, sub = streams[streams.role == "publisher"], streams[streams.role == "subscriber"]
    packets_in, forwarded = int(pub.packets_in.fillna(0).sum()), int(sub.packets_out.fillna(0).sum())
    cpu_s, wall_s, idle = run.get("cpu_s", 0.0), run.get("wall_s", 0.0), run.get("idle_cpu_share", 0.0)
    above_idle = max(0.0, cpu_s - idle * wall_s)
    sfu = {"packets_in": packets_in, "packets_forwarded": forwarded, **view.summary(),
           "source": "Janus's own recording (VideoRoom record: true), converted by janus-pp-rec",
           "dropped": {}}
    legs = streams.drop_duplicates(["participant", "role"])
    janus = {**run.get("janus", {}), "isolation": "network namespace with only lo",
             "cpu_s": round(cpu_s, 3), "wall_s": round(wall_s, 3),
             "us_per_forwarded_packet": round(1e6 * cpu_s / forwarded, 1) if forwarded else None,
             "idle_cpu_share": round(idle, 4),
             "us_per_forwarded_packet_above_idle": round(1e6 * above_idle / forwarded, 1) if forwarded else None,
             "forwarded_per_cpu_s": round(forwarded / cpu_s) if cpu_s else None,
             "talking_events": run.get("talking", {}),
             "cpu_s_by_thread": dict(sorted(run.get("threads", {}).items(), key=lambda kv: -kv[1])),
             "ice_ms": _stats(legs.ice_ms), "dtls_ms": _stats(legs.dtls_ms),
             "up_s": {p.name: {k: round(v, 3) for k, v in p.timing.items()} for p in people},
             "srtp_profiles": sorted(set(legs.srtp_profile.dropna())),
             "selected_pairs": sorted(set(legs.selected_pair.dropna())),
             "streams": json.loads(streams.to_json(orient="records"))}
    return {
        "stack": STACK, "mode": config.mode, "participant_count": config.participants,
        "seconds": config.seconds, "seed": config.seed, "size": config.size, "srtp_profile": config.srtp_profile,
        "reproducible_keys": config.reproducible_keys, "key_policy": config.key_policy,
        "window": {**{f"{k}_frames": v for k, v in window.items()},
                   "definition": "frames captured in the first `seconds` of media; media starts after "
                                 "every PeerConnection is up and every member holds every key"},
        "timing": {k: round(v, 3) for k, v in run["timing"].items()},
        "participants": rows, "sfu": sfu, "wire": wire_summary(result.wire, people), "garbage_sent": {},
        "janus": janus,
        "loopback": {"sdp_candidates": len(result.candidates),
                     "candidates_loopback": bool(len(result.candidates)
                                                 and result.candidates.address.isin(LOOPBACK_IPS).all())},
    }


def _stats(values: pd.Series) -> dict:
    v = values.dropna()
    return {"median": round(float(v.median()), 1), "max": round(float(v.max()), 1)} if len(v) else {}
