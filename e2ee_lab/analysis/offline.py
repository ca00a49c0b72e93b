"""Offline analysis of a call's capture: exactly what the SFU (with its key log) or the wire shows.

:func:`analyze` reads a pcap (:func:`~e2ee_lab.capture.pcap.read_pcap`) and feeds its datagrams to
the capture reader (:class:`~e2ee_lab.analysis.reader.CaptureReader`), which tells STUN, DTLS and
SRTP/SRTCP apart by their first byte (RFC 7983 §7, RFC 5761 §4), finds each datagram's leg and
direction in the SFU's key log (RFC 5764 §4.2 keys, one entry per leg), unprotects SRTP/SRTCP with
pylibsrtp as the SFU did (RFC 3711 §3.3, §3.4; RFC 7714), reads the RTP header and extensions
(RFC 3550 §5.1, RFC 8285, the RFC 6464 audio level) and reassembles frames per SSRC
(:class:`~e2ee_lab.rtp.FrameAssembler`, RFC 7741 / RFC 7587; a stream in the SFrame RTP payload
format, announced or recognised, from its descriptors' S..E runs: ``payload_format``); this module hands the frames to the
VP8 and Opus decoders and judges them. Where a frame begins, the bytes after the VP8 payload
descriptor (or the Opus payload) are read as an SFrame header (RFC 9605 §4.3): KID and CTR are
clear in E2EE mode, and a stream whose headers keep one KID with rising CTRs is marked
``sframe_plausible``. With ``keys=None`` the analysis is the wire view of an eavesdropper: RTP
headers and the audio level are clear in SRTP, payloads are ciphertext, and the frames it groups
by RTP timestamp decode to nothing. The ``e2ee-lab analyze`` command is :mod:`e2ee_lab.analysis.command`.

A video frame is *decoded* when libvpx produced a picture; an audio frame when libopus produced
samples (Opus has no integrity check, so ciphertext usually "decodes" to noise). Given reference
media (the sent picture / 20 ms of speech per ``(ssrc, rtp_timestamp)``), ``matches`` compares
with it and ``decodable`` requires the match; without a reference ``decodable`` equals ``decoded``.
Bad input never crashes: unreadable files raise the :class:`~e2ee_lab.capture.pcap.CaptureError`
family or :class:`~e2ee_lab.transport.errors.KeyLogError`; packets that fail count in ``dropped``
by reason (``srtp_auth_failed``, ``srtp_replay``, ``srtp_no_key``, the RTP layer's reasons).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from aiortc.rtp import HeaderExtensionsMap

from e2ee_lab.analysis.reader import PACKET_COLUMNS, PAYLOAD_FORMATS, CaptureReader, Flow, entropy, sframe_header
from e2ee_lab.capture.pcap import Datagram, PcapContents, PcapSink, load_keys, read_pcap
from e2ee_lab.media.codecs import (
    OPUS_PAYLOAD_TYPE,
    VP8_PAYLOAD_TYPE,
    DecodeError,
    OpusDecoder,
    VP8Decoder,
    picture_matches,
)
from e2ee_lab.media.scene import to_rgb
from e2ee_lab.rtp import MID_ID, Codec, FrameAssembled, make_extensions_map
from e2ee_lab.rtp.vp8 import vp8_frame_type
from e2ee_lab.transport import KeyLogEntry

PAYLOAD_TYPES = {VP8_PAYLOAD_TYPE: Codec.VP8, OPUS_PAYLOAD_TYPE: Codec.OPUS}
AUDIO_MATCH = 0.8  # normalized cross-correlation with the sent speech at the best codec delay
QUIET_RMS = 100.0  # int16 RMS below which 20 ms count as silence (about -50 dBov)
OPUS_DELAY = 312  # samples: libopus's 6.5 ms encoder lookahead at 48 kHz (measured 298-312)
OPUS_DELAY_SLACK = 96  # samples searched either side of OPUS_DELAY (2 ms)
FRAME_COLUMNS = (
    "leg", "direction", "src", "dst", "ssrc", "payload_type", "kind", "timestamp", "first_seq",
    "last_seq", "packets", "size", "frame_type", "width", "height", "decoded", "matches",
    "decodable", "reason", "entropy", "payload_format", "sframe_kid", "sframe_ctr", "sframe_plausible", "time",
)
LOOPBACK_IPS = ("127.0.0.1", "::1")
Reference = Mapping[tuple[int, int], np.ndarray] | Callable[[int, int], np.ndarray | None] | None


def _lookup(references: Reference, ssrc: int, timestamp: int) -> np.ndarray | None:
    if references is None:
        return None
    if callable(references):
        return references(ssrc, timestamp)
    return references.get((ssrc, timestamp))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) if len(x) else 0.0


def audio_matches(
    pcm: np.ndarray, sent: np.ndarray, previous: np.ndarray | None = None
) -> bool | None:
    """Does a decoded 20 ms frame carry the sent speech? None when both are silence.

    The decoder's output lags the input by the codec delay (:data:`OPUS_DELAY`), so the frame is
    compared with ``previous || sent`` at the lags within :data:`OPUS_DELAY_SLACK` of it; it
    matches when the best normalized cross-correlation reaches :data:`AUDIO_MATCH` (an Opus round
    trip scores 0.85-0.99, ciphertext decoded as noise stays below 0.75). A frame of another
    duration, silence against speech, or noise against silence does not match.
    """
    sent = np.asarray(sent, dtype=np.float64)
    x = np.asarray(pcm, dtype=np.float64)
    if len(x) != len(sent):
        return False
    before = np.zeros_like(sent) if previous is None else np.asarray(previous, dtype=np.float64)
    window = np.concatenate([before, sent])
    quiet_sent, quiet_x = _rms(window[len(sent) - OPUS_DELAY:]) < QUIET_RMS, _rms(x) < QUIET_RMS
    if quiet_sent or quiet_x:
        return None if quiet_sent and quiet_x else False
    first = max(len(sent) - OPUS_DELAY - OPUS_DELAY_SLACK, 0)
    last = min(len(sent) - OPUS_DELAY + OPUS_DELAY_SLACK, len(sent))
    window = window[first : last + len(x)]
    corr = np.correlate(window, x, mode="valid")
    energy = np.convolve(np.square(window), np.ones(len(x)), mode="valid")
    ncc = corr / (np.sqrt(energy) * np.linalg.norm(x) + 1e-9)
    return bool(ncc.max() >= AUDIO_MATCH)


class _Decoders:
    """Per-stream decoders and the verdict for each frame."""

    def __init__(self, references: Reference, pixels: bool) -> None:
        self.references = references
        self.pixels = pixels or references is not None  # RGB pictures wanted (0.35 ms a frame)
        self._decoders: dict[tuple[Flow, int], VP8Decoder | OpusDecoder] = {}

    def verdict(self, flow: Flow, frame: FrameAssembled) -> tuple[dict, np.ndarray | None]:
        key = (flow, frame.ssrc)
        if key not in self._decoders:
            self._decoders[key] = VP8Decoder() if frame.codec is Codec.VP8 else OpusDecoder()
        decoder = self._decoders[key]
        out: dict = {"decoded": False, "matches": None, "reason": ""}
        video = frame.codec is Codec.VP8
        try:
            media = decoder.decode(frame.data)
        except DecodeError as err:
            out["reason"] = str(err)
            media = None
        else:
            out["decoded"] = True
            if video:
                out["width"], out["height"] = media.width, media.height
                media = to_rgb(media) if self.pixels else None
        sent = _lookup(self.references, frame.ssrc, frame.timestamp)
        if sent is None:
            out["decodable"] = out["decoded"]
        else:  # silent audio (matches None) proves nothing: not counted as recovered
            out["matches"] = self._matches(frame, media, sent)
            out["decodable"] = out["matches"] is True
        return out, media

    def _matches(self, frame: FrameAssembled, media: np.ndarray | None, sent) -> bool | None:
        if media is None:
            return False
        if frame.codec is Codec.VP8:
            return picture_matches(media, sent)
        previous = _lookup(self.references, frame.ssrc, (frame.timestamp - len(sent)) % (1 << 32))
        return audio_matches(media, sent, previous)


# --- the result ------------------------------------------------------------------------------


@dataclass
class OfflineAnalysis:
    """The result of :func:`analyze`.

    ``packets``: one row per UDP datagram (:data:`PACKET_COLUMNS`): record number, time since the
    first datagram (s), 5-tuple, leg and direction (``to_sfu``/``from_sfu``), kind (stun, dtls, rtp,
    rtcp, unknown), UDP payload size, detail (DTLS handshake messages and offered use_srtp
    profiles; RTCP packet types), whether SRTP/SRTCP was unprotected and why not, the RTP header
    fields and extensions (audio level, voice activity, MID), payload size and entropy (bits/byte
    of what the reader saw: plaintext with keys, ciphertext without), the stream's payload format
    (``"codec"`` or ``"sframe"``, with keys), and, on the first packet of a frame, the SFrame
    KID/CTR its bytes would carry, with ``sframe_plausible`` for the stream.

    ``frames``: one row per reassembled frame (:data:`FRAME_COLUMNS`): flow, SSRC, kind, RTP
    timestamp, sequence numbers, packets, size, ``frame_type`` (the VP8 P bit as an SFU reads it: a
    coin toss on ciphertext; None in the SFrame payload format, which has none), picture size, ``decoded``/``matches``/``decodable`` (module
    docstring), the decoder's refusal, entropy, payload format and SFrame header fields. ``media`` maps a frame's
    row index to its decoded RGB picture or int16 PCM. ``dropped`` counts failures by reason;
    ``skipped`` the pcap records that were not UDP datagrams.
    """

    packets: pd.DataFrame
    frames: pd.DataFrame
    media: dict[int, np.ndarray] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    keyed: bool = False
    decrypted: list[Datagram] = field(default_factory=list, repr=False)  # unprotected datagrams
    frame_data: dict[int, bytes] = field(default_factory=dict, repr=False)  # row -> frame bytes

    def payload_entropy(self, *, kind: str | None = None, leg: str | None = None) -> float:
        """Entropy (bits/byte) of all frame payloads together (optionally one kind or one leg).

        The frame bytes exclude RTP headers and VP8 descriptors. SFrame ciphertext scores about
        7.99, but compressed VP8 scores nearly as high (7.98 measured): a high entropy says
        "compressed or encrypted", a decoder says which.
        """
        data = b"".join(self._frame_bytes(kind, leg))
        return entropy(data)

    def _frame_bytes(self, kind: str | None, leg: str | None) -> Iterable[bytes]:
        frames = self.frames
        for index, row in frames.iterrows():
            if (kind is None or row["kind"] == kind) and (leg is None or row["leg"] == leg):
                yield self.frame_data[index]

    def summary(self) -> dict:
        """Counts for a report: packets by kind, decrypted, frames, decoded, decodable, drops,
        and ``all_loopback`` (every datagram between loopback addresses: the lab never leaves the machine)."""
        p, f = self.packets, self.frames
        loopback = p.src_ip.isin(LOOPBACK_IPS) & p.dst_ip.isin(LOOPBACK_IPS)
        out = {"keys": self.keyed, "datagrams": len(p), "all_loopback": bool(loopback.all()),
               "packets_by_kind": {k: int(v) for k, v in p["kind"].value_counts().items()},
               "srtp_decrypted": int(p["decrypted"].sum()) if len(p) else 0}
        for kind in ("video", "audio"):
            part = f[f["kind"] == kind]
            out[f"{kind}_frames"] = len(part)
            out[f"{kind}_frames_decoded"] = int(part["decoded"].sum())
            out[f"{kind}_frames_decodable"] = int(part["decodable"].sum())
        out["dropped"] = dict(self.dropped)
        out["skipped"] = dict(self.skipped)
        return out

    def table(self) -> str:
        """A short text table: frames per leg, direction and kind, then the drop counters."""
        f = self.frames
        if len(f):
            grouped = f.groupby(["leg", "direction", "kind"], dropna=False).agg(
                frames=("size", "size"), decoded=("decoded", "sum"),
                decodable=("decodable", "sum"), bytes=("size", "sum"))
            text = grouped.to_string()
        else:
            text = "no frames"
        kinds = ", ".join(f"{k} {v}" for k, v in self.packets["kind"].value_counts().items())
        drops = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        text = f"{len(self.packets)} datagrams ({kinds})\n{text}\ndropped: {drops}"
        audio = f[f["kind"] == "audio"] if len(f) else f
        if len(audio) and audio["matches"].isna().all():
            text += ("\nnote: without the sent audio to compare, 'decodable' audio only means "
                     "libopus produced samples (Opus turns ciphertext into noise)")
        return text

    def write(self, directory: str | Path) -> dict[str, Path]:
        """Write ``sfu-view.csv`` (packets), ``frames.csv`` and, with keys, ``decrypted.pcap``.

        Without keys (the wire view) the names are ``wire-view.csv`` and ``wire-frames.csv``, so the
        two views of one call can sit in one directory.

        The decrypted pcap holds the SRTP/SRTCP datagrams that were unprotected, with their
        addresses, ports and times, carrying the plaintext RTP/RTCP, so tshark's RTP, VP8 and Opus
        dissectors read them. DTLS is left out: seeing a use_srtp handshake, tshark would take the
        5-tuple for SRTP and not look inside the payloads. Returns the paths written by name.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = ({"packets": out / "sfu-view.csv", "frames": out / "frames.csv"} if self.keyed
                 else {"packets": out / "wire-view.csv", "frames": out / "wire-frames.csv"})
        self.packets.to_csv(paths["packets"], index=False)
        self.frames.to_csv(paths["frames"], index=False)
        if self.keyed:
            paths["decrypted"] = out / "decrypted.pcap"
            with PcapSink(paths["decrypted"]) as sink:
                for d in self.decrypted:
                    sink.write_datagram(d.data, d.src, d.dst, d.time)
        return paths


def _plausible_streams(frames: pd.DataFrame) -> dict[tuple, bool]:
    """Per (src, dst, ssrc): do the frames' SFrame headers keep one KID with rising CTRs?"""
    verdicts = {}
    for key, group in frames.groupby(["src", "dst", "ssrc"], sort=False):
        kids, ctrs = group["sframe_kid"], group["sframe_ctr"]
        if kids.isna().any() or len(group) == 0:
            verdicts[key] = False
            continue
        rising = all(b > a for a, b in zip(ctrs, ctrs.iloc[1:]))
        verdicts[key] = bool(kids.nunique() == 1 and rising)
    return verdicts


def _frame_rows(reader: CaptureReader, references: Reference, keep_media: str):
    decoders = _Decoders(references, pixels=keep_media != "none")
    rows, media, data = [], {}, {}
    last: dict[tuple, int] = {}
    for index, (flow, leg, direction, frame) in enumerate(reader.frames):
        verdict, decoded = decoders.verdict(flow, frame)
        kid, ctr = sframe_header(frame.data) if reader.keyed else (None, None)
        packaging = reader.formats.get((flow, frame.ssrc)) if reader.keyed else None
        row = dict.fromkeys(FRAME_COLUMNS)
        row.update(
            leg=leg, direction=direction, src=f"{flow[0][0]}:{flow[0][1]}",
            dst=f"{flow[1][0]}:{flow[1][1]}", ssrc=frame.ssrc, payload_type=frame.payload_type,
            kind=frame.kind, timestamp=frame.timestamp, first_seq=frame.first_sequence_number,
            last_seq=frame.last_sequence_number, packets=frame.packet_count, size=len(frame.data),
            frame_type=vp8_frame_type(frame.data) if frame.codec is Codec.VP8 and packaging != "sframe" else None,
            entropy=entropy(frame.data), payload_format=packaging, sframe_kid=kid, sframe_ctr=ctr,
            time=frame.arrival,
            **verdict,
        )
        rows.append(row)
        data[index] = frame.data
        if decoded is not None and keep_media != "none":
            stream = (flow, frame.ssrc)
            if keep_media == "last" and stream in last and frame.codec is Codec.VP8:
                media.pop(last[stream], None)
            media[index], last[stream] = decoded, index
    return rows, media, data


def analyze(
    path: str | Path | PcapContents,
    keys: str | Path | Iterable[KeyLogEntry] | None = None,
    *,
    references: Reference = None,
    payload_types: Mapping[int, Codec] | None = None,
    extensions_map: HeaderExtensionsMap | None = None,
    keep_media: str = "last",
    payload_format: str = "auto",
) -> OfflineAnalysis:
    """Analyse a capture as the SFU could (with its key log) or as the wire shows it (no keys).

    Args:
        path: a pcap or pcapng file of the call, or its contents as :func:`read_pcap` returned
            them (to analyse one capture several ways without reading it again).
        keys: the SFU's key log (path or :class:`KeyLogEntry` objects), or None for the wire view.
        references: the sent media per ``(ssrc, rtp_timestamp)``: RGB pictures for video, 20 ms
            int16 PCM for audio (a mapping or a function returning None where unknown).
        payload_types: payload type -> codec (default 96 VP8, 111 Opus).
        extensions_map: the senders' header-extension ids (default audio level 1, MID 4).
        keep_media: ``"all"`` decoded pictures and PCM, ``"last"`` (all PCM, the last picture
            of each stream) or ``"none"``.
        payload_format: how the SFU view reads RTP payloads: ``"auto"`` recognises per stream
            whether it is in the SFrame RTP payload format or the codec's
            (:func:`~e2ee_lab.analysis.reader.recognise_payload_format`); ``"sframe"`` or
            ``"codec"`` take every stream as announced. The wire view cannot tell (encrypted).

    Raises:
        PcapFormatError: not a capture. KeyLogMissing: no key log at ``keys``.
        KeyLogError: a malformed key log. ValueError: unknown ``keep_media`` or ``payload_format``.
    """
    if keep_media not in ("all", "last", "none"):
        raise ValueError(f"keep_media must be 'all', 'last' or 'none', not {keep_media!r}")
    if payload_format not in PAYLOAD_FORMATS:
        raise ValueError(f"payload_format must be one of {', '.join(PAYLOAD_FORMATS)}, not {payload_format!r}")
    entries = load_keys(keys)
    contents = path if isinstance(path, PcapContents) else read_pcap(path)
    reader = CaptureReader(entries, payload_types or PAYLOAD_TYPES,
                           extensions_map or make_extensions_map(mid_id=MID_ID), payload_format)
    for datagram in contents.datagrams:
        reader.feed(datagram)
    reader.finish()
    rows, media, data = _frame_rows(reader, references, keep_media)
    frames = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
    packets = pd.DataFrame(reader.rows, columns=list(PACKET_COLUMNS))
    _mark_plausible(packets, frames)
    return OfflineAnalysis(packets, frames, media, reader.dropped, Counter(contents.skipped),
                           reader.keyed, reader.decrypted, data)


def _mark_plausible(packets: pd.DataFrame, frames: pd.DataFrame) -> None:
    verdicts = _plausible_streams(frames)
    frames["sframe_plausible"] = [
        verdicts.get((s, d, ssrc), False) for s, d, ssrc in zip(frames.src, frames.dst, frames.ssrc)
    ]
    src = packets.src_ip.astype(str) + ":" + packets.src_port.astype(str)
    dst = packets.dst_ip.astype(str) + ":" + packets.dst_port.astype(str)
    packets["sframe_plausible"] = [
        verdicts.get((s, d, ssrc)) if not pd.isna(ssrc) else None
        for s, d, ssrc in zip(src, dst, packets.ssrc)
    ]


