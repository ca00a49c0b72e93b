"""The SFrame RTP payload format on the aiortc stack (draft-ietf-avtcore-rtp-sframe-02), via hooks.

aiortc packetizes and depacketizes by codec only (RFC 7741 VP8, RFC 7587 Opus). The lab puts the
draft's two ends around aiortc's pipeline, with the hooks of :mod:`~e2ee_lab.webrtc.aiortc_hooks`.

Send (:func:`sframe_rtp_payloads`, called from the encoder slot where aiortc's packetizer would
run): per-frame (T = 0), the frame transform encrypts the whole frame and the ciphertext is cut
into descriptor + fragment payloads, S on the first, E on the last (§5.1.1); per-packet (T = 1),
the codec packetizer (aiortc's VP8 one, or one Opus frame) runs on the plaintext and each payload
is encrypted and sent behind S = E = T = 1 (§5.1.2; aiortc's VP8 budget is 1300 bytes a payload,
so a packet grows by at most ``MAX_SFRAME_OVERHEAD`` + 1 = 34 bytes,
well inside loopback's MTU). aiortc then puts the RTP header on each payload and the marker on the
frame's last one.

Receive (:class:`SFrameDepayloader`, in place of the receiver's packet handler): every packet of
the stream goes through the draft's reassembly (:class:`~e2ee_lab.rtp.SFrameDepacketizer`, §5.2)
before aiortc sees anything. A raw (T = 0) run is the SFrame ciphertext of one frame: it is handed
to aiortc as codec packets the lab builds locally (VP8 payloads, or one Opus packet; the run's
timestamp and marker, local sequence numbers), so aiortc's jitter buffer and decoder run unchanged
and the receive transform decrypts the frame as it does under codec packetization. A packetized
(T = 1) run is decrypted at once (§5.2 step 13: the plaintext is one codec payload) and handed to
aiortc as that codec packet; the receive transform then passes it through. What aiortc's receiver
statistics and NACK generator see are these local packets, not the wire's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from aiortc.rtp import RtpPacket

from e2ee_lab.rtp import RTPError, RTPSFrameMode, SFrameAssembled, SFrameDepacketizer, SFramePayloadDescriptor
from e2ee_lab.rtp.sframe_format import sframe_payloads
from e2ee_lab.rtp.vp8 import PICTURE_ID_MOD, vp8_payloads

AIORTC_PAYLOAD_MAX = 1300  # aiortc's VP8 payload budget (aiortc.codecs.vpx PACKET_MAX)
SEQ_MOD = 1 << 16
Handler = Callable[[RtpPacket, int], Awaitable[None]]


def sframe_rtp_payloads(mode: RTPSFrameMode, data: bytes, protect: Callable[[bytes], bytes],
                        packetize: Callable[[bytes, int], list[bytes]] | None = None,
                        picture_id: int = 0) -> list[bytes]:
    """One encoded frame's RTP payloads in the payload format (``packetize``: aiortc's VP8
    packetizer, None for Opus). ``protect`` raises to drop the whole frame."""
    if RTPSFrameMode(mode) is RTPSFrameMode.PER_FRAME:
        return sframe_payloads(protect(data), AIORTC_PAYLOAD_MAX, packetized=False)
    plain = packetize(data, picture_id) if packetize is not None else [data]
    descriptor = bytes(SFramePayloadDescriptor(True, True, True))
    return [descriptor + protect(p) for p in plain]


class SFrameDepayloader:
    """The draft's reassembly in front of one aiortc receiver (module docstring).

    ``kind`` is "video" (VP8) or "audio" (Opus); ``unprotect(ciphertext, ssrc)`` decrypts a
    packetized run and raises an error with a ``reason`` when it cannot (counted in ``dropped``).
    """

    def __init__(self, kind: str, unprotect: Callable[[bytes, int], bytes],
                 errors: tuple[type[Exception], ...]) -> None:
        self.kind, self._unprotect, self._errors = kind, unprotect, errors
        self.depacketizer = SFrameDepacketizer()
        self.dropped: Counter[str] = Counter()
        self.runs: Counter[str] = Counter()  # "per-frame"/"per-packet" runs handed on
        self._seq: int | None = None
        self._picture_id = 0

    def wrap(self, aiortc_handler: Handler) -> Handler:
        """The handler to install (:func:`~e2ee_lab.webrtc.aiortc_hooks.intercept_rtp`)."""
        async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:  # aiortc passes it by name
            for local in self.receive(packet, arrival_time_ms / 1000):
                await aiortc_handler(local, arrival_time_ms)
        return handle

    def receive(self, packet: RtpPacket, now: float) -> list[RtpPacket]:
        """The codec packets for aiortc that this wire packet completes (often none)."""
        out = []
        for event in self.depacketizer.receive(packet, now):
            if isinstance(event, SFrameAssembled):
                out += self._local_packets(event)
        return out

    def _local_packets(self, run: SFrameAssembled) -> list[RtpPacket]:
        if run.packetized:
            if run.packet_count != 1:
                return self._drop("sframe_packetized_fragmented")
            try:
                payloads = [self._unprotect(run.ciphertext, run.ssrc)]
            except self._errors as err:
                return self._drop(getattr(err, "reason", "sframe"))
        elif self.kind == "video":
            try:
                payloads = vp8_payloads(run.ciphertext, picture_id=self._picture_id,
                                        max_payload=AIORTC_PAYLOAD_MAX)
            except ValueError as err:
                return self._drop(RTPError(str(err)).reason)
            self._picture_id = (self._picture_id + 1) % PICTURE_ID_MOD
        else:
            payloads = [run.ciphertext]
        self.runs["per-packet" if run.packetized else "per-frame"] += 1
        return [self._packet(run, payload, i == len(payloads) - 1) for i, payload in enumerate(payloads)]

    def _packet(self, run: SFrameAssembled, payload: bytes, last: bool) -> RtpPacket:
        if self._seq is None:
            self._seq = run.first_sequence_number
        local = RtpPacket(payload_type=run.payload_type, sequence_number=self._seq,
                          timestamp=run.timestamp, ssrc=run.ssrc, payload=payload,
                          marker=int(run.marker and last))
        local.extensions.audio_level = run.audio_level.as_aiortc() if run.audio_level else None
        self._seq = (self._seq + 1) % SEQ_MOD
        return local

    def _drop(self, reason: str) -> list[RtpPacket]:
        self.dropped[reason] += 1
        return []
