"""A participant of the Janus call: the aiortc participant of the lab, publishing and subscribing
through VideoRoom.

:class:`JanusParticipant` is the aiortc participant (:class:`~e2ee_lab.webrtc.participant.WebRTCParticipant`:
camera and microphone tracks, the W3C-shaped sender and receiver transforms running the call
mode's frame crypto, the receivers' frame records, the group key agreement) with Janus's
signalling instead of the lab SFU's: its own Janus session; a publisher handle whose
PeerConnection it offers (send-only audio and video, VP8 on payload type 96 and Opus on 111 by
:func:`~e2ee_lab.webrtc.sdp.remap_offer`, ``"e2ee": true`` in the jsep in the e2ee modes); and a
subscriber handle whose PeerConnection answers Janus's multistream offer for every other feed.
Every SDP must carry only loopback candidates (:func:`~e2ee_lab.webrtc.sdp.check_loopback`);
aiortc gathers inside :func:`~e2ee_lab.webrtc.loopback.loopback_ice`.

Which publisher a subscribed stream comes from is Janus's claim (``attached.streams``: mid ->
feed); a lie shows up as pictures that do not match what that publisher sent. Janus rewrites
the RTP timestamps it forwards so each subscriber stream starts at 0 (``janus_rtp_header_update``);
:class:`RebasedIndex` judges received frames against what was sent accordingly.
"""

from __future__ import annotations

import time

from aiortc import RTCPeerConnection, RTCSessionDescription

from e2ee_lab.webrtc import aiortc_hooks
from e2ee_lab.webrtc.call import SentIndex
from e2ee_lab.webrtc.loopback import loopback_configuration, loopback_ice
from e2ee_lab.webrtc.participant import WebRTCParticipant
from e2ee_lab.webrtc.sdp import check_loopback, remap_offer
from e2ee_lab.webrtc.sfu import transport_keys
from e2ee_lab.webrtc.transform import RTP_WRAP

from .client import JanusSession, VideoRoom

CONNECT_TIMEOUT = 10.0  # seconds until Janus reports a PeerConnection up


class RebasedIndex(SentIndex):
    """What each publisher sent, for receivers behind Janus: Janus rebases every forwarded stream's
    RTP timestamps to start at 0 at the first packet it forwards, which is the publisher's first
    sent frame (media starts after every subscription), so a received timestamp ``t`` is the
    frame whose media timestamp is the first one's plus ``t``."""

    def origin(self, publisher: str, kind: str) -> int | None:
        person = self.people.get(publisher)
        sent = [r for r in person.senders[kind].records if not r.reason] if person and kind in person.senders else []
        return (-sent[0].media_timestamp) % RTP_WRAP if sent else None


class JanusParticipant(WebRTCParticipant):
    """One participant behind Janus: ``pc`` publishes, ``sub_pc`` receives every other feed.

    Arguments as :class:`~e2ee_lab.webrtc.participant.WebRTCParticipant`.
    """

    def __init__(self, index: int, **kwargs) -> None:
        super().__init__(index, **kwargs)
        self.sub_pc = RTCPeerConnection(loopback_configuration())
        self.session: JanusSession | None = None
        self.publisher: VideoRoom | None = None
        self.subscriber: VideoRoom | None = None
        self.feed: int | None = None
        self.sdp: dict[str, str] = {}
        self.timing: dict[str, float] = {}  # seconds from sending the SDP to Janus's webrtcup

    def __repr__(self) -> str:
        return f"JanusParticipant({self.name!r}, {self.mode}, feed {self.feed})"

    async def publish(self, url: str, room: int) -> int:
        """Open a session, join ``room`` as a publisher and publish camera and microphone; returns
        the feed id once Janus reports the PeerConnection up.

        Raises:
            NotLoopback: an SDP names a non-loopback address.  JanusError: Janus refused or timed out.
        """
        self.session = JanusSession(url)
        await self.session.create()
        self.publisher = await VideoRoom.attach(self.session)
        self.feed = (await self.publisher.join_publisher(room, self.name))["id"]
        for track in (self.audio, self.video):
            self._add_sender(self.pc.addTrack(track), track.kind)
        for transceiver in self.pc.getTransceivers():
            transceiver.direction = "sendonly"
        with loopback_ice():
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(RTCSessionDescription(sdp=remap_offer(offer.sdp), type="offer"))
        self.offer = self.sdp["publish_offer"] = self.pc.localDescription.sdp
        check_loopback(self.offer, where=f"{self.name}'s offer")
        sent = time.perf_counter()
        answer = await self.publisher.publish(self.offer, e2ee=self.mode != "dtls-srtp")
        self.answer_sdp = self.sdp["publish_answer"] = answer
        check_loopback(answer, where=f"Janus's answer to {self.name}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        transport = self.pc.getSenders()[0].transport
        aiortc_hooks.tap_sent_rtp(transport, self._on_sent)
        aiortc_hooks.tap_sent_datagrams(transport, self._on_datagram)
        await self.publisher.wait_webrtcup(CONNECT_TIMEOUT)
        self.timing["publish_up_s"] = time.perf_counter() - sent
        return self.feed

    async def subscribe(self, room: int, feeds: dict[int, str]) -> None:
        """Subscribe to ``feeds`` (feed id -> publisher name) on one PeerConnection; returns once
        Janus reports it up. Streams whose feed Janus names outside ``feeds`` are counted and left
        without a sink (``dropped["unknown_stream"]``)."""
        assert self.session is not None, "publish() first"
        self.subscriber = await VideoRoom.attach(self.session)
        attached, offer = await self.subscriber.subscribe(room, list(feeds))
        self.sdp["subscribe_offer"] = offer
        check_loopback(offer, where=f"Janus's offer to {self.name}")
        labels = {}
        for stream in attached.get("streams", []) if isinstance(attached.get("streams"), list) else []:
            if isinstance(stream, dict) and stream.get("feed_id") in feeds and stream.get("type") in ("audio", "video"):
                labels[str(stream.get("mid"))] = (feeds[stream["feed_id"]], stream["type"])
        await self.sub_pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for transceiver in self.sub_pc.getTransceivers():
            label = labels.get(str(transceiver.mid))
            if label is None or transceiver.kind != label[1]:
                self.dropped["unknown_stream"] += 1
                continue
            self._add_receiver(transceiver, label)
        with loopback_ice():
            await self.sub_pc.setLocalDescription(await self.sub_pc.createAnswer())
        answer = self.sdp["subscribe_answer"] = self.sub_pc.localDescription.sdp
        check_loopback(answer, where=f"{self.name}'s answer to Janus")
        sent = time.perf_counter()
        await self.subscriber.start(answer)
        await self.subscriber.wait_webrtcup(CONNECT_TIMEOUT)
        self.timing["subscribe_up_s"] = time.perf_counter() - sent

    def handles(self) -> dict[tuple[str, str], tuple[int, int]]:
        """``{(name, "publisher"|"subscriber"): (session id, handle id)}`` for the admin API."""
        out = {}
        for role, room in (("publisher", self.publisher), ("subscriber", self.subscriber)):
            if room is not None and self.session is not None and self.session.session_id is not None:
                out[self.name, role] = (self.session.session_id, room.handle)
        return out

    def keylog(self) -> list:
        """The SRTP keys of both legs (RFC 5764 §4.2 exporter, this side): the keys Janus holds too."""
        entries = []
        for role, pc in (("publisher", self.pc), ("subscriber", self.sub_pc)):
            if pc.connectionState == "connected":
                entries.append(transport_keys(pc.getTransceivers()[0].receiver.transport, f"{self.name}:{role}"))
        return entries

    async def leave(self) -> None:
        """Leave the room as a publisher (Janus closes this feed's recording)."""
        if self.publisher is not None:
            await self.publisher.leave()

    async def close(self) -> None:
        """Close both PeerConnections, let the sinks finish, destroy the Janus session."""
        await self.sub_pc.close()
        await super().close()
        if self.session is not None:
            await self.session.destroy()
