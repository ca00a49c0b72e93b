"""The RTP layer's exception family: one base class, one fixed ``reason`` per drop counter.

Parsing raises (RFC 3550 §5.1 header, RFC 8285 header extensions, RFC 7741 §4.2 VP8 payload
descriptor, RFC 7587 §4.2 Opus payload, the SFrame payload descriptor of
draft-ietf-avtcore-rtp-sframe-02 §4 and its reassembly rules of §5.2); the receiver that catches an error adds one to
``dropped[err.reason]`` and carries on. The packetizer raises the same family for frames it cannot
send (empty, or an audio frame larger than one packet). Messages name the field and the byte counts.
"""

from __future__ import annotations


class RTPError(Exception):
    """Base class of every RTP-layer failure."""

    reason = "rtp"


# --- receive side ------------------------------------------------------------------------------


class MalformedPacket(RTPError):
    """The bytes are not an RTP packet (short header, version != 2, truncated CSRC or padding)."""

    reason = "malformed_packet"


class BadExtension(MalformedPacket):
    """A header extension block or element is truncated or has the wrong length (RFC 8285)."""

    reason = "bad_extension"


class MalformedPayload(RTPError):
    """The RTP payload does not follow the payload format of its payload type."""

    reason = "malformed_payload"


class EmptyPayload(MalformedPayload):
    """No payload bytes at all, or a VP8 descriptor with nothing after it (libwebrtc drops both)."""

    reason = "empty_payload"


class TruncatedDescriptor(MalformedPayload):
    """The VP8 payload descriptor announces more fields than the payload holds (RFC 7741 §4.2)."""

    reason = "truncated_descriptor"


class MalformedSFrameDescriptor(MalformedPayload):
    """An SFrame payload is empty or is a descriptor byte with no SFrame bytes after it."""

    reason = "sframe_descriptor"


class InconsistentFragments(MalformedPayload):
    """The S..E run of an SFrame frame mixes T bits or payload types (-02 §5.2 steps 6-7)."""

    reason = "sframe_inconsistent"


class UnsupportedFragmentation(MalformedPayload):
    """A packetized (T=1) SFrame frame spread over several packets: this receiver refuses it."""

    reason = "sframe_packetized_fragmented"


class UnknownPayloadType(RTPError):
    """The payload type is not configured on this receiver (no a=rtpmap for it)."""

    reason = "unknown_payload_type"


# --- send side ---------------------------------------------------------------------------------


class PacketizationError(RTPError):
    """A frame the packetizer refuses to send."""

    reason = "packetization"


class EmptyFrame(PacketizationError):
    """A zero-byte frame: no payload format can carry it (a receiver would drop the packet)."""

    reason = "empty_frame"


class FrameTooLarge(PacketizationError):
    """An audio frame above one packet's payload budget (RFC 7587 §4.2: one frame per packet)."""

    reason = "frame_too_large"


class InvalidFrame(PacketizationError):
    """The frame does not fit the stream: wrong kind, or an audio level outside 0..127."""

    reason = "invalid_frame"
