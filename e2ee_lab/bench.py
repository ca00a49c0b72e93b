"""Benchmarks: what the lab's layers cost next to the bare primitives, measured on this machine.

``bench_sframe`` times SFrame protect/unprotect (RFC 9605 §4.4.3) for each cipher suite and frame
size against the bare ``cryptography`` AES-GCM encrypt/decrypt of the same plaintext, measured in
the same run, and for the AES-CTR + HMAC suites (§4.5.1) also against a bare AES-CTR + HMAC. Each
figure is the median over ``repeat`` timed runs of ``number`` operations after a warm-up, and the
runs of one row are interleaved so drifting CPU speed hits SFrame and baseline alike. Results are
pandas DataFrames; :data:`BENCHMARKS` is the registry the ``e2ee-lab bench`` command reads, so a
new benchmark is one entry there.
"""

from __future__ import annotations

import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cryptography
import pandas as pd
from cryptography.hazmat.backends.openssl.backend import backend as _openssl
from cryptography.hazmat.primitives import constant_time, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm.auto import tqdm

from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext

DEFAULT_SIZES = (100, 1_000, 10_000, 100_000)  # bytes: an Opus frame up to a large video frame
TARGET_SECONDS = 0.02  # aim for this long per timed run when ``number`` is not given
POOL_BYTES = 32 * 2**20  # cap on the frames prepared in advance for one row
# Goals for suite 4: (protect + unprotect) / (bare encrypt + decrypt) at most this at a size.
SFRAME_GOALS = {(CipherSuite.AES_128_GCM_SHA256_128, 1_000): 2.0,
                (CipherSuite.AES_128_GCM_SHA256_128, 10_000): 1.5}
KID = 1  # a small KID, as with per-sender keys in a small call


def machine_info() -> dict[str, object]:
    """CPU model, AES-NI flag, cores, Python, OpenSSL and cryptography versions of this machine."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "aes_ni": "aes" in flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "openssl": _openssl.openssl_version_text(),
        "cryptography": cryptography.__version__,
        "platform": platform.platform(terse=True),
    }


def _median_iqr(samples: Sequence[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return statistics.median(samples), q3 - q1


# A timed case: setup() is called (untimed) before each run and returns the loop to time.
Case = Callable[[], Callable[[], None]]


def _measure(cases: dict[str, Case], repeat: int, number: int) -> dict[str, tuple[float, float]]:
    """Median and IQR in µs per operation for each case, runs interleaved, after one warm-up."""
    for setup in cases.values():
        setup()()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, setup in cases.items():
            loop = setup()
            start = time.perf_counter()
            loop()
            samples[name].append((time.perf_counter() - start) / number * 1e6)
    return {name: _median_iqr(values) for name, values in samples.items()}


def _calibrate(op: Callable[[], object], memory_cap: int) -> int:
    """Operations per run so a run lasts about TARGET_SECONDS, within the memory cap."""
    start, count = time.perf_counter(), 0
    while count < 3 or time.perf_counter() - start < 0.001:
        op()
        count += 1
    each = (time.perf_counter() - start) / count
    return max(5, min(math.ceil(TARGET_SECONDS / each), memory_cap, 100_000))


def _sframe_cases(suite: CipherSuite, plaintext: bytes, number: int, rng: random.Random) -> dict[str, Case]:
    """SFrame protect/unprotect cases (window on) and the bare baselines for one suite and size."""
    base_key = rng.randbytes(16)
    sender = SFrameContext(suite)
    sender.add_send_key(KID, base_key)
    pool_sender = SFrameContext(suite)
    pool_sender.add_send_key(KID, base_key)
    frames = [pool_sender.protect(KID, plaintext) for _ in range(number)]
    nonces = [rng.randbytes(12) for _ in range(number)]

    def protect() -> Callable[[], None]:
        def loop() -> None:
            for _ in nonces:
                sender.protect(KID, plaintext)
        return loop

    def unprotect() -> Callable[[], None]:
        receiver = SFrameContext(suite)  # a fresh replay window for every run
        receiver.add_receive_key(KID, base_key)

        def loop() -> None:
            for frame in frames:
                receiver.unprotect(frame)
        return loop

    cases = {"protect": protect, "unprotect": unprotect}
    gcm_key_len = 32 if suite is CipherSuite.AES_256_GCM_SHA512_128 else 16
    cases.update(_gcm_cases(gcm_key_len, plaintext, nonces, rng))
    if suite.is_ctr_hmac:
        cases.update(_ctr_hmac_cases(suite, plaintext, nonces, rng))
    return cases


def _gcm_cases(key_len: int, plaintext: bytes, nonces: list[bytes], rng: random.Random) -> dict[str, Case]:
    aead = AESGCM(rng.randbytes(key_len))
    sealed = [(n, aead.encrypt(n, plaintext, None)) for n in nonces]

    def encrypt() -> None:
        for n in nonces:
            aead.encrypt(n, plaintext, None)

    def decrypt() -> None:
        for n, c in sealed:
            aead.decrypt(n, c, None)
    return {"gcm_encrypt": lambda: encrypt, "gcm_decrypt": lambda: decrypt}


def _ctr_hmac_cases(suite: CipherSuite, plaintext: bytes, nonces: list[bytes],
                    rng: random.Random) -> dict[str, Case]:
    """Bare AES-CTR then HMAC over the ciphertext, tag truncated: the primitives without SFrame."""
    aes = algorithms.AES(rng.randbytes(suite.nka))
    mac = hmac.HMAC(rng.randbytes(suite.nh), suite.hash_algorithm())

    def seal(nonce: bytes) -> tuple[bytes, bytes]:
        enc = Cipher(aes, modes.CTR(nonce + bytes(4))).encryptor()
        ct = enc.update(plaintext) + enc.finalize()
        tag = mac.copy()
        tag.update(ct)
        return ct, tag.finalize()[: suite.nt]

    def open_(nonce: bytes, ct: bytes, tag: bytes) -> bytes:
        check = mac.copy()
        check.update(ct)
        if not constant_time.bytes_eq(check.finalize()[: suite.nt], tag):
            raise ValueError("tag mismatch")
        dec = Cipher(aes, modes.CTR(nonce + bytes(4))).decryptor()
        return dec.update(ct) + dec.finalize()

    sealed = [(n, *seal(n)) for n in nonces]

    def encrypt() -> None:
        for n in nonces:
            seal(n)

    def decrypt() -> None:
        for n, c, t in sealed:
            open_(n, c, t)
    return {"ctr_hmac_encrypt": lambda: encrypt, "ctr_hmac_decrypt": lambda: decrypt}


def bench_sframe(sizes: Iterable[int] = DEFAULT_SIZES, suites: Iterable[int] = tuple(CipherSuite),
                 repeat: int = 7, number: int | None = None, *, seed: int = 0,
                 progress: bool = True) -> pd.DataFrame:
    """Time SFrame protect/unprotect per suite and frame size against bare AES-GCM (and CTR+HMAC).

    Args:
        sizes: plaintext sizes in bytes.  suites: cipher suite ids.  repeat: timed runs per figure.
        number: operations per run (default: calibrated to ~5 ms per run).  seed: keys and data.
        progress: show a tqdm bar on stderr.
    Returns:
        One row per (suite, size). Columns: ``suite``, ``name``, ``size`` (bytes), ``number``,
        ``repeat``; ``protect_us``/``unprotect_us`` and ``gcm_encrypt_us``/``gcm_decrypt_us``
        (median µs per operation, each with an ``*_iqr_us`` spread); ``ratio_gcm`` =
        (protect + unprotect) / (gcm encrypt + decrypt); for suites 1-3 also
        ``ctr_hmac_encrypt_us``/``ctr_hmac_decrypt_us`` and ``ratio_ctr_hmac`` (NaN otherwise);
        ``goal`` (the ratio_gcm limit where one is set, else NaN) and ``goal_met``.
        ``df.attrs["machine"]`` holds :func:`machine_info`.
    """
    if repeat < 1 or (number is not None and number < 1):
        raise ValueError("repeat and number must be at least 1")
    rng = random.Random(seed)
    combos = [(CipherSuite(s), int(n)) for s in suites for n in sizes]
    rows = []
    for suite, size in tqdm(combos, desc="bench sframe", unit="row", file=sys.stderr, disable=not progress):
        rows.append(_sframe_row(suite, size, repeat, number, rng))
    df = pd.DataFrame(rows)
    df.attrs["machine"] = machine_info()
    return df


def _sframe_row(suite: CipherSuite, size: int, repeat: int, number: int | None,
                rng: random.Random) -> dict[str, object]:
    plaintext = rng.randbytes(size)
    if number is None:
        probe = SFrameContext(suite)
        probe.add_send_key(KID, rng.randbytes(16))
        number = _calibrate(lambda: probe.protect(KID, plaintext), POOL_BYTES // max(size, 1))
    timings = _measure(_sframe_cases(suite, plaintext, number, rng), repeat, number)
    row: dict[str, object] = {"suite": int(suite), "name": suite.name, "size": size,
                              "number": number, "repeat": repeat}
    for name, (median, iqr) in timings.items():
        row[f"{name}_us"], row[f"{name}_iqr_us"] = median, iqr
    sframe = row["protect_us"] + row["unprotect_us"]
    row["ratio_gcm"] = sframe / (row["gcm_encrypt_us"] + row["gcm_decrypt_us"])
    row["ratio_ctr_hmac"] = (sframe / (row["ctr_hmac_encrypt_us"] + row["ctr_hmac_decrypt_us"])
                             if suite.is_ctr_hmac else math.nan)
    goal = SFRAME_GOALS.get((suite, size))
    row["goal"] = math.nan if goal is None else goal
    row["goal_met"] = None if goal is None else bool(row["ratio_gcm"] <= goal)
    return row


def format_sframe(df: pd.DataFrame) -> str:
    """A readable table of a :func:`bench_sframe` result, with the machine on top."""
    table = pd.DataFrame({
        "suite": df["suite"],
        "size B": df["size"],
        "protect µs": df["protect_us"].map("{:.2f}".format),
        "unprotect µs": df["unprotect_us"].map("{:.2f}".format),
        "gcm enc µs": df["gcm_encrypt_us"].map("{:.2f}".format),
        "gcm dec µs": df["gcm_decrypt_us"].map("{:.2f}".format),
        "ratio vs gcm": df["ratio_gcm"].map("{:.2f}".format),
        "ratio vs ctr+hmac": df["ratio_ctr_hmac"].map(lambda r: "" if math.isnan(r) else f"{r:.2f}"),
        "spread (IQR) µs p/u": [f"{p:.2f}/{u:.2f}"
                                for p, u in zip(df["protect_iqr_us"], df["unprotect_iqr_us"])],
        "goal": [("" if g is None else f"≤{lim:.1f} {'met' if g else 'MISSED'}")
                 for g, lim in zip(df["goal_met"], df["goal"])],
    })
    machine = df.attrs.get("machine", {})
    head = ", ".join(f"{k}: {v}" for k, v in machine.items())
    legend = "suites: " + ", ".join(f"{s.value} {s.name}" for s in CipherSuite if s.value in set(df["suite"]))
    return f"{head}\n{legend}\nmedian of {int(df['repeat'].iloc[0])} runs; ratio = (protect + unprotect) / " \
           f"(bare encrypt + decrypt)\n{table.to_string(index=False)}"


@dataclass(frozen=True)
class Benchmark:
    """One entry of the ``e2ee-lab bench`` command: how to run it and how to print it."""

    run: Callable[..., pd.DataFrame]  # keyword arguments: repeat, number, progress (+ its own)
    render: Callable[[pd.DataFrame], str]
    help: str


BENCHMARKS: dict[str, Benchmark] = {
    "sframe": Benchmark(bench_sframe, format_sframe,
                        "SFrame protect/unprotect per suite and size vs bare AES-GCM / AES-CTR+HMAC"),
}
