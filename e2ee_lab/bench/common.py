"""What every benchmark shares: the machine description, the timing loop, calibration, spreads.

A timed *case* is a ``setup()`` that returns the loop to time; :func:`measure` calls every case's
setup untimed before each run, times the loop with ``time.perf_counter``, and interleaves the runs
of all cases of one row so drifting CPU speed (turbo, other processes) hits them alike. Figures
are medians with the inter-quartile range as the spread. :func:`aesgcm_bulk_rate` is the ceiling
the benchmarks draw under their per-frame figures: the bytes per second AES-128-GCM (NIST SP 800-38D,
the cipher of SFrame suite 4, RFC 9605 §4.5) reaches through ``cryptography`` and the OpenSSL it
bundles (the same library every timing here goes through) on a 1 MiB buffer, where the cost of
the call itself no longer shows.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as _openssl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TARGET_SECONDS = 0.02  # aim for this long per timed run when ``number`` is not given
POOL_BYTES = 32 * 2**20  # cap on the frames prepared in advance for one row
KID = 1  # a small KID, as with per-sender keys in a small call
BULK_BYTES = 2**20  # buffer size of the AES-GCM bulk rate: large enough that the per-call cost vanishes

# A timed case: setup() is called (untimed) before each run and returns the loop to time.
Case = Callable[[], Callable[[], None]]


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


def median_iqr(samples: Sequence[float]) -> tuple[float, float]:
    """Median and inter-quartile range of ``samples`` (IQR 0 for a single sample)."""
    if len(samples) < 2:
        return samples[0], 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return statistics.median(samples), q3 - q1


def measure(cases: dict[str, Case], repeat: int, number: int) -> dict[str, tuple[float, float]]:
    """Median and IQR in µs per operation for each case, runs interleaved, after one warm-up.

    ``number`` is how many operations one run of a case's loop performs.
    """
    for setup in cases.values():
        setup()()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, setup in cases.items():
            loop = setup()
            start = time.perf_counter()
            loop()
            samples[name].append((time.perf_counter() - start) / number * 1e6)
    return {name: median_iqr(values) for name, values in samples.items()}


def calibrate(op: Callable[[], object], memory_cap: int, target: float = TARGET_SECONDS,
              minimum: int = 1) -> int:
    """Repetitions of ``op`` per run so a run lasts about ``target`` s, within the memory cap."""
    start, count = time.perf_counter(), 0
    while count < 3 or time.perf_counter() - start < 0.001:
        op()
        count += 1
    each = (time.perf_counter() - start) / count
    return max(minimum, min(math.ceil(target / each), memory_cap, 100_000))


def check_counts(repeat: int, number: int | None) -> None:
    """Raise ValueError unless ``repeat`` >= 1 and ``number`` is None or >= 1."""
    if repeat < 1 or (number is not None and number < 1):
        raise ValueError("repeat and number must be at least 1")


# --- the ceiling: AES-GCM's bulk rate through the same library ---------------------------------------


def aesgcm_bulk_rate(buffer_bytes: int = BULK_BYTES, repeat: int = 9, key_bytes: int = 16) -> float:
    """Bytes per second of ``AESGCM.encrypt`` on one ``buffer_bytes`` buffer, median of ``repeat`` calls.

    The pure cipher cost of ``cryptography``'s bundled OpenSSL (AES-NI where the CPU has it): on a
    1 MiB buffer the fixed cost of a call (argument checks, context set-up, the tag: about half a
    microsecond) is well under 1 % of the time, so ``n / rate`` is what encrypting ``n`` bytes costs with no per-call
    overhead, a ceiling no per-frame call reaches. About 1 ms per call at 1 GB/s, 0.1 ms at 10 GB/s;
    one untimed call first. ``key_bytes`` 16 is AES-128-GCM (SFrame suite 4), 32 AES-256-GCM.

    Raises:
        ValueError: ``buffer_bytes`` or ``repeat`` below 1, or a key length AES-GCM does not take.
    """
    if buffer_bytes < 1 or repeat < 1:
        raise ValueError(f"buffer_bytes and repeat must be at least 1, got {buffer_bytes} and {repeat}")
    aead = AESGCM(os.urandom(key_bytes))  # ValueError for a key length other than 16, 24 or 32
    data = bytes(buffer_bytes)  # zeros: AES-GCM's speed does not depend on the plaintext
    nonces = [os.urandom(12) for _ in range(repeat + 1)]
    aead.encrypt(nonces[-1], data, None)
    seconds = []
    for nonce in nonces[:-1]:  # a fresh nonce per call: never the same (key, nonce) twice
        start = time.perf_counter()
        aead.encrypt(nonce, data, None)
        seconds.append(time.perf_counter() - start)
    return buffer_bytes / statistics.median(seconds)
