"""The SFU: a sans-I/O core (routing, SSRC mapping, view tap, policies) for the simulated call.

:class:`SFUCore` takes plaintext RTP/RTCP per leg (the edge does SRTP, RFC 3711, with each leg's
DTLS-SRTP keys, RFC 5764) and returns plaintext RTP/RTCP per leg; :class:`ViewTap` records what
the SFU can read; :class:`Policy` decides what is forwarded (:class:`HonestPolicy` by default).
"""

from e2ee_lab.sfu.core import AUDIO_LEVEL_URI, DEFAULT_EXTMAP, DEFAULT_PAYLOAD_KINDS, SFUCore
from e2ee_lab.sfu.errors import (
    KindMismatch,
    LegExists,
    MalformedRTCP,
    MalformedRTP,
    SFUError,
    SSRCCollision,
    UnknownLeg,
    UnknownPayloadType,
    UnknownSSRC,
)
from e2ee_lab.sfu.events import (
    Event,
    FeedbackIgnored,
    KeyFrameRequested,
    OutgoingStreamCreated,
    PacketDropped,
    PacketForwarded,
    StreamAdded,
    SubscriberJoined,
    SubscriberLeft,
)
from e2ee_lab.sfu.policy import Decision, Drop, Forward, HonestPolicy, InboundRTP, Policy
from e2ee_lab.sfu.streams import StreamInfo
from e2ee_lab.sfu.view import COLUMNS, ViewRecord, ViewTap

__all__ = [
    "AUDIO_LEVEL_URI",
    "COLUMNS",
    "DEFAULT_EXTMAP",
    "DEFAULT_PAYLOAD_KINDS",
    "Decision",
    "Drop",
    "Event",
    "FeedbackIgnored",
    "Forward",
    "HonestPolicy",
    "InboundRTP",
    "KeyFrameRequested",
    "KindMismatch",
    "LegExists",
    "MalformedRTCP",
    "MalformedRTP",
    "OutgoingStreamCreated",
    "PacketDropped",
    "PacketForwarded",
    "Policy",
    "SFUCore",
    "SFUError",
    "SSRCCollision",
    "StreamAdded",
    "StreamInfo",
    "SubscriberJoined",
    "SubscriberLeft",
    "UnknownLeg",
    "UnknownPayloadType",
    "UnknownSSRC",
    "ViewRecord",
    "ViewTap",
]
