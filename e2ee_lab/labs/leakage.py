"""Notebook 06 (metadata leakage): the calls it runs, its closing table, and the checks of its tasks.

The analysis lives in :mod:`e2ee_lab.analysis.leakage`; this module names the mitigations the
notebook compares (:data:`MITIGATIONS`, each a :class:`~e2ee_lab.call.SenderOptions`), builds the
results table a student can quote, and checks the three tasks against the student's own run: a
packet-size threshold that beats the majority baseline (Wright et al. 2007/2008 and RFC 6562 in
miniature), the sender and frame rate of a stream read from SFrame KID/CTR alone (RFC 9605 §7.1),
and the padding bucket that makes every audio frame one size.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from e2ee_lab.analysis import leakage
from e2ee_lab.call import CallResult, SenderOptions
from e2ee_lab.config import lab_size
from e2ee_lab.labs import Feedback, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import real_number
from e2ee_lab.media.padding import PAD_COUNT_LENGTH, padded_length

REFERENCE = "as browsers send"  #: label of the unmitigated call in the mitigation table
#: the mitigations notebook 06 measures, one e2ee call each, each alone and then CBR with no level
MITIGATIONS: dict[str, SenderOptions] = {
    "no audio level": SenderOptions(audio_level=False),
    "Opus CBR": SenderOptions(opus_cbr=True),
    "Opus CBR, no audio level": SenderOptions(opus_cbr=True, audio_level=False),
    "padded to 512 bytes": SenderOptions(audio_padding=512),
}
TASK1_MARGIN = 0.05  #: a threshold must beat the baseline by this much accuracy (5 points)
TASK2_FPS_TOLERANCE = 0.10  #: relative error allowed on the stream's frame rate
TASK3_STEP = 64  #: buckets in Task 3 are multiples of this many bytes


def call_seconds() -> float:
    """How long each of the notebook's calls lasts: 2 s at ci size, 8 s at full size."""
    return 2.0 if lab_size() == "ci" else 8.0


# --- tables ------------------------------------------------------------------------------------------


def results_table(e2ee: CallResult, clear: CallResult, mitigations: Mapping[str, CallResult]) -> pd.DataFrame:
    """The lab's findings in one table (``measured`` and what it means), from the notebook's runs.

    ``mitigations`` maps labels to calls, the unmitigated e2ee call among them or not.
    """
    rows = _speech_rows(e2ee) + _mitigation_rows(e2ee, mitigations) + _header_rows(e2ee)
    rows += _clear_prefix_rows(e2ee, clear)
    return pd.DataFrame(rows, columns=["finding", "measured", "note"]).set_index("finding")


def _speech_rows(e2ee: CallResult) -> list[tuple[str, str, str]]:
    level, size = (leakage.infer_speaking(e2ee, f) for f in ("level", "size"))
    marks = leakage.talkspurt_starts(e2ee)
    return [("speaking frames in the test set: majority-class baseline", _pct(size.test.baseline),
             f"{size.test.frames} frames of 20 ms, always guessing the training frames' commoner class"),
            ("who speaks when, from the RFC 6464 audio level", _pct(level.test.accuracy),
             f"rule {level.rule}; precision {_pct(level.test.precision)}, recall {_pct(level.test.recall)}"),
            ("who speaks when, from packet sizes alone (SFrame, Opus VBR)", _pct(size.test.accuracy),
             f"rule {size.rule}; precision {_pct(size.test.precision)}, recall {_pct(size.test.recall)}"),
            ("talkspurt starts flagged by the RTP marker bit", f"recall {_pct(marks.recall)}",
             f"precision {_pct(marks.precision)}; set from the sender's voice activity, under every mitigation")]


def _mitigation_rows(e2ee: CallResult, mitigations: Mapping[str, CallResult]) -> list[tuple[str, str, str]]:
    others = {label: r for label, r in mitigations.items() if r is not e2ee}
    table = leakage.mitigation_table({REFERENCE: e2ee, **others})
    return [(f"after mitigation '{label}': from levels / from sizes / talkspurt starts marked",
             f"{_pct(row['accuracy from levels'])} / {_pct(row['accuracy from sizes'])} / "
             f"{_pct(row['starts marked (M bit recall)'])}",
             f"baseline {_pct(row['baseline'])}; audio {row['audio kbit/s']:g} kbit/s, "
             f"{row['bandwidth cost %']:+g} % bandwidth")
            for label, row in table.iloc[1:].iterrows()]


def _header_rows(e2ee: CallResult) -> list[tuple[str, str, str]]:
    keys = leakage.key_frame_score(leakage.video_frames(e2ee))
    kids = leakage.kid_table(e2ee)
    named = int((kids["roster name"] == kids["arrived on leg"]).sum()) if len(kids) else 0
    rates = ", ".join(f"{rate:g}" for rate in kids.get("CTR per second", []))
    return [("video key frames found by size (encrypted)", f"recall {_pct(keys.recall)}",
             f"precision {_pct(keys.precision)} over {keys.frames} frames"),
            ("senders named by the SFrame KID", f"{named} of {len(kids)} KIDs",
             "kid = epoch << 12 | kind << 8 | member, read by anyone who sees the header"),
            ("frames per second from the CTR", rates, "per sender and media kind (one CTR per KID)")]


def _clear_prefix_rows(e2ee: CallResult, clear: CallResult) -> list[tuple[str, str, str]]:
    shown = leakage.resolutions(clear).dropna(subset=["width read"])
    sizes = sorted({f"{int(w)}x{int(h)}" for w, h in zip(shown["width read"], shown["height read"])})
    real = ", ".join(sorted(set(leakage.resolutions(clear)["real size"])))
    hidden = int(leakage.resolutions(e2ee)["key frames read"].sum())
    return [("picture size from clear-prefix VP8 key frames", ", ".join(sizes) or "none",
             f"real {real}; with SFrame: {hidden} key frames readable")]


def _pct(x: float) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{100 * x:.1f} %"


def task2_ssrc(result: CallResult) -> int:
    """The SSRC Task 2 asks about: the last participant's video stream, as it reached the SFU."""
    view = result.view
    rows = view[(view.direction == "in") & (view.kind == "video") & (view.publisher_leg == result.names[-1])]
    return int(rows.ssrc.iloc[0])


def sent_rate(result: CallResult, publisher: str, kind: str) -> float:
    """Ground truth: frames per second ``publisher`` really sent of ``kind``, from its own records
    (on a loaded machine the video may fall behind the nominal frame rate)."""
    sent = result.sent[(result.sent.participant == publisher) & (result.sent.kind == kind)]
    span = sent.sent_at.max() - sent.sent_at.min()
    return (len(sent) - 1) / span if span > 0 else float("nan")


# --- checks ------------------------------------------------------------------------------------------


@check
def check_size_threshold(threshold: float | None, result: CallResult) -> Feedback:
    """Task 1: a body-size threshold (bytes) that beats the majority baseline on the test frames."""
    if threshold is None:
        return unanswered("Task 1")
    threshold = real_number(threshold)
    if threshold is None:
        return not_yet("the answer is one number of bytes: frames whose SFrame body is at least that large "
                       "are called speech.")
    frames = leakage.audio_packets(result)
    frames = frames[frames.speaking.notna()]
    test = ~leakage.training_mask(frames)
    rule = leakage.ThresholdRule("body_size", float(threshold), True, True)
    majority = bool(frames.speaking[~test].astype(bool).mean() >= 0.5)
    truth = frames.speaking[test].astype(bool)
    s = leakage.score(rule.predict(frames.body_size[test]), truth, majority=majority)
    if s.accuracy >= s.baseline + TASK1_MARGIN:
        return correct(f"'speaking if body_size >= {threshold:g}' is right on {_pct(s.accuracy)} of the "
                       f"{s.frames} test frames (baseline {_pct(s.baseline)}; precision {_pct(s.precision)}, "
                       f"recall {_pct(s.recall)}), without a single key.")
    train = frames[~test]
    medians = train.groupby("speaking").body_size.median()
    return not_yet(f"with {threshold:g} bytes the rule is right on {_pct(s.accuracy)} of the test frames, "
                   "and always guessing the training frames' commoner class already gets "
                   f"{_pct(s.baseline)}: aim for at least {_pct(s.baseline + TASK1_MARGIN)}. On the "
                   f"training frames the median body is {medians.get(False, np.nan):g} bytes in pauses "
                   f"and {medians.get(True, np.nan):g} in speech; try thresholds between them, and "
                   "remember that speech has short quiet gaps too.")


@check(answers=2)
def check_stream_origin(sender: str | None, fps: float | None, result: CallResult, ssrc: int) -> Feedback:
    """Task 2: who publishes SSRC ``ssrc`` (roster name) and its frame rate, from KID/CTR alone."""
    if sender is None or fps is None:
        return unanswered("Task 2")
    view = result.view
    rows = view[(view.direction == "in") & (view.ssrc == ssrc)]
    if rows.empty:
        return not_yet(f"no packets with SSRC {ssrc} reached the SFU; use lab.task2_ssrc(e2ee).")
    truth = rows.publisher_leg.iloc[0]
    true_fps = sent_rate(result, truth, "video")
    if sender != truth:
        return not_yet(f"SSRC {ssrc} is not {sender}'s stream: read the KID of its frames, split it with "
                       "parse_kid() into (epoch, member, kind), and look the member index up in e2ee.members.")
    fps = real_number(fps)
    if fps is None:
        return not_yet("the frame rate is one number, in frames per second.")
    error = abs(fps - true_fps) / true_fps
    if error <= TASK2_FPS_TOLERANCE:
        return correct(f"SSRC {ssrc} is {truth}'s camera, which sent {true_fps:.1f} frames per second "
                       f"(nominal {result.scenes[truth].fps}); the SFU read both from the clear SFrame "
                       "header and the arrival times, no key needed.")
    hint = (" Each KID (one per sender and media kind) has its own counter: the CTR of this stream's video "
            "KID advances once per video frame.")
    return not_yet(f"the sender is right, but {fps:g} frames per second is off by {_pct(error)}.{hint} "
                   "Divide the number of frame gaps by the time between the first and the last frame.")


@check
def check_bucket(bucket: int | None, result: CallResult) -> Feedback:
    """Task 3: the smallest multiple of 64 bytes that pads every audio frame of the call to one size."""
    if bucket is None:
        return unanswered("Task 3")
    if isinstance(bucket, bool) or not isinstance(bucket, (int, np.integer)) or bucket <= 0:
        return not_yet("the answer is a positive whole number of bytes.")
    if bucket % TASK3_STEP:
        return not_yet(f"{bucket} is not a multiple of {TASK3_STEP}.")
    sizes = result.sent[result.sent.kind == "audio"].encoded_size
    largest = int(sizes.max())
    need = padded_length(largest, TASK3_STEP)
    if bucket < need:
        spill = int((sizes + PAD_COUNT_LENGTH > bucket).sum())
        return not_yet(f"with {bucket}-byte buckets {spill} frames still land in a larger bucket: the "
                       f"largest Opus frame is {largest} bytes, and the padding adds at least "
                       f"{PAD_COUNT_LENGTH} count bytes.")
    if bucket > need:
        return not_yet(f"{bucket} bytes hides every size, but {need} would too, for "
                       f"{bucket - need} bytes less per frame.")
    cost = bucket / float(sizes.mean()) - 1
    return correct(f"{bucket}-byte frames hide every size (largest Opus frame {largest} bytes + "
                   f"{PAD_COUNT_LENGTH} count bytes), at {_pct(cost)} more audio payload than the "
                   f"mean of {sizes.mean():.0f} bytes.")
