"""The SFU's speed: forwarded SRTP packets per second on one core, per room size and call mode.

``bench_sfu`` runs a real forwarding load over loopback between two processes
(:mod:`e2ee_lab.bench.sfu_load`): a publishers' process sends pre-protected SRTP (RFC 3711, RFC 7714
AEAD_AES_128_GCM keys from a real DTLS handshake per leg, RFC 5764) in a burst at a fixed high rate
(:data:`SEND_RATE`) that queues up in the forwarder's socket buffers, so the forwarder runs flat
out, and the SFU's process measures its own CPU time (``time.process_time``) and the packets it
forwarded. The SFU's view tap records every packet as in a call and is cleared unread after each
run (rows are parsed when an analysis reads them, off the forwarding path). Rooms of 2, 4, 8 and 16 participants each publish one VP8 stream
(RFC 7741, 640x480 at 800 kbit/s) and one Opus stream (RFC 7587) to every other participant.
Modes: ``dtls-srtp`` (the codec payloads), ``e2ee`` (the same frames as SFrame ciphertext, RFC 9605,
suite 4) through the lab's :class:`~e2ee_lab.sfu.server.SFUServer`, and ``bare``: a forwarder
that only does SRTP unprotect, protect and sendto per subscriber, measured in the same run, the
ceiling of this design in Python. Packets per second per core = forwarded / SFU CPU seconds; cost
per forwarded packet = the inverse, in µs. The SFU never reads the payload, so ``e2ee`` should cost
what ``dtls-srtp`` costs: the ratio of the two, run by run, is reported with its spread.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from e2ee_lab.bench.common import KID, check_counts, machine_info, median_iqr
from e2ee_lab.bench.frames import MEDIA, media_set
from e2ee_lab.bench.sfu_load import LoadPlan, start_worker, stop_worker, traffic_mode
from e2ee_lab.crypto.transforms import make_transform
from e2ee_lab.media.frame import EncodedFrame

ROOM_SIZES = (2, 4, 8, 16)
SFU_MODES = ("bare", "dtls-srtp", "e2ee")
LOOPS = ("asyncio", "uvloop")
DEFAULT_VIDEO = "vp8-640x480"
SEND_RATE = 150_000  # packets per second the publishers send at (more than any forwarder here takes)
FORWARD_TARGET = 20_000  # forwarded packets aimed at per run: publishers send this / (participants - 1)
WARMUP_PACKETS = 400  # untimed packets per room and mode
PPS_GOAL = 40_000  # the goal: forwarded SRTP packets per second per core
BARE_RATIO_GOAL = 1.5  # the SFU's cost per forwarded packet at most 1.5x the bare forwarder's
NOISE_FLOOR = 0.05  # relative differences below 5 % are noise on any shared machine
TIMEOUT_PER_RUN = 20.0  # seconds allowed per run before the benchmark gives up (plus setup)


def room_traffic(mode: str, video: str = DEFAULT_VIDEO, *, seed: int = 0) -> tuple[EncodedFrame, ...]:
    """One participant's second of frames in sending order: ``video`` at 30 fps, Opus at 50 fps.

    The frames are real (:func:`~e2ee_lab.bench.frames.media_set`); in ``e2ee`` each is SFrame
    ciphertext (suite 4, KID 1), in ``dtls-srtp`` the codec's bytes.

    Raises:
        ValueError: an unknown mode or medium.
    """
    vset, aset = media_set(video, 30, seed=seed), media_set("opus", 50, seed=seed)
    if vset.kind != "video":
        raise ValueError(f"{video!r} is not a video medium")
    sender = make_transform(mode, kid=KID, seed=seed).sender
    timeline = sorted([(i / vset.fps, 1, f) for i, f in enumerate(vset.frames)]
                      + [(i / aset.fps, 0, f) for i, f in enumerate(aset.frames)], key=lambda t: t[:2])
    return tuple(sender.transform(frame) for _, _, frame in timeline)


def load_plan(rooms: Iterable[int], modes: Iterable[str], repeat: int, number: int | None, *, target: int,
              video: str, loop: str, seed: int, profile: bool = False) -> LoadPlan:
    """The checked :class:`~e2ee_lab.bench.sfu_load.LoadPlan` of a run (see :func:`bench_sfu` for the
    arguments; ``profile``: run cProfile in the SFU's process over the timed spans).

    Raises:
        ValueError: bad counts, rooms, modes, loop, target or medium.  ImportError: uvloop asked
        for but not installed.
    """
    check_counts(repeat, number)
    rooms, modes = [int(n) for n in rooms], list(modes)
    _check(rooms, modes, loop, target)
    if video not in MEDIA:
        raise ValueError(f"unknown medium {video!r}; expected one of {', '.join(MEDIA)}")
    packets = [number if number is not None else max(100, math.ceil(target / (n - 1))) for n in rooms]
    traffic = {m: room_traffic(m, video, seed=seed) for m in {traffic_mode(m) for m in modes}}
    return LoadPlan(rooms=tuple(rooms), modes=tuple(modes), repeat=repeat, packets=tuple(packets),
                    rates=tuple(float(SEND_RATE) for _ in rooms), traffic=traffic,
                    period={"video": 90_000, "audio": 48_000}, warmup=WARMUP_PACKETS, loop=loop,
                    profile=profile)


def _check(rooms: Sequence[int], modes: Sequence[str], loop: str, target: int) -> None:
    """ValueError for bad rooms, modes, loop or target; ImportError for uvloop when it is absent."""
    if not rooms or any(n < 2 for n in rooms):
        raise ValueError(f"rooms need at least 2 participants each, got {list(rooms)}")
    if not modes or any(m not in SFU_MODES for m in modes):
        raise ValueError(f"modes must come from {', '.join(SFU_MODES)}, got {list(modes)}")
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, got {loop!r}")
    if target < 1:
        raise ValueError(f"target must be at least 1 packet, got {target}")
    if loop == "uvloop":
        try:
            import uvloop  # noqa: F401  (the SFU process imports it again)
        except ImportError as exc:
            raise ImportError("loop='uvloop' needs the uvloop package: pip install 'e2ee-lab[fast]'",
                              name="uvloop") from exc


def collect_runs(plan: LoadPlan, progress: bool) -> tuple[list[dict[str, object]], dict | None]:
    """Run ``plan``: start the SFU's process (it starts the publishers'), gather each run's row.

    Returns the rows and, with ``plan.profile``, the SFU process's pstats dict (else None).
    Raises:
        RuntimeError / TimeoutError: a load process failed or did not finish (both are stopped).
    """
    total = len(plan.rooms) * len(plan.modes) * plan.repeat
    deadline = time.monotonic() + 60 + TIMEOUT_PER_RUN * (total + len(plan.rooms) * len(plan.modes))
    rows: list[dict[str, object]] = []
    profile: dict | None = None
    proc, conn = start_worker("sfu", plan)
    try:
        with tqdm(total=total, desc="bench sfu", unit="run", file=sys.stderr, disable=not progress) as bar:
            while True:
                if not conn.poll(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"bench sfu: no result within its time limit ({len(rows)} of {total} runs)")
                message = conn.recv()
                if message[0] == "done":
                    return rows, profile
                if message[0] == "profile":
                    profile = message[1]
                    continue
                if message[0] == "error":
                    raise RuntimeError(f"the SFU process failed:\n{message[1]}")
                rows.append(message[1])
                bar.update()
    except EOFError:
        raise RuntimeError("the SFU process exited without a result") from None
    finally:
        conn.close()
        stop_worker(proc)


def bench_sfu(rooms: Iterable[int] = ROOM_SIZES, modes: Iterable[str] = SFU_MODES, repeat: int = 5,
              number: int | None = None, *, target: int = FORWARD_TARGET, video: str = DEFAULT_VIDEO,
              loop: str = "asyncio", seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Forwarded packets per second per core and µs per forwarded packet, per room size and mode.

    Args:
        rooms: participants per room (each publishes video + audio to all others).
        modes: from :data:`SFU_MODES`.  repeat: timed runs per (room, mode), interleaved.
        number: packets the publishers send per run, all rooms (default: ``target`` /
            (participants - 1)); they go out at :data:`SEND_RATE` packets per second.
        target: forwarded packets aimed at per run when ``number`` is None.  video: a VP8 medium of
            :data:`~e2ee_lab.bench.frames.MEDIA`.  loop: "asyncio" or "uvloop" for the SFU process
            (uvloop must be installed, and the transport's ``open_udp`` able to wrap uvloop's
            transports).  seed: frames and keys.  progress: a tqdm bar on stderr.
    Returns:
        One row per (room, mode): ``participants``, ``mode``, ``runs``; medians over runs of
        ``sent`` (packets the publishers sent), ``received`` (datagrams the forwarder took in; the
        kernel dropped the rest, which shows the forwarder was saturated), ``forwarded``, ``cpu_s``,
        ``wall_s`` and ``cpu_share`` (cpu_s / wall_s); ``pps_per_core`` (forwarded / cpu_s) and
        ``us_per_packet`` (its inverse in µs) with ``us_iqr``; ``ratio_bare`` (µs per packet over
        the bare forwarder's, median of run-by-run ratios) with ``ratio_bare_iqr``; ``ratio_e2ee``
        (e2ee row only: e2ee over dtls-srtp, run by run) with ``ratio_e2ee_iqr``; ``noise`` (the
        relative spread the e2ee ratio is judged against); ``goal_pps``, ``goal_ratio`` and
        ``goal_e2ee`` verdicts ("met", "MISSED", "within noise", "differs" or "").
        ``df.attrs``: machine, loop, load averages at start and end, send rate, elapsed_s, runs.
    Raises:
        ValueError: bad counts, rooms, modes, loop or medium.  ImportError: ``loop="uvloop"``
        without uvloop installed.  RuntimeError / TimeoutError: the load processes failed or did
        not finish in time (they are terminated).
    """
    began, load_start = time.perf_counter(), os.getloadavg()
    plan = load_plan(rooms, modes, repeat, number, target=target, video=video, loop=loop, seed=seed)
    runs = pd.DataFrame(collect_runs(plan, progress)[0])
    df = summarize(runs)
    df.attrs.update(machine=machine_info(), loop=loop, video=video, send_rate=SEND_RATE,
                    load_start=load_start, load_end=os.getloadavg(), elapsed_s=time.perf_counter() - began,
                    runs=runs.to_dict("records"))
    return df


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (room, mode) medians, paired ratios and goal verdicts from one row per run.

    ``runs`` needs ``participants``, ``mode``, ``run``, ``sent``, ``received``, ``forwarded``,
    ``cpu_s`` and ``wall_s`` (what the SFU process reports).
    """
    runs = runs.copy()
    runs["us_per_packet"] = runs["cpu_s"] / runs["forwarded"].clip(lower=1) * 1e6
    runs["pps_per_core"] = runs["forwarded"] / runs["cpu_s"].clip(lower=1e-9)
    us = runs.pivot_table(index=["participants", "run"], columns="mode", values="us_per_packet")
    rows = []
    for (participants, mode), group in runs.groupby(["participants", "mode"], sort=False):
        paired = us.loc[participants]
        row = {"participants": participants, "mode": mode, "runs": len(group)}
        for column in ("sent", "received", "forwarded", "cpu_s", "wall_s", "pps_per_core"):
            row[column] = float(group[column].median())
        row["cpu_share"] = row["cpu_s"] / row["wall_s"] if row["wall_s"] else math.nan
        row["us_per_packet"], row["us_iqr"] = median_iqr(group["us_per_packet"].tolist())
        row["ratio_bare"], row["ratio_bare_iqr"] = _ratio(paired, mode, "bare")
        row["ratio_e2ee"], row["ratio_e2ee_iqr"] = _ratio(paired, mode, "dtls-srtp") if mode == "e2ee" \
            else (math.nan, math.nan)
        rows.append(row)
    df = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(SFU_MODES)}
    df = df.sort_values(["participants", "mode"], key=lambda c: c.map(order) if c.name == "mode" else c)
    return _goals(df.reset_index(drop=True))


def _ratio(paired: pd.DataFrame, mode: str, base: str) -> tuple[float, float]:
    """Median and IQR of the run-by-run ratio of ``mode``'s µs per packet to ``base``'s."""
    if mode == base or base not in paired or mode not in paired:
        return math.nan, math.nan
    ratios = (paired[mode] / paired[base]).dropna().tolist()
    return median_iqr(ratios) if ratios else (math.nan, math.nan)


def _goals(df: pd.DataFrame) -> pd.DataFrame:
    """Goal verdicts: ≥ 40,000 packets/s per core, ≤ 1.5x bare, e2ee / dtls-srtp within noise."""
    sfu = df["mode"] != "bare"
    df["goal_pps"] = [("met" if p >= PPS_GOAL else "MISSED") if s else "" for p, s in zip(df["pps_per_core"], sfu)]
    df["goal_ratio"] = [("" if math.isnan(r) else "met" if r <= BARE_RATIO_GOAL else "MISSED") if s else ""
                        for r, s in zip(df["ratio_bare"], sfu)]
    spread = {n: g for n, g in df[df["mode"] == "dtls-srtp"].set_index("participants").iterrows()}
    noise, verdicts = [], []
    for row in df.itertuples(index=False):
        base = spread.get(row.participants)
        level = NOISE_FLOOR
        if row.mode == "e2ee" and base is not None and base["us_per_packet"]:
            level = max(NOISE_FLOOR, base["us_iqr"] / base["us_per_packet"], row.ratio_e2ee_iqr)
        noise.append(level if row.mode == "e2ee" else math.nan)
        if row.mode != "e2ee" or math.isnan(row.ratio_e2ee):
            verdicts.append("")
        else:
            verdicts.append("within noise" if abs(row.ratio_e2ee - 1) <= level else "differs")
    df["noise"], df["goal_e2ee"] = noise, verdicts
    return df


def format_sfu(df: pd.DataFrame) -> str:
    """A readable table of a :func:`bench_sfu` result, with the goal verdicts under it."""
    def num(value: float, spec: str) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)
    table = pd.DataFrame({
        "room": df["participants"], "mode": df["mode"], "runs": df["runs"],
        "sent": df["sent"].map("{:.0f}".format), "received": df["received"].map("{:.0f}".format),
        "forwarded": df["forwarded"].map("{:.0f}".format), "cpu s": df["cpu_s"].map("{:.3f}".format),
        "busy": df["cpu_share"].map("{:.0%}".format), "pkt/s/core": df["pps_per_core"].map("{:,.0f}".format),
        "µs/pkt": df["us_per_packet"].map("{:.2f}".format), "IQR": df["us_iqr"].map("{:.2f}".format),
        "x bare": [num(v, ".2f") for v in df["ratio_bare"]],
        "e2ee/dtls": [num(v, ".3f") for v in df["ratio_e2ee"]],
        "±": [num(v, ".3f") for v in df["ratio_e2ee_iqr"]],
    })
    attrs = df.attrs
    machine = ", ".join(f"{k}: {v}" for k, v in attrs.get("machine", {}).items())
    load = attrs.get("load_start"), attrs.get("load_end")
    head = (f"{machine}\nevent loop: {attrs.get('loop', '?')}; load average (1/5/15 min) at start "
            f"{_load(load[0])}, at end {_load(load[1])}; video {attrs.get('video', '?')} + Opus per participant")
    legend = ("per (room, mode): medians over runs; pkt/s/core = forwarded / SFU CPU s; x bare = µs per "
              "packet over the bare forwarder's (run by run); e2ee/dtls = e2ee µs over dtls-srtp µs (run by run), "
              "± its IQR; busy = SFU CPU s / wall s; received < sent: the kernel dropped what the forwarder "
              "could not take (saturated)")
    return f"{head}\n{legend}\n{table.to_string(index=False)}\n" + "\n".join(sfu_goal_verdicts(df))


def _load(values: Sequence[float] | None) -> str:
    return "?" if not values else "/".join(f"{v:.2f}" for v in values)


def sfu_goal_verdicts(df: pd.DataFrame) -> list[str]:
    """Summary lines: packets/s per core (≥ 40,000), cost over bare (≤ 1.5x), e2ee vs dtls-srtp."""
    lines = []
    for mode in ("dtls-srtp", "e2ee"):
        rows = df[df["mode"] == mode]
        if len(rows):
            met = int((rows["goal_pps"] == "met").sum())
            worst = rows["pps_per_core"].min()
            lines.append(f"goal: {mode} SFU forwards ≥ {PPS_GOAL:,} packets/s per core: met in {met} of "
                         f"{len(rows)} rooms (lowest {worst:,.0f})")
            judged = rows[rows["goal_ratio"] != ""]
            if len(judged):
                met = int((judged["goal_ratio"] == "met").sum())
                lines.append(f"goal: {mode} SFU cost per packet ≤ {BARE_RATIO_GOAL}x the bare forwarder's: met in "
                             f"{met} of {len(judged)} rooms (worst {judged['ratio_bare'].max():.2f}x)")
    e2ee = df[df["goal_e2ee"] != ""]
    if len(e2ee):
        within = int((e2ee["goal_e2ee"] == "within noise").sum())
        lines.append(f"goal: e2ee changes the SFU's cost per packet only within noise: {within} of {len(e2ee)} rooms "
                     f"(e2ee/dtls-srtp {e2ee['ratio_e2ee'].min():.3f}..{e2ee['ratio_e2ee'].max():.3f})")
    return lines
