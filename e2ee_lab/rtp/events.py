"""Events of the RTP receive side: what the frame assembler tells the SFU view and the receivers.

Each is a dataclass named as a fact, frozen but for :class:`FrameAssembled` (one per frame of every
stream: a frozen one takes 2.5 times as long to build). :class:`FrameAssembled` is also the
reassembled-frame record: the payload bytes (VP8 descriptors stripped; plaintext or SFrame ciphertext
alike) with the RTP fields of the packets that carried it (RFC 3550 §5.1 header, RFC 6464 audio level,
RFC 7741 PictureID and N bit), which is everything an SFU can read about a frame. Sequence numbers in
events are the 16-bit wire values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..media.frame import EncodedFrame, FrameMetadata
from .extensions import AudioLevel
from .formats import Codec
from .vp8 import vp8_frame_type


@dataclass(slots=True)
class FrameAssembled:
    """A complete frame: its packets from S=1 to the marker (VP8), or one packet (Opus). Not frozen:
    every frame of every stream makes one, and a frozen dataclass takes 2.5 times as long to build."""

    ssrc: int  # synchronization source of the stream
    payload_type: int  # RTP payload type of the packets
    codec: Codec  # payload format the packets were depacketized with
    timestamp: int  # RTP timestamp of the frame (90 kHz video, 48 kHz audio)
    first_sequence_number: int  # sequence number of the first packet (16-bit)
    last_sequence_number: int  # sequence number of the last packet (16-bit)
    packet_count: int  # packets that carried the frame
    data: bytes  # the frame bytes, descriptors removed (opaque: may be ciphertext)
    marker: bool  # marker bit of the last packet (VP8: always set; Opus: 0, no silence suppression)
    payload_sizes: tuple[int, ...]  # RTP payload sizes in sequence order, as the SFU sees them
    audio_level: AudioLevel | None = None  # RFC 6464 element of the first packet, if present
    mid: str | None = None  # BUNDLE MID extension of the first packet, if present
    picture_id: int | None = None  # VP8 PictureID (15-bit), None for Opus
    non_reference: bool = False  # VP8 N bit of the first packet
    arrival: float | None = None  # ``now`` passed with the packet that completed the frame

    @property
    def kind(self) -> str:
        """``"video"`` or ``"audio"``."""
        return self.codec.kind

    def guess_frame_type(self) -> str | None:
        """VP8 ``"key"``/``"delta"`` from the payload's P bit (as libwebrtc reads it); audio: None.

        On SFrame ciphertext this is a guess about random bits: an SFU cannot know.
        """
        return vp8_frame_type(self.data) if self.codec is Codec.VP8 else None

    def to_encoded_frame(self, frame_type: str | None = None) -> EncodedFrame:
        """The :class:`EncodedFrame` a receiver hands to its frame transform (decrypt) or decoder.

        ``frame_type`` overrides the video type; by default it is :meth:`guess_frame_type`.
        Metadata carries SSRC, payload type, kind and, for audio, the RFC 6464 level and V bit.
        """
        metadata = _metadata(self.ssrc, self.payload_type, self.kind, self.audio_level)
        if self.codec is Codec.VP8:
            frame_type = frame_type or self.guess_frame_type()
        return EncodedFrame(
            self.data, self.timestamp, metadata, frame_type  # type: ignore[arg-type]
        )


@functools.lru_cache(maxsize=4096)
def _metadata(ssrc: int, payload_type: int, kind: str, level: AudioLevel | None) -> FrameMetadata:
    """A received frame's metadata, shared (frozen): a stream's frames repeat a few of them."""
    return FrameMetadata(synchronizationSource=ssrc, payloadType=payload_type, kind=kind,  # type: ignore[arg-type]
                         audioLevel=level.level if level else None,
                         voiceActivity=level.voice_activity if level else None)


@dataclass(frozen=True)
class FrameLost:
    """An incomplete frame given up after the wait horizon (or at flush)."""

    ssrc: int  # synchronization source of the stream
    payload_type: int  # RTP payload type of the packets received
    timestamp: int  # RTP timestamp shared by the packets received
    first_sequence_number: int  # lowest sequence number received for the frame
    last_sequence_number: int  # highest sequence number received for the frame
    packets_received: int  # packets of the frame that did arrive
    reason: str = "incomplete"  # why: "incomplete" (a packet between S=1 and marker is missing)


@dataclass(frozen=True)
class PacketsMissing:
    """A run of sequence numbers that never arrived between two resolved frames."""

    ssrc: int  # synchronization source of the stream
    first_sequence_number: int  # first missing sequence number (16-bit)
    count: int  # how many consecutive sequence numbers are missing


@dataclass(frozen=True)
class PacketDropped:
    """A packet the assembler refused; ``reason`` is the drop counter it was added to."""

    reason: str  # e.g. "malformed_packet", "bad_extension", "duplicate", "late"
    ssrc: int | None = None  # SSRC, when the header could be parsed
    sequence_number: int | None = None  # sequence number, when the header could be parsed
    detail: str = ""  # the error message (field and byte counts)


@dataclass(frozen=True)
class SFrameAssembled:
    """An SFrame ciphertext put back together from its S..E run (draft-ietf-avtcore-rtp-sframe-02).

    This is what the payload format exposes to anyone on the path, an SFU included: the
    descriptor bits, the RTP header of the packets and the SFrame ciphertext (whose KID and CTR
    header is readable, the rest is not).
    """

    ssrc: int  # synchronization source of the stream
    payload_type: int  # the media format's payload type, equal on every fragment
    packetized: bool  # T bit: True = per-packet (a codec RTP payload inside), False = raw frame
    timestamp: int  # RTP timestamp of the fragments
    first_sequence_number: int  # sequence number of the S=1 packet (16-bit)
    last_sequence_number: int  # sequence number of the E=1 packet (16-bit)
    packet_count: int  # packets in the run
    ciphertext: bytes  # the SFrame ciphertext: descriptors removed, fragments concatenated
    marker: bool  # marker bit of the last packet
    payload_sizes: tuple[int, ...]  # RTP payload sizes, descriptor included, in sequence order
    audio_level: AudioLevel | None = None  # RFC 6464 element of the first packet, if present
    mid: str | None = None  # BUNDLE MID extension of the first packet, if present
    arrival: float | None = None  # ``now`` passed with the packet that completed the run

    def as_frame(self, codec: Codec) -> FrameAssembled:
        """The run as the frame record decoders take: ``data`` is the SFrame ciphertext (all an
        SFU has of it), ``codec`` the media format of its payload type."""
        return FrameAssembled(self.ssrc, self.payload_type, codec, self.timestamp, self.first_sequence_number,
                              self.last_sequence_number, self.packet_count, self.ciphertext, self.marker,
                              self.payload_sizes, self.audio_level, self.mid, arrival=self.arrival)


RTPEvent = FrameAssembled | FrameLost | PacketsMissing | PacketDropped | SFrameAssembled
