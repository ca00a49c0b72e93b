"""The SFU core's errors: why a datagram or a call was refused (each has a fixed ``reason``).

:class:`~e2ee_lab.sfu.core.SFUCore` never lets them escape ``receive_rtp``/``receive_rtcp``: it
counts each as ``dropped[reason]``. The leg-management calls raise them.
"""

from __future__ import annotations


class SFUError(Exception):
    """Base of the SFU layer's errors; ``reason`` names the drop counter."""

    reason = "sfu"

    def __init__(self, message: str, *, ssrc: int | None = None) -> None:
        super().__init__(message)
        self.ssrc = ssrc


class UnknownLeg(SFUError):
    """The leg id was never added (or was removed)."""

    reason = "unknown_leg"


class LegExists(SFUError):
    """``add_leg`` with an id already in use."""

    reason = "leg_exists"


class MalformedRTP(SFUError):
    """aiortc could not parse the datagram as RTP (RFC 3550 §5.1, RFC 8285)."""

    reason = "malformed_rtp"


class MalformedRTCP(SFUError):
    """aiortc could not parse the datagram as (compound) RTCP (RFC 3550 §6.1)."""

    reason = "malformed_rtcp"


class UnknownPayloadType(SFUError):
    """The payload type is not in the PT -> kind map (RTX, FEC, or garbage)."""

    reason = "unknown_payload_type"


class UnknownSSRC(SFUError):
    """A new SSRC on a leg while SSRC learning is off (``learn_ssrcs=False``)."""

    reason = "unknown_ssrc"


class SSRCCollision(SFUError):
    """The SSRC belongs to another leg's stream or to an SFU-chosen outgoing stream."""

    reason = "ssrc_collision"


class KindMismatch(SFUError):
    """A known stream's packet carries a payload type of the other kind."""

    reason = "kind_mismatch"
