"""An Encoded Transform for aiortc shaped like the W3C API: one transform per sender and per receiver.

In a browser, ``sender.transform = new RTCRtpScriptTransform(worker)`` puts a function between the
encoder and the packetizer, and ``receiver.transform`` one between the depacketizer (after the
jitter buffer) and the decoder; each sees ``RTCEncodedVideoFrame``/``RTCEncodedAudioFrame``
objects. :class:`SenderTransform` and :class:`ReceiverTransform` are those functions for aiortc:
they turn aiortc's encoded bytes into the lab's :class:`~e2ee_lab.media.frame.EncodedFrame` and
run the call mode's frame transform (:mod:`e2ee_lab.call.frame_keys`, which drives
:mod:`e2ee_lab.crypto.transforms`: none, RFC 9605 SFrame, or the clear-prefix framing) with keys
from the group key agreement. :func:`attach_sender` and :func:`attach_receiver` install them through
:mod:`e2ee_lab.webrtc.aiortc_hooks`.

A frame the sender's transform refuses is dropped (counted). A frame the receiver's transform
refuses (:data:`~e2ee_lab.call.frame_keys.FRAME_ERRORS`: wrong key, forged tag, replay, garbage)
is dropped before aiortc's decoder thread and counted by reason; for video a key frame is
requested (RFC 4585 §6.3.1 PLI), at most once per :data:`PLI_INTERVAL` per stream, so a run of
failures cannot become a PLI storm. Each transform keeps one record per frame.

With the SFrame RTP payload format (``rtp_sframe``, draft-ietf-avtcore-rtp-sframe-02,
:mod:`e2ee_lab.webrtc.payload_format`) the sender's transform also makes the RTP payloads (per
frame: the ciphertext cut behind descriptors; per packet: each codec payload encrypted), and a
receiver of per-packet content finds its frames already decrypted (``upstream_decrypted``: each
payload went through :meth:`ReceiverTransform.unprotect_payload`, with the same KID check) and
passes them through, recorded all the same.

aiortc encodes on executor threads, so a participant's transforms share one lock around its
frame crypto: audio and video have their own KIDs and counters, but one member's key state (its
send counters, RFC 9605 §9.1: never reuse a (base_key, KID, CTR); its replay windows; its key
retirement) serves both, and must not be read and updated by two threads at once. A receiver is
told its stream's announced publisher and kind (from the SFU's SDP track id): a frame whose
authenticated KID names another member or kind is dropped (``kid_stream_mismatch``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from e2ee_lab.call.frame_keys import FRAME_ERRORS, FrameCrypto
from e2ee_lab.call.pipeline import PLI_INTERVAL
from e2ee_lab.media.codecs import vp8_key_frame_size
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.rtp import RTPSFrameMode
from e2ee_lab.rtp.vp8 import vp8_frame_type

from . import aiortc_hooks
from .payload_format import sframe_rtp_payloads
from .errors import WebRTCError

Clock = Callable[[], float]
RTP_WRAP = 1 << 32


class NoFrameCrypto(WebRTCError):
    """A frame reached a transform before the call's frame crypto was set (fail closed: dropped)."""

    reason = "no_frame_crypto"


@dataclass(frozen=True)
class TransformedFrame:
    """One frame through a sender's transform."""

    kind: str  # "video" or "audio"
    media_timestamp: int  # encoder timestamp (RTP clock units, before aiortc adds its random origin)
    frame_index: int  # picture / 20 ms chunk number
    frame_type: str | None  # "key"/"delta" (video), None (audio)
    encoded_size: int  # bytes out of the encoder
    sent_size: int  # bytes after the transform (0 when dropped)
    time: float  # seconds since the call started
    reason: str  # "" when sent, else why it was dropped


@dataclass(frozen=True)
class OpenedFrame:
    """One frame through a receiver's transform."""

    ssrc: int  # SSRC on the SFU -> receiver leg
    timestamp: int  # RTP timestamp as received
    size: int  # frame bytes as reassembled (ciphertext in e2ee mode)
    time: float  # seconds since the call started
    reason: str  # "" when it went on to the decoder, else the drop counter
    frame_type: str | None = None  # "key"/"delta" of the plaintext VP8 frame; None for audio or a drop


class SenderTransform:
    """The transform of one sender (encoder -> transform -> packetizer).

    Args:
        crypto: the participant's frame crypto (the call mode's); None until the keys are agreed
            (frames are dropped until then).
        kind: "video" or "audio".
        ssrc: the sender's SSRC (``metadata.synchronizationSource``).
        payload_type: negotiated payload type (``metadata.payloadType``).
        ticks_per_frame: RTP clock ticks between frames (6000 for 15 fps video, 960 for Opus):
            frame index = media timestamp / ticks_per_frame, rounded.
        lock: the participant's crypto lock; clock: seconds since the call started.
    """

    def __init__(self, crypto: FrameCrypto | None, *, kind: str, ssrc: int, payload_type: int,
                 ticks_per_frame: int, lock: threading.Lock, clock: Clock,
                 rtp_sframe: RTPSFrameMode | None = None) -> None:
        self.crypto, self.kind, self.ssrc, self.payload_type = crypto, kind, ssrc, payload_type
        self.ticks_per_frame, self._lock, self._clock = ticks_per_frame, lock, clock
        self.rtp_sframe = rtp_sframe  # the SFrame payload format's mode, None: the codec's
        self.records: list[TransformedFrame] = []
        self.dropped: Counter[str] = Counter()
        self._by_timestamp: dict[int, TransformedFrame] = {}

    def record(self, media_timestamp: int) -> TransformedFrame | None:
        """The record of the frame with this media timestamp, or None."""
        return self._by_timestamp.get(media_timestamp)

    def frame(self, data: bytes, media_timestamp: int) -> EncodedFrame:
        """aiortc's encoded bytes as an :class:`EncodedFrame` (the W3C record)."""
        index = round(media_timestamp / self.ticks_per_frame)  # PyAV's rescaling may round it down
        if self.kind == "video":
            size = vp8_key_frame_size(data)
            metadata = FrameMetadata(self.ssrc, self.payload_type, "video", width=size and size[0],
                                     height=size and size[1], frameId=index)
            return EncodedFrame(bytes(data), media_timestamp, metadata, vp8_frame_type(data))
        metadata = FrameMetadata(self.ssrc, self.payload_type, "audio", frameId=index)
        return EncodedFrame(bytes(data), media_timestamp, metadata, None)

    def __call__(self, data: bytes, media_timestamp: int) -> bytes | None:
        """Transform one encoded frame; None drops it (the hook's contract)."""
        frame = self.frame(data, media_timestamp)
        with self._lock:
            now = self._clock()
            try:
                out = self._protect(frame, now)(frame.data)
                reason = ""
            except (*FRAME_ERRORS, NoFrameCrypto) as err:
                out, reason = None, err.reason
                self.dropped[reason] += 1
        self._record(frame, len(out or b""), now, reason)
        return out

    def payloads(self, data: bytes, media_timestamp: int, packetize=None, picture_id: int = 0) -> list[bytes]:
        """The frame's RTP payloads in the SFrame payload format (``rtp_sframe``); [] drops it."""
        frame = self.frame(data, media_timestamp)
        with self._lock:
            now = self._clock()
            try:
                out = sframe_rtp_payloads(self.rtp_sframe, frame.data, self._protect(frame, now),
                                          packetize, picture_id)
                reason = ""
            except (*FRAME_ERRORS, NoFrameCrypto) as err:
                out, reason = [], err.reason
                self.dropped[reason] += 1
        self._record(frame, sum(len(p) - 1 for p in out), now, reason)  # descriptors excluded
        return out

    def _protect(self, frame: EncodedFrame, now: float) -> Callable[[bytes], bytes]:
        crypto = self.crypto
        if crypto is None:
            raise NoFrameCrypto("the frame keys are not agreed yet")
        return lambda data: crypto.protect(frame.replace(data=data), now).data

    def _record(self, frame: EncodedFrame, protected: int, now: float, reason: str) -> None:
        record = TransformedFrame(self.kind, frame.timestamp, frame.metadata.frameId or 0, frame.type,
                                  len(frame.data), protected, now, reason)
        self.records.append(record)
        self._by_timestamp[frame.timestamp] = record


class ReceiverTransform:
    """The transform of one receiver (jitter buffer -> transform -> decoder).

    Args:
        crypto: the participant's frame crypto (None until the keys are agreed: frames dropped).
        kind: "video" or "audio".
        sender_member: the announced publisher's key-agreement member index (clear-prefix picks its
            keys by it; SFrame checks the KID against it), or None.
        lock: the participant's crypto lock; clock: seconds since the call started.
    """

    def __init__(self, crypto: FrameCrypto | None, *, kind: str, sender_member: int | None,
                 lock: threading.Lock, clock: Clock) -> None:
        self.crypto, self.kind, self.sender_member = crypto, kind, sender_member
        self._lock, self._clock = lock, clock
        self.upstream_decrypted = False  # per-packet SFrame payload format: frames arrive in clear
        self.records: list[OpenedFrame] = []
        self.dropped: Counter[str] = Counter()
        self.key_frame_requests = 0
        self.first_timestamp: int | None = None  # RTP timestamp of the first frame passed on
        self._last_request: float | None = None
        self._by_timestamp: dict[int, OpenedFrame] = {}

    def __call__(self, ssrc: int, data: bytes, timestamp: int) -> tuple[bytes | None, bool]:
        """Decrypt one reassembled frame: (plaintext for the decoder, False), or (None, ask for a
        key frame) when the frame transform refused it."""
        frame = EncodedFrame(bytes(data), timestamp, FrameMetadata(ssrc, 0, self.kind))  # type: ignore[arg-type]
        with self._lock:
            now = self._clock()
            try:
                if self.crypto is None:
                    raise NoFrameCrypto("the frame keys are not agreed yet")
                if self.upstream_decrypted:
                    plain = frame.data
                else:
                    plain = self.crypto.unprotect(frame, self.sender_member, now, self.kind).data
            except (*FRAME_ERRORS, NoFrameCrypto) as err:
                self.dropped[err.reason] += 1
                self._record(OpenedFrame(ssrc, timestamp, len(data), now, err.reason))
                return None, self._want_key_frame(now)
        if self.first_timestamp is None:
            self.first_timestamp = timestamp
        frame_type = vp8_frame_type(plain) if self.kind == "video" and plain else None
        self._record(OpenedFrame(ssrc, timestamp, len(data), now, "", frame_type))
        return plain, False

    def _record(self, opened: OpenedFrame) -> None:
        self.records.append(opened)
        self._by_timestamp[opened.timestamp] = opened

    def unprotect_payload(self, ciphertext: bytes, ssrc: int) -> bytes:
        """Decrypt one per-packet SFrame payload (the payload format's depayloader calls this), with
        the stream's announced publisher and kind checked against the KID as for a whole frame.

        Raises the frame transform's errors (``kid_stream_mismatch`` among them), or
        :class:`NoFrameCrypto` before the keys are agreed.
        """
        frame = EncodedFrame(bytes(ciphertext), 0, FrameMetadata(ssrc, 0, self.kind))  # type: ignore[arg-type]
        with self._lock:
            if self.crypto is None:
                raise NoFrameCrypto("the frame keys are not agreed yet")
            return self.crypto.unprotect(frame, self.sender_member, self._clock(), self.kind).data

    def opened(self, timestamp: int) -> OpenedFrame | None:
        """The record of the frame with RTP ``timestamp`` (the latest one), or None."""
        return self._by_timestamp.get(timestamp)

    def _want_key_frame(self, now: float) -> bool:
        if self.kind != "video":
            return False
        if self._last_request is not None and now - self._last_request < PLI_INTERVAL:
            return False
        self._last_request = now
        self.key_frame_requests += 1
        return True

    def wire_timestamp(self, pts: int) -> int | None:
        """The RTP timestamp of a decoded frame: aiortc's receiver rebases timestamps so that the
        first frame it decodes has ``pts`` 0, and that first frame is the first one passed on here."""
        if self.first_timestamp is None or pts is None:
            return None
        return (self.first_timestamp + int(pts)) % RTP_WRAP


def attach_sender(sender, transform: SenderTransform) -> None:
    """``sender.transform = transform`` (W3C), through the encoder-slot hook; with ``rtp_sframe``
    the transform also makes the payloads (the SFrame payload format)."""
    payloads = transform.payloads if transform.rtp_sframe is not None else None
    aiortc_hooks.install_sender_transform(sender, lambda mime_type: transform, payloads)


def attach_receiver(receiver, transform: ReceiverTransform) -> None:
    """``receiver.transform = transform`` (W3C), through the jitter-buffer hook."""
    aiortc_hooks.install_receiver_transform(receiver, transform)
