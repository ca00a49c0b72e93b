"""The envelope: whole calls of growing rooms on this machine, and whether they kept real time.

``e2ee-lab bench call --participants 2,4,8,12 [--publishers K] [--stack lab|webrtc] [--browser 1]``
runs one real call per
room size (:func:`e2ee_lab.call.run_call`, real DTLS-SRTP legs on loopback, real media in real
time) and reads its ``summary.json`` fields and frame records. Per room, one row:

- ``video_verified_min`` / ``audio_verified_min``: the smallest share, over receivers, of the frames
  sent (forwarded, for audio in big rooms) to a receiver that it verified bit-exactly (the aiortc
  stack does not verify: its decoded share stands in);
- ``video_decoded_share``: frames a decoder turned into the sent picture, over all frames expected
  (with ``views`` each receiver decodes only its views, so this is about views / publishers);
- ``late_share``: frames that arrived after their playout deadline (capture + the budget), over
  all frames expected;
- ``latency_p50_ms`` / ``latency_p95_ms``: capture to arrival of the frames received;
- ``cpu_s_per_participant_s``: CPU seconds of the call's processes while media flowed, per
  participant-second; ``sfu_process_cpu_s_per_s``: the call's own process per second of media
  (with ``workers`` that is the SFU alone: E2EE must not change it); ``real_time`` and its reason
  as the call's summary says.

On the webrtc stack ``participants`` counts the Python members, and ``browser=1`` adds a headless
Chromium page to each call (:mod:`e2ee_lab.browser.call`; the call's processes are then the Python
one and Chromium's process tree).

Defaults are the scaling choices of issue 15: ``encode="clip"`` (each scene encoded once before
the call, on both stacks) and ``views=1`` (each receiver decodes one publisher's video, verifies all);
``workers=K`` spreads the participants over K processes (:mod:`e2ee_lab.call.workers` on the lab
stack, :mod:`e2ee_lab.webrtc.workers` on the webrtc stack, with or without the browser). A call
that did not keep real time says so in its row; nothing here is a unit test's timing assertion.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from e2ee_lab.bench.common import machine_info

DEFAULT_PARTICIPANTS = (2, 4, 8, 12)
COLUMNS = ["stack", "mode", "workers", "participants", "publishers", "seconds", "size", "video_verified_min",
           "audio_verified_min", "video_decoded_share", "late_share", "latency_p50_ms", "latency_p95_ms",
           "cpu_s_per_participant_s", "sfu_process_cpu_s_per_s", "real_time", "real_time_reason", "elapsed_s"]


def parse_participants(text: str) -> tuple[int, ...]:
    """``"2,4,8,12"`` -> (2, 4, 8, 12); ValueError for anything else."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--participants takes room sizes like 2,4,8,12, not {text!r}") from None
    if not sizes or any(n < 2 for n in sizes):
        raise ValueError(f"--participants takes room sizes of at least 2, not {text!r}")
    return sizes


def bench_call(participants: Sequence[int] | str = DEFAULT_PARTICIPANTS, *, publishers: int | None = None,
               stack: str = "lab", mode: str = "e2ee", seconds: float = 5.0, size: str = "full",
               encode: str = "clip", views: int | str | None = 1, loudest: int | None = None,
               workers: int = 0, loop: str | None = None, browser: int = 0, seed: int = 0,
               progress: bool = True) -> pd.DataFrame:
    """One call per room size; one row each (module docstring). ``publishers`` larger than a room
    is capped to the room. Raises ValueError for a bad size list or call option."""
    sizes = parse_participants(participants) if isinstance(participants, str) else tuple(participants)
    rows = []
    for n in sizes:
        if progress:
            print(f"bench call: {n} participants ({stack}, {mode}, {seconds:g} s, {size})...", flush=True)
        rows.append(_room_row(n, publishers, stack, mode, seconds, size, encode, views, loudest, workers, loop,
                              browser, seed))
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["machine"] = machine_info()
    df.attrs["options"] = {"encode": encode, "views": views if stack == "lab" else None,
                           "workers": workers if stack in ("lab", "webrtc") else 0, "loop": loop or "asyncio",
                           "browser": browser}
    return df


def _room_row(n, publishers, stack, mode, seconds, size, encode, views, loudest, workers, loop, browser,
              seed) -> dict:
    from e2ee_lab.call import run_call  # the call stack is heavy; import it when a call runs

    options: dict = {}
    if browser and stack != "webrtc":
        raise ValueError(f"--browser joins the webrtc stack's calls, not {stack}'s")
    if stack == "webrtc":
        options = {"encode": encode, **({"browser_participants": browser} if browser else {}),
                   **({"workers": min(workers, n)} if workers else {})}  # at most one per participant
    if stack == "lab":
        options = {"encode": encode, "views": views, "workers": workers}
        if loop is not None:
            options["loop"] = loop
        if publishers is not None:
            options["publishers"] = min(publishers, n)
        if loudest is not None:
            options["loudest"] = loudest
    elif publishers is not None or loop is not None or (workers and stack != "webrtc"):
        raise ValueError(f"--publishers and --loop are lab-stack options (--workers: lab and webrtc), not {stack}'s")
    began = time.perf_counter()
    result = run_call(mode, n, seconds, seed, size, None, stack=stack, capture="off", **options)
    summary = result.summary
    return {"stack": stack + ("+browser" if browser else ""), "mode": mode,
            "workers": len(summary.get("workers", [])), "participants": summary.get("participant_count", n),
            "publishers": summary.get("publishers", summary.get("participant_count", n)),
            "seconds": seconds, "size": size, **shares(summary), **latency(result.received),
            "cpu_s_per_participant_s": summary["cpu"]["cpu_s_per_participant_s"],
            "sfu_process_cpu_s_per_s": _call_process_load(summary, seconds),
            "real_time": summary["real_time"], "real_time_reason": summary["real_time_reason"],
            "elapsed_s": round(time.perf_counter() - began, 1)}


def _call_process_load(summary: dict, seconds: float) -> float | None:
    """CPU-seconds per second of media of the call's own process: the SFU alone when the
    participants ran in workers, the SFU and every participant otherwise."""
    first = summary["cpu"]["processes"][0]
    media = first.get("media_cpu_s")
    return None if media is None else round(media / seconds, 3)


def shares(summary: dict) -> dict:
    """The share columns of a row from a call's summary (verified falls back to decoded where a
    stack does not verify)."""
    rows = summary["participants"]
    out = {}
    for kind in ("video", "audio"):
        ratios = []
        for p in rows:
            expected = p[f"{kind}_frames_expected"]
            got = p.get(f"{kind}_frames_verified")
            got = p[f"{kind}_frames_decoded"] if got is None else got
            if expected:
                ratios.append(got / expected)
        out[f"{kind}_verified_min"] = round(min(ratios), 3) if ratios else None
    expected = sum(p["video_frames_expected"] for p in rows)
    out["video_decoded_share"] = round(sum(p["video_frames_decoded"] for p in rows) / expected, 3) if expected else None
    every = sum(p["video_frames_expected"] + p["audio_frames_expected"] for p in rows)
    late = sum(p.get("video_frames_late", 0) + p.get("audio_frames_late", 0) for p in rows)
    out["late_share"] = round(late / every, 4) if every else None
    return out


def latency(received: pd.DataFrame) -> dict:
    """p50 / p95 of capture-to-arrival (``delay``) over the received frames, in ms."""
    delay = received["delay"].dropna() if "delay" in received else pd.Series(dtype=float)
    if delay.empty:
        return {"latency_p50_ms": None, "latency_p95_ms": None}
    p50, p95 = np.percentile(delay, [50, 95])
    return {"latency_p50_ms": round(1000 * p50, 1), "latency_p95_ms": round(1000 * p95, 1)}


def format_call(df: pd.DataFrame) -> str:
    """The envelope as a table: one line per room size, then each room's real-time verdict."""
    options = df.attrs.get("options", {})
    lines = [f"whole calls, one per room size (encode {options.get('encode')}, views {options.get('views')}, "
             f"workers {options.get('workers', 0)}, loop {options.get('loop', 'asyncio')}"
             + (f", browser {options['browser']}" if options.get("browser") else "") + "); "
             "shares are of the frames sent to each receiver",
             f"{'stack':14} {'mode':10} {'people':>6} {'pubs':>4} {'video ver min':>13} {'audio ver min':>13} "
             f"{'video dec':>9} {'late':>6} {'p50 ms':>7} {'p95 ms':>7} {'cpu/pp-s':>8} {'call proc':>9} {'real time':>9}"]

    def pct(x) -> str:
        return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}%"

    def num(x) -> str:
        return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:g}"

    for r in df.to_dict("records"):
        lines.append(f"{r['stack']:14} {r['mode']:10} {r['participants']:>6} {r['publishers']:>4} "
                     f"{pct(r['video_verified_min']):>13} {pct(r['audio_verified_min']):>13} "
                     f"{pct(r['video_decoded_share']):>9} {pct(r['late_share']):>6} {num(r['latency_p50_ms']):>7} "
                     f"{num(r['latency_p95_ms']):>7} {num(r['cpu_s_per_participant_s']):>8} "
                     f"{num(r['sfu_process_cpu_s_per_s']):>9} {'yes' if r['real_time'] else 'NO':>9}")
    lines += [f"  {r['participants']} participants: {r['real_time_reason']}" for r in df.to_dict("records")]
    return "\n".join(lines)
