"""A participant of the aiortc call: one RTCPeerConnection to the SFU, its tracks, transforms and keys.

:meth:`WebRTCParticipant.answer` takes the SFU's offer (it must carry only loopback candidates),
adds the camera and microphone tracks, attaches a :class:`~e2ee_lab.webrtc.transform.SenderTransform`
to each sender and a :class:`~e2ee_lab.webrtc.transform.ReceiverTransform` plus a
:class:`~e2ee_lab.webrtc.media.TrackSink` to each stream the SFU forwards (the SDP track id names
the publisher), and answers (JSEP, RFC 8829 §5.3: ``a=setup:active``, so the participant is the
DTLS client of its leg). Frame keys come from the group key agreement exactly as in the lab's own
call: the participant becomes a :class:`~e2ee_lab.crypto.keys.Member`, and roster updates and
key-distribution messages reach it through the SFU's signalling relay as opaque bytes
(:class:`~e2ee_lab.sfu.server.SignallingRelay`). Identity key, session and frame keys come from
the OS unless the call asked for reproducible keys (then from its seed,
:func:`~e2ee_lab.call.participant.key_seed`). The frame crypto is set only once the keys are
agreed; until then the transforms drop frames (fail closed).

Counted here: PLIs the participant's receivers send (any cause) and PLI/FIR its senders receive;
the first RTP timestamp of each outgoing SSRC (a tap on the transport, which sees packets before
SRTP) gives the random timestamp origin aiortc adds, so sent frames can be named by the RTP
timestamp receivers and captures see. As in the lab's participant, the first
:data:`~e2ee_lab.call.participant.WIRE_SAMPLE` SRTP packets it sends are kept in ``wire``, as
protected datagrams (a tap below SRTP): exactly the bytes a passive observer on ``lo`` sees.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket, is_rtcp

from e2ee_lab.call.clip import ENCODINGS, encoded_clip
from e2ee_lab.call.frame_keys import FRAME_ERRORS, FrameCrypto, make_frame_crypto
from e2ee_lab.call.participant import SPEECH_STAGGER, WIRE_SAMPLE, key_seed, keys_held, participant_name
from e2ee_lab.crypto.keys import IdentityKeyPair, KeyAgreementError, Member, RekeyPolicy, RosterUpdate, new_session
from e2ee_lab.media.codecs import OPUS_PAYLOAD_TYPE, VIDEO_CLOCK, VP8_PAYLOAD_TYPE
from e2ee_lab.media.scene import Scene, VideoSize
from e2ee_lab.media.speech import FRAME_SAMPLES, SpeechSource
from e2ee_lab.rtp import RTPSFrameMode
from e2ee_lab.sfu.server import SignallingRelay

from . import aiortc_hooks
from .loopback import loopback_configuration
from .media import SceneTrack, SpeechTrack, TrackSink, Truth, parse_track_label, prefer
from .payload_format import SFrameDepayloader
from .sdp import add_sframe, check_loopback, sframe_sections
from .transform import (
    RTP_WRAP,
    NoFrameCrypto,
    ReceiverTransform,
    SenderTransform,
    attach_receiver,
    attach_sender,
)

Clock = Callable[[], float]


class WebRTCParticipant:
    """One participant: camera, microphone, a peer connection to the SFU, a key-agreement member.

    Args:
        index: position in the call (badge, secret line, speech offset, member seed).
        mode: "dtls-srtp", "e2ee" or "clear-prefix".
        size: picture size and frame rate; frames: ``{"video": n, "audio": m}`` to send.
        seed: reproducible pictures (and keys with ``reproducible_keys``); clock: seconds since the
            call started.
        key_policy: rekey policy of the member; truth: what any publisher sent (for judging; None:
            the receivers record what they decoded, judged after the call).
        rtp_sframe: the SFrame RTP payload format mode this participant supports; it is used when
            the SFU's offer carries ``a=sframe`` (the answer then does too), else the codec's.
        reproducible_keys: derive identity key, session and frame keys from ``seed``.
        encode: "live" (render and VP8-encode each picture during the call) or "clip" (the scene
            encoded once before the call, :func:`~e2ee_lab.call.clip.encoded_clip`, and sent
            through aiortc's pre-encoded path).
    """

    def __init__(self, index: int, *, mode: str, size: VideoSize, frames: dict[str, int], seed: int,
                 clock: Clock, key_policy: RekeyPolicy, truth: Truth | None,
                 rtp_sframe: RTPSFrameMode | None = None, reproducible_keys: bool = False,
                 encode: str = "live") -> None:
        self.index, self.mode, self.seed, self.key_policy = index, mode, seed, key_policy
        self.rtp_sframe = None if rtp_sframe is None else RTPSFrameMode(rtp_sframe)  # what it supports
        self.rtp_sframe_agreed: RTPSFrameMode | None = None  # the SFU's offer had a=sframe too
        self.depayloaders: list[SFrameDepayloader] = []
        self.reproducible_keys = reproducible_keys
        self.name = participant_name(index)
        self.scene = Scene(index, seed=seed, width=size.width, height=size.height, fps=size.fps)
        self.speech = SpeechSource(offset_s=index * SPEECH_STAGGER)
        self.identity = IdentityKeyPair.generate(seed=key_seed("identity", seed, index, reproducible_keys))
        self.key_session = new_session(key_seed("session", seed, index, reproducible_keys))  # the call session
        self.member: Member | None = None
        self.pc = RTCPeerConnection(loopback_configuration())
        self.lock = threading.Lock()
        self.start = asyncio.get_running_loop().create_future()  # loop time media starts
        self.encode = encode
        if encode not in ENCODINGS:
            raise ValueError(f"encode must be one of {', '.join(ENCODINGS)}, not {encode!r}")
        clip = encoded_clip(self.scene, frames["video"]) if encode == "clip" and frames["video"] else None
        self.video = SceneTrack(self.scene, start=self.start, frames=frames["video"], clip=clip)
        self.audio = SpeechTrack(self.speech, start=self.start, frames=frames["audio"])
        self.senders: dict[str, SenderTransform] = {}
        self.sinks: list[TrackSink] = []
        self.origins: dict[int, int] = {}  # SSRC -> RTP timestamp of its first packet
        self.packets: Counter[tuple[int, int]] = Counter()  # (SSRC, RTP timestamp) -> packets sent
        self.wire: list[bytes] = []  # the first WIRE_SAMPLE SRTP datagrams sent, as on the wire
        self.plis_sent = 0
        self.plis_by_ssrc: Counter[int] = Counter()  # PLIs sent per forwarded video SSRC
        self.plis_received = 0
        self.dropped: Counter[str] = Counter()
        self.offer: str | None = None
        self.answer_sdp: str | None = None
        self._clock, self._truth = clock, truth
        self._relay: SignallingRelay | None = None
        self._tasks: list[asyncio.Task] = []

    def __repr__(self) -> str:
        return f"WebRTCParticipant({self.name!r}, {self.mode}, {self.pc.connectionState})"

    # --- offer / answer ----------------------------------------------------------------------------

    async def answer(self, offer: str) -> str:
        """Answer the SFU's offer; returns the answer SDP (gathered, loopback only).

        Raises:
            NotLoopback: the offer or the answer names a non-loopback address.
        """
        check_loopback(offer, where=f"the SFU's offer to {self.name}")
        self.offer = offer
        offered = any(sframe_sections(offer).values())
        self.rtp_sframe_agreed = self.rtp_sframe if offered else None
        for track in (self.audio, self.video):
            self._add_sender(self.pc.addTrack(track), track.kind)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is not None and transceiver.direction != "sendonly":
                self._add_receiver(transceiver)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.answer_sdp = self.pc.localDescription.sdp
        if self.rtp_sframe_agreed is not None:  # aiortc drops attributes it does not know
            self.answer_sdp = add_sframe(self.answer_sdp)
        check_loopback(self.answer_sdp, where=f"{self.name}'s answer")
        transport = self.pc.getSenders()[0].transport
        aiortc_hooks.tap_sent_rtp(transport, self._on_sent)
        aiortc_hooks.tap_sent_datagrams(transport, self._on_datagram)
        return self.answer_sdp

    def _add_sender(self, sender, kind: str) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.sender is sender)
        prefer(transceiver, kind)
        video = kind == "video"
        transform = SenderTransform(
            None, kind=kind, ssrc=aiortc_hooks.sender_ssrc(sender),
            payload_type=VP8_PAYLOAD_TYPE if video else OPUS_PAYLOAD_TYPE,
            ticks_per_frame=VIDEO_CLOCK // self.scene.fps if video else FRAME_SAMPLES,
            lock=self.lock, clock=self._clock, rtp_sframe=self.rtp_sframe_agreed)
        self.senders[kind] = transform
        attach_sender(sender, transform)
        aiortc_hooks.tap_rtcp(sender, self._on_rtcp)

    def _add_receiver(self, transceiver, label: tuple[str, str] | None = None) -> None:
        """Transform, PLI counter and sink for a forwarded stream; ``label`` is (publisher, kind),
        by default read from the track id the lab's SFU gives it."""
        label = label or parse_track_label(transceiver.receiver.track.id)
        if label is None:
            self.dropped["unknown_track"] += 1
            return
        publisher, kind = label
        transform = ReceiverTransform(None, kind=kind, sender_member=None,
                                      lock=self.lock, clock=self._clock)
        attach_receiver(transceiver.receiver, transform)
        if self.rtp_sframe_agreed is not None:  # the payload format's depacketizer before aiortc's
            transform.upstream_decrypted = self.rtp_sframe_agreed is RTPSFrameMode.PER_PACKET
            depayloader = SFrameDepayloader(kind, transform.unprotect_payload, (*FRAME_ERRORS, NoFrameCrypto))
            aiortc_hooks.intercept_rtp(transceiver.receiver, depayloader.wrap)
            self.depayloaders.append(depayloader)
        aiortc_hooks.count_plis(transceiver.receiver, self._on_pli_sent)
        sink = TrackSink(transceiver.receiver.track, receiver=self.name, publisher=publisher, kind=kind,
                         transform=transform, truth=self._truth, clock=self._clock)
        self.sinks.append(sink)
        self._tasks.append(asyncio.ensure_future(sink.run()))

    # --- taps --------------------------------------------------------------------------------------

    def _on_sent(self, data: bytes) -> None:
        if len(data) < 12 or is_rtcp(data):
            return
        timestamp, ssrc = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
        self.origins.setdefault(ssrc, timestamp)
        self.packets[ssrc, timestamp] += 1

    def _on_datagram(self, data: bytes) -> None:
        """Keep the first SRTP (not SRTCP, STUN or DTLS) datagrams, RFC 7983 demultiplexing."""
        if len(self.wire) < WIRE_SAMPLE and len(data) >= 12 and 128 <= data[0] <= 191 and not is_rtcp(data):
            self.wire.append(bytes(data))

    async def _on_rtcp(self, packet) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.plis_received += 1

    def _on_pli_sent(self, media_ssrc: int) -> None:
        self.plis_sent += 1
        self.plis_by_ssrc[media_ssrc] += 1

    # --- keys --------------------------------------------------------------------------------------

    def join_keys(self, relay: SignallingRelay) -> None:
        """Join the group key agreement through the SFU's signalling relay."""
        relay.register(self.name, self.on_signal)
        self.become_member(relay.join(self.name, self.identity.public, self.key_session, self._clock()), relay)

    def become_member(self, index: int, relay) -> None:
        """Be member ``index`` of the key agreement; key messages go out through ``relay.relay``
        (the SFU's relay, or a worker's pipe to it, :mod:`e2ee_lab.webrtc.worker`)."""
        self._relay = relay
        self.member = Member(index, self.identity, user=self.name, session=self.key_session, policy=self.key_policy,
                             seed=key_seed("member", self.seed, self.index, self.reproducible_keys))

    def on_signal(self, message: object) -> None:
        """Signalling input: a roster update or a key message (opaque bytes)."""
        now = self._clock()
        if self.member is None or self._relay is None:
            self.dropped["keys_not_member"] += 1
            return
        try:
            if isinstance(message, RosterUpdate):
                with self.lock:
                    out = self.member.handle_roster(message, now)
                for recipient, data in out:
                    self._relay.relay(self.member.index, recipient, data, now)
            elif isinstance(message, (bytes, bytearray)):
                with self.lock:
                    self.member.receive_key_message(bytes(message), now)
        except KeyAgreementError as err:
            self.dropped[f"keys_{err.reason}"] += 1

    def keys_ready(self, epoch: int, members: list[int]) -> bool:
        """True once this member sends under ``epoch`` and holds every other member's key for it."""
        if self.member is None:
            return False
        with self.lock:
            self.member.tick(self._clock())
            return keys_held(self.member, epoch, members)

    def arm(self, members: dict[str, int]) -> FrameCrypto:
        """Give every transform the call mode's frame crypto (after the key agreement) and each
        receiver the member index of its publisher (``members``: name -> index)."""
        crypto = make_frame_crypto(self.mode, self.member)
        for transform in self.senders.values():
            transform.crypto = crypto
        for sink in self.sinks:
            sink.transform.sender_member = members.get(sink.publisher)
            sink.transform.crypto = crypto
        return crypto

    # --- results -----------------------------------------------------------------------------------

    def origin(self, kind: str) -> int | None:
        """aiortc's random RTP timestamp origin of our ``kind`` stream (None before it sent)."""
        transform = self.senders.get(kind)
        sent = [r for r in transform.records if not r.reason] if transform else []
        first = self.origins.get(transform.ssrc) if transform else None
        if not sent or first is None:
            return None
        return (first - sent[0].media_timestamp) % RTP_WRAP

    def counters(self) -> Counter[str]:
        """Every drop: transforms (send and receive), key agreement, unknown tracks."""
        total = Counter(self.dropped)
        for kind, transform in self.senders.items():
            total.update({f"send_{k}": v for k, v in transform.dropped.items()})
        for sink in self.sinks:
            total.update(sink.transform.dropped)
        for depayloader in self.depayloaders:
            total.update({f"rtp_{k}": v for k, v in depayloader.dropped.items()})
            total.update({f"rtp_sframe_{k}": v for k, v in depayloader.depacketizer.dropped.items()})
        return total

    @property
    def packetization(self) -> str:
        """What this participant sends: ``"sframe per-frame"``/``"sframe per-packet"`` or ``"codec"``."""
        return f"sframe {self.rtp_sframe_agreed.value}" if self.rtp_sframe_agreed else "codec"

    async def close(self) -> None:
        """Close the peer connection (DTLS close_notify) and let the sinks finish."""
        await self.pc.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        for task in self._tasks:
            task.cancel()

