"""The RTP layer: packetizers, depacketizers, frame reassembly and header extensions.

Send: :class:`RTPPacketizer` turns an :class:`~e2ee_lab.media.frame.EncodedFrame` (plaintext or
SFrame ciphertext) into aiortc ``RtpPacket`` objects: VP8 per RFC 7741, Opus per RFC 7587, the
RFC 6464 audio level as a one-byte RFC 8285 extension. Receive: :class:`FrameAssembler` turns
packets back into frames (:class:`FrameAssembled`), reporting :class:`FrameLost`,
:class:`PacketsMissing` and :class:`PacketDropped`. The SFrame RTP payload format
(draft-ietf-avtcore-rtp-sframe-02): :class:`SFramePacketizer` (per-frame or per-packet),
:class:`SFrameDepacketizer` (what an SFU can reassemble) and :class:`SFrameReceiver`. Errors form one family under
:class:`RTPError`. The layer is sans-I/O: no sockets, clocks or asyncio.
"""

from .errors import (
    BadExtension,
    EmptyFrame,
    EmptyPayload,
    FrameTooLarge,
    InconsistentFragments,
    InvalidFrame,
    MalformedPacket,
    MalformedPayload,
    MalformedSFrameDescriptor,
    PacketizationError,
    RTPError,
    TruncatedDescriptor,
    UnknownPayloadType,
    UnsupportedFragmentation,
)
from .events import (
    FrameAssembled,
    FrameLost,
    PacketDropped,
    PacketsMissing,
    RTPEvent,
    SFrameAssembled,
)
from .extensions import (
    AUDIO_LEVEL_ID,
    AUDIO_LEVEL_URI,
    MID_ID,
    MID_URI,
    AudioLevel,
    make_extensions_map,
    parse_rtp,
    serialize_rtp,
)
from .formats import (
    DEFAULT_MTU,
    DEFAULT_SRTP_OVERHEAD,
    OPUS_CLOCK_RATE,
    VIDEO_CLOCK_RATE,
    Codec,
    max_rtp_packet_size,
)
from .packetizer import RTPPacketizer
from .reassembly import FrameAssembler
from .sframe_format import (
    RTPSFrameMode,
    SFramePacketizer,
    SFramePayloadDescriptor,
    SSRCKeyring,
    ssrc_base_key,
)
from .sframe_reassembly import SFrameDepacketizer, SFrameReceiver
from .seqnum import SequenceUnwrapper, seq_add, seq_diff, seq_lt, ts_add, ts_diff, ts_lt
from .vp8 import VP8PayloadDescriptor, vp8_frame_type

__all__ = [
    "AUDIO_LEVEL_ID",
    "AUDIO_LEVEL_URI",
    "DEFAULT_MTU",
    "DEFAULT_SRTP_OVERHEAD",
    "MID_ID",
    "MID_URI",
    "OPUS_CLOCK_RATE",
    "VIDEO_CLOCK_RATE",
    "AudioLevel",
    "BadExtension",
    "Codec",
    "EmptyFrame",
    "EmptyPayload",
    "FrameAssembled",
    "FrameAssembler",
    "FrameLost",
    "FrameTooLarge",
    "InvalidFrame",
    "MalformedPacket",
    "MalformedPayload",
    "PacketDropped",
    "PacketizationError",
    "PacketsMissing",
    "RTPError",
    "RTPEvent",
    "RTPPacketizer",
    "RTPSFrameMode",
    "SFrameAssembled",
    "SFrameDepacketizer",
    "SFramePacketizer",
    "SFramePayloadDescriptor",
    "SFrameReceiver",
    "SSRCKeyring",
    "InconsistentFragments",
    "MalformedSFrameDescriptor",
    "UnsupportedFragmentation",
    "ssrc_base_key",
    "SequenceUnwrapper",
    "TruncatedDescriptor",
    "UnknownPayloadType",
    "VP8PayloadDescriptor",
    "make_extensions_map",
    "max_rtp_packet_size",
    "parse_rtp",
    "seq_add",
    "seq_diff",
    "seq_lt",
    "serialize_rtp",
    "ts_add",
    "ts_diff",
    "ts_lt",
    "vp8_frame_type",
]
