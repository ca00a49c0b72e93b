"""``e2ee-lab bench labs``: what one student's run of each lab costs, in CPU-seconds and memory.

Each notebook runs top to bottom at each size in a fresh process (``python -m e2ee_lab.bench.labs
PATH SIZE``), which executes it with nbclient in its own kernel, exactly as a student's front end
would, and then reports ``getrusage``: the CPU time of itself and of every process it waited for
(the kernel, and what the kernel started: Chromium, the SFU's load processes), and the largest
resident set among them. Nothing is sampled or estimated. INSTRUCTORS.md turns the table into the
resources a hub needs per student.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
COLUMNS = ["lab", "notebook", "size", "wall_s", "cpu_s", "peak_rss_mib", "error"]


def _usage() -> dict:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            "peak_rss_mib": max(me.ru_maxrss, kids.ru_maxrss) / 1024}  # Linux reports KiB


def run_one(path: Path, size: str) -> dict:
    """Execute ``path`` at ``size`` in this process and its kernel; what it cost (this process only)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    began, error = time.monotonic(), ""
    try:
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=dict(os.environ, E2EE_LAB_SIZE=size))
    except Exception as exc:  # noqa: BLE001 - a failing notebook is a row with its error, not a crash
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    return {"wall_s": round(time.monotonic() - began, 1), **_usage(), "error": error}


def bench_labs(labs: Iterable[str] = (), sizes: Sequence[str] = ("ci", "full"),
               notebooks: Path = NOTEBOOKS, progress: bool = True) -> pd.DataFrame:
    """One row per (notebook, size): wall time, CPU-seconds and peak RSS, each run in a fresh process."""
    wanted = set(labs)
    paths = [p for p in sorted(Path(notebooks).glob("[0-9]*.ipynb")) if not wanted or p.name[:2] in wanted]
    rows = []
    for path in paths:
        for size in sizes:
            out = subprocess.run([sys.executable, "-m", "e2ee_lab.bench.labs", str(path), size], capture_output=True,
                                 text=True, env=dict(os.environ, E2EE_LAB_SIZE=size))
            try:
                measured = json.loads(out.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                measured = {"wall_s": None, "cpu_s": None, "peak_rss_mib": None,
                            "error": (out.stderr.strip().splitlines() or ["no output"])[-1][:200]}
            row = {"lab": path.name[:2], "notebook": path.name, "size": size, **measured}
            rows.append(row)
            if progress:
                print(f"{path.name} {size}: {row['wall_s']} s wall, {row['cpu_s']:.1f} CPU-s, "
                      f"{row['peak_rss_mib']:.0f} MiB" if row["cpu_s"] is not None else f"{path.name} {size}: failed",
                      file=sys.stderr)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["load_before"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return df


def format_labs(df: pd.DataFrame) -> str:
    """The table, one row per lab, a column pair per size."""
    if df.empty:
        return "no notebook measured"
    wide = df.pivot_table(index="lab", columns="size", values=["cpu_s", "peak_rss_mib", "wall_s"], aggfunc="first")
    wide.columns = [f"{what} {size}" for what, size in wide.columns]
    total = df.groupby("size")[["cpu_s", "wall_s"]].sum().round(1).to_dict("index")
    failed = df[df.error.astype(bool)]
    lines = [wide.round(1).to_string()]
    lines += [f"total {size}: {t['cpu_s']} CPU-s, {t['wall_s']} s wall" for size, t in total.items()]
    lines += [f"FAILED {r.notebook} {r.size}: {r.error}" for r in failed.itertuples()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(run_one(Path(sys.argv[1]), sys.argv[2])))
