"""Record the browser calls lab 10 shows where Chromium is not installed (``data/browser/lab10.json``).

Usage (needs the ``chromium`` package; as root the calls run in a network namespace with only
``lo`` and the wire view is captured; about a minute): ``.venv/bin/python data/make_browser.py``

Runs the notebook's own helpers (:mod:`e2ee_lab.labs.browser`): the e2ee and dtls-srtp calls of
Alice and the page (the ``e2ee-lab call`` table and the three views of the page's video), the
late-attached receive transform (pitfall 1) and the four loss runs (pitfall 2:
:data:`~e2ee_lab.labs.browser.LOSS`), and keeps the tables the notebook shows. Nothing is typed by
hand; the script refuses to write runs that missed the lab's point (the SFU decoded the page's
e2ee video, or failed to decode its dtls-srtp video; a late transform saw frames; a run lost no frame).
"""

from __future__ import annotations

import json
import platform
import sys

from e2ee_lab.browser import chromium_version, find_chromium, netns_problem
from e2ee_lab.call.common import format_summary
from e2ee_lab.labs import browser as lab


def _check(views, late, loss) -> None:
    sfu = views.loc["SFU (leg keys)"]
    decoded = {mode: [int(x) for x in str(sfu[mode]).split("/")] for mode in ("e2ee", "dtls-srtp")}
    if decoded["e2ee"][0] != 0 or decoded["dtls-srtp"][0] < 0.95 * decoded["dtls-srtp"][1]:
        raise SystemExit(f"make_browser: the SFU's view is not the lab's point: {decoded}")
    if late.loc[lab.ATTACH_POINTS[1], "frames through the worker"] != 0:
        raise SystemExit(f"make_browser: the late receive transform saw frames:\n{late}")
    if loss.table["frames sent"].min() < 30 or set(loss.table.index) != set(lab.LOSS):
        raise SystemExit(f"make_browser: a loss run is missing or short:\n{loss.table}")


def main() -> None:
    if find_chromium() is None:
        raise SystemExit("make_browser: Chromium is not installed (apt-get install chromium)")
    calls = lab.browser_calls()
    if calls is None:
        raise SystemExit("make_browser: the browser calls did not run")
    views, late, loss = lab.views_table(calls), lab.late_transform(calls), lab.loss_comparison(live=True)
    if not loss.timeline:
        raise SystemExit("make_browser: the loss runs did not run")
    _check(views, late, loss)
    record = {
        "_meta": {"made_by": "data/make_browser.py", "chromium": chromium_version(), "machine": platform.machine(),
                  "isolation": "network namespace with only lo" if netns_problem() is None else netns_problem(),
                  "size": lab.SIZE, "seed": lab.SEED},
        "table": format_summary(calls["e2ee"].summary),
        "views": views.to_dict(),
        "late": json.loads(late.reset_index().to_json(orient="records")),
        "loss": json.loads(loss.table.reset_index().to_json(orient="records")),
    }
    lab.RECORDING.parent.mkdir(parents=True, exist_ok=True)
    lab.RECORDING.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {lab.RECORDING}")
    print(loss.table.to_string())


if __name__ == "__main__":
    main()
    sys.exit(0)
