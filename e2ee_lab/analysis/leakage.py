"""Metadata leakage: what the SFU learns from an end-to-end encrypted call without a single frame key.

SFrame hides the media from the SFU, not the metadata (RFC 9605 §7.1: no header confidentiality, so
the KID and CTR stay readable; packet sizes, timing and RTP header extensions are not SFrame's to hide
at all). Everything here reads only what the SFU's
view tap recorded (:mod:`e2ee_lab.sfu.view`) and scores it against the call's ground truth:

- **Who speaks when**, per 20 ms audio frame, (a) from the RFC 6464 audio level that travels in a
  header extension the SFU is meant to read (RFC 6464 §5 warns that it leaks; RFC 6904 and
  RFC 9335 "cryptex" encrypt header extensions, but hop by hop, so the SFU still reads them), and
  (b) from packet sizes alone: Opus VBR makes speech frames about 2.5 times as large as frames in
  pauses, the leak of RFC 6562 that Wright et al. turned into language identification (USENIX
  Security 2007, "Language identification of encrypted VoIP traffic") and spotting of spoken
  phrases (IEEE S&P 2008, "Spot me if you can"). The classifier is one threshold on one feature
  (:class:`ThresholdRule`), fitted on one participant and tested on the others, and scored per
  frame (accuracy, precision, recall) against the majority-class baseline (:class:`Score`).
- **Video frame sizes**: key frames are about ten times a delta frame, encrypted or not.
- **The SFrame header** (RFC 9605 §4.3): the KID names sender, media kind and epoch (with the
  lab's layout ``kid = epoch << 12 | kind << 8 | member``, :func:`~e2ee_lab.crypto.keys.parse_kid`),
  the CTR counts the frames a sender has protected under that KID, so its slope is the sender's
  frame rate of that kind and its value how long the sender has been sending it.
- **Clear-prefix framing** (Jitsi, LiveKit): the 10 clear bytes of a VP8 key frame hold the
  picture's width and height (RFC 6386 §9.1), the one clear audio byte the Opus TOC (RFC 6716 §3.1).
- **Mitigations and their price** (:func:`mitigation_table`): Opus CBR (RFC 6562 §3), padding
  inside the encryption to size buckets (:mod:`e2ee_lab.media.padding`), dropping the audio level;
  each run is a call with :class:`~e2ee_lab.call.SenderOptions`. Discontinuous transmission (DTX,
  RFC 6562 §4 on voice activity detection) is simulated on a recorded call (:class:`SimulatedDTX`):
  the packets a sender with silence suppression would not have sent are taken out, and the RTP
  marker bit is set on the first packet after each gap (RFC 3551 §4.1). The lab's own senders send
  every 20 ms frame, so their marker bit is always 0 (RFC 3551 §4.1: "Applications without silence
  suppression MUST set the marker bit to zero").

Over 500 lines: the five leaks and the mitigation table are scored on the same per-frame features
and ground truth, and Lab 06 reads them side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from e2ee_lab.call import CallResult
from e2ee_lab.crypto.keys import parse_kid
from e2ee_lab.crypto.sframe import MalformedHeader, decode_header
from e2ee_lab.crypto.transforms import visible_bytes
from e2ee_lab.media.codecs import vp8_key_frame_size
from e2ee_lab.rtp import RTPError, VP8PayloadDescriptor

FRAME_SECONDS = 0.02  #: one Opus frame, one audio packet
#: feature name -> (column of :func:`audio_packets`, True if larger values mean speech)
FEATURES: dict[str, tuple[str, bool]] = {
    "size": ("body_size", True),
    "level": ("audio_level", False),  # RFC 6464: 0 is loudest, 127 silence
    "vad": ("voice_activity", True),  # RFC 6464 V bit, the sender's own voice-activity flag
}
#: feature name -> how the tables name it
SIGNALS: dict[str, str] = {"level": "RFC 6464 audio level", "vad": "RFC 6464 V bit",
                           "size": "packet size (SFrame body)"}
KEY_FRAME_FACTOR = 4.0  #: a video frame this many times its stream's median size is called a key frame


# --- what the SFU reads --------------------------------------------------------------------------


def _incoming(result: CallResult, kind: str) -> pd.DataFrame:
    view = result.view
    return view[(view.direction == "in") & (view.kind == kind)]


def frame_start(kind: str, payload: bytes | None) -> bytes | None:
    """The frame bytes at the start of an RTP payload: after the VP8 descriptor on a packet that
    starts a video frame (RFC 7741 §4.2), the whole payload for audio; None on other packets."""
    if not payload:
        return None
    if kind == "audio":
        return bytes(payload)
    try:
        descriptor, body = VP8PayloadDescriptor.parse(payload)
    except RTPError:
        return None
    return bytes(body) if descriptor.starts_frame else None


def _header(body: bytes | None) -> tuple[int, int, int] | None:
    if body is None:
        return None
    try:
        return decode_header(body)
    except MalformedHeader:
        return None


def audio_packets(result: CallResult) -> pd.DataFrame:
    """One row per audio packet the SFU received, with the call's ground truth joined on.

    Columns: ``publisher, time, ssrc, seq, timestamp, marker, audio_level, voice_activity, size``
    (RTP bytes), ``payload_size``, ``header_length`` (SFrame header, 0 if the payload has none),
    ``kid, ctr`` (NaN without SFrame), ``body_size`` (payload minus SFrame header: what an
    observer compares), and from the sender's records ``frame_index`` and ``speaking``.
    ``audio_level`` and ``voice_activity`` are NaN when the packet carries no RFC 6464 element.
    """
    rows = _incoming(result, "audio")
    sframe = result.config.mode == "e2ee"
    headers = [_header(p) if sframe else None for p in rows.payload]
    out = pd.DataFrame({
        "publisher": rows.publisher_leg.to_numpy(), "time": rows.time.to_numpy(),
        "ssrc": rows.ssrc.to_numpy(), "seq": rows.seq.to_numpy(), "timestamp": rows.timestamp.to_numpy(),
        "marker": rows.marker.to_numpy(),
        "audio_level": pd.to_numeric(rows.audio_level, errors="coerce").to_numpy(dtype=float),
        "voice_activity": rows.voice_activity.map(_as_float).to_numpy(dtype=float),
        "size": rows["size"].to_numpy(), "payload_size": rows.payload_size.to_numpy(),
        "header_length": [h[2] if h else 0 for h in headers],
        "kid": [h[0] if h else np.nan for h in headers], "ctr": [h[1] if h else np.nan for h in headers],
    })
    out["body_size"] = out.payload_size - out.header_length
    sent = result.sent[result.sent.kind == "audio"]
    truth = sent.set_index(["participant", "timestamp"])[["frame_index", "speaking"]]
    out = out.join(truth, on=["publisher", "timestamp"])
    out["speaking"] = out.speaking.astype("boolean")
    return out.sort_values(["publisher", "time"], kind="stable").reset_index(drop=True)


def _as_float(value) -> float:
    return np.nan if value is None or pd.isna(value) else float(bool(value))


def sframe_headers(result: CallResult) -> pd.DataFrame:
    """Every SFrame header the SFU read at the start of a frame: ``time, publisher, kind, ssrc,
    kid, ctr, epoch, member, kid_kind, header_length`` (``kind``: the stream's, ``kid_kind``: the
    one the KID names; empty unless the call used SFrame: other payloads' first bytes would often
    parse as a header too; a KID not of the lab's layout is left out)."""
    rows = []
    view = result.view[result.view.direction == "in"]
    if result.config.mode != "e2ee":
        view = view.iloc[:0]
    for r in view.itertuples(index=False):
        header = _header(frame_start(r.kind, r.payload))
        if header is None:
            continue
        try:
            epoch, member, kid_kind = parse_kid(header[0])
        except ValueError:
            continue
        rows.append((r.time, r.publisher_leg, r.kind, r.ssrc, header[0], header[1], epoch, member, kid_kind,
                     header[2]))
    return pd.DataFrame(rows, columns=["time", "publisher", "kind", "ssrc", "kid", "ctr", "epoch",
                                       "member", "kid_kind", "header_length"])


# --- the classifier ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdRule:
    """``speaking = value >= threshold`` (``above``) or ``value <= threshold`` (not ``above``).

    ``fallback`` is the answer where the value is missing (the training set's majority class), so
    a rule on a feature the packets no longer carry degrades to the majority guess.
    """

    feature: str  # column name
    threshold: float  # NaN: no usable value in training, always ``fallback``
    above: bool  # larger values mean speech
    fallback: bool  # the training majority, used where a value is missing

    def predict(self, values) -> np.ndarray:
        """Boolean predictions for an array of feature values (NaN → ``fallback``)."""
        x = np.asarray(values, dtype=float)
        hit = x >= self.threshold if self.above else x <= self.threshold
        return np.where(np.isnan(x) | np.isnan(self.threshold), self.fallback, hit)

    def __str__(self) -> str:
        if np.isnan(self.threshold):
            return f"always {'speaking' if self.fallback else 'silent'} (no {self.feature} values)"
        if np.isinf(self.threshold):
            return f"always {'speaking' if (self.threshold < 0) == self.above else 'silent'}"
        return f"speaking if {self.feature} {'>=' if self.above else '<='} {self.threshold:g}"


def fit_threshold(values, truth, *, above: bool = True, feature: str = "value") -> ThresholdRule:
    """The threshold with the highest accuracy on ``(values, truth)``.

    Candidates lie halfway between neighbouring distinct values, plus "always" and "never", so a
    feature that carries nothing yields the constant majority guess. Ties go to the first
    candidate in the direction of the rule. Missing values are ignored when fitting.
    """
    x, y = np.asarray(values, dtype=float), np.asarray(truth, dtype=bool)
    fallback = bool(y.mean() >= 0.5) if len(y) else False
    known = ~np.isnan(x)
    x, y = x[known], y[known]
    if not len(x):
        return ThresholdRule(feature, float("nan"), above, fallback)
    levels = np.unique(x)
    cuts = np.concatenate([[-np.inf], (levels[1:] + levels[:-1]) / 2, [np.inf]])
    if not above:
        cuts = cuts[::-1]
    accuracy = [np.mean((x >= c if above else x <= c) == y) for c in cuts]
    return ThresholdRule(feature, float(cuts[int(np.argmax(accuracy))]), above, fallback)


@dataclass(frozen=True)
class Score:
    """Per-frame scores of ``speaking`` predictions (positive class: speaking)."""

    frames: int
    accuracy: float
    precision: float  # of the frames called speaking, the share that were (NaN if none called)
    recall: float  # of the speaking frames, the share called speaking
    baseline: float  # accuracy of always guessing the majority class (of the training frames)

    @property
    def lift(self) -> float:
        """Accuracy minus baseline, in points of accuracy (0..1)."""
        return self.accuracy - self.baseline


def score(predicted, truth, *, majority: bool | None = None) -> Score:
    """Score boolean predictions against boolean truth (same length; empty gives NaNs).

    The baseline always guesses ``majority``: the training set's majority class (a "ZeroR"
    classifier), or, when None, the commoner class of ``truth`` itself.
    Raises ValueError if the lengths differ.
    """
    p, y = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    if len(p) != len(y):
        raise ValueError(f"{len(p)} predictions for {len(y)} frames")
    if not len(y):
        return Score(0, np.nan, np.nan, np.nan, np.nan)
    hits = np.sum(p & y)
    baseline = max(y.mean(), 1 - y.mean()) if majority is None else np.mean(y == majority)
    return Score(int(len(y)), float(np.mean(p == y)), float(hits / p.sum()) if p.any() else np.nan,
                 float(hits / y.sum()) if y.any() else np.nan, float(baseline))


@dataclass(frozen=True)
class Inference:
    """A rule fitted on the training frames and its scores on both sets."""

    feature: str  # a key of FEATURES: "size", "level" or "vad"
    rule: ThresholdRule
    train: Score
    test: Score
    available: bool  # the packets carried the feature at all
    frames: pd.DataFrame  # audio_packets rows with ``role`` ("train"/"test") and ``predicted``


def training_mask(frames: pd.DataFrame, split: str = "participant") -> np.ndarray:
    """Which rows train: the first publisher's frames (``"participant"``), or each publisher's
    first half (``"time"``). Raises ValueError for another split."""
    if split == "participant":
        return (frames.publisher == sorted(frames.publisher.unique())[0]).to_numpy()
    if split == "time":
        rank = frames.groupby("publisher").cumcount()
        size = frames.groupby("publisher").publisher.transform("size")
        return (rank < size / 2).to_numpy()
    raise ValueError(f"split must be 'participant' or 'time', not {split!r}")


def infer_speaking(result: CallResult | pd.DataFrame, feature: str = "size", *,
                   split: str = "participant") -> Inference:
    """Fit a :class:`ThresholdRule` on ``feature`` (a key of :data:`FEATURES`) and score it.

    ``result`` is a call or its :func:`audio_packets`; frames without ground truth are left out.
    Raises ValueError for an unknown feature or split, or when no frame has ground truth.
    """
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {', '.join(FEATURES)}, not {feature!r}")
    frames = audio_packets(result) if isinstance(result, CallResult) else result
    frames = frames[frames.speaking.notna()].reset_index(drop=True)
    if frames.empty:
        raise ValueError("no audio frame with ground truth (the senders' records lack 'speaking')")
    column, above = FEATURES[feature]
    train = training_mask(frames, split)
    truth = frames.speaking.to_numpy(dtype=bool)
    rule = fit_threshold(frames[column][train], truth[train], above=above, feature=column)
    predicted = rule.predict(frames[column])
    frames = frames.assign(role=np.where(train, "train", "test"), predicted=predicted)
    majority = bool(truth[train].mean() >= 0.5) if train.any() else None
    return Inference(feature, rule, score(predicted[train], truth[train], majority=majority),
                     score(predicted[~train], truth[~train], majority=majority),
                     bool(frames[column].notna().any()), frames)


def speaking_scores(result: CallResult, *, split: str = "participant") -> pd.DataFrame:
    """One row per feature (audio level, V bit, packet size): the fitted rule,
    test-set accuracy, precision, recall and the majority-class baseline (always guessing the
    training frames' commoner class), and whether the packets carried it."""
    rows = {}
    for feature, label in SIGNALS.items():
        inf = infer_speaking(result, feature, split=split)
        rows[label] = {"rule (fitted on the training frames)": str(inf.rule), "in the packets": inf.available,
                       "test frames": inf.test.frames, "accuracy": inf.test.accuracy,
                       "precision": inf.test.precision, "recall": inf.test.recall,
                       "baseline": inf.test.baseline}
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def speaking_timeline(result: CallResult, *, split: str = "participant") -> pd.DataFrame:
    """Per audio frame: ``publisher, time, speaking`` (truth), ``from_level``, ``from_size``
    (the two rules' verdicts), ``body_size`` and ``role``; ``attrs["rules"]`` holds both rules."""
    level, size = (infer_speaking(result, f, split=split) for f in ("level", "size"))
    columns = ["publisher", "time", "frame_index", "speaking", "body_size", "audio_level", "role"]
    out = size.frames[columns].copy()
    out["from_level"] = level.frames.predicted.to_numpy()
    out["from_size"] = size.frames.predicted.to_numpy()
    out.attrs["rules"] = {"level": level.rule, "size": size.rule}
    return out


def talkspurt_starts(result: CallResult | pd.DataFrame) -> Score:
    """How well the RTP marker bit finds where speech starts (positive class: a frame inside a
    spoken phrase whose predecessor from the same publisher was not), scored per frame like the
    rules above. Each publisher's first frame is left out (it has no predecessor). ``result`` is a
    call, its :func:`audio_packets` or :func:`dtx_packets`; frames without ground truth are left
    out. A sender without silence suppression never sets the bit (recall 0).
    """
    frames = audio_packets(result) if isinstance(result, CallResult) else result
    frames = frames[frames.speaking.notna()]
    speaking = frames.speaking.astype(bool)
    before = speaking.groupby(frames.publisher).shift(1)
    later = before.notna()
    start = speaking[later] & ~before[later].astype(bool)
    return score(frames.marker[later].astype(bool), start)


# --- video frames, SFrame headers, clear prefixes ----------------------------------------------------


def video_frames(result: CallResult, *, factor: float = KEY_FRAME_FACTOR) -> pd.DataFrame:
    """Video frames as the SFU sees them (packets grouped by SSRC and RTP timestamp).

    Columns: ``publisher, ssrc, timestamp, time`` (first packet), ``packets, size`` (payload
    bytes), ``key_guess`` (size at least ``factor`` times the stream's median) and, from the
    sender's records, ``frame_type`` ("key"/"delta").
    """
    rows = _incoming(result, "video")
    frames = (rows.groupby(["publisher_leg", "ssrc", "timestamp"], sort=False)
              .agg(time=("time", "min"), packets=("seq", "size"), size=("payload_size", "sum"))
              .reset_index().rename(columns={"publisher_leg": "publisher"}).sort_values("time"))
    median = frames.groupby("ssrc")["size"].transform("median")
    frames["key_guess"] = frames["size"] >= factor * median
    sent = result.sent[result.sent.kind == "video"].set_index(["participant", "timestamp"])["frame_type"]
    return frames.join(sent, on=["publisher", "timestamp"]).reset_index(drop=True)


def key_frame_score(frames: pd.DataFrame) -> Score:
    """How well ``key_guess`` finds the key frames of :func:`video_frames` (positive class: key)."""
    known = frames[frames.frame_type.notna()]
    return score(known.key_guess, known.frame_type == "key")


def kid_table(result: CallResult) -> pd.DataFrame:
    """Per SFrame KID, what its headers reveal: the (epoch, member, kind) in the KID, the member's
    name in the roster, the leg the frames came in on, frames seen, CTR range, the CTR's rate
    (frames of that kind protected per second: each KID has its own counter) and how long the
    sender had been sending it when the SFU first saw it (first CTR / rate)."""
    headers = sframe_headers(result)
    names = {index: name for name, index in result.members.items()}
    rows = []
    for kid, h in headers.groupby("kid"):
        span = h.time.max() - h.time.min()
        rate = (h.ctr.max() - h.ctr.min()) / span if span > 0 else np.nan
        rows.append({"kid": int(kid), "kid (hex)": f"0x{int(kid):x}", "epoch": int(h.epoch.iloc[0]),
                     "member": int(h.member.iloc[0]), "kind": h.kid_kind.iloc[0],
                     "roster name": names.get(int(h.member.iloc[0]), "?"),
                     "arrived on leg": ", ".join(sorted(h.publisher.unique())),
                     "streams": ", ".join(sorted(h.kind.unique())), "frames seen": len(h),
                     "first CTR": int(h.ctr.min()), "last CTR": int(h.ctr.max()),
                     "CTR per second": round(rate, 1),
                     "seconds sending at first sight": round(h.ctr.min() / rate, 2) if rate else np.nan})
    return pd.DataFrame(rows)


def stream_table(result: CallResult) -> pd.DataFrame:
    """Per incoming SSRC: publisher leg, kind, the KID on its frames, frames seen, frames per
    second (count over the time span) and the mean CTR step between its frames."""
    rows = []
    for ssrc, h in sframe_headers(result).groupby("ssrc"):
        span = h.time.max() - h.time.min()
        rows.append({"ssrc": int(ssrc), "leg": h.publisher.iloc[0], "kind": h.kind.iloc[0],
                     "kid": int(h.kid.iloc[0]), "frames seen": len(h),
                     "frames per second": round((len(h) - 1) / span, 1) if span > 0 else np.nan,
                     "mean CTR step": round(float(h.ctr.diff().mean()), 2)})
    return pd.DataFrame(rows)


_OPUS_MODES = [("SILK-only", b, (10, 20, 40, 60)) for b in ("narrowband", "mediumband", "wideband")]
_OPUS_MODES += [("Hybrid", b, (10, 20)) for b in ("super-wideband", "fullband")]
_OPUS_MODES += [("CELT-only", b, (2.5, 5, 10, 20))
                for b in ("narrowband", "wideband", "super-wideband", "fullband")]
_OPUS_CONFIGS = [(mode, band, ms) for mode, band, sizes in _OPUS_MODES for ms in sizes]
_OPUS_CODES = ("1 frame", "2 equal frames", "2 frames", "any number of frames")


def describe_opus_toc(toc: int) -> str:
    """The RFC 6716 §3.1 TOC byte in words: mode, bandwidth, frame duration, channels, frame count.

    Raises:
        ValueError: ``toc`` is not a byte.
    """
    if not 0 <= toc <= 255:
        raise ValueError(f"a TOC is one byte, not {toc}")
    mode, band, ms = _OPUS_CONFIGS[toc >> 3]
    return f"{mode}, {band}, {ms:g} ms, {'stereo' if toc & 0x04 else 'mono'}, {_OPUS_CODES[toc & 0x03]}"


def resolutions(result: CallResult) -> pd.DataFrame:
    """Per publisher: the picture size the SFU reads from the clear bytes of VP8 key frames
    (RFC 6386 §9.1; only the clear-prefix framing leaves them clear) against the real one, and
    the Opus TOC of its first audio frame where the framing leaves that byte clear."""
    view = result.view[result.view.direction == "in"]
    mode = result.config.mode
    rows = []
    for publisher in result.names:
        mine = view[view.publisher_leg == publisher]
        starts = (frame_start("video", p) for p in mine[mine.kind == "video"].payload)
        sizes = [vp8_key_frame_size(b) for b in starts if b is not None]
        read = [s for s in sizes if s is not None]
        scene = result.scenes[publisher]
        audio = [p for p in mine[mine.kind == "audio"].payload if p]
        clear = bool(audio) and visible_bytes(mode, len(audio[0]), "audio", None) > 0
        toc = describe_opus_toc(audio[0][0]) if clear else ""
        rows.append({"publisher": publisher, "video frames": len(sizes), "key frames read": len(read),
                     "width read": read[0][0] if read else None, "height read": read[0][1] if read else None,
                     "real size": f"{scene.width}x{scene.height}", "Opus TOC read": toc or "(encrypted)"})
    return pd.DataFrame(rows)


# --- discontinuous transmission (simulated on a recorded call) --------------------------------------


@dataclass(frozen=True)
class SimulatedDTX:
    """A recorded call as a sender with discontinuous transmission would have sent it: no packet
    in the 20 ms slots where the sender's own voice-activity flag (the RFC 6464 V bit it put on the
    packet) says silence, and the RTP marker bit on the first packet after each gap (RFC 3551 §4.1:
    "the first packet of a talkspurt ... SHOULD be distinguished by setting the marker bit").
    Nothing is re-encoded: the packets that remain are the call's own. The call must carry the
    audio level (the V bit); :func:`dtx_packets` raises ValueError otherwise."""

    call: CallResult


def dtx_packets(result: CallResult | SimulatedDTX) -> pd.DataFrame:
    """One row per 20 ms audio slot of the call, as the SFU sees it under :class:`SimulatedDTX`.

    The columns of :func:`audio_packets`, plus ``sent`` (a packet arrived in this slot). A slot
    without a packet reads as the SFU would read it: ``size``, ``payload_size`` and ``body_size``
    0, ``audio_level`` 127 (silence) and ``marker`` 0; ``marker`` is 1 on the first packet after a
    gap. Raises ValueError when the packets carry no voice-activity flag.
    """
    call = result.call if isinstance(result, SimulatedDTX) else result
    frames = audio_packets(call)
    if frames.voice_activity.isna().all():
        raise ValueError("DTX is simulated from the senders' voice-activity flag: this call sent no audio level")
    sent = frames.voice_activity.fillna(0).astype(bool)
    before = sent.groupby(frames.publisher).shift(1, fill_value=False).astype(bool)
    out = frames.assign(sent=sent.to_numpy(), marker=(sent & ~before).astype(int).to_numpy())
    gap = ~out.sent
    out.loc[gap, ["size", "payload_size", "body_size"]] = 0
    out.loc[gap, "audio_level"] = 127.0
    return out


# --- mitigations and their price -------------------------------------------------------------------


def audio_bandwidth(result: CallResult) -> dict[str, float]:
    """Audio as the SFU received it: mean RTP bytes and payload bytes per packet, and kbit/s of
    RTP (one packet per 20 ms), averaged over publishers' packets."""
    rows = _incoming(result, "audio")
    per_packet = float(rows["size"].mean()) if len(rows) else np.nan
    payload = float(rows.payload_size.mean()) if len(rows) else np.nan
    kbit_s = per_packet * 8 / FRAME_SECONDS / 1000
    return {"rtp_bytes": per_packet, "payload_bytes": payload, "kbit_s": kbit_s}


def describe_options(result: CallResult | SimulatedDTX) -> str:
    """The call's sending options in words (``"Opus VBR, audio level, no padding"``; a
    :class:`SimulatedDTX` adds ``", DTX (simulated)"``)."""
    dtx = ", DTX (simulated)" if isinstance(result, SimulatedDTX) else ""
    o = (result.call if dtx else result).config.sender_options
    pad = f"padded to {o.audio_padding}-byte buckets" if o.audio_padding else "no padding"
    level = "audio level" if o.audio_level else "no audio level"
    return f"Opus {'CBR' if o.opus_cbr else 'VBR'}, {level}, {pad}{dtx}"


def mitigation_table(results: Mapping[str, CallResult | SimulatedDTX], reference: str | None = None, *,
                     split: str = "participant") -> pd.DataFrame:
    """One row per call (or :class:`SimulatedDTX` of a call): its sending options, the majority
    baseline, the test accuracy of the audio-level and packet-size rules (a rule on a missing
    feature guesses the training majority; under DTX a slot without a packet reads as size 0 and
    level 127), of the gap rule (speaking when a packet arrived in the slot), how many of the true
    talkspurt starts the RTP marker bit flags and how many of its flags are one
    (:func:`talkspurt_starts`: never, without silence suppression), audio bytes per packet, kbit/s
    over the call's duration and the bandwidth cost against ``reference`` (default: the first row)
    in percent."""
    reference = reference or next(iter(results))
    base = _kbit_s(_rows_of(results[reference]))
    rows = {label: _mitigation_row(result, base, split) for label, result in results.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.round({column: 3 for column in ("baseline", "accuracy from levels", "accuracy from sizes",
                                                 "accuracy from gaps", "starts marked (M bit recall)",
                                                 "marks at a start (precision)")})


def _rows_of(result: CallResult | SimulatedDTX) -> pd.DataFrame:
    if isinstance(result, SimulatedDTX):
        return dtx_packets(result)
    return audio_packets(result).assign(sent=True)


def _kbit_s(frames: pd.DataFrame) -> float:
    """RTP kbit/s per publisher over the slots (a slot without a packet counts 0 bytes)."""
    return float(frames["size"].mean()) * 8 / FRAME_SECONDS / 1000 if len(frames) else np.nan


def _mitigation_row(result: CallResult | SimulatedDTX, base_kbit_s: float, split: str) -> dict:
    frames = _rows_of(result)
    level, size = (infer_speaking(frames, f, split=split) for f in ("level", "size"))
    gaps = _gap_score(frames, split)
    marks = talkspurt_starts(frames)
    kbit_s = _kbit_s(frames)
    sent = frames[frames.sent]
    return {"options": describe_options(result), "baseline": size.test.baseline,
            "audio level in packets": level.available, "accuracy from levels": level.test.accuracy,
            "accuracy from sizes": size.test.accuracy, "accuracy from gaps": gaps.accuracy,
            "starts marked (M bit recall)": marks.recall, "marks at a start (precision)": marks.precision,
            "audio RTP bytes/packet": round(float(sent["size"].mean()), 1) if len(sent) else np.nan,
            "audio kbit/s": round(kbit_s, 1), "bandwidth cost %": round(100 * (kbit_s / base_kbit_s - 1), 1)}


def _gap_score(frames: pd.DataFrame, split: str) -> Score:
    """Test-set score of "speaking when a packet arrived in the slot"."""
    frames = frames[frames.speaking.notna()].reset_index(drop=True)
    train = training_mask(frames, split)
    truth = frames.speaking.to_numpy(dtype=bool)
    majority = bool(truth[train].mean() >= 0.5) if train.any() else None
    return score(frames.sent.to_numpy(dtype=bool)[~train], truth[~train], majority=majority)
