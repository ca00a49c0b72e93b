"""A call with a headless Chromium page among the aiortc participants, through the aiortc SFU.

:func:`run_browser_call` is the aiortc call of :mod:`e2ee_lab.webrtc.call` with one more member:
a page in headless Chromium (:class:`~e2ee_lab.browser.participant.BrowserParticipant`) that
publishes a canvas test pattern (:func:`pattern`) and the fake microphone, subscribes to every
Python participant, and encrypts and decrypts every encoded frame in an Encoded Transform worker
with keys from its own key agreement (ECDH P-256 in WebCrypto). All identities are P-256, the curve
WebCrypto offers everywhere. Modes: ``e2ee`` (RFC 9605 SFrame, suite 4), ``clear-prefix``, and
``dtls-srtp`` (no frame transform: the SFU can decode the browser's frames).

What is measured (``result.summary``):

- browser → Python: frames the page's worker encrypted and sent, frames each Python participant
  decrypted and decoded with a picture matching the pattern (mean absolute error ≤ 20);
- Python → browser: frames each Python participant sent, frames the page's worker authenticated
  under that participant's KID (credited by KID, RFC 9605 §6.1.1; the worker drops a frame whose
  KID names another member or kind than its stream as ``kid_stream_mismatch``),
  ``framesDecoded`` from the page's ``getStats()``, frames it rendered (``requestVideoFrameCallback``),
  and canvas pixel samples (every 4th pixel) judged against the picture sent with that RTP timestamp;
- keys: every member's group code of the final epoch (``group_codes``: they must all agree; the
  page computes its own in WebCrypto), each Python member's safety number with the page against the
  page's (``safety_numbers``), the page's key-agreement state and its drops;
- the SFU: the browser's video frames it reassembled from the packets it forwarded and how many
  libvpx decoded into the pattern (0 in the e2ee modes);
- loss (``drop_at=t``): the SFU drops one video frame of the first Python participant toward the
  browser ``t`` s after media start; ``loss.recovered_after_s`` is the time from the drop to the
  first rendered frame after the freeze (None: never), ``loss.sframe`` the dropped frame's SFrame
  KID and CTR and the bit Chrome's VP8 depacketizer reads from it as the key-frame flag (bit 0 of
  the first byte after the VP8 payload descriptor, RFC 7741 §4.2: the VP8 frame tag's P bit, RFC
  6386 §9.1, but under SFrame the config byte's, RFC 9605 §4.3). ``video_ctr_jump=n`` makes the
  Python participants' video counter jump to ``n`` half a second into the media (once the page has
  decoded the first key frame), as it would stand after ``n`` frames, to reach a longer CTR
  encoding without minutes of media;
- loopback: every candidate of every SDP, and (``sniff_lo=True``) every UDP datagram on ``lo``,
  from which ``summary["wire"]`` counts what an eavesdropper could decode of the browser's video;
- the table of ``e2ee-lab call`` (``participants``, ``sfu``: :mod:`e2ee_lab.browser.tally`), which
  :func:`run_for_call` serves to ``run_call(..., stack="webrtc", browser_participants=1)``.

The page uses ``RTCRtpScriptTransform`` by default (``api="script"``) and Chrome's
``createEncodedStreams`` with ``api="legacy"``; both see every frame when the receive transform is
attached before the answer.

With ``workers=K`` the Python participants run in K worker processes
(:mod:`e2ee_lab.webrtc.workers`; inside the namespace too), the SFU in the call's process and the
page in Chromium's: the summary then has ``workers`` and every process's CPU.

With ``isolate="auto"`` (the default) the whole call runs in a private network namespace that has
only ``lo`` when this process may create one (root: ``unshare -n``;
:mod:`e2ee_lab.browser.isolation`), because Chrome gathers candidates on every interface; otherwise
it runs here, and the page strips non-loopback candidates before answering.

Over 500 lines: the page's process, its isolation and what is measured of it belong to one run;
splitting them would scatter one lifecycle over modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from e2ee_lab.analysis.sfu_view import reassemble
from e2ee_lab.call.clip import ENCODINGS
from e2ee_lab.call.capture import FRAME_KEYS_FILE, FrameKeys, call_frame_keys, write_frame_keys
from e2ee_lab.call.pipeline import thumbnail
from e2ee_lab.call.common import (
    CALL_KEY_POLICY, DEFAULT_PROFILE, START_DELAY, CPUMeter, cpu_summary, process_tree_cpu, records_table,
    run_blocking, wait_for_group_keys,
)
from e2ee_lab.call.pipeline import PLAYOUT_BUDGET
from e2ee_lab.call.participant import key_seed
from e2ee_lab.config import Size, lab_size
from e2ee_lab.crypto.keys import Curve, IdentityKeyPair
from e2ee_lab.media.codecs import DecodeError, VP8Decoder, mean_abs_error, picture_matches
from e2ee_lab.media.scene import to_rgb, video_size
from e2ee_lab.media.speech import FRAME_MS
from e2ee_lab.transport import write_keylog
from e2ee_lab.webrtc.call import CONNECT_TIMEOUT, DRAIN, TAIL, SentIndex, widen_receive_buffers, worker_setup
from e2ee_lab.webrtc.errors import ConnectionFailed
from e2ee_lab.webrtc.loopback import loopback_ice
from e2ee_lab.webrtc.participant import WebRTCParticipant
from e2ee_lab.webrtc.sdp import candidates
from e2ee_lab.webrtc.sfu import WebRTCSFU
from e2ee_lab.webrtc.workers import WorkerPool, check_workers, start_workers

from .chromium import Chromium
from .loss import CTR_JUMP_AT, OneFrameLoss, depacketizer_reading, jump_counters, recovery
from .participant import BrowserParticipant
from .server import StaticServer
from .tally import call_rows, judge_wire, mark_late, real_time

BROWSER_NAME = "chromium"
MODES = ("dtls-srtp", "e2ee", "clear-prefix")
#: the page's test pattern (client.js PATTERN): left half, right half, and a moving 8-pixel bar
PATTERN_LEFT, PATTERN_RIGHT = (64, 64, 64), (192, 192, 192)
STOP_DRAIN = 0.5  # seconds between the page's last frame and reading the counters


def pattern(width: int, height: int) -> np.ndarray:
    """The browser's picture without its moving bar (what receivers compare against), RGB."""
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:, : width // 2] = PATTERN_LEFT
    rgb[:, width // 2:] = PATTERN_RIGHT
    return rgb


@dataclass
class BrowserCallResult:
    """What a browser call produced: ``summary`` (module docstring), the page's raw ``stats``, its
    ``screenshot`` (PNG), every ``sdp`` (offer, answer, and the page's unfiltered answer), the SFU's
    judgement of the browser's frames (``sfu_frames``), the judged pixel samples (``pixels``), the
    Python receivers' frame records (``received``), the UDP datagrams seen on ``lo`` (with their
    payloads), an eavesdropper's attempt on the browser's video from them (``wire_frames``), and
    the SFU's key log. ``frame_keys``: the SFrame base keys the Python members held (the page's
among them, as they received them; the page's own memory is never read). ``capture`` is always
None (the call writes no pcap; ``run_call`` reads it)."""

    summary: dict
    stats: dict
    screenshot: bytes
    sdp: dict[str, dict[str, str]]
    sfu_frames: pd.DataFrame
    pixels: pd.DataFrame
    received: pd.DataFrame
    lo_datagrams: pd.DataFrame = field(default_factory=pd.DataFrame)
    wire_frames: pd.DataFrame = field(default_factory=pd.DataFrame)
    keylog: list = field(default_factory=list)
    capture: None = None
    out: Path | None = None
    frame_keys: FrameKeys | None = None


class _BrowserTruth(SentIndex):
    """Ground truth for Python receivers: the Python publishers' records, and the page's pattern."""

    def __init__(self, browser: str, size) -> None:
        super().__init__()
        self.browser, self.thumb = browser, thumbnail(pattern(size.width, size.height))
        self._ordinal: dict[str, dict[int, int]] = {}  # kind -> RTP timestamp -> arrival order

    def __call__(self, publisher: str, kind: str, timestamp: int):
        if publisher != self.browser:
            return super().__call__(publisher, kind, timestamp)
        seen = self._ordinal.setdefault(kind, {})
        index = seen.setdefault(timestamp, len(seen))
        return index, math.nan, self.thumb if kind == "video" else None


async def run_browser_call_async(mode: str = "e2ee", participants: int = 1, seconds: float = 3.0,
                                 seed: int = 0, size: Size | None = None, *, api: str = "script",
                                 drop_at: float | None = None, transform_in_ontrack: bool = False,
                                 sniff_lo: bool = False, reproducible_keys: bool = False,
                                 video_ctr_jump: int = 0, encode: str = "live", workers: int = 0) -> BrowserCallResult:
    """Run one browser call in the running event loop, in this network namespace (see
    :func:`run_browser_call`)."""
    _check_arguments(mode, participants, seconds, video_ctr_jump, encode, workers)
    started = time.perf_counter()
    meter = CPUMeter("call: the aiortc SFU (and the setup)" if workers else
                     "call: the aiortc SFU and the Python participants")
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> float:
        return loop.time() - t0

    dims = video_size(size or lab_size())
    frames = {"video": int(round((seconds + TAIL) * dims.fps)), "audio": int(round((seconds + TAIL) * 1000 / FRAME_MS))}
    truth = _BrowserTruth(BROWSER_NAME, dims)
    pool: WorkerPool | None = None
    if workers:  # WebCrypto's curve: every member of this call uses P-256
        pool = await start_workers(workers, participants, size=dims, clock=clock, setup=worker_setup(
            mode, dims, frames, seed, CALL_KEY_POLICY, None, reproducible_keys, encode, t0, curve=Curve.P256.value))
        people = pool.people
    else:
        people = [WebRTCParticipant(i, mode=mode, size=dims, frames=frames, seed=seed, clock=clock,
                                    key_policy=CALL_KEY_POLICY, truth=truth, reproducible_keys=reproducible_keys,
                                    encode=encode)
                  for i in range(participants)]
        for i, p in enumerate(people):
            p.identity = IdentityKeyPair.generate(Curve.P256, seed=key_seed("identity", seed, i, reproducible_keys))
    truth.people = {p.name: p for p in people}
    reports: list[dict] = []
    sfu = WebRTCSFU([p.name for p in people] + [BROWSER_NAME], key_policy=CALL_KEY_POLICY, clock=clock)
    loss = None
    timing: dict[str, float] = {"workers_ready_s": clock()} if pool else {}
    with _killing(pool), StaticServer() as server:
        sniffer = _lo_sniffer() if sniff_lo else None
        async with Chromium() as chrome:
            page = BrowserParticipant(BROWSER_NAME, chrome, server.channel, clock=clock)
            init = await page.load(server.url, mode=mode, width=dims.width, height=dims.height,
                                   fps=dims.fps, api=api, transform_in_ontrack=transform_in_ontrack,
                                   policy=CALL_KEY_POLICY)
            timing["page_ready_s"] = clock()
            try:
                with loopback_ice():
                    for p in people:
                        await sfu.accept(p.name, await p.answer(await sfu.offer(p.name)))
                    await sfu.accept(BROWSER_NAME, await page.answer(await sfu.offer(BROWSER_NAME)))
                await _wait_connected(sfu, people, page, pool)
                timing["connected_s"] = clock()
                members = await _agree_keys(sfu, people, page, mode)
                timing["keys_agreed_s"] = clock()
                cryptos = [p.arm(members) for p in people]
                await page.arm(members)
                if drop_at is not None:
                    loss = sfu.forward_filter = OneFrameLoss(people[0].name, BROWSER_NAME,
                                                              clock() + START_DELAY + drop_at, clock)
                start = loop.time() + START_DELAY
                timing["media_start_s"] = start - t0
                if video_ctr_jump:
                    loop.call_at(start + CTR_JUMP_AT, jump_counters, cryptos, video_ctr_jump)
                if pool is not None:
                    pool.start_media(start)
                for p in people:
                    if pool is None:
                        p.start.set_result(start)
                media_meter, chrome_cpu = CPUMeter("media"), process_tree_cpu(chrome.process.pid)
                await asyncio.sleep(START_DELAY + seconds + TAIL + DRAIN)
                media_load = media_meter.stop()
                chrome_media = {"cpu_s": process_tree_cpu(chrome.process.pid) - chrome_cpu,
                                "wall_s": media_load["wall_s"]}
                await page.stop_sending()
                await asyncio.sleep(STOP_DRAIN)
                stats = await page.stats()
                if mode != "dtls-srtp":
                    stats["safetyNumbers"] = await page.safety_numbers([p.member.index for p in people])
                shot = await chrome.page.screenshot()
                keylog = sfu.keylog()
                if pool is not None:  # the workers close their peer connections and send their records
                    epoch = (stats.get("member") or {}).get("epoch")
                    reports = await pool.finish(peer=page.index, epoch=epoch)
                    pool.judge(truth)
                chrome_total = {"role": "chromium: every process of the page's browser", "pid": chrome.process.pid,
                                "cpu_s": round(process_tree_cpu(chrome.process.pid), 3),
                                "wall_s": round(time.perf_counter() - started, 3),
                                "media_cpu_s": round(chrome_media["cpu_s"], 3),
                                "media_wall_s": chrome_media["wall_s"]}
            finally:
                await page.close()
                for p in people:
                    if pool is None:
                        await p.close()
                await sfu.close()
            console = chrome.page.console[-20:] + chrome.page.exceptions[-20:]
    lo = sniffer.stop() if sniffer is not None else pd.DataFrame()
    result = _collect(mode, seconds, dims, sfu, people, page, stats, shot, truth, loss, lo,
                      timing.get("media_start_s", 0.0))
    result.keylog = keylog
    result.frame_keys = _frame_keys(people, page)
    result.summary["srtp_profile"] = keylog[0].profile.value if keylog else "none"
    result.summary.update(reproducible_keys=reproducible_keys, key_policy="fixed", encode=encode)
    result.summary.update(api=stats.get("api"), init={k: v for k, v in init.items() if k != "identity"},
                          timing={k: round(v, 3) for k, v in timing.items()}, console=console,
                          elapsed_s=round(time.perf_counter() - started, 2))
    python = {**meter.stop(), "media_cpu_s": media_load["cpu_s"], "media_wall_s": media_load["wall_s"]}
    result.summary["cpu"] = cpu_summary([python, chrome_total, *(r["cpu"] for r in reports if r["cpu"])],
                                        participants + 1, seconds)
    if workers:
        result.summary["workers"] = [{k: v for k, v in r.items() if k != "cpu"} for r in reports]
        died = [r["reason"] for r in reports if r["died"]]
        if died:
            result.summary.update(real_time=False, real_time_reason="; ".join(died))
    return result


@contextlib.contextmanager
def _killing(pool: WorkerPool | None):
    """Kill and reap the pool's workers still running when the call ends, however it ends."""
    try:
        yield
    finally:
        if pool is not None:
            pool.kill()


def _check_arguments(mode: str, participants: int, seconds: float, video_ctr_jump: int,
                     encode: str = "live", workers: int = 0) -> None:
    if encode not in ENCODINGS:
        raise ValueError(f"encode must be one of {', '.join(ENCODINGS)}, not {encode!r}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if not 1 <= participants <= 8 or not seconds > 0:
        raise ValueError(f"need 1..8 Python participants and seconds > 0, not {participants}, {seconds}")
    if video_ctr_jump and (mode != "e2ee" or not 0 < video_ctr_jump < 2**64 - 2**20):
        raise ValueError(f"video_ctr_jump needs mode 'e2ee' and a CTR in 1..2^64-2^20, not {mode!r}, {video_ctr_jump}")
    check_workers(workers, participants)
    if workers and video_ctr_jump:
        raise ValueError("video_ctr_jump changes the Python members' counters in this process: workers=0")


async def _wait_connected(sfu: WebRTCSFU, people: list, page: BrowserParticipant, pool=None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT
    while not (sfu.connected() and all(p.pc.connectionState == "connected" for p in people)
               and await page.connection_state() == "connected"):
        if pool is not None:
            pool.check()
        if loop.time() > deadline:
            raise ConnectionFailed(f"not all legs connected within {CONNECT_TIMEOUT} s "
                                   f"(page: {await page.connection_state()})")
        await asyncio.sleep(0.02)
    widen_receive_buffers([*sfu.pcs.values(), *(p.pc for p in people if not getattr(p, "remote", False))])


async def _agree_keys(sfu: WebRTCSFU, people: list[WebRTCParticipant], page: BrowserParticipant,
                      mode: str) -> dict[str, int]:
    """The group key agreement with the page as a member; returns name -> member index."""
    if mode == "dtls-srtp":
        return {}
    for p in people:
        p.join_keys(sfu.signalling)
        await asyncio.sleep(0.01)
    page.join_keys(sfu.signalling)
    await wait_for_group_keys(sfu.signalling, people, also=page.keys_ready)
    return dict(sfu.signalling.members)


# --- results -----------------------------------------------------------------------------------------


def _decode_sample(sample: dict) -> np.ndarray:
    raw = np.frombuffer(__import__("base64").b64decode(sample["pixels"]), np.uint8)
    return raw.reshape(sample["height"], sample["width"], 3)


def _judge_samples(samples: list[dict], publisher: str, truth: _BrowserTruth) -> list[dict]:
    """Each canvas read of ``publisher``'s video, against the picture sent with that RTP timestamp."""
    rows = []
    for s in samples:
        got = _decode_sample(s)
        sent = truth(publisher, "video", s["rtpTimestamp"]) if s.get("rtpTimestamp") is not None else None
        thumb = sent[2] if sent else None
        ok = thumb is not None and picture_matches(got, thumb)
        mae = mean_abs_error(got, thumb) if thumb is not None and got.shape == thumb.shape else math.nan
        rows.append({"publisher": publisher, "rtp_timestamp": s.get("rtpTimestamp"),
                     "frame_index": sent[0] if sent else -1, "mae": mae, "matches": bool(ok),
                     "left_rgb": got[:, : got.shape[1] // 4].reshape(-1, 3).mean(0).round().tolist()})
    return rows


def sfu_judges_browser(sfu: WebRTCSFU, publisher: str = BROWSER_NAME) -> pd.DataFrame:
    """The SFU's decoding attempt on the browser's video: every frame it reassembled from the
    packets it forwarded, fed to libvpx and compared with :func:`pattern` (one row per frame)."""
    packets = sfu.view_packets()
    return judge_video_packets(packets[(packets.publisher == publisher) & (packets.kind == "video")])


def judge_video_packets(packets: pd.DataFrame) -> pd.DataFrame:
    """Reassemble one VP8 stream's RTP packets (rows as :func:`~e2ee_lab.analysis.sfu_view.reassemble`
    reads them), decode each frame with libvpx and compare it with :func:`pattern` (one row per frame)."""
    frames, _ = reassemble(packets)
    decoder, rows = VP8Decoder(), []
    for _, frame in frames:
        try:
            rgb = to_rgb(decoder.decode(frame.data))
        except DecodeError as err:
            rows.append({"timestamp": frame.timestamp, "size": len(frame.data), "decoded": False,
                         "matches": False, "reason": err.reason})
            continue
        ok = picture_matches(thumbnail(rgb), thumbnail(pattern(rgb.shape[1], rgb.shape[0])))
        rows.append({"timestamp": frame.timestamp, "size": len(frame.data), "decoded": True,
                     "matches": ok, "reason": "" if ok else "garbage_picture"})
    return pd.DataFrame(rows, columns=["timestamp", "size", "decoded", "matches", "reason"])


def _collect(mode, seconds, dims, sfu, people, page, stats, shot, truth, loss, lo,
             media_start: float) -> BrowserCallResult:
    from e2ee_lab.call.pipeline import ReceivedFrame

    worker = stats.get("worker") or {}
    credited = stats.get("credited") or {}  # "member:kind" -> frames authenticated under that member's KID
    received = records_table((r for p in people for s in p.sinks for r in s.records + s.dropped_records()),
                             ReceivedFrame)
    sent_by_page = worker.get("enc:video:self", {}).get("ok", 0)
    to_python, to_browser, pixels = {}, {}, []
    for p in people:
        sink = next((s for s in p.sinks if s.publisher == BROWSER_NAME and s.kind == "video"), None)
        decoded = int(received[(received.receiver == p.name) & (received.publisher == BROWSER_NAME)
                               & (received.kind == "video")].decoded.sum())
        decrypted = sum(1 for r in sink.transform.records if not r.reason) if sink else 0
        to_python[p.name] = {"sent": sent_by_page, "decrypted": decrypted, "decoded": decoded,
                             "ratio": round(decoded / max(1, sent_by_page), 4),
                             "dropped": dict(sink.transform.dropped) if sink else {}}
        remote = next((r for r in stats.get("remote", []) if r["publisher"] == p.name and r["kind"] == "video"), {})
        inbound = next((r for r in stats.get("rtp", []) if r["type"] == "inbound-rtp" and r["mid"] == remote.get("mid")), {})
        sent = sum(1 for r in p.senders["video"].records if not r.reason)
        transformed = worker.get(f"dec:video:{p.name}", {})
        by_kid = credited.get(f"{p.member.index}:video") if p.member is not None else None
        judged = _judge_samples(remote.get("samples", []), p.name, truth)
        pixels += judged
        to_browser[p.name] = {
            "sent": sent, "transform_frames": transformed.get("frames", 0),
            "decrypted": transformed.get("ok", 0) if by_kid is None else by_kid,
            "decrypt_failures": transformed.get("dropped", {}), "decoded": inbound.get("frames") or 0,
            "key_frames_decoded": inbound.get("keyFrames"), "rendered": remote.get("rendered", 0),
            "presented": remote.get("presented", 0), "plis": inbound.get("pli"),
            "ratio_decoded": round((inbound.get("frames") or 0) / max(1, sent), 4),
            "ratio_rendered": round(remote.get("rendered", 0) / max(1, sent), 4),
            "pixel_samples": len(judged), "pixel_matches": sum(j["matches"] for j in judged)}
        if loss is not None and p.name == loss.publisher:
            to_browser[p.name]["loss"] = {**recovery(remote.get("renderTimes", []), loss.wall_ms),
                                          "packets_dropped": loss.packets, "drop_wall_ms": loss.wall_ms,
                                          "key_frames_sent_after": sum(
                                              1 for r in p.senders["video"].records
                                              if not r.reason and r.frame_type == "key" and r.time > (loss.time or 0)),
                                          "sframe": depacketizer_reading(loss.first_payload) if mode == "e2ee" else None}
    sfu_frames = sfu_judges_browser(sfu)
    view = sfu.view_packets()
    ssrcs = view[(view.publisher == BROWSER_NAME) & (view.kind == "video")].ssrc
    wire_seen, wire = judge_wire(list(lo.payload) if len(lo) else [], int(ssrcs.iloc[0]) if len(ssrcs) else None,
                                 judge_video_packets)
    sdp = {p.name: {"offer": sfu.offers.get(p.name, ""), "answer": p.answer_sdp or ""} for p in people}
    sdp[BROWSER_NAME] = {"offer": page.offer or "", "answer": page.answer_sdp or "", "raw_answer": page.raw_answer or ""}
    cands = [c for pair in sdp.values() for key in ("offer", "answer") for c in candidates(pair[key])]
    raw = candidates(sdp[BROWSER_NAME]["raw_answer"])
    summary = {
        "mode": mode, "seconds": seconds, "size": f"{dims.width}x{dims.height}@{dims.fps}",
        "browser": {"name": BROWSER_NAME, "member": page.index, "frames_sent": sent_by_page,
                    "worker": worker, "credited": credited, "errors": stats.get("errors", {}),
                    "dropped": dict(page.dropped), "key_state": stats.get("member"),
                    "signalling": {"to_page": page.channel.sent, "refused": page.channel.refused}},
        "browser_to_python": to_python, "python_to_browser": to_browser,
        "sfu": {"browser_frames": len(sfu_frames), "browser_frames_decoded": int(sfu_frames.decoded.sum()),
                "browser_frames_matching": int(sfu_frames.matches.sum()), "dropped": dict(sfu.dropped),
                "plis_forwarded": sfu.plis_forwarded},
        "loopback": {"sdp_candidates": len(cands),
                     "candidates_loopback": all(c.address in ("127.0.0.1", "::1") for c in cands),
                     "page_candidates_before_filter": sorted({c.address for c in raw}),
                     "lo_datagrams": len(lo),
                     "lo_all_loopback": bool(len(lo) == 0 or (lo.src.str.startswith("127.").all()
                                                               and lo.dst.str.startswith("127.").all()))},
    }
    sfu_counts = summary.pop("sfu")
    mark_late(received, media_start, dims.fps, BROWSER_NAME)
    summary.update(call_rows(summary, sfu, people, received, sfu_frames, BROWSER_NAME))
    summary.update(playout_budget_s=PLAYOUT_BUDGET, **real_time(summary["participants"], BROWSER_NAME))
    summary["sfu"].update(sfu_counts)
    summary["group_codes"] = _group_codes(people, stats.get("member"))
    summary["safety_numbers"] = _safety_numbers(people, page, stats.get("safetyNumbers") or {})
    summary["wire"] = {"browser_frames": wire_seen, "browser_frames_matching": int(wire.matches.sum()) if len(wire) else 0}
    return BrowserCallResult(summary=summary, stats=stats, screenshot=shot, sdp=sdp, sfu_frames=sfu_frames,
                             pixels=pd.DataFrame(pixels), received=received, lo_datagrams=lo, wire_frames=wire)


def _frame_keys(people, page: BrowserParticipant) -> FrameKeys | None:
    keys = call_frame_keys(people)
    if keys is None:
        return None
    named = tuple(replace(k, participant=page.name) if k.member == page.index else k for k in keys.keys)
    return replace(keys, keys=named, from_os=(page.index,) if keys.reproducible else ())


def _safety_numbers(people, page: BrowserParticipant, computed: dict) -> dict:
    """Per Python member, whether the safety number it computes with the page (Python) equals the
    one the page computes with it (WebCrypto): both bind each side's user id and identity key."""
    out = {}
    for p in people:
        theirs = computed.get(p.member.index) if p.member is not None else None
        if theirs is not None:
            out[p.name] = {"digits": theirs, "match": p.member.safety_number(page.index).digits == theirs}
    return out


def _group_codes(people, page: dict | None) -> dict:
    """Each member's group code of the page's epoch, as members would read them out, and whether
    they all agree (None in dtls-srtp mode: no key agreement)."""
    if not page or page.get("groupCode") is None:
        return {"epoch": None, "codes": {}, "match": None}
    codes = {p.name: p.member.group_code(page["epoch"]).digits for p in people if p.member is not None}
    codes[BROWSER_NAME] = page["groupCode"]
    return {"epoch": page["epoch"], "codes": codes, "match": len(set(codes.values())) == 1}


class _LoSniffer:
    def __init__(self) -> None:
        from scapy.all import AsyncSniffer

        self._sniffer = AsyncSniffer(iface="lo", filter="udp", store=True)
        self._sniffer.start()

    def stop(self) -> pd.DataFrame:
        from scapy.layers.inet import IP, UDP

        packets = self._sniffer.stop() or []
        rows = [(p[IP].src, p[IP].dst, p[UDP].sport, p[UDP].dport, bytes(p[UDP].payload))
                for p in packets if IP in p and UDP in p]
        return pd.DataFrame(rows, columns=["src", "dst", "sport", "dport", "payload"])


def _lo_sniffer() -> _LoSniffer | None:
    from e2ee_lab.capture import sniff_problem

    return None if sniff_problem() is not None else _LoSniffer()


def run_browser_call(mode: str = "e2ee", participants: int = 1, seconds: float = 3.0, seed: int = 0,
                     size: Size | None = None, *, api: str = "script", drop_at: float | None = None,
                     transform_in_ontrack: bool = False, sniff_lo: bool = False,
                     isolate: str = "auto", reproducible_keys: bool = False,
                     video_ctr_jump: int = 0, encode: str = "live", workers: int = 0) -> BrowserCallResult:
    """Run a call of ``participants`` aiortc participants and one headless Chromium page.

    Args:
        mode: "e2ee" (SFrame), "clear-prefix" or "dtls-srtp".
        participants: Python (aiortc) participants, 1..8.
        seconds: media the Python participants send (real time); the page sends until the end.
        seed: reproducible pictures (and, with ``reproducible_keys``, the Python members' keys; the
            page always draws its own keys).
        size: "ci" or "full" (default :func:`~e2ee_lab.config.lab_size`).
        api: "script" (``RTCRtpScriptTransform``) or "legacy" (``createEncodedStreams``).
        drop_at: seconds after media start at which the SFU drops one video frame toward the page.
        transform_in_ontrack: set the page's receive transforms from ``ontrack``, applied once
            negotiation is over, which is when an offerer's ``ontrack`` fires (the Chromium 156
            pitfall: with ``api="script"`` the worker then sees no received frame).
        sniff_lo: record every UDP datagram on ``lo`` (needs capture rights).
        isolate: "auto" (a private network namespace when permitted), "netns" or "off".
        reproducible_keys: derive the Python members' identity keys, sessions and frame keys from ``seed``.
        video_ctr_jump: e2ee only: :data:`~e2ee_lab.browser.loss.CTR_JUMP_AT` s into the media the Python participants'
            video CTR jumps to this value and counts on from there (no (key, CTR) pair is ever used
            twice); 0: no jump.
        encode: the Python participants' camera: "live" (rendered and encoded during the call) or
            "clip" (encoded once before it, :func:`~e2ee_lab.webrtc.call.run_webrtc_call`); the
            page always encodes live.
        workers: 0 (default): the Python participants in the call's process; K: in K worker
            processes (:mod:`e2ee_lab.webrtc.workers`, 1..participants; inside the namespace too),
            the SFU in the call's process and the page in Chromium's, as always.

    Raises:
        ValueError: an unknown mode or encode, participants outside 1..8, or ``video_ctr_jump`` outside e2ee.
        BrowserNotFound: no Chromium.  IsolationFailed: ``isolate="netns"`` and it cannot run.
        ConnectionFailed, CallSetupError, NotLoopback, PageError: the call did not happen.
    """
    from .isolation import resolve_isolation, run_in_netns

    _check_arguments(mode, participants, seconds, video_ctr_jump, encode, workers)
    kwargs = dict(mode=mode, participants=participants, seconds=seconds, seed=seed, size=size, api=api,
                  drop_at=drop_at, transform_in_ontrack=transform_in_ontrack, sniff_lo=sniff_lo,
                  reproducible_keys=reproducible_keys, video_ctr_jump=video_ctr_jump, encode=encode,
                  workers=workers)
    how, note = resolve_isolation(isolate)
    if how == "netns":
        return run_in_netns(kwargs)

    def job() -> BrowserCallResult:
        result = asyncio.run(run_browser_call_async(**kwargs))
        result.summary["isolation"] = note
        return result

    return run_blocking(job, "e2ee-lab-browser")


def run_for_call(stack: str, browsers: int, mode: str, participants: int, seconds: float, seed: int,
                 size: Size | None, out: str | Path | None, *, capture: str = "off",
                 reproducible_keys: bool = False, encode: str = "live", workers: int = 0,
                 **lab_only) -> BrowserCallResult:
    """``run_call(..., stack="webrtc", browser_participants=browsers)``: :func:`run_browser_call`
    with ``participants`` Python members, its summary in ``run_call``'s shape (the page is one more
    row of ``summary["participants"]``, :mod:`e2ee_lab.browser.tally`); with ``out`` it writes
    ``summary.json``, ``sfu-keys.json`` and (e2ee, clear-prefix) ``frame-keys.json`` there. ``workers``:
    the Python members in that many worker processes (:func:`run_browser_call`). ``capture``: "off"; "sniff" records the UDP
    datagrams on ``lo``; "auto" does so where permitted. ``reproducible_keys`` goes to the Python
    members. ``lab_only``: run_call's lab-stack options (srtp_profile, garbage, policy, key_policy,
    sfu_setup, sender_options), which must be unset (key_policy: the default or "fixed"; the
    page implements the fixed members only).

    Raises:
        ValueError: a stack other than "webrtc", a browser count other than 1, ``capture="tap"``,
            or a lab-only option set.
    """
    if stack != "webrtc":
        raise ValueError(f"a browser participant needs stack='webrtc' (the aiortc SFU), not {stack!r}")
    if browsers != 1:
        raise ValueError(f"a call takes exactly one browser participant, not {browsers}")
    if capture not in ("off", "auto", "sniff"):
        raise ValueError(f"a browser call records only by sniffing lo: capture must be off, auto or sniff, not {capture!r}")
    defaults = {"srtp_profile": (None, DEFAULT_PROFILE), "key_policy": (None, CALL_KEY_POLICY, "fixed")}
    given = sorted(k for k, v in lab_only.items() if v not in defaults.get(k, (None, 0, 0.0)))
    if given:
        raise ValueError(f"a browser call does not support {', '.join(given)} (lab stack only)")
    result = run_browser_call(mode, participants, seconds, seed, size, sniff_lo=capture != "off",
                              reproducible_keys=reproducible_keys, encode=encode, workers=workers)
    result.summary["stack"] = "webrtc"
    if out is not None:
        result.out = Path(out)
        result.out.mkdir(parents=True, exist_ok=True)
        (result.out / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str) + "\n",
                                                 encoding="utf-8")
        write_keylog(result.out / "sfu-keys.json", result.keylog)
        if result.frame_keys is not None:  # e2ee and clear-prefix: the members' secret, apart from the SFU's
            write_frame_keys(result.out / FRAME_KEYS_FILE, result.frame_keys)
    return result
