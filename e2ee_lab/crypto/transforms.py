"""Frame transforms: what runs at the W3C Encoded Transform point, between encoder and packetizer.

Three transforms, each a sender object (encrypt) and a receiver object (decrypt) with the shape
of the W3C API: ``transform(frame: EncodedFrame) -> EncodedFrame``.

- ``none`` (the ``dtls-srtp`` call mode): frames pass unchanged; only hop-by-hop SRTP protects
  them, so the SFU reads every frame.
- ``sframe`` (the ``e2ee`` call mode): RFC 9605 over the whole encoded frame (§4.4.3: header ||
  AEAD(key, salt XOR CTR, AAD = header || metadata)), any suite 1-8, default suite 4
  (AES_128_GCM_SHA256_128); errors are :mod:`e2ee_lab.crypto.sframe`'s ``SFrameError`` family.
- ``clear-prefix``: the pre-RFC framing of Jitsi and LiveKit. The first bytes stay clear (VP8 key
  frame 10 = frame tag + start code + sizes, RFC 6386 §9.1; VP8 delta frame 3 = frame tag; audio
  1 = Opus TOC, RFC 6716 §3.1: the offsets of the webrtc-samples demo, which only XORs the rest
  with its key string), the rest is AES-GCM with the clear prefix as AAD, and a trailer carries
  IV (12 bytes) || IV length (12) || key index, as in Jitsi and LiveKit. The IV is
  SSRC || RTP timestamp || send counter as in Jitsi, but the counter is 32 bits and never wraps
  (:class:`IVExhausted` instead), so an IV never repeats under one sender. As in Jitsi there is
  no replay check. Errors are the :class:`TransformError` family.

Receivers raise; callers catch :data:`TRANSFORM_ERRORS`, count ``err.reason`` and carry on.
"""

from __future__ import annotations

import os
import random
import secrets
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from e2ee_lab.crypto import sframe
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, SFrameError
from e2ee_lab.media.frame import EncodedFrame, FrameType, Kind

DEFAULT_SUITE = CipherSuite.AES_128_GCM_SHA256_128  #: RFC 9605 suite 4
CLEAR_PREFIX = {"key": 10, "delta": 3, "audio": 1}  #: clear bytes per frame (webrtc-samples, Jitsi)
IV_LENGTH = 12  #: AES-GCM IV in the clear-prefix trailer
TAG_LENGTH = 16  #: AES-GCM tag
TRAILER_LENGTH = IV_LENGTH + 2  #: IV || IV length byte || key index byte
MAX_SEND_COUNT = 2**32 - 1  #: the IV's 32-bit counter field; never wraps
CLEAR_PREFIX_KEY_LENGTHS = (16, 32)  #: AES-128-GCM (Jitsi, LiveKit default) or AES-256-GCM


class TransformMode(str, Enum):
    """The frame transforms; call modes map onto them with :func:`transform_mode`."""

    NONE = "none"
    SFRAME = "sframe"
    CLEAR_PREFIX = "clear-prefix"


_MODE_NAMES = {
    "none": TransformMode.NONE,
    "dtls-srtp": TransformMode.NONE,
    "sframe": TransformMode.SFRAME,
    "e2ee": TransformMode.SFRAME,
    "clear-prefix": TransformMode.CLEAR_PREFIX,
}


def transform_mode(mode: str | TransformMode) -> TransformMode:
    """The transform for a call mode: ``dtls-srtp`` → none, ``e2ee`` → sframe, ``clear-prefix``.

    Raises:
        ValueError: an unknown mode name.
    """
    if isinstance(mode, TransformMode):
        return mode
    try:
        return _MODE_NAMES[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(_MODE_NAMES)}") from None


# --- errors (clear-prefix; SFrame uses sframe.SFrameError) -------------------------------------


class TransformError(Exception):
    """Base class of clear-prefix transform failures; ``reason`` names the drop counter."""

    reason = "transform"


class MalformedFrame(TransformError):
    """Too short for prefix + tag + trailer, or a wrong IV-length byte."""

    reason = "malformed"


class UnknownKeyIndex(TransformError):
    """The trailer names a key index the receiver has no key for."""

    reason = "unknown_key"


class FrameAuthenticationFailed(TransformError):
    """The AES-GCM tag did not verify (ciphertext, prefix, IV or key wrong); says nothing more."""

    reason = "auth"


class IVExhausted(TransformError):
    """The sender's 32-bit IV counter is used up; a new key is needed."""

    reason = "iv_exhausted"


#: What a receiver catches around ``transform()``.
TRANSFORM_ERRORS: tuple[type[Exception], ...] = (TransformError, SFrameError)


class FrameTransform(Protocol):
    """A sender's or receiver's frame transform (W3C Encoded Transform shape)."""

    def transform(self, frame: EncodedFrame) -> EncodedFrame: ...


def _vp8_type(data: bytes, default: FrameType | None) -> FrameType | None:
    """Frame type from the VP8 frame tag's P bit (RFC 6386 §9.1), as a depacketizer reads it."""
    if not data:
        return default
    return "delta" if data[0] & 0x01 else "key"


# --- none -----------------------------------------------------------------------------------------


class PassThrough:
    """The identity transform (dtls-srtp mode): frames leave as they came."""

    def transform(self, frame: EncodedFrame) -> EncodedFrame:
        """Return ``frame`` unchanged."""
        return frame


# --- sframe ---------------------------------------------------------------------------------------


class SFrameSender:
    """Encrypt each whole frame with RFC 9605 under one KID of an :class:`SFrameContext`."""

    def __init__(self, context: SFrameContext, kid: int) -> None:
        self.context, self.kid = context, kid

    def transform(self, frame: EncodedFrame) -> EncodedFrame:
        """``frame`` with ``data`` = SFrame header || ciphertext || tag; ``type`` is kept.

        Raises:
            UnknownKeyId: the context has no send key for the KID.  CounterExhausted.
        """
        return frame.replace(data=self.context.protect(self.kid, frame.data))


class SFrameReceiver:
    """Decrypt SFrame frames with whatever receive keys the :class:`SFrameContext` holds."""

    def __init__(self, context: SFrameContext) -> None:
        self.context = context

    def transform(self, frame: EncodedFrame) -> EncodedFrame:
        """The plaintext frame; for video ``type`` is re-read from the decrypted VP8 frame tag.

        Raises:
            MalformedHeader, UnknownKeyId, ReplayedFrame, AuthenticationFailed (SFrameError).
        """
        plaintext = self.context.unprotect(frame.data)
        ftype = _vp8_type(plaintext, frame.type) if frame.kind == "video" else frame.type
        return frame.replace(data=plaintext, type=ftype)


# --- clear-prefix -----------------------------------------------------------------------------------


def clear_prefix_length(kind: Kind, type: FrameType | None) -> int:
    """Bytes left clear: video key 10, video delta 3, audio 1 (webrtc-samples / Jitsi / LiveKit)."""
    return CLEAR_PREFIX["audio" if kind == "audio" else (type or "delta")]


def _check_key(key: bytes) -> bytes:
    key = bytes(key)
    if len(key) not in CLEAR_PREFIX_KEY_LENGTHS:
        raise ValueError(f"clear-prefix key must be 16 or 32 bytes, got {len(key)}")
    return key


class ClearPrefixSender:
    """Jitsi/LiveKit-style frame encryption: clear codec prefix, AES-GCM body, IV trailer.

    Args:
        key: the AES-GCM key, 16 or 32 bytes.
        key_index: the trailer's key-index byte (0..255), telling receivers which key to use.
        initial_count: first value of the IV counter (default: random below 0xFFFF, as Jitsi).

    Raises:
        ValueError: a bad key length, key index or initial count.
    """

    def __init__(self, key: bytes, *, key_index: int = 0, initial_count: int | None = None) -> None:
        if not 0 <= key_index <= 255:
            raise ValueError(f"key_index must be 0..255, got {key_index}")
        count = secrets.randbelow(0xFFFF) if initial_count is None else initial_count
        if not 0 <= count <= MAX_SEND_COUNT:
            raise ValueError(f"initial_count must be 0..2^32-1, got {count}")
        self._aead = AESGCM(_check_key(key))
        self.key_index = key_index
        self.send_count = count  # the counter the next IV will use

    def _next_iv(self, frame: EncodedFrame) -> bytes:
        if self.send_count > MAX_SEND_COUNT:
            raise IVExhausted("the 32-bit IV counter is used up; install a new key")
        count = self.send_count
        # "never repeat an IV under one key": advance before the IV is used.
        self.send_count += 1
        ssrc = frame.metadata.synchronizationSource & 0xFFFFFFFF
        return struct.pack("!III", ssrc, frame.timestamp & 0xFFFFFFFF, count)

    def transform(self, frame: EncodedFrame) -> EncodedFrame:
        """``frame`` with ``data`` = prefix || AES-GCM(body, AAD = prefix) || IV || 12 || key index.

        Raises:
            MalformedFrame: the frame is shorter than its clear prefix.  IVExhausted.
        """
        n = clear_prefix_length(frame.kind, frame.type)
        data = bytes(frame.data)
        if len(data) < n:
            raise MalformedFrame(f"{frame.kind} frame of {len(data)} bytes, shorter than its {n}-byte prefix")
        iv = self._next_iv(frame)
        prefix = data[:n]
        body = self._aead.encrypt(iv, data[n:], prefix)
        return frame.replace(data=prefix + body + iv + bytes((IV_LENGTH, self.key_index)))


class ClearPrefixReceiver:
    """Decrypt clear-prefix frames with a ring of keys indexed by the trailer's key-index byte.

    The prefix length comes from ``frame.type`` (for video without a type: from the clear VP8
    frame tag, as a browser's depacketizer derives it). Replays are not detected (as in Jitsi).

    Args:
        keys: key index → AES-GCM key (16 or 32 bytes).
    """

    def __init__(self, keys: dict[int, bytes] | None = None) -> None:
        self._keys: dict[int, AESGCM] = {}
        for index, key in (keys or {}).items():
            self.set_key(index, key)

    def set_key(self, index: int, key: bytes) -> None:
        """Install (or replace) the key for ``index``; raises ValueError on a bad index or key."""
        if not 0 <= index <= 255:
            raise ValueError(f"key index must be 0..255, got {index}")
        self._keys[index] = AESGCM(_check_key(key))

    def remove_key(self, index: int) -> None:
        """Forget the key for ``index``; raises UnknownKeyIndex if there is none."""
        if self._keys.pop(index, None) is None:
            raise UnknownKeyIndex(f"no key at index {index}")

    def transform(self, frame: EncodedFrame) -> EncodedFrame:
        """The plaintext frame (clear prefix || decrypted body).

        Raises:
            MalformedFrame, UnknownKeyIndex, FrameAuthenticationFailed (all TransformError).
        """
        data = bytes(frame.data)
        ftype = _vp8_type(data, frame.type) if frame.kind == "video" and frame.type is None else frame.type
        n = clear_prefix_length(frame.kind, ftype)
        need = n + TAG_LENGTH + TRAILER_LENGTH
        if len(data) < need:
            raise MalformedFrame(f"{len(data)} bytes, need {need}: {n} prefix + 16 tag + 14 trailer")
        if data[-2] != IV_LENGTH:
            raise MalformedFrame(f"IV length byte is {data[-2]}, expected {IV_LENGTH}")
        aead = self._keys.get(data[-1])
        if aead is None:
            raise UnknownKeyIndex(f"no key at index {data[-1]}")
        prefix, iv = data[:n], data[-TRAILER_LENGTH:-2]
        try:
            body = aead.decrypt(iv, data[n:-TRAILER_LENGTH], prefix)
        except InvalidTag:
            raise FrameAuthenticationFailed("authentication failed") from None
        return frame.replace(data=prefix + body, type=ftype)


# --- factory and sizes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformPair:
    """A matching sender and receiver transform for one stream."""

    mode: TransformMode
    sender: FrameTransform
    receiver: FrameTransform
    key: bytes | None  # the SFrame base key or clear-prefix AES key (None for mode none)


def _random_key(length: int, seed: int | None) -> bytes:
    return random.Random(seed).randbytes(length) if seed is not None else os.urandom(length)


def make_transform(
    mode: str | TransformMode,
    *,
    key: bytes | None = None,
    kid: int = 0,
    suite: CipherSuite | int = DEFAULT_SUITE,
    key_index: int = 0,
    seed: int | None = None,
) -> TransformPair:
    """A sender/receiver pair for ``mode`` (``dtls-srtp``/``none``, ``e2ee``/``sframe``, ``clear-prefix``).

    Args:
        key: SFrame base key (≥ 16 bytes) or clear-prefix AES key (16/32 bytes); default random
            (16 bytes), or derived from ``seed`` when one is given (reproducible runs only).
        kid: the SFrame key ID.  suite: the SFrame cipher suite (default 4).
        key_index: the clear-prefix key index.
        seed: makes the default key and the clear-prefix IV counter start reproducible.

    Raises:
        ValueError: unknown mode, bad key length, KID, suite or key index.
    """
    tmode = transform_mode(mode)
    if tmode is TransformMode.NONE:
        return TransformPair(tmode, PassThrough(), PassThrough(), None)
    key = bytes(key) if key is not None else _random_key(16, seed)
    if tmode is TransformMode.SFRAME:
        send_ctx, recv_ctx = SFrameContext(suite), SFrameContext(suite)
        send_ctx.add_send_key(kid, key)
        recv_ctx.add_receive_key(kid, key)
        return TransformPair(tmode, SFrameSender(send_ctx, kid), SFrameReceiver(recv_ctx), key)
    start = random.Random(seed).randrange(0xFFFF) if seed is not None else None
    sender = ClearPrefixSender(key, key_index=key_index, initial_count=start)
    return TransformPair(tmode, sender, ClearPrefixReceiver({key_index: key}), key)


def overhead(
    mode: str | TransformMode, *, suite: CipherSuite | int = DEFAULT_SUITE, kid: int = 0, ctr: int = 0
) -> int:
    """Bytes a transform adds to every frame, whatever its size and kind.

    none 0; sframe header (1..17, grows with KID and CTR, RFC 9605 §4.3) + tag (suite 4: 16);
    clear-prefix 16 (tag) + 14 (trailer) = 30.
    """
    tmode = transform_mode(mode)
    if tmode is TransformMode.NONE:
        return 0
    if tmode is TransformMode.SFRAME:
        return sframe.overhead(suite, kid, ctr)
    return TAG_LENGTH + TRAILER_LENGTH


def visible_bytes(mode: str | TransformMode, frame_size: int, kind: Kind, type: FrameType | None) -> int:
    """How many bytes of a ``frame_size``-byte encoded frame the SFU can read in the clear.

    none: all of them; sframe: none (it sees only the header's KID/CTR); clear-prefix: the prefix.
    """
    tmode = transform_mode(mode)
    if tmode is TransformMode.NONE:
        return frame_size
    if tmode is TransformMode.SFRAME:
        return 0
    return min(frame_size, clear_prefix_length(kind, type))
