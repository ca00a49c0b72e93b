"""The threat labs' figures: nonce reuse and short tags (lab 07), the malicious SFU's attack matrix (lab 05), metadata leakage (lab 06).

Each function draws one figure from results and returns it; :mod:`e2ee_lab.analysis.plots` lists them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .bench import _MEDIA_COLOURS
from .call import _picture_panel

# --- crypto pitfalls: nonce reuse and short tags (lab 07) -----------------------------------------

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from e2ee_lab.attacks.crypto import BruteForceRun, VideoReuse


def nonce_reuse_pictures(reuse: VideoReuse) -> Figure:
    """Bob's camera as sent, C_A ⊕ C_B as the SFU computes it (bytes as grey pixels), and Bob's
    picture decoded from C_A ⊕ C_B ⊕ P_A (RFC 9605 §4.1 broken; data from
    :func:`e2ee_lab.labs.pitfalls.video_nonce_reuse`)."""
    import numpy as np

    from e2ee_lab.attacks.crypto import ciphertext_xor

    xor = np.frombuffer(ciphertext_xor(reuse.frame_known, reuse.frame_victim, reuse.suite), dtype=np.uint8)
    width = 128
    strip = np.zeros(-(-len(xor) // width) * width, dtype=np.uint8)
    strip[: len(xor)] = xor
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    _picture_panel(axes[0], reuse.sent, f"{reuse.victim_name}'s camera (sent, encrypted)")
    axes[1].imshow(strip.reshape(-1, width), cmap="gray", aspect="auto", interpolation="nearest")
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    axes[1].set_title(f"C_A ⊕ C_B, {len(xor):,} B, no key used\n(= P_A ⊕ P_B: {reuse.known_name}'s and "
                      f"{reuse.victim_name}'s frames mixed)", fontsize=8)
    _picture_panel(axes[2], reuse.picture, f"{reuse.victim_name}'s picture read by the SFU\n"
                   f"from C_A ⊕ C_B ⊕ {reuse.known_name}'s known frame")
    fig.tight_layout()
    plt.close(fig)
    return fig


def short_tag_attempts(runs: Mapping[int, BruteForceRun], rate: float, *, pps: float = 2**20,
                       media_rate: float = 50) -> Figure:
    """Left: attempts per accepted forgery over 2^(8·Nt), a histogram per tag length, against the
    exponential curve the geometric law tends to. Right: expected time to one forgery against tag
    length at ``rate`` (measured), 2^20/s (RFC 9605 §7.5) and ``media_rate``/s, log scale (data
    from :func:`e2ee_lab.labs.pitfalls.run_short_tags`)."""
    import numpy as np

    fig, (hist, ext) = plt.subplots(1, 2, figsize=(11, 3.8))
    bins = np.linspace(0, 6, 25)
    for (nt, run), colour in zip(sorted(runs.items()), _MEDIA_COLOURS):
        scaled = np.asarray(run.attempts, dtype=float) / run.expected
        hist.hist(scaled, bins=bins, density=True, histtype="step", linewidth=1.6, color=colour,
                  label=f"{nt}-byte tag: {len(run.attempts)} trials, mean {run.mean:,.0f} ({run.ratio:.2f}×)")
        hist.axvline(run.ratio, color=colour, linestyle="--", linewidth=1)
    x = np.linspace(0, 6, 200)
    hist.plot(x, np.exp(-x), color="black", linewidth=1, label="expected: e^(−x), mean 1")
    hist.set_xlabel("attempts until accepted ÷ 2^(8·Nt)")
    hist.set_ylabel("density")
    hist.set_title("brute-force forgeries against short tags (lab-only tag lengths)", fontsize=9)
    hist.legend(fontsize=7)
    tags = np.arange(1, 17)
    year = 365.25 * 86400
    for label, per_second, style in ((f"this receiver, {rate:,.0f}/s", rate, "o-"),
                                     ("2^20/s (RFC 9605 §7.5)", pps, "s-"),
                                     (f"{media_rate:g}/s (rate-limited)", media_rate, "^-")):
        ext.semilogy(tags, 2.0 ** (8 * tags) / per_second / year, style, markersize=3, label=label)
    for value, text in ((1 / (365.25 * 24), "1 hour"), (1, "1 year"), (1.38e10, "age of the universe")):
        ext.axhline(value, color="#9e9e9e", linewidth=0.8, linestyle=":")
        ext.text(16.2, value, text, fontsize=7, va="center")
    for nt, name in ((4, "suite 3"), (8, "suite 2"), (10, "suite 1"), (16, "GCM")):
        ext.axvline(nt, color="#e0e0e0", linewidth=0.8, zorder=0)
        ext.text(nt, 1e-12, name, rotation=90, fontsize=7, ha="right", va="bottom")
    ext.set_xticks([1, 2, 4, 8, 10, 16])
    ext.set_xlabel("tag bytes Nt")
    ext.set_ylabel("expected years to one forgery")
    ext.set_xlim(0.5, 19)
    ext.set_title("extrapolated: 2^(8·Nt) ÷ attempts per second", fontsize=9)
    ext.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- notebook 05: the malicious SFU ----------------------------------------------------------------

_OUTCOME_COLOURS = {"honest": "#bdbdbd", "displayed": "#c62828", "rejected": "#2e7d32",
                    "protected": "#2e7d32", "not prevented": "#ef6c00", "SFU reads": "#6a1b9a",
                    "not run": "#ffffff"}
_OUTCOME_LABELS = {"honest": "honest baseline", "displayed": "attacked frames displayed",
                   "rejected": "rejected by a receiver check", "protected": "refused by a member's check",
                   "not prevented": "not preventable by crypto",
                   "SFU reads": "the SFU reads the media"}


def _attack_cell(row) -> str:
    if row.outcome == "displayed":
        return f"shown {row.displayed}/{row.frames}"
    if row.outcome in ("rejected", "protected"):
        return str(row.caught_by).replace(" ", "\n", 1) if len(str(row.caught_by)) > 12 else str(row.caught_by)
    if row.outcome == "SFU reads":
        return f"SFU reads {row.sfu_read}\nshown {row.displayed}/{row.delivered}"
    if row.outcome == "not prevented":
        return row.note if row.note and len(row.note) < 24 else f"{row.frames} frames"
    return f"{row.displayed}/{row.frames} shown" if row.outcome == "honest" else ""


def _matrix_column(row) -> str:
    """A column of the heat map: the mode, and the members' key policy when it is the naive one."""
    return f"{row.mode}\nnaive members" if getattr(row, "key_policy", "") == "naive" else row.mode


def attack_matrix(table: pd.DataFrame) -> Figure:
    """Attack × mode (× naive members, when the table has them): what the receivers did with the
    attacked frames (colour) and which check caught them or how many were shown (text), from
    :func:`e2ee_lab.attacks.runner.attack_matrix`'s table."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    attacks = list(dict.fromkeys(table["attack"]))
    modes = list(dict.fromkeys(_matrix_column(r) for r in table.itertuples(index=False)))
    cells = {(r.attack, _matrix_column(r)): r for r in table.itertuples(index=False)}
    fig, ax = plt.subplots(figsize=(2.4 * len(modes) + 5.6, 0.45 * len(attacks) + 1.4))
    rgb = [[to_rgb(_OUTCOME_COLOURS.get(cells[a, m].outcome, "#ffffff")) if (a, m) in cells else (1, 1, 1)
            for m in modes] for a in attacks]
    ax.imshow(rgb, aspect="auto")
    for i, a in enumerate(attacks):
        for j, m in enumerate(modes):
            if (a, m) in cells:
                row = cells[a, m]
                dark = row.outcome not in ("honest", "not run")
                ax.text(j, i, _attack_cell(row), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    ax.set_xticks(range(len(modes)), modes)
    ax.set_yticks(range(len(attacks)), attacks)
    ax.xaxis.tick_top()
    ax.set_xticks([x + 0.5 for x in range(len(modes) - 1)], minor=True)
    ax.set_yticks([y + 0.5 for y in range(len(attacks) - 1)], minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    shown = [k for k in _OUTCOME_LABELS if k in set(table["outcome"])]
    ax.legend(handles=[Patch(color=_OUTCOME_COLOURS[k], label=_OUTCOME_LABELS[k]) for k in shown],
              loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle("A malicious SFU: what the receivers did with the attacked video frames", fontsize=10)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it; an open pyplot figure would be shown twice inline
    return fig


# --- notebook 06: metadata leakage --------------------------------------------------------------


def _runs(flags) -> list[tuple[float, float]]:
    """(start index, length) of each run of True in a boolean sequence."""
    runs, start = [], None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def speaking_timelines(timeline: pd.DataFrame) -> Figure:
    """Per participant, who speaks when: the truth, the audio-level rule and the packet-size rule as
    three lanes over time, and below, every audio packet's SFrame body size with the size threshold.

    ``timeline`` is :func:`e2ee_lab.analysis.leakage.speaking_timeline` (notebook 06); its
    ``attrs["rules"]`` give the thresholds.
    """
    import numpy as np

    publishers = list(dict.fromkeys(timeline.publisher))
    lanes = (("speaking", "true", "#2e7d32"), ("from_level", "from audio level", "#1565c0"),
             ("from_size", "from packet sizes", "#e65100"))
    fig, axes = plt.subplots(len(publishers) + 1, 1, figsize=(10, 1.3 * len(publishers) + 2.6),
                             sharex=True, gridspec_kw={"height_ratios": [1] * len(publishers) + [1.6]})
    for ax, name in zip(axes, publishers):
        rows = timeline[timeline.publisher == name]
        t = rows.time.to_numpy()
        for y, (column, label, colour) in enumerate(reversed(lanes)):
            spans = [(t[i], 0.02 * n) for i, n in _runs(rows[column].fillna(False).astype(bool))]
            ax.broken_barh(spans, (y + 0.15, 0.7), color=colour)
        ax.set_yticks([0.5, 1.5, 2.5], [label for _, label, _ in reversed(lanes)], fontsize=8)
        ax.set_ylim(0, 3)
        role = "training" if (rows.role == "train").all() else "test"
        ax.set_title(f"{name} ({role} frames)", fontsize=9, loc="left")
    ax = axes[-1]
    for name in publishers:
        rows = timeline[timeline.publisher == name]
        ax.plot(rows.time, rows.body_size, ".", markersize=3, label=name)
    rule = timeline.attrs.get("rules", {}).get("size")
    if rule is not None and np.isfinite(rule.threshold):
        ax.axhline(rule.threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {rule.threshold:g} B")
    ax.set_ylabel("SFrame body (bytes)", fontsize=8)
    ax.set_xlabel("seconds since the call started")
    ax.legend(fontsize=7, ncol=len(publishers) + 1, loc="upper right")
    fig.suptitle("Who speaks when, read by the SFU from an end-to-end encrypted call", fontsize=10)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it; an open pyplot figure would be shown twice inline
    return fig


def video_frame_sizes(frames: pd.DataFrame) -> Figure:
    """Each video frame's size as the SFU sees it, per publisher, with the sender's key frames
    ringed and the SFU's size-based guesses marked (notebook 06;
    :func:`e2ee_lab.analysis.leakage.video_frames`)."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for name, rows in frames.groupby("publisher", sort=False):
        ax.plot(rows.time, rows["size"], ".-", markersize=3, linewidth=0.6, label=name)
    key = frames[frames.frame_type == "key"]
    guess = frames[frames.key_guess]
    ax.scatter(key.time, key["size"], s=90, facecolors="none", edgecolors="#c62828", label="key frame (sender)")
    ax.scatter(guess.time, guess["size"], marker="x", s=30, color="black", label="key frame (SFU's guess)")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the call started")
    ax.set_ylabel("frame bytes (encrypted)")
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("Video frame sizes the SFU sees: key frames stand out although encrypted", fontsize=10)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it; an open pyplot figure would be shown twice inline
    return fig
