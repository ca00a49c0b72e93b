"""What every benchmark shares: the machine description, the timing loop, calibration, spreads.

A timed *case* is a ``setup()`` that returns the loop to time; :func:`measure` calls every case's
setup untimed before each run, times the loop with ``time.perf_counter``, and interleaves the runs
of all cases of one row so drifting CPU speed (turbo, other processes) hits them alike. Figures
are medians with the inter-quartile range as the spread. :func:`openssl_speed` asks the
``openssl`` binary for its AES-128-GCM throughput (``openssl speed -evp aes-128-gcm -bytes N``),
the ceiling a C loop reaches without Python in the way.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as _openssl

TARGET_SECONDS = 0.02  # aim for this long per timed run when ``number`` is not given
POOL_BYTES = 32 * 2**20  # cap on the frames prepared in advance for one row
KID = 1  # a small KID, as with per-sender keys in a small call

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


# --- openssl speed: the ceiling of a C loop -------------------------------------------------------

_MR_RESULT = re.compile(r"^\+F:\d+:(?P<name>[^:]+):(?P<rates>[\d.:]+)\s*$", re.MULTILINE)


def openssl_binary() -> str | None:
    """Path of the ``openssl`` command, or None when it is not installed."""
    return shutil.which("openssl")


def openssl_binary_version() -> str | None:
    """``openssl version`` of the binary (may differ from cryptography's bundled OpenSSL), or None."""
    binary = openssl_binary()
    if binary is None:
        return None
    done = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or None


def parse_openssl_speed(output: str) -> float:
    """Bytes per second from ``openssl speed -mr`` output (its ``+F:n:NAME:rate`` line).

    Raises:
        ValueError: no result line in ``output``.
    """
    match = _MR_RESULT.search(output)
    if match is None:
        raise ValueError("no '+F:' result line in the openssl speed output")
    return float(match["rates"].split(":")[0])


def openssl_speed(size: int, seconds: int = 1) -> float | None:
    """AES-128-GCM encryption throughput (bytes/s) of the ``openssl`` binary for ``size``-byte buffers.

    Runs ``openssl speed -evp aes-128-gcm -bytes size -seconds seconds -mr``: one EVP cipher
    context encrypting buffer after buffer (no per-call IV/tag setup, no Python), i.e. a ceiling.
    Returns None when the binary is absent.

    Raises:
        ValueError: ``size`` or ``seconds`` below 1, or output without a result line.
    """
    if size < 1 or seconds < 1:
        raise ValueError(f"size and seconds must be at least 1, got {size} and {seconds}")
    binary = openssl_binary()
    if binary is None:
        return None
    args = [binary, "speed", "-evp", "aes-128-gcm", "-bytes", str(size), "-seconds", str(seconds), "-mr"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60 + 10 * seconds)
    return parse_openssl_speed(done.stdout)
