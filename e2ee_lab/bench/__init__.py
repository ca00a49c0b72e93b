"""Benchmarks: what the lab's layers cost next to the bare primitives, measured on this machine.

- ``sframe`` (:mod:`.sframe`): SFrame protect/unprotect (RFC 9605 §4.4.3) per suite and size
  against bare AES-GCM / AES-CTR + HMAC.
- ``transforms`` (:mod:`.transforms`): bytes and µs per frame of every frame transform (none,
  SFrame suites 1-5, clear-prefix) on real Opus and VP8 frames, next to the bare AES-GCM call and
  AES-GCM's bulk rate (the ceiling).
- ``pipeline`` (:mod:`.pipeline`): one publisher's frames through encode → transform → RTP → SRTP
  → SFU → SRTP → reassembly → transform → decode, per stage, in dtls-srtp vs e2ee.
- ``sfu`` (:mod:`.sfu`, load processes in :mod:`.sfu_load`): forwarded SRTP packets per second per
  core of the lab's SFU over loopback, rooms of 2-16, dtls-srtp vs e2ee, next to a bare forwarder.
- ``call`` (:mod:`.call`): the envelope: one whole real-time call per room size, the share of
  frames each receiver verified and decoded, late frames, latency, CPU per participant-second.
- ``receiver`` (:mod:`.receiver`): one receiver of a big room, in memory: µs per verified audio and
  video frame of the call's receive path, and how much of it the dependencies' calls take.

Each benchmark returns a pandas DataFrame (machine description in ``df.attrs["machine"]``);
:data:`BENCHMARKS` is the registry the ``e2ee-lab bench`` command reads, so a new benchmark is one
entry there. Shared timing helpers live in :mod:`.common`, the real frames in :mod:`.frames`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from e2ee_lab.bench.call import bench_call, format_call
from e2ee_lab.bench.common import aesgcm_bulk_rate, machine_info
from e2ee_lab.bench.frames import MEDIA, MediaSet, media_set
from e2ee_lab.bench.pipeline import MODES, STAGES, bench_pipeline, format_pipeline, goal_verdicts
from e2ee_lab.bench.receiver import bench_receiver, format_receiver
from e2ee_lab.bench.sfu import ROOM_SIZES, SFU_MODES, bench_sfu, format_sfu, room_traffic, sfu_goal_verdicts
from e2ee_lab.bench.sframe import DEFAULT_SIZES, SFRAME_GOALS, bench_sframe, format_sframe
from e2ee_lab.bench.transforms import (SCHEMES, bench_transforms, format_transforms, measured_overhead,
                                       predicted_overhead)

__all__ = [
    "BENCHMARKS", "Benchmark", "bench_call", "bench_receiver", "format_call", "format_receiver", "DEFAULT_SIZES", "MEDIA", "MODES", "MediaSet", "ROOM_SIZES", "SCHEMES",
    "SFRAME_GOALS", "SFU_MODES", "STAGES", "aesgcm_bulk_rate", "bench_pipeline", "bench_sfu", "bench_sframe",
    "bench_transforms", "format_pipeline", "format_sfu", "format_sframe", "format_transforms", "goal_verdicts",
    "machine_info", "measured_overhead", "media_set", "predicted_overhead", "room_traffic", "sfu_goal_verdicts",
]


@dataclass(frozen=True)
class Benchmark:
    """One entry of the ``e2ee-lab bench`` command: how to run it and how to print it."""

    run: Callable[..., pd.DataFrame]  # keyword arguments: repeat, number, progress (+ its own)
    render: Callable[[pd.DataFrame], str]
    help: str


BENCHMARKS: dict[str, Benchmark] = {
    "sframe": Benchmark(bench_sframe, format_sframe,
                        "SFrame protect/unprotect per suite and size vs bare AES-GCM / AES-CTR+HMAC"),
    "transforms": Benchmark(bench_transforms, format_transforms,
                            "bytes and µs per real Opus/VP8 frame for none, SFrame 1-5, clear-prefix"),
    "pipeline": Benchmark(bench_pipeline, format_pipeline,
                          "one publisher's frames through RTP, SRTP and the SFU core: µs per stage per mode"),
    "sfu": Benchmark(bench_sfu, format_sfu,
                     "forwarded SRTP packets/s per core, rooms of 2-16, dtls-srtp vs e2ee vs a bare forwarder"),
    "call": Benchmark(bench_call, format_call,
                      "whole real-time calls per room size (--participants 2,4,8,12): verified, decoded, "
                      "late, latency, CPU per participant-second"),
    "receiver": Benchmark(bench_receiver, format_receiver,
                          "one receiver of a big room in memory: µs per verified audio/video frame, "
                          "and the share of aiortc's parse and the SFrame unprotect in it"),
}
