"""The top of :mod:`e2ee_lab.analysis`: the ``e2ee-lab analyze`` command and the figures saved to files.

``e2ee-lab analyze DIR`` (:func:`add_analyze_arguments`, :func:`cli_analyze`) runs
:func:`~e2ee_lab.analysis.offline.analyze` on a call's capture with the SFU's key log (or without,
``--no-keys``: the wire), prints its table and writes its CSVs and figure (:func:`save_figure`,
:func:`~e2ee_lab.analysis.plots.capture_analysis`). :func:`save_headline_figure` saves the README's
headline, :func:`~e2ee_lab.analysis.plots.three_views` of the recorded calls. This module sits
above the figures, which sit above the decoding and the views: nothing below imports it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from e2ee_lab.analysis import plots
from e2ee_lab.analysis.offline import OfflineAnalysis, analyze
from e2ee_lab.analysis.views import CapturedCall, analyze_views, recording
from e2ee_lab.capture.pcap import CaptureError
from e2ee_lab.transport.errors import KeyLogError

FIGURE_FILE = "sfu-view.png"
WIRE_FIGURE_FILE = "wire-view.png"


def save_figure(result: OfflineAnalysis, path: str | Path, *, dpi: int = 80) -> Path:
    """Save :func:`~e2ee_lab.analysis.plots.capture_analysis` of ``result`` as a PNG at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.capture_analysis(result).savefig(path, dpi=dpi)
    return path


def save_headline_figure(path: str | Path, *, calls: Mapping[str, CapturedCall] | None = None,
                         dpi: int = 72) -> Path:
    """Draw :func:`~e2ee_lab.analysis.plots.three_views` for both modes and save it as a PNG.

    ``calls`` default to the recordings in ``data/captures/`` (no call is run, no root needed).
    Returns the path written.
    """
    calls = calls or {mode: recording(mode) for mode in ("dtls-srtp", "e2ee")}
    views = {mode: analyze_views(call) for mode, call in calls.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.three_views(views).savefig(path, dpi=dpi)
    return path


# --- the command -----------------------------------------------------------------------------


def add_analyze_arguments(parser) -> None:
    """Add ``e2ee-lab analyze DIR`` options to an argparse parser (sets ``func``)."""
    parser.add_argument("dir", type=Path, help="call directory (capture.pcap, sfu-keys.json)")
    parser.add_argument("--pcap", type=Path, help="capture to read (default DIR/capture.pcap)")
    parser.add_argument("--keys", type=Path, help="SFU key log (default DIR/sfu-keys.json)")
    parser.add_argument("--no-keys", action="store_true",
                        help="the wire view: analyse without the SFU's keys")
    parser.add_argument("--out", type=Path, help="where to write the CSVs (default DIR)")
    parser.add_argument("--payload-format", choices=("auto", "sframe", "codec"), default=None,
                        help="how RTP payloads are packed: recognised per stream (auto), or every stream in "
                             "the SFrame RTP payload format or the codec's (default: DIR/summary.json's "
                             "rtp_sframe announces it, else auto)")
    parser.set_defaults(func=cli_analyze)


def announced_payload_format(directory: Path) -> str:
    """What a call's ``summary.json`` announces: ``"codec"`` when it offered no SFrame payload format
    (``rtp_sframe`` null), else ``"auto"`` (offered: each stream is recognised, since a member may
    have fallen back to the codec's); ``"auto"`` without a readable summary."""
    try:
        summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "auto"
    return "codec" if isinstance(summary, dict) and summary.get("rtp_sframe", "") is None else "auto"


def cli_analyze(args) -> int:
    """Run the analysis for ``e2ee-lab analyze``; print the table; returns the exit status.

    Errors in the input (no capture, not a pcap, a directory or unreadable file, no or malformed key
    log) print one line to stderr and return 2. ``--no-keys`` writes the wire view's files
    (``wire-view.csv``, ``wire-frames.csv``, ``wire-view.png``) next to the SFU view's. Payloads
    are read as ``--payload-format`` says, by default as :func:`announced_payload_format`.
    """
    pcap = args.pcap or args.dir / "capture.pcap"
    keys = None if args.no_keys else (args.keys or args.dir / "sfu-keys.json")
    payload_format = getattr(args, "payload_format", None) or announced_payload_format(args.dir)
    try:
        result = analyze(pcap, keys, keep_media="last", payload_format=payload_format)
    except (OSError, CaptureError, KeyLogError) as exc:  # OSError: missing, a directory, unreadable
        print(f"analyze: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.dir
    paths = result.write(out)
    paths["figure"] = save_figure(result, out / (FIGURE_FILE if result.keyed else WIRE_FIGURE_FILE))
    print(result.table())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
