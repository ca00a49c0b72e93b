"""Frame-transform cost on real frames: bytes and µs per frame for none, SFrame 1-5 and clear-prefix.

``bench_transforms`` runs every transform of :mod:`e2ee_lab.crypto.transforms` over real encoded
frames (:mod:`e2ee_lab.bench.frames`: Opus 20 ms speech, VP8 key and delta frames at three sizes)
and reports, per medium, frame type and scheme: the bytes each frame grows by (measured on the
output, next to what :func:`~e2ee_lab.crypto.transforms.overhead` predicts: RFC 9605 §4.3 header +
§4.5 tag for SFrame, 16-byte tag + 14-byte IV trailer for clear-prefix), that overhead as a share of
the frame and of the medium's bit rate, and the median µs per frame of the sender's and receiver's
``transform()`` next to the bare ``cryptography`` AES-GCM encrypt/decrypt of the same frames in the
same interleaved runs, the share of one core this takes at the medium's frame rate, and the
ceiling: the µs AES-128-GCM needs for a frame of that size at its bulk rate through the same
``cryptography`` (:func:`~e2ee_lab.bench.common.aesgcm_bulk_rate`), the cipher's cost with no
per-call overhead at all.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm.auto import tqdm

from e2ee_lab.bench.common import (BULK_BYTES, KID, POOL_BYTES, Case, aesgcm_bulk_rate, calibrate, check_counts,
                                   machine_info, measure)
from e2ee_lab.bench.frames import DEFAULT_FRAMES, MEDIA, MediaSet, media_set
from e2ee_lab.crypto.sframe import CipherSuite
from e2ee_lab.crypto.transforms import TransformPair, make_transform, overhead
from e2ee_lab.media.frame import EncodedFrame

SCHEMES = ("none", *(f"sframe-{s.value}" for s in CipherSuite), "clear-prefix")
TRANSFORM_TARGET_SECONDS = 0.01  # per timed run: rows are many and each is a few µs per frame


def scheme_suite(scheme: str) -> int | None:
    """The SFrame suite of ``"sframe-<n>"``, None for ``"none"``/``"clear-prefix"``.

    Raises:
        ValueError: an unknown scheme name.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return int(scheme.split("-")[1]) if scheme.startswith("sframe-") else None


def scheme_transform(scheme: str, seed: int = 0) -> TransformPair:
    """A fresh sender/receiver pair for ``scheme`` (SFrame with KID 1, CTR from 0)."""
    suite = scheme_suite(scheme)
    if suite is not None:
        return make_transform("sframe", kid=KID, suite=suite, seed=seed)
    return make_transform(scheme, seed=seed)


def predicted_overhead(scheme: str, count: int) -> list[int]:
    """Bytes :func:`overhead` predicts for the first ``count`` frames of a fresh sender."""
    suite = scheme_suite(scheme)
    if suite is None:
        return [overhead(scheme)] * count
    return [overhead("sframe", suite=suite, kid=KID, ctr=ctr) for ctr in range(count)]


def measured_overhead(frames: Sequence[EncodedFrame], scheme: str, seed: int = 0) -> list[int]:
    """Bytes each frame grew by through a fresh sender of ``scheme`` (frames in order).

    Every frame is also decrypted by the matching receiver.
    Raises:
        RuntimeError: a frame did not come back unchanged (a broken transform, never expected).
    """
    pair = scheme_transform(scheme, seed)
    added = []
    for frame in frames:
        sent = pair.sender.transform(frame)
        if pair.receiver.transform(sent).data != frame.data:
            raise RuntimeError(f"{scheme} did not round-trip a {len(frame.data)}-byte frame")
        added.append(len(sent.data) - len(frame.data))
    return added


def _transform_cases(frames: list[EncodedFrame], scheme: str, number: int,
                     rng: random.Random) -> dict[str, Case]:
    """Sender/receiver transform and bare AES-GCM over ``number`` passes of ``frames``."""
    seed = rng.randrange(2**32)
    pool = scheme_transform(scheme, seed)
    sealed = [pool.sender.transform(f) for _ in range(number) for f in frames]

    def protect() -> Callable[[], None]:
        # A new key every run (CTR from 0 again): a (key, CTR) pair is never used twice.
        sender = scheme_transform(scheme, rng.randrange(2**32)).sender

        def loop() -> None:
            for _ in range(number):
                for frame in frames:
                    sender.transform(frame)
        return loop

    def unprotect() -> Callable[[], None]:
        receiver = scheme_transform(scheme, seed).receiver  # a fresh replay window every run

        def loop() -> None:
            for frame in sealed:
                receiver.transform(frame)
        return loop

    suite = scheme_suite(scheme)
    key_len = 32 if suite == CipherSuite.AES_256_GCM_SHA512_128 else 16
    cases = {"protect": protect, "unprotect": unprotect}
    cases.update(_gcm_cases(key_len, [f.data for f in frames], number, rng))
    return cases


def _gcm_cases(key_len: int, datas: list[bytes], number: int, rng: random.Random) -> dict[str, Case]:
    """Bare AESGCM.encrypt/decrypt, one call per frame with its own nonce, no AAD."""
    aead = AESGCM(rng.randbytes(key_len))
    nonces = [rng.randbytes(12) for _ in range(number * len(datas))]
    plain = [(n, d) for n, d in zip(nonces, datas * number)]
    sealed = [(n, aead.encrypt(n, d, None)) for n, d in plain]

    def encrypt() -> None:
        for n, d in plain:
            aead.encrypt(n, d, None)

    def decrypt() -> None:
        for n, c in sealed:
            aead.decrypt(n, c, None)
    return {"gcm_encrypt": lambda: encrypt, "gcm_decrypt": lambda: decrypt}


def bench_transforms(media: Iterable[str] = MEDIA, schemes: Iterable[str] = SCHEMES, repeat: int = 7,
                     number: int | None = None, *, frames: int = DEFAULT_FRAMES, ceiling: bool = True,
                     seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Bytes and µs per frame of each frame transform on real Opus and VP8 frames.

    Args:
        media: names from :data:`~e2ee_lab.bench.frames.MEDIA`.  schemes: from :data:`SCHEMES`.
        repeat: timed runs per figure.  number: passes over a row's frames per run (default:
        calibrated to ~10 ms).  frames: frames per medium.  ceiling: also measure AES-128-GCM's
        bulk rate (:func:`~e2ee_lab.bench.common.aesgcm_bulk_rate`, a few ms).  seed: keys and
        scenes.  progress: a tqdm bar on stderr.
    Returns:
        One row per (medium, frame type, scheme); columns in :func:`_row` and
        :func:`_timing_columns`: ``media``, ``kind``, ``width``, ``height``, ``fps``,
        ``frame_type`` (audio/key/delta), ``scheme``, ``suite``, ``frames``, ``mean_size``,
        ``min_size``, ``max_size`` (plaintext bytes), ``overhead_bytes`` (mean measured growth),
        ``overhead_predicted`` (mean of :func:`overhead`), ``overhead_pct`` (of the frame),
        ``bitrate_kbps``, ``overhead_kbps``, ``overhead_bitrate_pct`` (whole medium at its fps),
        ``protect_us``/``unprotect_us``/``gcm_encrypt_us``/``gcm_decrypt_us`` (median µs per
        frame, each with ``*_iqr_us``), ``ratio_gcm``, ``core_pct_send``/``core_pct_recv``/
        ``core_pct`` (% of one core at ``fps``), ``ceiling_us`` (``mean_size`` / the AES-128-GCM
        bulk rate: µs to encrypt one frame of that size with no per-call cost; NaN with
        ``ceiling=False``), ``number``, ``repeat``.
        ``df.attrs``: ``machine``, ``bulk_rate`` (bytes/s, NaN when skipped), ``note``, ``elapsed_s``.
    Raises:
        ValueError: bad counts, an unknown medium or scheme.
    """
    check_counts(repeat, number)
    began, rng = time.perf_counter(), random.Random(seed)
    schemes = list(schemes)
    for scheme in schemes:
        scheme_suite(scheme)  # ValueError on an unknown name before anything runs
    sets = [media_set(m, frames, seed=seed) for m in media]
    groups = [(s, t) for s in sets for t in dict.fromkeys(s.frame_types())]
    rate = aesgcm_bulk_rate() if ceiling else math.nan
    rows = []
    bar = tqdm(total=len(groups) * len(schemes), desc="bench transforms", unit="row", file=sys.stderr,
               disable=not progress)
    with bar:
        for mset, ftype in groups:
            for scheme in schemes:
                row = _row(mset, ftype, scheme, repeat, number, rng, seed)
                rows.append(row | {"ceiling_us": row["mean_size"] / rate * 1e6})
                bar.update()
    df = pd.DataFrame(rows)
    df.attrs.update(machine=machine_info(), bulk_rate=rate, note=_ceiling_note(rate),
                    elapsed_s=time.perf_counter() - began)
    return df


def _row(mset: MediaSet, ftype: str, scheme: str, repeat: int, number: int | None,
         rng: random.Random, seed: int) -> dict[str, object]:
    types = mset.frame_types()
    chosen = [f for f, t in zip(mset.frames, types) if t == ftype]
    sizes = [len(f.data) for f in chosen]
    added = measured_overhead(mset.frames, scheme, seed)
    predicted = predicted_overhead(scheme, len(mset.frames))
    mine = [a for a, t in zip(added, types) if t == ftype]
    row: dict[str, object] = {
        "media": mset.name, "kind": mset.kind, "width": mset.width, "height": mset.height, "fps": mset.fps,
        "frame_type": ftype, "scheme": scheme, "suite": scheme_suite(scheme), "frames": len(chosen),
        "mean_size": sum(sizes) / len(sizes), "min_size": min(sizes), "max_size": max(sizes),
        "overhead_bytes": sum(mine) / len(mine),
        "overhead_predicted": sum(p for p, t in zip(predicted, types) if t == ftype) / len(mine),
    }
    row["overhead_pct"] = 100 * row["overhead_bytes"] / row["mean_size"]
    row["bitrate_kbps"] = mset.bitrate_bps / 1000
    row["overhead_kbps"] = sum(added) / len(added) * 8 * mset.fps / 1000
    row["overhead_bitrate_pct"] = 100 * row["overhead_kbps"] / row["bitrate_kbps"]
    return row | _timing_columns(chosen, scheme, mset.fps, repeat, number, rng)


def _timing_columns(frames: list[EncodedFrame], scheme: str, fps: int, repeat: int, number: int | None,
                    rng: random.Random) -> dict[str, object]:
    if number is None:
        sender = scheme_transform(scheme).sender
        cap = max(1, POOL_BYTES // sum(len(f.data) for f in frames))
        number = calibrate(lambda: [sender.transform(f) for f in frames], cap, TRANSFORM_TARGET_SECONDS)
    timings = measure(_transform_cases(frames, scheme, number, rng), repeat, number * len(frames))
    row: dict[str, object] = {}
    for name, (median, iqr) in timings.items():
        row[f"{name}_us"], row[f"{name}_iqr_us"] = median, iqr
    row["ratio_gcm"] = (row["protect_us"] + row["unprotect_us"]) / (row["gcm_encrypt_us"] + row["gcm_decrypt_us"])
    row["core_pct_send"] = row["protect_us"] * fps / 1e4  # µs per frame × frames/s / 1e6 s × 100 %
    row["core_pct_recv"] = row["unprotect_us"] * fps / 1e4
    row["core_pct"] = row["core_pct_send"] + row["core_pct_recv"]
    return row | {"number": number, "repeat": repeat}


def _ceiling_note(rate: float) -> str:
    """One line on the ceiling column: what it is, the rate and the OpenSSL it came from."""
    if math.isnan(rate):
        return "ceiling skipped (ceiling=False)"
    return (f"ceiling µs = frame bytes / AES-128-GCM bulk rate {rate / 1e9:.2f} GB/s (AESGCM.encrypt of "
            f"{BULK_BYTES // 2**20} MiB buffers, {machine_info()['openssl']} via cryptography): "
            "the cipher alone, no per-call cost")


def format_transforms(df: pd.DataFrame) -> str:
    """A readable table of a :func:`bench_transforms` result, with the machine and notes on top."""
    fmt = "{:.2f}".format
    table = pd.DataFrame({
        "media": df["media"], "type": df["frame_type"], "scheme": df["scheme"],
        "n": df["frames"], "mean B": df["mean_size"].map("{:.0f}".format),
        "+B": df["overhead_bytes"].map("{:.1f}".format),
        "% frame": df["overhead_pct"].map(fmt), "% bitrate": df["overhead_bitrate_pct"].map(fmt),
        "protect µs": df["protect_us"].map(fmt), "unprotect µs": df["unprotect_us"].map(fmt),
        "IQR p/u": [f"{p:.2f}/{u:.2f}" for p, u in zip(df["protect_iqr_us"], df["unprotect_iqr_us"])],
        "gcm enc/dec µs": [f"{e:.2f}/{d:.2f}" for e, d in zip(df["gcm_encrypt_us"], df["gcm_decrypt_us"])],
        "ceiling µs": df["ceiling_us"].map(lambda v: "" if math.isnan(v) else f"{v:.2f}"),
        "core % @fps": df["core_pct"].map("{:.3f}".format),
    })
    machine = df.attrs.get("machine", {})
    head = ", ".join(f"{k}: {v}" for k, v in machine.items())
    rates = ", ".join(f"{m} {b:.0f} kbit/s @ {f} fps" for m, b, f in
                      df.drop_duplicates("media")[["media", "bitrate_kbps", "fps"]].itertuples(index=False))
    return (f"{head}\n{df.attrs.get('note', '')}\nmedia: {rates}\n"
            f"median of {int(df['repeat'].iloc[0])} runs; µs per frame; +B = bytes added per frame; "
            f"core % = protect + unprotect at the medium's fps\n{table.to_string(index=False)}")
