"""Notebook 08 (crypto overhead and SFU capacity): the benchmark runs, their tables and the task checks.

The notebook measures, on the student's machine, what end-to-end encryption costs: the bytes each
frame transform adds (RFC 9605 §4.3 header + tag; Appendix B's overhead formula), the CPU time per
frame against frame size next to the bare AES-GCM call, and how many SRTP packets per second one
core of the lab's SFU forwards in ``dtls-srtp`` and ``e2ee`` calls (RFC 3711 SRTP per leg, RFC 7667
§3.7 selective forwarding). The runs are :mod:`e2ee_lab.bench`'s, sized by ``E2EE_LAB_SIZE``
(:func:`~e2ee_lab.config.lab_size`): ``ci`` keeps the whole notebook under half a minute, ``full`` is
the classroom run (a few minutes at most).

The tasks: a prediction of the SFU's cost in ``e2ee`` stored before the SFU is measured
(:func:`predict`) and compared with the run after it, Appendix B's overhead of one video stream,
the student's own overhead function for any suite, KID and CTR (run against the real encoder on
cases drawn per student, ``labs.params("08")``), and a receiver's share of a core. The arithmetic
checks are exact computations, not measurements, so they give the same verdict on every machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from e2ee_lab.crypto.sframe import SFrameContext

from e2ee_lab.bench import bench_sfu, bench_transforms
from e2ee_lab.bench.frames import MEDIA
from e2ee_lab.config import Size, lab_size
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import Choice, Choices, Sealed, real_number
from e2ee_lab.labs.plain import call_safely

# Benchmark settings per lab size: ci is for the test suite, full for the classroom.
TRANSFORM_SETTINGS: dict[str, dict[str, object]] = {
    "ci": {"media": ("opus", "vp8-320x240"), "frames": 6, "repeat": 2, "number": 1},
    "full": {"media": MEDIA, "frames": 30, "repeat": 5},
}
SFU_SETTINGS: dict[str, dict[str, object]] = {
    "ci": {"rooms": (2, 4), "repeat": 1, "target": 1_500},
    "full": {"rooms": (2, 4, 8, 16), "repeat": 3, "target": 20_000},
}

# The envelope curve of whole calls (issue 15), recorded by data/make_envelope.py: a live call at
# full size takes minutes and needs worker processes, which a notebook cannot fork.
ENVELOPE_PATH = Path(__file__).resolve().parents[2] / "data" / "envelope" / "envelope.json"
ENVELOPE_OPTIONS: dict[str, object] = {"participants": (2, 4, 8, 12), "seconds": 5.0, "size": "full",
                                       "views": "sample", "workers": 2}


def run_transforms(size: Size | None = None) -> pd.DataFrame:
    """:func:`~e2ee_lab.bench.bench_transforms` at the lab size's settings (no progress bar)."""
    return bench_transforms(**TRANSFORM_SETTINGS[size or lab_size()], progress=False)


_sfu_runs: list[str] = []  # the SFU measurements run in this kernel (for predict's note)


def run_sfu(size: Size | None = None) -> pd.DataFrame:
    """:func:`~e2ee_lab.bench.bench_sfu` at the lab size's settings (no progress bar)."""
    _sfu_runs.append(size or lab_size())
    return bench_sfu(**SFU_SETTINGS[size or lab_size()], progress=False)


def predict(prediction: str | None) -> str | None:
    """Take Task 1's prediction (one letter of :data:`TASK2_OPTIONS`) and say whether the SFU was
    already measured in this kernel; returns it. The note is printed, so the saved notebook shows
    whether the prediction came first; the check compares it with the run whatever the order."""
    if prediction is None:
        print("no prediction stored yet: set one letter, then run this cell before section 3.")
    elif _sfu_runs:
        print(f"prediction stored AFTER the SFU was measured ({len(_sfu_runs)} run(s) in this kernel): for a real "
              "prediction, restart the kernel and run this cell before section 3.")
    else:
        print("prediction stored before the SFU was measured.")
    return prediction


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


def recorded_envelope() -> pd.DataFrame:
    """The envelope curve recorded by ``data/make_envelope.py``: one :func:`~e2ee_lab.bench.bench_call`
    row per room size and mode (``dtls-srtp`` and ``e2ee``, full size, 2 worker processes), each
    with the load average before and after its call; the recording's machine, date, load and
    command in ``df.attrs["meta"]``. Prints one line saying where the numbers come from."""
    record = json.loads(ENVELOPE_PATH.read_text(encoding="utf-8"))
    meta = record["_meta"]
    df = pd.DataFrame(record["rows"])
    df.attrs["meta"] = meta
    load = meta["load_average_1min"]
    print(f"recorded {meta['began_utc']} UTC on {meta['machine']['cores']} cores ({meta['machine']['cpu']}), "
          f"load average {load['before']:g} before, {load['after']:g} after: {meta['command']}")
    return df


def envelope_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per room size and mode: frames in time (worst receiver's verified share next to it), the CPU a
    participant costs, the cores the whole room used, the SFU's own process and the real-time verdict."""
    return pd.DataFrame({
        "participants": df["participants"], "mode": df["mode"],
        "% in time": (100 * (1 - df["late_share"])).round(1),
        "% verified (worst receiver)": (100 * df["video_verified_min"]).round(1),
        "latency p95 ms": df["latency_p95_ms"],
        "CPU-s per participant-s": df["cpu_s_per_participant_s"].round(3),
        "cores used": (df["participants"] * df["cpu_s_per_participant_s"]).round(2),
        "SFU process CPU-s per s": df["sfu_process_cpu_s_per_s"],
        "real time": df["real_time"].map({True: "yes", False: "NO"}),
    }).sort_values(["participants", "mode"]).reset_index(drop=True)


# --- Task 2: SFrame overhead in kbit/s (RFC 9605 Appendix B; sealed as 08/T1) --------------------------

TASK1_FPS, TASK1_BITRATE_KBPS = 30, 400  # a 360p video stream, one SFrame ciphertext per frame


TASK1_TOLERANCE = 0.01  #: answers within 1 % pass (up to 2 %: the seal holds 1 %-wide buckets)


def _sealed_mistake(seal: Sealed, undos: list[tuple[float, str]], tol: float) -> str | None:
    """The hint of the first mistake whose undoing (a value) opens ``seal``."""
    return next((hint for value, hint in undos if seal.opens_number(value, tol) is not None), None)


@check
def check_overhead_kbps(answer: float | None) -> Feedback:
    """Task 2: SFrame overhead of a 30 fps, 400 kbit/s video stream in kbit/s (Appendix B; sealed:
    ``08/T1``, and ``08/T1/si`` for 1 kbit = 1000 bits: the keys keep the task's first number; the tag
    alone and the header alone are sealed too, as ``08/T1/tag-only`` and ``08/T1/header-only``, whose
    messages are hints)."""
    if answer is None:
        return unanswered("Task 2")
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
    for key in ("08/T1/tag-only", "08/T1/header-only"):
        if hint is None:
            hint = Sealed(key).opens_number(x, TASK1_TOLERANCE)
    return not_yet(hint or f"{answer} kbit/s is not it: (header + tag) bytes per frame x 8 bits x frames per "
                           "second / 1024. The bit rate (400 kbit/s) does not change the overhead, only its share.")


# --- Task 1 (predict): does e2ee change the SFU's cost per packet? (sealed as 08/T2) ----------------------

#: Task 1's statements, lettered (a, b, ...) in each student's own order.
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


#: the measured e2ee / dtls-srtp ratios a run may show and still read as "the same within noise"
SAME_WITHIN_NOISE = (0.8, 1.25)


@check
def check_sfu_cost(answer: str | None, df: pd.DataFrame | None = None) -> Feedback:
    """Task 1 (predict): the stored prediction, one of :data:`TASK2_OPTIONS` (sealed: ``08/T2``),
    compared with the measured ``e2ee / dtls-srtp`` ratios of ``df`` (a bench_sfu result)."""
    verdict = TASK2_OPTIONS.verdict(answer, "Task 1")
    if not (isinstance(df, pd.DataFrame) and "ratio_e2ee" in df and df["ratio_e2ee"].notna().any()):
        return verdict
    ratios = df["ratio_e2ee"].dropna()
    low, high = SAME_WITHIN_NOISE
    run = (f"Your run: e2ee / dtls-srtp = {ratios.min():.2f} to {ratios.max():.2f} across room sizes"
           + (", the same within noise." if low <= ratios.min() and ratios.max() <= high else
              "; a spread that wide is the machine's noise (other work on its cores), not SFrame: rerun "
              "section 3 on a quieter machine."))
    if verdict.ok:
        return correct(f"{verdict.message} {run}")
    return not_yet(f"{verdict.message} {run} Keep the prediction as it was stored; this check only compares it "
                   "with the run.")


# --- Task 3 (build): SFrame's bytes per frame for any suite, KID and CTR --------------------------------

#: the RFC 9605 suites (§4.5) the student's function must handle
_SUITES = (1, 2, 3, 4, 5)
_BASE_KEY = bytes(range(64))  # any key will do: only the ciphertext's length is measured
_EDGES = (0, 7, 8, 255, 256, 65535, 65536, 2**24 - 1, 2**24, 2**32, 2**56 - 1, 2**56, 2**64 - 1)


def overhead_cases() -> list[tuple[int, int, int]]:
    """Task 3's inputs, drawn for this student: ``(suite, kid, ctr)``, every suite, small values that
    fit the config byte, values on the byte boundaries and random ones of 1 to 8 bytes."""
    rng = params("08").rng("task3 cases")
    cases = [(suite, rng.choice(_EDGES), rng.choice(_EDGES)) for suite in _SUITES]
    cases += [(rng.choice(_SUITES), rng.randrange(8), rng.randrange(8)) for _ in range(2)]
    for _ in range(5):
        kid_bytes, ctr_bytes = rng.randint(1, 8), rng.randint(1, 8)
        cases.append((rng.choice(_SUITES), rng.randrange(1 << 8 * kid_bytes - 8 | 8, 1 << 8 * kid_bytes),
                      rng.randrange(1 << 8 * ctr_bytes - 8 | 8, 1 << 8 * ctr_bytes)))
    rng.shuffle(cases)
    return cases


def encoder_overhead(suite: int, kid: int, ctr: int, frame: bytes = b"\x00" * 40) -> int:
    """What the real SFrame encoder adds to ``frame`` with this suite, KID and CTR (header + tag)."""
    context = SFrameContext(suite)
    context.add_send_key(kid, _BASE_KEY)
    return len(context.protect(kid, frame, ctr=ctr)) - len(frame)


def probe_overhead(func) -> list[dict]:
    """Task 3's probe: the student's ``sframe_overhead(suite, kid, ctr)`` on every case."""
    return [call_safely(func, suite, kid, ctr) for suite, kid, ctr in overhead_cases()]


@check(probe=probe_overhead)
def check_overhead_function(answer) -> Feedback:
    """Task 3 (build): ``sframe_overhead(suite, kid, ctr) -> int`` against the real encoder on this
    student's cases."""
    if answer is None:
        return unanswered("Task 3")
    if not isinstance(answer, Probed):
        return not_yet("define sframe_overhead(suite, kid, ctr) as a function and pass the function itself.")
    cases, outputs = overhead_cases(), answer.outputs
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        return not_yet("the check could not run sframe_overhead on its cases; pass the function itself.")
    for (suite, kid, ctr), got in zip(cases, outputs):
        value = got.get("value") if isinstance(got, dict) else None
        if isinstance(value, bool) or not isinstance(value, int):
            what = f"raised {got.get('raised')}" if isinstance(got, dict) and "raised" in got else "returned no int"
            return not_yet(f"sframe_overhead({suite}, {kid}, {ctr}) {what}: return the number of bytes as an int.")
        want = encoder_overhead(suite, kid, ctr)
        if value != want:
            return not_yet(f"sframe_overhead({suite}, {kid}, {ctr}) returned {value}, which is not what the "
                           f"encoder adds. {_overhead_hint(value - want, suite, kid, ctr)}")
    return correct(f"your formula matches the encoder on all {len(cases)} cases: one config byte, the KID and "
                   "CTR in the fewest big-endian bytes (none below 8), and the suite's tag.")


def _overhead_hint(diff: int, suite: int, kid: int, ctr: int) -> str:
    """Which part of the header or tag a known mistake got wrong, found by redoing the mistake."""
    tags = {s: encoder_overhead(s, 0, 0) - 1 for s in _SUITES}
    if diff == -1:
        return "Every SFrame header starts with the config byte, whatever the KID and CTR."
    if (kid < 8 or ctr < 8) and diff in {1, 2}:
        return "A KID or CTR below 8 fits the config byte's 3-bit field and takes no byte of its own."
    if any(diff == tags[other] - tags[suite] for other in _SUITES if other != suite):
        return "The tag depends on the suite: 16 bytes for the GCM suites 4 and 5; 10, 8 or 4 for suites 1-3."
    return ("An extension takes the fewest bytes that hold the value, big-endian: 255 fits one byte, 256 "
            "needs two, and a value of 8 bytes is the most a header carries.")


# --- Task 4: share of a core that SFrame takes (sealed as 08/T3) -----------------------------------------

TASK3_STREAMS = {"video": (3, 30, 6.0), "audio": (3, 50, 2.0)}  # kind: (streams, frames/s, µs per unprotect)
TASK3_TOLERANCE = 0.01


def core_share_pct(streams: dict[str, tuple[int, int, float]]) -> float:
    """% of one core for ``streams`` (kind: count, frames per second, µs per frame)."""
    return sum(count * fps * us for count, fps, us in streams.values()) / 1e6 * 100


@check
def check_core_share(answer: float | None) -> Feedback:
    """Task 4: % of one core a receiver spends on SFrame unprotect for :data:`TASK3_STREAMS` (sealed:
    ``08/T3``)."""
    if answer is None:
        return unanswered("Task 4")
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
