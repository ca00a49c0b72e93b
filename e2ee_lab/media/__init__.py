"""Media for the lab: synthetic camera scenes, the speech sample, VP8/Opus codecs, encoded frames.

``scene`` renders each participant's camera (a name badge and a confidential line), ``speech``
plays the committed speech sample in 20 ms chunks with ground truth and RFC 6464 levels,
``codecs`` turns both into whole :class:`EncodedFrame` objects with aiortc's encoders and back
with PyAV's decoders, and ``frame`` holds the W3C-shaped encoded-frame record.

Names are imported lazily (PEP 562), so ``import e2ee_lab.media.frame`` (as the crypto layer
does) does not load aiortc, PyAV or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "codecs": (
        "CodecError",
        "DecodeError",
        "OpusDecoder",
        "OpusEncoder",
        "VP8Decoder",
        "VP8Encoder",
        "mean_abs_error",
        "picture_matches",
        "vp8_frame_type",
    ),
    "frame": ("EncodedFrame", "FrameMetadata"),
    "scene": ("Scene", "to_rgb", "to_video_frame", "video_size"),
    "speech": ("AudioChunk", "SpeechSource", "audio_level", "chunk_count", "load_speech"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
