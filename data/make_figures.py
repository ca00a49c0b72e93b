"""Regenerate the small PNG figures the README shows (``data/figures/``).

Usage: ``.venv/bin/python data/make_figures.py [NAME ...]`` (about 15 s for all; NAME is a figure's
file name without ``.png``, e.g. ``three_views``, to redraw only that one). Each figure comes from a
real run at ci size with seed 0 (the three views, pictures and speech, from the recorded captures in
``data/captures/``): nothing here is drawn by hand. ``make run`` writes the full-size versions of
the same figures into ``reports/`` through the notebooks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from e2ee_lab.analysis import plots  # noqa: E402
from e2ee_lab.analysis.command import save_headline_figure  # noqa: E402
from e2ee_lab.call import run_call  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"


def the_call(path: Path) -> None:
    """Both modes of one 3-party call: what the receivers and the SFU decode of one publisher."""
    results = {mode: run_call(mode, participants=3, seconds=2, seed=0, size="ci")
               for mode in ("dtls-srtp", "e2ee")}
    plots.call_pictures(results).savefig(path, dpi=72)


FIGURES = {
    "the_call": the_call,
    "three_views": save_headline_figure,  # from the recordings in data/captures/
}


def main(names: list[str]) -> int:
    """Draw the figures named (all by default) into ``data/figures/``; 2 for an unknown name."""
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        print(f"make_figures: no figure {', '.join(unknown)} (known: {', '.join(FIGURES)})", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    for name in names or FIGURES:
        png = OUT / f"{name}.png"
        FIGURES[name](png)
        print(f"{png.relative_to(OUT.parent.parent)}  {png.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
