"""Janus's own recording of a room, read back as the SFU's view: ``.mjr`` files, ``janus-pp-rec``, decode.

A VideoRoom room created with ``record: true`` writes one ``.mjr`` file per publisher stream
(``videoroom-<room>-user-<feed>-<time>-<video|audio>-<mindex>.mjr``). The format (Janus
``src/record.c``): the magic ``MJR00002``; at the first packet a 2-byte length and a JSON header
(``t`` a/v, ``c`` codec, ``s``/``u`` times, ``e`` true when the stream was marked end-to-end
encrypted before its first packet); then per packet ``MEET``, a 4-byte time offset (ms), a
2-byte length and the RTP packet as Janus received it after SRTP, its timestamps rebased to
start at 0 and its sequence numbers at 1. :func:`read_mjr` parses one; the packets are what Janus saw.

:func:`convert` runs Janus's post-processor, ``janus-pp-rec file.mjr out.webm|out.opus``, the tool
an operator uses to play a recording back, and keeps its log (for SFrame video it says "No key
frame??"; for a header marked ``e`` it refuses "End-to-end encrypted media recording"). The output
is demuxed with PyAV and every frame goes through the lab's own judging
(:func:`~e2ee_lab.analysis.sfu_view.analyze_frames`, as the lab SFU's view): a video frame is
*decodable* when libvpx turns it into the picture the publisher sent, audio *intelligible* when
the recovered speech matches the sent speech (per-frame SNR and stream correlation). Frames are
named by their RTP timestamp: the recording's timestamps start at 0 at the publisher's first
packet, so frame ``k`` of the output sits at the publisher's first sent timestamp plus its
presentation time (snapped to the nearest sent frame; a frame with none within half a frame
period stays unnamed and cannot count as decodable).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pandas as pd

from e2ee_lab.analysis.sfu_view import SFUView, analyze_frames
from e2ee_lab.media.scene import Scene
from e2ee_lab.rtp import Codec, FrameAssembled, RTPError, parse_rtp

from .errors import JanusError

MAGIC = b"MJR00002"
PACKET_MAGIC = b"MEET"
_PACKET_HEAD = struct.Struct("!4sIH")  # "MEET", time offset (ms), length
NAME = re.compile(r"videoroom-(?P<room>[^-]+)-user-(?P<feed>\d+)-\d+-(?P<kind>video|audio)-(?P<mindex>\d+)\.mjr$")
CLOCK = {"video": 90_000, "audio": 48_000}
TARGET = {"video": "webm", "audio": "opus"}
CONVERT_TIMEOUT = 60.0  # seconds janus-pp-rec may take per file
LOG_MARKERS = ("No key frame", "Invalid partitions", "End-to-end encrypted", "ERR", "WARN")


class RecordingError(JanusError):
    """A ``.mjr`` file that is not in Janus's format (truncated, wrong magic, bad header)."""

    reason = "bad_recording"


@dataclass
class Recording:
    """One recorded stream: its file, publisher feed, header and RTP packets (after SRTP)."""

    path: Path
    feed: int
    kind: str  # "video" or "audio"
    header: dict
    packets: list[bytes] = field(default_factory=list)
    publisher: str = "?"  # the participant whose feed it is (set by the caller)

    @property
    def marked_e2ee(self) -> bool:
        """True when the header says the media is end-to-end encrypted (``"e": true``)."""
        return self.header.get("e") is True

    def frames_recorded(self) -> int:
        """Video: distinct RTP timestamps among the packets; audio: packets (one frame each)."""
        if self.kind == "audio":
            return len(self.packets)
        stamps = set()
        for data in self.packets:
            try:
                stamps.add(parse_rtp(data).timestamp)
            except RTPError:
                continue
        return len(stamps)


def read_mjr(path: str | Path) -> Recording:
    """Parse one ``.mjr`` file (format in the module docstring).

    Raises:
        RecordingError: a name Janus's VideoRoom does not write, a wrong magic, a truncated
            packet or a header that is not a JSON object.
    """
    path = Path(path)
    match = NAME.search(path.name)
    if match is None:
        raise RecordingError(f"not a VideoRoom recording name: {path.name}")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise RecordingError(f"{path.name}: magic {data[:8]!r}, expected {MAGIC!r}")
    recording = Recording(path, int(match["feed"]), match["kind"], {})
    offset = len(MAGIC)
    if len(data) == offset:
        return recording  # created, nothing written
    if len(data) < offset + 2:
        raise RecordingError(f"{path.name}: truncated header length")
    size = int.from_bytes(data[offset:offset + 2], "big")
    if len(data) < offset + 2 + size:
        raise RecordingError(f"{path.name}: truncated header ({size} bytes announced)")
    try:
        recording.header = json.loads(data[offset + 2:offset + 2 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordingError(f"{path.name}: header is not JSON ({err})") from None
    if not isinstance(recording.header, dict):
        raise RecordingError(f"{path.name}: header is not a JSON object")
    offset += 2 + size
    while offset < len(data):
        if len(data) < offset + _PACKET_HEAD.size:
            raise RecordingError(f"{path.name}: truncated packet header at byte {offset}")
        magic, _, length = _PACKET_HEAD.unpack_from(data, offset)
        start = offset + _PACKET_HEAD.size
        if magic != PACKET_MAGIC or len(data) < start + length:
            raise RecordingError(f"{path.name}: bad or truncated packet at byte {offset}")
        recording.packets.append(data[start:start + length])
        offset = start + length
    return recording


def read_recordings(rec_dir: str | Path, publishers: dict[int, str]) -> list[Recording]:
    """Every VideoRoom ``.mjr`` in ``rec_dir``, named after its publisher (``feed id -> name``)."""
    out = []
    for path in sorted(Path(rec_dir).glob("*.mjr")):
        recording = read_mjr(path)
        recording.publisher = publishers.get(recording.feed, "?")
        out.append(recording)
    return out


@dataclass(frozen=True)
class Converted:
    """What ``janus-pp-rec`` made of one recording."""

    source: Path
    target: Path | None  # None when it wrote nothing
    returncode: int
    notes: tuple[str, ...]  # its log lines that matter (errors, warnings, "No key frame??")
    note_counts: dict[str, int]  # how often each marker of LOG_MARKERS appeared


def convert(recording: Recording, out_dir: str | Path) -> Converted:
    """Run ``janus-pp-rec`` on ``recording`` into ``out_dir`` (``.webm`` for VP8, ``.opus``).

    Raises:
        JanusError: ``janus-pp-rec`` is not installed (``janus-tools``) or took too long.
    """
    tool = shutil.which("janus-pp-rec")
    if tool is None:
        raise JanusError("janus-pp-rec is not installed (apt-get install janus-tools)")
    target = Path(out_dir) / (recording.path.stem + "." + TARGET[recording.kind])
    try:
        done = subprocess.run([tool, "-o", str(recording.path), str(target)], capture_output=True,
                              timeout=CONVERT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise JanusError(f"janus-pp-rec took more than {CONVERT_TIMEOUT} s on {recording.path.name}") from None
    log = (done.stdout + done.stderr).decode(errors="replace").splitlines()
    notes = tuple(line.strip() for line in log if any(m in line for m in LOG_MARKERS))
    counts = {m: sum(m in line for line in log) for m in LOG_MARKERS[:3]}
    written = target if target.exists() and target.stat().st_size > 0 else None
    return Converted(recording.path, written, done.returncode, notes, counts)


def demux(path: Path) -> list[tuple[float, bytes]]:
    """The packets of the first audio or video stream of a media file: (seconds, bytes).

    A file PyAV cannot open yields no packet (what a player would show: nothing).
    """
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError):
        return []
    with container:
        streams = container.streams.video or container.streams.audio
        if not streams:
            return []
        stream = streams[0]
        return [(float(p.pts * stream.time_base), bytes(p)) for p in container.demux(stream)
                if p.size and p.pts is not None]


def _snap(stamps: np.ndarray, want: int, tolerance: int) -> int:
    """The sent timestamp nearest ``want`` if within ``tolerance`` ticks, else ``want``."""
    if not len(stamps):
        return want
    i = int(np.abs(stamps - want).argmin())
    return int(stamps[i]) if abs(int(stamps[i]) - want) <= tolerance else want


def output_frames(recording: Recording, packets: list[tuple[float, bytes]], sent: pd.DataFrame,
                  fps: int, stream: int) -> list[tuple[str, FrameAssembled]]:
    """The converted file's packets as frames of ``recording.publisher``, each with the publisher's
    RTP timestamp (module docstring), for :func:`~e2ee_lab.analysis.sfu_view.analyze_frames`;
    ``stream`` numbers the recording (it stands in for the SSRC: one decoder per stream)."""
    kind, clock = recording.kind, CLOCK[recording.kind]
    mine = sent[(sent.participant == recording.publisher) & (sent.kind == kind)].sort_values("frame_index")
    stamps = mine.timestamp.to_numpy(dtype=np.int64)
    first = int(stamps[0]) if len(stamps) else 0
    tolerance = clock // fps // 2 if kind == "video" else 480
    codec = Codec.VP8 if kind == "video" else Codec.OPUS
    frames = []
    for seconds, data in packets:
        stamp = _snap(stamps, first + round(seconds * clock), tolerance)
        frames.append((recording.publisher, FrameAssembled(
            ssrc=stream, payload_type=0, codec=codec, timestamp=stamp,
            first_sequence_number=0, last_sequence_number=0, packet_count=1, data=data,
            marker=True, payload_sizes=(len(data),))))
    return frames


@dataclass
class RecordingView:
    """The SFU's view from Janus's recording: per stream, what was recorded, converted and decoded."""

    view: SFUView
    streams: pd.DataFrame  # one row per recorded stream
    converted: list[Converted]

    def summary(self) -> dict:
        """The lab SFU's view fields, from the recording: ``*_frames_seen`` are the frames Janus
        recorded; ``*_frames_decodable`` / ``*_intelligible`` those janus-pp-rec's output gave back."""
        counts = self.view.summary()
        s = self.streams
        seen = {k: int(s[s.kind == k].frames_recorded.sum()) for k in ("video", "audio")}
        return {"video_frames_seen": seen["video"], "video_frames_converted": int(s[s.kind == "video"].frames_converted.sum()),
                "video_frames_decoded": counts["video_frames_decoded"],
                "video_frames_decodable": counts["video_frames_decodable"],
                "audio_frames_seen": seen["audio"], "audio_frames_converted": int(s[s.kind == "audio"].frames_converted.sum()),
                "audio_frames_decoded": counts["audio_frames_decoded"],
                "audio_frames_intelligible": counts["audio_frames_intelligible"],
                "speech_correlation": counts["speech_correlation"],
                "marked_e2ee": sorted(set(s.marked_e2ee)) if len(s) else [],
                "janus_pp_rec": dict(sum((Counter(c.note_counts) for c in self.converted), Counter()))}


def recording_view(recordings: list[Recording], out_dir: str | Path, sent: pd.DataFrame, *,
                   scenes: dict[str, Scene], speech: dict[str, np.ndarray], fps: int) -> RecordingView:
    """Convert every recording with ``janus-pp-rec`` into ``out_dir`` and judge what comes out."""
    frames, rows, converted = [], [], []
    for stream, rec in enumerate(recordings):
        result = convert(rec, out_dir)
        packets = demux(result.target) if result.target is not None else []
        frames += output_frames(rec, packets, sent, fps, stream)
        converted.append(result)
        rows.append({"publisher": rec.publisher, "kind": rec.kind, "feed": rec.feed, "file": rec.path.name,
                     "marked_e2ee": rec.marked_e2ee, "packets_recorded": len(rec.packets),
                     "frames_recorded": rec.frames_recorded(), "frames_converted": len(packets),
                     "output": result.target.name if result.target else None,
                     "janus_pp_rec": "; ".join(result.notes[:3])})
    view = analyze_frames(frames, sent, scenes=scenes, speech=speech)
    return RecordingView(view, pd.DataFrame(rows), converted)
