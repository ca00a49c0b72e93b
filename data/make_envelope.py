"""Record Lab 08's envelope curve to data/envelope/envelope.json: whole calls of 2-12 at full size.

Run from the repository root: ``.venv/bin/python data/make_envelope.py`` (a few minutes; best on a
quiet machine, 2 cores or more). It is ``e2ee-lab bench call --mode M --participants 2,4,8,12
--seconds 5 --size full --views sample --workers 2`` for M = dtls-srtp and e2ee, through the Python
API (:func:`e2ee_lab.bench.bench_call`), run room by room with the two modes interleaved so that other
load on the machine falls on both alike. Each row keeps the load average before and after its call;
the file also names the machine, the date and the command. Numbers change from run to run with the
load on the machine: the edge of the envelope moves with it.
"""

import datetime as dt
import json
import os

import pandas as pd

from e2ee_lab.bench import bench_call, format_call
from e2ee_lab.labs.overhead import ENVELOPE_OPTIONS, ENVELOPE_PATH

MODES = ("dtls-srtp", "e2ee")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    began, load_before = dt.datetime.now(dt.timezone.utc), _load()
    frames, machine = [], None
    for n in ENVELOPE_OPTIONS["participants"]:
        for mode in MODES:
            before = _load()
            options = {k: v for k, v in ENVELOPE_OPTIONS.items() if k != "participants"}
            df = bench_call([n], mode=mode, **options)
            machine = df.attrs["machine"]
            frames.append(df.assign(load_before=before, load_after=_load()))
    rows = pd.concat(frames, ignore_index=True)
    opts = ENVELOPE_OPTIONS
    sizes = ",".join(str(n) for n in opts["participants"])
    record = {
        "_meta": {
            "made_by": "data/make_envelope.py",
            "command": f"e2ee-lab bench call --mode {{dtls-srtp,e2ee}} --participants {sizes} "
                       f"--seconds {opts['seconds']:g} --size {opts['size']} --views {opts['views']} "
                       f"--workers {opts['workers']}",
            "order": "room by room, dtls-srtp then e2ee in each room",
            "began_utc": began.strftime("%Y-%m-%d %H:%M:%S"),
            "ended_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_1min": {"before": load_before, "after": _load()},
            "machine": machine,
        },
        "rows": json.loads(rows.to_json(orient="records")),
    }
    ENVELOPE_PATH.parent.mkdir(parents=True, exist_ok=True)
    ENVELOPE_PATH.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    rows.attrs["options"] = {"encode": "clip", "views": opts["views"], "workers": opts["workers"], "loop": "asyncio"}
    print(format_call(rows))
    print(f"wrote {ENVELOPE_PATH}")


if __name__ == "__main__":
    main()
