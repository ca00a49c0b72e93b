"""Pre-encoded clips: each distinct camera scene and microphone encoded once, before the call, and shared.

In a room of many, every participant rendering and VP8-encoding 640x480 at 30 fps in real time is
what a laptop cannot simulate (issue 15: the endpoints, not the SFU, are the cost). A camera's
pictures do not depend on the call, so :func:`encoded_clip` encodes a scene's first ``frames``
pictures once, with aiortc's libvpx settings and a key frame every :data:`KEY_INTERVAL_S`
seconds, and keeps the result for every later call in this process (a cache keyed by scene,
seed, size and length). Each sender still stamps, encrypts and packetizes every frame itself, with
its own SSRC, RTP timestamps and keys (:class:`~e2ee_lab.call.pipeline.MediaSender` with
``clip=``): only the encoder's work is shared.

What changes for the sender: a PLI cannot make the next picture a key frame (the clip is already
encoded), so the request is answered by the clip's next periodic key frame, at most
:data:`KEY_INTERVAL_S` s later, as an SFU switching simulcast layers waits for one.

The microphone likewise (:func:`speech_clip`): a participant's speech chunks Opus-encoded once,
in order (Opus keeps state between frames, so these are exactly the frames a live encoder would
emit), with each chunk's RFC 6464 level, VAD flag and ground truth.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from e2ee_lab.media.codecs import VIDEO_CLOCK, OpusEncoder, VP8Encoder, thumbnail
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource

ENCODINGS = ("live", "clip")  # a call's encode= choices: a live encoder per sender, or shared clips
KEY_INTERVAL_S = 1.0  # a key frame every second of clip
CACHE_LIMIT = 64  # clips kept per process (a 10 s full-size clip is about 1.5 MB)


@dataclass(frozen=True)
class ClipFrame:
    """One pre-encoded picture: the VP8 frame (None if libvpx emitted nothing) and its thumbnail."""

    data: bytes | None
    type: str | None  # "key" / "delta"
    thumbnail: np.ndarray  # every 4th pixel of the picture, what receivers judge a decoded picture by


class EncodedClip:
    """The first ``frames`` pictures of ``scene``, VP8-encoded once (build with :func:`encoded_clip`).

    Raises:
        ValueError: ``frames`` below 1.
    """

    def __init__(self, scene: Scene, frames: int) -> None:
        if frames < 1:
            raise ValueError(f"a clip needs at least one frame, not {frames}")
        self.fps, self.width, self.height = scene.fps, scene.width, scene.height
        self.key_interval = max(1, int(round(KEY_INTERVAL_S * scene.fps)))
        encoder = VP8Encoder(ssrc=0, fps=scene.fps)
        self.frames: list[ClipFrame] = []
        for i in range(frames):
            rgb = scene.rgb(i)
            encoded = encoder.encode(rgb, force_keyframe=i % self.key_interval == 0)
            self.frames.append(ClipFrame(encoded.data if encoded else None, encoded.type if encoded else None,
                                         thumbnail(rgb)))

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int, *, ssrc: int, payload_type: int, timestamp_offset: int) -> EncodedFrame | None:
        """Picture ``index`` as a sender's :class:`EncodedFrame` (its SSRC and RTP timestamp), or None.

        Raises:
            IndexError: ``index`` beyond the clip.
        """
        clip = self.frames[index]
        if clip.data is None:
            return None
        metadata = FrameMetadata(synchronizationSource=ssrc, payloadType=payload_type, kind="video",
                                 width=self.width, height=self.height, frameId=index,
                                 captureTime=index / self.fps)
        timestamp = (timestamp_offset + index * VIDEO_CLOCK // self.fps) % (1 << 32)
        return EncodedFrame(data=clip.data, timestamp=timestamp, metadata=metadata, type=clip.type)


_CACHE: dict[tuple, EncodedClip] = {}
_LOCK = threading.Lock()


def encoded_clip(scene: Scene, frames: int) -> EncodedClip:
    """``scene``'s first ``frames`` pictures encoded, from this process's cache when it has them
    (same scene index, seed, size and frame rate, at least as long); encodes them otherwise."""
    key = (scene.participant, scene.seed, scene.width, scene.height, scene.fps)
    with _LOCK:
        clip = _CACHE.get(key)
        if clip is None or len(clip) < frames:
            clip = EncodedClip(scene, frames)
            if len(_CACHE) >= CACHE_LIMIT:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = clip
        return clip


@dataclass(frozen=True)
class SpeechFrame:
    """One pre-encoded 20 ms chunk: the Opus frame (None if the encoder emitted nothing) and what
    a live sender would know of the chunk."""

    data: bytes | None
    audio_level: int  # RFC 6464 level, 0..127 (-dBov)
    voice_activity: bool  # the V bit
    speaking: bool  # ground truth: inside a phrase
    samples: int  # samples per chunk (960 at 48 kHz)


class SpeechClip:
    """The first ``frames`` chunks of ``speech``, Opus-encoded once (build with :func:`speech_clip`).

    Raises:
        ValueError: ``frames`` below 1.
    """

    def __init__(self, speech: SpeechSource, frames: int, *, cbr: bool = False) -> None:
        if frames < 1:
            raise ValueError(f"a clip needs at least one frame, not {frames}")
        encoder = OpusEncoder(ssrc=0, cbr=cbr)
        self.sample = speech.sample  # held, so the cache's id(sample) key cannot name another sample later
        self.frames: list[SpeechFrame] = []
        for chunk in speech.chunks(frames):
            encoded = encoder.encode(chunk)
            self.frames.append(SpeechFrame(encoded.data if encoded else None, chunk.audio_level,
                                           chunk.voice_activity, chunk.speaking, len(chunk.pcm)))

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int, *, ssrc: int, payload_type: int, timestamp_offset: int) -> EncodedFrame | None:
        """Chunk ``index`` as a sender's :class:`EncodedFrame` (its SSRC and RTP timestamp), or None.

        Raises:
            IndexError: ``index`` beyond the clip.
        """
        clip = self.frames[index]
        if clip.data is None:
            return None
        metadata = FrameMetadata(synchronizationSource=ssrc, payloadType=payload_type, kind="audio",
                                 audioLevel=clip.audio_level, voiceActivity=clip.voice_activity,
                                 frameId=index, captureTime=index * clip.samples / 48_000)
        timestamp = (timestamp_offset + index * clip.samples) % (1 << 32)
        return EncodedFrame(data=clip.data, timestamp=timestamp, metadata=metadata, type=None)


_SPEECH: dict[tuple, SpeechClip] = {}


def speech_clip(speech: SpeechSource, frames: int, *, cbr: bool = False) -> SpeechClip:
    """``speech``'s first ``frames`` chunks encoded, from this process's cache when it has them
    (same sample, offset and bit-rate mode, at least as long); encodes them otherwise."""
    key = (id(speech.sample), speech.offset_samples, cbr)
    with _LOCK:
        clip = _SPEECH.get(key)
        if clip is None or len(clip) < frames:
            clip = SpeechClip(speech, frames, cbr=cbr)
            if len(_SPEECH) >= CACHE_LIMIT:
                _SPEECH.pop(next(iter(_SPEECH)))
            _SPEECH[key] = clip
        return clip
