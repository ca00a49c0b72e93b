"""A production SFU's figures: what its own recording plays back, and its CPU per packet (lab 11).

Each function draws one figure from plain data (pictures, correlations, a table) and returns it;
:mod:`e2ee_lab.analysis.plots` lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .call import _picture_panel

MODE_COLOURS = {"dtls-srtp": "#c62828", "e2ee": "#2e7d32", "clear-prefix": "#1565c0"}


def recording_playback(sent: np.ndarray, recorded: Mapping[str, np.ndarray | None], notes: Mapping[str, str],
                       correlation: Mapping[str, Mapping[str, float]], publisher: str = "alice") -> Figure:
    """The picture ``publisher`` sent; per call mode the picture the SFU's own recording gives
    back of that frame (a grey panel with ``notes[mode]`` when none); and, per mode, how well
    each publisher's recorded speech correlates with what they said (1 = the same speech, near 0 =
    noise)."""
    modes = list(recorded)
    fig = plt.figure(figsize=(3.1 * (len(modes) + 1) + 3.6, 3.0))
    grid = fig.add_gridspec(1, len(modes) + 2, width_ratios=[1] * (len(modes) + 1) + [1.25])
    _picture_panel(fig.add_subplot(grid[0, 0]), sent, f"{publisher} sent")
    for i, mode in enumerate(modes, start=1):
        _picture_panel(fig.add_subplot(grid[0, i]), recorded[mode], f"Janus's recording, {mode}", notes.get(mode, ""))
    ax = fig.add_subplot(grid[0, -1])
    names = sorted({name for values in correlation.values() for name in values})
    width = 0.8 / max(1, len(correlation))
    for j, (mode, values) in enumerate(correlation.items()):
        x = np.arange(len(names)) + (j - (len(correlation) - 1) / 2) * width
        ax.bar(x, [values.get(n, 0.0) for n in names], width, label=mode, color=MODE_COLOURS.get(mode))
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("recorded speech vs what was said\n(correlation)", fontsize=8)
    ax.legend(fontsize=7, loc="upper center", ncol=len(correlation))
    ax.set_title("speech in the recording", fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it; an open pyplot figure would be shown twice inline
    return fig


def sfu_cpu(table: pd.DataFrame) -> Figure:
    """µs of CPU per forwarded packet for each SFU and load of ``table`` (columns ``sfu``,
    ``load``, ``us_per_packet``, ``packets_per_core_s``, ``cpu_s``), each bar labelled with its
    forwarded packets per second per core and the CPU time it was measured from."""
    labels = [f"{row.sfu}\n{row.load}" for row in table.itertuples()]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.75 * len(table)))
    bars = ax.barh(labels, table.us_per_packet, color=["#6a1b9a" if "Janus" in s else "#00838f" for s in table.sfu])
    for bar, row in zip(bars, table.itertuples()):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f"  {row.packets_per_core_s:,} packets/s per core (CPU {row.cpu_s:g} s)", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("µs of CPU per forwarded packet")
    ax.set_xlim(0, max(table.us_per_packet) * 1.9)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
