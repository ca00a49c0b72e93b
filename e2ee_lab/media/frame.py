"""The encoded frame that flows between encoder, frame transform and packetizer.

:class:`EncodedFrame` mirrors the W3C WebRTC Encoded Transform records (RTCEncodedVideoFrame and
RTCEncodedAudioFrame): ``data`` is the encoded (and, after a transform, encrypted) payload, ``type``
is ``"key"``/``"delta"`` for video and ``None`` for audio (browsers give audio frames no type),
``timestamp`` is the RTP timestamp, and ``metadata`` carries what ``getMetadata()`` would return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FrameType = Literal["key", "delta"]
Kind = Literal["audio", "video"]


@dataclass(frozen=True)
class FrameMetadata:
    """What ``getMetadata()`` returns for an encoded frame (the fields the lab uses)."""

    synchronizationSource: int  # SSRC of the stream
    payloadType: int  # RTP payload type
    kind: Kind  # "audio" or "video"
    width: int | None = None  # video only
    height: int | None = None  # video only
    audioLevel: int | None = None  # audio only: RFC 6464 level, 0 (loudest) .. 127 dBov below
    voiceActivity: bool | None = None  # audio only: the V bit of RFC 6464
    frameId: int | None = None  # sender's running frame number
    captureTime: float | None = None  # seconds since the call started


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded media frame; ``replace(data=...)`` makes the transformed copy."""

    data: bytes
    timestamp: int  # RTP timestamp (90 kHz video, 48 kHz audio)
    metadata: FrameMetadata
    type: FrameType | None = None  # None for audio, as in RTCEncodedAudioFrame

    @property
    def kind(self) -> Kind:
        return self.metadata.kind

    @property
    def is_key(self) -> bool:
        """A video key frame; audio frames are independently decodable and count as key."""
        return self.type != "delta"

    def replace(self, **changes) -> EncodedFrame:
        """A copy with ``changes`` applied (the frame transform's way to swap ``data``)."""
        # The constructor directly: dataclasses.replace costs ~3 µs, a third of a frame's crypto.
        fields = {"data": self.data, "timestamp": self.timestamp, "metadata": self.metadata,
                  "type": self.type}
        fields.update(changes)
        return EncodedFrame(**fields)
