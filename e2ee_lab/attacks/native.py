"""Pitfalls of a real SFrame library, reproduced: libwebrtc's native SFrame through ``wrtc``.

Lab 07 material, run against libwebrtc itself (PyPI ``wrtc`` 0.1.0, :mod:`e2ee_lab.interop`) beside
the lab's own :class:`~e2ee_lab.crypto.sframe.SFrameContext`.

**Nonce reuse across media kinds.** An application that gives its audio and its video encryptor
the same base key under the same KID gets two libwebrtc transforms that each count CTR up from 0,
so frame n of the audio and frame n of the video share (key, nonce) -- what RFC 9605 §4.1
("each key used for encrypting media is used by exactly one media sender") and §9.1 forbid. The
library does not notice: it cannot, two transforms share no state. The AES-CTR/GCM keystream then
cancels: ``C_audio XOR C_video = P_audio XOR P_video``, and a known audio frame (silence, a
comfort-noise frame) gives the video frame. The fix is the application's: one KID per media kind
(and per sender), so the keys and salts derived from the base key differ (§4.4.2 puts the KID in
the HKDF info), which :func:`native_nonce_reuse` shows with ``kids=(1, 2)``.

**No replay window.** RFC 9605 §9.3 leaves anti-replay to the application and suggests a sliding
window on CTR; libwebrtc's transform keeps none, so a frame replayed by a malicious SFU in a fresh
RTP sequence slot (SRTP's own check then passes, see :class:`e2ee_lab.attacks.sfu.Replay`)
decrypts again. :func:`replay_against_native` feeds the same recorded frames and replays to both
receivers and counts what each accepts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from ..crypto.sframe import CipherSuite, SFrameContext, SFrameError
from ..interop.wrtc_sframe import WrtcSFrame
from .crypto import FrameParts, ciphertext_xor, xor_bytes


@dataclass(frozen=True)
class NativeNonceReuse:
    """What two libwebrtc encryptors (audio, video) reveal about each other's first frame."""

    suite: int  # cipher suite of both transforms
    kids: tuple[int, int]  # KIDs given to the audio and the video transform
    headers: tuple[str, str]  # the two SFrame headers in hex (KID, CTR as the SFU reads them)
    same_nonce: bool  # same KID and CTR: with one base key, the same (key, nonce)
    xor_leaks: bool  # C_audio XOR C_video == P_audio XOR P_video over the common length
    recovered: bytes  # C_audio XOR C_video XOR P_audio: the video frame if the nonce was shared
    recovered_ok: bool  # recovered equals the video plaintext


def native_nonce_reuse(audio: bytes, video: bytes, *, suite: CipherSuite | int = 4,
                       base_key: bytes | None = None, kids: tuple[int, int] = (1, 1)
                       ) -> NativeNonceReuse:
    """Encrypt one audio and one video frame with two libwebrtc transforms and one base key.

    ``kids=(k, k)`` is the pitfall, ``kids=(k, k')`` the fix. ``base_key`` defaults to 16 random
    bytes. Raises ``ImportError`` (with the reason) when wrtc is absent.
    """
    suite = CipherSuite(suite)
    base_key = os.urandom(16) if base_key is None else bytes(base_key)
    frames = []
    for kid, plaintext in zip(kids, (audio, video)):
        sender = WrtcSFrame(suite, encrypting=True)
        sender.set_key(kid, base_key)
        frames.append(sender.protect(plaintext))
    a, v = (FrameParts.parse(f, suite) for f in frames)
    n = min(len(audio), len(video))
    leaks = ciphertext_xor(frames[0], frames[1], suite) == xor_bytes(audio, video)[:n]
    recovered = xor_bytes(xor_bytes(a.ciphertext, v.ciphertext), audio)  # recover_plaintext's
    return NativeNonceReuse(
        suite=int(suite), kids=tuple(kids), headers=(a.header.hex(), v.header.hex()),
        same_nonce=a.header == v.header, xor_leaks=leaks, recovered=recovered,
        recovered_ok=recovered == video[: len(recovered)],
    )


def _lab_receiver(suite: CipherSuite, kid: int, base_key: bytes):
    receiver = SFrameContext(suite)
    receiver.add_receive_key(kid, base_key)
    return receiver.unprotect


def _native_receiver(suite: CipherSuite, kid: int, base_key: bytes):
    receiver = WrtcSFrame(suite, encrypting=False)
    receiver.set_key(kid, base_key)
    return receiver.unprotect


def _count(unprotect, frames: Iterable[bytes]) -> tuple[int, int, dict[str, int]]:
    accepted, refused, reasons = 0, 0, {}
    for frame in frames:
        try:
            unprotect(frame)
            accepted += 1
        except SFrameError as err:
            refused += 1
            reasons[err.reason] = reasons.get(err.reason, 0) + 1
    return accepted, refused, reasons


def replay_against_native(frames: int = 20, replayed: Iterable[int] = range(5), *,
                          suite: CipherSuite | int = 4, kid: int = 1) -> pd.DataFrame:
    """Send ``frames`` frames, then replay the ones at ``replayed``, to the lab's and wrtc's receiver.

    The frames come from one libwebrtc sender (so both receivers judge the same bytes). Returns
    one row per receiver: ``receiver``, ``frames_accepted``, ``replays_accepted``,
    ``replays_refused``, ``refusal_reasons``. Raises ``ImportError`` when wrtc is absent.
    """
    suite = CipherSuite(suite)
    base_key = os.urandom(16)
    sender = WrtcSFrame(suite, encrypting=True)
    sender.set_key(kid, base_key)
    sent = [sender.protect(os.urandom(200)) for _ in range(frames)]
    replays = [sent[i] for i in replayed]
    rows = []
    for name, make in (("e2ee_lab SFrameContext (window 128)", _lab_receiver),
                       ("libwebrtc SFrameTransform (wrtc)", _native_receiver)):
        unprotect = make(suite, kid, base_key)
        fresh, _, _ = _count(unprotect, sent)
        ok, refused, reasons = _count(unprotect, replays)
        rows.append({"receiver": name, "frames_accepted": fresh, "replays_accepted": ok,
                     "replays_refused": refused, "refusal_reasons": reasons})
    return pd.DataFrame(rows)
