"""Regenerate the small PNG figures the README shows (``data/figures/``).

Usage: ``.venv/bin/python data/make_figures.py`` (about 15 s). Each figure comes from a real run at
ci size with seed 0 (the three views from the recorded captures in ``data/captures/``): nothing here is drawn by hand. ``make run`` writes the full-size versions of the
same figures into ``reports/`` through the notebooks.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from e2ee_lab.analysis import plots  # noqa: E402
from e2ee_lab.analysis.views import save_headline_figure  # noqa: E402
from e2ee_lab.call import run_call  # noqa: E402

OUT = Path(__file__).resolve().parent / "figures"


def the_call(path: Path) -> None:
    """Both modes of one 3-party call: what the receivers and the SFU decode of one publisher."""
    results = {mode: run_call(mode, participants=3, seconds=2, seed=0, size="ci")
               for mode in ("dtls-srtp", "e2ee")}
    plots.call_pictures(results).savefig(path, dpi=72)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    the_call(OUT / "the_call.png")
    save_headline_figure(OUT / "three_views.png")  # from the recordings in data/captures/
    for png in sorted(OUT.glob("*.png")):
        print(f"{png.relative_to(OUT.parent.parent)}  {png.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
