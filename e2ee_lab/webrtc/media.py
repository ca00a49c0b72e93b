"""Media for the aiortc call: the lab's camera and microphone as tracks, and what a receiver decoded.

:class:`SceneTrack` and :class:`SpeechTrack` are ``MediaStreamTrack`` objects that aiortc's senders
pull from: a :class:`~e2ee_lab.media.scene.Scene` picture every ``1/fps`` seconds (``pts`` = frame
index, time base ``1/fps``, so aiortc's VP8 encoder stamps it ``index * 90000 / fps``) and a 20 ms
:class:`~e2ee_lab.media.speech.SpeechSource` chunk every 20 ms (48 kHz mono s16, ``pts`` = index *
960). Both wait for the call's media start (all peer connections up, keys agreed), then pace
themselves in real time, and end after a fixed number of frames (aiortc's sender stops cleanly on
``MediaStreamError``). The scene track keeps a thumbnail of every picture it handed out, the
ground truth receivers are judged against. Given a pre-encoded clip
(:class:`~e2ee_lab.call.clip.EncodedClip`), it hands out the clip's VP8 frames as ``av.Packet``
instead: aiortc's public pre-encoded path (``Encoder.pack``) packetizes them unencoded, through the
same frame transform, so a big call does not render and encode in real time; a PLI is then answered
by the clip's next periodic key frame.

:class:`SilentTrack` never yields a frame: the SFU adds one per forwarded stream so that aiortc
negotiates an SSRC and an m-section for it (its ``id`` names the publisher and goes into SDP
``a=msid``, RFC 8830), while the packets themselves are forwarded below aiortc's sender.

:class:`TrackSink` reads a remote track (the frames aiortc's decoder thread produced) and keeps one
:class:`~e2ee_lab.call.pipeline.ReceivedFrame` per frame. As in the lab's own pipeline, a video
frame counts as decoded only when its picture matches the one the publisher sent
(:func:`~e2ee_lab.media.codecs.picture_matches` on every 4th pixel). A sink without ground truth
(a receiver in a worker process, :mod:`e2ee_lab.webrtc.workers`) records each frame's RTP
timestamp, arrival and thumbnail instead, for the call to judge with :meth:`TrackSink.judge` after it.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import math
from collections.abc import Callable

import av
import numpy as np
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from e2ee_lab.call.clip import EncodedClip
from e2ee_lab.call.pipeline import ReceivedFrame, decoded_thumbnail, thumbnail
from e2ee_lab.media.codecs import mean_abs_error, picture_matches
from e2ee_lab.media.scene import Scene, to_rgb, to_video_frame
from e2ee_lab.media.speech import AUDIO_RATE, FRAME_MS, SpeechSource

from .transform import ReceiverTransform

Clock = Callable[[], float]
MIME_TYPES = {"video": "video/VP8", "audio": "audio/opus"}
RECENT_PICTURES = 8  # decoded pictures a sink without ground truth keeps (the latest matching one is shown)
#: (publisher, kind, RTP timestamp) -> (frame index, send time, sent thumbnail or None), or None
Truth = Callable[[str, str, int], "tuple[int, float, np.ndarray | None] | None"]


class _PacedTrack(MediaStreamTrack):
    """A track that yields ``frames`` items, item ``i`` at ``start + i * interval`` (loop time)."""

    def __init__(self, start: asyncio.Future, frames: int, interval: float) -> None:
        super().__init__()
        self._start, self.frames, self.interval = start, frames, interval
        self.next_index = 0

    async def _wait_turn(self) -> int:
        start = await asyncio.shield(self._start)
        index = self.next_index
        if index >= self.frames:
            self.stop()
            raise MediaStreamError
        delay = start + index * self.interval - asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, delay))
        self.next_index += 1
        return index


class SceneTrack(_PacedTrack):
    """A participant's camera: :class:`Scene` pictures at the scene's frame rate."""

    kind = "video"

    def __init__(self, scene: Scene, *, start: asyncio.Future, frames: int, clip: EncodedClip | None = None) -> None:
        """ValueError: a ``clip`` shorter than ``frames`` or of another frame rate."""
        super().__init__(start, frames, 1.0 / scene.fps)
        if clip is not None and (len(clip) < frames or clip.fps != scene.fps):
            raise ValueError(f"the clip holds {len(clip)} frames at {clip.fps} fps; the track needs {frames} at {scene.fps}")
        self.scene, self.clip = scene, clip
        self.thumbnails: dict[int, np.ndarray] = {}

    async def recv(self):
        """The next picture as a yuv420p ``VideoFrame`` (pts = index, time base 1/fps), or with a
        clip as the clip's encoded ``av.Packet`` (same pts and time base)."""
        index = await self._wait_turn()
        if self.clip is not None:
            picture = self.clip.frames[index]
            self.thumbnails[index] = picture.thumbnail
            packet = av.Packet(picture.data or b"")  # no data: libvpx emitted nothing, nothing is sent
            packet.pts, packet.time_base = index, fractions.Fraction(1, self.scene.fps)
            return packet
        rgb = self.scene.rgb(index)
        self.thumbnails[index] = thumbnail(rgb)
        return to_video_frame(rgb, pts=index, fps=self.scene.fps)


class SpeechTrack(_PacedTrack):
    """A participant's microphone: 20 ms :class:`SpeechSource` chunks (48 kHz mono s16)."""

    kind = "audio"

    def __init__(self, speech: SpeechSource, *, start: asyncio.Future, frames: int) -> None:
        super().__init__(start, frames, FRAME_MS / 1000)
        self.speech = speech

    async def recv(self):
        """The next chunk as an ``AudioFrame`` (pts = index * 960, time base 1/48000)."""
        index = await self._wait_turn()
        frame = self.speech.chunk(index).to_av_frame()
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


class SilentTrack(MediaStreamTrack):
    """A track that never yields a frame; ``id`` is the label the SFU gives the forwarded stream."""

    def __init__(self, kind: str, label: str) -> None:
        super().__init__()
        self.kind = kind
        self._label = label
        self._never: asyncio.Future | None = None

    @property
    def id(self) -> str:
        return self._label

    async def recv(self):
        """Wait forever (until the sender is stopped and this task cancelled)."""
        if self._never is None:
            self._never = asyncio.get_running_loop().create_future()
        await self._never
        raise MediaStreamError  # not reached


def prefer(transceiver, kind: str) -> None:
    """Offer/accept only VP8 (video) or Opus (audio), without RTX: the codecs the lab reads."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType == MIME_TYPES[kind]])


def track_label(publisher: str, kind: str) -> str:
    """The track id the SFU gives ``publisher``'s ``kind`` stream (an SDP msid token)."""
    return f"{publisher}-{kind}"


def parse_track_label(label: str) -> tuple[str, str] | None:
    """(publisher, kind) from :func:`track_label`, or None for any other id."""
    publisher, _, kind = label.rpartition("-")
    return (publisher, kind) if publisher and kind in ("audio", "video") else None


class TrackSink:
    """Reads one remote track until it ends and records what was decoded.

    Args:
        track: the remote ``MediaStreamTrack``.
        receiver, publisher, kind: who receives, whose stream, "audio"/"video".
        transform: the receiver's :class:`~e2ee_lab.webrtc.transform.ReceiverTransform` (it knows
            each frame's RTP timestamp and size).
        truth: what the publisher sent at an RTP timestamp (the harness's ground truth); None: record
            what was decoded, to be judged later with :meth:`judge`.
        clock: seconds since the call started.
    """

    def __init__(self, track, *, receiver: str, publisher: str, kind: str, transform: ReceiverTransform,
                 truth: Truth | None, clock: Clock) -> None:
        self.track, self.receiver, self.publisher, self.kind = track, receiver, publisher, kind
        self.transform, self.truth, self.clock = transform, truth, clock
        self.records: list[ReceivedFrame] = []
        self._latest = None  # (frame index, VideoFrame) of the latest matching picture
        #: without ``truth`` (a participant in a worker process, whose publishers live elsewhere):
        #: (RTP timestamp, arrival, decoded thumbnail or None) per frame, judged after the call
        #: (:mod:`e2ee_lab.webrtc.workers`), and the last :data:`RECENT_PICTURES` decoded pictures
        self.unjudged: list[tuple[int | None, float, np.ndarray | None]] = []
        self.recent: collections.deque = collections.deque(maxlen=RECENT_PICTURES)

    async def run(self) -> None:
        """Consume frames until the track ends."""
        while True:
            try:
                frame = await self.track.recv()
            except MediaStreamError:
                return
            self._on_frame(frame)

    def _on_frame(self, frame) -> None:
        now = self.clock()
        timestamp = self.transform.wire_timestamp(frame.pts)
        if self.truth is None:
            got = decoded_thumbnail(frame) if self.kind == "video" else None
            self.unjudged.append((timestamp, now, got))
            if self.kind == "video":
                self.recent.append((timestamp, frame))
            return
        record, matched = self.judge(timestamp, now, frame)
        if matched:
            self._latest = (record.frame_index, frame)
        self.records.append(record)

    def judge(self, timestamp: int | None, now: float, picture) -> tuple[ReceivedFrame, bool]:
        """The record of one decoded frame with RTP ``timestamp`` read at ``now``, judged against
        ``truth``, and whether its picture matched the one sent. ``picture``: the decoded
        ``VideoFrame`` or its :func:`~e2ee_lab.call.pipeline.decoded_thumbnail` (None for audio)."""
        sent = self.truth(self.publisher, self.kind, timestamp) if timestamp is not None else None
        index, sent_at, thumb = sent if sent else (-1, math.nan, None)
        opened = self.transform.opened(timestamp) if timestamp is not None else None
        reason, mae, frame_type, matched = "", math.nan, None, False
        if self.kind == "video":  # the decoder's frames carry no key flag: the VP8 header tells
            frame_type = opened.frame_type if opened is not None else None
            if thumb is None:
                reason = "unknown_frame"
            else:
                got = picture if isinstance(picture, np.ndarray) else decoded_thumbnail(picture)
                mae = mean_abs_error(got, thumb) if got.shape == thumb.shape else math.inf
                if picture_matches(got, thumb):
                    matched = True
                else:
                    reason = "garbage_picture"
        elif sent is None:
            reason = "unknown_frame"
        return ReceivedFrame(
            receiver=self.receiver, publisher=self.publisher, kind=self.kind,
            ssrc=opened.ssrc if opened else -1, timestamp=timestamp if timestamp is not None else -1,
            frame_index=index, frame_type=frame_type, packets=-1, size=opened.size if opened else -1,
            arrival=now, latency=now - sent_at, decrypted=True, decoded=not reason, mae=mae,
            reason=reason), matched

    def dropped_records(self) -> list[ReceivedFrame]:
        """Rows for the frames the receive transform refused (they never reached the decoder)."""
        rows = []
        for opened in self.transform.records:
            if not opened.reason:
                continue
            sent = self.truth(self.publisher, self.kind, opened.timestamp)
            index, sent_at = (sent[0], sent[1]) if sent else (-1, math.nan)
            rows.append(ReceivedFrame(
                receiver=self.receiver, publisher=self.publisher, kind=self.kind, ssrc=opened.ssrc,
                timestamp=opened.timestamp, frame_index=index, frame_type=None, packets=-1,
                size=opened.size, arrival=opened.time, latency=opened.time - sent_at,
                decrypted=False, decoded=False, mae=math.nan, reason=opened.reason))
        return rows

    @property
    def latest_picture(self) -> tuple[int, np.ndarray] | None:
        """The latest picture that matched what was sent, as ``(frame index, RGB)``."""
        if self._latest is None:
            return None
        return self._latest[0], to_rgb(self._latest[1])
