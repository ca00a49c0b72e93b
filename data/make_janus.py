"""Record the Janus calls lab 11 shows where no Janus call can run (``data/janus/``).

Usage (as root, with ``apt-get install janus janus-tools``; about 40 s):
``.venv/bin/python data/make_janus.py``

Runs the notebook's two calls through Janus (3 participants, 2 s, ci size, seed 0) with
:func:`e2ee_lab.janus.run_janus_call` and the capacity comparison of the dtls-srtp call
(:func:`e2ee_lab.janus.capacity.capacity_table`), then keeps what the notebook reads, small:

- ``<mode>/summary.json``: the call's summary (with Janus's admin view per stream, ``janus.streams``);
- ``<mode>/recording.csv``: per recorded stream what Janus wrote and what janus-pp-rec gave back;
- ``dtls-srtp/picture.png`` and ``picture.json``: the last frame of alice that Janus's own recording
  gave back as the sent picture, and its frame index (the e2ee recording gives none);
- ``capacity.csv``: Janus and the lab SFU's CPU per forwarded packet on the same room.

Nothing here is drawn or typed by hand; the script refuses to write a call that missed the
issue's goals (receivers ≥ 95 %, the dtls-srtp recording ≥ 95 % decodable, the e2ee one 0).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from e2ee_lab.janus import janus_problem, run_janus_call
from e2ee_lab.janus.capacity import capacity_table

OUT = Path(__file__).resolve().parent / "janus"
SETTINGS = {"participants": 3, "seconds": 2.0, "seed": 0, "size": "ci"}


def _check(result) -> None:
    s = result.summary
    for row in s["participants"]:
        for kind in ("video", "audio"):
            if row[f"{kind}_frames_decoded"] < 0.95 * row[f"{kind}_frames_expected"]:
                raise SystemExit(f"make_janus: {row['name']} decoded too few {kind} frames: {row}")
    sfu = s["sfu"]
    decodable = sfu["video_frames_decodable"] / max(1, sfu["video_frames_seen"])
    if (s["mode"] == "dtls-srtp" and decodable < 0.95) or (s["mode"] != "dtls-srtp" and decodable > 0):
        raise SystemExit(f"make_janus: the {s['mode']} recording is {decodable:.0%} decodable")


def record(mode: str):
    """Run one call and write its files; returns the result."""
    result = run_janus_call(mode, SETTINGS["participants"], SETTINGS["seconds"], SETTINGS["seed"], SETTINGS["size"])
    _check(result)
    folder = OUT / mode
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(result.summary, indent=1) + "\n")
    result.recording.to_csv(folder / "recording.csv", index=False)
    found = result.sfu.pictures.get("alice")
    for name in ("picture.png", "picture.json"):
        (folder / name).unlink(missing_ok=True)
    if found is not None and found[2]:
        Image.fromarray(found[1]).save(folder / "picture.png", optimize=True)
        (folder / "picture.json").write_text(json.dumps({"publisher": "alice", "frame_index": found[0]}) + "\n")
    return result


def main() -> int:
    problem = janus_problem()
    if problem is not None:
        print(f"make_janus: {problem}", file=sys.stderr)
        return 2
    calls = {mode: record(mode) for mode in ("dtls-srtp", "e2ee")}
    capacity_table(calls["dtls-srtp"]).to_csv(OUT / "capacity.csv", index=False)
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(OUT.parent.parent)}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
