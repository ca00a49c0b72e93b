"""The benchmarks' figures: per-frame overhead and CPU of each transform, pipeline stages, the SFU's capacity, SFrame overhead per suite (labs 03 and 08).

Each function draws one figure from results and returns it; :mod:`e2ee_lab.analysis.plots` lists them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# --- benchmarks (e2ee_lab.bench): transforms and pipeline --------------------------------------------

if TYPE_CHECKING:
    import pandas as pd

_MEDIA_COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd")
_SCHEME_MARKERS = {"none": "x", "clear-prefix": "s"}


def transform_overhead(df: pd.DataFrame) -> Figure:
    """Bytes each transform adds per frame, and that as % of each medium's bit rate (bench transforms).

    ``df`` is a :func:`e2ee_lab.bench.bench_transforms` result. Left: bytes added per frame by scheme
    (mean over the medium's key and delta frames); right: the overhead in % of the medium's bit rate
    at its frame rate (log scale; ``none`` adds nothing and is left out).
    """
    media = list(dict.fromkeys(df["media"]))
    schemes = list(dict.fromkeys(df["scheme"]))
    per_media = df.drop_duplicates(["media", "scheme"]).set_index(["media", "scheme"])
    added = per_media["overhead_kbps"] * 1000 / (8 * per_media["fps"])  # mean bytes per frame
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(media)
    for i, name in enumerate(media):
        xs = [j + (i - (len(media) - 1) / 2) * width for j in range(len(schemes))]
        colour = _MEDIA_COLOURS[i % len(_MEDIA_COLOURS)]
        left.bar(xs, [added[name, s] for s in schemes], width, color=colour, label=name)
        shown = [(x, per_media.loc[(name, s), "overhead_bitrate_pct"]) for x, s in zip(xs, schemes) if s != "none"]
        right.bar([x for x, _ in shown], [v for _, v in shown], width, color=colour, label=name)
    for ax in (left, right):
        ax.set_xticks(range(len(schemes)), schemes, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    left.set_ylabel("bytes added per frame")
    left.set_title("Overhead per frame", fontsize=10)
    right.set_yscale("log")
    right.set_ylabel("% of the medium's bit rate")
    right.set_title("Overhead share of the bit rate (50 fps audio, 30 fps video)", fontsize=10)
    left.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    plt.close(fig)
    return fig


def transform_cpu(df: pd.DataFrame) -> Figure:
    """µs per frame of each transform against frame size, with bare AES-GCM and AES-GCM's bulk-rate ceiling.

    ``df`` is a :func:`e2ee_lab.bench.bench_transforms` result: one point per (medium, frame type,
    scheme) at the group's mean frame size; left the sender (protect), right the receiver
    (unprotect). The solid line is the bare ``cryptography`` AES-GCM call on the same frames in the
    same runs; the dashed line (left, where measured) is the ceiling: that size at AES-128-GCM's
    bulk rate through the same library (``ceiling_us``), the cipher's cost with no per-call overhead.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    groups = df.groupby(["media", "frame_type"], sort=False)
    base = groups.agg(size=("mean_size", "first"), gcm_encrypt=("gcm_encrypt_us", "median"),
                      gcm_decrypt=("gcm_decrypt_us", "median"), ceiling=("ceiling_us", "first")).sort_values("size")
    colours = plt.get_cmap("viridis")
    schemes = list(dict.fromkeys(df["scheme"]))
    for ax, side, gcm in ((axes[0], "protect", "gcm_encrypt"), (axes[1], "unprotect", "gcm_decrypt")):
        for i, scheme in enumerate(schemes):
            part = df[df["scheme"] == scheme]
            ax.scatter(part["mean_size"], part[f"{side}_us"], s=24, label=scheme,
                       marker=_SCHEME_MARKERS.get(scheme, "o"), color=colours(i / max(1, len(schemes) - 1)))
        ax.plot(base["size"], base[gcm], color="black", linewidth=1.2, label="bare AES-GCM call, same frames")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("frame size (bytes)")
        ax.set_title(f"{side} (µs per frame)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    if base["ceiling"].notna().any():
        axes[0].plot(base["size"], base["ceiling"], color="grey", linestyle="--", label="AES-GCM bulk rate (ceiling)")
    axes[0].set_ylabel("µs per frame")
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="center right")
    plt.close(fig)
    return fig


def pipeline_stages(df: pd.DataFrame, *, codec: bool = False) -> Figure:
    """Stacked µs per frame per stage for each medium and mode (bench pipeline).

    ``df`` is a :func:`e2ee_lab.bench.bench_pipeline` result; ``codec`` picks the rows with or without
    encode/decode in the loop. One horizontal bar per (medium, mode), one segment per stage.
    """
    from e2ee_lab.bench.pipeline import STAGES

    rows = df[df["codec"] == codec]
    labels = [f"{m}  {mode}" for m, mode in zip(rows["media"], rows["mode"])]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.32 * len(rows)))
    left = [0.0] * len(rows)
    colours = plt.get_cmap("tab20")
    for i, stage in enumerate(STAGES):
        values = rows[f"{stage}_us"].fillna(0.0).tolist()
        if not any(values):
            continue
        ax.barh(range(len(rows)), values, left=left, color=colours(i), label=stage)
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("µs per frame (median)")
    ax.set_title(f"Where a frame's time goes, {'with' if codec else 'without'} the codec", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig

# --- SFrame overhead (notebook 03) ----------------------------------------------------------------


def overhead_figure(table: pd.DataFrame) -> Figure:
    """Grouped bars: overhead in % of the payload per suite, one bar per frame kind (log scale).

    ``table`` is an :func:`e2ee_lab.labs.sframe.overhead_table` result (RFC 9605 Appendix B): one row
    per (frame kind, suite) with its ``overhead %``. Suites are drawn in cipher-suite order.
    """
    from e2ee_lab.crypto.sframe import CipherSuite

    pivot = table.pivot(index="suite", columns="frame", values="overhead %")
    pivot = pivot.reindex([s.name for s in CipherSuite])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    pivot.plot.bar(ax=ax, rot=20, logy=True)
    ax.set_ylabel("overhead, % of payload (log)")
    ax.set_xlabel("")
    ax.set_title("SFrame header + tag per frame")
    ax.legend(title=None, fontsize=8)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.2g%%", fontsize=7)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it; an open pyplot figure would be shown twice inline
    return fig

# --- benchmarks (e2ee_lab.bench): the SFU's speed ------------------------------------------------

_SFU_MODE_STYLES = {"bare": ("#7f7f7f", "s", "--"), "dtls-srtp": ("#4c72b0", "o", "-"), "e2ee": ("#c44e52", "^", "-")}


def sfu_capacity(df: pd.DataFrame, *, goal: float | None = None) -> Figure:
    """Forwarded SRTP packets per second per core and µs per forwarded packet, by room size and mode.

    ``df`` is a :func:`e2ee_lab.bench.bench_sfu` result. Left: packets/s per core (one line per
    mode; ``goal``, default the bench's 40,000, as a dotted line); right: µs of SFU CPU per
    forwarded packet with the run-to-run IQR as error bars. ``bare`` is the forwarder that only
    does SRTP and sendto: the ceiling. ``e2ee`` on top of ``dtls-srtp`` means the SFU did the same work.
    """
    from e2ee_lab.bench.sfu import PPS_GOAL

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, rows in df.groupby("mode", sort=False):
        colour, marker, style = _SFU_MODE_STYLES.get(str(mode), ("#55a868", "D", "-"))
        rows = rows.sort_values("participants")
        left.plot(rows["participants"], rows["pps_per_core"] / 1000, marker=marker, linestyle=style,
                  color=colour, label=mode)
        right.errorbar(rows["participants"], rows["us_per_packet"], yerr=rows["us_iqr"] / 2, marker=marker,
                       linestyle=style, color=colour, capsize=3, label=mode)
    left.axhline((goal if goal is not None else PPS_GOAL) / 1000, color="black", linestyle=":", linewidth=1,
                 label="goal")
    rooms = sorted(df["participants"].unique())
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(rooms, [str(r) for r in rooms])
        ax.set_xlabel("participants in the room")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    left.set_ylabel("thousand packets/s per core")
    left.set_title("Forwarded SRTP packets per second per core", fontsize=10)
    right.set_ylabel("µs of SFU CPU per forwarded packet")
    right.set_title("Cost per forwarded packet (median, IQR bars)", fontsize=10)
    left.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def call_envelope(df: pd.DataFrame) -> Figure:
    """The envelope of whole calls by room size: frames in time and CPU per participant-second.

    ``df`` is a :func:`e2ee_lab.bench.bench_call` result, or several concatenated (one line per
    stack, mode and number of workers). Left: the share of the frames sent to receivers that came
    in time (``1 - late_share``, worst-receiver verified share as a dotted line), with the 95 %
    mark; right: CPU-seconds per participant-second of media. A room that did not keep real time
    is drawn hollow.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    workers = df["workers"] if "workers" in df else 0
    keys = df.assign(workers=workers).groupby(["stack", "mode", "workers"], sort=False)
    for i, ((stack, mode, n), rows) in enumerate(keys):
        rows = rows.sort_values("participants")
        colour = _MEDIA_COLOURS[i % len(_MEDIA_COLOURS)]
        label = f"{stack} {mode}, {n} workers" if n else f"{stack} {mode}, one process"
        in_time = 1 - rows["late_share"].astype(float)
        left.plot(rows["participants"], 100 * in_time, color=colour, label=label)
        left.plot(rows["participants"], 100 * rows["video_verified_min"].astype(float), color=colour,
                  linestyle=":", linewidth=1)
        right.plot(rows["participants"], rows["cpu_s_per_participant_s"], color=colour, label=label)
        for ax, ys in ((left, 100 * in_time), (right, rows["cpu_s_per_participant_s"])):
            for x, y, ok in zip(rows["participants"], ys, rows["real_time"].astype(bool)):
                ax.plot([x], [y], marker="o", color=colour, markerfacecolor=colour if ok else "white")
    left.axhline(95, color="black", linestyle=":", linewidth=1, label="95 %")
    rooms = sorted(df["participants"].unique())
    for ax in (left, right):
        ax.set_xticks(rooms, [str(r) for r in rooms])
        ax.set_xlabel("participants in the room")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    left.set_ylabel("% of frames sent that came in time")
    left.set_title("In time (solid) and verified, worst receiver (dotted); hollow: not real time", fontsize=9)
    right.set_ylabel("CPU-seconds per participant-second")
    right.set_title("What a participant costs", fontsize=10)
    left.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
