"""An SFU built on aiortc: one RTCPeerConnection per participant, RTP forwarded below aiortc's codecs.

For each participant the SFU creates a peer connection with two ``recvonly`` m-sections (the
participant's audio and video) and, for every other participant, two ``sendonly`` m-sections
carrying a :class:`~e2ee_lab.webrtc.media.SilentTrack` whose id names the publisher (SDP msid):
aiortc negotiates an SSRC and payload type for each, but the packets are the SFU's to send. The
SFU makes the offer (payload types and extension ids set to the lab's by
:func:`~e2ee_lab.webrtc.sdp.remap_offer`; ``a=setup:actpass``) and the participant answers
``active``, so the SFU is the DTLS server of every leg (RFC 5763 §5) and holds every leg's SRTP
keys.

Forwarding (:meth:`WebRTCSFU._forward`) taps each publisher packet after SRTP unprotect (RFC 3711
§3.3), records it (the SFU's view), and for each subscriber rewrites the SSRC to that leg's
sender, the MID to that m-section's, keeps payload type, sequence number, timestamp, marker,
payload and the audio level (RFC 6464) and abs-send-time, and SRTP-protects it with that leg's
key. A PLI or FIR a subscriber sends for a forwarded SSRC is forwarded to the publisher (RFC 4585
§6.3.1). The SFU's own receivers keep aiortc's RTCP (receiver reports, NACK, REMB), but every
frame their jitter buffers complete is stolen before the decoder thread: in e2ee mode every frame
would fail to decode, and aiortc answers each failure with a PLI (a key-frame storm). The SFU's
decoding attempt runs on the recorded packets instead (:mod:`e2ee_lab.analysis.sfu_view`).

:meth:`WebRTCSFU.keylog` re-runs the RFC 5764 §4.2 exporter ("EXTRACTOR-dtls_srtp") on each leg's
live DTLS connection and writes the keys in the lab's key-log format
(:class:`~e2ee_lab.transport.KeyLogEntry`), with the leg's 5-tuple from its ICE candidates, so
:mod:`e2ee_lab.capture` and :mod:`e2ee_lab.analysis` read this call's capture unchanged. Frame keys
never pass through here: the signalling relay carries the members' key messages as opaque bytes.
"""

from __future__ import annotations

import asyncio

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket

from e2ee_lab.crypto.keys import RekeyPolicy
from e2ee_lab.media.codecs import OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE
from e2ee_lab.sfu.server import SignallingRelay
from e2ee_lab.transport import EXPORTER_LABEL, KeyLogEntry, SRTPProfile, split_keying_material

from . import aiortc_hooks
from .errors import WebRTCError
from .loopback import loopback_configuration
from .media import SilentTrack, prefer, track_label
from .sdp import LAB_EXTENSION_IDS, add_sframe, check_loopback, is_loopback, remap_offer, sframe_sections

Clock = Callable[[], float]
KINDS = ("audio", "video")
MEDIA_PAYLOAD_TYPES = {VP8_PAYLOAD_TYPE: "video", OPUS_PAYLOAD_TYPE: "audio"}
VIEW_COLUMNS = ("time", "publisher", "kind", "ssrc", "payload_type", "seq", "timestamp", "marker",
                "payload", "audio_level", "voice_activity")


@dataclass(frozen=True)
class StolenFrame:
    """A frame an SFU receiver's jitter buffer completed, taken before aiortc's decoder."""

    publisher: str
    kind: str
    ssrc: int
    timestamp: int  # RTP timestamp
    size: int  # bytes (VP8 descriptors removed; SFrame ciphertext in e2ee mode)
    time: float  # seconds since the call started


def extensions_map() -> HeaderExtensionsMap:
    """The header-extension ids every leg negotiates (the lab's, set in the SFU's offers)."""
    params = [RTCRtpHeaderExtensionParameters(id=i, uri=uri) for uri, i in LAB_EXTENSION_IDS.items()]
    ext_map = HeaderExtensionsMap()
    ext_map.configure(RTCRtpParameters(headerExtensions=params))
    return ext_map


class WebRTCSFU:
    """The SFU of one aiortc call (see the module docstring).

    Args:
        names: every participant of the call, in order (each subscribes to all the others).
        key_policy: rekey policy of the signalling roster.
        clock: seconds since the call started.
    """

    def __init__(self, names: list[str], *, key_policy: RekeyPolicy, clock: Clock,
                 rtp_sframe: str | None = None) -> None:
        self.names = list(names)
        self.rtp_sframe = rtp_sframe  # offer a=sframe (the SFrame RTP payload format) in every m-section
        self.packetization: dict[str, str | None] = {}  # participant -> payload format its answer took
        self.signalling = SignallingRelay(key_policy)
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.offers: dict[str, str] = {}
        self.answers: dict[str, str] = {}
        self.view: list[tuple] = []  # VIEW_COLUMNS rows: every publisher packet after SRTP unprotect
        self.stolen: list[StolenFrame] = []
        self.packets_in = self.packets_forwarded = 0
        self.plis_sent = self.plis_forwarded = 0
        self.dropped: Counter[str] = Counter()
        self._clock = clock
        self._inbound: dict[tuple[str, str], object] = {}  # (publisher, kind) -> recvonly transceiver
        self._routes: dict[tuple[str, str], list] = {(n, k): [] for n in names for k in KINDS}
        self._publisher_ssrc: dict[tuple[str, str], int] = {}
        self._extensions = extensions_map()
        self._subscriber: dict[int, str] = {}  # id(transceiver) -> the subscriber it sends to
        #: (publisher, subscriber, kind, packet) -> True to drop the copy for that subscriber (loss
        #: experiments, e2ee_lab.browser); None forwards everything
        self.forward_filter: Callable[[str, str, str, RtpPacket], bool] | None = None

    # --- signalling: offer / answer ----------------------------------------------------------------

    async def offer(self, name: str) -> str:
        """Create ``name``'s peer connection and its offer (gathered; loopback only).

        Raises:
            ValueError: an unknown or repeated name.  NotLoopback: a non-loopback candidate.
        """
        if name not in self.names or name in self.pcs:
            raise ValueError(f"{name!r} is not an expected participant, or already connected")
        pc = self.pcs[name] = RTCPeerConnection(loopback_configuration())
        for kind in KINDS:
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            prefer(transceiver, kind)
            self._hook_inbound(name, kind, transceiver)
        for publisher in (n for n in self.names if n != name):
            for kind in KINDS:
                track = SilentTrack(kind, track_label(publisher, kind))
                transceiver = pc.addTransceiver(track, direction="sendonly")
                prefer(transceiver, kind)
                self._hook_outbound(name, publisher, kind, transceiver)
        ice = {id(t.receiver.transport.transport): t.receiver.transport.transport for t in pc.getTransceivers()}
        for transport in ice.values():  # checks from a non-loopback source are counted and ignored
            aiortc_hooks.refuse_foreign_checks(transport, is_loopback, self._refuse_check)
        offer = await pc.createOffer()
        await pc.setLocalDescription(RTCSessionDescription(sdp=remap_offer(offer.sdp), type="offer"))
        sdp = pc.localDescription.sdp
        if self.rtp_sframe is not None:  # aiortc keeps no attribute it does not know: add it here
            sdp = add_sframe(sdp)
        self.offers[name] = sdp
        check_loopback(sdp, where=f"the SFU's offer to {name}")
        return sdp

    async def accept(self, name: str, answer: str) -> None:
        """Apply ``name``'s answer; ICE and DTLS start right away.

        Raises:
            NotLoopback: the answer names a non-loopback address.
        """
        check_loopback(answer, where=f"{name}'s answer")
        self.answers[name] = answer
        took = self.rtp_sframe is not None and any(sframe_sections(answer).values())
        self.packetization[name] = self.rtp_sframe if took else None
        await self.pcs[name].setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    # --- hooks ---------------------------------------------------------------------------------------

    def _hook_inbound(self, publisher: str, kind: str, transceiver) -> None:
        self._inbound[publisher, kind] = transceiver
        receiver = transceiver.receiver

        async def forward(packet: RtpPacket) -> None:
            await self._forward(publisher, kind, packet)

        def steal(ssrc: int, data: bytes, timestamp: int) -> tuple[None, bool]:
            self.stolen.append(StolenFrame(publisher, kind, ssrc, timestamp, len(data), self._clock()))
            return None, False

        aiortc_hooks.tap_rtp(receiver, forward)
        aiortc_hooks.install_receiver_transform(receiver, steal)
        aiortc_hooks.count_plis(receiver, self._count_pli)

    def _hook_outbound(self, subscriber: str, publisher: str, kind: str, transceiver) -> None:
        self._routes[publisher, kind].append(transceiver)
        self._subscriber[id(transceiver)] = subscriber

        async def on_rtcp(packet) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                await self._forward_pli(publisher, kind)

        aiortc_hooks.tap_rtcp(transceiver.sender, on_rtcp)

    def _refuse_check(self, address: str) -> None:
        self.dropped["ice_check_not_loopback"] += 1

    def _count_pli(self, media_ssrc: int) -> None:
        self.plis_sent += 1

    async def _forward(self, publisher: str, kind: str, packet: RtpPacket) -> None:
        """Record one publisher packet and send a rewritten copy to every subscriber."""
        self.packets_in += 1
        level = packet.extensions.audio_level
        self.view.append((self._clock(), publisher, kind, packet.ssrc, packet.payload_type,
                          packet.sequence_number, packet.timestamp, packet.marker, bytes(packet.payload),
                          level[1] if level else None, level[0] if level else None))
        if MEDIA_PAYLOAD_TYPES.get(packet.payload_type) != kind:
            self.dropped["unknown_payload_type"] += 1
            return
        self._publisher_ssrc[publisher, kind] = packet.ssrc
        routes = self._routes[publisher, kind]
        for done, transceiver in enumerate(routes):
            try:
                await self._forward_one(publisher, kind, packet, transceiver)
            except asyncio.CancelledError:  # a leg closed while the send was pending: count, not lose
                self.dropped["closed_while_forwarding"] += len(routes) - done
                raise

    async def _forward_one(self, publisher: str, kind: str, packet: RtpPacket, transceiver) -> None:
        if self.forward_filter is not None and self.forward_filter(
                publisher, self._subscriber[id(transceiver)], kind, packet):
            self.dropped["filtered"] += 1
            return
        out = RtpPacket(payload_type=packet.payload_type, marker=packet.marker,
                        sequence_number=packet.sequence_number, timestamp=packet.timestamp,
                        ssrc=aiortc_hooks.sender_ssrc(transceiver.sender), payload=packet.payload)
        out.extensions.mid = transceiver.mid
        out.extensions.audio_level = packet.extensions.audio_level
        out.extensions.abs_send_time = packet.extensions.abs_send_time
        try:
            await aiortc_hooks.send_rtp(transceiver.sender.transport, out.serialize(self._extensions))
        except ConnectionError:
            self.dropped["leg_not_connected"] += 1
        except Exception:  # a leg torn down under the send: one subscriber's copy lost, counted
            self.dropped["send_failed"] += 1
        else:
            self.packets_forwarded += 1

    async def _forward_pli(self, publisher: str, kind: str) -> None:
        """A subscriber asked for a key frame of ``publisher``'s stream: ask the publisher."""
        ssrc = self._publisher_ssrc.get((publisher, kind))
        if ssrc is None:
            self.dropped["pli_before_media"] += 1
            return
        self.plis_forwarded += 1
        await aiortc_hooks.request_key_frame(self._inbound[publisher, kind].receiver, ssrc)

    # --- state and results -----------------------------------------------------------------------

    def connected(self) -> bool:
        """True when every peer connection is ``connected`` (ICE and DTLS done)."""
        return len(self.pcs) == len(self.names) and all(
            pc.connectionState == "connected" for pc in self.pcs.values())

    def _transport(self, name: str):
        return self.pcs[name].getTransceivers()[0].receiver.transport

    def dtls_role(self, name: str) -> str:
        """The SFU's DTLS role on ``name``'s leg ("client" or "server")."""
        return aiortc_hooks.dtls_state(self._transport(name))[1]

    def leg_addresses(self, name: str) -> tuple[tuple[str, int], tuple[str, int]]:
        """(SFU address, participant address) of ``name``'s leg: its only local and remote ICE
        candidates (loopback host candidates, one each)."""
        return transport_addresses(self._transport(name), name)

    def leg_keys(self, name: str) -> KeyLogEntry:
        """``name``'s leg SRTP keys from the RFC 5764 §4.2 exporter, as a key-log entry."""
        return transport_keys(self._transport(name), name)

    def keylog(self) -> list[KeyLogEntry]:
        """Every connected leg's keys (call before :meth:`close`)."""
        return [self.leg_keys(name) for name, pc in self.pcs.items() if pc.connectionState == "connected"]

    def sockets(self) -> list[dict]:
        """One row per leg: owner, local and remote address (the SFU's side of each leg)."""
        rows = []
        for name in self.pcs:
            ours, theirs = self.leg_addresses(name)
            rows.append({"owner": f"sfu:{name}", "local": ours, "remote": theirs})
        return rows

    def view_packets(self) -> pd.DataFrame:
        """The recorded publisher packets as the rows :func:`~e2ee_lab.analysis.sfu_view.analyze_packets` reads."""
        return pd.DataFrame(self.view, columns=list(VIEW_COLUMNS))

    def stolen_frames(self) -> pd.DataFrame:
        """The frames the SFU's jitter buffers completed (and kept from the decoder)."""
        return pd.DataFrame(self.stolen, columns=list(StolenFrame.__dataclass_fields__))

    async def close(self) -> None:
        """Close every peer connection."""
        for pc in self.pcs.values():
            await pc.close()


def transport_addresses(transport, leg: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """(local, remote) address of a connected ``RTCDtlsTransport``: its only local and remote ICE
    candidates (loopback host candidates, one address each; a candidate a bundled SDP repeats in
    every m-section counts once).

    Raises:
        WebRTCError: a side has more or fewer than one candidate address.
    """
    ice = transport.transport
    local, remote = ({(c.ip, c.port): c for c in found}.values()
                     for found in (ice.iceGatherer.getLocalCandidates(), ice.getRemoteCandidates()))
    local, remote = list(local), list(remote)
    if len(local) != 1 or len(remote) != 1:
        raise WebRTCError(f"leg {leg}: expected one candidate per side, got {len(local)} and {len(remote)}")
    return (local[0].ip, local[0].port), (remote[0].ip, remote[0].port)


def transport_keys(transport, leg: str) -> KeyLogEntry:
    """The SRTP keys of a connected ``RTCDtlsTransport`` from the RFC 5764 §4.2 exporter, as a
    key-log entry named ``leg`` (either end of a leg exports the same keys)."""
    ssl, role = aiortc_hooks.dtls_state(transport)
    profile = SRTPProfile.from_openssl_name(ssl.get_selected_srtp_profile())
    material = ssl.export_keying_material(EXPORTER_LABEL, 2 * (profile.key_length + profile.salt_length))
    client_write, server_write = split_keying_material(profile, material)
    ours, theirs = transport_addresses(transport, leg)
    client, server = (ours, theirs) if role == "client" else (theirs, ours)
    return KeyLogEntry(leg=leg, profile=profile, client=client, server=server,
                       client_write=client_write, server_write=server_write)
