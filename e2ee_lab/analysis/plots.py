"""Figures of the lab: one function per figure, each returning a matplotlib Figure.

Notebooks display the returned figure and ``make run`` saves it under ``reports/``. A figure function
only draws: it takes results (DataFrames or result records) and never runs a call itself.

Figures:
    overhead_figure: SFrame header + tag in % of the payload per cipher suite, for audio and video
    frames (notebook 01; RFC 9605 Appendix B, data from :func:`e2ee_lab.labs.sframe.overhead_table`).
    call_pictures: per call mode, the picture a publisher sent, what each participant decoded and
    what the SFU decoded (notebook 02; data from a :class:`e2ee_lab.call.CallResult` per mode).
    sfu_picture: the last picture of a publisher the SFU decoded, large enough to read (notebook 02).
    sfu_speech: a publisher's speech as sent and as the SFU decoded it, waveform and spectrogram
    (notebook 02).
    key_timeline: who can decrypt which frames across joins, leaves and rekeys (notebook 03;
    sender keys and epochs of RFC 9605 §5.1, data from :func:`e2ee_lab.labs.keys.simulate_timeline`).
    transform_overhead: bytes each frame transform adds per frame, and as % of each medium's bit
    rate (benchmarks, :func:`e2ee_lab.bench.bench_transforms`).
    transform_cpu: µs per frame of each transform against frame size, with the bare AES-GCM call
    and the ``openssl speed`` ceiling (benchmarks, :func:`e2ee_lab.bench.bench_transforms`).
    pipeline_stages: stacked µs per frame per pipeline stage for each medium and mode (benchmarks,
    :func:`e2ee_lab.bench.bench_pipeline`).
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

if TYPE_CHECKING:
    from e2ee_lab.labs.keys import Timeline

# (decrypted, listener was in the call when the frame was sent) -> marker style and legend text
_FRAME_STYLES = {
    (True, True): dict(marker="o", color="#2e8b57", s=9, label="decrypted by a member"),
    (True, False): dict(marker="^", color="#e07b00", s=22, label="decrypted after leaving (leak)"),
    (False, True): dict(marker="x", color="#c62828", s=22, label="not decrypted although a member"),
    (False, False): dict(marker=".", color="#b0b0b0", s=6, label="not decrypted, not a member"),
}


def key_timeline(timeline: Timeline) -> Figure:
    """Listeners × time: every frame each listener tried, coloured by outcome, with epochs and switch-overs.

    One row per listener; inside a row, one thin lane per sender. Blue bands show when the listener
    was in the call, dashed lines mark epoch starts (labelled with the change), and yellow spans
    the switch-over delay during which senders still use their previous keys.
    """
    names = sorted(timeline.presence)
    row = {name: len(names) - 1 - i for i, name in enumerate(names)}
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.75 * len(names)))
    first = min([start for _, start, _, _ in timeline.epochs] + [timeline.start])
    for name, (joined, left) in timeline.presence.items():
        ax.fill_between([joined, timeline.end if left is None else left], row[name] - 0.42, row[name] + 0.42,
                        color="#e3edf9", zorder=0)
    _draw_epochs(ax, timeline, top=len(names) - 0.5)
    _draw_frames(ax, timeline, names, row)
    ax.set_yticks([row[n] for n in names], [f"{n} receives" for n in names])
    ax.set_ylim(-0.6, len(names) + 0.3)
    ax.set_xlim(first - 0.5, timeline.end + 2.5)
    ax.set_xlabel("time the frame was sent (s)")
    policy = timeline.policy
    ax.set_title(f"Who decrypts which frames: switch-over {policy.switch_delay:g} s, grace {policy.grace:g} s, "
                 f"latency {timeline.latency:g} s", fontsize=10)
    handles = [Line2D([], [], linestyle="", marker=st["marker"], color=st["color"], label=st["label"])
               for st in _FRAME_STYLES.values()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    plt.close(fig)  # the caller displays it; an open pyplot figure would be shown twice inline
    return fig


def _draw_epochs(ax, timeline: Timeline, *, top: float) -> None:
    last_label = None
    for start, group in groupby(timeline.epochs, key=lambda e: e[1]):
        group = list(group)
        ax.axvline(start, linestyle="--", color="#555555", linewidth=0.8, zorder=1)
        ax.axvspan(start, start + timeline.policy.switch_delay, color="#fff3c4", alpha=0.8, zorder=0.5)
        epochs = f"e{group[0][0]}" if len(group) == 1 else f"e{group[0][0]}–e{group[-1][0]}"
        # Lift a label above its neighbour when two epochs start close together.
        close = last_label is not None and start - last_label < 0.2 * (timeline.end - timeline.start)
        ax.text(start, top + (0.33 if close else 0.05), f"{epochs}: {_describe(group)}", fontsize=8,
                ha="left", va="bottom")
        last_label = None if close else start


def _describe(group: list[tuple[int, float, str, str]]) -> str:
    """"A, B, C join", "D joins", "B leaves" or "periodic rekey" for epochs that start together."""
    changes = {change for _, _, change, _ in group}
    subjects = ", ".join(subject for _, _, _, subject in group if subject)
    if changes == {"rekey"}:
        return "periodic rekey"
    if len(group) == 1:
        return f"{subjects} {'joins' if 'join' in changes else 'leaves'}"
    return f"{subjects} join" if changes == {"join"} else f"{subjects}: {', '.join(c for _, _, c, _ in group)}"


def _draw_frames(ax, timeline: Timeline, names: list[str], row: dict[str, int]) -> None:
    lanes = {listener: [n for n in names if n != listener] for listener in names}
    points: dict[tuple[bool, bool], tuple[list[float], list[float]]] = {k: ([], []) for k in _FRAME_STYLES}

    def lane(listener: str, sender: str) -> float:
        senders = lanes[listener]
        return row[listener] + (senders.index(sender) - (len(senders) - 1) / 2) * 0.22

    for o in timeline.frames:
        xs, ys = points[o.decrypted, o.member_at_send]
        xs.append(o.sent_at)
        ys.append(lane(o.receiver, o.sender))
    for listener, senders in lanes.items():
        for sender in senders:
            ax.text(timeline.end + 0.6, lane(listener, sender), f"from {sender}", fontsize=6, va="center")
    for key, (xs, ys) in points.items():
        style = {k: v for k, v in _FRAME_STYLES[key].items() if k != "label"}
        ax.scatter(xs, ys, zorder=3, linewidths=0.8, **style)


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
    """µs per frame of each transform against frame size, with bare AES-GCM and the openssl ceiling.

    ``df`` is a :func:`e2ee_lab.bench.bench_transforms` result: one point per (medium, frame type,
    scheme) at the group's mean frame size; left the sender (protect), right the receiver
    (unprotect). The solid line is the bare ``cryptography`` AES-GCM call on the same frames in the
    same runs; the dashed line (left, where present) is ``openssl speed`` encrypting that size.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    groups = df.groupby(["media", "frame_type"], sort=False)
    base = groups.agg(size=("mean_size", "first"), gcm_encrypt=("gcm_encrypt_us", "median"),
                      gcm_decrypt=("gcm_decrypt_us", "median"), openssl=("openssl_us", "first")).sort_values("size")
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
    if base["openssl"].notna().any():
        axes[0].plot(base["size"], base["openssl"], color="grey", linestyle="--", label="openssl speed (ceiling)")
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


# --- the call (notebook 02) -----------------------------------------------------------------------

if TYPE_CHECKING:
    from collections.abc import Mapping

    from e2ee_lab.call import CallResult


def _picture_panel(ax, picture, title: str, note: str = "") -> None:
    """One picture, or a grey "not decodable" panel when there is none."""
    ax.set_xticks([])
    ax.set_yticks([])
    if picture is None:
        ax.set_facecolor("#eeeeee")
        ax.text(0.5, 0.5, note or "not decodable", ha="center", va="center", fontsize=9,
                color="#c62828", transform=ax.transAxes)
    else:
        ax.imshow(picture)
    ax.set_title(title, fontsize=8)


def call_pictures(results: Mapping[str, CallResult], publisher: str | None = None) -> Figure:
    """One row per call mode: the picture ``publisher`` sent, what each other participant decoded,
    and what the SFU decoded from the packets it forwarded (:mod:`e2ee_lab.analysis.sfu_view`).

    The SFU's panel is grey when its decoder produced no picture at all, and marked "garbage" when
    libvpx made a picture that does not match the sent one (clear-prefix ciphertext can do that).
    """
    modes = list(results)
    publisher = publisher or results[modes[0]].names[0]
    receivers = [n for n in results[modes[0]].names if n != publisher]
    cols = len(receivers) + 2
    fig, axes = plt.subplots(len(modes), cols, figsize=(2.7 * cols, 2.4 * len(modes)), squeeze=False)
    for row, mode in zip(axes, modes):
        result = results[mode]
        got = {n: result.pictures.get(n, {}).get(publisher) for n in receivers}
        sfu = result.sfu.pictures.get(publisher)
        index = sfu[0] if sfu else max((g[0] for g in got.values() if g), default=0)
        _picture_panel(row[0], result.scenes[publisher].rgb(index), f"{mode}: {publisher} sends #{index}")
        for ax, name in zip(row[1:], receivers):
            pic = got[name]
            _picture_panel(ax, pic[1] if pic else None, f"{name} decodes" + (f" #{pic[0]}" if pic else ""))
        counts = result.summary["sfu"]
        note = f"not decodable\n({counts['video_frames_decodable']} of {counts['video_frames_seen']} frames)"
        if sfu is None:
            _picture_panel(row[-1], None, "the SFU decodes", note)
        else:
            _picture_panel(row[-1], sfu[1], f"the SFU decodes #{sfu[0]}" + ("" if sfu[2] else ": garbage"))
    fig.tight_layout()
    plt.close(fig)
    return fig


def sfu_picture(result: CallResult, publisher: str | None = None) -> Figure:
    """The last picture of ``publisher`` the SFU decoded, large enough to read (or an empty panel)."""
    publisher = publisher or result.names[0]
    sfu = result.sfu.pictures.get(publisher)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    title = f"{result.config.mode}: what the SFU decoded of {publisher}'s camera"
    _picture_panel(ax, sfu[1] if sfu else None, title + (f" (frame #{sfu[0]})" if sfu else ""))
    fig.tight_layout()
    plt.close(fig)
    return fig


def sfu_speech(results: Mapping[str, CallResult], publisher: str | None = None) -> Figure:
    """One row per call mode: ``publisher``'s speech as sent and as the SFU decoded it (waveform),
    and the spectrogram of what the SFU decoded; titles give the correlation with the sent speech."""
    import numpy as np

    modes = list(results)
    publisher = publisher or results[modes[0]].names[0]
    fig, axes = plt.subplots(len(modes), 2, figsize=(11, 2.4 * len(modes)), squeeze=False)
    for (wave, spec), mode in zip(axes, modes):
        result = results[mode]
        sent = result.speech.get(publisher, np.zeros(0)).astype(float) / 32768
        got = result.sfu.audio.get(publisher, np.zeros(len(sent))).astype(float) / 32768
        rate = 48_000
        wave.plot(np.arange(len(sent)) / rate, sent, color="#9e9e9e", linewidth=0.6, label="sent")
        wave.plot(np.arange(len(got)) / rate, got, color="#1565c0", linewidth=0.6, alpha=0.8,
                  label="decoded by the SFU")
        corr = result.sfu.speech_correlation.get(publisher, 0.0)
        wave.set_title(f"{mode}: {publisher}'s speech at the SFU (correlation {corr:.2f})", fontsize=9)
        wave.set_ylim(-1, 1)
        wave.set_xlabel("s")
        wave.legend(fontsize=7, loc="upper right")
        if len(got) > 1024:
            with np.errstate(divide="ignore"):  # digital silence has no power to take a log of
                spec.specgram(got, NFFT=1024, Fs=rate, noverlap=512, cmap="magma")
        spec.set_ylim(0, 8000)
        spec.set_title(f"{mode}: spectrogram of what the SFU decoded", fontsize=9)
        spec.set_xlabel("s")
        spec.set_ylabel("Hz")
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- SFrame overhead (notebook 01) ----------------------------------------------------------------


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
