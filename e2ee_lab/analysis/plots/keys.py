"""Who can decrypt which frames across joins, leaves and rekeys (lab 04).

Each function draws one figure from results and returns it; :mod:`e2ee_lab.analysis.plots` lists them all.
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

if TYPE_CHECKING:
    from e2ee_lab.crypto.keys.timeline import Timeline

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
