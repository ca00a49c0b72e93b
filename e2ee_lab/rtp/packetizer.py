"""The send side: one :class:`RTPPacketizer` per stream turns encoded frames into RTP packets.

RTP header fields follow RFC 3550 §5.1: the sequence number starts at a random value (here drawn
from the call's seed, so runs repeat) and increases by one per packet modulo 2^16; the timestamp is
the frame's (90 kHz video, RFC 7741 §4.1; 48 kHz Opus, RFC 7587 §4.1) plus an optional offset.
VP8 (RFC 7741 §4.1, §4.5): a frame becomes one or more packets of equal size, each with a
Chrome-style descriptor (S=1 and PID=0 on the first, 15-bit PictureID on all), and the marker bit
on the last. Opus (RFC 7587 §4.2): one frame per packet, every 20 ms frame sent (no DTX), so the
marker bit is always 0 (RFC 3551 §4.1: "Applications without silence suppression MUST set the
marker bit to zero"); the RFC 6464 audio level on every packet. The packetizer never reads the frame bytes,
so SFrame ciphertext packetizes exactly like plaintext VP8 or Opus. Sizes: every serialized packet
is at most ``mtu - srtp_overhead`` bytes (see :mod:`e2ee_lab.rtp.formats`). Sans-I/O: it returns
aiortc ``RtpPacket`` objects (or their bytes) and never sends.
"""

from __future__ import annotations

import random

from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from ..media.frame import EncodedFrame
from .errors import EmptyFrame, FrameTooLarge, InvalidFrame
from .extensions import MID_ID, AudioLevel, check_mid, make_extensions_map, serialize_rtp
from .formats import DEFAULT_MTU, DEFAULT_SRTP_OVERHEAD, Codec, max_rtp_packet_size
from .seqnum import SEQ_MOD, TS_MOD
from .vp8 import CHROME_DESCRIPTOR_LEN, PICTURE_ID_MOD, vp8_payloads

SILENT_LEVEL = 127  # RFC 6464 §3: -127 dBov, used when a frame carries no level


def stream_rng(seed: int | None, ssrc: int) -> random.Random:
    """The random source of one stream: deterministic for a given ``(seed, ssrc)``, else fresh."""
    if seed is None:
        return random.Random()
    return random.Random(f"rtp-stream:{seed}:{ssrc}")


class RTPPacketizer:
    """Packetizes the frames of one RTP stream (one SSRC, one payload type, one codec).

    State: the next sequence number, the next VP8 PictureID and counters
    (``packets_sent``, ``frames_sent``, ``payload_bytes_sent``). ``extensions_map`` is the map the
    receiving side must parse with (:attr:`extensions_map`).
    """

    def __init__(
        self,
        codec: Codec,
        *,
        ssrc: int,
        payload_type: int,
        seed: int | None = None,
        mtu: int = DEFAULT_MTU,
        srtp_overhead: int = DEFAULT_SRTP_OVERHEAD,
        extensions_map: HeaderExtensionsMap | None = None,
        mid: str | None = None,
        first_sequence_number: int | None = None,
        first_picture_id: int | None = None,
        timestamp_offset: int = 0,
    ) -> None:
        """Configure the stream.

        ``seed`` fixes the first sequence number and PictureID (``first_sequence_number`` and
        ``first_picture_id`` override them). ``mtu`` is the UDP payload budget and
        ``srtp_overhead`` what SRTP will add (16 bytes for the AEAD GCM profiles). ``mid`` adds
        the BUNDLE MID extension to every packet (Chrome's id 4 unless ``extensions_map`` says
        otherwise). ``timestamp_offset`` is added to every frame timestamp, modulo 2^32 (RFC 3550
        §5.1 suggests a random one; the default 0 keeps the frame's timestamp on the wire).
        Raises ``ValueError`` for out-of-range fields or a budget too small for one payload byte.
        """
        if not 0 <= ssrc < 1 << 32 or not 0 <= payload_type < 128:
            raise ValueError(f"SSRC {ssrc} or payload type {payload_type} out of range")
        check_mid(mid)
        rng = stream_rng(seed, ssrc)
        self.codec = codec
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.mid = mid
        self.timestamp_offset = timestamp_offset % TS_MOD
        self.extensions_map = extensions_map or make_extensions_map(mid_id=MID_ID if mid else None)
        self.max_packet_size = max_rtp_packet_size(mtu, srtp_overhead)
        seq = rng.randrange(SEQ_MOD) if first_sequence_number is None else first_sequence_number
        pic = rng.randrange(PICTURE_ID_MOD) if first_picture_id is None else first_picture_id
        if not 0 <= seq < SEQ_MOD or not 0 <= pic < PICTURE_ID_MOD:
            raise ValueError(f"first sequence number {seq} or PictureID {pic} out of range")
        self.sequence_number = seq
        self.picture_id = pic
        self.packets_sent = 0
        self.frames_sent = 0
        self.payload_bytes_sent = 0
        self.max_payload_size = self.max_packet_size - self._header_size()
        if self.max_payload_size < (CHROME_DESCRIPTOR_LEN + 1 if codec is Codec.VP8 else 1):
            raise ValueError(f"{self.max_payload_size} bytes left for the payload: MTU too small")

    def _header_size(self) -> int:
        probe = RtpPacket(payload_type=self.payload_type, ssrc=self.ssrc)
        probe.extensions.mid = self.mid
        if self.codec is Codec.OPUS:
            probe.extensions.audio_level = AudioLevel(SILENT_LEVEL).as_aiortc()
        return len(serialize_rtp(probe, self.extensions_map))

    def _new_packet(self, *, marker: int, timestamp: int, payload: bytes) -> RtpPacket:
        packet = RtpPacket(
            payload_type=self.payload_type,
            marker=marker,
            sequence_number=self.sequence_number,
            timestamp=timestamp,
            ssrc=self.ssrc,
            payload=payload,
        )
        packet.extensions.mid = self.mid
        self.sequence_number = (self.sequence_number + 1) % SEQ_MOD
        return packet

    def packetize(self, frame: EncodedFrame, *, non_reference: bool = False) -> list[RtpPacket]:
        """Turn one frame into its RTP packets, in sending order, and advance the stream state.

        ``non_reference`` sets the VP8 N bit (the packetizer cannot tell from opaque bytes).
        Raises :class:`EmptyFrame` for a 0-byte frame, :class:`InvalidFrame` if the frame's kind
        is not the codec's or its audio level is outside 0..127, :class:`FrameTooLarge` for an
        Opus frame above :attr:`max_payload_size`. State is unchanged when it raises.
        """
        if frame.metadata.kind != self.codec.kind:
            raise InvalidFrame(f"{frame.metadata.kind} frame on a {self.codec.value} stream")
        if not frame.data:
            raise EmptyFrame(f"{self.codec.value} frame at timestamp {frame.timestamp} is 0 bytes")
        timestamp = (frame.timestamp + self.timestamp_offset) % TS_MOD
        if self.codec is Codec.VP8:
            packets = self._packetize_vp8(bytes(frame.data), timestamp, non_reference)
        else:
            packets = [self._packetize_opus(frame, timestamp)]
        self.frames_sent += 1
        self.packets_sent += len(packets)
        self.payload_bytes_sent += len(frame.data)
        return packets

    def serialize(self, frame: EncodedFrame, *, non_reference: bool = False) -> list[bytes]:
        """:meth:`packetize` and serialize with :attr:`extensions_map`: the RTP packets' bytes."""
        packets = self.packetize(frame, non_reference=non_reference)
        return [serialize_rtp(p, self.extensions_map) for p in packets]

    def _packetize_vp8(self, data: bytes, timestamp: int, non_reference: bool) -> list[RtpPacket]:
        payloads = vp8_payloads(
            data,
            picture_id=self.picture_id,
            max_payload=self.max_payload_size,
            non_reference=non_reference,
        )
        self.picture_id = (self.picture_id + 1) % PICTURE_ID_MOD
        last = len(payloads) - 1
        return [
            self._new_packet(marker=int(i == last), timestamp=timestamp, payload=p)
            for i, p in enumerate(payloads)
        ]

    def _audio_level(self, frame: EncodedFrame) -> AudioLevel:
        level = frame.metadata.audioLevel
        try:
            return AudioLevel(
                level=SILENT_LEVEL if level is None else level,
                voice_activity=bool(frame.metadata.voiceActivity),
            )
        except ValueError as exc:
            raise InvalidFrame(str(exc)) from None

    def _packetize_opus(self, frame: EncodedFrame, timestamp: int) -> RtpPacket:
        if len(frame.data) > self.max_payload_size:
            raise FrameTooLarge(
                f"Opus frame of {len(frame.data)} bytes exceeds the {self.max_payload_size}-byte "
                "payload budget (one frame per packet)"
            )
        level = self._audio_level(frame)
        # RFC 3551 §4.1: "Applications without silence suppression MUST set the marker bit to
        # zero." Every frame is sent, so no packet starts a talkspurt after a gap.
        packet = self._new_packet(marker=0, timestamp=timestamp, payload=bytes(frame.data))
        packet.extensions.audio_level = level.as_aiortc()
        return packet
