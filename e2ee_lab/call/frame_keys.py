"""Frame encryption for one participant of a call, with keys from the group key agreement.

The three call modes map onto the transforms of :mod:`e2ee_lab.crypto.transforms`; what this module
adds is where the keys come from. Every participant is a :class:`~e2ee_lab.crypto.keys.Member`: its
own SFrame base key per epoch (RFC 9605 §5.1 sender keys), every other member's keys received in
key-distribution messages that the SFU's signalling relay carried as opaque bytes.

- ``dtls-srtp``: :class:`NoFrameCrypto`, frames pass unchanged (only SRTP protects each hop).
- ``e2ee``: :class:`SFrameCrypto`, RFC 9605 over the whole frame with the member's current send KID
  (``kid = epoch << 8 | member``); the receiver picks the key from the KID in the header.
- ``clear-prefix``: :class:`ClearPrefixCrypto`, the Jitsi/LiveKit framing of
  :class:`~e2ee_lab.crypto.transforms.ClearPrefixSender`. As Jitsi derives its AES key from the
  distributed key material, the AES-128-GCM key of (sender, epoch) is
  ``HKDF-SHA256(salt = "", IKM = base key, info = "e2ee-lab 1.0 clear-prefix key", L = 16)`` (RFC 5869),
  and the trailer's key index is the epoch modulo 256.

All three share one shape, :class:`FrameCrypto`: ``protect(frame, now)`` and
``unprotect(frame, sender, now)``; receivers catch :data:`FRAME_ERRORS` and count ``err.reason``.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.crypto.keys import KeyAgreementError, Member
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

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float) -> EncodedFrame:
        """The plaintext frame of member ``sender`` (raises one of :data:`FRAME_ERRORS`)."""
        ...


def clear_prefix_key(base_key: bytes) -> bytes:
    """The clear-prefix AES-128-GCM key derived from a sender's SFrame base key (module docstring)."""
    hkdf = HKDF(hashes.SHA256(), CLEAR_PREFIX_KEY_LENGTH, salt=b"", info=CLEAR_PREFIX_KEY_INFO)
    return hkdf.derive(base_key)


def _with_plain_type(frame: EncodedFrame) -> EncodedFrame:
    """Video frames get ``type`` from the decrypted VP8 frame tag (RFC 6386 §9.1), not a guess."""
    if frame.kind != "video" or not frame.data:
        return frame
    return frame.replace(type=vp8_frame_type(frame.data))


class NoFrameCrypto:
    """``dtls-srtp`` mode: no frame transform; SRTP per hop is all the protection there is."""

    mode = "dtls-srtp"

    def __init__(self) -> None:
        self._identity = PassThrough()

    def protect(self, frame: EncodedFrame, now: float) -> EncodedFrame:
        """``frame`` unchanged."""
        return self._identity.transform(frame)

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float) -> EncodedFrame:
        """``frame`` with its type read from the VP8 frame tag."""
        return _with_plain_type(self._identity.transform(frame))


class SFrameCrypto:
    """``e2ee`` mode: RFC 9605 SFrame with the member's sender keys (KID = epoch << 8 | member)."""

    mode = "e2ee"

    def __init__(self, member: Member) -> None:
        self.member = member

    def protect(self, frame: EncodedFrame, now: float) -> EncodedFrame:
        """SFrame header || ciphertext || tag under the member's current send key."""
        return frame.replace(data=self.member.protect(frame.data, now))

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float) -> EncodedFrame:
        """Decrypt with the key the header's KID names (``sender`` is not needed: the KID says it).

        Raises:
            MalformedHeader, UnknownKeyId, ReplayedFrame, AuthenticationFailed (SFrameError).
        """
        return _with_plain_type(frame.replace(data=self.member.unprotect(frame.data, now)))


class ClearPrefixCrypto:
    """``clear-prefix`` mode: Jitsi-style framing with keys derived from the member's sender keys."""

    mode = "clear-prefix"

    def __init__(self, member: Member) -> None:
        self.member = member
        self._sender: ClearPrefixSender | None = None
        self._sender_epoch: int | None = None
        self._receivers: dict[int, ClearPrefixReceiver] = {}
        self._installed: set[tuple[int, int]] = set()

    def protect(self, frame: EncodedFrame, now: float) -> EncodedFrame:
        """Clear prefix || AES-GCM body || IV trailer under the current epoch's key."""
        self.member.tick(now)
        epoch = self.member.send_epoch
        if epoch is None:
            raise UnknownKeyIndex(f"member {self.member.index} has no send key yet")
        if epoch != self._sender_epoch:
            key = clear_prefix_key(self._base_keys()[self.member.index, epoch])
            self._sender, self._sender_epoch = ClearPrefixSender(key, key_index=epoch % 256), epoch
        assert self._sender is not None
        return self._sender.transform(frame)

    def unprotect(self, frame: EncodedFrame, sender: int | None, now: float) -> EncodedFrame:
        """Decrypt a frame of member ``sender`` with the key its trailer's index names.

        Raises:
            UnknownKeyIndex (no such sender or key), MalformedFrame, FrameAuthenticationFailed.
        """
        self.member.tick(now)
        if sender is None:
            raise UnknownKeyIndex("frame from a stream no member publishes")
        receiver = self._receivers.setdefault(sender, ClearPrefixReceiver())
        try:
            return _with_plain_type(receiver.transform(frame))
        except UnknownKeyIndex:
            if not self._refresh(sender):
                raise
            return _with_plain_type(receiver.transform(frame))

    def _base_keys(self) -> dict[tuple[int, int], bytes]:
        return self.member.base_keys()

    def _refresh(self, sender: int) -> bool:
        """Install every key of ``sender`` the member holds now; True if one was new."""
        new = False
        for (owner, epoch), base_key in self._base_keys().items():
            if owner == sender and (owner, epoch) not in self._installed:
                self._receivers[sender].set_key(epoch % 256, clear_prefix_key(base_key))
                self._installed.add((owner, epoch))
                new = True
        return new


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
