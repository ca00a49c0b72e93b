"""The aiortc call with a libwebrtc participant, in a private network namespace with only ``lo``.

:func:`run_native_call` runs the call of :mod:`e2ee_lab.webrtc.call` (aiortc SFU, ``participants``
aiortc members with the lab's SFrame) with one more member on libwebrtc M152
(:class:`~e2ee_lab.native.participant.NativeParticipant`, PyPI ``wrtc``) whose frames libwebrtc's
own SFrame encrypts and decrypts. libwebrtc gathers candidates on every interface and cannot be
restricted, so the whole call runs only in a child process that ``unshare -n`` created with nothing
but ``lo`` (:func:`~e2ee_lab.browser.isolation.run_module_in_netns`, entry
:mod:`e2ee_lab.native.isolated`, as root): a native participant is never created anywhere else.
Without root, without ``unshare``/``ip`` or without ``wrtc`` it raises
:class:`~e2ee_lab.native.errors.NativeUnavailable` with the reason in one line.

Inside (:func:`run_native_call_async`): the SFU offers to every member, libwebrtc answers like the
others (its candidates shared across the bundle so aiortc reads them,
:mod:`e2ee_lab.native.sdp`); once every leg is connected the members agree keys through the SFU's
signalling relay, libwebrtc gets its base keys (:mod:`e2ee_lab.native.keys`), media runs for
``seconds`` (plus :data:`~e2ee_lab.webrtc.call.TAIL` s not counted). Everything is packetized by
each codec's RTP format: libwebrtc answers without ``a=packetization`` because aiortc did not
offer it, so it packetizes its SFrame ciphertext as VP8, and receives the aiortc members' SFrame
ciphertext in VP8 packets, whose first payload byte (the SFrame header's first byte) its
depacketizer reads as VP8's key-frame bit (:func:`key_frame_flags` says which frames it took for
key frames).

The summary has every field of the aiortc call's (:func:`~e2ee_lab.webrtc.call.participant_row`
for the aiortc members; the native participant one more row of ``participants``) plus
``native``: its KIDs, what libwebrtc's statistics and decryptors counted, and per direction and
media kind what each receiver decoded (:func:`directions`). Frame counts cover the measured
window; the native participant's audio counts come from libwebrtc's statistics over the whole call
(samples decoded and not concealed), its sent counts from the frames the SFU received from it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from e2ee_lab.analysis.sfu_view import SFUView, analyze_packets, sent_speech, wire_packets
from e2ee_lab.call.capture import CallCapture, CaptureInfo, FrameKeys, call_frame_keys
from e2ee_lab.call.common import (
    CALL_KEY_POLICY, DEFAULT_PROFILE, START_DELAY, CallConfig, records_table, resolve_key_policy, wait_for_group_keys,
    write_outputs,
)
from e2ee_lab.call.pipeline import ReceivedFrame, SentFrame
from e2ee_lab.config import Size
from e2ee_lab.crypto.keys import RekeyPolicy, parse_kid
from e2ee_lab.media.scene import Scene, video_size
from e2ee_lab.media.speech import FRAME_MS
from e2ee_lab.transport import KeyLogEntry
from e2ee_lab.webrtc.call import (
    CONNECT_TIMEOUT,
    DRAIN,
    LOOPBACK_IPS,
    TAIL,
    capture_mode,
    participant_row,
    sent_rows,
    validate_call,
    wire_summary,
)
from e2ee_lab.webrtc.sdp import candidates

from .errors import NativeUnavailable

STACK = "webrtc"  # the native participant joins the aiortc stack's call
NETNS_TIMEOUT = 240.0  # seconds a native call in its namespace may take
MODES = ("dtls-srtp", "e2ee")


@dataclass
class NativeCallResult:
    """What a native call produced; the fields shared with the aiortc call's result mean the same
    (``summary``, ``sent``, ``received``, ``sfu``, ``wire``, ``keylog``, ``scenes``, ``speech``,
    ``names``, ``members``, ``sdp``, ``candidates``, ``capture``, ``frame_keys``). ``sent`` and
    ``received`` have the native participant's rows too (``frame_keys``: its keys too); ``view`` is
    every publisher packet the SFU received; ``stats`` is libwebrtc's ``getStats()`` digest
    (:meth:`NativeParticipant.stats`)."""

    config: CallConfig
    summary: dict
    sent: pd.DataFrame
    received: pd.DataFrame
    sfu: SFUView
    wire: SFUView
    view: pd.DataFrame
    keylog: list[KeyLogEntry]
    scenes: dict[str, Scene]
    speech: dict[str, np.ndarray]
    sdp: dict[str, dict[str, str]]
    candidates: pd.DataFrame
    stats: dict[str, dict]
    names: list[str] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)
    out: Path | None = None
    capture: CaptureInfo | None = None
    frame_keys: FrameKeys | None = None  # the members' SFrame keys (e2ee), the receivers' secret
    stack: str = STACK

    def delivery(self, kind: str = "video") -> pd.Series:
        """Per receiver: window frames decoded / window frames the others sent, for ``kind``."""
        return pd.Series({p["name"]: p[f"{kind}_frames_decoded"] / max(1, p[f"{kind}_frames_expected"])
                          for p in self.summary["participants"]}, name=f"{kind} delivery")


def native_problem() -> str | None:
    """Why a native call cannot run here (no wrtc, no private network namespace), or None."""
    from e2ee_lab.browser.isolation import netns_problem
    from e2ee_lab.interop import wrtc_problem

    problem = wrtc_problem()
    if problem is not None:
        return problem
    problem = netns_problem()
    return None if problem is None else f"a libwebrtc participant runs only in a private network namespace: {problem}"


def run_native_call(mode: str = "e2ee", participants: int = 2, seconds: float = 3.0, seed: int = 0,
                    size: Size | None = None, out: str | Path | None = None, *, capture: str = "off",
                    key_policy: RekeyPolicy | str = CALL_KEY_POLICY, reproducible_keys: bool = False,
                    timeout: float = NETNS_TIMEOUT) -> NativeCallResult:
    """Run the aiortc call with one libwebrtc participant in a private network namespace.

    Args:
        mode: "e2ee" (SFrame: the lab's for the aiortc members, libwebrtc's own for the native one)
            or "dtls-srtp" (no frame transform).
        participants: the aiortc members (1..8); the native participant joins them.
        seconds: the measured window of media (real time).
        seed: reproducible pictures and speech offsets (keys too with ``reproducible_keys``; DTLS
            keys are always fresh).
        size: "ci" or "full" (default :func:`~e2ee_lab.config.lab_size`).
        out: a directory for ``summary.json``, ``sfu-keys.json``, ``frame-keys.json`` (e2ee) and
            ``capture.pcap``, or None.
        capture: "off", "sniff" or "auto" (both sniff ``lo`` inside the namespace, as root).
        key_policy: rekey policy of the members, or "fixed" / "naive"
            (:func:`~e2ee_lab.call.common.resolve_key_policy`; libwebrtc's decryptors attribute by
            KID under either, :mod:`e2ee_lab.native.keys`).
        reproducible_keys: derive identity keys, sessions and frame keys from ``seed``.
        timeout: seconds the call in its namespace may take.

    Raises:
        ValueError: a bad mode, count, duration, size or capture.
        NativeUnavailable: no wrtc, not root, or no network namespace (:func:`native_problem`).
        IsolationFailed: the call in the namespace failed (the end of its stderr is in the message).
    """
    from e2ee_lab.browser.isolation import run_module_in_netns

    if mode not in MODES:
        raise ValueError(f"a native participant runs in {' or '.join(MODES)}, not {mode!r}")
    key_policy = resolve_key_policy(key_policy)
    if not 1 <= participants <= 8:
        raise ValueError(f"a native call takes 1..8 aiortc participants besides it, not {participants}")
    size = validate_call(mode, participants + 1, seconds, size)
    if capture not in ("off", "auto", "sniff"):
        raise ValueError(f"a native call records only by sniffing lo in its namespace: capture must be off, "
                         f"auto or sniff, not {capture!r}")
    problem = native_problem()
    if problem is not None:
        raise NativeUnavailable(problem)
    kwargs = {"mode": mode, "participants": participants, "seconds": seconds, "seed": seed, "size": size,
              "out": str(Path(out).resolve()) if out is not None else None, "capture": capture,
              "key_policy": key_policy, "reproducible_keys": bool(reproducible_keys)}
    return run_module_in_netns("e2ee_lab.native.isolated", kwargs, timeout)


def run_for_call(stack: str, natives: int, mode: str, participants: int, seconds: float, seed: int,
                 size: Size | None, out: str | Path | None, *, capture: str = "off",
                 key_policy: RekeyPolicy | str = CALL_KEY_POLICY, reproducible_keys: bool = False,
                 **lab_only) -> NativeCallResult:
    """``run_call(..., stack="webrtc", native_participants=1)`` and ``e2ee-lab call --stack webrtc
    --native 1`` (:mod:`e2ee_lab.native.stack`): :func:`run_native_call`.

    Raises:
        ValueError: a stack other than "webrtc", a native count other than 1, or a lab-only option
            (srtp_profile other than the default, garbage, policy, sfu_setup, sender_options, rtp_sframe).
    """
    if stack != STACK:
        raise ValueError(f"a native participant joins the aiortc call: it needs stack='webrtc', not {stack!r}")
    if natives != 1:
        raise ValueError(f"a call takes exactly one native participant, not {natives}")
    defaults = {"srtp_profile": (None, DEFAULT_PROFILE)}
    given = sorted(k for k, v in lab_only.items() if v not in defaults.get(k, (None, 0, 0.0)))
    if given:
        raise ValueError(f"a native call does not support {', '.join(given)}")
    if capture == "tap":
        capture_mode(capture)  # raises CaptureImpossible with the reason
    result = run_native_call(mode, participants, seconds, seed, size, out, capture=capture, key_policy=key_policy,
                             reproducible_keys=reproducible_keys)
    if out is not None:
        write_outputs(result, out)
    return result


# --- inside the namespace ------------------------------------------------------------------------


async def run_native_call_async(mode: str = "e2ee", participants: int = 2, seconds: float = 3.0, seed: int = 0,
                                size: Size | None = None, out: str | None = None, *, capture: str = "off",
                                key_policy: RekeyPolicy = CALL_KEY_POLICY,
                                reproducible_keys: bool = False) -> NativeCallResult:
    """The call itself, in the running loop of the namespace's child process (see :func:`run_native_call`)."""
    from e2ee_lab.webrtc.aiortc_hooks import check_aiortc

    started = time.perf_counter()
    size = validate_call(mode, participants + 1, seconds, size)
    check_aiortc()
    how, note = capture_mode("sniff" if capture == "auto" else capture)
    recorder = CallCapture(out, how)  # type: ignore[arg-type]
    call = _Call(mode, participants, seconds, seed, size, key_policy, reproducible_keys)
    await recorder.start()
    try:
        keylog, sockets, stats = await call.run()
    finally:
        await call.close()
        await recorder.stop()
    result = _collect(mode, participants, seconds, seed, size, call.sfu, call.people, call.native, call.truth,
                      keylog, stats)
    result.config = replace(result.config, reproducible_keys=reproducible_keys, key_policy=key_policy.name)
    result.capture = await recorder.finish(sockets)
    result.summary = _summary(result, call.sfu, call.people, call.native, call.window, call.timing)
    result.summary["capture"] = result.capture.summary() if result.capture else {"note": note or "off"}
    result.summary["elapsed_s"] = round(time.perf_counter() - started, 2)
    return result


class _Call:
    """The members, the libwebrtc participant and the SFU of one native call, and its steps."""

    def __init__(self, mode: str, participants: int, seconds: float, seed: int, size: Size,
                 key_policy: RekeyPolicy, reproducible_keys: bool) -> None:
        from e2ee_lab.webrtc.participant import WebRTCParticipant
        from e2ee_lab.webrtc.sfu import WebRTCSFU

        from .participant import NativeParticipant
        from .truth import NativeTruth

        self.mode, self.seconds = mode, seconds
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        dims = video_size(size)
        self.window = {"video": int(round(seconds * dims.fps)), "audio": int(round(seconds * 1000 / FRAME_MS))}
        frames = {"video": self.window["video"] + int(np.ceil(TAIL * dims.fps)),
                  "audio": self.window["audio"] + int(np.ceil(TAIL * 1000 / FRAME_MS))}
        self.truth = NativeTruth()
        self.people = [WebRTCParticipant(i, mode=mode, size=dims, frames=frames, seed=seed, clock=self.clock,
                                         key_policy=key_policy, truth=self.truth, reproducible_keys=reproducible_keys)
                       for i in range(participants)]
        self.native = NativeParticipant(participants, mode=mode, size=dims, frames=frames, seed=seed,
                                        clock=self.clock, key_policy=key_policy, truth=self.truth,
                                        reproducible_keys=reproducible_keys)
        self.sfu = WebRTCSFU([p.name for p in self.people] + [self.native.name], key_policy=key_policy,
                             clock=self.clock)
        self.truth.people, self.truth.native, self.truth.sfu = {p.name: p for p in self.people}, self.native, self.sfu
        self.timing: dict[str, float] = {}

    def clock(self) -> float:
        """Seconds since the call started."""
        return self.loop.time() - self.t0

    async def run(self) -> tuple[list[KeyLogEntry], list[dict], dict]:
        """Connect, agree keys, run the media; returns the SFU's key log and sockets, libwebrtc's stats."""
        from e2ee_lab.webrtc.loopback import loopback_ice

        with loopback_ice():
            for p in [*self.people, self.native]:
                await self.sfu.accept(p.name, await p.answer(await self.sfu.offer(p.name)))
        await self._connected()
        self.timing["connected_s"] = self.clock()
        await self._agree_keys()
        self.timing["keys_agreed_s"] = self.clock()
        start = self.loop.time() + START_DELAY
        self.timing["media_start_s"] = start - self.t0
        for p in self.people:
            p.start.set_result(start)
        media = asyncio.ensure_future(self.native.send_media(start))
        await asyncio.sleep(START_DELAY + self.seconds + TAIL + DRAIN)
        await media
        return self.sfu.keylog(), self.sfu.sockets(), await self.native.stats()

    async def _connected(self) -> None:
        """Until every peer connection (the SFU's, the members', libwebrtc's) is ``connected``."""
        from e2ee_lab.webrtc.errors import ConnectionFailed

        deadline = self.loop.time() + CONNECT_TIMEOUT
        while not (self.sfu.connected() and all(p.pc.connectionState == "connected" for p in self.people)
                   and self.native.pc.connection_state == "connected"):
            if self.loop.time() > deadline:
                states = {**{p.name: p.pc.connectionState for p in self.people},
                          self.native.name: str(self.native.pc.connection_state)}
                raise ConnectionFailed(f"not all legs connected within {CONNECT_TIMEOUT} s: {states}")
            await asyncio.sleep(0.01)

    async def _agree_keys(self) -> None:
        """The group key agreement through the SFU's relay (e2ee), then every member's frame crypto."""
        everyone = [*self.people, self.native]
        if self.mode == "e2ee":
            for p in everyone:
                p.join_keys(self.sfu.signalling)
                await asyncio.sleep(0.01)
            await wait_for_group_keys(self.sfu.signalling, everyone)
        members = dict(self.sfu.signalling.members)
        for p in self.people:
            p.arm(members)
        await self.native.arm(members)

    async def close(self) -> None:
        """Close libwebrtc's peer connection, the members' and the SFU's."""
        await self.native.close()
        for p in self.people:
            await p.close()
        await self.sfu.close()


# --- results -------------------------------------------------------------------------------------


def native_sent_rows(view: pd.DataFrame, native, truth) -> list[SentFrame]:
    """One :class:`SentFrame` per frame the SFU received from the native participant (its RTP
    timestamp named by :class:`~e2ee_lab.native.truth.NativeTruth`; encoded size unknown: -1)."""
    rows = []
    mine = view[view.publisher == native.name]
    for (kind, ssrc, timestamp), packets in mine.groupby(["kind", "ssrc", "timestamp"], sort=False):
        index = truth.native_index(kind, int(timestamp))
        if index is None:
            continue
        rows.append(SentFrame(native.name, kind, index, int(ssrc), int(timestamp), None, -1,
                              int(packets.payload.map(len).sum()), len(packets), native.written[kind][index]))
    return rows


def _collect(mode, participants, seconds, seed, size, sfu, people, native, truth, keylog, stats) -> NativeCallResult:
    profile = keylog[0].profile.value if keylog else "none"
    config = CallConfig(mode, participants + 1, float(seconds), seed, size, profile, 0.0)
    view = sfu.view_packets()
    sent = records_table(sent_rows(people) + native_sent_rows(view, native, truth), SentFrame)
    received = records_table([r for p in people for s in p.sinks for r in s.records + s.dropped_records()]
                             + native.received, ReceivedFrame)
    everyone = [*people, native]
    scenes = {p.name: p.scene for p in everyone}
    audio = sent[sent.kind == "audio"].groupby("participant").frame_index.max()
    speech = {p.name: sent_speech(p.speech, int(audio.get(p.name, -1)) + 1) for p in everyone}
    sfu_view = analyze_packets(view, sent, scenes=scenes, speech=speech)
    ssrcs = {t.ssrc: p.name for p in people for t in p.senders.values()}
    wire = analyze_packets(wire_packets([d for p in people for d in p.wire], ssrcs), sent, scenes=scenes, speech=speech)
    sdp = {p.name: {"offer": sfu.offers.get(p.name, ""), "answer": p.answer_sdp or ""} for p in everyone}
    cands = pd.DataFrame([{"leg": name, "sdp": which, **vars(c)} for name, pair in sdp.items()
                          for which, text in pair.items() for c in candidates(text)])
    return NativeCallResult(config=config, summary={}, sent=sent, received=received, sfu=sfu_view, wire=wire,
                            view=view, keylog=keylog, scenes=scenes, speech=speech, sdp=sdp, candidates=cands,
                            stats=stats, names=[p.name for p in everyone], members=dict(sfu.signalling.members),
                            frame_keys=call_frame_keys(everyone))


def key_frame_flags(view: pd.DataFrame, publisher: str) -> dict[str, int]:
    """How libwebrtc's VP8 depacketizer classifies ``publisher``'s SFrame video frames it receives:
    the first payload byte after the VP8 payload descriptor is the SFrame header's first byte, whose
    lowest bit VP8 calls P (0: key frame, RFC 6386 §9.1). Counts of frames it reads as key / delta."""
    from e2ee_lab.rtp.errors import RTPError
    from e2ee_lab.rtp.vp8 import VP8PayloadDescriptor

    counts = {"key": 0, "delta": 0, "unparsed": 0}
    video = view[(view.publisher == publisher) & (view.kind == "video")]
    for payload in video.payload:
        try:
            descriptor, rest = VP8PayloadDescriptor.parse(payload)
        except RTPError:
            counts["unparsed"] += 1
            continue
        if descriptor.starts_frame:
            counts["delta" if rest[0] & 1 else "key"] += 1
    return counts


def _native_row(native, sent: pd.DataFrame, received: pd.DataFrame, window: dict[str, int], stats: dict) -> dict:
    """The native participant's row of ``summary["participants"]``: video over the window like every
    row; audio over the whole call (window and tail), since libwebrtc counts decoded audio only as a
    running total of samples (``audio_frames_expected``: every audio frame the others sent)."""
    from .participant import audio_frames_decoded, audio_frames_played

    row: dict = {"name": native.name}
    for kind in ("video", "audio"):
        counted = sent[sent.kind == kind]
        counted = counted[counted.frame_index < window[kind]] if kind == "video" else counted
        row[f"{kind}_frames_sent"] = int(((sent.kind == kind) & (sent.participant == native.name)
                                          & (sent.frame_index < window[kind])).sum())
        row[f"{kind}_frames_expected"] = int((counted.participant != native.name).sum())
    got = received[(received.receiver == native.name) & (received.kind == "video") & received.decoded
                   & (received.frame_index >= 0) & (received.frame_index < window["video"])]
    row["video_frames_decoded"] = int(len(got))
    latency = got.latency.dropna()
    row["video_latency_ms"] = round(1000 * float(latency.median()), 1) if len(latency) else None
    row["audio_frames_decoded"] = sum(audio_frames_decoded(s) for k, s in stats.items() if _received(k, "audio"))
    row["audio_frames_played"] = sum(audio_frames_played(s) for k, s in stats.items() if _received(k, "audio"))
    row["audio_counted"] = "whole call"
    row.update(plis_sent=sum(s.get("pliCount", 0) for k, s in stats.items() if _received(k, "video")),
               plis_received=stats.get("sent/video", {}).get("pliCount"), packetization="codec",
               dropped=dict(sorted(native.counters().items())))
    return row


def _received(key: str, kind: str) -> bool:
    """A statistics key of :meth:`NativeParticipant.stats` for a received ``kind`` stream."""
    return key.endswith(f"/{kind}") and not key.startswith("sent/")


def directions(sent: pd.DataFrame, received: pd.DataFrame, window: dict[str, int], native: str,
               stats: dict) -> dict:
    """Per direction, lab member and media kind: frames sent and frames decoded. Video over the
    window (pictures matching the sent ones); audio from libwebrtc to the lab over the window
    (libopus produced PCM), from the lab to libwebrtc over the whole call (frames its decryptor
    passed to its decoder, :func:`~e2ee_lab.native.participant.audio_frames_decoded`; and 20 ms
    played from packets, :func:`~e2ee_lab.native.participant.audio_frames_played`)."""
    from .participant import audio_frames_decoded, audio_frames_played

    def sent_by(name: str, kind: str, windowed: bool = True) -> int:
        mine = (sent.participant == name) & (sent.kind == kind)
        return int((mine & (sent.frame_index < window[kind])).sum() if windowed else mine.sum())

    def decoded(receiver: str, publisher: str, kind: str) -> int:
        got = received[(received.receiver == receiver) & (received.publisher == publisher) & (received.kind == kind)
                       & received.decoded & (received.frame_index >= 0) & (received.frame_index < window[kind])]
        return int(len(got))

    out: dict = {"native_to_lab": {}, "lab_to_native": {}}
    for name in sorted(set(sent.participant) - {native}):
        out["native_to_lab"][name] = {k: {"sent": sent_by(native, k), "decoded": decoded(name, native, k)}
                                      for k in ("video", "audio")}
        audio = stats.get(f"{name}/audio", {})
        out["lab_to_native"][name] = {
            "video": {"sent": sent_by(name, "video"), "decoded": decoded(native, name, "video")},
            "audio": {"sent": sent_by(name, "audio", windowed=False), "decoded": audio_frames_decoded(audio),
                      "played": audio_frames_played(audio), "counted": "whole call"}}
    return out


def _summary(result: NativeCallResult, sfu, people, native, window: dict[str, int], timing: dict) -> dict:
    """The JSON-ready summary: the aiortc call's fields (same meaning) plus ``native`` (module docstring)."""
    config, stats = result.config, result.stats
    rows = [participant_row(p, result.sent, result.received, window) for p in people]
    rows.append(_native_row(native, result.sent, result.received, window, stats))
    sfu_summary = {"packets_in": sfu.packets_in, "packets_forwarded": sfu.packets_forwarded, **result.sfu.summary(),
                   "plis_sent": sfu.plis_sent, "plis_forwarded": sfu.plis_forwarded,
                   "key_messages_relayed": len(sfu.signalling.relayed), "dropped": dict(sorted(sfu.dropped.items()))}
    summary = {
        "stack": STACK, "mode": config.mode, "participant_count": config.participants,
        "seconds": config.seconds, "seed": config.seed, "size": config.size, "srtp_profile": config.srtp_profile,
        "rtp_sframe": None, "reproducible_keys": config.reproducible_keys, "key_policy": config.key_policy,
        "window": {**{f"{k}_frames": v for k, v in window.items()},
                   "definition": "frames captured in the first `seconds` of media; media starts after every "
                                 "leg is connected and every member holds every key"},
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "participants": rows, "sfu": sfu_summary, "wire": wire_summary(result.wire, people), "garbage_sent": {},
        "loopback": {"sdp_candidates": len(result.candidates),
                     "candidates_loopback": bool(result.candidates.address.isin(LOOPBACK_IPS).all()),
                     "isolation": "network namespace with only lo"},
    }
    kids = native.send_kids()
    summary["native"] = {
        "name": native.name, "library": "libwebrtc M152 (PyPI wrtc 0.1.0)", "member": result.members.get(native.name),
        "send_kids": {k: {"kid": v, **parse_kid(v)._asdict()} for k, v in sorted(kids.items())},
        "stats": stats,
        "read_as_key_frames": {p.name: key_frame_flags(result.view, p.name) for p in people},
        "directions": directions(result.sent, result.received, window, native.name, stats),
    }
    return summary
