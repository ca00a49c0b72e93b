"""A participant's asyncio edge: signalling, its DTLS-SRTP leg to the SFU, paced media, receive path.

A thin loop around the sans-I/O pieces. :meth:`Participant.connect` sends an offer (certificate
fingerprint as SDP ``a=fingerprint`` carries it, RFC 8122 §5, and its SSRCs) to the SFU's signalling,
gets the answer (the SFU leg's address and fingerprint) and runs the DTLS handshake with
:func:`~e2ee_lab.transport.udp.connect_leg` (RFC 5764); each side checks the other's certificate
against the signalled fingerprint. In the e2ee modes :meth:`Participant.join_keys` makes it a
member of the group key agreement (:mod:`e2ee_lab.crypto.keys`): roster updates and key messages
arrive through the signalling relay as opaque bytes. Its identity key, call session and frame
keys come from the OS; only with ``reproducible_keys`` do they follow from the call's seed
(:func:`key_seed`), and then anyone who knows the seed recomputes them. :meth:`Participant.run` sends a picture every
``1/fps`` seconds and a 20 ms speech chunk every 20 ms (real time, :class:`MediaSender`); packets from
the SFU go through :class:`MediaReceiver`, whose PLIs go back to the SFU, and a PLI from the SFU
makes the next picture a key frame.

If the SFU's answer drops SDP ``a=sframe`` (``Answer.sframe`` False), an ``e2ee`` participant
sends its own frames without frame encryption, as a client that honours the negotiation would: the
fallback a downgrade attack exploits (:mod:`e2ee_lab.attacks.signalling`); its receiver still insists on
SFrame. With ``rtp_sframe`` the offer carries ``a=sframe`` with the SFrame RTP payload format's
mode (draft-ietf-avtcore-rtp-sframe-02 §6); the participant uses the payload format only if the
answer accepts it and kept ``a=sframe``, else it falls back to the codec's packetization, and
:attr:`Participant.packetization` says which ran. Each stream announcement names the publisher's
packetization, so a receiver takes every stream through the matching depacketizer.

The first :data:`WIRE_SAMPLE` SRTP packets the participant sends are also kept in ``wire``: exactly
the bytes a passive observer on the loopback interface would see (the "on the wire" hop).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Collection
from concurrent.futures import Executor

from e2ee_lab.call.frame_keys import FrameCrypto, make_frame_crypto
from e2ee_lab.call.clip import EncodedClip, SpeechClip
from e2ee_lab.call.pipeline import MediaReceiver, MediaSender, SenderOptions, SentData, Truth
from e2ee_lab.rtp import RTPSFrameMode
from e2ee_lab.crypto.keys import (
    MEDIA_KINDS,
    IdentityKeyPair,
    KeyAgreementError,
    Member,
    RekeyPolicy,
    RosterUpdate,
    kid_for,
    new_session,
)
from e2ee_lab.media.scene import PARTICIPANTS, Scene, VideoSize
from e2ee_lab.media.speech import FRAME_MS, SpeechSource
from e2ee_lab.sfu.server import Offer, SFUServer, StreamAnnounced
from e2ee_lab.transport import (
    Certificate,
    Fingerprint,
    RTCPReceived,
    RTPReceived,
    SRTPProfile,
    TransportError,
    UDPLeg,
    check_loopback,
    connect_leg,
)

WIRE_SAMPLE = 300  # SRTP packets kept per participant for the "on the wire" view
SPEECH_STAGGER = 3.7  # seconds between participants' starting points in the speech sample

Clock = Callable[[], float]


def key_seed(label: str, seed: int, index: int, reproducible: bool) -> bytes | None:
    """The seed of participant ``index``'s ``label`` key material ("identity", "member": base keys
    and nonces, "session") when the call asked for reproducible keys; else None: the OS draws it."""
    return f"{label}:{seed}:{index}".encode() if reproducible else None


def keys_held(member: Member, epoch: int, members: list[int]) -> bool:
    """True once ``member`` sends under ``epoch`` and holds every other member's keys (both kinds) for it."""
    kids = member.context.receive_kids
    return member.send_epoch == epoch and all(kid_for(epoch, m, kind) in kids for m in members
                                              if m != member.index for kind in MEDIA_KINDS)


def participant_name(index: int) -> str:
    """``alice``, ``bob``, ... (the badge names of :data:`~e2ee_lab.media.scene.PARTICIPANTS`)."""
    name = PARTICIPANTS[index % len(PARTICIPANTS)][0].lower()
    return name if index < len(PARTICIPANTS) else f"{name}{index // len(PARTICIPANTS) + 1}"


class Participant:
    """One participant of a call: camera, microphone, leg, keys, pipelines.

    Args:
        index: position in the call (picks the badge, the secret line and the speech offset).
        mode: "dtls-srtp", "e2ee" or "clear-prefix".
        size: picture size and frame rate.
        seed: makes SSRCs, frames and schedules reproducible (keys too with ``reproducible_keys``).
        profile: the SRTP protection profile to offer.
        clock: seconds since the call started (the ``now`` of every sans-I/O call).
        key_policy: rekey policy of the member (e2ee modes).
        options: the call's :class:`~e2ee_lab.call.pipeline.SenderOptions` (default: a browser's).
        rtp_sframe: offer the SFrame RTP payload format ("per-frame" or "per-packet", e2ee only);
            it is used if the answer accepts it (``packetization`` says what ran).
        reproducible_keys: derive identity key, session and frame keys from ``seed`` (recordings,
            tests); default False: the OS draws them.
        identity: a long-term identity key pair to use (reused across calls, as a device's is);
            default: a new one (from the seed with ``reproducible_keys``). Session and frame keys
            are drawn per call either way.
        publishes_video: False for a listener with its camera off: it offers and sends audio
            only (it still receives every publisher's video).
    """

    def __init__(self, index: int, *, mode: str, size: VideoSize, seed: int, profile: SRTPProfile,
                 clock: Clock, key_policy: RekeyPolicy, options: SenderOptions | None = None,
                 rtp_sframe: str | None = None, reproducible_keys: bool = False,
                 identity: IdentityKeyPair | None = None, publishes_video: bool = True) -> None:
        rng = random.Random(f"participant:{seed}:{index}")
        if rtp_sframe is not None and mode != "e2ee":
            raise ValueError(f"--rtp-sframe needs --mode e2ee, not {mode}")
        self.rtp_sframe = None if rtp_sframe is None else RTPSFrameMode(rtp_sframe).value
        self.index, self.mode, self.seed, self.profile = index, mode, seed, profile
        self.publishes_video = publishes_video
        self.name = participant_name(index)
        self.ssrcs = {"video": rng.randrange(1, 1 << 32), "audio": rng.randrange(1, 1 << 32)}
        self.rtcp_ssrc = rng.randrange(1, 1 << 32)
        self.scene = Scene(index, seed=seed, width=size.width, height=size.height, fps=size.fps)
        self.speech = SpeechSource(offset_s=index * SPEECH_STAGGER)
        self.certificate = Certificate.generate(self.name)
        self.reproducible_keys = reproducible_keys
        self.identity = identity or IdentityKeyPair.generate(seed=key_seed("identity", seed, index, reproducible_keys))
        self.key_session = new_session(key_seed("session", seed, index, reproducible_keys))  # the call session
        self.key_policy = key_policy
        self.options = options or SenderOptions()
        self.member: Member | None = None
        self.leg: UDPLeg | None = None
        self.sender: MediaSender | None = None
        self.receiver: MediaReceiver | None = None
        self.wire: list[bytes] = []
        self.dropped: Counter[str] = Counter()  # edge and key-agreement drops
        self.sframe_agreed = True  # the SFU's answer kept a=sframe (False: send without SFrame)
        self.rtp_sframe_agreed: str | None = None  # the payload format's mode the answer accepted
        self._clock = clock
        self._sfu: SFUServer | None = None
        self._announced: list[StreamAnnounced] = []
        self._adopted_counters: Counter[str] | None = None  # a worker's counts (adopt())
        self._early_rtcp: list[bytes] = []

    def __repr__(self) -> str:
        return f"Participant({self.name!r}, {self.mode}, leg={self.leg})"

    @property
    def packetization(self) -> str:
        """What this participant sends: ``"sframe per-frame"``/``"sframe per-packet"`` or ``"codec"``."""
        return f"sframe {self.rtp_sframe_agreed}" if self.rtp_sframe_agreed else "codec"

    # --- setup -----------------------------------------------------------------------------------

    async def connect(self, sfu: SFUServer) -> None:
        """Offer/answer through the SFU's signalling, then the DTLS handshake on the new leg.

        Raises:
            DTLSError: the handshake failed (e.g. FingerprintMismatch) or timed out.
        """
        self._sfu = sfu
        sfu.signalling.register(self.name, self.on_signal)
        offer = Offer(self.name, str(self.certificate.fingerprint()), self.offered_ssrcs(), self.rtp_sframe)
        answer = await sfu.accept(offer)
        self.sframe_agreed = answer.sframe
        accepted = answer.rtp_sframe if answer.rtp_sframe == self.rtp_sframe else None
        self.rtp_sframe_agreed = accepted if answer.sframe else None
        self.leg = await connect_leg(
            answer.address, certificate=self.certificate, name=self.name,
            remote_fingerprint=Fingerprint.parse(answer.fingerprint), profiles=(self.profile,),
            on_media=self._on_media,
        )

    def offered_ssrcs(self) -> dict[str, int]:
        """The streams this participant publishes (SDP ``a=ssrc``): audio, and video unless camera off."""
        return {k: v for k, v in self.ssrcs.items() if k == "audio" or self.publishes_video}

    def join_keys(self) -> None:
        """Join the group key agreement: the roster assigns a member index; updates follow."""
        assert self._sfu is not None, "connect() first"
        index = self._sfu.signalling.join(self.name, self.identity.public, self.key_session, self._clock())
        self.member = Member(index, self.identity, user=self.name, session=self.key_session, policy=self.key_policy,
                             seed=key_seed("member", self.seed, self.index, self.reproducible_keys))

    def keys_ready(self, epoch: int, members: list[int]) -> bool:
        """True once this member sends under ``epoch`` and holds every other member's epoch keys."""
        if self.member is None:
            return False
        self.member.tick(self._clock())
        return keys_held(self.member, epoch, members)

    def prepare(self, truth: Truth, *, sent_data: SentData | None = None,
                decode_video: Collection[str] | None = None, decode_audio: Collection[str] | None = None,
                clip: EncodedClip | None = None, speech_clip: SpeechClip | None = None) -> None:
        """Build the media pipelines (after the keys are agreed).

        ``sent_data``: what publishers sent, to verify every frame (:class:`MediaReceiver`);
        ``decode_video``, ``decode_audio``: the publishers whose video, audio is decoded (None: all); ``clip`` /
        ``speech_clip``: this participant's pre-encoded camera and microphone
        (:mod:`e2ee_lab.call.clip`), None: live encoders.
        """
        crypto: FrameCrypto = make_frame_crypto(self.mode, self.member)
        overhead = self.profile.rtp_overhead
        send_crypto = crypto if self.sframe_agreed else make_frame_crypto("dtls-srtp", None)
        self.sender = MediaSender(self.name, scene=self.scene, speech=self.speech, crypto=send_crypto,
                                  ssrcs=self.ssrcs, seed=self.seed, srtp_overhead=overhead,
                                  options=self.options, rtp_sframe=self.rtp_sframe_agreed, clip=clip,
                                  speech_clip=speech_clip)
        self.receiver = MediaReceiver(self.name, crypto=crypto, truth=truth, rtcp_ssrc=self.rtcp_ssrc,
                                      options=self.options, sent_data=sent_data, decode_video=decode_video,
                                      decode_audio=decode_audio)
        for message in self._announced:
            self.receiver.announce(message.ssrc, message.publisher, message.member, message.kind,
                                   message.rtp_sframe)
        for data in self._early_rtcp:
            self.sender.handle_rtcp(data)
        self._announced.clear()
        self._early_rtcp.clear()

    # --- signalling ------------------------------------------------------------------------------

    def on_signal(self, message: object) -> None:
        """Signalling input: a roster update, a key message (bytes) or a stream announcement."""
        now = self._clock()
        if isinstance(message, StreamAnnounced):
            if self.receiver is None:
                self._announced.append(message)
            else:
                self.receiver.announce(message.ssrc, message.publisher, message.member, message.kind,
                                       message.rtp_sframe)
            return
        if self.member is None:
            self.dropped["keys_not_member"] += 1
            return
        try:
            if isinstance(message, RosterUpdate):
                for recipient, data in self.member.handle_roster(message, now):
                    self._sfu.signalling.relay(self.member.index, recipient, data, now)  # type: ignore[union-attr]
            else:
                self.member.receive_key_message(bytes(message), now)  # type: ignore[arg-type]
        except KeyAgreementError as err:
            self.dropped[f"keys_{err.reason}"] += 1

    # --- media -----------------------------------------------------------------------------------

    async def run(self, start: float, seconds: float, pool: Executor | None = None) -> None:
        """Send media from loop time ``start`` for ``seconds``: pictures at the fps, speech every 20 ms.

        Rendering and VP8 encoding run on ``pool`` (PyAV releases the GIL there), so a second core
        can help; everything else stays on the loop.
        """
        loops = [self._audio_loop(start, seconds)]
        if self.publishes_video:
            loops.append(self._video_loop(start, seconds, pool))
        await asyncio.gather(*loops)

    async def _video_loop(self, start: float, seconds: float, pool: Executor | None) -> None:
        sender, loop, fps = self.sender, asyncio.get_running_loop(), self.scene.fps
        assert sender is not None, "prepare() first"
        origin = self._call_time(start)
        for i in range(int(round(seconds * fps))):
            await _sleep_until(start + i / fps)
            force = sender.take_key_frame_request()
            if sender.clip is not None:  # pre-encoded: no encoder work to move off the loop
                encoded, picture = sender.encode_video(i, force)
            else:
                encoded, picture = await loop.run_in_executor(pool, sender.encode_video, i, force)
            self._send_all(sender.send_video(i, encoded, picture, self._clock(), was_forced=force,
                                             captured_at=origin + i / fps))

    async def _audio_loop(self, start: float, seconds: float) -> None:
        interval = FRAME_MS / 1000
        origin = self._call_time(start)
        for i in range(int(round(seconds / interval))):
            await _sleep_until(start + i * interval)
            self._send_all(self.sender.audio_frame(i, self._clock(),  # type: ignore[union-attr]
                                                   captured_at=origin + i * interval))

    def _call_time(self, loop_time: float) -> float:
        """Loop time ``loop_time`` on the call's clock (the capture schedule's origin)."""
        return loop_time - asyncio.get_running_loop().time() + self._clock()

    def _send_all(self, packets: list[bytes]) -> None:
        for packet in packets:
            try:
                if len(self.wire) < WIRE_SAMPLE:
                    self._send_tapped(packet)
                else:
                    self.leg.send_rtp(packet)  # type: ignore[union-attr]
            except TransportError as err:
                self.dropped[err.reason] += 1

    def _send_tapped(self, packet: bytes) -> None:
        """``leg.send_rtp`` with a copy of the SRTP datagram kept, as an observer on ``lo`` sees it."""
        leg = self.leg
        assert leg is not None and leg.transport is not None
        leg.connection.send_rtp(packet)
        for datagram, addr in leg.connection.datagrams_to_send(asyncio.get_running_loop().time()):
            self.wire.append(datagram)
            leg.transport.sendto(datagram, check_loopback(addr))

    def _on_media(self, leg: UDPLeg, event: RTPReceived | RTCPReceived) -> None:
        if self.sender is None or self.receiver is None:
            if isinstance(event, RTCPReceived):
                self._early_rtcp.append(event.data)  # e.g. the SFU's PLI when a leg joins
            else:
                self.dropped["rtp_before_start"] += 1
            return
        if isinstance(event, RTCPReceived):
            self.sender.handle_rtcp(event.data)
            return
        self._send_rtcp(self.receiver.receive_rtp(event.data, self._clock()))

    def _send_rtcp(self, packets: list[bytes]) -> None:
        for packet in packets:
            try:
                self.leg.send_rtcp(packet)  # type: ignore[union-attr]
            except TransportError as err:
                self.dropped[err.reason] += 1

    def finish(self) -> None:
        """End of media: release what the reassembly still holds."""
        if self.receiver is not None:
            self.receiver.flush(self._clock())

    # --- results ---------------------------------------------------------------------------------

    def media_result(self) -> dict:
        """What this participant's media phase produced, picklable: in a worker process
        (:mod:`e2ee_lab.call.workers`), sent back to the call's process for :meth:`adopt`."""
        assert self.sender is not None and self.receiver is not None, "prepare() first"
        return {"name": self.name, "sent": list(self.sender.records), "received": list(self.receiver.records),
                "counters": dict(self.counters()), "wire": list(self.wire), "plis_sent": self.receiver.plis_sent,
                "plis_received": self.sender.plis_received, "pictures": self.receiver.pictures}

    def adopt(self, result: dict) -> None:
        """Take over the media phase a worker process ran for this participant (:meth:`media_result`)."""
        assert self.sender is not None and self.receiver is not None, "prepare() first"
        self.sender.records = result["sent"]
        self.receiver.records = result["received"]
        self.sender.plis_received, self.receiver.plis_sent = result["plis_received"], result["plis_sent"]
        self.receiver.adopted_pictures = result["pictures"]
        self.wire = result["wire"]
        self._adopted_counters = Counter(result["counters"])

    def counters(self) -> Counter[str]:
        """Every drop this participant counted: transport, reassembly, frame transform, decoder, send."""
        if self._adopted_counters is not None:
            return Counter(self._adopted_counters)
        total: Counter[str] = Counter(self.dropped)
        if self.leg is not None:
            total.update(self.leg.dropped)
        if self.receiver is not None:
            total.update(self.receiver.counters())
        if self.sender is not None:
            total.update({f"send_{k}": v for k, v in self.sender.dropped.items()})
        return total

    async def close(self) -> None:
        """Close the leg (close_notify) and wait for its socket to close."""
        if self.leg is not None:
            self.leg.close()
            await self.leg.wait_closed()


async def _sleep_until(deadline: float) -> None:
    """Sleep until loop time ``deadline``; when late, yield once and go on (no frames are skipped)."""
    await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))
