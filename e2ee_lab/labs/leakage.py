"""Notebook 06 (metadata leakage): the calls it runs, its closing table, and the checks of its tasks.

The analysis lives in :mod:`e2ee_lab.analysis.leakage`; this module names the mitigations the
notebook compares (:data:`MITIGATIONS`, each a :class:`~e2ee_lab.call.SenderOptions`, and the
simulated discontinuous transmission of :func:`simulated_dtx`), builds the results table a
student can quote, and checks the tasks against the student's own run: a packet-size threshold
that beats the majority baseline (Wright et al. 2007/2008 and RFC 6562 in miniature), a function
that names a stream's sender and frame rate from SFrame KID/CTR alone (RFC 9605 §7.1), run on the
call's streams and on streams drawn for the student (``labs.params("06")``), and the padding
bucket, a multiple of the student's bucket step, that makes every audio frame one size.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from e2ee_lab.analysis import leakage
from e2ee_lab.call import CallResult, SenderOptions
from e2ee_lab.config import lab_size
from e2ee_lab.crypto.keys import kid_for, parse_kid
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import real_number
from e2ee_lab.labs.plain import call_safely
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
TASK2_FPS_TOLERANCE = 0.10  #: relative error allowed on a stream's frame rate
TASK2_RATES = (10.0, 12.5, 15.0, 24.0, 25.0, 30.0, 50.0)  #: frame rates of the drawn streams
BUCKET_STEPS = (32, 48, 64, 80, 96, 128)  #: Task 3's bucket steps; one per student, 64 shipped


def call_seconds() -> float:
    """How long each of the notebook's calls lasts: 2 s at ci size, 8 s at full size."""
    return 2.0 if lab_size() == "ci" else 8.0


def bucket_step() -> int:
    """This student's bucket step for Task 3 (``labs.params("06")``; 64 bytes in the shipped notebook)."""
    return params("06").choice("bucket step", BUCKET_STEPS, 64)


def simulated_dtx(e2ee: CallResult, mitigations: Mapping[str, CallResult]) -> dict[str, leakage.SimulatedDTX]:
    """The two DTX rows of the mitigation table, simulated on calls the notebook already ran: the
    unmitigated call and the Opus CBR call (both carry the senders' voice-activity flag)."""
    out = {"DTX (simulated)": leakage.SimulatedDTX(e2ee)}
    if "Opus CBR" in mitigations:
        out["Opus CBR + DTX (simulated)"] = leakage.SimulatedDTX(mitigations["Opus CBR"])
    return out


# --- tables ------------------------------------------------------------------------------------------


def results_table(e2ee: CallResult, clear: CallResult,
                  mitigations: Mapping[str, CallResult | leakage.SimulatedDTX]) -> pd.DataFrame:
    """The lab's findings in one table (``measured`` and what it means), from the notebook's runs.

    ``mitigations`` maps labels to calls (or simulated DTX), the unmitigated e2ee call among them or not.
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
             "every 20 ms frame is sent, so M is always 0 (RFC 3551 §4.1); with DTX it marks each "
             "talkspurt, and the gaps say the rest")]


def _mitigation_rows(e2ee: CallResult, mitigations: Mapping[str, CallResult]) -> list[tuple[str, str, str]]:
    others = {label: r for label, r in mitigations.items() if r is not e2ee}
    table = leakage.mitigation_table({REFERENCE: e2ee, **others})
    return [(f"after mitigation '{label}': from levels / from sizes / from gaps / talkspurt starts marked",
             f"{_pct(row['accuracy from levels'])} / {_pct(row['accuracy from sizes'])} / "
             f"{_pct(row['accuracy from gaps'])} / {_pct(row['starts marked (M bit recall)'])}",
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


# --- Task 2: name a stream's sender and frame rate from its SFrame headers (build) ----------------------


def _real_cases(result: CallResult) -> list[dict]:
    """Every stream the SFU received, with its truth from the senders' records."""
    headers = leakage.sframe_headers(result)
    cases = []
    for ssrc, h in headers.groupby("ssrc", sort=True):
        publisher, kind = h.publisher.iloc[0], h.kind.iloc[0]
        cases.append({"headers": h[["time", "kid", "ctr"]].reset_index(drop=True),
                      "members": dict(result.members), "name": publisher,
                      "fps": sent_rate(result, publisher, kind), "lossy": False})
    return cases


def _drawn_cases() -> list[dict]:
    """Streams drawn for this student: a roster whose member indexes are not positions, a sender who
    joined earlier (the first CTR is not 0), and a quarter to two fifths of the frames lost before
    the SFU, so that counting headers is not counting frames."""
    rng = params("06").rng("task2 streams")
    cases = []
    for _ in range(4):
        names = rng.sample(["ana", "ben", "chen", "dara", "eli", "femi", "gus", "hana"], rng.randint(3, 5))
        indexes = rng.sample(range(1, 200), len(names))
        members = dict(zip(names, indexes))
        name = rng.choice(names)
        kind, rate = rng.choice(["audio", "video"]), rng.choice(TASK2_RATES)
        kid = kid_for(rng.randrange(0, 6), members[name], kind)
        first, frames = rng.randrange(100, 5000), int(rate * rng.uniform(2.5, 4.0))
        kept = sorted(rng.sample(range(frames), int(frames * rng.uniform(0.6, 0.75))))
        start = rng.uniform(0, 30)
        rows = [{"time": round(start + k / rate + rng.uniform(0, 0.002), 6), "kid": kid, "ctr": first + k}
                for k in kept]
        cases.append({"headers": pd.DataFrame(rows), "members": members, "name": name, "fps": rate,
                      "lossy": True})
    return cases


def _origin_cases(result: CallResult) -> list[dict]:
    return _real_cases(result) + _drawn_cases()


def probe_stream_origin(func, result: CallResult) -> list[dict]:
    """Task 2's probe: the student's ``stream_origin(headers, members)`` on every case, on copies."""
    try:
        cases = _origin_cases(result)
    except Exception:  # noqa: BLE001 - no call to probe with: the check says so
        return []
    return [call_safely(func, c["headers"].copy(), dict(c["members"])) for c in cases]


def _as_origin(value) -> tuple[str, float] | None:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not isinstance(value[0], str):
        return None
    fps = real_number(value[1])
    return None if fps is None else (value[0], fps)


@check(probe=probe_stream_origin)
def check_stream_origin(answer, result: CallResult) -> Feedback:
    """Task 2 (build): ``stream_origin(headers, members) -> (name, frames_per_second)`` on every stream
    of the student's call and on streams drawn for the student; names exact, rates within 10 %."""
    if answer is None:
        return unanswered("Task 2")
    if not isinstance(answer, Probed):
        return not_yet("define stream_origin(headers, members) as a function and pass the function itself.")
    cases, outputs = _origin_cases(result), answer.outputs
    if not isinstance(outputs, list) or len(outputs) != len(cases):
        return not_yet("the check could not run stream_origin on its streams; pass the function itself.")
    for case, got in zip(cases, outputs):
        if not isinstance(got, dict) or "value" not in got:
            raised = got.get("raised") if isinstance(got, dict) else None
            return not_yet(f"stream_origin raised {raised} on one of the streams; it gets a DataFrame with "
                           "columns time, kid and ctr (one row per frame header) and the roster dict.")
        origin = _as_origin(got["value"])
        if origin is None:
            return not_yet("return a pair (name, frames_per_second): a roster name (str) and one number.")
        name, fps = origin
        if name != case["name"]:
            return not_yet(_name_hint(name, case))
        error = abs(fps - case["fps"]) / case["fps"]
        if error > TASK2_FPS_TOLERANCE:
            return not_yet(_rate_hint(fps, case))
    return correct(f"every stream named and timed: the {len(_real_cases(result))} streams of your call and "
                   f"{len(cases) - len(_real_cases(result))} drawn ones with late joiners and lost frames. The "
                   "SFU needs no key for this: the KID names the sender, the CTR counts the frames.")


def _name_hint(name: str, case: dict) -> str:
    members = case["members"]
    member = parse_kid(int(case["headers"].kid.iloc[0])).member
    names = list(members)
    if 0 <= member < len(names) and names[member] == name:
        return ("that is the name at position <member> of the roster, but a member index is the value the "
                "roster maps a name to, not a position in it: find the name whose value is the KID's member.")
    return ("the name does not match the stream's KID: split the KID with parse_kid() into (epoch, member, "
            "kind) and find the roster name whose member index is that member.")


def _rate_hint(fps: float, case: dict) -> str:
    h = case["headers"]
    span = float(h.time.max() - h.time.min())
    counted = (len(h) - 1) / span if span > 0 else float("nan")
    if case["lossy"] and abs(fps - counted) <= 0.02 * counted:
        return ("on a stream where some frames never reached the SFU, counting headers undercounts the "
                "frames the sender sent. Which header field counts every frame the sender protected?")
    return ("a rate is off by more than 10 %: frames per second is the number of frames the sender "
            "protected between the first and the last header, divided by the time between them.")


# --- Task 3: the smallest bucket (arithmetic) -----------------------------------------------------------


@check
def check_bucket(bucket: int | None, result: CallResult) -> Feedback:
    """Task 3: the smallest multiple of this student's bucket step that pads every audio frame of the
    call to one size."""
    if bucket is None:
        return unanswered("Task 3")
    if isinstance(bucket, bool) or not isinstance(bucket, (int, np.integer)) or bucket <= 0:
        return not_yet("the answer is a positive whole number of bytes.")
    bucket, step = int(bucket), bucket_step()
    if bucket % step:
        return not_yet(f"{bucket} is not a multiple of your bucket step, {step} bytes.")
    sizes = result.sent[result.sent.kind == "audio"].encoded_size
    need = padded_length(int(sizes.max()), step)
    if bucket == need:
        cost = bucket / float(sizes.mean()) - 1
        return correct(f"{bucket}-byte frames hide every size (the largest Opus frame and the "
                       f"{PAD_COUNT_LENGTH} count bytes fit), at {_pct(cost)} more audio payload than the "
                       f"mean of {sizes.mean():.0f} bytes.")
    return not_yet(_bucket_hint(bucket, step, sizes))


def _bucket_hint(bucket: int, step: int, sizes: pd.Series) -> str:
    """Name a known mistake by redoing it (never by comparing with the answer)."""
    if bucket == -(-int(sizes.max()) // step) * step:
        return ("padding does not only round up: every padded frame also carries the padding's count "
                "bytes, whatever its size.")
    if bucket in {padded_length(int(x), step) for x in (sizes.mean(), sizes.median())}:
        return ("a bucket fitted to a typical frame leaves every larger frame in a larger bucket, and the "
                "SFU sees those sizes: it has to fit the call's largest frame.")
    if bucket in {padded_length(int(sizes.max()) + extra, step) for extra in (16, 17, 18, 19, 20)}:
        return ("the padding goes on the Opus frame before SFrame encrypts it (encoded_size), not on the "
                "SFrame ciphertext with its header and tag.")
    return (f"{bucket} bytes is not it: every audio frame of the call, padded with its count bytes, must fit "
            f"one bucket, and no smaller multiple of {step} may do that.")
