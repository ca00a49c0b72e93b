"""The answers of the static tasks, and the messages a student reads when right (instructor only).

:func:`sealed_answers` maps each seal key of ``e2ee_lab/labs/sealed.json`` to ``(answer,
message)``. The check modules hold only the tokens; ``python -m e2ee_lab.labs.instructor seal``
rewrites them from here, and the tests check that every token still opens with its answer here.
Truth functions that would reveal an answer if a student could call them live here too:
:func:`receiver_verdicts` (Lab 03 Task 2), :func:`caption_frames` (the caption Lab 07 Task 1's
function reads) and :func:`forgery_days` (Lab 07 Task 3).

A run-dependent answer (what a student's own call produced) is not here: its check recomputes it
from that run. A per-student answer is not here either: its check recomputes it from the
student's parameters (:func:`e2ee_lab.labs.session.params`), unless the parameter takes a few
values, each sealed under its own key (``"07/T2/nt=3"``).
"""

from __future__ import annotations

import math
from typing import Any

from e2ee_lab.attacks.crypto import expected_attempts, shared_key_senders
from e2ee_lab.crypto.sframe import SFrameError, overhead
from e2ee_lab.labs import pitfalls, sframe
from e2ee_lab.labs.answers import number_bucket

# --- Lab 00 ------------------------------------------------------------------------------------------


def path_readers(roles: tuple[str, ...], e2ee: bool) -> tuple[int, ...]:
    """Lab 00 Task 3's truth: the positions on a path that read the frame. Without E2EE every party that
    terminates DTLS (members and SFUs) unprotects SRTP and holds the frame; a relay forwards datagrams
    only. With E2EE only the sender and the receiver hold the frame key."""
    return (0, len(roles) - 1) if e2ee else tuple(i for i, role in enumerate(roles) if role != "relay")


def _lab00() -> dict[str, tuple[Any, str]]:
    from e2ee_lab.labs import overview

    return {f"00/T3/{case}": (path_readers(roles, e2ee), "") for case, roles, e2ee in overview.PATHS}


# --- Lab 03 ------------------------------------------------------------------------------------------


def receiver_verdicts() -> dict[str, str]:
    """What the real receiver does with each Task 2 variant: 'accepted' or the drop reason."""
    verdicts = {}
    for name in sframe.TASK2_DESCRIPTIONS:
        receiver, variants = sframe.tampering_scenario()  # a fresh receiver each time
        frame, metadata = variants[name]
        try:
            receiver.unprotect(frame, metadata)
            verdicts[name] = "accepted"
        except SFrameError as err:
            verdicts[name] = err.reason
    return verdicts


def _lab03() -> dict[str, tuple[Any, str]]:
    verdicts = receiver_verdicts()
    size = overhead(sframe.TASK3_SUITE, sframe.TASK3_KID, sframe.TASK3_CTR)
    return {
        "03/T2": (verdicts, "all eight are rejected, and no failure moves the replay window. Only "
                            "'unknown_kid' may be kept for later; every other failure is dropped and counted."),
        "03/T3": (size, "config byte 1 + KID 0x123 in 2 bytes + CTR 70000 (0x011170) in 3 bytes + "
                        f"an 80-bit tag of 10 bytes = {size} bytes."),
    }


# --- Lab 07 ------------------------------------------------------------------------------------------

CAPTION_SECRET = b"caption 14:02 BOB: I resign on Monday, tell no one"
DESIGN_RULES = {"shared_group_key": "one-sender", "crash_restore": "persist-ctr", "app_passes_ctr": "refuse-repeat",
                "flood_short_tag": "long-tags", "old_frame_again": "replay-window"}


def caption_frames() -> tuple[str, str]:
    """Lab 07 Task 1's two frames, made from both captions (``pitfalls.TASK1_FRAMES`` is a copy)."""
    alice, bob = shared_key_senders(pitfalls.DEMO_SUITE, pitfalls.TASK1_KID, pitfalls.DEMO_BASE_KEY)
    return (alice.protect(pitfalls.TASK1_KID, pitfalls.TASK1_KNOWN).hex(),
            bob.protect(pitfalls.TASK1_KID, CAPTION_SECRET).hex())


def forgery_days(ptime_ms: int, chance_pct: int) -> float:
    """Lab 07 Task 3's truth: days until P(at least one of n random forgeries accepted) reaches the
    chance, against suite 3's 4-byte tag, one forgery per frame duration: n = log(1 - q) / log(1 - p)."""
    p = 1 / expected_attempts(pitfalls.TASK3_TAG_BYTES)
    attempts = math.log1p(-chance_pct / 100) / math.log1p(-p)
    return attempts * ptime_ms / 1000 / 86400


def _lab07() -> dict[str, tuple[Any, str]]:
    # No check opens 07/T1: Task 1 is a build task, judged on pairs drawn per student. The caption its
    # function reads in the notebook stays sealed so that the release scan looks for it (leaks.py).
    seals: dict[str, tuple[Any, str]] = {"07/T1": (CAPTION_SECRET, "Bob's caption, read from the two frames.")}
    for nt in pitfalls.TASK2_TAG_BYTES:
        attempts = expected_attempts(nt)
        seals[f"07/T2/nt={nt}"] = (attempts, f"each random tag matches with probability 2^-{8 * nt}, so the mean "
                                             f"of this geometric distribution is 2^{8 * nt} = {attempts:,} attempts.")
    for ptime in pitfalls.TASK3_PTIMES:
        for chance in pitfalls.TASK3_CHANCES:
            days = forgery_days(ptime, chance)
            mean = expected_attempts(pitfalls.TASK3_TAG_BYTES) * ptime / 1000 / 86400
            seals[f"07/T3/ptime={ptime},chance={chance}"] = (
                ("~", number_bucket(days, pitfalls.TASK3_TOLERANCE)),
                f"n = ln(1 − {chance / 100:g}) / ln(1 − 2^-32) ≈ {-math.log1p(-chance / 100):.3f} × 2^32 attempts, "
                f"one per {ptime} ms: ≈ {days:,.0f} days (the mean is {mean:,.0f}). A rate check turns the RFC's "
                "one-hour flood into months or years, yet a 4-byte tag still falls in the life of a deployment; a "
                "16-byte one never does.")
    seals["07/T4"] = (DESIGN_RULES, "each pitfall has its rule: one sender per key, persist before use, refuse "
                                    "repeats, long tags, replay window.")
    return seals


# --- multiple choice and other static answers (labs 02, 05, 08, 09) ------------------------------

#: The check each Lab 05 Task 1 attack meets by design (a run may show another too).
DESIGNED = {"tamper-tag": "SFrame auth tag", "replay": "replay window", "replay-same-seq": "SRTP replay check",
            "replay-rekey": "unknown KID", "inject": "SFrame auth tag", "downgrade-inject": "attribution by KID",
            "drop": "none", "stream-swap": "attribution by KID", "leaver-forgery": "unknown KID"}


def _choices() -> dict[str, tuple[Any, str]]:
    return {
        "02/T2": ("payload-only", "entropy measures the bytes inside the ciphertext; metadata (sizes, timing, "
                                  "SSRCs, the KID, the audio level) lives around it, compressed VP8/Opus scores "
                                  "nearly as high anyway, and only a decoder (or the tag check) says whether "
                                  "bytes are media"),
        "05/T2": ("old-kid", "keys are per sender, media kind and epoch, named by the KID the header carries "
                             "and authenticates. While the old key is kept its replay window rejects the "
                             "copies; once it is deleted the KID is unknown. Deleting old keys (as soon as "
                             "the sender is heard on the new epoch, at the latest when the grace period "
                             "ends) is what makes the rekey final."),
        "08/T2": ("same-work", "the SFU's work per packet is SRTP and header rewriting, the same in both modes; "
                               "it never touches the SFrame layer, and payload sizes differ only by the SFrame "
                               "header and tag, which AES-GCM on ~1 KB barely notices."),
        "09/T1": ("endpoint", "being an endpoint gives it every leg's SRTP keys (its key log opens the whole "
                              "capture); as the server it also picks the SRTP profile from the participant's "
                              "use_srtp list and sends with the server_write key. Only SFrame keeps the media "
                              "from it"),
    }


def _numbers() -> dict[str, tuple[Any, str]]:
    from e2ee_lab.labs import overhead as lab08

    def appendix_b_kbps(header: int, tag: int) -> float:  # RFC 9605 Appendix B: (header + tag) x 8 x fps / 1024
        return (header + tag) * 8 * lab08.TASK1_FPS / 1024

    header, tag = 1 + 2 + 3, 16  # config byte, 2-byte KID, 3-byte CTR; suite 4's tag
    kbps = appendix_b_kbps(header, tag)
    share = 100 * kbps / lab08.TASK1_BITRATE_KBPS
    pct = lab08.core_share_pct(lab08.TASK3_STREAMS)
    return {
        "08/T1": (("~", number_bucket(kbps, lab08.TASK1_TOLERANCE)),
                  f"22 bytes per frame x 8 x 30 frames/s / 1024 = {kbps:.2f} kbit/s, {share:.2f} % of 400 kbit/s: "
                  "per-frame SFrame is cheap for video."),
        "08/T1/si": (("~", number_bucket(kbps * 1024 / 1000, lab08.TASK1_TOLERANCE)),
                     f"{kbps * 1024 / 1000:.2f} kbit/s with 1 kbit = 1000 bits; RFC 9605 divides by 1024 "
                     f"({kbps:.2f} kbit/s). Either way about {share:.1f} % of the bit rate."),
        "08/T1/tag-only": (("~", number_bucket(appendix_b_kbps(0, tag), lab08.TASK1_TOLERANCE)),
                           "that is the tag alone: the header (config byte, KID, CTR) travels with every frame too."),
        "08/T1/header-only": (("~", number_bucket(appendix_b_kbps(header, 0), lab08.TASK1_TOLERANCE)),
                              "that is the header alone: add the tag."),
        "08/T3": (("~", number_bucket(pct, lab08.TASK3_TOLERANCE)),
                  f"3 x 30 x 6 µs + 3 x 50 x 2 µs = 840 µs of CPU per second = {pct:.3f} % of one core: SFrame "
                  "itself is not what limits a call."),
    }


def _lab09() -> dict[str, tuple[Any, str]]:
    from e2ee_lab.labs import webrtc

    seals = {}
    for n in webrtc.TASK4_PEOPLE:
        for fps in webrtc.TASK4_FPS:
            keyframes = n * (n - 1) * fps
            seals[f"09/T4/n={n},fps={fps}"] = (
                keyframes, f"the SFU has {n} video receivers, one per publisher; each fails on every frame and "
                           f"sends a PLI, so each publisher sends {fps} key frames/s, and the SFU forwards each "
                           f"to {n - 1} subscribers: {n} x {n - 1} x {fps} = {keyframes} key frames/s, every one "
                           "several times a delta frame's size (Lab 03's VP8 at 640x480: 7.8 KB against 1.5 KB). Stealing the "
                           "frames from the decoder is what keeps this at zero.")
    return seals


# --- Lab 11 ------------------------------------------------------------------------------------------

#: Lab 11 Task 3's statements that follow from how the call is built: Janus holds every leg's SRTP
#: keys (the DTLS peer of each leg) and records each SFrame header in the clear; the frame keys
#: crossed the application's signalling relay, never Janus.
JANUS_HOLDS = {"kid": True, "srtp-keys": True, "frame-keys": False}


def _lab11() -> dict[str, tuple[Any, str]]:
    return {f"11/T3/{sid}": ("held" if held else "not held", "") for sid, held in JANUS_HOLDS.items()}


def sealed_answers() -> dict[str, tuple[Any, str]]:
    """Every seal key → (answer, message when right)."""
    designed = {f"05/T1/{attack}": (name.lower(), "") for attack, name in DESIGNED.items()}
    return {**_lab00(), **_lab03(), **_lab07(), **_lab09(), **_choices(), **_numbers(), **_lab11(), **designed}
