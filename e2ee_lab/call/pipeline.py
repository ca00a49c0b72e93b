"""A participant's media pipeline, sans-I/O: what happens between the camera and the socket, both ways.

Send (:class:`MediaSender`): scene picture / 20 ms speech chunk → VP8 / Opus encoder → frame
transform (the W3C Encoded Transform point: none, SFrame or clear-prefix) → RTP packetizer (RFC 7741
VP8, RFC 7587 Opus, RFC 6464 audio level) → RTP packets for the edge to SRTP-protect. An RTCP PLI
(RFC 4585 §6.3.1) naming the video SSRC makes the next picture a key frame. :class:`SenderOptions`
holds the call-wide sending knobs of the metadata-leakage lab: Opus at constant bit rate (RFC 6562
§3), no RFC 6464 audio level, and audio frames padded to size buckets before the frame transform
(:mod:`e2ee_lab.media.padding`), which receivers strip after it.

Receive (:class:`MediaReceiver`): plaintext RTP (after SRTP) → frame reassembly → frame transform
(decrypt) → decoder, one :class:`ReceivedFrame` record per frame. The frame transform is told the
stream's announced publisher and kind (signalling's word, from the SFU): in ``e2ee`` mode a frame
whose authenticated KID names another member or kind is dropped (``kid_stream_mismatch``), so a
frame recorded and shown as a publisher's is one that publisher's key authenticated. "Decoded" means more than "the
decoder raised nothing": libvpx sometimes turns a damaged frame into a garbage picture without an
error, so a video frame counts as decoded only when its picture matches the sent one
(:func:`~e2ee_lab.media.codecs.picture_matches` on every 4th pixel in each direction, against the
sender's record of what it sent). A video frame that fails anywhere, or a gap in a video
stream's sequence numbers, triggers a PLI to the SFU (throttled per stream). Errors are caught in one place per stage and counted in ``dropped[reason]``.

With ``rtp_sframe`` (``e2ee`` mode only) the sender uses the SFrame RTP payload format of
draft-ietf-avtcore-rtp-sframe-02 instead of the codec's (:class:`~e2ee_lab.rtp.SFramePacketizer`,
per-frame or per-packet: the frame transform then runs inside the packetizer), and the receiver
takes each stream announced with it through :class:`~e2ee_lab.rtp.SFrameReceiver`, which decrypts
before it makes the media frame; other streams keep the codec path.

Real time: every sent frame records ``captured_at``, its slot on the camera's or microphone's
schedule, and its playout deadline is that plus :data:`PLAYOUT_BUDGET`; a receiver records each
frame's ``delay`` (arrival - capture) and whether it was ``late`` (past its deadline).

Neither class touches sockets or clocks: every call takes ``now`` (seconds since the call started).

Over 500 lines: the sender and the receiver share the frame records, the ground truth they are
judged by (sent bytes, thumbnails, capture times) and the picture maths, and the in-memory tests
wire one to the other; the receiver is the part that could move to a module of its own.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

import av
import numpy as np
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket

from e2ee_lab.call.clip import EncodedClip, SpeechClip
from e2ee_lab.call.frame_keys import FRAME_ERRORS, FrameCrypto
from e2ee_lab.media.codecs import (  # thumbnail, THUMBNAIL_STRIDE: imported from here too
    OPUS_PAYLOAD_TYPE,
    THUMBNAIL_STRIDE,
    VP8_PAYLOAD_TYPE,
    DecodeError,
    OpusDecoder,
    OpusEncoder,
    VP8Decoder,
    VP8Encoder,
    mean_abs_error,
    picture_matches,
    thumbnail,
)
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.media.padding import BadPadding, check_bucket, pad_frame, unpad_frame
from e2ee_lab.media.scene import Scene, to_rgb
from e2ee_lab.media.speech import FRAME_MS, SpeechSource
from e2ee_lab.rtp import (
    Codec,
    FrameAssembled,
    FrameAssembler,
    FrameLost,
    PacketDropped,
    PacketsMissing,
    RTPError,
    RTPPacketizer,
    RTPSFrameMode,
    SFramePacketizer,
    SFrameReceiver,
    make_extensions_map,
)

PAYLOAD_TYPES = {VP8_PAYLOAD_TYPE: Codec.VP8, OPUS_PAYLOAD_TYPE: Codec.OPUS}
_SFRAME_METADATA = FrameMetadata(0, 0, "video")  # the SFrame transform reads only the data
PLI_INTERVAL = 0.5  # seconds between key-frame requests for one stream
REASSEMBLY_WAIT = 0.25  # seconds an incomplete frame may wait for its missing packets
# The playout deadline of a frame: its capture time (when the camera or microphone produced it on
# the sender's schedule, before encoding) plus this budget. A frame that arrives after it is *late*:
# a real client's jitter buffer would already have played (or concealed) that slot. 0.2 s is
# generous for an interactive call (ITU-T G.114: up to 150 ms one way suits most conversation,
# 400 ms is the limit); on loopback, with no network, it is all encoding, queueing and scheduling.
PLAYOUT_BUDGET = 0.2


def decoded_thumbnail(frame: av.VideoFrame) -> np.ndarray:
    """:func:`thumbnail` of a decoded yuv420p picture, converting only the pixels it keeps.

    BT.601 limited range (ITU-R BT.601, what swscale uses for yuv420p by default); about 7x
    cheaper than converting the whole picture and within ~1 of its mean absolute error.
    """
    if frame.format.name != "yuv420p":
        return thumbnail(to_rgb(frame))
    s, h, w = THUMBNAIL_STRIDE, frame.height, frame.width
    planes = frame.to_ndarray()  # (h * 3 / 2, w): Y, then U and V at half resolution
    y = (planes[:h:s, ::s].astype(np.float32) - 16.0) * 1.164
    chroma = planes[h:].reshape(2, h // 2, w // 2)[:, :: s // 2, :: s // 2].astype(np.float32) - 128.0
    u, v = chroma[0][: y.shape[0], : y.shape[1]], chroma[1][: y.shape[0], : y.shape[1]]
    rgb = np.stack([y + 1.596 * v, y - 0.392 * u - 0.813 * v, y + 2.017 * u], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SenderOptions:
    """How every participant of a call sends media (agreed call-wide, as SDP would).

    The defaults are what a browser does: Opus VBR, the RFC 6464 audio level on every audio packet,
    no padding. Raises ``ValueError`` for a bad padding bucket.
    """

    opus_cbr: bool = False  # Opus at constant bit rate (RFC 6562 §3; RFC 7587 fmtp cbr=1)
    audio_level: bool = True  # send the RFC 6464 audio-level header extension (clear to the SFU)
    audio_padding: int | None = None  # pad audio frames to multiples of this many bytes (inside E2EE)

    def __post_init__(self) -> None:
        if self.audio_padding is not None:
            check_bucket(self.audio_padding)


@dataclass(frozen=True)
class SentFrame:
    """One frame a participant sent (a row of ``CallResult.sent``)."""

    participant: str  # sender's name
    kind: str  # "video" or "audio"
    frame_index: int  # picture / chunk number since the call started
    ssrc: int  # the sender's SSRC of the stream
    timestamp: int  # RTP timestamp on the wire
    frame_type: str | None  # "key"/"delta" for video, None for audio
    encoded_size: int  # bytes out of the encoder
    sent_size: int  # bytes after the frame transform (what the packetizer carried)
    packets: int  # RTP packets of the frame
    sent_at: float  # seconds since the call started
    speaking: bool | None = None  # audio: ground truth, the chunk lies in a phrase of the sample
    captured_at: float = float("nan")  # seconds since the call started: the frame's slot on the
    # sender's schedule (camera/microphone time); its playout deadline is this + PLAYOUT_BUDGET


@dataclass(slots=True)
class ReceivedFrame:
    """One frame a participant received (a row of ``CallResult.received``). Not frozen: a big room
    makes thousands a second, and a frozen dataclass takes nearly three times as long to build."""

    receiver: str  # receiver's name
    publisher: str  # who sent it ("?" when the SSRC was never announced)
    kind: str  # "video" or "audio"
    ssrc: int  # SSRC on the SFU -> receiver leg (chosen by the SFU)
    timestamp: int  # RTP timestamp
    frame_index: int  # the sender's frame number (-1 if unknown)
    frame_type: str | None  # after decryption: "key"/"delta" for video
    packets: int  # RTP packets it arrived in
    size: int  # frame bytes as reassembled (ciphertext in e2ee modes)
    arrival: float  # seconds since the call started
    latency: float  # arrival - sent_at (NaN if unknown)
    decrypted: bool  # the frame transform accepted it
    decoded: bool  # video: a picture matching the sent one; audio: libopus produced PCM
    mae: float  # video: mean absolute error against the sent picture (NaN otherwise)
    reason: str  # "" when decoded, else why not (the drop counter)
    delay: float = float("nan")  # arrival - the sender's captured_at (NaN if unknown)
    late: bool = False  # arrived after its playout deadline (captured_at + the playout budget)
    verified: bool = False  # decrypted to exactly the bytes the sender put into its frame transform


class MediaSender:
    """The send side of one participant: camera and microphone to RTP packets.

    Args:
        name: the participant's name.
        scene: its camera; speech: its microphone.
        crypto: the frame transform of the call mode.
        ssrcs: ``{"video": ssrc, "audio": ssrc}``.
        seed: fixes sequence numbers, PictureIDs and timestamp offsets.
        srtp_overhead: bytes SRTP adds to a packet (the packetizer leaves room for them).
        options: Opus CBR, audio level on or off, audio padding (default: a browser's choices).
        clip: the scene's pictures pre-encoded (:func:`~e2ee_lab.call.clip.encoded_clip`): video
            frames come from it instead of a live encoder (a PLI then waits for its next key frame).
        speech_clip: the microphone's chunks pre-encoded (:func:`~e2ee_lab.call.clip.speech_clip`,
            same bit-rate mode as ``options``): audio frames come from it.
    """

    def __init__(self, name: str, *, scene: Scene, speech: SpeechSource, crypto: FrameCrypto,
                 ssrcs: dict[str, int], seed: int, srtp_overhead: int,
                 options: SenderOptions | None = None, rtp_sframe: RTPSFrameMode | None = None,
                 clip: EncodedClip | None = None, speech_clip: SpeechClip | None = None) -> None:
        rng = random.Random(f"sender:{seed}:{name}")
        self.clip, self.speech_clip = clip, speech_clip
        if rtp_sframe is not None and crypto.mode != "e2ee":
            raise ValueError(f"the SFrame payload format needs e2ee frames, not {crypto.mode}")
        self.rtp_sframe = None if rtp_sframe is None else RTPSFrameMode(rtp_sframe)
        self.name, self.scene, self.speech, self.crypto = name, scene, speech, crypto
        self.options = options or SenderOptions()
        self.ssrcs = dict(ssrcs)
        video, audio = ssrcs["video"], ssrcs["audio"]
        self._vp8 = VP8Encoder(ssrc=video, fps=scene.fps, timestamp_offset=rng.randrange(1 << 32))
        self._opus = OpusEncoder(ssrc=audio, timestamp_offset=rng.randrange(1 << 32),
                                 cbr=self.options.opus_cbr)
        audio_map = None if self.options.audio_level else make_extensions_map(audio_level_id=None)
        packetizer, extra = (RTPPacketizer, {}) if self.rtp_sframe is None else \
            (SFramePacketizer, {"mode": self.rtp_sframe})
        self._packetizers = {
            "video": packetizer(Codec.VP8, ssrc=video, payload_type=VP8_PAYLOAD_TYPE, seed=seed,
                                srtp_overhead=srtp_overhead, **extra),
            "audio": packetizer(Codec.OPUS, ssrc=audio, payload_type=OPUS_PAYLOAD_TYPE, seed=seed,
                                srtp_overhead=srtp_overhead, extensions_map=audio_map, **extra),
        }
        self.records: list[SentFrame] = []
        self.dropped: Counter[str] = Counter()
        self.plis_received = 0
        self._force_key = False
        self._truth: dict[tuple[str, int], tuple[SentFrame, np.ndarray | None]] = {}
        self._plain: dict[tuple[str, int], bytes] = {}  # the frames as sent, before the transform

    def take_key_frame_request(self) -> bool:
        """True (once) if a PLI asked for a key frame since the last call."""
        force, self._force_key = self._force_key, False
        return force

    def encode_video(self, index: int, force_keyframe: bool = False) -> tuple[EncodedFrame | None, np.ndarray]:
        """Render and encode picture ``index``: the CPU-heavy half, safe on a worker thread.

        Touches only the scene and the VP8 encoder (so calls for one sender must not overlap).
        Returns the encoded frame (None if libvpx emitted nothing) and the picture's thumbnail.
        """
        if self.clip is not None:
            return self._clip_frame(index, force_keyframe)
        rgb = self.scene.rgb(index)
        return self._vp8.encode(rgb, force_keyframe=force_keyframe), thumbnail(rgb)

    def _clip_frame(self, index: int, force_keyframe: bool) -> tuple[EncodedFrame | None, np.ndarray]:
        """Picture ``index`` from the pre-encoded clip; a key-frame request waits for the clip's next key frame."""
        clip = self.clip
        assert clip is not None
        frame = clip.frame(index, ssrc=self.ssrcs["video"], payload_type=VP8_PAYLOAD_TYPE,
                           timestamp_offset=self._vp8.timestamp_offset)
        if force_keyframe and (frame is None or frame.type != "key"):
            self._force_key = True  # still open: answered by the clip's next periodic key frame
        return frame, clip.frames[index].thumbnail

    def send_video(self, index: int, encoded: EncodedFrame | None, picture: np.ndarray, now: float, *,
                   was_forced: bool = False, captured_at: float | None = None) -> list[bytes]:
        """Transform and packetize an encoded picture; returns the RTP packets to send.

        ``captured_at``: the picture's slot on the camera's schedule (default ``now``); its
        playout deadline follows from it (:data:`PLAYOUT_BUDGET`).
        """
        if encoded is None:
            self.dropped["encoder_skipped"] += 1
            self._force_key = self._force_key or was_forced  # the request is still open
            return []
        return self._send("video", index, encoded, now, picture, captured_at=captured_at)

    def video_frame(self, index: int, now: float, captured_at: float | None = None) -> list[bytes]:
        """:meth:`encode_video` and :meth:`send_video` in one call (picture ``index``)."""
        force = self.take_key_frame_request()
        encoded, picture = self.encode_video(index, force)
        return self.send_video(index, encoded, picture, now, was_forced=force, captured_at=captured_at)

    def audio_frame(self, index: int, now: float, captured_at: float | None = None) -> list[bytes]:
        """Encode, transform and packetize speech chunk ``index``; returns the RTP packets.

        ``captured_at``: the chunk's slot on the microphone's schedule (default ``now``).
        """
        if self.speech_clip is not None:
            encoded = self.speech_clip.frame(index, ssrc=self.ssrcs["audio"], payload_type=OPUS_PAYLOAD_TYPE,
                                             timestamp_offset=self._opus.timestamp_offset)
            speaking = self.speech_clip.frames[index].speaking
        else:
            chunk = self.speech.chunk(index)
            encoded, speaking = self._opus.encode(chunk), chunk.speaking
        if encoded is None:
            self.dropped["encoder_skipped"] += 1
            return []
        return self._send("audio", index, encoded, now, None, speaking=speaking, captured_at=captured_at)

    def _send(self, kind: str, index: int, frame: EncodedFrame, now: float,
              picture: np.ndarray | None, *, speaking: bool | None = None,
              captured_at: float | None = None) -> list[bytes]:
        bucket = self.options.audio_padding if kind == "audio" else None
        plain = frame if bucket is None else frame.replace(data=pad_frame(frame.data, bucket))
        try:
            packets, protected_size = self._packetize(kind, plain, now)
        except (*FRAME_ERRORS, RTPError) as err:
            self.dropped[err.reason] += 1
            return []
        record = SentFrame(self.name, kind, index, self.ssrcs[kind], frame.timestamp, frame.type,
                           len(frame.data), protected_size, len(packets), now, speaking,
                           now if captured_at is None else captured_at)
        self.records.append(record)
        self._truth[kind, frame.timestamp] = (record, picture)
        self._plain[kind, frame.timestamp] = plain.data
        return packets

    def _packetize(self, kind: str, plain: EncodedFrame, now: float) -> tuple[list[bytes], int]:
        """The frame's RTP packets and its protected size (ciphertext bytes, descriptors excluded)."""
        packetizer = self._packetizers[kind]
        if self.rtp_sframe is None:
            protected = self.crypto.protect(plain, now)
            return packetizer.serialize(protected), len(protected.data)
        before = packetizer.sframe_bytes_sent  # type: ignore[union-attr]

        def protect(data: bytes) -> bytes:
            return self.crypto.protect(plain.replace(data=data), now).data
        packets = packetizer.serialize(plain, protect=protect)  # type: ignore[call-arg]
        return packets, packetizer.sframe_bytes_sent - before  # type: ignore[union-attr]

    def handle_rtcp(self, data: bytes) -> None:
        """Read an RTCP compound packet from the SFU; a PLI for our video asks for a key frame."""
        try:
            packets = RtcpPacket.parse(data)
        except (ValueError, struct.error):
            self.dropped["malformed_rtcp"] += 1
            return
        for packet in packets:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                if packet.media_ssrc == self.ssrcs["video"]:
                    self.plis_received += 1
                    self._force_key = True

    def sent(self, kind: str, timestamp: int) -> tuple[SentFrame, np.ndarray | None] | None:
        """Ground truth for receivers: the record (and picture thumbnail) of a frame we sent."""
        return self._truth.get((kind, timestamp))

    def plan(self, origin: float, video_frames: int, audio_frames: int) -> None:
        """Record, ahead of time, the ground truth of every frame this sender will send from clips
        (``clip`` and ``speech_clip`` set): what a receiver in another process judges against.

        ``origin``: the call time of frame 0's capture. The planned records have ``sent_at`` NaN
        and no sizes (the frames are not sent yet); :meth:`_send` replaces each with the real one.

        Raises:
            ValueError: the sender has no clips (a live encoder's output is not known in advance).
        """
        if self.speech_clip is None or (self.clip is None and video_frames):
            raise ValueError("only a sender with pre-encoded clips knows its frames in advance")
        nan = float("nan")
        for i in range(video_frames):
            frame = self.clip.frame(i, ssrc=self.ssrcs["video"], payload_type=VP8_PAYLOAD_TYPE,  # type: ignore[union-attr]
                                    timestamp_offset=self._vp8.timestamp_offset)
            if frame is not None:
                record = SentFrame(self.name, "video", i, self.ssrcs["video"], frame.timestamp, frame.type,
                                   len(frame.data), -1, -1, nan, None, origin + i / self.scene.fps)
                self._truth["video", frame.timestamp] = (record, self.clip.frames[i].thumbnail)  # type: ignore[union-attr]
                self._plain["video", frame.timestamp] = frame.data
        bucket = self.options.audio_padding
        for i in range(audio_frames):
            frame = self.speech_clip.frame(i, ssrc=self.ssrcs["audio"], payload_type=OPUS_PAYLOAD_TYPE,
                                           timestamp_offset=self._opus.timestamp_offset)
            if frame is not None:
                speaking = self.speech_clip.frames[i].speaking
                record = SentFrame(self.name, "audio", i, self.ssrcs["audio"], frame.timestamp, None,
                                   len(frame.data), -1, -1, nan, speaking, origin + i * FRAME_MS / 1000)
                self._truth["audio", frame.timestamp] = (record, None)
                self._plain["audio", frame.timestamp] = frame.data if bucket is None else pad_frame(frame.data, bucket)

    def sent_data(self, kind: str, timestamp: int) -> bytes | None:
        """Ground truth for verification: the frame's bytes as they went into the frame transform."""
        return self._plain.get((kind, timestamp))


Truth = Callable[[str, str, int], "tuple[SentFrame, np.ndarray | None] | None"]
SentData = Callable[[str, str, int], "bytes | None"]  # (publisher, kind, RTP timestamp) -> frame bytes


@dataclass
class _Incoming:
    publisher: str
    member: int | None
    kind: str
    decoder: VP8Decoder | OpusDecoder
    last_pli: float | None = None


class MediaReceiver:
    """The receive side of one participant: RTP packets to decoded frames and per-frame records.

    Args:
        name: the participant's name.
        crypto: the frame transform of the call mode.
        truth: ``truth(publisher, kind, timestamp)`` returns what the publisher sent (the lab's
            ground truth, used only to judge pictures), or None.
        rtcp_ssrc: sender SSRC of this participant's RTCP.
        options: the call's :class:`SenderOptions`; with ``audio_padding`` the receiver strips
            the padding from each decrypted audio frame (:class:`BadPadding` is counted).
        playout_budget: seconds after its capture time a frame may arrive and still be on time
            (default :data:`PLAYOUT_BUDGET`); each record says ``delay`` and ``late``.
        sent_data: ``sent_data(publisher, kind, timestamp)``: the frame's bytes as the publisher put
            them into its frame transform, or None. Given, every decrypted frame is *verified*
            against them (bit-exact; the record's ``verified``; ``mismatched`` counts the others).
            This is the lab's ground truth measuring delivery, not a check a real receiver could
            make: a frame that differs goes on to the decoder as before (a dtls-srtp receiver
            shows what a tampering SFU sent).
        decode_video: the publishers whose video this receiver decodes (the views it shows);
            frames of the others are verified only (reason ``not_decoded``, not a drop).
            None (default): every publisher's.
        decode_audio: the same for audio (None, default: every publisher's). A real listener
            decodes every speaker the SFU forwards; in a big simulated room
            (``views="sample"``) decoding is sampled to keep the call in real time, and every
            frame is still verified.
    """

    def __init__(self, name: str, *, crypto: FrameCrypto, truth: Truth, rtcp_ssrc: int,
                 options: SenderOptions | None = None, playout_budget: float = PLAYOUT_BUDGET,
                 sent_data: SentData | None = None, decode_video: Collection[str] | None = None,
                 decode_audio: Collection[str] | None = None) -> None:
        self.name, self.crypto, self._truth, self.rtcp_ssrc = name, crypto, truth, rtcp_ssrc
        self.playout_budget = playout_budget
        self._sent_data = sent_data
        self.mismatched = 0  # decrypted frames that differ from what their publisher sent (not a drop)
        self.decode_video = None if decode_video is None else frozenset(decode_video)
        self.decode_audio = None if decode_audio is None else frozenset(decode_audio)
        self.audio_padding = (options or SenderOptions()).audio_padding
        self.assembler = FrameAssembler(PAYLOAD_TYPES, extensions_map=make_extensions_map(),
                                        max_wait=REASSEMBLY_WAIT)
        self.sframe_receiver = SFrameReceiver(PAYLOAD_TYPES, self._unprotect_sframe,
                                              extensions_map=make_extensions_map(),
                                              max_wait=REASSEMBLY_WAIT, errors=FRAME_ERRORS)
        self._sframe_ssrcs: set[int] = set()  # streams announced in the SFrame payload format
        self._now = 0.0
        self.records: list[ReceivedFrame] = []
        self.dropped: Counter[str] = Counter()
        self.plis_sent = 0
        self._latest: dict[str, tuple[int, av.VideoFrame]] = {}  # publisher -> latest matching picture
        self.adopted_pictures: dict[str, tuple[int, np.ndarray]] | None = None  # set when a worker received
        self._streams: dict[int, _Incoming] = {}

    def announce(self, ssrc: int, publisher: str, member: int | None, kind: str,
                 rtp_sframe: str | None = None) -> None:
        """Signalling said: SSRC ``ssrc`` on our leg carries ``publisher``'s ``kind`` stream, in
        the SFrame payload format when ``rtp_sframe`` names its mode (else the codec's)."""
        decoder = VP8Decoder() if kind == "video" else OpusDecoder()
        self._streams[ssrc] = _Incoming(publisher, member, kind, decoder)
        if rtp_sframe is not None:
            self._sframe_ssrcs.add(ssrc)
        else:
            self._sframe_ssrcs.discard(ssrc)

    def receive_rtp(self, data: bytes, now: float) -> list[bytes]:
        """Feed one plaintext RTP packet; returns RTCP packets (PLIs) to send to the SFU."""
        ssrc = int.from_bytes(data[8:12], "big") if len(data) >= 12 else None
        if ssrc in self._sframe_ssrcs:
            self._now = now
            return self._handle(self.sframe_receiver.receive(data, now), now)
        return self._handle(self.assembler.receive(data, now), now)

    def poll(self, now: float) -> list[bytes]:
        """Give up on frames that waited too long; returns PLIs."""
        self._now = now
        return self._handle(self.assembler.poll(now) + self.sframe_receiver.assembler.poll(now), now)

    def flush(self, now: float) -> list[bytes]:
        """End of the call: release every complete frame, report the rest lost."""
        self._now = now
        return self._handle(self.assembler.flush() + self.sframe_receiver.flush(), now)

    def counters(self) -> Counter[str]:
        """Every drop on the receive path: reassembly, frame transform, decoder."""
        total = Counter(self.dropped)
        total.update({f"rtp_{k}": v for k, v in self.assembler.dropped.items()})
        total.update({f"rtp_sframe_{k}": v for k, v in self.sframe_receiver.depacketizer.dropped.items()})
        total.update({f"rtp_{k}": v for k, v in self.sframe_receiver.assembler.dropped.items()})
        return total

    def _unprotect_sframe(self, ciphertext: bytes, ssrc: int) -> bytes:
        """The payload format's decryption: the e2ee frame transform on one SFrame ciphertext, told
        the stream's announced publisher and kind as on the codec path (a KID naming another
        member or kind raises ``kid_stream_mismatch``, counted by the receiver's drop)."""
        stream = self._streams.get(ssrc)
        member, kind = (stream.member, stream.kind) if stream else (None, None)
        frame = EncodedFrame(ciphertext, 0, _SFRAME_METADATA)
        return self.crypto.unprotect(frame, member, self._now, kind).data

    def _handle(self, events: list, now: float) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            if isinstance(event, FrameAssembled):
                out += self._on_frame(event, now)
            elif isinstance(event, FrameLost):
                self.dropped["frame_lost"] += 1
                out += self._request_key_frame(event.ssrc, now)
            elif isinstance(event, PacketsMissing):
                out += self._request_key_frame(event.ssrc, now)  # a lost reference breaks what follows
            elif isinstance(event, PacketDropped) and event.ssrc in self._sframe_ssrcs:
                self.dropped[event.reason] += 1  # the payload format's receiver refused it
                out += self._request_key_frame(event.ssrc, now)
        return out

    def _on_frame(self, event: FrameAssembled, now: float) -> list[bytes]:
        stream = self._streams.get(event.ssrc)
        if stream is None:
            self.dropped["unknown_stream"] += 1
            return []
        info = self._truth(stream.publisher, stream.kind, event.timestamp)
        sent = info[0] if info else None
        try:
            if event.ssrc in self._sframe_ssrcs:  # decrypted (and attributed) by the payload format's receiver
                plain = event.to_encoded_frame()
            else:
                plain = self.crypto.unprotect(event.to_encoded_frame(), stream.member, now, stream.kind)
        except FRAME_ERRORS as err:
            self.dropped[err.reason] += 1
            self._record(event, stream, sent, now, None, decrypted=False, mae=np.nan, reason=err.reason)
            return self._request_key_frame(event.ssrc, now) if stream.kind == "video" else []
        verified = self._verify(stream, event.timestamp, plain.data)
        if verified is False:  # the harness's measurement, not a check a real receiver could make
            self.mismatched += 1
        if stream.kind == "audio":
            if self.decode_audio is None or stream.publisher in self.decode_audio:
                reason = self._decode_audio(stream, plain.data)
            else:
                reason = "not_decoded"
            self._record(event, stream, sent, now, None, decrypted=True, mae=np.nan, reason=reason,
                         verified=bool(verified))
            return []
        if self.decode_video is not None and stream.publisher not in self.decode_video:
            self._record(event, stream, sent, now, plain.type, decrypted=True, mae=np.nan,
                         reason="not_decoded", verified=bool(verified))
            return []
        reason, mae = self._decode_video(stream, plain.data, info)
        self._record(event, stream, sent, now, plain.type, decrypted=True, mae=mae, reason=reason,
                     verified=bool(verified))
        return self._request_key_frame(event.ssrc, now) if reason else []

    def _verify(self, stream: _Incoming, timestamp: int, data: bytes) -> bool | None:
        """True/False: the decrypted frame is/is not what the publisher sent; None: cannot tell
        (no ``sent_data``, or the publisher has no record of that frame)."""
        if self._sent_data is None:
            return None
        expected = self._sent_data(stream.publisher, stream.kind, timestamp)
        if expected is None:
            return None
        return expected == data

    def _decode_audio(self, stream: _Incoming, data: bytes) -> str:
        try:
            stream.decoder.decode_count(data if self.audio_padding is None else unpad_frame(data))  # PCM unused
        except (DecodeError, BadPadding) as err:
            return self._count(err.reason)
        return ""

    def _decode_video(self, stream: _Incoming, data: bytes, info) -> tuple[str, float]:
        try:
            picture = stream.decoder.decode(data)
        except DecodeError as err:
            return self._count(err.reason), np.nan
        if info is None or info[1] is None:
            return self._count("unknown_frame"), np.nan
        got, sent_thumb = decoded_thumbnail(picture), info[1]
        mae = mean_abs_error(got, sent_thumb)
        if not picture_matches(got, sent_thumb):
            return self._count("garbage_picture"), mae
        self._latest[stream.publisher] = (info[0].frame_index, picture)
        return "", mae

    @property
    def pictures(self) -> dict[str, tuple[int, np.ndarray]]:
        """Per publisher: the latest picture that matched what was sent, ``(frame index, RGB)``."""
        if self.adopted_pictures is not None:
            return dict(self.adopted_pictures)
        return {p: (i, to_rgb(frame)) for p, (i, frame) in self._latest.items()}

    def _count(self, reason: str) -> str:
        self.dropped[reason] += 1
        return reason

    def _record(self, event: FrameAssembled, stream: _Incoming, sent: SentFrame | None, now: float,
                frame_type: str | None, *, decrypted: bool, mae: float, reason: str,
                verified: bool = False) -> None:
        delay = now - sent.captured_at if sent else np.nan
        self.records.append(ReceivedFrame(
            receiver=self.name, publisher=stream.publisher, kind=stream.kind, ssrc=event.ssrc,
            timestamp=event.timestamp, frame_index=sent.frame_index if sent else -1,
            frame_type=frame_type, packets=event.packet_count, size=len(event.data), arrival=now,
            latency=now - sent.sent_at if sent else np.nan, decrypted=decrypted,
            decoded=decrypted and not reason, mae=mae, reason=reason,
            delay=delay, late=bool(delay > self.playout_budget), verified=verified,
        ))

    def _request_key_frame(self, ssrc: int, now: float) -> list[bytes]:
        """A PLI naming ``ssrc`` (the SFU maps it to the publisher), at most one per interval."""
        stream = self._streams.get(ssrc)
        if stream is None or stream.kind != "video":
            return []
        if stream.last_pli is not None and now - stream.last_pli < PLI_INTERVAL:
            return []
        stream.last_pli = now
        self.plis_sent += 1
        return [bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=ssrc))]
