"""One publisher's frames end to end, in process and sans-I/O: µs per frame per stage, per call mode.

``bench_pipeline`` pushes a medium's real frames (:mod:`e2ee_lab.bench.frames`) through the lab's
whole chain without sockets: [encode] → frame transform (sender) → RTP packetizer (RFC 7741 VP8,
RFC 7587 Opus, RFC 6464 level) → SRTP protect with the publisher leg's key (RFC 3711, RFC 7714
AEAD_AES_128_GCM) → at the SFU: SRTP unprotect, :class:`~e2ee_lab.sfu.core.SFUCore` routing (SSRC
and sequence rewrite, view tap), SRTP protect with the subscriber leg's key → SRTP unprotect →
:class:`~e2ee_lab.rtp.reassembly.FrameAssembler` → frame transform (receiver) → [decode]. Modes are
the call's: ``dtls-srtp`` (no frame transform), ``e2ee`` (SFrame suite 4, RFC 9605) and
``clear-prefix``. Every run builds fresh objects (keys, sessions, SFU, assembler; with the codec a
fresh encoder warmed up on the set's warm-up pictures) untimed, then times each stage over all
frames of the run in turn; a stage does per frame exactly the work it would do frame by frame.
The runs of the modes of one row group are interleaved. After each run the received frames are
checked against the sent ones (untimed). Added µs of E2EE = crypto path (every stage but encode
and decode, which do the same work in every mode) of the mode minus that of ``dtls-srtp``, run by
run (runs of a group are interleaved, so each pair shares the machine's state), median over runs.
With the codec in the loop the same stages run with caches the codec has just churned through, so
those rows are slower and far noisier; the rows without the codec are the measurement.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from e2ee_lab.bench.common import KID, check_counts, machine_info, median_iqr
from e2ee_lab.bench.frames import DEFAULT_FRAMES, MEDIA, PUBLISHER_SSRC, MediaSet, media_set
from e2ee_lab.crypto.transforms import make_transform
from e2ee_lab.media.frame import EncodedFrame
from e2ee_lab.rtp import Codec, FrameAssembled, FrameAssembler, RTPPacketizer
from e2ee_lab.sfu.core import SFUCore
from e2ee_lab.transport.srtp import DEFAULT_PROFILE, SRTPMasterKey, SRTPSession

MODES = ("dtls-srtp", "e2ee", "clear-prefix")
STAGES = ("encode", "encrypt", "packetize", "srtp_protect", "sfu_unprotect", "sfu_route", "sfu_protect",
          "srtp_unprotect", "reassemble", "decrypt", "decode")
CODEC_STAGES = ("encode", "decode")
E2EE_GOAL_US = 50.0  # the goal: E2EE adds less than 0.05 ms per frame end to end
PIPELINE_TARGET_SECONDS = 0.05  # per timed run without the codec (several passes over the frames)
PAYLOAD_TYPES = {Codec.VP8: 96, Codec.OPUS: 111}  # as e2ee_lab.media.codecs and the SFU's defaults
MAX_PASSES = 200


class _Pipeline:
    """Publisher, SFU and subscriber of one stream, all fresh, for one timed run."""

    def __init__(self, mset: MediaSet, mode: str, codec: bool, rng: random.Random) -> None:
        seed = rng.randrange(2**32)
        self.mset, self.codec = mset, codec
        self.transform = make_transform(mode, kid=KID, seed=seed)
        rtp_codec = Codec.OPUS if mset.kind == "audio" else Codec.VP8
        pt = PAYLOAD_TYPES[rtp_codec]
        self.packetizer = RTPPacketizer(rtp_codec, ssrc=PUBLISHER_SSRC, payload_type=pt, seed=seed)
        up, down = (SRTPMasterKey(rng.randbytes(16), rng.randbytes(12)) for _ in range(2))
        self.pub_tx = SRTPSession(profile=DEFAULT_PROFILE, key=up, direction="outbound")
        self.sfu_rx = SRTPSession(profile=DEFAULT_PROFILE, key=up, direction="inbound")
        self.sfu_tx = SRTPSession(profile=DEFAULT_PROFILE, key=down, direction="outbound")
        self.sub_rx = SRTPSession(profile=DEFAULT_PROFILE, key=down, direction="inbound")
        self.sfu = SFUCore(seed=seed, packet_events=False)  # as the SFU server runs it: counters, no events
        for leg in ("publisher", "subscriber"):
            self.sfu.add_leg(leg)
        self.assembler = FrameAssembler({pt: rtp_codec}, extensions_map=self.packetizer.extensions_map)
        if codec:
            self.encoder, self.decoder = mset.new_encoder(), mset.new_decoder()
            for item in mset.warmup_inputs:
                self.encoder.encode(item)
        self.sent: list[EncodedFrame] = []
        self.received: list[EncodedFrame] = []
        self.wire_bytes = self.packets = 0

    def run(self, items: Sequence) -> list[float]:
        """Push ``items`` (codec inputs, or encoded frames without the codec) through; s per stage."""
        clock = time.perf_counter
        marks = [clock()]
        frames = self._encode(items) if self.codec else list(items)
        marks.append(clock())
        sent = [self.transform.sender.transform(f) for f in frames]
        marks.append(clock())
        rtp = [p for f in sent for p in self.packetizer.serialize(f)]
        marks.append(clock())
        srtp = [self.pub_tx.protect(p) for p in rtp]
        marks.append(clock())
        plain = [self.sfu_rx.unprotect(p) for p in srtp]
        marks.append(clock())
        routed = [data for p in plain for _, data in self.sfu.receive_rtp("publisher", p, 0.0)]
        marks.append(clock())
        out = [self.sfu_tx.protect(p) for p in routed]
        marks.append(clock())
        delivered = [self.sub_rx.unprotect(p) for p in out]
        marks.append(clock())
        events = [e for p in delivered for e in self.assembler.receive(p)] + self.assembler.flush()
        assembled = [e.to_encoded_frame() for e in events if isinstance(e, FrameAssembled)]
        marks.append(clock())
        received = [self.transform.receiver.transform(f) for f in assembled]
        marks.append(clock())
        if self.codec:
            for frame in received:
                self.decoder.decode(frame.data)
        marks.append(clock())
        self.sent, self.received, self.wire_bytes = frames, received, sum(len(p) for p in out)
        self.packets = len(out)
        return [b - a for a, b in zip(marks, marks[1:])]

    def _encode(self, items: Sequence) -> list[EncodedFrame]:
        encoded = (self.mset.encode(self.encoder, i, item) for i, item in enumerate(items))
        return [f for f in encoded if f is not None]

    def check(self) -> None:
        """Raise RuntimeError unless every sent frame arrived, in order, byte for byte."""
        if [f.data for f in self.received] != [f.data for f in self.sent]:
            raise RuntimeError(f"pipeline delivered {len(self.received)} of {len(self.sent)} frames intact")


def _passes(frames: Sequence[EncodedFrame], number: int, fps: int, clock_rate: int) -> list[EncodedFrame]:
    """``number`` copies of ``frames`` one after another, RTP timestamps continuing."""
    step = clock_rate // fps
    span = (frames[-1].timestamp - frames[0].timestamp) % 2**32 + step
    return [f.replace(timestamp=(f.timestamp + p * span) % 2**32) for p in range(number) for f in frames]


def _inputs(mset: MediaSet, codec: bool, number: int | None, rng: random.Random) -> tuple[list, int]:
    """What one run processes, and the passes over the set (calibrated to ~50 ms without the codec)."""
    if codec:
        return list(mset.inputs), 1
    clock_rate = 48_000 if mset.kind == "audio" else 90_000
    if number is None:
        probe = _Pipeline(mset, "e2ee", False, rng)
        started = time.perf_counter()
        probe.run(mset.frames)
        number = max(1, min(MAX_PASSES, math.ceil(PIPELINE_TARGET_SECONDS / (time.perf_counter() - started))))
    return _passes(mset.frames, number, mset.fps, clock_rate), number


def _measure_modes(mset: MediaSet, modes: Sequence[str], codec: bool, items: list, repeat: int,
                   rng: random.Random) -> dict[str, dict[str, object]]:
    """Interleaved runs of every mode (after one warm-up run each): per-run µs per frame by stage."""
    samples: dict[str, list[list[float]]] = {m: [] for m in modes}
    facts: dict[str, dict[str, object]] = {}
    for run in range(repeat + 1):
        for mode in modes:
            pipe = _Pipeline(mset, mode, codec, rng)
            seconds = pipe.run(items)
            pipe.check()
            n = len(pipe.sent)
            if run:  # run 0 warms caches and code paths
                samples[mode].append([s / n * 1e6 for s in seconds])
            facts[mode] = {"frames": n, "packets_per_frame": pipe.packets / n,
                           "frame_bytes": sum(len(f.data) for f in pipe.sent) / n, "wire_bytes": pipe.wire_bytes / n}
    return {m: facts[m] | _stage_columns(samples[m], codec) for m in modes}


def _stage_columns(runs: list[list[float]], codec: bool) -> dict[str, object]:
    row: dict[str, object] = {}
    for i, stage in enumerate(STAGES):
        value = median_iqr([r[i] for r in runs])[0]
        row[f"{stage}_us"] = value if codec or stage not in CODEC_STAGES else math.nan
    path = [i for i, s in enumerate(STAGES) if s not in CODEC_STAGES]
    row["_total_runs"] = [sum(r) for r in runs]
    row["_path_runs"] = [sum(r[i] for i in path) for r in runs]
    row["total_us"], row["total_iqr_us"] = median_iqr(row["_total_runs"])
    row["path_us"], row["path_iqr_us"] = median_iqr(row["_path_runs"])
    return row


def _paired(runs: list[float], base: list[float]) -> tuple[float, float]:
    """Median and IQR of run-by-run differences (runs of a group are interleaved, so paired)."""
    return median_iqr([a - b for a, b in zip(runs, base)])


def bench_pipeline(media: Iterable[str] = MEDIA, modes: Iterable[str] = MODES, repeat: int = 7,
                   number: int | None = None, *, frames: int = DEFAULT_FRAMES,
                   codec: Iterable[bool] = (False, True), seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """µs per frame per stage of the whole publisher → SFU → subscriber chain, per mode.

    Args:
        media: names from :data:`~e2ee_lab.bench.frames.MEDIA`.  modes: from :data:`MODES`.
        repeat: timed runs per figure.  number: passes over the frames per run without the codec
        (default: calibrated to ~50 ms; with the codec always 1).  frames: frames per medium.
        codec: False (frames encoded beforehand), True (encode and decode in the loop), or both.
        seed: keys, SSRC/sequence choices and scenes.  progress: a tqdm bar on stderr.
    Returns:
        One row per (medium, codec, mode): ``media``, ``kind``, ``width``, ``height``, ``fps``,
        ``codec``, ``mode``, ``frames`` (per run), ``packets_per_frame``, ``frame_bytes`` (encoded)
        and ``wire_bytes`` (SRTP on the subscriber leg) per frame; ``<stage>_us`` for each of
        :data:`STAGES` (median µs per frame; encode/decode NaN without the codec); ``total_us`` and
        ``path_us`` (all stages / all but the codec; medians of per-run sums, each with
        ``*_iqr_us``); ``added_us`` and ``added_iqr_us`` (median and IQR of the run-by-run
        difference of the path to the interleaved ``dtls-srtp`` run) and ``added_total_us`` (the
        same on totals, codec noise included); ``goal_us`` (50 for E2EE modes),
        ``goal_met`` and ``verdict`` ("met", "MISSED", or "unresolved" with ``goal_met`` None when
        the IQR of the difference exceeds the goal: the machine was too noisy to tell);
        ``core_pct`` (total at ``fps``, % of one core); ``number`` (passes), ``repeat``.
    Raises:
        ValueError: bad counts, an unknown medium or mode.
    """
    check_counts(repeat, number)
    modes = list(modes)
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    began, rng = time.perf_counter(), random.Random(seed)
    groups = [(media_set(m, frames, seed=seed), bool(c)) for m in media for c in codec]
    rows = []
    for mset, with_codec in tqdm(groups, desc="bench pipeline", unit="group", file=sys.stderr,
                                 disable=not progress):
        items, passes = _inputs(mset, with_codec, number, rng)
        measured = _measure_modes(mset, modes, with_codec, items, repeat, rng)
        rows += _group_rows(mset, with_codec, measured, passes, repeat)
    df = pd.DataFrame(rows)
    df.attrs.update(machine=machine_info(), elapsed_s=time.perf_counter() - began)
    return df


def _group_rows(mset: MediaSet, codec: bool, measured: dict[str, dict[str, object]], passes: int,
                repeat: int) -> list[dict[str, object]]:
    base = measured.get("dtls-srtp")
    rows = []
    for mode, values in measured.items():
        row = {"media": mset.name, "kind": mset.kind, "width": mset.width, "height": mset.height,
               "fps": mset.fps, "codec": codec, "mode": mode}
        row |= {k: v for k, v in values.items() if not k.startswith("_")}
        if base:
            row["added_us"], row["added_iqr_us"] = _paired(values["_path_runs"], base["_path_runs"])
            row["added_total_us"] = _paired(values["_total_runs"], base["_total_runs"])[0]
        else:
            row["added_us"] = row["added_iqr_us"] = row["added_total_us"] = math.nan
        row |= _goal(mode != "dtls-srtp" and base is not None, row["added_us"], row["added_iqr_us"])
        row["core_pct"] = row["total_us"] * mset.fps / 1e4
        rows.append(row | {"number": passes, "repeat": repeat})
    return rows


def _goal(applies: bool, added: float, spread: float) -> dict[str, object]:
    """Goal columns: met / MISSED, or unresolved when the runs scatter more than the goal itself."""
    if not applies:
        return {"goal_us": math.nan, "goal_met": None, "verdict": ""}
    if spread > E2EE_GOAL_US:
        return {"goal_us": E2EE_GOAL_US, "goal_met": None, "verdict": "unresolved"}
    met = bool(added < E2EE_GOAL_US)
    return {"goal_us": E2EE_GOAL_US, "goal_met": met, "verdict": "met" if met else "MISSED"}


_SHORT = {"encode": "enc", "encrypt": "xf-enc", "packetize": "pkt", "srtp_protect": "srtp+",
          "sfu_unprotect": "sfu-", "sfu_route": "route", "sfu_protect": "sfu+", "srtp_unprotect": "srtp-",
          "reassemble": "reasm", "decrypt": "xf-dec", "decode": "dec"}


def format_pipeline(df: pd.DataFrame) -> str:
    """A readable table of a :func:`bench_pipeline` result, with the goal verdicts under it."""
    def num(v: float) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"
    table = pd.DataFrame({"media": df["media"], "codec": df["codec"].map({True: "yes", False: "no"}),
                          "mode": df["mode"], "pkt/fr": df["packets_per_frame"].map("{:.1f}".format)})
    for stage in STAGES:
        table[_SHORT[stage]] = df[f"{stage}_us"].map(num)
    table["total"] = df["total_us"].map(num)
    table["IQR"] = df["total_iqr_us"].map(num)
    table["+E2EE"] = [num(a) if m != "dtls-srtp" else "" for a, m in zip(df["added_us"], df["mode"])]
    table["+IQR"] = [num(a) if m != "dtls-srtp" else "" for a, m in zip(df["added_iqr_us"], df["mode"])]
    machine = df.attrs.get("machine", {})
    head = ", ".join(f"{k}: {v}" for k, v in machine.items())
    legend = ("µs per frame, median of {} runs; stages: ".format(int(df["repeat"].iloc[0]))
              + ", ".join(f"{v}={k}" for k, v in _SHORT.items())
              + "; +E2EE = crypto path (all but enc/dec) minus dtls-srtp's, median of run-by-run differences"
              + "\nrows with the codec run the same stages after the codec has churned the caches: slower and "
              "far noisier; the rows without it are the measurement")
    return f"{head}\n{legend}\n{table.to_string(index=False)}\n" + "\n".join(goal_verdicts(df))


def goal_verdicts(df: pd.DataFrame) -> list[str]:
    """One line per E2EE row (added µs per frame, goal < 50 µs) and a summary for SFrame (``e2ee``)."""
    lines = []
    for row in df[df["verdict"] != ""].itertuples(index=False):
        where = f"{row.media}, {'with' if row.codec else 'without'} codec"
        lines.append(f"goal: {row.mode} adds {row.added_us:.1f} µs per frame (IQR {row.added_iqr_us:.1f}; "
                     f"{where}; goal < {row.goal_us:.0f} µs): {row.verdict}")
    judged = df[(df["mode"] == "e2ee") & ~df["codec"] & df["goal_met"].notna()]
    if len(judged):
        met = int(judged["goal_met"].sum())
        lines.append(f"E2EE goal (SFrame, whole path without the codec): met on {met} of {len(judged)} media "
                     f"judged, worst +{judged['added_us'].max():.1f} µs per frame")
    return lines
