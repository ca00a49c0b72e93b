"""Frame encryption for one participant of a call, with keys from the group key agreement.

The three call modes map onto the transforms of :mod:`e2ee_lab.crypto.transforms`; what this module
adds is where the keys come from. Every participant is a :class:`~e2ee_lab.crypto.keys.Member`: its
own SFrame base key per epoch (RFC 9605 §5.1 sender keys), every other member's keys received in
key-distribution messages that the SFU's signalling relay carried as opaque bytes.

- ``dtls-srtp``: :class:`NoFrameCrypto`, frames pass unchanged (only SRTP protects each hop).
- ``e2ee``: :class:`SFrameCrypto`, RFC 9605 over the whole frame with the member's current send KID
  of the frame's kind (``kid = epoch << 12 | kind << 8 | member``, :mod:`e2ee_lab.crypto.keys`); the
  receiver checks that the KID names the stream's announced publisher and kind (else
  ``kid_stream_mismatch``) and picks the key from it.
- ``clear-prefix``: :class:`ClearPrefixCrypto`, the Jitsi/LiveKit framing of
  :class:`~e2ee_lab.crypto.transforms.ClearPrefixSender`. As Jitsi derives its AES key from the
  distributed key material, the AES-128-GCM key of (sender, epoch) is
  ``HKDF-SHA256(salt = "", IKM = base key, info = "e2ee-lab 1.0 clear-prefix key", L = 16)`` (RFC 5869),
  and the trailer's key index is the epoch modulo 256. The framing has no KID: a receiver keeps one
  key ring per (announced publisher, kind), so a frame the SFU moves to another member's stream
  fails authentication; the rings follow the member's keys, old epochs retired as the SFrame
  receiver retires them (after the grace period, or at the sender's first authenticated frame
  under a newer epoch).

All three share one shape, :class:`FrameCrypto`: ``protect(frame, now)`` and
``unprotect(frame, sender, now, kind=...)`` (``sender``: the stream's announced member, ``kind``:
its announced media kind, both from the SFU, untrusted); receivers catch :data:`FRAME_ERRORS` and
count ``err.reason``.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.crypto.keys import KeyAgreementError, KIDStreamMismatch, Member
from e2ee_lab.crypto.transforms import (
    TRANSFORM_ERRORS,
    ClearPrefixReceiver,
    ClearPrefixSender,
    PassThrough,
    UnknownKeyIndex,
    transform_mode,
)
from e2ee_lab.media.frame import EncodedFrame
from e2ee_lab.rtp.vp8 import vp8_frame_type

CLEAR_PREFIX_KEY_INFO = b"e2ee-lab 1.0 clear-prefix key"
CLEAR_PREFIX_KEY_LENGTH = 16  # AES-128-GCM, Jitsi's and LiveKit's default

#: What a receiver catches around ``unprotect`` (and a sender around ``protect``).
FRAME_ERRORS: tuple[type[Exception], ...] = (*TRANSFORM_ERRORS, KeyAgreementError)

MODES = ("dtls-srtp", "e2ee", "clear-prefix")


class FrameCrypto(Protocol):
    """A participant's frame transforms (W3C Encoded Transform point), both directions."""

    mode: str

    def protect(self, frame: EncodedFrame, now: float) -> EncodedFrame:
        """The frame as it leaves the sender's transform."""
        ...

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float,
                  kind: str | None = None) -> EncodedFrame:
        """The plaintext frame of a stream announced as member ``sender``'s ``kind`` (default
        ``frame.kind``); raises one of :data:`FRAME_ERRORS`."""
        ...


def clear_prefix_key(base_key: bytes) -> bytes:
    """The clear-prefix AES-128-GCM key derived from a sender's SFrame base key (module docstring)."""
    hkdf = HKDF(hashes.SHA256(), CLEAR_PREFIX_KEY_LENGTH, salt=b"", info=CLEAR_PREFIX_KEY_INFO)
    return hkdf.derive(base_key)


def _with_plain_type(frame: EncodedFrame, data: bytes | None = None) -> EncodedFrame:
    """``frame`` (with ``data`` as its bytes, if given, in the same copy): video frames get ``type``
    from the decrypted VP8 frame tag (RFC 6386 §9.1), not a guess."""
    data = frame.data if data is None else data
    if frame.kind != "video" or not data:
        return frame if data is frame.data else frame.replace(data=data)
    return frame.replace(data=data, type=vp8_frame_type(data))


class NoFrameCrypto:
    """``dtls-srtp`` mode: no frame transform; SRTP per hop is all the protection there is."""

    mode = "dtls-srtp"

    def __init__(self) -> None:
        self._identity = PassThrough()

    def protect(self, frame: EncodedFrame, now: float) -> EncodedFrame:
        """``frame`` unchanged."""
        return self._identity.transform(frame)

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float,
                  kind: str | None = None) -> EncodedFrame:
        """``frame`` with its type read from the VP8 frame tag."""
        return _with_plain_type(self._identity.transform(frame))


class SFrameCrypto:
    """``e2ee`` mode: RFC 9605 SFrame with the member's sender keys, one KID per (epoch, kind, member)."""

    mode = "e2ee"

    def __init__(self, member: Member) -> None:
        self.member = member
        self.min_ctr: dict[str, int] = {}  # kind -> lowest CTR a frame may use (Member.protect)

    def protect(self, frame: EncodedFrame, now: float) -> EncodedFrame:
        """SFrame header || ciphertext || tag under the member's current send key of the frame's kind."""
        return frame.replace(data=self.member.protect(frame.data, now, kind=frame.kind,
                                                      min_ctr=self.min_ctr.get(frame.kind, 0)))

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float,
                  kind: str | None = None) -> EncodedFrame:
        """Decrypt with the key the header's KID names, after checking that the KID names ``sender``
        and ``kind`` (the stream's announcement; ``kind`` defaults to ``frame.kind``).

        Raises:
            KIDStreamMismatch (also for a stream no member publishes, ``sender`` None, while the
            member's attribution check is on); MalformedHeader, UnknownKeyId, ReplayedFrame,
            AuthenticationFailed (SFrameError).
        """
        if sender is None and self.member.checks.attribution:
            raise KIDStreamMismatch("frame on a stream that no member publishes")
        kind = frame.kind if kind is None else kind
        plain = self.member.unprotect(frame.data, now, sender=sender, kind=kind)
        return _with_plain_type(frame, plain)


class ClearPrefixCrypto:
    """``clear-prefix`` mode: Jitsi-style framing with keys derived from the member's sender keys."""

    mode = "clear-prefix"

    def __init__(self, member: Member) -> None:
        self.member = member
        self._sender: ClearPrefixSender | None = None
        self._sender_epoch: int | None = None
        self._receivers: dict[tuple[int, str], tuple[ClearPrefixReceiver, dict[int, int]]] = {}
        self._synced: dict[tuple[int, str], int] = {}  # (sender, kind) -> member.key_version synced

    def protect(self, frame: EncodedFrame, now: float) -> EncodedFrame:
        """Clear prefix || AES-GCM body || IV trailer under the current epoch's key."""
        self.member.tick(now)
        epoch = self.member.send_epoch
        if epoch is None:
            raise UnknownKeyIndex(f"member {self.member.index} has no send key yet")
        if epoch != self._sender_epoch:
            key = clear_prefix_key(self.member.base_keys()[self.member.index, epoch])
            self._sender, self._sender_epoch = ClearPrefixSender(key, key_index=epoch % 256), epoch
        assert self._sender is not None
        return self._sender.transform(frame)

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float,
                  kind: str | None = None) -> EncodedFrame:
        """Decrypt a frame of the stream announced as member ``sender``'s ``kind`` with the key its
        trailer's index names among that sender's keys the member holds for that kind; an
        authenticated frame retires older epochs (:meth:`Member.frame_authenticated`).

        Raises:
            UnknownKeyIndex (no such sender or key), MalformedFrame, FrameAuthenticationFailed.
        """
        self.member.tick(now)
        if sender is None:
            raise UnknownKeyIndex("frame from a stream no member publishes")
        if kind is not None and kind != frame.kind:  # the stream's kind sets the clear prefix
            frame = frame.replace(metadata=dataclasses.replace(frame.metadata, kind=kind))
        receiver, epochs = self._ring(sender, frame.kind)
        plain = _with_plain_type(receiver.transform(frame))
        self.member.frame_authenticated(sender, frame.kind, epochs[frame.data[-1]], now)
        return plain

    def _ring(self, sender: int, kind: str) -> tuple[ClearPrefixReceiver, dict[int, int]]:
        """The key ring of (sender, kind), brought in line with the member's keys when they changed:
        key index (epoch mod 256) -> key, and key index -> epoch."""
        receiver, epochs = self._receivers.setdefault((sender, kind), (ClearPrefixReceiver(), {}))
        if self._synced.get((sender, kind)) != self.member.key_version:
            held = {e % 256: (e, key) for e, key in sorted(self.member.receive_keys(sender, kind).items())}
            for index in set(epochs) - set(held):
                receiver.remove_key(index)
                del epochs[index]
            for index, (epoch, key) in held.items():
                if epochs.get(index) != epoch:
                    receiver.set_key(index, clear_prefix_key(key))
                    epochs[index] = epoch
            self._synced[sender, kind] = self.member.key_version
        return receiver, epochs


def make_frame_crypto(mode: str, member: Member | None) -> FrameCrypto:
    """The :class:`FrameCrypto` of a call mode; ``member`` is required for e2ee and clear-prefix.

    Raises:
        ValueError: an unknown mode, or no member for a mode that needs keys.
    """
    if mode not in MODES:
        raise ValueError(f"unknown call mode {mode!r}; expected one of {', '.join(MODES)}")
    transform_mode(mode)  # the transforms module agrees on the name
    if mode == "dtls-srtp":
        return NoFrameCrypto()
    if member is None:
        raise ValueError(f"mode {mode!r} needs a key-agreement member")
    return SFrameCrypto(member) if mode == "e2ee" else ClearPrefixCrypto(member)
