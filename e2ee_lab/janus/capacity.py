"""Janus and the lab's SFU side by side on one machine and one room: CPU per forwarded packet.

:func:`compare_sfus` measures both in one run:

1. a Janus call (:func:`~e2ee_lab.janus.call.run_janus_call`, aiortc participants, ``seconds`` of
   media): Janus's CPU time (every thread's time on a CPU, from ``/proc/PID/task/*/schedstat``)
   over the media window and the packets its admin API says it received from publishers and sent
   to subscribers; and the same less Janus's idle rate (every PeerConnection up, no media yet:
   timers, RTCP, keepalives), measured just before media started;
2. the lab's SFU (:class:`~e2ee_lab.sfu.server.SFUServer`, Python) in a process of its own, fed by
   the SFU benchmark's publishers (:mod:`e2ee_lab.bench.sfu_load`, real DTLS-SRTP legs): the same
   room size and mode, as many publisher packets as Janus received, sent at the rate Janus
   received them; its CPU time (``time.process_time``) from the first packet until it went quiet;
3. the lab's SFU again on the same packets sent flat out (the benchmark's
   :data:`~e2ee_lab.bench.sfu.SEND_RATE`), the figure ``e2ee-lab bench sfu`` reports.

Each row gives forwarded packets, CPU seconds, wall seconds, the CPU share of one core, µs of CPU
per forwarded packet and its inverse, forwarded packets per second per core. What differs besides
the language: Janus also records every stream to disk (the room records) and serves RTCP, NACK
and keepalives for live peers, at a call's pace, so its figure includes per-second costs that a
burst spreads thin. The e2ee modes cost an SFU what ``dtls-srtp`` costs: it
never reads the payload.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from e2ee_lab.bench.sfu import SEND_RATE, collect_runs, load_plan
from e2ee_lab.config import Size, lab_size

from .call import JanusCallResult, run_janus_call

COLUMNS = ("sfu", "load", "participants", "mode", "forwarded", "cpu_s", "wall_s", "cpu_share",
           "us_per_packet", "packets_per_core_s")
WARMUP = 50  # untimed packets before the lab SFU's runs
VIDEO = {"ci": "vp8-320x240", "full": "vp8-640x480"}


def _row(sfu: str, load: str, participants: int, mode: str, forwarded: int, cpu_s: float, wall_s: float) -> dict:
    return {"sfu": sfu, "load": load, "participants": participants, "mode": mode, "forwarded": int(forwarded),
            "cpu_s": round(cpu_s, 3), "wall_s": round(wall_s, 3),
            "cpu_share": round(cpu_s / wall_s, 3) if wall_s else None,
            "us_per_packet": round(1e6 * cpu_s / forwarded, 1) if forwarded else None,
            "packets_per_core_s": round(forwarded / cpu_s) if cpu_s else None}


def janus_rows(result: JanusCallResult) -> list[dict]:
    """The Janus call's rows: its CPU and forwarded packets over the media window, and the same
    less its idle rate (measured just before media started) over that window."""
    s, j = result.summary, result.summary["janus"]
    name = f"Janus {j.get('version') or ''}".strip()
    args = (s["participant_count"], s["mode"], s["sfu"]["packets_forwarded"])
    idle = j.get("idle_cpu_share", 0.0) * j["wall_s"]
    return [_row(name, "a call", *args, j["cpu_s"], j["wall_s"]),
            _row(name, "a call, less its idle rate", *args, max(0.0, j["cpu_s"] - idle), j["wall_s"])]


def lab_rows(participants: int, mode: str, packets: int, rate: float, *, size: Size, repeat: int = 3,
             seed: int = 0) -> list[dict]:
    """The lab SFU's rows: ``packets`` publisher packets at ``rate`` per second, then flat out
    (medians over ``repeat`` runs each)."""
    bench_mode = "dtls-srtp" if mode == "dtls-srtp" else "e2ee"  # clear-prefix costs the SFU the same
    rows = []
    for load, send_rate in (("the call's packets at its rate", rate), ("the same packets flat out", SEND_RATE)):
        plan = load_plan([participants], [bench_mode], repeat, packets, target=packets, video=VIDEO[size],
                         loop="asyncio", seed=seed)
        plan = replace(plan, rates=(float(send_rate),), warmup=min(WARMUP, packets))
        runs = pd.DataFrame(collect_runs(plan, progress=False)[0])
        median = runs[["forwarded", "cpu_s", "wall_s"]].median()
        rows.append(_row("lab SFU (Python)", load, participants, mode, median.forwarded, median.cpu_s, median.wall_s))
    return rows


def capacity_table(call: JanusCallResult, *, repeat: int = 3, seed: int = 0) -> pd.DataFrame:
    """The three rows of the module docstring for a Janus call already made (its room size, mode,
    size, packets and rate); ``attrs``: the publishers' packet rate, size and seconds.

    Raises:
        RuntimeError / TimeoutError: the lab SFU's benchmark processes failed.
    """
    s = call.summary
    rate = s["sfu"]["packets_in"] / s["janus"]["wall_s"]
    rows = janus_rows(call) + lab_rows(s["participant_count"], s["mode"], s["sfu"]["packets_in"], rate,
                                        size=s["size"], repeat=repeat, seed=seed)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs.update(publisher_rate=round(rate, 1), size=s["size"], seconds=s["seconds"])
    return table


def compare_sfus(participants: int = 3, seconds: float = 3.0, mode: str = "dtls-srtp", *, size: Size | None = None,
                 seed: int = 0, out: str | Path | None = None, repeat: int = 3) -> tuple[pd.DataFrame, JanusCallResult]:
    """A Janus call, then :func:`capacity_table` of it: both SFUs in one run; returns the table and
    the call.

    Raises:
        JanusUnavailable, IsolationFailed: as :func:`~e2ee_lab.janus.call.run_janus_call`.
        RuntimeError / TimeoutError: the lab SFU's benchmark processes failed.
    """
    call = run_janus_call(mode, participants, seconds, seed, size or lab_size(), out)
    return capacity_table(call, repeat=repeat, seed=seed), call
