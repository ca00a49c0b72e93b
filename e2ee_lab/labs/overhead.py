"""Notebook 08 (crypto overhead and SFU capacity): the benchmark runs, their tables and the task checks.

The notebook measures, on the student's machine, what end-to-end encryption costs: the bytes each
frame transform adds (RFC 9605 §4.3 header + tag; Appendix B's overhead formula), the CPU time per
frame against frame size next to the bare AES-GCM call, and how many SRTP packets per second one
core of the lab's SFU forwards in ``dtls-srtp`` and ``e2ee`` calls (RFC 3711 SRTP per leg, RFC 7667
§3.7 selective forwarding). The runs are :mod:`e2ee_lab.bench`'s, sized by ``E2EE_LAB_SIZE``
(:func:`~e2ee_lab.config.lab_size`): ``ci`` keeps the whole notebook under half a minute, ``full`` is
the classroom run (a few minutes at most). The three task checks are exact computations, not
measurements, so they give the same verdict on every machine.
"""

from __future__ import annotations

import math

import pandas as pd

from e2ee_lab.bench import bench_sfu, bench_transforms
from e2ee_lab.bench.frames import MEDIA
from e2ee_lab.config import Size, lab_size
from e2ee_lab.labs import Feedback, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import Choice, Choices, Sealed, real_number

# Benchmark settings per lab size: ci is for the test suite, full for the classroom.
TRANSFORM_SETTINGS: dict[str, dict[str, object]] = {
    "ci": {"media": ("opus", "vp8-320x240"), "frames": 6, "repeat": 2, "number": 1},
    "full": {"media": MEDIA, "frames": 30, "repeat": 5},
}
SFU_SETTINGS: dict[str, dict[str, object]] = {
    "ci": {"rooms": (2, 4), "repeat": 1, "target": 1_500},
    "full": {"rooms": (2, 4, 8, 16), "repeat": 3, "target": 20_000},
}


def run_transforms(size: Size | None = None) -> pd.DataFrame:
    """:func:`~e2ee_lab.bench.bench_transforms` at the lab size's settings (no progress bar)."""
    return bench_transforms(**TRANSFORM_SETTINGS[size or lab_size()], progress=False)


def run_sfu(size: Size | None = None) -> pd.DataFrame:
    """:func:`~e2ee_lab.bench.bench_sfu` at the lab size's settings (no progress bar)."""
    return bench_sfu(**SFU_SETTINGS[size or lab_size()], progress=False)


def overhead_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Bytes per frame, kbit/s and % of the bit rate each scheme adds, per medium (from bench transforms)."""
    rows = df.drop_duplicates(["media", "scheme"])
    table = rows.pivot(index="scheme", columns="media", values="overhead_kbps").round(2)
    table = table.loc[list(dict.fromkeys(rows["scheme"])), list(dict.fromkeys(rows["media"]))]
    table.columns = [f"{m} kbit/s" for m in table.columns]
    share = rows.pivot(index="scheme", columns="media", values="overhead_bitrate_pct").round(2)
    for media in dict.fromkeys(rows["media"]):
        table[f"{media} % of bit rate"] = share[media]
    table.insert(0, "bytes per frame", df.groupby("scheme", sort=False)["overhead_bytes"].mean().round(1))
    return table


def cpu_summary(df: pd.DataFrame, scheme: str = "sframe-4") -> pd.DataFrame:
    """µs per frame of ``scheme`` against frame size, next to the bare AES-GCM call and the ceiling.

    The ceiling is the frame's size at AES-128-GCM's bulk rate through the same ``cryptography``
    (``ceiling_us`` of :func:`~e2ee_lab.bench.bench_transforms`): the cipher with no per-call cost.
    """
    rows = df[df["scheme"] == scheme].sort_values("mean_size")
    table = pd.DataFrame({
        "medium": rows["media"], "frame": rows["frame_type"], "bytes": rows["mean_size"].round(0).astype(int),
        "protect µs": rows["protect_us"].round(2), "unprotect µs": rows["unprotect_us"].round(2),
        "AES-GCM µs": rows["gcm_encrypt_us"].round(2), "ceiling µs": rows["ceiling_us"].round(2),
        "% of a core at fps": rows["core_pct"].round(3),
    })
    return table.reset_index(drop=True)


def sfu_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per room size and mode: packets/s per core, µs per forwarded packet and the two ratios."""
    return pd.DataFrame({
        "participants": df["participants"], "mode": df["mode"],
        "packets/s per core": df["pps_per_core"].round(0).astype(int),
        "µs per packet": df["us_per_packet"].round(2), "x bare": df["ratio_bare"].round(2),
        "e2ee / dtls-srtp": df["ratio_e2ee"].round(3),
    })


# --- Task 1: SFrame overhead in kbit/s (RFC 9605 Appendix B) ------------------------------------------

TASK1_FPS, TASK1_BITRATE_KBPS = 30, 400  # a 360p video stream, one SFrame ciphertext per frame
TASK1_HEADER, TASK1_TAG = 1 + 2 + 3, 16  # config byte, 2-byte KID, 3-byte CTR (Appendix B); suite 4 tag


def appendix_b_kbps(header_bytes: int, tag_bytes: int, per_second: float) -> float:
    """RFC 9605 Appendix B: ``(header + tag) * 8 * ciphertexts per second / 1024`` kbit/s."""
    return (header_bytes + tag_bytes) * 8 * per_second / 1024


TASK1_TOLERANCE = 0.01  #: answers within 1 % pass (up to 2 %: the seal holds 1 %-wide buckets)


def _sealed_mistake(seal: Sealed, undos: list[tuple[float, str]], tol: float) -> str | None:
    """The hint of the first mistake whose undoing (a value) opens ``seal``."""
    return next((hint for value, hint in undos if seal.opens_number(value, tol) is not None), None)


@check
def check_overhead_kbps(answer: float | None) -> Feedback:
    """Task 1: SFrame overhead of a 30 fps, 400 kbit/s video stream in kbit/s (Appendix B; sealed:
    ``08/T1``, and ``08/T1/si`` for 1 kbit = 1000 bits)."""
    if answer is None:
        return unanswered("Task 1")
    x = real_number(answer)
    if x is None or x <= 0:
        return not_yet("give the overhead as a positive number of kbit/s, e.g. 1.5.")
    seal = Sealed("08/T1")
    for key in ("08/T1", "08/T1/si"):
        if (message := Sealed(key).opens_number(x, TASK1_TOLERANCE)) is not None:
            return correct(message)
    hint = _sealed_mistake(seal, [
        (x * 8, "that is kbyte/s: multiply the bytes by 8 to get bits."),
        (x * 8 / 1024, "that is bytes per second: multiply by 8 and divide by 1024 for kbit/s."),
        (x / 1024, "that is bit/s: divide by 1024 for kbit/s."),
        (x * TASK1_BITRATE_KBPS / 100, "that is the share of the bit rate in %: the task asks for kbit/s."),
        (x * TASK1_FPS / 50, "50 per second is the audio frame rate; this video stream has 30 frames per second."),
    ], TASK1_TOLERANCE)
    if hint is None and math.isclose(x, appendix_b_kbps(0, TASK1_TAG, TASK1_FPS), rel_tol=0.01):
        hint = "that is the tag alone: the header (config byte, KID, CTR) travels with every frame too."
    if hint is None and math.isclose(x, appendix_b_kbps(TASK1_HEADER, 0, TASK1_FPS), rel_tol=0.01):
        hint = "that is the header alone: add the 16-byte tag."
    return not_yet(hint or f"{answer} kbit/s is not it: (header + tag) bytes per frame x 8 bits x frames per "
                           "second / 1024. The bit rate (400 kbit/s) does not change the overhead, only its share.")


# --- Task 2: does e2ee change the SFU's cost per packet? ------------------------------------------------

#: Task 2's statements, lettered (a, b, ...) in each student's own order.
TASK2_OPTIONS = Choices("08/T2", {
    "sframe-reencrypt": Choice(
        "Yes, much more: in e2ee the SFU has to decrypt and re-encrypt the SFrame layer of every frame it "
        "forwards.",
        "the SFU holds no SFrame key (RFC 9605 §5: keys come from the members' key agreement), so it "
        "cannot decrypt the frames at all, let alone re-encrypt them."),
    "sframe-parse": Choice(
        "Yes, somewhat: the SFU has to parse and check each SFrame header and tag before it can forward the "
        "packet.",
        "the SFU forwards RTP payloads as opaque bytes in both modes; nothing in its hot path looks at "
        "the SFrame header or the ciphertext."),
    "same-work": Choice(
        "No, only within noise: in both modes the SFU does the same SRTP work and header rewriting, and "
        "never touches SFrame.",
        "look at what the SFU's hot path does per packet in each mode: which steps differ?"),
    "no-srtp": Choice(
        "No, less: in e2ee the packets between the participants and the SFU carry no SRTP, so the SFU does "
        "less work.",
        "SRTP stays on every leg in both modes (hop-by-hop, RFC 5764 keys); SFrame adds a layer inside "
        "it, it replaces nothing."),
}, lower=True)


@check
def check_sfu_cost(answer: str | None, df: pd.DataFrame | None = None) -> Feedback:
    """Task 2: which of :data:`TASK2_OPTIONS` is right (sealed: ``08/T2``; ``df``: a bench_sfu result
    to quote)."""
    verdict = TASK2_OPTIONS.verdict(answer, "Task 2")
    if verdict.ok and isinstance(df, pd.DataFrame) and "ratio_e2ee" in df and df["ratio_e2ee"].notna().any():
        ratios = df["ratio_e2ee"].dropna()
        return correct(f"{verdict.message} Your run: e2ee / dtls-srtp = {ratios.min():.2f} to "
                       f"{ratios.max():.2f} across room sizes.")
    return verdict


# --- Task 3: share of a core that SFrame takes ----------------------------------------------------------

TASK3_STREAMS = {"video": (3, 30, 6.0), "audio": (3, 50, 2.0)}  # kind: (streams, frames/s, µs per unprotect)
TASK3_TOLERANCE = 0.01


def core_share_pct(streams: dict[str, tuple[int, int, float]] = TASK3_STREAMS) -> float:
    """% of one core for ``streams`` (kind: count, frames per second, µs per frame)."""
    return sum(count * fps * us for count, fps, us in streams.values()) / 1e6 * 100


@check
def check_core_share(answer: float | None) -> Feedback:
    """Task 3: % of one core a receiver spends on SFrame unprotect for :data:`TASK3_STREAMS` (sealed:
    ``08/T3``)."""
    if answer is None:
        return unanswered("Task 3")
    x = real_number(answer)
    if x is None or x <= 0:
        return not_yet("give the share as a positive number in %, e.g. 1.5 for 1.5 %.")
    seal = Sealed("08/T3")
    if (message := seal.opens_number(x, TASK3_TOLERANCE)) is not None:
        return correct(message)
    video, audio = TASK3_STREAMS["video"], TASK3_STREAMS["audio"]
    hint = _sealed_mistake(seal, [
        (x * 100, "that is a fraction of a core; the task asks for %, so multiply by 100."),
        (x / 1e4, "that is µs of CPU per second; divide by 10^6 µs and multiply by 100 for %."),
        (x + core_share_pct({"audio": audio}), "that is the video alone: the three audio streams need unprotect too."),
        (x + core_share_pct({"video": video}), "that is the audio alone: add the three video streams."),
        (x * 3, "that is one publisher: the receiver decrypts the streams of all three others."),
        (x + core_share_pct({"audio": (audio[0], audio[1] - 30, audio[2])}),
         "Opus sends 50 frames per second (20 ms each), not 30."),
    ], TASK3_TOLERANCE)
    return not_yet(hint or f"{answer} % is not it: add up streams x frames per second x µs per frame for video "
                           "and audio, then divide by 10^6 µs per second and multiply by 100.")
