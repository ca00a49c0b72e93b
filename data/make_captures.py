"""Record the two short calls in ``data/captures/`` that notebook 02 and the tests read without root.

Usage: ``.venv/bin/python data/make_captures.py`` (about 10 s). Runs a ``dtls-srtp`` and an ``e2ee``
call (ci size, 2 participants, 2 s, seed 0, ``reproducible_keys=True``) with ``capture="auto"``:
scapy sniffs ``lo`` where it is permitted (root or CAP_NET_RAW, libpcap), the socket tap records the
lab's own sockets elsewhere; ``summary.json`` says which. Each ``data/captures/<mode>/`` then holds:

- ``capture.pcap``: every UDP datagram of the call, DTLS handshakes included;
- ``sfu-keys.json``: the SFU's SRTP key log (what the SFU could hand to anyone);
- ``summary.json``: the call's own counts (``e2ee-lab call`` writes the same);
- ``truth.csv``: which frame each (SSRC, RTP timestamp) carried, to judge decoded pictures;
- ``frame-keys.json`` (e2ee only): the members' SFrame base keys, the receivers' secret in a real
  call. These calls opt in to reproducible keys (a recording for the course): the keys follow from
  seed 0, so anyone who knows the seed, the SFU included, recomputes them; the file says so.

DTLS keys are fresh on every run and the SFU picks its outgoing SSRCs at random, so the files
change each time even with the same seed; the pictures, the participants' SSRCs and the frame keys
do not. The script checks that the analysis of each pcap gives
back the call's own frame counts before it prints the sizes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from e2ee_lab.analysis.views import CapturedCall, analyze_views, recording, write_recording
from e2ee_lab.call import run_call

OUT = Path(__file__).resolve().parent / "captures"
MODES = ("dtls-srtp", "e2ee")
PARTICIPANTS, SECONDS, SEED = 2, 2.0, 0


def record(mode: str) -> Path:
    """Run and capture one call into ``OUT/mode``; returns the directory."""
    directory = OUT / mode
    shutil.rmtree(directory, ignore_errors=True)
    result = run_call(mode, PARTICIPANTS, SECONDS, seed=SEED, size="ci", out=directory,
                      capture="auto", reproducible_keys=True)
    write_recording(result, directory)
    views = analyze_views(CapturedCall.from_result(result))
    check(views, result.summary)
    return directory


def check(views, summary: dict) -> None:
    """The pcap's to-SFU frames per participant equal what each sent; raise if not."""
    f = views.sfu.frames
    for p in summary["participants"]:
        for kind in ("video", "audio"):
            got = int(((f.leg == p["name"]) & (f.direction == "to_sfu") & (f.kind == kind)).sum())
            if got != p[f"{kind}_frames_sent"]:
                raise SystemExit(f"{p['name']} sent {p[f'{kind}_frames_sent']} {kind} frames, "
                                 f"the capture holds {got}")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for mode in MODES:
        directory = record(mode)
        call = recording(mode)
        print(f"{directory.relative_to(OUT.parent.parent)}: {call.summary['capture']['backend']}, "
              f"{call.summary['capture']['datagrams']} datagrams")
        for path in sorted(directory.iterdir()):
            print(f"  {path.name:16} {path.stat().st_size / 1024:7.1f} KB")


if __name__ == "__main__":
    main()
