"""The loss experiment of a browser call (Lab 10's pitfall 2): one video frame dropped at the SFU.

:class:`OneFrameLoss` is the SFU's forward filter that drops every packet of one video frame of a
publisher toward the page; :func:`recovery` measures the page's freeze from its render times;
:func:`depacketizer_reading` says what Chrome's VP8 depacketizer makes of the dropped frame's first
RTP payload under SFrame: after the VP8 payload descriptor (RFC 7741 §4.2) comes the SFrame header
(RFC 9605 §4.3), whose config byte it takes for the first byte of the VP8 frame tag, bit 0 being
the P bit (RFC 6386 §9.1, 0 = key frame). :func:`jump_counters` moves the Python senders' video CTR
ahead (``run_browser_call(video_ctr_jump=...)``) so a short call reaches a longer CTR encoding.
"""

from __future__ import annotations

import time

from e2ee_lab.crypto.sframe import SFrameError, decode_header
from e2ee_lab.rtp import RTPError
from e2ee_lab.rtp.vp8 import VP8PayloadDescriptor

FREEZE_GAP = 0.3  # seconds without a rendered frame that count as a freeze
CTR_JUMP_AT = 0.5  # seconds into the media at which ``video_ctr_jump`` applies (after the first key frame)


class OneFrameLoss:
    """SFU forward filter: drop every packet of one video frame of ``publisher`` toward ``subscriber``."""

    def __init__(self, publisher: str, subscriber: str, at: float, clock) -> None:
        self.publisher, self.subscriber, self.at, self._clock = publisher, subscriber, at, clock
        self.timestamp: int | None = None
        self.wall_ms: float | None = None
        self.time: float | None = None  # the call's clock when the frame was dropped
        self.packets = 0
        self.first_payload: bytes | None = None  # the dropped frame's first RTP payload
        self._last: int | None = None

    def __call__(self, publisher: str, subscriber: str, kind: str, packet) -> bool:
        if (publisher, subscriber, kind) != (self.publisher, self.subscriber, "video"):
            return False
        new_frame, self._last = packet.timestamp != self._last, packet.timestamp
        if self.timestamp is None and new_frame and self._clock() >= self.at:
            self.timestamp, self.wall_ms, self.time = packet.timestamp, time.time() * 1000, self._clock()
        hit = packet.timestamp == self.timestamp
        self.packets += hit
        if hit and self.first_payload is None:
            self.first_payload = bytes(packet.payload)
        return hit


def jump_counters(cryptos: list, ctr: int) -> None:
    """Every SFrame frame crypto in ``cryptos`` sends its video from CTR ``ctr`` on (never back)."""
    for crypto in cryptos:
        crypto.min_ctr = {"video": ctr}


def depacketizer_reading(payload: bytes | None) -> dict | None:
    """What Chrome's VP8 depacketizer reads from the first RTP payload of an SFrame-encrypted frame:
    after the VP8 payload descriptor (RFC 7741 §4.2) comes the SFrame header (RFC 9605 §4.3), whose
    config byte it takes for the first byte of the VP8 frame tag; bit 0 is the P bit (RFC 6386
    §9.1, 0 = key frame). None when the payload does not parse as that."""
    try:
        _, rest = VP8PayloadDescriptor.parse(payload or b"")
        kid, ctr, _ = decode_header(rest)
    except (RTPError, SFrameError):
        return None
    return {"kid": kid, "kid_hex": f"{kid:#x}", "ctr": ctr, "config_byte": f"{rest[0]:08b}",
            "p_bit": rest[0] & 1, "reads_as": "key frame" if rest[0] & 1 == 0 else "delta frame"}


# --- the call ----------------------------------------------------------------------------------------


def recovery(render_ms: list[float], drop_ms: float | None) -> dict:
    """Freeze after the dropped frame: the first render after a gap of more than FREEZE_GAP s."""
    if drop_ms is None:
        return {"dropped": False}
    after = [t for t in render_ms if t > drop_ms]
    previous = max([t for t in render_ms if t <= drop_ms], default=drop_ms)
    for t in after:
        if t - previous > FREEZE_GAP * 1000:
            return {"dropped": True, "recovered_after_s": round((t - drop_ms) / 1000, 3),
                    "frames_rendered_after_drop": len(after)}
        previous = t
    frozen = not after or (render_ms[-1] < drop_ms + FREEZE_GAP * 1000)
    return {"dropped": True, "recovered_after_s": None if frozen else 0.0,
            "frames_rendered_after_drop": len(after)}
