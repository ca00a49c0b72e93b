"""Events the SFU core emits, as facts in the past tense (aioquic ``quic/events.py`` style).

The core appends one event per thing that happened and the edge drains them with
:meth:`SFUCore.next_event`. Packet-level events (:class:`PacketForwarded`, :class:`PacketDropped`)
can be switched off with ``SFUCore(packet_events=False)``; the counters stay exact either way.
Times are the ``now`` the caller passed in (seconds, any origin). A ``leg`` is whatever hashable id
the caller gave :meth:`SFUCore.add_leg` (a participant name, usually). Key-frame requests are RTCP
PLI (RFC 4585 §6.3.1); stream removal is announced to subscribers with RTCP BYE (RFC 3550 §6.6).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TypeAlias

LegId: TypeAlias = Hashable


@dataclass(frozen=True)
class SubscriberJoined:
    """A leg was added: it now publishes (once it sends) and receives every other leg's streams."""

    time: float  # when the leg was added
    leg: LegId  # the new leg


@dataclass(frozen=True)
class SubscriberLeft:
    """A leg was removed: nothing more is forwarded to or from it."""

    time: float  # when the leg was removed
    leg: LegId  # the removed leg
    streams: tuple[int, ...]  # the publisher SSRCs it had (now forgotten)


@dataclass(frozen=True)
class StreamAdded:
    """A publisher stream became known (learned from its first packet or declared)."""

    time: float  # when the first packet arrived (or the declaration)
    leg: LegId  # the publishing leg
    ssrc: int  # the publisher's SSRC on that leg
    kind: str  # "audio" or "video", from the payload type map
    payload_type: int  # payload type of the first packet (0 when declared)


@dataclass(frozen=True)
class OutgoingStreamCreated:
    """The core chose an SSRC for one publisher stream towards one subscriber (RFC 3550 §8.1)."""

    time: float  # when the first packet of the stream was forwarded to the subscriber
    source_leg: LegId  # publishing leg
    source_ssrc: int  # publisher's SSRC
    dest_leg: LegId  # subscriber leg
    ssrc: int  # the SFU-chosen SSRC the subscriber sees
    kind: str  # "audio" or "video"


@dataclass(frozen=True)
class PacketForwarded:
    """One RTP packet was sent to one subscriber leg (after SSRC and sequence rewriting)."""

    time: float  # when the core emitted it
    source_leg: LegId  # publishing leg
    source_ssrc: int  # publisher's SSRC
    source_seq: int  # sequence number the publisher gave the packet
    dest_leg: LegId  # subscriber leg it went to
    ssrc: int  # SFU-chosen SSRC on the subscriber leg
    seq: int  # sequence number on the subscriber leg
    size: int  # bytes of plaintext RTP handed to the edge
    modified: bool  # True when the policy replaced the packet (tamper, inject)
    fresh_seq: bool  # True when the packet took a new sequence slot (replay, inject)


@dataclass(frozen=True)
class PacketDropped:
    """A datagram (``dest_leg`` None) or one delivery of a packet (``dest_leg`` set) was dropped."""

    time: float  # when it was dropped
    leg: LegId  # the leg the datagram arrived on
    reason: str  # the counter it went to (``SFUCore.dropped`` or ``dropped_deliveries``)
    size: int  # bytes of the datagram
    ssrc: int | None = None  # SSRC when the header was readable
    dest_leg: LegId | None = None  # the subscriber the delivery was meant for


@dataclass(frozen=True)
class KeyFrameRequested:
    """The core sent an RTCP PLI to a publisher asking for a key frame on one video stream."""

    time: float  # when the PLI was generated
    leg: LegId  # the publishing leg the PLI goes to
    ssrc: int  # the publisher's SSRC the PLI names
    cause: str  # "subscriber" (forwarded PLI), "join" (new subscriber) or "sfu" (own request)
    requested_by: LegId | None = None  # the subscriber whose PLI or join caused it


@dataclass(frozen=True)
class FeedbackIgnored:
    """An RTCP feedback message was read but not acted upon."""

    time: float  # when it arrived
    leg: LegId  # the leg it arrived on
    reason: str  # "unknown_media_ssrc", "pli_throttled" or "not_video"
    media_ssrc: int  # the media SSRC the feedback named


Event: TypeAlias = (
    SubscriberJoined
    | SubscriberLeft
    | StreamAdded
    | OutgoingStreamCreated
    | PacketForwarded
    | PacketDropped
    | KeyFrameRequested
    | FeedbackIgnored
)
