"""The three views of one captured call: the wire without keys, the SFU with its leg keys, a receiver.

Every view is computed from the captured bytes alone (the pcap of :mod:`e2ee_lab.call.capture`):

- **wire**: :func:`~e2ee_lab.analysis.offline.analyze` without keys, an eavesdropper on ``lo``.
  SRTP (RFC 3711 §3.1) leaves the RTP header clear and encrypts the payload, so it sees SSRCs,
  timestamps, sizes and the RFC 6464 audio level, and decodes nothing in either mode;
- **sfu**: the same with the SFU's key log (RFC 5764 §4.2 keys of every leg), what the SFU holds
  after SRTP unprotect: plain VP8/Opus in ``dtls-srtp`` mode, SFrame ciphertext (RFC 9605 §4.2)
  in ``e2ee`` mode;
- **receiver**: the frames on the SFU → participant legs from the SFU view, decrypted with the
  members' frame keys (:class:`~e2ee_lab.call.capture.FrameKeys`, SFrame unprotect RFC 9605 §4.4.3,
  one receive context per receiver) and decoded, as each participant did.

Pictures and speech are judged against what was really sent (:class:`Truth`: which frame each
``(SSRC, RTP timestamp)`` carried, and the scenes and speech, which are pure functions of the
call's seed). A :class:`CapturedCall` bundles a pcap with its key log, frame keys and truth, from a
live :class:`~e2ee_lab.call.CallResult` or from a recording in ``data/captures/``
(:func:`recording`); :func:`analyze_views` gives the :class:`ThreeViews`, whose methods shape the
data for the figures of :mod:`e2ee_lab.analysis.plots` (each view's speech:
:mod:`e2ee_lab.analysis.view_speech`). A receiver without frame keys, or with
wrong ones, counts each frame it cannot open (``no_frame_keys``, ``sframe_auth``, ...).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from e2ee_lab.analysis.offline import QUIET_RMS, OfflineAnalysis, analyze, audio_matches, entropy
from e2ee_lab.call.capture import (
    CAPTURE_FILE,
    FRAME_KEYS_FILE,
    FrameKeys,
    read_frame_keys,
    write_frame_keys,
)
from e2ee_lab.call.participant import SPEECH_STAGGER
from e2ee_lab.capture.pcap import load_keys, read_pcap
from e2ee_lab.crypto.sframe import SFrameContext, SFrameError, decode_header
from e2ee_lab.media.codecs import DecodeError, OpusDecoder, VP8Decoder, picture_matches
from e2ee_lab.media.scene import Scene, to_rgb, video_size
from e2ee_lab.media.speech import FRAME_SAMPLES, SpeechSource
from e2ee_lab.transport import KeyLogEntry

CAPTURES_DIR = Path(__file__).resolve().parents[2] / "data" / "captures"
TRUTH_FILE = "truth.csv"
TRUTH_COLUMNS = ("direction", "leg", "ssrc", "timestamp", "publisher", "kind", "frame_index")
VIEWS = ("wire", "sfu", "receiver")
VIEW_TITLES = {"wire": "the wire (no keys)", "sfu": "the SFU (its leg keys)",
               "receiver": "a receiver (frame keys)"}
RECEIVER_COLUMNS = ("leg", "ssrc", "publisher", "kind", "timestamp", "frame_index", "size",
                    "sframe_kid", "decrypted", "decoded", "matches", "decodable", "reason", "time")
_OWN = object()  # analyze_views: use the call's own keys


# --- what was sent --------------------------------------------------------------------------------


@dataclass
class Truth:
    """What each ``(SSRC, RTP timestamp)`` of a call carried, and the pictures and speech sent.

    ``frames`` (:data:`TRUTH_COLUMNS`): one row per frame a publisher sent (``to_sfu``, its own
    SSRC) and per frame a receiver got (``from_sfu``, the SFU's SSRC); ``frame_index`` is the
    publisher's picture / 20 ms chunk number. ``scenes`` and ``speech`` (48 kHz int16) per publisher.
    """

    frames: pd.DataFrame
    scenes: dict[str, Scene]
    speech: dict[str, np.ndarray]
    _index: dict[tuple[int, int], tuple[str, str, int]] = field(default_factory=dict, repr=False)
    _pictures: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        f = self.frames
        self._index = {(int(s), int(t)): (p, k, int(i)) for s, t, p, k, i in
                       zip(f.ssrc, f.timestamp, f.publisher, f.kind, f.frame_index)}

    def origin(self, ssrc: int, timestamp: int) -> tuple[str, str, int] | None:
        """(publisher, kind, frame index) of a frame, or None if no such frame was sent."""
        return self._index.get((int(ssrc), int(timestamp)))

    def reference(self, ssrc: int, timestamp: int) -> np.ndarray | None:
        """The sent RGB picture or 20 ms of speech for a frame (the analyses' ``references``)."""
        found = self.origin(ssrc, timestamp)
        if found is None or found[2] < 0:
            return None
        publisher, kind, i = found
        if kind == "video":
            if (publisher, i) not in self._pictures:
                self._pictures[publisher, i] = self.scenes[publisher].rgb(i)
            return self._pictures[publisher, i]
        pcm = self.speech.get(publisher)
        if pcm is None or len(pcm) < (i + 1) * FRAME_SAMPLES:
            return None
        return pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]

    def ssrc_of(self, publisher: str, kind: str = "video") -> int | None:
        """The SSRC ``publisher`` sent its ``kind`` stream with."""
        f = self.frames
        rows = f[(f.direction == "to_sfu") & (f.publisher == publisher) & (f.kind == kind)]
        return int(rows.ssrc.iloc[0]) if len(rows) else None

    @classmethod
    def from_result(cls, result) -> Truth:
        """From a :class:`~e2ee_lab.call.CallResult` (its sent and received records)."""
        sent, got = result.sent, result.received
        frames = pd.concat([
            pd.DataFrame({"direction": "to_sfu", "leg": sent.participant, "ssrc": sent.ssrc,
                          "timestamp": sent.timestamp, "publisher": sent.participant,
                          "kind": sent.kind, "frame_index": sent.frame_index}),
            pd.DataFrame({"direction": "from_sfu", "leg": got.receiver, "ssrc": got.ssrc,
                          "timestamp": got.timestamp, "publisher": got.publisher,
                          "kind": got.kind, "frame_index": got.frame_index}),
        ], ignore_index=True)
        return cls(frames[list(TRUTH_COLUMNS)], dict(result.scenes), dict(result.speech))

    @classmethod
    def rebuild(cls, frames: pd.DataFrame, summary: Mapping) -> Truth:
        """From a :data:`TRUTH_FILE` table and a call summary: scenes and speech are regenerated
        from the seed, size and participant order (they are pure functions of them)."""
        dims = video_size(summary["size"])
        names = [p["name"] for p in summary["participants"]]
        scenes, speech = {}, {}
        for i, name in enumerate(names):
            scenes[name] = Scene(i, seed=summary["seed"], width=dims.width, height=dims.height,
                                 fps=dims.fps)
            sent = frames[(frames.publisher == name) & (frames.kind == "audio")]
            chunks = int(sent.frame_index.max()) + 1 if len(sent) else 0
            source = SpeechSource(offset_s=i * SPEECH_STAGGER)
            speech[name] = source.pcm(chunks) if chunks else np.zeros(0, np.int16)
        return cls(frames[list(TRUTH_COLUMNS)].reset_index(drop=True), scenes, speech)

    def write(self, path: str | Path) -> None:
        """Write :attr:`frames` as CSV (the recording's :data:`TRUTH_FILE`)."""
        self.frames.to_csv(path, index=False)


# --- a captured call ------------------------------------------------------------------------------


@dataclass
class CapturedCall:
    """A call's capture and what is needed to read it: key log, frame keys, truth, summary."""

    mode: str  # "dtls-srtp" or "e2ee"
    pcap: Path  # the capture
    keylog: list[KeyLogEntry]  # the SFU's SRTP keys, one entry per leg
    frame_keys: FrameKeys | None  # the members' frame keys (e2ee), None otherwise
    truth: Truth  # what was sent
    summary: dict  # the call's summary.json
    source: str  # "live, sniff", "live, tap" or "recording"

    @property
    def names(self) -> list[str]:
        """The participants in call order."""
        return [p["name"] for p in self.summary["participants"]]

    @classmethod
    def from_result(cls, result) -> CapturedCall:
        """From a call run with ``capture=...``; ValueError if it was not captured."""
        if result.capture is None:
            raise ValueError("the call was run without capture: run_call(..., capture='auto')")
        return cls(result.config.mode, result.capture.path, list(result.keylog), result.frame_keys,
                   Truth.from_result(result), result.summary, f"live, {result.capture.backend}")

    @classmethod
    def load(cls, directory: str | Path) -> CapturedCall:
        """From a directory holding ``capture.pcap``, ``sfu-keys.json``, ``summary.json``,
        :data:`TRUTH_FILE` and, for an e2ee call, ``frame-keys.json``.

        Raises:
            FileNotFoundError: one of the files (except the frame keys) is missing.
            KeyLogError, FrameKeysError: a malformed key file.
        """
        directory = Path(directory)
        pcap = directory / CAPTURE_FILE
        if not pcap.exists():
            raise FileNotFoundError(f"no {CAPTURE_FILE} in {directory}")
        summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
        keylog = load_keys(directory / "sfu-keys.json")
        frames = pd.read_csv(directory / TRUTH_FILE)
        keys_path = directory / FRAME_KEYS_FILE
        frame_keys = read_frame_keys(keys_path) if keys_path.exists() else None
        return cls(summary["mode"], pcap, keylog, frame_keys, Truth.rebuild(frames, summary),
                   summary, "recording")


def recording(mode: str, directory: str | Path | None = None) -> CapturedCall:
    """The recorded capture of a ``mode`` call in ``data/captures/<mode>`` (see data/README.md)."""
    return CapturedCall.load(Path(directory or CAPTURES_DIR) / mode)


def write_recording(result, directory: str | Path) -> None:
    """Add to a captured call's output directory what :meth:`CapturedCall.load` needs besides
    the pcap, key log and summary: :data:`TRUTH_FILE` and, in e2ee mode, the frame keys."""
    directory = Path(directory)
    Truth.from_result(result).write(directory / TRUTH_FILE)
    if result.frame_keys is not None:
        write_frame_keys(directory / FRAME_KEYS_FILE, result.frame_keys)


# --- the receiver's view --------------------------------------------------------------------------


@dataclass
class ReceiverView:
    """Frames on the SFU → participant legs after the frame transform and the decoder.

    ``frames`` (:data:`RECEIVER_COLUMNS`); ``media`` maps a row to the last picture decoded on each
    stream; ``dropped`` counts frames the receiver could not open, by reason.
    """

    frames: pd.DataFrame
    media: dict[int, np.ndarray] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)


def _open_frame(mode: str, data: bytes, context: SFrameContext | None) -> tuple[bytes | None, str]:
    if mode == "dtls-srtp":
        return data, ""
    if context is None:
        return None, "no_frame_keys"
    try:
        return context.unprotect(data), ""
    except SFrameError as err:
        return None, f"sframe_{err.reason}"


def _judge(kind: str, media, reference, previous) -> bool | None:
    if reference is None:
        return None
    if media is None:
        return False
    if kind == "video":
        return picture_matches(media, reference)
    return audio_matches(media, reference, previous)


def receiver_view(sfu: OfflineAnalysis, mode: str, frame_keys: FrameKeys | None,
                  truth: Truth) -> ReceiverView:
    """Decrypt (e2ee: SFrame with ``frame_keys``) and decode every frame the SFU sent out.

    Raises:
        ValueError: a mode other than "dtls-srtp" or "e2ee".
    """
    if mode not in ("dtls-srtp", "e2ee"):
        raise ValueError(f"the receiver view knows dtls-srtp and e2ee, not {mode!r}")
    view = ReceiverView(pd.DataFrame(columns=list(RECEIVER_COLUMNS)))
    contexts: dict[str, SFrameContext | None] = {}
    decoders: dict[tuple[str, int], VP8Decoder | OpusDecoder] = {}
    rows, last = [], {}
    published = _published_ssrcs(sfu.frames)
    out = sfu.frames[sfu.frames.direction == "from_sfu"]
    for index, f in out.iterrows():
        if f.leg not in contexts:
            contexts[f.leg] = frame_keys.context() if frame_keys is not None else None
        data = sfu.frame_data[index]
        plain, reason = _open_frame(mode, data, contexts[f.leg])
        media = None
        if plain is not None:
            key = (f.leg, int(f.ssrc))
            decoder = decoders.setdefault(key, VP8Decoder() if f.kind == "video" else OpusDecoder())
            try:
                media = decoder.decode(plain)
            except DecodeError as err:
                reason = err.reason
            else:
                media = to_rgb(media) if f.kind == "video" else media
        else:
            view.dropped[reason] += 1
        ssrc = int(f.ssrc)
        if truth.origin(ssrc, f.timestamp) is None:  # a frame no receiver's record names
            ssrc = published.get((f.kind, int(f.timestamp)), ssrc)
        reference = truth.reference(ssrc, f.timestamp)
        previous = truth.reference(ssrc, (int(f.timestamp) - FRAME_SAMPLES) % (1 << 32))
        matches = _judge(f.kind, media, reference, previous)
        origin = truth.origin(ssrc, f.timestamp) or ("?", f.kind, -1)
        row = len(rows)
        rows.append({"leg": f.leg, "ssrc": int(f.ssrc), "publisher": origin[0], "kind": f.kind,
                     "timestamp": int(f.timestamp), "frame_index": origin[2], "size": len(data),
                     "sframe_kid": _kid(data) if mode == "e2ee" else None,
                     "decrypted": plain is not None, "decoded": media is not None,
                     "matches": matches,
                     "decodable": bool(matches) if reference is not None else media is not None,
                     "reason": reason, "time": f.time})
        if f.kind == "video" and media is not None:
            view.media.pop(last.get((f.leg, f.ssrc)), None)
            view.media[row], last[(f.leg, f.ssrc)] = media, row
    view.frames = pd.DataFrame(rows, columns=list(RECEIVER_COLUMNS))
    return view


def _published_ssrcs(frames: pd.DataFrame) -> dict[tuple[str, int], int]:
    """(kind, RTP timestamp) -> the publisher's SSRC, for the frames sent to the SFU whose
    timestamp no other publisher's frame of that kind shares.

    An SFU rewrites SSRCs, not timestamps, so a forwarded frame that the truth does not know by its
    outgoing SSRC (aiortc's jitter buffer releases a frame only when the next one starts, so each
    stream's last forwarded frame is in the capture but in no receiver's records) is named by it.
    """
    sent = frames[frames.direction == "to_sfu"]
    seen: dict[tuple[str, int], set[int]] = {}
    for kind, ssrc, ts in zip(sent.kind, sent.ssrc, sent.timestamp):
        seen.setdefault((kind, int(ts)), set()).add(int(ssrc))
    return {key: next(iter(ssrcs)) for key, ssrcs in seen.items() if len(ssrcs) == 1}


def _kid(data: bytes) -> int | None:
    try:
        return decode_header(data)[0]
    except SFrameError:
        return None


# --- the three views ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewPanel:
    """One publisher's video in one view: its latest frame as that view holds it."""

    view: str  # "wire", "sfu" or "receiver"
    timestamp: int | None  # RTP timestamp of the frame shown
    picture: np.ndarray | None  # the decoded picture, when the view can decode it
    data: bytes  # the frame's bytes as the view holds them (ciphertext or VP8)
    frames: int  # the publisher's video frames in this view
    decodable: int  # of which decodable (matching the sent picture)
    what: str  # what the bytes are to this view ("SRTP ciphertext", "SFrame ciphertext", "VP8")

    def noise(self) -> np.ndarray:
        """The bytes as a 4:3 grey image (values 0..255, NaN padding): what a non-decoder "sees"."""
        return noise_image(self.data)


def noise_image(data: bytes, aspect: float = 4 / 3) -> np.ndarray:
    """Bytes laid out row by row in a ``aspect``-shaped array of floats, NaN after the last byte."""
    n = max(len(data), 1)
    width = max(8, round(math.sqrt(aspect * n)))
    rows = math.ceil(n / width)
    image = np.full(rows * width, np.nan)
    image[: len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)
    return image.reshape(rows, width)


@dataclass
class ThreeViews:
    """The wire, SFU and receiver views of one :class:`CapturedCall` (:func:`analyze_views`)."""

    call: CapturedCall
    wire: OfflineAnalysis
    sfu: OfflineAnalysis
    receiver: ReceiverView

    @property
    def mode(self) -> str:
        """The call's mode."""
        return self.call.mode

    def frames(self, view: str) -> pd.DataFrame:
        """The frame table of ``view``, with a ``publisher`` column."""
        if view == "receiver":
            return self.receiver.frames
        f = getattr(self, view).frames.copy()
        f["publisher"] = [(self.call.truth.origin(s, t) or ("?",))[0]
                          for s, t in zip(f.ssrc, f.timestamp)]
        return f

    def counts(self) -> pd.DataFrame:
        """Per view and kind: the frames it holds, those ``judged`` (video: all; audio: those that
        carried speech, since silence recovered proves nothing), the decodable ones among them, and
        their ``share``."""
        rows = []
        for view in VIEWS:
            f = self.frames(view)
            for kind in ("video", "audio"):
                part = f[f.kind == kind]
                judged = part[self._speech(part)] if kind == "audio" else part
                decodable = int(judged.decodable.sum())
                rows.append({"mode": self.mode, "view": view, "kind": kind, "frames": len(part),
                             "judged": len(judged), "decodable": decodable,
                             "share": decodable / len(judged) if len(judged) else 0.0})
        return pd.DataFrame(rows)

    def _speech(self, frames: pd.DataFrame) -> list[bool]:
        """Per audio frame: did the sent 20 ms carry speech (RMS at least QUIET_RMS)?"""
        out = []
        for s, t in zip(frames.ssrc, frames.timestamp):
            pcm = self.call.truth.reference(s, t)
            out.append(pcm is not None and
                       float(np.sqrt(np.mean(np.square(pcm.astype(float))))) >= QUIET_RMS)
        return out

    def panel(self, view: str, publisher: str | None = None) -> ViewPanel:
        """``publisher``'s latest video frame that reached a receiver, as ``view`` holds it."""
        publisher = publisher or self.call.names[0]
        got = self.receiver.frames
        got = got[(got.publisher == publisher) & (got.kind == "video")]
        ts = int(got.timestamp.iloc[-1]) if len(got) else None
        if view == "receiver":
            rows, media = got, self.receiver.media
        else:
            analysis = getattr(self, view)
            f = analysis.frames
            rows = f[(f.ssrc == self.call.truth.ssrc_of(publisher)) & (f.kind == "video")]
            media = analysis.media
        match = rows[rows.timestamp == ts] if ts is not None else rows.iloc[0:0]
        data = self._data(view, match.index[-1]) if len(match) else b""
        picture = None
        if len(match) and bool(match.decodable.iloc[-1]):
            picture = media.get(match.index[-1])
        return ViewPanel(view, ts, picture, data, len(rows), int(rows.decodable.sum()),
                         self._what(view, data))

    def _what(self, view: str, data: bytes) -> str:
        if view == "wire":
            return "SRTP ciphertext"
        if self.mode == "e2ee" and view == "sfu":
            kid = _kid(data)
            return "SFrame ciphertext" + (f" (KID {kid} in clear)" if kid is not None else "")
        return "VP8"

    def _data(self, view: str, index: int) -> bytes:
        if view == "receiver":
            f = self.sfu.frames
            row = self.receiver.frames.loc[index]
            hit = f[(f.direction == "from_sfu") & (f.leg == row.leg) & (f.ssrc == row.ssrc)
                    & (f.timestamp == row.timestamp)]
            return self.sfu.frame_data[hit.index[0]] if len(hit) else b""
        return getattr(self, view).frame_data[index]

    def stream_entropy(self, view: str = "sfu") -> pd.DataFrame:
        """Per stream (leg, direction, SSRC): bytes of all its frame payloads and their entropy."""
        analysis = getattr(self, view)
        rows = []
        for key, group in analysis.frames.groupby(["leg", "direction", "ssrc", "kind"]):
            data = b"".join(analysis.frame_data[i] for i in group.index)
            rows.append(dict(zip(("leg", "direction", "ssrc", "kind"), key), frames=len(group),
                             bytes=len(data), entropy=entropy(data)))
        return pd.DataFrame(rows)

    def byte_counts(self, view: str = "sfu", kind: str = "video") -> np.ndarray:
        """How often each byte value 0..255 occurs in the ``kind`` frame payloads of ``view``."""
        analysis = getattr(self, view)
        f = analysis.frames
        data = b"".join(analysis.frame_data[i] for i in f.index[f.kind == kind])
        return np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)

    def packet_entropy(self, view: str = "sfu") -> pd.DataFrame:
        """RTP packets of ``view``: time, kind (by payload type), SSRC, leg, direction, payload
        size and entropy, RFC 6464 audio level."""
        p = getattr(self, view).packets
        p = p[(p.kind == "rtp") & p.payload_entropy.notna()]
        kinds = p.payload_type.map({96: "video", 111: "audio"}).fillna("other")
        return pd.DataFrame({"time": p.time, "kind": kinds, "ssrc": p.ssrc, "leg": p.leg,
                             "direction": p.direction, "payload_size": p.payload_size,
                             "payload_entropy": p.payload_entropy.astype(float),
                             "audio_level": p.audio_level})

    def summary(self) -> dict:
        """Counts per view for a report: frames and decodable frames by kind, and stream entropy."""
        counts = self.counts()
        out = {"mode": self.mode, "source": self.call.source}
        for row in counts.itertuples():
            out[f"{row.view}_{row.kind}_frames"] = row.frames
            out[f"{row.view}_{row.kind}_decodable"] = row.decodable
        out["sfu_min_stream_entropy"] = round(float(self.stream_entropy("sfu").entropy.min()), 4)
        out["receiver_dropped"] = dict(self.receiver.dropped)
        return out


def analyze_views(call: CapturedCall, *, frame_keys: FrameKeys | None | object = _OWN,
                  keylog: list[KeyLogEntry] | str | Path | None | object = _OWN) -> ThreeViews:
    """The three views of ``call`` from its pcap (see the module docstring).

    ``frame_keys`` and ``keylog`` default to the call's own; pass other (or None) ones to see what
    a receiver without the right frame keys, or an SFU with wrong leg keys, makes of the capture.
    """
    frame_keys = call.frame_keys if frame_keys is _OWN else frame_keys
    keylog = call.keylog if keylog is _OWN else keylog
    refs = call.truth.reference
    contents = read_pcap(call.pcap)  # read once, analysed twice
    wire = analyze(contents, None, references=refs, keep_media="none")
    sfu = analyze(contents, keylog, references=refs, keep_media="last")
    return ThreeViews(call, wire, sfu, receiver_view(sfu, call.mode, frame_keys, call.truth))
