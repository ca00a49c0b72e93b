"""The call's figures: what each receiver and the SFU decode, the speech the SFU recovers (lab 01).

Each function draws one figure from results and returns it; :mod:`e2ee_lab.analysis.plots` lists them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

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
