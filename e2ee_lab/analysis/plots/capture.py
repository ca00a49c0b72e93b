"""What a capture shows each reader: the three views, payload bytes, metadata, decodable shares (lab 02), and ``e2ee-lab analyze``'s figure.

Each function draws one figure from results and returns it; :mod:`e2ee_lab.analysis.plots` lists them all.
The three views show speech too: the Opus frames each view holds (RFC 7587), as
:mod:`e2ee_lab.analysis.view_speech` decodes them (the SFU's decode from the offline analysis, a
receiver's after opening them with the members' SFrame keys, RFC 9605 §4.4.3); Opus turns
ciphertext into noise. Nothing here decodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .call import _picture_panel

# --- what the SFU sees: three views of a captured call (notebook 02) ------------------------------

if TYPE_CHECKING:
    from collections.abc import Mapping

    from e2ee_lab.analysis.views import ThreeViews, ViewPanel

_MODE_COLOURS = {"dtls-srtp": "#e07b00", "e2ee": "#1565c0", "clear-prefix": "#6a1b9a"}
_VIEW_LABELS = {"wire": "the wire\n(no keys)", "sfu": "the SFU\n(its leg keys)",
                "receiver": "a receiver\n(frame keys)"}
SPEECH_HEARD = 0.5  # a strip correlating this well with the sent speech is "speech" (cf. sfu_view)
AUDIO_RATE = 48_000  # Opus at 48 kHz (e2ee_lab.media.speech)


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


def _speech_strip(ax, v: ThreeViews, view: str, publisher: str) -> None:
    """One view's decode of ``publisher``'s speech over the sent speech (grey), with the verdict."""
    from e2ee_lab.analysis.view_speech import speech_correlation, view_speech  # the views' layer

    sent = v.call.truth.speech.get(publisher, np.zeros(0, np.int16))
    got = view_speech(v, view, publisher)
    counts = v.counts().set_index(["view", "kind"]).loc[(view, "audio")]
    tally = f"all streams: {counts.decodable} of {counts.judged} speech frames intelligible"
    ax.plot(np.arange(len(sent)) / AUDIO_RATE, sent / 32768, color="#bdbdbd", linewidth=0.5,
            label="sent")
    if got is None:
        what, colour = "nothing (SRTP ciphertext, no keys)", "#c62828"
    else:
        corr = speech_correlation(sent, got)
        heard = corr >= SPEECH_HEARD
        colour = "#2e7d32" if heard else "#c62828"
        ax.plot(np.arange(len(got)) / AUDIO_RATE, got / 32768, color=colour, linewidth=0.5,
                alpha=0.85, label="decoded")
        what = f"{'the speech' if heard else 'noise, decoded from ciphertext'} (correlation {corr:.2f})"
    ax.set_ylim(-1, 1)
    ax.set_xlim(0, max(len(sent), 1) / AUDIO_RATE)
    ax.set_yticks([])
    ax.tick_params(labelsize=7)
    ax.set_title(f"hears {publisher}: {what}", fontsize=8, color=colour)
    ax.set_xlabel(f"s · {tally}", fontsize=7)
    if view == "wire":
        ax.legend(fontsize=6, loc="upper left", frameon=False)
    ax.set_gid(f"speech:{v.mode}:{view}")


def three_views(views: Mapping[str, ThreeViews], publisher: str | None = None) -> Figure:
    """Per call mode, one column per view: ``publisher``'s latest video frame as the wire (no keys),
    the SFU (its leg keys) and a receiver (the members' frame keys) hold it, and below it the
    speech that view decodes of ``publisher``, all from the captured packets
    (:func:`e2ee_lab.analysis.views.analyze_views`, :func:`e2ee_lab.analysis.view_speech.view_speech`). A view that cannot
    decode the frame shows its bytes as a grey image: ciphertext looks like noise. Each speech
    strip draws the view's decode over the sent speech (grey): green when it correlates with it
    (:data:`SPEECH_HEARD`), red for noise or nothing, with the analysis' count of intelligible
    speech frames. Speech axes carry the gid ``"speech:<mode>:<view>"``.
    """
    modes = list(views)
    who = publisher or views[modes[0]].call.names[0]
    fig = plt.figure(figsize=(9.6, 4.2 * len(modes) + 0.5))
    grid = fig.add_gridspec(2 * len(modes), 3, height_ratios=[2.9, 1.0] * len(modes))
    for m, mode in enumerate(modes):
        for col, view in enumerate(("wire", "sfu", "receiver")):
            panel = views[mode].panel(view, publisher)
            keys = "(leg key)" if view == "receiver" and mode == "dtls-srtp" else ""
            label = _VIEW_LABELS[view].split("\n")[0] + " " + (keys or _VIEW_LABELS[view].split("\n")[1])
            _view_panel(fig.add_subplot(grid[2 * m, col]), panel, f"{mode}: {label}")
            _speech_strip(fig.add_subplot(grid[2 * m + 1, col]), views[mode], view, who)
    fig.suptitle(f"What each party reads of {who}'s camera and hears of {who}'s microphone, "
                 "from the same captured packets", fontsize=10)
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
