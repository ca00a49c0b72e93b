"""One video frame lost mid-call: does the receiver get its picture back, and after how long?

The experiment behind Lab 10's comparison of packetizations, run sans-I/O on real parts: real VP8
frames (libvpx through PyAV), real SFrame (RFC 9605, :class:`~e2ee_lab.crypto.sframe.SFrameContext`),
the lab's packetizers and reassembly, a real VP8 decoder judged by picture match. One sender, one
receiver, frames every ``1/fps`` s of simulated time; every packet of frame ``drop_frame`` is lost.

The receiver behaves like libwebrtc's (Chromium's) video receiver: after a loss it discards frames
until a key frame, and sends a PLI (RFC 4585 §6.3.1) at most every ``pli_interval`` s until one
comes; the sender answers a PLI with a key frame at its next picture. What differs is where the
receiver learns that a frame is a key frame:

- ``vp8`` (today's codec packetization): the VP8 depacketizer reads bit 0 of the first payload
  byte, which under SFrame is the SFrame config byte ``X|KKK|Y|CCC`` (RFC 9605 §4.3), not the VP8
  frame tag (RFC 6386 §9.1). From CTR 8 on that bit is the low bit of the CTR's length in bytes
  minus one, whatever the KID (the KID only fills the high nibble): with a 2-byte CTR (256..65,535)
  or a 4-byte one (2^24..2^32-1) it is 1, every frame, real key frames included, reads as a delta
  frame, and the receiver never recovers.
  This is Lab 10's measurement with Chromium as the receiver; here the same reading
  (:meth:`~e2ee_lab.rtp.FrameAssembled.guess_frame_type`) stands in for libwebrtc's.
- ``per-frame`` / ``per-packet`` (draft-ietf-avtcore-rtp-sframe-02): the payload format's
  depacketizer does not read the ciphertext; the receiver decrypts first and makes the media frame
  from the plaintext (§5.2 steps 12-13), so it sees the real frame type and the next key frame ends
  the outage.

The sender protects under :data:`KID`, the lab's KID of member 0's video in epoch 1 (``0x1100``,
:func:`~e2ee_lab.crypto.keys.kid_for`: each media kind has its own KID and counter). Its CTR
starts at ``start_ctr`` (default 300: a 2-byte CTR, as Lab 10's stuck Chrome run; a video counter
of its own passes 255 after 256 video frames, about 17 s at 15 frames/s). Figures are simulated
time, not wall time; nothing here touches a socket or a clock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from ..crypto.keys import kid_for
from ..crypto.sframe import CipherSuite, SFrameContext, SFrameError
from ..media.codecs import DecodeError, VP8Decoder, VP8Encoder, picture_matches
from ..media.frame import EncodedFrame
from ..media.scene import Scene
from ..rtp import (
    Codec,
    FrameAssembled,
    FrameAssembler,
    FrameLost,
    PacketsMissing,
    RTPPacketizer,
    RTPSFrameMode,
    SFramePacketizer,
    SFrameReceiver,
)

PACKETIZATIONS = ("vp8", "per-frame", "per-packet")
KID = kid_for(1, 0, "video")  # 0x1100: epoch 1, video, member 0 (epoch << 12 | kind << 8 | member)
SSRC, PT = 0x5EED, 96


@dataclass(frozen=True)
class LossRun:
    """One run of :func:`loss_recovery`."""

    packetization: str  # "vp8", "per-frame" or "per-packet"
    frames_sent: int  # pictures encoded and sent
    drop_frame: int  # index of the frame whose packets were all lost
    drop_ctr: int  # the SFrame CTR of that frame
    decoded: int  # frames the receiver decoded into the sent picture
    discarded_waiting: int  # frames the receiver discarded while waiting for a key frame
    key_frames_sent_after_drop: int  # key frames the sender produced after the loss (PLI answers)
    plis: int  # key-frame requests the receiver sent
    recovered_after_s: float | None  # from the loss to the next matching picture; None: never


class _Receiver:
    """The libwebrtc-like video receiver: loss -> PLI -> wait for what it reads as a key frame."""

    def __init__(self, packetization: str, context: SFrameContext, fps: int, pli_interval: float):
        self.packetization, self.context = packetization, context
        self.fps, self.pli_interval = fps, pli_interval
        self.decoder = VP8Decoder()
        self.waiting, self.last_pli, self.plis, self.discarded = False, None, 0, 0
        self.expected_seq: int | None = None
        if packetization == "vp8":
            self.rtp = FrameAssembler({PT: Codec.VP8}, max_wait=0.25)
        else:
            self.rtp = SFrameReceiver({PT: Codec.VP8}, lambda ct, _ssrc: context.unprotect(ct),
                                      max_wait=0.25)

    def receive(self, packet: bytes, now: float) -> list[tuple[int, object]]:
        """Feed one packet; returns ``(RTP timestamp, decoded picture)`` per frame it decodes."""
        decoded = []
        for event in self.rtp.receive(packet, now):
            if isinstance(event, (FrameLost, PacketsMissing)):
                self._loss(now)
            elif isinstance(event, FrameAssembled):
                picture = self._frame(event, now)
                if picture is not None:
                    decoded.append((event.timestamp, picture))
        return decoded

    def wants_key_frame(self, now: float) -> bool:
        """A PLI goes out now (loss pending, interval elapsed)."""
        if not self.waiting or (self.last_pli is not None and now - self.last_pli < self.pli_interval):
            return False
        self.last_pli, self.plis = now, self.plis + 1
        return True

    def _loss(self, now: float) -> None:
        self.waiting = True

    def _frame(self, event: FrameAssembled, now: float):
        if self.packetization != "vp8" and self.expected_seq is not None \
                and event.first_sequence_number != self.expected_seq:
            self._loss(now)  # a gap before this raw SFrame frame: something was lost
        self.expected_seq = (event.last_sequence_number + 1) % 65536
        if self.waiting and event.guess_frame_type() != "key":  # VP8: reads ciphertext byte 0
            self.discarded += 1
            return None
        plain = event.data
        if self.packetization == "vp8":
            try:
                plain = self.context.unprotect(event.data)
            except SFrameError:
                return None
        self.waiting = False
        try:
            return self.decoder.decode(plain)
        except DecodeError:
            self.waiting = True
            return None


def loss_recovery(packetization: str, *, frames: int = 60, fps: int = 15, drop_frame: int = 20,
                  start_ctr: int = 300, key_interval: int | None = None, pli_interval: float = 0.5,
                  mtu: int = 1200, size: tuple[int, int] = (160, 120), seed: int = 0) -> LossRun:
    """Send ``frames`` VP8 frames under SFrame with ``packetization``, lose ``drop_frame``, measure.

    Args:
        packetization: ``"vp8"`` (SFrame ciphertext in the VP8 payload format, as the lab's calls
            send today), ``"per-frame"`` or ``"per-packet"`` (the SFrame RTP payload format).
        start_ctr: the sender's first CTR. key_interval: a periodic key frame every so many frames
            (None: only the first one and PLI answers, as libvpx in a call).
        size: picture width and height. seed: the scene.
    Returns:
        A :class:`LossRun`. ``recovered_after_s`` is simulated seconds from the lost frame's send
        time to the first later frame decoded into the picture that was sent.
    """
    if packetization not in PACKETIZATIONS:
        raise ValueError(f"packetization must be one of {', '.join(PACKETIZATIONS)}")
    scene = Scene(0, seed=seed, width=size[0], height=size[1], fps=fps)
    encoder = VP8Encoder(ssrc=SSRC, fps=fps)
    base_key = os.urandom(16)
    sender, receiving = SFrameContext(CipherSuite.AES_128_GCM_SHA256_128), \
        SFrameContext(CipherSuite.AES_128_GCM_SHA256_128)
    sender.add_send_key(KID, base_key)
    receiving.add_receive_key(KID, base_key)
    packetizer = _packetizer(packetization, sender, mtu, seed)
    receiver = _Receiver(packetization, receiving, fps, pli_interval)
    pictures, recovered, drop_ctr, keys_after, decoded = {}, None, -1, 0, 0
    force = False
    for index in range(frames):
        now = index / fps
        rgb = scene.rgb(index)
        periodic = key_interval is not None and index % key_interval == 0
        encoded = encoder.encode(rgb, force_keyframe=force or periodic)
        force = False
        if encoded is None:
            continue
        keys_after += index > drop_frame and encoded.type == "key"
        ctr = max(start_ctr, sender.next_counter(KID))
        packets = _send(packetizer, packetization, sender, encoded, ctr)
        pictures[encoded.timestamp] = rgb
        if index == drop_frame:
            drop_ctr = ctr
            continue  # every packet of this frame is lost
        for packet in packets:
            for timestamp, picture in receiver.receive(packet, now):
                if not picture_matches(picture, pictures[timestamp]):
                    receiver.waiting = True  # a garbage picture is a loss too
                    continue
                decoded += 1
                if index > drop_frame and recovered is None:
                    recovered = now - drop_frame / fps
        force = receiver.wants_key_frame(now)
    return LossRun(packetization, frames, drop_frame, drop_ctr, decoded, receiver.discarded,
                   keys_after, receiver.plis, recovered)


def _packetizer(packetization: str, sender: SFrameContext, mtu: int, seed: int):
    if packetization == "vp8":
        return RTPPacketizer(Codec.VP8, ssrc=SSRC, payload_type=PT, seed=seed, mtu=mtu)
    return SFramePacketizer(Codec.VP8, mode=RTPSFrameMode(packetization), ssrc=SSRC,
                            payload_type=PT, seed=seed, mtu=mtu)


def _send(packetizer, packetization: str, sender: SFrameContext, frame: EncodedFrame,
          first_ctr: int) -> list[bytes]:
    """Encrypt and packetize one frame; the first encryption may skip the CTR ahead."""
    state = {"ctr": first_ctr}

    def protect(data: bytes) -> bytes:
        ctr, state["ctr"] = state["ctr"], None
        return sender.protect(KID, data, ctr=ctr) if ctr is not None else sender.protect(KID, data)

    if packetization == "vp8":
        return packetizer.serialize(frame.replace(data=protect(frame.data)))
    return packetizer.serialize(frame, protect=protect)


def loss_comparison(**kwargs) -> pd.DataFrame:
    """:func:`loss_recovery` for each packetization, one row each (same arguments for all)."""
    rows = [loss_recovery(p, **kwargs).__dict__ for p in PACKETIZATIONS]
    return pd.DataFrame(rows).set_index("packetization")
