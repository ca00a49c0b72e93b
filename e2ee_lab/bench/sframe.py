"""SFrame protect/unprotect (RFC 9605 §4.4.3) against the bare primitives, per suite and size.

``bench_sframe`` times SFrame protect/unprotect for each cipher suite and plaintext size against the
bare ``cryptography`` AES-GCM encrypt/decrypt of the same plaintext, measured in the same run, and
for the AES-CTR + HMAC suites (§4.5.1) also against a bare AES-CTR + HMAC. Each figure is the
median over ``repeat`` timed runs of ``number`` operations after a warm-up, the runs of one row
interleaved (:func:`e2ee_lab.bench.common.measure`). ``peer="wrtc"`` adds libwebrtc's native
SFrame (PyPI ``wrtc``, :mod:`e2ee_lab.interop`) on the same keys and plaintexts, timed in the same
interleaved runs, so one table holds e2ee_lab, libwebrtc and the bare primitive. libwebrtc's
receiver keeps no replay window (the lab's does); that is part of what is measured.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Iterable

import pandas as pd
from cryptography.hazmat.primitives import constant_time, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tqdm.auto import tqdm

from e2ee_lab.bench.common import KID, POOL_BYTES, Case, calibrate, check_counts, machine_info, measure
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext

DEFAULT_SIZES = (100, 1_000, 10_000, 100_000)  # bytes: an Opus frame up to a large video frame
# Goals for suite 4: (protect + unprotect) / (bare encrypt + decrypt) at most this at a size.
SFRAME_GOALS = {(CipherSuite.AES_128_GCM_SHA256_128, 1_000): 2.0,
                (CipherSuite.AES_128_GCM_SHA256_128, 10_000): 1.5}


PEERS = ("wrtc",)  # other SFrame implementations bench_sframe can put beside the lab's


def _wrtc_cases(suite: CipherSuite, plaintext: bytes, frames: list[bytes], base_key: bytes) -> dict[str, Case]:
    """libwebrtc's SFrameTransform protect/unprotect on the same key, KID and frames."""
    from e2ee_lab.interop import WrtcSFrame

    sender = WrtcSFrame(suite, encrypting=True)
    sender.set_key(KID, base_key)
    receiver = WrtcSFrame(suite, encrypting=False)
    receiver.set_key(KID, base_key)

    def protect() -> None:
        for _ in frames:
            sender.protect(plaintext)

    def unprotect() -> None:
        for frame in frames:
            receiver.unprotect(frame)
    return {"wrtc_protect": lambda: protect, "wrtc_unprotect": lambda: unprotect}


def _sframe_cases(suite: CipherSuite, plaintext: bytes, number: int, rng: random.Random,
                  peer: str | None = None) -> dict[str, Case]:
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
    if peer == "wrtc":
        cases.update(_wrtc_cases(suite, plaintext, frames, base_key))
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
                 progress: bool = True, peer: str | None = None) -> pd.DataFrame:
    """Time SFrame protect/unprotect per suite and frame size against bare AES-GCM (and CTR+HMAC).

    Args:
        sizes: plaintext sizes in bytes.  suites: cipher suite ids.  repeat: timed runs per figure.
        number: operations per run (default: calibrated to ~5 ms per run).  seed: keys and data.
        progress: show a tqdm bar on stderr.  peer: ``"wrtc"`` adds libwebrtc's native SFrame
        (``ImportError`` with the reason when wrtc is absent, ``ValueError`` for another name).
    Returns:
        One row per (suite, size). Columns: ``suite``, ``name``, ``size`` (bytes), ``number``,
        ``repeat``; ``protect_us``/``unprotect_us`` and ``gcm_encrypt_us``/``gcm_decrypt_us``
        (median µs per operation, each with an ``*_iqr_us`` spread); ``ratio_gcm`` =
        (protect + unprotect) / (gcm encrypt + decrypt); for suites 1-3 also
        ``ctr_hmac_encrypt_us``/``ctr_hmac_decrypt_us`` and ``ratio_ctr_hmac`` (NaN otherwise);
        ``goal`` (the ratio_gcm limit where one is set, else NaN) and ``goal_met``. With
        ``peer="wrtc"`` also ``wrtc_protect_us``/``wrtc_unprotect_us`` and ``ratio_wrtc`` =
        (lab protect + unprotect) / (wrtc protect + unprotect).
        ``df.attrs["machine"]`` holds :func:`machine_info`.
    """
    check_counts(repeat, number)
    if peer is not None and peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    if peer == "wrtc":
        from e2ee_lab.interop import import_wrtc

        import_wrtc()  # ImportError with the reason, before any timing starts
    began = time.perf_counter()
    rng = random.Random(seed)
    combos = [(CipherSuite(s), int(n)) for s in suites for n in sizes]
    rows = []
    for suite, size in tqdm(combos, desc="bench sframe", unit="row", file=sys.stderr, disable=not progress):
        rows.append(_sframe_row(suite, size, repeat, number, rng, peer))
    df = pd.DataFrame(rows)
    df.attrs["machine"] = machine_info()
    df.attrs["elapsed_s"] = time.perf_counter() - began
    return df


def _sframe_row(suite: CipherSuite, size: int, repeat: int, number: int | None,
                rng: random.Random, peer: str | None = None) -> dict[str, object]:
    plaintext = rng.randbytes(size)
    if number is None:
        probe = SFrameContext(suite)
        probe.add_send_key(KID, rng.randbytes(16))
        number = calibrate(lambda: probe.protect(KID, plaintext), POOL_BYTES // max(size, 1), minimum=5)
    timings = measure(_sframe_cases(suite, plaintext, number, rng, peer), repeat, number)
    row: dict[str, object] = {"suite": int(suite), "name": suite.name, "size": size,
                              "number": number, "repeat": repeat}
    for name, (median, iqr) in timings.items():
        row[f"{name}_us"], row[f"{name}_iqr_us"] = median, iqr
    sframe = row["protect_us"] + row["unprotect_us"]
    row["ratio_gcm"] = sframe / (row["gcm_encrypt_us"] + row["gcm_decrypt_us"])
    row["ratio_ctr_hmac"] = (sframe / (row["ctr_hmac_encrypt_us"] + row["ctr_hmac_decrypt_us"])
                             if suite.is_ctr_hmac else math.nan)
    if peer == "wrtc":
        row["ratio_wrtc"] = sframe / (row["wrtc_protect_us"] + row["wrtc_unprotect_us"])
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
        **_wrtc_columns(df),
        "spread (IQR) µs p/u": [f"{p:.2f}/{u:.2f}"
                                for p, u in zip(df["protect_iqr_us"], df["unprotect_iqr_us"])],
        "goal": [("" if g is None else f"≤{lim:.1f} {'met' if g else 'MISSED'}")
                 for g, lim in zip(df["goal_met"], df["goal"])],
    })
    machine = df.attrs.get("machine", {})
    if "ratio_wrtc" in df:
        table = table[[c for c in table if c not in ("spread (IQR) µs p/u", "goal")]]
    head = ", ".join(f"{k}: {v}" for k, v in machine.items())
    legend = "suites: " + ", ".join(f"{s.value} {s.name}" for s in CipherSuite if s.value in set(df["suite"]))
    return f"{head}\n{legend}\nmedian of {int(df['repeat'].iloc[0])} runs; ratio = (protect + unprotect) / " \
           f"(bare encrypt + decrypt)\n{table.to_string(index=False)}"


def _wrtc_columns(df: pd.DataFrame) -> dict[str, object]:
    """The libwebrtc columns of the table, when the run had ``peer="wrtc"``."""
    if "ratio_wrtc" not in df:
        return {}
    return {"wrtc protect µs": df["wrtc_protect_us"].map("{:.2f}".format),
            "wrtc unprotect µs": df["wrtc_unprotect_us"].map("{:.2f}".format),
            "lab/wrtc": df["ratio_wrtc"].map("{:.2f}".format)}
