"""The ``e2ee-lab`` command: one argparse subcommand per job.

``e2ee-lab bench sframe`` runs a benchmark from :data:`e2ee_lab.bench.BENCHMARKS` (``all`` runs every
one), prints a table (or JSON with ``--json``) and writes a CSV under ``reports/``. Options a
benchmark does not take (``--suites`` for ``transforms``, say) are left out of its call; a bad option
value (a ValueError, or uvloop asked for but not installed) is one line on stderr and exit status 2.
``e2ee-lab bench sfu --profile`` profiles the SFU's process in one room instead
(:func:`e2ee_lab.bench.sfu_profile.profile_sfu`) and prints where its time goes. A new job is a
``_add_<name>(subparsers)`` function registered in :data:`SUBCOMMANDS` that sets ``func`` on its
parser; ``func(args)`` returns the exit status.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPORTS = Path("reports")


def _json_safe(value: object) -> object:
    """NaN becomes null so the JSON is valid; numpy scalars become Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _bench_names() -> list[str]:
    from e2ee_lab.bench import BENCHMARKS

    return [*BENCHMARKS, "all", "labs"]


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    from e2ee_lab.bench import BENCHMARKS

    listing = "; ".join(f"{name}: {b.help}" for name, b in BENCHMARKS.items())
    parser = subparsers.add_parser("bench", help="run a benchmark and report µs per operation",
                                   description=f"Benchmarks ({listing}; all: every one; labs: CPU-seconds and "
                                               "peak memory of each lab notebook at ci and full size).")
    parser.add_argument("name", choices=_bench_names(), help="which benchmark")
    parser.add_argument("--json", action="store_true", help="print JSON to stdout instead of a table")
    parser.add_argument("--out", type=Path, help="CSV path (default reports/bench_<name>.csv; "
                        "with --profile reports/profile_sfu.csv)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure (median reported)")
    parser.add_argument("--number", type=int, help="operations (sframe) or passes over the frames "
                        "(transforms, pipeline) per run (default: calibrated)")
    parser.add_argument("--sizes", type=int, nargs="+", help="frame sizes in bytes (sframe)")
    parser.add_argument("--suites", type=int, nargs="+", help="SFrame cipher suite ids (sframe only)")
    parser.add_argument("--peer", choices=("wrtc",), help="sframe only: put another implementation "
                        "beside the lab's (wrtc: libwebrtc's native SFrame; pip install -e '.[interop]')")
    parser.add_argument("--media", nargs="+", help="opus, vp8-320x240, vp8-640x480, vp8-1280x720 "
                        "(transforms, pipeline)")
    parser.add_argument("--frames", type=int, help="encoded frames per medium (transforms, pipeline)")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the ceiling: AES-128-GCM's bulk rate through cryptography (transforms)")
    parser.add_argument("--codec", choices=("both", "on", "off"), default="both",
                        help="encode/decode in the loop (pipeline)")
    parser.add_argument("--rooms", type=int, nargs="+", help="participants per room (sfu; default 2 4 8 16)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"),
                        help="the SFU process's event loop (sfu), the calls' and their workers' (call); "
                             "default asyncio; uvloop: pip install 'e2ee-lab[fast]'")
    parser.add_argument("--profile", nargs="?", const="e2ee", choices=("dtls-srtp", "e2ee", "bare"), metavar="MODE",
                        help="sfu only: cProfile the SFU's process in one room (--rooms N, default 4) in MODE "
                        "(default e2ee) and print the share of its busy time per category and the top functions")
    parser.add_argument("--labs", nargs="+", metavar="NN", help="labs only: the notebooks to run (default: all)")
    parser.add_argument("--lab-sizes", nargs="+", choices=("ci", "full"), default=["ci", "full"],
                        help="labs only: the sizes to run each notebook at (default: ci full)")
    parser.add_argument("--notebooks", type=Path, help="labs only: the folder of notebooks (default: notebooks/)")
    parser.add_argument("--participants", help="call only: room sizes, comma-separated (default 2,4,8,12)")
    parser.add_argument("--publishers", type=int, help="call: the first K participants send video (lab stack); "
                        "receiver: the publishers whose video the receiver gets (default 4)")
    parser.add_argument("--stack", choices=("lab", "webrtc"), help="call only: which stack runs the calls (default lab)")
    parser.add_argument("--mode", choices=("dtls-srtp", "e2ee", "clear-prefix"), help="call only: default e2ee")
    parser.add_argument("--seconds", type=float, help="call: media per call (default 5); receiver: media "
                        "the receiver is fed (default 4)")
    parser.add_argument("--size", choices=("ci", "full"), help="call only: picture size (default full)")
    parser.add_argument("--encode", choices=("live", "clip"), help="call only: default clip (each scene encoded once)")
    parser.add_argument("--views", type=lambda t: t if t == "sample" else int(t),
                        help="call only: publishers each receiver decodes, or sample (each publisher's video "
                             "decoded by one receiver); every frame is verified (default 1)")
    parser.add_argument("--workers", type=int, help="call only: worker processes for the participants (default 0)")
    parser.add_argument("--loudest", type=int, help="call only: speakers whose audio big rooms forward (default 3)")
    parser.add_argument("--browser", type=int, choices=(0, 1),
                        help="call only: a headless Chromium page joins each webrtc-stack call "
                             "(--participants then counts the Python members)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_run_bench)


_CODEC = {"both": (False, True), "on": (True,), "off": (False,)}


def _bench_kwargs(args: argparse.Namespace, run: Callable[..., object]) -> dict[str, object]:
    """The options given on the command line that ``run`` accepts."""
    kwargs: dict[str, object] = {"repeat": args.repeat, "number": args.number,
                                 "progress": not args.no_progress}
    optional = {"sizes": args.sizes, "suites": args.suites, "media": args.media, "frames": args.frames,
                "ceiling": False if args.no_ceiling else None, "codec": _CODEC[args.codec],
                "rooms": getattr(args, "rooms", None), "loop": getattr(args, "loop", None),
                "peer": getattr(args, "peer", None)}
    optional.update({k: getattr(args, k, None) for k in ("participants", "publishers", "stack", "mode", "seconds",
                                                         "size", "encode", "views", "loudest", "workers",
                                                         "browser")})
    kwargs.update({k: v for k, v in optional.items() if v is not None})
    accepted = inspect.signature(run).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}


def _run_bench(args: argparse.Namespace) -> int:
    from e2ee_lab.bench import BENCHMARKS

    if args.profile is not None:
        return _run_profile(args)
    if args.name == "labs":
        return _run_bench_labs(args)
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    if args.out is not None and len(names) > 1:
        print("--out takes one benchmark; with 'all' the CSVs go to reports/", file=sys.stderr)
        return 2
    results, began = {}, time.perf_counter()
    for name in names:
        bench = BENCHMARKS[name]
        try:
            df = bench.run(**_bench_kwargs(args, bench.run))
        except (ImportError, ValueError) as exc:  # a bad option value, or --loop uvloop without uvloop
            print(f"e2ee-lab bench {name}: {exc}", file=sys.stderr)
            return 2
        out = args.out or REPORTS / f"bench_{name}.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
        print(f"wrote {out}", file=sys.stderr)
        results[name] = df
        if not args.json:
            print(bench.render(df))
    print(f"bench {args.name}: {time.perf_counter() - began:.1f} s", file=sys.stderr)
    if args.json:
        payload = {name: {"machine": df.attrs.get("machine", {}),
                          "attrs": {k: _json_safe(v) for k, v in df.attrs.items() if k != "machine"},
                          "rows": [{k: _json_safe(v) for k, v in row.items()}
                                   for row in df.to_dict("records")]}
                   for name, df in results.items()}
        print(json.dumps(payload, indent=2))
    return 0


def _run_bench_labs(args: argparse.Namespace) -> int:
    """``bench labs``: every lab notebook at each size in a fresh process; a table and a CSV."""
    from e2ee_lab.bench.labs import bench_labs, format_labs

    began = time.perf_counter()
    kwargs = {"notebooks": args.notebooks} if args.notebooks else {}
    df = bench_labs(args.labs or (), args.lab_sizes, progress=not args.no_progress, **kwargs)
    out = args.out or REPORTS / "bench_labs.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    print(f"wrote {out}\nbench labs: {time.perf_counter() - began:.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps([{k: _json_safe(v) for k, v in row.items()} for row in df.to_dict("records")], indent=2))
    else:
        print(format_labs(df))
    return 1 if df.error.astype(bool).any() else 0


def _run_profile(args: argparse.Namespace) -> int:
    """``bench sfu --profile``: profile one room, print the shares (or JSON), write the functions' CSV."""
    from e2ee_lab.bench.sfu_profile import format_profile, profile_sfu

    rooms = args.rooms or [4]
    if args.name != "sfu" or len(rooms) != 1:
        print("e2ee-lab bench: --profile takes the sfu benchmark and one room size (--rooms N)", file=sys.stderr)
        return 2
    kwargs = _bench_kwargs(args, profile_sfu)  # repeat, number, loop, progress
    began = time.perf_counter()
    try:
        result = profile_sfu(rooms[0], args.profile, **kwargs)
    except (ImportError, ValueError) as exc:
        print(f"e2ee-lab bench sfu --profile: {exc}", file=sys.stderr)
        return 2
    out = args.out or REPORTS / "profile_sfu.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    result.functions.to_csv(out, index=False)
    print(f"wrote {out}\nbench sfu --profile: {time.perf_counter() - began:.1f} s", file=sys.stderr)
    if args.json:
        records = {name: [{k: _json_safe(v) for k, v in row.items()} for row in table.to_dict("records")]
                   for name, table in (("categories", result.categories), ("functions", result.functions.head(30)))}
        head = {"participants": result.participants, "mode": result.mode, "loop": result.loop,
                "received": result.received, "forwarded": result.forwarded, "cpu_s": result.cpu_s}
        print(json.dumps(head | records, indent=2))
    else:
        print(format_profile(result))
    return 0


def _add_call(subparsers: argparse._SubParsersAction) -> None:
    from e2ee_lab.call import add_call_arguments

    add_call_arguments(subparsers.add_parser(
        "call", help="run one call through the SFU; print what each party could decode"))


def _add_analyze(subparsers: argparse._SubParsersAction) -> None:
    from e2ee_lab.analysis.command import add_analyze_arguments

    add_analyze_arguments(subparsers.add_parser(
        "analyze", help="decrypt a call's capture with the SFU's key log; what the SFU could read"))


def _add_doctor(subparsers: argparse._SubParsersAction) -> None:
    from e2ee_lab.doctor import add_doctor_arguments

    add_doctor_arguments(subparsers.add_parser(
        "doctor", help="can this machine run the labs? one line per item; exit 1 if one fails"))


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_bench, _add_call, _add_analyze, _add_doctor]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand of :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(prog="e2ee-lab",
                                     description="Show, measure and teach E2EE for WebRTC via an SFU.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``e2ee-lab`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
