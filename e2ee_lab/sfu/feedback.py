"""RTCP at the SFU core: it terminates RTCP, maps a subscriber's PLI back to the publisher, throttles it.

RTCP terminates at the SFU (RFC 7667 §3.7): each compound packet from a leg is parsed and counted
by type (``rtcp_seen``); a PLI (RFC 4585 §6.3.1) names an outgoing SSRC of the subscriber's leg,
which the SFU maps back to the publisher's stream and forwards as its own PLI, at most one per
``pli_interval`` s per stream (``feedback_ignored["pli_throttled"]``); feedback for an SSRC the leg
never received (``unknown_media_ssrc``) or for audio (``not_video``) is counted and ignored. The
SFU also asks a publisher for a key frame itself (:meth:`~RTCPFeedback.request_key_frame`, and on
every join). :class:`RTCPFeedback` is the RTCP half of :class:`~e2ee_lab.sfu.core.SFUCore`, a mixin
that reads the core's legs, streams and counters; sans-I/O like the rest of the core.
"""

from __future__ import annotations

import struct

from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket

from e2ee_lab.sfu.errors import MalformedRTCP, SFUError, UnknownLeg, UnknownSSRC
from e2ee_lab.sfu.events import FeedbackIgnored, KeyFrameRequested, LegId
from e2ee_lab.sfu.streams import Stream

Datagram = tuple[LegId, bytes]


class RTCPFeedback:
    """The RTCP handlers of :class:`~e2ee_lab.sfu.core.SFUCore` (module docstring)."""

    # --- RTCP ------------------------------------------------------------------------------------

    def receive_rtcp(self, leg_id: LegId, data: bytes, now: float) -> list[Datagram]:
        """Handle one plaintext (compound) RTCP packet from ``leg_id``; never raises on bad input.

        Returns:
            RTCP ``(publisher_leg, bytes)`` to SRTP-protect and send (forwarded PLIs).
        """
        self.packets_in += 1
        data = bytes(data)
        try:
            packets = self._accept_rtcp(leg_id, data)
        except SFUError as exc:
            self._drop_datagram(exc, leg_id, len(data), now)
            return []
        self.packets_routed += 1
        out: list[Datagram] = []
        for packet in packets:
            self.rtcp_seen[type(packet).__name__] += 1
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                out += self._on_pli(leg_id, packet.media_ssrc, now)
        return out

    def request_key_frame(self, leg_id: LegId, ssrc: int, now: float) -> list[Datagram]:
        """The SFU's own PLI to publisher stream ``ssrc`` of ``leg_id`` (throttled like others).

        Raises:
            UnknownSSRC: ``leg_id`` publishes no stream ``ssrc``.
        """
        stream = self._streams.get(ssrc)
        if stream is None or stream.info.leg != leg_id:
            raise UnknownSSRC(f"leg {leg_id!r} has no stream {ssrc:#010x}", ssrc=ssrc)
        return self._request_key_frame(stream, now, "sfu", None)

    def _accept_rtcp(self, leg_id: LegId, data: bytes) -> list:
        if leg_id not in self._legs:
            raise UnknownLeg(f"RTCP from leg {leg_id!r}, which is not a leg")
        try:
            packets = RtcpPacket.parse(data)
        except (ValueError, struct.error) as exc:
            raise MalformedRTCP(f"RTCP parse failed on {len(data)} bytes: {exc}") from exc
        if not packets:
            raise MalformedRTCP(f"no RTCP packet of a known type in {len(data)} bytes")
        return packets

    def _on_pli(self, leg_id: LegId, media_ssrc: int, now: float) -> list[Datagram]:
        source = self._out_index.get((leg_id, media_ssrc))
        if source is None:
            self._ignore_feedback(leg_id, "unknown_media_ssrc", media_ssrc, now)
            return []
        return self._request_key_frame(self._streams[source], now, "subscriber", leg_id)

    def _request_key_frame(
        self, stream: Stream, now: float, cause: str, by: LegId | None, force: bool = False
    ) -> list[Datagram]:
        info = stream.info
        asker = by if by is not None else info.leg
        if info.kind != "video":
            self._ignore_feedback(asker, "not_video", info.ssrc, now)
            return []
        recent = stream.last_pli is not None and now - stream.last_pli < self.pli_interval
        if recent and not force:
            self._ignore_feedback(asker, "pli_throttled", info.ssrc, now)
            return []
        stream.last_pli = now
        self.plis_sent += 1
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=info.ssrc)
        self._emit(
            KeyFrameRequested(time=now, leg=info.leg, ssrc=info.ssrc, cause=cause, requested_by=by)
        )
        return [(info.leg, bytes(pli))]

    def _ignore_feedback(self, leg_id: LegId, reason: str, media_ssrc: int, now: float) -> None:
        self.feedback_ignored[reason] += 1
        self._emit(FeedbackIgnored(time=now, leg=leg_id, reason=reason, media_ssrc=media_ssrc))
