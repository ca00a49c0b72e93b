"""The lab's threat model as data and as one figure: who holds which key at each hop of a call.

A WebRTC conference through an SFU has two kinds of keys. **Leg keys** protect one hop with SRTP
(RFC 3711): each participant runs a DTLS handshake with the SFU and both ends export the leg's SRTP
master keys (RFC 5764 §4.2, exporter label "EXTRACTOR-dtls_srtp"), so the SFU, the DTLS peer of
every leg, holds every leg key and reads every frame after SRTP unprotect. **Frame keys** protect
one sender's encoded frames end to end with SFrame (RFC 9605 §4.4; sender keys, §5.1): they come
from the members' group key agreement, drawn at random, and cross the SFU only sealed to each
member, so the SFU never holds them (a call made with reproducible keys derives them from its seed
instead, and whoever knows the seed, the SFU included, recomputes them). :func:`key_holders` names
the holders with the same labels as :attr:`e2ee_lab.call.CallResult.key_holders` (which a call
finds by searching each party's bytes), and :func:`threat_model_figure` draws sender → SFU →
receiver for ``dtls-srtp`` and ``e2ee``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

MODES: tuple[str, ...] = ("dtls-srtp", "e2ee")
SFU = "sfu"
DEFAULT_NAMES: tuple[str, ...] = ("alice", "bob", "carol")

# colours of the three keys the figure draws, and of the SFU box per mode
LEG_COLORS = ("#1565c0", "#e07b00")  # K1 (sender's leg), K2 (receiver's leg)
FRAME_COLOR = "#2e7d32"
SFU_FILL = {"dtls-srtp": "#fde0dc", "e2ee": "#eef3ee"}
READ_COLOR = {True: "#c62828", False: "#2e7d32"}


@dataclass(frozen=True)
class Key:
    """One key of the threat model."""

    symbol: str  # how the figure names it (K₁, K₂, S)
    label: str  # the CallResult.key_holders label ("SRTP key of alice's leg", "alice's frame key")
    origin: str  # where it comes from
    protects: str  # what it protects, on which hop
    color: str


def srtp_label(name: str) -> str:
    """The key-holders label of the SRTP key of ``name``'s leg."""
    return f"SRTP key of {name}'s leg"


def frame_label(name: str) -> str:
    """The key-holders label of ``name``'s SFrame sender key."""
    return f"{name}'s frame key"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def key_holders(mode: str, names: Sequence[str] = DEFAULT_NAMES) -> dict[str, set[str]]:
    """Who holds which key in a call of ``names`` through one SFU, by the model.

    Every leg key is held by its participant and the SFU (the two ends of its DTLS handshake);
    in ``e2ee`` each sender's frame key is held by every member and not by the SFU. The labels
    are those of :attr:`e2ee_lab.call.CallResult.key_holders`, so a run can be compared with it.

    Raises:
        ValueError: an unknown mode.
    """
    _check_mode(mode)
    holders = {srtp_label(n): {n, SFU} for n in names}
    if mode == "e2ee":
        holders.update({frame_label(n): set(names) for n in names})
    return holders


def media_readers(mode: str, names: Sequence[str] = DEFAULT_NAMES) -> set[str]:
    """The parties that can read a participant's pictures and speech: the members, plus the SFU
    in ``dtls-srtp`` (it unprotects SRTP and holds the plain frames). Raises ValueError."""
    _check_mode(mode)
    return set(names) | ({SFU} if mode == "dtls-srtp" else set())


def sfu_reads(mode: str) -> tuple[str, ...]:
    """What the SFU reads of each packet after SRTP unprotect, in ``mode``. Raises ValueError."""
    _check_mode(mode)
    common = ("RTP headers (SSRC, seq, timestamp)", "audio level (RFC 6464)", "sizes and timing")
    if mode == "dtls-srtp":
        return common + ("every frame: each picture, each word",)
    return common + ("SFrame header (KID, CTR)", "frame body: ciphertext only")


def figure_keys(sender: str = "alice", receiver: str = "bob") -> tuple[Key, Key, Key]:
    """The three keys the figure draws: the two leg keys of a sender → SFU → receiver path and
    the sender's frame key."""
    return (
        Key("K₁", srtp_label(sender), f"DTLS handshake {sender}↔SFU (RFC 5764)",
            f"hop {sender} → SFU (SRTP)", LEG_COLORS[0]),
        Key("K₂", srtp_label(receiver), f"DTLS handshake SFU↔{receiver} (RFC 5764)",
            f"hop SFU → {receiver} (SRTP)", LEG_COLORS[1]),
        Key("S", frame_label(sender), "group key agreement, relayed sealed to each member",
            f"{sender}'s frames end to end (SFrame, RFC 9605)", FRAME_COLOR),
    )


def threat_table(names: Sequence[str] = DEFAULT_NAMES) -> pd.DataFrame:
    """One row per (mode, key) of the first two participants' path: symbol, key, origin, what it
    protects, who holds it, and whether the SFU holds it."""
    sender, receiver = names[0], names[1]
    rows = []
    for mode in MODES:
        holders = key_holders(mode, names)
        for key in figure_keys(sender, receiver):
            if key.label in holders:
                rows.append({"mode": mode, "symbol": key.symbol, "key": key.label, "origin": key.origin,
                             "protects": key.protects, "held by": ", ".join(sorted(holders[key.label])),
                             "SFU holds it": SFU in holders[key.label]})
    return pd.DataFrame(rows)


# --- the figure -----------------------------------------------------------------------------------

_BOX_Y, _BOX_H = 0.35, 3.0
_BOXES = {"sender": (0.2, 2.6), "sfu": (4.55, 2.9), "receiver": (9.2, 2.6)}  # x, width


def _key_icon(ax, x: float, y: float, color: str, size: float = 0.16) -> None:
    """A small key: a ring (the bow), a shaft and two teeth, its bow centred at (x, y)."""
    ax.add_patch(Circle((x, y), size, facecolor="white", edgecolor=color, linewidth=2.2, zorder=5))
    ax.add_patch(Rectangle((x + size, y - size * 0.22), size * 2.6, size * 0.44, color=color, zorder=5))
    for dx in (1.9, 2.9):
        ax.add_patch(Rectangle((x + size * dx, y - size * 0.95), size * 0.38, size * 0.75, color=color, zorder=5))


def _key_row(ax, x: float, y: float, keys: Sequence[Key]) -> None:
    """Key icons with their symbols, left to right from (x, y)."""
    for i, key in enumerate(keys):
        kx = x + i * 0.95
        _key_icon(ax, kx, y, key.color)
        ax.text(kx + 0.3, y + 0.3, key.symbol, color=key.color, fontsize=11, fontweight="bold",
                ha="center", va="center", zorder=6)


def _party(ax, role: str, title: str, keys: Sequence[Key], lines: Sequence[str], *, fill: str,
           line_color: str = "#333333", edge: str = "#555555") -> None:
    """A party's box: its name and role, the keys it holds, and what it reads."""
    x, w = _BOXES[role]
    ax.add_patch(FancyBboxPatch((x, _BOX_Y), w, _BOX_H, boxstyle="round,pad=0.05,rounding_size=0.15",
                                facecolor=fill, edgecolor=edge, linewidth=1.4, zorder=1))
    top = _BOX_Y + _BOX_H
    ax.text(x + w / 2, top - 0.3, title, ha="center", va="center", fontsize=11, fontweight="bold")
    ax.text(x + 0.15, top - 0.75, "holds:", fontsize=8.5, va="center", color="#555555")
    _key_row(ax, x + 0.95, top - 0.85, keys)
    ax.text(x + 0.15, top - 1.35, "\n".join(lines), fontsize=9, va="top", color=line_color,
            linespacing=1.35)


def _packet(ax, x0: float, x1: float, y: float, leg: Key, frame_key: Key | None) -> None:
    """The packet on one hop: SRTP under the leg key around an RTP header and the frame, the frame
    itself sealed with the frame key in e2ee."""
    w = x1 - x0
    ax.add_patch(Rectangle((x0, y), w, 0.8, facecolor="none", edgecolor=leg.color, linewidth=2.4, zorder=3))
    ax.text(x0 + 0.05, y + 0.93, f"SRTP, key {leg.symbol}", color=leg.color, fontsize=8.5, fontweight="bold")
    ax.add_patch(Rectangle((x0 + 0.1, y + 0.12), w * 0.28, 0.56, facecolor="white", edgecolor="#777777", zorder=4))
    ax.text(x0 + 0.1 + w * 0.14, y + 0.4, "RTP\nhdr", ha="center", va="center", fontsize=7.5, zorder=6)
    px, pw = x0 + 0.16 + w * 0.28, w * 0.72 - 0.26
    if frame_key is None:
        ax.add_patch(Rectangle((px, y + 0.12), pw, 0.56, facecolor="white", edgecolor="#777777", zorder=4))
        ax.text(px + pw / 2, y + 0.4, "VP8 / Opus\nframe", ha="center", va="center", fontsize=7.5, zorder=6)
    else:
        ax.add_patch(Rectangle((px, y + 0.12), pw, 0.56, facecolor="#c8e6c9", edgecolor=frame_key.color,
                               linewidth=1.8, zorder=4))
        ax.text(px + pw / 2, y + 0.4, f"SFrame ({frame_key.symbol})\nciphertext", ha="center", va="center",
                fontsize=7.5, color="#1b5e20", zorder=6)
    ax.add_patch(FancyArrowPatch((x0 - 0.1, y - 0.25), (x1 + 0.1, y - 0.25), arrowstyle="-|>",
                                 mutation_scale=16, color="#444444", linewidth=1.6, zorder=3))


def _row(ax, mode: str, keys: tuple[Key, Key, Key], sender: str, receiver: str) -> None:
    k1, k2, s = keys
    e2ee = mode == "e2ee"
    frame = s if e2ee else None
    own = [k1, s] if e2ee else [k1]
    _party(ax, "sender", f"{sender} (sender)", own,
           ["camera → VP8 encoder", "→ SFrame encrypt (S)" if e2ee else "→ no frame transform",
            "→ RTP packets → SRTP (K₁)"], fill="#f5f5f5")
    sfu_lines = ["unprotect (K₁), re-protect (K₂), forward", "reads:", *(f"• {r}" for r in sfu_reads(mode))]
    title = "SFU: privileged decryption point" if not e2ee else "SFU: forwards, reads metadata"
    _party(ax, "sfu", title, [k1, k2], sfu_lines, fill=SFU_FILL[mode],
           line_color=READ_COLOR[not e2ee], edge=READ_COLOR[not e2ee])
    _party(ax, "receiver", f"{receiver} (receiver)", [k2, s] if e2ee else [k2],
           ["SRTP unprotect (K₂)", "→ SFrame decrypt (S)" if e2ee else "→ (nothing to decrypt)",
            "→ VP8 decoder → picture"], fill="#f5f5f5")
    y = _BOX_Y + 1.2
    _packet(ax, 2.95, 4.35, y, k1, frame)
    _packet(ax, 7.6, 9.0, y, k2, frame)
    if e2ee:
        ax.add_patch(FancyArrowPatch((1.5, _BOX_Y + _BOX_H + 0.1), (10.5, _BOX_Y + _BOX_H + 0.1),
                                     connectionstyle="arc3,rad=-0.09", arrowstyle="<|-|>", mutation_scale=14,
                                     linestyle=(0, (4, 3)), color=FRAME_COLOR, linewidth=1.6, zorder=2))
        ax.text(6.0, _BOX_Y + _BOX_H + 0.55, "S: agreed end to end by the members; the SFU relays it sealed "
                "and never holds it", ha="center", fontsize=8.5, color=FRAME_COLOR,
                bbox=dict(facecolor="white", edgecolor="none", pad=1))


def _legend(ax, keys: Sequence[Key]) -> None:
    for i, key in enumerate(keys):
        y = 0.8 - i * 0.34
        _key_icon(ax, 0.35, y, key.color, size=0.11)
        ax.text(0.95, y, f"{key.symbol}: {key.label} — from the {key.origin}; protects {key.protects}",
                fontsize=9, va="center", color=key.color)


def threat_model_figure(sender: str = "alice", receiver: str = "bob") -> Figure:
    """The threat model in one figure: sender → SFU → receiver, once per mode (``dtls-srtp`` above,
    ``e2ee`` below), with the keys each party holds, the packet on each hop (SRTP under the leg
    key; in e2ee the frame inside sealed with the sender's frame key) and what the SFU reads.
    Other receivers are like ``receiver``, each with its own leg key that the SFU also holds."""
    keys = figure_keys(sender, receiver)
    fig = plt.figure(figsize=(12.5, 8.9))
    grid = fig.add_gridspec(3, 1, height_ratios=[4.4, 4.4, 1.0], hspace=0.12)
    captions = {
        "dtls-srtp": "dtls-srtp: SRTP per hop only. The SFU ends every DTLS handshake, holds K₁ and K₂, "
                     "and reads every frame",
        "e2ee": "e2ee: SFrame on each encoded frame before packetization, SRTP per hop as before. "
                "The SFU holds K₁ and K₂ but not S",
    }
    for i, mode in enumerate(MODES):
        ax = fig.add_subplot(grid[i])
        ax.set_xlim(0, 12)
        ax.set_ylim(0, 4.25)
        ax.set_axis_off()
        ax.set_title(captions[mode], fontsize=10.5, loc="left", fontweight="bold")
        _row(ax, mode, keys, sender, receiver)
    legend = fig.add_subplot(grid[2])
    legend.set_xlim(0, 12)
    legend.set_ylim(0, 1)
    legend.set_axis_off()
    _legend(legend, keys)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.96, bottom=0.02)
    plt.close(fig)
    return fig
