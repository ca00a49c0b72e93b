"""Real encoded frames for the benchmarks: Opus speech and VP8 scenes at three picture sizes.

A :class:`MediaSet` is one medium's representative frames, encoded by the lab's own codecs
(:mod:`e2ee_lab.media.codecs`, i.e. aiortc's libvpx and libopus settings): Opus 20 ms frames of the
shipped speech sample (RFC 7587: one frame per packet, 50 frames/s), and VP8 frames (RFC 6386) of the
badge :class:`~e2ee_lab.media.scene.Scene` at 320x240, 640x480 and 1280x720, 30 frames/s, each at a
bit rate typical for its size (:data:`VIDEO_BITRATES`; aiortc clamps to 250 kbit/s..1.5 Mbit/s).
The encoder first runs ``warmup`` frames (discarded) so rate control has settled, then encodes
``frames`` frames with a key frame forced every ``key_interval`` frames (what a PLI on a join
does), so each set holds key and delta frames. The set keeps the codec inputs (pictures, speech
chunks) too, so the pipeline benchmark can encode the same frames again with the codec in the loop.
Sets are cached per argument tuple: ``e2ee-lab bench all`` encodes each only once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from e2ee_lab.media.frame import EncodedFrame, Kind

AUDIO_FPS = 50  # Opus 20 ms frames
VIDEO_FPS = 30
VIDEO_BITRATES = {(320, 240): 300_000, (640, 480): 800_000, (1280, 720): 1_500_000}  # bit/s
MEDIA = ("opus", "vp8-320x240", "vp8-640x480", "vp8-1280x720")  # every medium, in report order
DEFAULT_FRAMES = 30
DEFAULT_KEY_INTERVAL = 15
PUBLISHER_SSRC = 0x5EED0001


@dataclass(frozen=True, eq=False)
class MediaSet:
    """One medium's encoded frames and the inputs they came from."""

    name: str  # "opus" or "vp8-<w>x<h>"
    kind: Kind  # "audio" or "video"
    width: int | None  # video picture size
    height: int | None
    fps: int  # frames per second (50 audio, 30 video)
    frames: tuple[EncodedFrame, ...]  # the encoded frames, in order
    inputs: tuple[Any, ...]  # the codec input of each timed frame (av.VideoFrame or AudioChunk)
    warmup_inputs: tuple[Any, ...]  # inputs encoded (and discarded) before the timed ones
    key_positions: frozenset[int]  # input positions where a key frame was forced (video)

    @property
    def bitrate_bps(self) -> float:
        """Mean bit rate of the frames at the medium's frame rate."""
        return sum(len(f.data) for f in self.frames) * 8 * self.fps / len(self.frames)

    def frame_types(self) -> list[str]:
        """``"audio"`` for Opus frames, ``"key"``/``"delta"`` for VP8 frames, in order."""
        return ["audio" if f.kind == "audio" else str(f.type) for f in self.frames]

    def new_encoder(self):
        """A fresh encoder with the settings the set was made with (VP8Encoder or OpusEncoder)."""
        from e2ee_lab.media.codecs import OpusEncoder, VP8Encoder

        if self.kind == "audio":
            return OpusEncoder(ssrc=PUBLISHER_SSRC)
        return VP8Encoder(ssrc=PUBLISHER_SSRC, fps=self.fps, bitrate=VIDEO_BITRATES[self.width, self.height])

    def new_decoder(self):
        """A fresh decoder for the medium (VP8Decoder with libvpx, or OpusDecoder)."""
        from e2ee_lab.media.codecs import OpusDecoder, VP8Decoder

        return OpusDecoder() if self.kind == "audio" else VP8Decoder()

    def encode(self, encoder, position: int, item: Any) -> EncodedFrame | None:
        """Encode one input; a key frame is forced at :attr:`key_positions` (video)."""
        if self.kind == "audio":
            return encoder.encode(item)
        return encoder.encode(item, force_keyframe=position in self.key_positions)


def parse_media(name: str) -> tuple[Kind, int | None, int | None]:
    """``"opus"`` → audio; ``"vp8-640x480"`` → video 640x480.

    Raises:
        ValueError: any other name, or a VP8 size without a bit rate in :data:`VIDEO_BITRATES`.
    """
    if name == "opus":
        return "audio", None, None
    try:
        codec, size = name.split("-")
        width, height = (int(v) for v in size.split("x"))
    except ValueError:
        raise ValueError(f"unknown medium {name!r}; expected one of {', '.join(MEDIA)}") from None
    if codec != "vp8" or (width, height) not in VIDEO_BITRATES:
        raise ValueError(f"unknown medium {name!r}; expected one of {', '.join(MEDIA)}")
    return "video", width, height


def media_set(name: str, frames: int = DEFAULT_FRAMES, *, warmup: int | None = None,
              key_interval: int = DEFAULT_KEY_INTERVAL, seed: int = 0) -> MediaSet:
    """The encoded frames of medium ``name`` (see :data:`MEDIA`), cached per arguments.

    Args:
        frames: how many frames to keep.  warmup: frames encoded first and dropped (default:
            ``frames``).  key_interval: force a video key frame every this many frames, from the
            first kept one.  seed: the scene's colours and motion.
    Raises:
        ValueError: unknown medium, ``frames`` or ``key_interval`` below 1, negative ``warmup``.
    """
    if frames < 1 or key_interval < 1 or (warmup is not None and warmup < 0):
        raise ValueError("frames and key_interval must be at least 1, warmup at least 0")
    return _media_set(name, frames, frames if warmup is None else warmup, key_interval, seed)


@lru_cache(maxsize=8)
def _media_set(name: str, frames: int, warmup: int, key_interval: int, seed: int) -> MediaSet:
    kind, width, height = parse_media(name)
    inputs = _audio_inputs(warmup + frames) if kind == "audio" else \
        _video_inputs(width, height, warmup + frames, seed)
    keys = frozenset(range(0, frames, key_interval)) if kind == "video" else frozenset()
    shell = MediaSet(name, kind, width, height, AUDIO_FPS if kind == "audio" else VIDEO_FPS, (),
                     tuple(inputs[warmup:]), tuple(inputs[:warmup]), keys)
    encoder = shell.new_encoder()
    for item in shell.warmup_inputs:
        encoder.encode(item)
    encoded = [shell.encode(encoder, i, item) for i, item in enumerate(shell.inputs)]
    kept = tuple(f for f in encoded if f is not None)
    if not kept:
        raise RuntimeError(f"the {name} encoder produced no frame")
    return MediaSet(name, kind, width, height, shell.fps, kept, shell.inputs, shell.warmup_inputs, keys)


def _audio_inputs(count: int) -> list:
    from e2ee_lab.media.speech import SpeechSource

    return list(SpeechSource().chunks(count))


def _video_inputs(width: int, height: int, count: int, seed: int) -> list:
    from e2ee_lab.media.scene import Scene

    return list(Scene(0, seed=seed, width=width, height=height, fps=VIDEO_FPS).frames(count))
