"""What the native participant sent, named by the RTP timestamps libwebrtc put on it.

The lab's aiortc senders stamp frame ``i`` with ``origin + i * ticks`` (the encoder's timestamps),
so :class:`~e2ee_lab.webrtc.call.SentIndex` names a frame from its RTP timestamp. libwebrtc stamps
video with its own capture clock (90 kHz, from when a picture reached the track, plus a random
origin) and audio by samples (960 per 20 ms Opus frame, from a random origin). :class:`NativeTruth`
anchors each native stream on the first RTP timestamp the SFU received from it (the first frame
written, frame 0) and names a later frame by the time elapsed: audio ``(ts - ts0) / 960``; video the
frame written nearest to ``(ts - ts0) / 90000`` s after frame 0 (the write times are recorded).
A video frame is judged against that frame's picture; a neighbour a frame away differs by the
bouncing ball only and still matches (:data:`~e2ee_lab.media.codecs.PICTURE_MATCH_MAE`), so a
misnamed frame can still count as decoded, never a garbage one.
"""

from __future__ import annotations

import bisect
from functools import lru_cache

import numpy as np

from e2ee_lab.call.pipeline import thumbnail
from e2ee_lab.media.codecs import VIDEO_CLOCK
from e2ee_lab.media.speech import FRAME_SAMPLES
from e2ee_lab.webrtc.call import RTP_WRAP, SentIndex



class NativeTruth(SentIndex):
    """Ground truth for every publisher of a native call (module docstring).

    Set ``people`` (the lab's participants), ``native`` (the :class:`NativeParticipant`) and
    ``sfu`` (the :class:`~e2ee_lab.webrtc.sfu.WebRTCSFU`, whose view gives the anchors) before media.
    """

    def __init__(self) -> None:
        super().__init__()
        self.native = None
        self.sfu = None
        self._anchors: dict[str, int] = {}
        self._video: dict[int, int] = {}  # RTP timestamp -> frame index, in the order the SFU saw them
        self._scanned = 0  # rows of the SFU's view already read for video timestamps

    def __call__(self, publisher: str, kind: str, timestamp: int):
        if self.native is None or publisher != self.native.name:
            return super().__call__(publisher, kind, timestamp)
        index = self.native_index(kind, timestamp)
        if index is None:
            return None
        written = self.native.written[kind]
        thumb = self._thumbnail(index) if kind == "video" else None
        return index, written[index], thumb

    def anchor(self, kind: str) -> int | None:
        """The RTP timestamp of the first packet of the native ``kind`` stream the SFU received."""
        if kind not in self._anchors and self.sfu is not None:
            first = next((row[6] for row in self.sfu.view if row[1] == self.native.name and row[2] == kind), None)
            if first is not None:
                self._anchors[kind] = first
        return self._anchors.get(kind)

    def native_index(self, kind: str, timestamp: int) -> int | None:
        """The native participant's frame index for an RTP ``timestamp`` of its ``kind`` stream, or None."""
        origin, written = self.anchor(kind), self.native.written[kind] if self.native else []
        if origin is None or not written:
            return None
        if kind == "audio":
            index = (timestamp - origin) % RTP_WRAP // FRAME_SAMPLES
            return int(index) if index < len(written) else None
        if timestamp not in self._video:
            self._scan_video(origin, written)
        return self._video.get(timestamp)

    def _scan_video(self, origin: int, written: list[float]) -> None:
        """Name the native video timestamps the SFU received since the last scan (module docstring)."""
        rows = self.sfu.view
        offsets = [t - written[0] for t in written]
        last = max(self._video.values(), default=-1)
        for row in rows[self._scanned:]:
            if row[1] != self.native.name or row[2] != "video" or row[6] in self._video:
                continue
            at = (row[6] - origin) % RTP_WRAP / VIDEO_CLOCK
            right = bisect.bisect_left(offsets, at)
            nearest = min((i for i in (right - 1, right) if 0 <= i < len(offsets)),
                          key=lambda i: abs(offsets[i] - at))
            last = max(nearest, last + 1)
            if last < len(written):
                self._video[row[6]] = last
        self._scanned = len(rows)

    def _thumbnail(self, index: int) -> np.ndarray:
        return _scene_thumbnail(self.native.scene, index)


@lru_cache(maxsize=256)
def _scene_thumbnail(scene, index: int) -> np.ndarray:
    return thumbnail(scene.rgb(index))
