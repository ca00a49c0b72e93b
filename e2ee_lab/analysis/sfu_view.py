"""What the SFU (or an eavesdropper) can make of the packets it saw: frames, pictures, speech, entropy.

The SFU's view tap (:class:`~e2ee_lab.sfu.view.ViewTap`) records every RTP packet after SRTP unprotect
(RFC 3711): header fields, the RFC 6464 audio level and the payload. :func:`analyze_packets` does
what a curious SFU would do with those records: reassemble frames per SSRC by the RTP headers and
the RFC 7741 descriptors (:class:`~e2ee_lab.rtp.FrameAssembler`), feed them to VP8 and Opus
decoders, and judge the result against what the publisher really sent:

- video: a frame is *decodable* when libvpx produced a picture that matches the sent picture
  (:func:`~e2ee_lab.media.codecs.picture_matches`); a garbage picture from clear-prefix ciphertext
  (libvpx sometimes outputs one without an error) counts as not decodable;
- audio: libopus turns most ciphertext into noise rather than an error, so a frame *matches* when
  its PCM, aligned by the codec delay, has a signal-to-error ratio of at least
  :data:`SPEECH_MATCH_DB` against the sent 20 ms chunk (an Opus round trip scores 4-10 dB,
  ciphertext noise below 0 dB), and the publisher's whole recovered stream correlates with the sent
  speech at :data:`SPEECH_STREAM_CORRELATION` or more (0.97 when the SFU holds the keys, below 0.04
  for ciphertext): one 20 ms chunk of noise can pass 2 dB by chance, a stream of noise cannot.

:func:`wire_packets` turns SRTP datagrams into the same records, for an eavesdropper without keys
(headers are clear in SRTP, the payload is not). :func:`ciphertext_entropy` measures the Shannon
entropy of a stream's payload bytes beyond the payload descriptors (VP8's, RFC 7741 §4.2, or the
SFrame payload format's one byte per packet) and the clear prefix (the SFrame header, RFC 9605
§4.3, or the clear-prefix bytes).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from aiortc.rtp import RtpPacket

from e2ee_lab.crypto.sframe import MalformedHeader, decode_header
from e2ee_lab.crypto.transforms import clear_prefix_length
from e2ee_lab.media.codecs import DecodeError, OpusDecoder, VP8Decoder, mean_abs_error, picture_matches
from e2ee_lab.media.scene import Scene, to_rgb
from e2ee_lab.media.speech import FRAME_SAMPLES, SpeechSource
from e2ee_lab.rtp import (
    Codec,
    FrameAssembled,
    FrameAssembler,
    RTPError,
    SFrameAssembled,
    SFrameDepacketizer,
    parse_rtp,
)
from e2ee_lab.rtp.vp8 import vp8_frame_type

PAYLOAD_TYPES = {96: Codec.VP8, 111: Codec.OPUS}
SPEECH_MATCH_DB = 2.0  # a 20 ms frame "is" the sent speech at this signal-to-error ratio or above
SPEECH_STREAM_CORRELATION = 0.5  # ... and the publisher's recovered stream correlates this well
MAX_CODEC_DELAY = FRAME_SAMPLES  # samples searched for the Opus delay (aiortc's encoder: 312)
FRAME_COLUMNS = ("publisher", "kind", "ssrc", "timestamp", "frame_index", "frame_type", "packets",
                 "size", "decoded", "matches", "mae", "reason")


@dataclass
class SFUView:
    """The result of :func:`analyze_packets`.

    ``frames`` has one row per reassembled frame (:data:`FRAME_COLUMNS`): ``decoded`` means the
    decoder produced a picture or PCM, ``matches`` that it is the sent picture / speech, ``mae``
    the mean absolute error against the sent picture, ``reason`` why not ("" when it matches).
    ``pictures`` holds each publisher's last picture the decoder produced (frame index, RGB,
    matches); ``audio`` each publisher's recovered PCM (48 kHz int16, chunk ``i`` at sample
    ``960 i``, silence where nothing decoded); ``speech_correlation`` its correlation with the
    sent speech at the best codec delay.
    """

    frames: pd.DataFrame
    pictures: dict[str, tuple[int, np.ndarray, bool]] = field(default_factory=dict)
    audio: dict[str, np.ndarray] = field(default_factory=dict)
    speech_correlation: dict[str, float] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        """Frame counts for the call summary (``video_frames_decodable`` = matching pictures)."""
        f = self.frames
        video, audio = f[f.kind == "video"], f[f.kind == "audio"]
        return {
            "video_frames_seen": int(len(video)),
            "video_frames_decoded": int(video.decoded.sum()),
            "video_frames_decodable": int(video.matches.sum()),
            "audio_frames_seen": int(len(audio)),
            "audio_frames_decoded": int(audio.decoded.sum()),
            "audio_frames_intelligible": int(audio.matches.sum()),
            "speech_correlation": {k: round(v, 3) for k, v in self.speech_correlation.items()},
        }


# --- packets in ----------------------------------------------------------------------------------


def view_packets(view: pd.DataFrame) -> pd.DataFrame:
    """The publisher -> SFU rows of a view-tap DataFrame, with a ``publisher`` column."""
    rows = view[view.direction == "in"].copy()
    rows["publisher"] = rows["publisher_leg"]
    return rows


def wire_packets(datagrams: Iterable[bytes], publishers: Mapping[int, str]) -> pd.DataFrame:
    """SRTP datagrams as an eavesdropper parses them: clear RTP header, encrypted payload (+ tag).

    ``publishers`` maps each sender SSRC to a name; datagrams that do not parse are left out.
    """
    rows = []
    for i, data in enumerate(datagrams):
        try:
            packet = parse_rtp(data)
        except RTPError:
            continue
        rows.append({"time": float(i), "ssrc": packet.ssrc, "payload_type": packet.payload_type,
                     "seq": packet.sequence_number, "timestamp": packet.timestamp,
                     "marker": packet.marker, "payload": bytes(packet.payload), "audio_level": None,
                     "voice_activity": None, "publisher": publishers.get(packet.ssrc, "?")})
    return pd.DataFrame(rows)


def _rtp(row) -> RtpPacket:
    packet = RtpPacket(payload_type=int(row.payload_type), marker=int(row.marker),
                       sequence_number=int(row.seq), timestamp=int(row.timestamp), ssrc=int(row.ssrc),
                       payload=row.payload or b"")
    if row.audio_level is not None and not pd.isna(row.audio_level):
        packet.extensions.audio_level = (bool(row.voice_activity), int(row.audio_level))
    return packet


def reassemble(packets: pd.DataFrame, sframe_publishers: Iterable[str] = ()
               ) -> tuple[list[tuple[str, FrameAssembled]], Counter]:
    """Frames per SSRC from packet rows, in order: ``[(publisher, frame)]`` and the drop counters.

    Streams of ``sframe_publishers`` are in the SFrame RTP payload format
    (draft-ietf-avtcore-rtp-sframe-02): they are reassembled from the descriptors' S..E runs
    (:class:`~e2ee_lab.rtp.SFrameDepacketizer`), which is all the SFU can do; their frames carry
    the SFrame ciphertext, whose header (KID, CTR) is the only thing in them it can read.
    """
    assembler, depacketizer = FrameAssembler(PAYLOAD_TYPES), SFrameDepacketizer()
    publisher_of = dict(zip(packets.ssrc, packets.publisher)) if len(packets) else {}
    sframe = set(sframe_publishers)
    events = []
    for row in packets.itertuples(index=False):
        if row.publisher in sframe:
            events += [e.as_frame(PAYLOAD_TYPES[e.payload_type])
                       for e in depacketizer.receive(_rtp(row), float(row.time))
                       if isinstance(e, SFrameAssembled) and e.payload_type in PAYLOAD_TYPES]
        else:
            events += assembler.receive(_rtp(row), float(row.time))
    events += assembler.flush()
    frames = [(publisher_of[e.ssrc], e) for e in events if isinstance(e, FrameAssembled)]
    dropped = Counter(assembler.dropped)
    dropped.update({f"sframe_{k}": v for k, v in depacketizer.dropped.items()})
    return frames, dropped


# --- decoding and verdicts -----------------------------------------------------------------------


def _frame_index(sent: pd.DataFrame) -> dict[tuple[str, str, int], int]:
    return {(p, k, int(t)): int(i) for p, k, t, i in
            zip(sent.participant, sent.kind, sent.timestamp, sent.frame_index)}


def sent_speech(source: SpeechSource, chunks: int) -> np.ndarray:
    """The PCM a microphone produced for chunks ``0 .. chunks-1``, back to back (int16, 48 kHz)."""
    if chunks <= 0:
        return np.zeros(0, np.int16)
    return source.pcm(chunks)


def analyze_packets(packets: pd.DataFrame, sent: pd.DataFrame, *, scenes: Mapping[str, Scene],
                    speech: Mapping[str, np.ndarray], sframe_publishers: Iterable[str] = ()) -> SFUView:
    """Reassemble, decode and judge every frame in ``packets`` (see the module docstring).

    Args:
        packets: rows with ``time, ssrc, payload_type, seq, timestamp, marker, payload,
            audio_level, voice_activity, publisher`` (:func:`view_packets`, :func:`wire_packets`).
        sent: the call's sent-frame records (``participant, kind, timestamp, frame_index``).
        scenes: each publisher's camera (the ground truth for pictures).
        speech: each publisher's sent speech PCM (:func:`sent_speech`), the ground truth for audio.
        sframe_publishers: publishers whose streams use the SFrame RTP payload format.
    """
    frames, dropped = reassemble(packets, sframe_publishers)
    return analyze_frames(frames, sent, scenes=scenes, speech=speech, dropped=dropped)


def analyze_frames(frames: Iterable[tuple[str, FrameAssembled]], sent: pd.DataFrame, *,
                   scenes: Mapping[str, Scene], speech: Mapping[str, np.ndarray],
                   dropped: Counter | None = None) -> SFUView:
    """Decode and judge frames already reassembled (``[(publisher, frame)]`` in order, each
    frame's ``timestamp`` the publisher's RTP timestamp): the second half of
    :func:`analyze_packets`, also used for frames read back from an SFU's recording
    (:mod:`e2ee_lab.janus.recording`). ``dropped``: counters to keep in the view."""
    index = _frame_index(sent)
    view = SFUView(frames=pd.DataFrame(columns=list(FRAME_COLUMNS)), dropped=Counter(dropped or {}))
    decoders: dict[int, VP8Decoder | OpusDecoder] = {}
    pcm: dict[str, dict[int, np.ndarray]] = {}
    rows = []
    for publisher, frame in frames:
        i = index.get((publisher, frame.kind, frame.timestamp), -1)
        decoder = decoders.setdefault(frame.ssrc, VP8Decoder() if frame.kind == "video" else OpusDecoder())
        if frame.kind == "video":
            decoded, matches, mae, reason = _judge_picture(view, publisher, i, decoder, frame.data, scenes)
        else:
            decoded, samples, reason = _decode_audio(decoder, frame.data)
            if decoded and i >= 0:
                pcm.setdefault(publisher, {})[i] = samples
            matches, mae = False, math.nan
        rows.append((publisher, frame.kind, frame.ssrc, frame.timestamp, i, frame.guess_frame_type(),
                     frame.packet_count, len(frame.data), decoded, matches, mae, reason))
    view.frames = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    _judge_speech(view, pcm, speech)
    return view


def _judge_picture(view: SFUView, publisher: str, i: int, decoder, data: bytes,
                   scenes: Mapping[str, Scene]) -> tuple[bool, bool, float, str]:
    try:
        rgb = to_rgb(decoder.decode(data))
    except DecodeError as err:
        return False, False, math.nan, err.reason
    if i < 0 or publisher not in scenes:
        return True, False, math.nan, "unknown_frame"
    sent = scenes[publisher].rgb(i)
    matches = picture_matches(rgb, sent)
    mae = mean_abs_error(rgb, sent) if rgb.shape == sent.shape else math.nan
    view.pictures[publisher] = (i, rgb, matches)
    return True, matches, mae, "" if matches else "garbage_picture"


def _decode_audio(decoder, data: bytes) -> tuple[bool, np.ndarray, str]:
    try:
        samples = decoder.decode(data)
    except DecodeError as err:
        return False, np.zeros(0, np.int16), err.reason
    return True, samples[:FRAME_SAMPLES], ""


def _judge_speech(view: SFUView, pcm: Mapping[str, dict[int, np.ndarray]],
                  speech: Mapping[str, np.ndarray]) -> None:
    """Lay out each publisher's PCM by chunk, find the codec delay, judge every audio frame."""
    f = view.frames
    for publisher in sorted(set(f[f.kind == "audio"].publisher)):
        chunks = pcm.get(publisher, {})
        rows = (f.kind == "audio") & (f.publisher == publisher)
        last = int(f.loc[rows, "frame_index"].max())
        if last < 0 or publisher not in speech or len(speech[publisher]) < (last + 1) * FRAME_SAMPLES:
            continue
        got = np.zeros((last + 2) * FRAME_SAMPLES, np.int16)
        for i, samples in chunks.items():
            got[i * FRAME_SAMPLES:i * FRAME_SAMPLES + len(samples)] = samples
        sent = speech[publisher][: (last + 1) * FRAME_SAMPLES].astype(float)
        delay, corr = _codec_delay(sent, got.astype(float))
        view.audio[publisher], view.speech_correlation[publisher] = got, corr
        judged = f.index[rows & f.decoded.astype(bool) & (f.frame_index >= 0)]
        if len(judged):  # every decoded frame's chunk against the sent one, shifted by the codec delay
            i = f.loc[judged, "frame_index"].to_numpy(int)
            chunks = (last + 1, FRAME_SAMPLES)  # delay <= MAX_CODEC_DELAY = one chunk: got holds it
            heard = got[delay:delay + chunks[0] * FRAME_SAMPLES].astype(float).reshape(chunks)
            snr = _snr_db(sent.reshape(chunks)[i], heard[i])
            matches = (snr >= SPEECH_MATCH_DB) & (corr >= SPEECH_STREAM_CORRELATION)
            f.loc[judged, "matches"] = matches
            f.loc[judged, "reason"] = np.where(matches, "", "noise")
    f["matches"] = f["matches"].astype(bool)


def _codec_delay(sent: np.ndarray, got: np.ndarray) -> tuple[int, float]:
    """The delay (samples, 0..:data:`MAX_CODEC_DELAY`) at which ``got`` correlates best with
    ``sent``, and that Pearson correlation; FFT cross-correlation (no BLAS threads)."""
    m = len(sent) - MAX_CODEC_DELAY
    if m < 2 or len(got) < m + MAX_CODEC_DELAY:
        return 0, 0.0
    a = sent[:m] - sent[:m].mean()
    g = got[: m + MAX_CODEC_DELAY]
    # Lag k sums a[i] * g[i + k] for i < m: with len(g) = m + MAX_CODEC_DELAY points no index wraps
    # around (a's zero padding covers the other side), so the FFT need not be twice as long.
    size = 1 << (len(g) - 1).bit_length()
    cross = np.fft.irfft(np.fft.rfft(g, size) * np.conj(np.fft.rfft(a, size)), size)[: MAX_CODEC_DELAY + 1]
    sums = np.concatenate([[0.0], np.cumsum(g)])
    squares = np.concatenate([[0.0], np.cumsum(g * g)])
    k = np.arange(MAX_CODEC_DELAY + 1)
    seg_sum, seg_sq = sums[k + m] - sums[k], squares[k + m] - squares[k]
    spread = np.sqrt(np.maximum(seg_sq - seg_sum**2 / m, 0.0)) * math.sqrt(float(np.sum(a * a)))
    corr = np.divide(cross, spread, out=np.zeros_like(cross), where=spread > 0)
    best = int(np.argmax(corr))
    return best, float(max(corr[best], 0.0))


def _snr_db(sent: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per row (chunk) of equal-shaped ``sent`` and ``got``: the signal-to-noise ratio in dB."""
    return 10 * np.log10((np.sum(sent**2, axis=-1) + 1.0) / (np.sum((sent - got) ** 2, axis=-1) + 1.0))


# --- entropy ---------------------------------------------------------------------------------------


def byte_entropy(data: bytes) -> float:
    """Shannon entropy of the byte histogram of ``data`` in bits per byte (0 for no data)."""
    if not data:
        return 0.0
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).astype(float)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


def clear_bytes(mode: str, kind: str, data: bytes) -> int:
    """How many leading bytes of a reassembled frame are not ciphertext: the SFrame header (e2ee),
    the clear prefix (clear-prefix), or all of them (dtls-srtp)."""
    if mode == "dtls-srtp":
        return len(data)
    if mode == "e2ee":
        try:
            return decode_header(data)[2]
        except MalformedHeader:
            return 0
    ftype = vp8_frame_type(data) if kind == "video" and data else None
    return clear_prefix_length(kind, ftype)  # type: ignore[arg-type]


def ciphertext_entropy(packets: pd.DataFrame, mode: str, kind: str = "video",
                       sframe_publishers: Iterable[str] = ()) -> dict[str, float]:
    """Per publisher: entropy (bits/byte) of all payload bytes of its ``kind`` stream beyond the
    payload descriptors (VP8's, or the SFrame payload format's for ``sframe_publishers``) and the
    clear part (:func:`clear_bytes`), taken together; empty streams are left out."""
    frames, _ = reassemble(packets, sframe_publishers)
    body: dict[str, list[bytes]] = {}
    for publisher, frame in frames:
        if frame.kind == kind:
            body.setdefault(publisher, []).append(frame.data[clear_bytes(mode, kind, frame.data):])
    return {p: byte_entropy(b"".join(parts)) for p, parts in body.items() if any(parts)}


def descriptor_view(packets: pd.DataFrame, sframe_publishers: Iterable[str]) -> pd.DataFrame:
    """What the SFrame RTP payload format shows the SFU, one row per packet of ``sframe_publishers``.

    Columns: ``publisher, kind, ssrc, seq, timestamp, marker`` (the RTP header), ``S, E, T``
    (the descriptor, draft-ietf-avtcore-rtp-sframe-02 §4: first and last fragment, per-packet
    content), ``kid, ctr`` (the SFrame header, RFC 9605 §4.3, readable in every S = 1 fragment;
    None elsewhere or when malformed) and ``fragment`` (bytes after the descriptor). Nothing else in
    the payload is readable without the frame keys.
    """
    names = set(sframe_publishers)
    rows = []
    for row in packets.itertuples(index=False):
        payload = row.payload or b""
        if row.publisher not in names or not payload:
            continue
        first = payload[0]
        kid = ctr = None
        if first & 0x80 and len(payload) > 1:
            try:
                kid, ctr, _ = decode_header(payload[1:])
            except MalformedHeader:
                pass
        rows.append((row.publisher, getattr(row, "kind", None), row.ssrc, row.seq, row.timestamp,
                     bool(row.marker), bool(first & 0x80), bool(first & 0x40), bool(first & 0x20),
                     kid, ctr, len(payload) - 1))
    return pd.DataFrame(rows, columns=["publisher", "kind", "ssrc", "seq", "timestamp", "marker",
                                       "S", "E", "T", "kid", "ctr", "fragment"])
