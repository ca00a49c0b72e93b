"""A participant of the aiortc call on libwebrtc itself (M152, through PyPI ``wrtc``), with its own SFrame.

:class:`NativeParticipant` answers the aiortc SFU's offer with a libwebrtc ``RTCPeerConnection``
(the ``webrtc`` module of the ``wrtc`` wheel, which follows the W3C API). It publishes a camera
(:class:`~e2ee_lab.media.scene.Scene` pictures written to a ``VideoTrackGenerator``) and a
microphone (:class:`~e2ee_lab.media.speech.SpeechSource` chunks written to a
``MediaStreamTrackGenerator``), paced in real time like the lab's aiortc tracks, and libwebrtc
encodes them (VP8, Opus), packetizes, protects with SRTP and sends. In the ``e2ee`` mode each
sender's ``transform`` is libwebrtc's ``RTCRtpSFrameEncryptor`` and each received stream's is an
``RTCRtpSFrameDecryptor`` (RFC 9605 per-frame, suite 4), fed with base keys from the lab's group
key agreement, which this participant runs as a member (:mod:`e2ee_lab.native.keys`: the roster's
KIDs, one per media kind; attribution and retirement on libwebrtc's side). Its identity key,
session and frame keys come from the OS unless the call asked for reproducible keys (then from its
seed, :func:`~e2ee_lab.call.participant.key_seed`).

libwebrtc gathers ICE candidates on every interface and cannot be told not to, so a
:class:`NativeParticipant` refuses to exist in a network namespace with any interface besides
``lo`` (:class:`~e2ee_lab.native.errors.NotIsolated`); :mod:`e2ee_lab.native.call` runs the whole
call in a private one. There loopback candidates are allowed (``webrtc.allow_loopback``; libwebrtc
skips them by default), and every offer and answer is checked to name loopback addresses only.

What it decodes is measured from libwebrtc's outputs: each received video track is read back
(``MediaStreamTrackProcessor``) and every decoded picture, named by its RTP timestamp, is judged
against the picture the publisher sent (as the lab's receivers do); audio from libwebrtc's own
statistics (samples decoded and not concealed) and the decryptors' error events.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable

import numpy as np
import webrtc

from e2ee_lab.call.participant import SPEECH_STAGGER, key_seed, keys_held
from e2ee_lab.call.pipeline import ReceivedFrame, thumbnail
from e2ee_lab.crypto.keys import (
    DEFAULT_SUITE, IdentityKeyPair, KeyAgreementError, Member, RekeyPolicy, RosterUpdate, new_session,
)
from e2ee_lab.crypto.sframe import CipherSuite
from e2ee_lab.media.codecs import mean_abs_error, picture_matches
from e2ee_lab.media.scene import Scene, VideoSize
from e2ee_lab.media.speech import AUDIO_RATE, FRAME_MS, FRAME_SAMPLES, SpeechSource
from e2ee_lab.sfu.server import SignallingRelay
from e2ee_lab.webrtc.media import Truth, parse_track_label
from e2ee_lab.webrtc.sdp import check_loopback

from .errors import NativeError, NotIsolated
from .keys import KINDS, InstalledKeys, KeyChanges, Stream, plan_keys, refusal_reason
from .sdp import share_bundle_candidates, stream_labels

Clock = Callable[[], float]
NAME = "libwebrtc"  # the native participant's name in the call
GATHER_TIMEOUT = 5.0  # seconds until libwebrtc's ICE gathering must complete
KEY_SYNC = 0.05  # seconds between two key synchronisations (switch-overs, retirements)
READ_BUFFER = 64  # decoded frames libwebrtc may queue per received track before dropping the oldest
#: the counters of libwebrtc's inbound-rtp and outbound-rtp statistics the summary keeps
STATS_FIELDS = ("packetsReceived", "packetsLost", "packetsDiscarded", "framesReceived", "framesDecoded", "keyFramesDecoded",
                "framesDropped", "totalSamplesReceived", "concealedSamples", "pliCount", "firCount", "nackCount",
                "packetsSent", "framesEncoded", "framesSent", "keyFramesEncoded", "encoderImplementation",
                "decoderImplementation")
NOT_A_NUMBER = re.compile(r"(?<=:)-?(?:inf|nan)(?=[,}])")
_loopback_allowed = False


def isolation_problem() -> str | None:
    """Why no libwebrtc peer connection may exist in this network namespace (an interface besides
    ``lo``, by ``if_nameindex`` of the calling thread's namespace), or None."""
    others = sorted(name for _, name in socket.if_nameindex() if name != "lo")
    return f"this network namespace has interfaces besides lo: {', '.join(others)}" if others else None


def allow_loopback() -> None:
    """Let libwebrtc gather loopback candidates (once per process, before any peer connection).

    Raises:
        NotIsolated: this network namespace has an interface besides ``lo``.
    """
    global _loopback_allowed
    problem = isolation_problem()
    if problem is not None:
        raise NotIsolated(f"no libwebrtc peer connection here: {problem}")
    if not _loopback_allowed:
        webrtc.allow_loopback()
        _loopback_allowed = True


class NativeParticipant:
    """The libwebrtc participant (module docstring). Arguments as :class:`~e2ee_lab.webrtc.participant.WebRTCParticipant`'s.

    Args:
        index: position in the call (picture, speech offset, member seed).
        mode: "dtls-srtp" (no frame transform) or "e2ee" (libwebrtc's SFrame).
        size: picture size and frame rate; frames: ``{"video": n, "audio": m}`` to send.
        seed: reproducible picture (and keys with ``reproducible_keys``); clock: seconds since the
            call started.
        key_policy: rekey policy of its member; truth: what every publisher sent (for judging).
        reproducible_keys: derive identity key, session and frame keys from ``seed``.

    Raises:
        NotIsolated: not in a private network namespace with only ``lo``.
        ValueError: a mode other than "dtls-srtp" or "e2ee".
    """

    def __init__(self, index: int, *, mode: str, size: VideoSize, frames: dict[str, int], seed: int,
                 clock: Clock, key_policy: RekeyPolicy, truth: Truth,
                 suite: CipherSuite = DEFAULT_SUITE, reproducible_keys: bool = False) -> None:
        if mode not in ("dtls-srtp", "e2ee"):
            raise ValueError(f"the native participant runs dtls-srtp or e2ee (libwebrtc's SFrame), not {mode!r}")
        allow_loopback()
        self.index, self.mode, self.seed, self.key_policy, self.suite = index, mode, seed, key_policy, suite
        self.name = NAME
        self.scene = Scene(index, seed=seed, width=size.width, height=size.height, fps=size.fps)
        self.speech = SpeechSource(offset_s=index * SPEECH_STAGGER)
        self.reproducible_keys = reproducible_keys
        self.identity = IdentityKeyPair.generate(seed=key_seed("identity", seed, index, reproducible_keys))
        self.key_session = new_session(key_seed("session", seed, index, reproducible_keys))  # the call session
        self.member: Member | None = None
        self.frames, self.fps = frames, size.fps
        self.pc = webrtc.RTCPeerConnection(webrtc.RTCConfiguration(ice_servers=[], bundle_policy="max-bundle"))
        self.video = webrtc.VideoTrackGenerator()
        self.audio = webrtc.MediaStreamTrackGenerator("audio")
        options = webrtc.RTCRtpSFrameEncryptorOptions(CipherSuite(suite).name)
        self.encryptors = {k: webrtc.RTCRtpSFrameEncryptor(options) for k in KINDS} if mode == "e2ee" else {}
        self.decryptors: dict[Stream, object] = {}
        self.streams: dict[str, Stream] = {}  # MID -> (publisher, kind) of each received stream
        self.written: dict[str, list[float]] = {"video": [], "audio": []}  # clock time of each frame handed over
        self.received: list[ReceivedFrame] = []
        self.decrypt_errors: dict[Stream, Counter[str]] = {}  # per received stream: drop reason -> frames
        self.dropped: Counter[str] = Counter()
        self.installed = InstalledKeys()
        self.members: dict[str, int] = {}
        self.offer: str | None = None
        self.answer_sdp: str | None = None
        self.raw_answer: str | None = None  # libwebrtc's answer before share_bundle_candidates
        self.lock = threading.Lock()
        self._clock, self._truth = clock, truth
        self._relay: SignallingRelay | None = None
        self._tasks: list[asyncio.Task] = []
        self._writers: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"NativeParticipant({self.name!r}, {self.mode}, {self.pc.connection_state})"

    # --- offer / answer ----------------------------------------------------------------------------

    async def answer(self, offer: str) -> str:
        """Answer the SFU's offer: publish, receive every forwarded stream; returns the answer SDP
        (gathered, candidates shared across the bundle for aiortc, loopback only).

        Raises:
            NotLoopback: the offer or the answer names a non-loopback address.
            NativeError: libwebrtc did not finish gathering in time.
        """
        check_loopback(offer, where=f"the SFU's offer to {self.name}")
        self.offer = offer
        await self.pc.set_remote_description(webrtc.RTCSessionDescriptionInit(type="offer", sdp=offer))
        labels = stream_labels(offer)
        for transceiver in self.pc.get_transceivers():
            label = parse_track_label(labels.get(transceiver.mid or "", ""))
            if label is not None:
                self._add_receiver(transceiver, label)
        for kind, track in (("audio", self.audio), ("video", self.video.track)):
            sender = self.pc.add_track(track)
            if kind in self.encryptors:
                sender.transform = self.encryptors[kind]
        await self.pc.set_local_description(await self.pc.create_answer())
        await self._gathered()
        self.raw_answer = self.pc.local_description.sdp
        check_loopback(self.raw_answer, where=f"{self.name}'s answer as libwebrtc made it")
        self.answer_sdp = share_bundle_candidates(self.raw_answer)
        check_loopback(self.answer_sdp, where=f"{self.name}'s answer")
        return self.answer_sdp

    async def _gathered(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_TIMEOUT
        while self.pc.ice_gathering_state != "complete":
            if loop.time() > deadline:
                raise NativeError(f"libwebrtc's ICE gathering did not complete within {GATHER_TIMEOUT} s")
            await asyncio.sleep(0.01)

    def _add_receiver(self, transceiver, label: tuple[str, str]) -> None:
        """Decryptor (e2ee) and reader for one forwarded stream, (publisher, kind)."""
        self.streams[transceiver.mid] = label
        if self.mode == "e2ee":
            decryptor = webrtc.RTCRtpSFrameDecryptor(webrtc.SFrameTransformOptions(CipherSuite(self.suite).name))
            decryptor.on("error", lambda event: self._on_decrypt_error(label, event))
            transceiver.receiver.transform = decryptor
            self.decryptors[label] = decryptor
        if label[1] == "video":
            self._tasks.append(asyncio.ensure_future(self._read_video(transceiver.receiver.track, label[0])))

    def _on_decrypt_error(self, label: Stream, event) -> None:
        error = getattr(event.error_type, "value", event.error_type)
        reason = refusal_reason(error, event.key_id, self.members.get(label[0]), label[1])
        self.decrypt_errors.setdefault(label, Counter())[reason] += 1

    # --- media -------------------------------------------------------------------------------------

    async def send_media(self, start: float) -> None:
        """Write the camera's and the microphone's frames, frame ``i`` at loop time ``start + i * interval``."""
        self._writers = {"video": self.video.writable.get_writer(), "audio": self.audio.writable.get_writer()}
        await asyncio.gather(self._pace("video", start, 1 / self.fps, self._write_video),
                             self._pace("audio", start, FRAME_MS / 1000, self._write_audio))

    async def _pace(self, kind: str, start: float, interval: float, write) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.frames[kind]):
            delay = start + i * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await write(i)

    async def _write_video(self, i: int) -> None:
        rgb = self.scene.rgb(i)
        rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
        init = webrtc.VideoFrameBufferInit(format="RGBA", coded_width=rgb.shape[1], coded_height=rgb.shape[0],
                                           timestamp=int(i * 1_000_000 / self.fps))
        frame = webrtc.VideoFrame(rgba.tobytes(), init)
        self.written["video"].append(self._clock())  # libwebrtc stamps the picture when it gets it
        await self._writers["video"].write(frame)

    async def _write_audio(self, i: int) -> None:
        pcm = self.speech.chunk(i).pcm
        data = webrtc.AudioData(webrtc.AudioDataInit(format="s16", sample_rate=AUDIO_RATE, number_of_frames=len(pcm),
                                                     number_of_channels=1, timestamp=i * FRAME_MS * 1000,
                                                     data=pcm.tobytes()))
        self.written["audio"].append(self._clock())
        await self._writers["audio"].write(data)

    async def _read_video(self, track, publisher: str) -> None:
        """Judge every picture libwebrtc decoded from ``publisher``'s video until the track ends."""
        init = webrtc.MediaStreamTrackProcessorInit(track, max_buffer_size=READ_BUFFER)
        async for frame in webrtc.MediaStreamTrackProcessor(init).readable:
            try:
                await self._judge_picture(frame, publisher)
            finally:
                frame.close()

    async def _judge_picture(self, frame, publisher: str) -> None:
        now = self._clock()
        timestamp = frame.metadata().rtp_timestamp
        width, height = frame.coded_width, frame.coded_height
        options = webrtc.VideoFrameCopyToOptions(format="RGBX")
        buffer = bytearray(frame.allocation_size(options))
        await frame.copy_to(buffer, options)
        got = thumbnail(np.frombuffer(buffer, np.uint8).reshape(height, width, 4)[:, :, :3])
        sent = self._truth(publisher, "video", timestamp) if timestamp is not None else None
        index, sent_at, thumb = sent if sent else (-1, math.nan, None)
        matches = thumb is not None and picture_matches(got, thumb)
        mae = mean_abs_error(got, thumb) if thumb is not None and got.shape == thumb.shape else math.nan
        reason = "" if matches else ("unknown_frame" if thumb is None else "garbage_picture")
        self.received.append(ReceivedFrame(
            receiver=self.name, publisher=publisher, kind="video", ssrc=-1,
            timestamp=timestamp if timestamp is not None else -1, frame_index=index, frame_type=None,
            packets=-1, size=-1, arrival=now, latency=now - sent_at, decrypted=True, decoded=matches,
            mae=mae, reason=reason))

    # --- keys --------------------------------------------------------------------------------------

    def join_keys(self, relay: SignallingRelay) -> None:
        """Join the group key agreement through the SFU's signalling relay."""
        self._relay = relay
        relay.register(self.name, self.on_signal)
        index = relay.join(self.name, self.identity.public, self.key_session, self._clock())
        self.member = Member(index, self.identity, user=self.name, session=self.key_session, policy=self.key_policy,
                             suite=self.suite, seed=key_seed("member", self.seed, self.index, self.reproducible_keys))

    def on_signal(self, message: object) -> None:
        """Signalling input: a roster update or a key message (opaque bytes)."""
        now = self._clock()
        if self.member is None or self._relay is None:
            self.dropped["keys_not_member"] += 1
            return
        try:
            with self.lock:
                if isinstance(message, RosterUpdate):
                    out = self.member.handle_roster(message, now)
                    for recipient, data in out:
                        self._relay.relay(self.member.index, recipient, data, now)
                elif isinstance(message, (bytes, bytearray)):
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

    async def arm(self, members: dict[str, int]) -> None:
        """Install the keys in libwebrtc (e2ee) and keep them in step with the member during the call."""
        self.members = dict(members)
        if self.mode != "e2ee":
            return
        await self.sync_keys()
        self._tasks.append(asyncio.ensure_future(self._keep_keys()))

    async def sync_keys(self) -> KeyChanges:
        """Bring libwebrtc's keys to what the member holds now (:func:`~e2ee_lab.native.keys.plan_keys`)."""
        with self.lock:
            self.member.tick(self._clock())
            changes = plan_keys(self.member, self.decryptors, self.members, self.installed)
        for kind, (kid, key) in changes.send.items():
            await self.encryptors[kind].set_encryption_key(key, kid)
        for stream, keys in changes.add.items():
            for kid, key in keys.items():
                await self.decryptors[stream].add_decryption_key(key, kid)
        for stream, kids in changes.remove.items():
            for kid in kids:
                await self.decryptors[stream].remove_decryption_key(kid)
        self.installed.apply(changes)
        return changes

    async def _keep_keys(self) -> None:
        while True:
            await asyncio.sleep(KEY_SYNC)
            await self.sync_keys()

    def send_kids(self) -> dict[str, int]:
        """The KID per kind libwebrtc encrypts with now (empty before the keys are installed)."""
        return dict(self.installed.send)

    # --- results -----------------------------------------------------------------------------------

    async def stats(self) -> dict[str, dict]:
        """libwebrtc's statistics: per received stream (``"publisher/kind"``) and per sent kind
        (``"sent/kind"``) the counters of :data:`STATS_FIELDS` it reports (W3C webrtc-stats names)."""
        out: dict[str, dict] = {}
        for entry in await raw_stats(self.pc):
            mid, kind = entry.get("mid"), entry.get("kind")
            if entry.get("type") == "inbound-rtp" and mid in self.streams:
                key = "/".join(self.streams[mid])
            elif entry.get("type") == "outbound-rtp":
                key = f"sent/{kind}"
            else:
                continue
            out[key] = {f: entry[f] for f in STATS_FIELDS if entry.get(f) is not None}
            if key in self._stream_keys():
                out[key]["sframeErrors"] = dict(self.decrypt_errors.get(self.streams[mid], {}))
        return out

    def _stream_keys(self) -> set[str]:
        return {"/".join(label) for label in self.streams.values()}

    def counters(self) -> Counter[str]:
        """Every drop: the decryptors' errors by kind and type, the key agreement's refusals."""
        total = Counter(self.dropped)
        for (_, kind), errors in self.decrypt_errors.items():
            total.update({f"{kind}_{reason}": n for reason, n in errors.items()})
        return total

    async def close(self) -> None:
        """Stop reading, end the tracks and close the peer connection."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers.values():
            try:
                await writer.close()
            except Exception:  # the stream already errored or closed: nothing more to end
                self.dropped["track_close_failed"] += 1
        self.pc.close()


async def raw_stats(pc) -> list[dict]:
    """``getStats()`` of a libwebrtc peer connection as libwebrtc's JSON entries.

    wrtc 0.1.0's own ``get_stats()`` cannot parse that JSON once a received stream has a
    ``remote-outbound-rtp`` entry without an RTCP sender report: libwebrtc writes its
    ``remoteTimestamp`` as ``-inf``, which is not JSON. The same native call (wrtc's batched
    entry point, as ``get_stats()`` makes it) is read here with every bare ``inf``/``nan`` value
    taken as null.
    """
    from webrtc.utils.loops import call_native_batched

    text = await call_native_batched(pc, pc._native_obj.getStats, lambda raw: str(raw))
    return json.loads(NOT_A_NUMBER.sub("null", text) or "[]")


def audio_frames_decoded(stream: dict) -> int:
    """Audio frames libwebrtc decoded from one received stream, over its statistics' whole life:
    packets received (one Opus frame each), less those its jitter buffer discarded (late) and those
    its SFrame decryptor refused (each refusal fires an error event, counted in ``sframeErrors``)."""
    refused = sum(stream.get("sframeErrors", {}).values())
    return max(0, stream.get("packetsReceived", 0) - stream.get("packetsDiscarded", 0) - refused)


def audio_frames_played(stream: dict) -> int:
    """20 ms of audio libwebrtc played out from received packets: samples received less those it
    concealed (a gap: a frame lost, late, refused, or the buffer running dry on jitter)."""
    samples = stream.get("totalSamplesReceived", 0) - stream.get("concealedSamples", 0)
    return max(0, samples // FRAME_SAMPLES)
