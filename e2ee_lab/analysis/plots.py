"""Figures of the lab: one function per figure, each returning a matplotlib Figure.

Notebooks display the returned figure and ``make run`` saves it under ``reports/``. A figure function
only draws: it takes results (DataFrames or result records) and never runs a call itself.

Figures:
    overhead_figure: SFrame header + tag in % of the payload per cipher suite, for audio and video
    frames (notebook 03; RFC 9605 Appendix B, data from :func:`e2ee_lab.labs.sframe.overhead_table`).
    call_pictures: per call mode, the picture a publisher sent, what each participant decoded and
    what the SFU decoded (notebook 01; data from a :class:`e2ee_lab.call.CallResult` per mode).
    sfu_picture: the last picture of a publisher the SFU decoded, large enough to read (notebook 01).
    sfu_speech: a publisher's speech as sent and as the SFU decoded it, waveform and spectrogram
    (notebook 01).
    key_timeline: who can decrypt which frames across joins, leaves and rekeys (notebook 04;
    sender keys and epochs of RFC 9605 §5.1, data from :func:`e2ee_lab.labs.keys.simulate_timeline`).
    transform_overhead: bytes each frame transform adds per frame, and as % of each medium's bit
    rate (benchmarks, :func:`e2ee_lab.bench.bench_transforms`).
    transform_cpu: µs per frame of each transform against frame size, with the bare AES-GCM call
    and the ``openssl speed`` ceiling (benchmarks, :func:`e2ee_lab.bench.bench_transforms`).
    pipeline_stages: stacked µs per frame per pipeline stage for each medium and mode (benchmarks,
    :func:`e2ee_lab.bench.bench_pipeline`).
    sfu_capacity: forwarded SRTP packets per second per core and µs per forwarded packet by room
    size, dtls-srtp vs e2ee vs the bare forwarder (notebook 08; :func:`e2ee_lab.bench.bench_sfu`).
    three_views: per call mode, a publisher's video frame as the wire (no keys), the SFU (leg keys)
    and a receiver (frame keys) read it from the captured packets, ciphertext drawn as noise
    (notebook 02, the README's headline; data from :func:`e2ee_lab.analysis.views.analyze_views`).
    payload_bytes: per mode, the byte-value histogram of the video payloads and the entropy of each
    RTP payload over time: compressed media is high-entropy too (notebook 02).
    frame_metadata: what the wire shows without keys in both modes: video frame sizes and times,
    and the RFC 6464 audio level (notebook 02).
    decodable_share: share of decodable video and speech frames per view and mode (notebook 02).
    nonce_reuse_pictures: Bob's camera, C_A ⊕ C_B as the SFU computes it, and Bob's picture read
    from it with a known frame (notebook 07; :func:`e2ee_lab.labs.pitfalls.video_nonce_reuse`).
    short_tag_attempts: attempts per brute-force forgery against 1- and 2-byte tags vs 2^(8·Nt),
    and the time to one forgery extrapolated per tag length (notebook 07, RFC 9605 §7.5).
    attack_matrix: attack × mode heat map of what receivers did with a malicious SFU's attacked
    frames: displayed, rejected (and by which check), not preventable, or read by the SFU (notebook
    05; data from :func:`e2ee_lab.labs.malicious.attack_matrix`).
    speaking_timelines: per participant, true speaking vs inferred from the RFC 6464 audio level vs
    inferred from packet sizes, and the SFrame body sizes with the threshold (notebook 06; data
    from :func:`e2ee_lab.analysis.leakage.speaking_timeline`).
    video_frame_sizes: encrypted video frame sizes over time with the key frames and the SFU's
    size-based guesses (notebook 06; :func:`e2ee_lab.analysis.leakage.video_frames`).
    capture_analysis: one capture as the SFU (key log) or the wire reads it: last decoded picture
    per publisher, frame sizes, payload entropy (``e2ee-lab analyze``; :mod:`e2ee_lab.analysis.offline`).
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


# --- the call (notebook 01) -----------------------------------------------------------------------

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


# --- what the SFU sees: three views of a captured call (notebook 02) ------------------------------

if TYPE_CHECKING:
    from e2ee_lab.analysis.views import ThreeViews, ViewPanel

_MODE_COLOURS = {"dtls-srtp": "#e07b00", "e2ee": "#1565c0", "clear-prefix": "#6a1b9a"}
_VIEW_LABELS = {"wire": "the wire\n(no keys)", "sfu": "the SFU\n(its leg keys)",
                "receiver": "a receiver\n(frame keys)"}


def _view_panel(ax, panel: ViewPanel, title: str) -> None:
    """A decoded picture, or the frame's bytes as a grey noise image marked "not decodable"."""
    ax.set_xticks([])
    ax.set_yticks([])
    if panel.picture is not None:
        ax.imshow(panel.picture)
        note = f"decodable: {panel.decodable} of {panel.frames} frames"
        colour = "#2e7d32"
    else:
        ax.imshow(panel.noise(), cmap="gray", vmin=0, vmax=255, interpolation="nearest",
                  aspect="auto")
        note = f"{len(panel.data)} bytes of {panel.what}\nnot decodable ({panel.decodable} of {panel.frames} frames)"
        colour = "#c62828"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(note, fontsize=8, color=colour)


def three_views(views: Mapping[str, ThreeViews], publisher: str | None = None) -> Figure:
    """One row per call mode, one column per view: ``publisher``'s latest video frame as the wire
    (no keys), the SFU (its leg keys) and a receiver (the members' frame keys) hold it, all decoded
    from the captured packets (:func:`e2ee_lab.analysis.views.analyze_views`). A view that cannot
    decode the frame shows its bytes as a grey image: ciphertext looks like noise.
    """
    modes = list(views)
    fig, axes = plt.subplots(len(modes), 3, figsize=(9.6, 2.9 * len(modes) + 0.5), squeeze=False)
    for row, mode in zip(axes, modes):
        for ax, view in zip(row, ("wire", "sfu", "receiver")):
            panel = views[mode].panel(view, publisher)
            keys = "(leg key)" if view == "receiver" and mode == "dtls-srtp" else ""
            label = _VIEW_LABELS[view].split("\n")[0] + " " + (keys or _VIEW_LABELS[view].split("\n")[1])
            _view_panel(ax, panel, f"{mode}: {label}")
    who = publisher or views[modes[0]].call.names[0]
    fig.suptitle(f"What each party reads of {who}'s camera, from the same captured packets", fontsize=11)
    fig.tight_layout()
    plt.close(fig)
    return fig


def payload_bytes(views: Mapping[str, ThreeViews]) -> Figure:
    """Per mode: the byte-value histogram of the video payloads (SFU and wire views) and the
    entropy of every RTP payload over time (SFU view). Compressed VP8 and Opus are nearly as
    flat and high-entropy as ciphertext: entropy cannot tell them apart, only a decoder can."""
    import numpy as np

    modes = list(views)
    fig, axes = plt.subplots(len(modes), 2, figsize=(11, 2.7 * len(modes)), squeeze=False,
                             sharey="col")
    for (hist, scatter), mode in zip(axes, modes):
        v = views[mode]
        for view, style in (("sfu", "-"), ("wire", ":")):
            counts = v.byte_counts(view, "video")
            share = counts / max(1, counts.sum()) * 256  # 1.0 = every value equally often
            hist.step(np.arange(256), share, where="mid", linestyle=style, linewidth=0.9,
                      color=_MODE_COLOURS.get(mode, "black"), label=_VIEW_LABELS[view].replace("\n", " "))
        hist.axhline(1.0, color="grey", linewidth=0.6)
        entropy = v.stream_entropy("sfu")
        video = entropy[entropy.kind == "video"].entropy.min()
        hist.set_title(f"{mode}: video payload byte values (SFU view: {video:.3f} bits/byte)", fontsize=9)
        hist.set_xlabel("byte value")
        hist.set_ylabel("frequency / uniform")
        hist.set_xlim(0, 255)
        hist.legend(fontsize=7, loc="upper right")
        packets = v.packet_entropy("sfu")
        for kind, colour in (("video", "#1565c0"), ("audio", "#2e7d32")):
            part = packets[packets.kind == kind]
            scatter.scatter(part.time, part.payload_entropy, s=4, color=colour, label=kind)
        scatter.set_ylim(0, 8.1)
        scatter.set_xlabel("s since the first datagram")
        scatter.set_ylabel("bits/byte")
        scatter.set_title(f"{mode}: entropy of each RTP payload the SFU holds", fontsize=9)
        scatter.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig


def frame_metadata(views: Mapping[str, ThreeViews], publisher: str | None = None) -> Figure:
    """What the wire shows without any key, in both modes: the size and time of each of
    ``publisher``'s video frames, and the RFC 6464 audio level of each of its audio packets."""
    fig, (sizes, levels) = plt.subplots(1, 2, figsize=(11, 3.2))
    for mode, v in views.items():
        who = publisher or v.call.names[0]
        colour = _MODE_COLOURS.get(mode, "black")
        frames = v.frames("wire")
        video = frames[(frames.ssrc == v.call.truth.ssrc_of(who, "video")) & (frames.kind == "video")]
        start = video.time.min()
        sizes.plot(video.time - start, video["size"], marker="o", markersize=3, linewidth=0.8,
                   color=colour, label=mode)
        p = v.packet_entropy("wire")
        audio = p[p.ssrc == v.call.truth.ssrc_of(who, "audio")]
        levels.plot(audio.time - start, -audio.audio_level.astype(float), linewidth=0.8,
                    color=colour, label=mode)
    sizes.set_title(f"{who}'s video frames on the wire: size and time", fontsize=9)
    sizes.set_ylabel("bytes (SRTP payload)")
    levels.set_title(f"{who}'s audio level, clear in an RTP header extension (RFC 6464)", fontsize=9)
    levels.set_ylabel("level (dBov)")
    for ax in (sizes, levels):
        ax.set_xlabel("s since the first video frame")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def decodable_share(views: Mapping[str, ThreeViews]) -> Figure:
    """Grouped bars: the share of decodable frames per view and mode, video and audio (speech
    frames only: recovered silence proves nothing), labelled with the counts."""
    import numpy as np
    import pandas as pd

    table = pd.concat([v.counts() for v in views.values()], ignore_index=True)
    order = ["wire", "sfu", "receiver"]
    modes = list(views)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    width = 0.8 / max(1, len(modes))
    for ax, kind in zip(axes, ("video", "audio")):
        for i, mode in enumerate(modes):
            part = table[(table["mode"] == mode) & (table["kind"] == kind)].set_index("view").loc[order]
            x = np.arange(len(order)) + (i - (len(modes) - 1) / 2) * width
            bars = ax.bar(x, part["share"] * 100, width, color=_MODE_COLOURS.get(mode, "grey"), label=mode)
            ax.bar_label(bars, [f"{d}/{j}" for d, j in zip(part["decodable"], part["judged"])], fontsize=7)
        ax.set_xticks(np.arange(len(order)), [_VIEW_LABELS[v] for v in order], fontsize=8)
        ax.set_title(f"{kind} frames decodable" + (" (speech frames)" if kind == "audio" else ""), fontsize=9)
        ax.set_ylim(0, 115)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("% of frames")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- crypto pitfalls: nonce reuse and short tags (notebook 07) --------------------------------------

if TYPE_CHECKING:
    from e2ee_lab.attacks.crypto import BruteForceRun
    from e2ee_lab.labs.pitfalls import VideoReuse


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
                   "rejected": "rejected by a receiver check", "not prevented": "not preventable by crypto",
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


def attack_matrix(table: pd.DataFrame) -> Figure:
    """Attack × mode: what the receivers did with the attacked frames (colour) and which check caught
    them or how many were shown (text), from :func:`e2ee_lab.labs.malicious.attack_matrix`'s table."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    attacks = list(dict.fromkeys(table["attack"]))
    modes = list(dict.fromkeys(table["mode"]))
    cells = {(r.attack, r.mode): r for r in table.itertuples(index=False)}
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


# --- e2ee-lab analyze: one capture read with (or without) the SFU's key log ------------------------

if TYPE_CHECKING:
    from e2ee_lab.analysis.offline import OfflineAnalysis


def capture_analysis(analysis: OfflineAnalysis) -> Figure:
    """What one reader (the SFU with its key log, or the wire without) makes of a capture: the
    last picture it decoded of each publisher's video, the sizes of the frames each leg sent over
    time (the metadata every reader sees), and the entropy of every RTP payload it read.

    Draws the result of :func:`e2ee_lab.analysis.offline.analyze` run with ``keep_media="last"``
    or ``"all"``; ``e2ee-lab analyze`` saves it as ``sfu-view.png``.
    """
    frames, packets = analysis.frames, analysis.packets
    video = frames[(frames.kind == "video") & (frames.direction == "to_sfu")] if len(frames) else frames
    legs = sorted(set(video.leg.dropna())) if len(video) else []
    fig = plt.figure(figsize=(3.0 * max(len(legs), 2), 6.2))
    grid = fig.add_gridspec(2, max(len(legs), 2), height_ratios=(1.1, 1.0))
    reader = "the SFU (its key log)" if analysis.keyed else "the wire (no keys)"
    for col, leg in enumerate(legs):
        rows = video[video.leg == leg]
        shown = [i for i in rows.index if i in analysis.media]
        decodable = int(rows.decodable.sum())
        ax = fig.add_subplot(grid[0, col])
        note = f"not decodable\n({decodable} of {len(rows)} frames)"
        _picture_panel(ax, analysis.media[shown[-1]] if shown else None,
                       f"{leg}'s video: {decodable}/{len(rows)} decodable", note)
    sizes = fig.add_subplot(grid[1, : max(len(legs), 2) // 2 or 1])
    for leg in legs:
        rows = video[video.leg == leg]
        sizes.plot(rows.time, rows["size"], ".", ms=3, label=leg)
    sizes.set(xlabel="time (s)", ylabel="video frame size (bytes)", title="frame sizes: clear to every reader")
    if legs:
        sizes.legend(fontsize=7, frameon=False)
    ent = fig.add_subplot(grid[1, max(len(legs), 2) // 2 or 1:])
    rtp = packets[(packets.kind == "rtp") & packets.payload_entropy.notna()] if len(packets) else packets
    if len(rtp):
        ent.plot(rtp.time, rtp.payload_entropy.astype(float), ".", ms=2, color="#555555")
    ent.set(xlabel="time (s)", ylabel="bits per byte", ylim=(0, 8.2), title="RTP payload entropy")
    fig.suptitle(f"One capture as {reader} reads it", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig
