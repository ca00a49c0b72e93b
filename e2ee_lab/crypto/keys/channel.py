"""The pairwise channel: an ECDH + HKDF key per pair of members and the key-distribution message (RFC 5869).

Base keys travel in key-distribution messages encrypted to exactly one member under the key both
ends of the pair derive (RFC 5869 HKDF; all of it is available in WebCrypto)::

    shared = ECDH(own private, peer public)          X25519: 32 bytes; P-256: the 32-byte x-coordinate
    key    = HKDF-SHA256(salt = "" (empty), IKM = shared,
                         info = "e2ee-lab 1.0 pairwise key " || min(pub_a, pub_b) || max(pub_a, pub_b),
                         L = 16)                      -> AES-128-GCM key, the same for both members

min/max compare the public keys' bytes lexicographically. The message's byte layout is in the
package docstring (:mod:`e2ee_lab.crypto.keys`); :class:`KeyMessage` is its wire record. Version 2
carries the recipient's session id (16 random bytes per member per call) in the AAD, so a message
recorded in one call is refused in the next even between the same identities.

What this channel does not give: the pairwise key is static-static ECDH, the same in every call
between two identity keys. A message recorded today is readable by whoever later learns either
identity private key (no forward secrecy), and whoever learns Alice's identity private key can
write key messages to Alice as anyone (key-compromise impersonation). An ephemeral ECDH per call
(signed by the identity keys), or MLS (RFC 9420), would give both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.crypto.keys.errors import MalformedMessage, MessageTampered
from e2ee_lab.crypto.keys.identity import SESSION_LEN, IdentityKeyPair, PublicIdentity

PAIRWISE_LABEL = b"e2ee-lab 1.0 pairwise key "
PAIRWISE_KEY_LEN = 16  # AES-128-GCM
KEY_MESSAGE_VERSION = 2
_HEADER = struct.Struct(">BBB16sQI12s")  # version, sender, recipient, session, seq, epoch, nonce
HEADER_LEN = _HEADER.size  # 43
TAG_LEN = 16
NONCE_LEN = 12
_RANGES = {"sender": 0xFF, "recipient": 0xFF, "seq": 2**64 - 1, "epoch": 2**32 - 1}


# --- the pairwise key -------------------------------------------------------------------------------


def derive_pairwise_key(own: IdentityKeyPair, peer: PublicIdentity) -> bytes:
    """The AES-128-GCM key both ends of a pair derive: HKDF-SHA256 over ECDH, public keys sorted in info."""
    low, high = sorted((bytes(own.public), bytes(peer)))
    info = PAIRWISE_LABEL + low + high
    return HKDF(hashes.SHA256(), PAIRWISE_KEY_LEN, salt=None, info=info).derive(own.exchange(peer))


# --- the key-distribution message (wire record) ---------------------------------------------------


@dataclass(frozen=True)
class KeyMessage:
    """A key-distribution message; the layout is in the package docstring.

    Raises:
        TypeError: a field of the wrong type.  ValueError: a field out of its range or of the wrong
            length (session 16 bytes, nonce 12).
    """

    sender: int  # member index of the author
    recipient: int  # member index of the only reader
    session: bytes  # the recipient's 16-byte session id, as the sender pinned it
    seq: int  # per (sender, recipient) counter, from 1
    epoch: int  # epoch of the carried key
    nonce: bytes  # 12-byte AES-GCM nonce
    ciphertext: bytes  # AES-GCM output, tag included
    version: int = KEY_MESSAGE_VERSION

    def __post_init__(self) -> None:
        for name, top in _RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if not 0 <= value <= top:
                raise ValueError(f"{name} must be in 0..{top}, got {value}")
        for name, size in (("session", SESSION_LEN), ("nonce", NONCE_LEN), ("ciphertext", None)):
            value = getattr(self, name)
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
            object.__setattr__(self, name, bytes(value))
            if size is not None and len(value) != size:
                raise ValueError(f"{name} must be {size} bytes, got {len(value)}")

    def header(self) -> bytes:
        """Bytes 0..42, the AAD."""
        return _HEADER.pack(self.version, self.sender, self.recipient, self.session, self.seq, self.epoch,
                            self.nonce)

    def __bytes__(self) -> bytes:
        return self.header() + self.ciphertext

    @classmethod
    def parse(cls, data: bytes) -> KeyMessage:
        """Parse a key message; MalformedMessage names the field and the byte counts.

        Raises:
            TypeError: ``data`` is not bytes-like.  MalformedMessage: too short or another version.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"a key message is bytes, not {type(data).__name__}")
        data = bytes(data)
        if len(data) < HEADER_LEN + TAG_LEN:
            raise MalformedMessage(f"key message needs at least {HEADER_LEN + TAG_LEN} bytes, got {len(data)}")
        version, sender, recipient, session, seq, epoch, nonce = _HEADER.unpack_from(data)
        if version != KEY_MESSAGE_VERSION:
            raise MalformedMessage(f"version byte is {version}, expected {KEY_MESSAGE_VERSION}")
        return cls(sender, recipient, session, seq, epoch, nonce, data[HEADER_LEN:], version)


def seal_key_message(key: bytes, *, sender: int, recipient: int, session: bytes, seq: int, epoch: int,
                     nonce: bytes, payload: bytes) -> bytes:
    """Encrypt ``payload`` (a base key) to one recipient under the pairwise ``key``; returns the wire bytes.

    ``session`` is the recipient's session id as the sender pinned it from the roster.

    Raises:
        TypeError, ValueError: a header field of the wrong type or range (:class:`KeyMessage`), or a
            key that is not an AES key.
    """
    header = KeyMessage(sender, recipient, session, seq, epoch, nonce, b"").header()
    return header + AESGCM(key).encrypt(nonce, bytes(payload), header)


def open_key_message(key: bytes, message: KeyMessage) -> bytes:
    """Decrypt a key message with the pairwise ``key``; MessageTampered if the tag does not verify."""
    try:
        return AESGCM(key).decrypt(message.nonce, message.ciphertext, message.header())
    except InvalidTag:
        raise MessageTampered("key message failed authentication") from None
