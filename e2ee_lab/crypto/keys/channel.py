"""The pairwise channel: an ECDH + HKDF key per pair of members and the key-distribution message (RFC 5869).

Base keys travel in key-distribution messages encrypted to exactly one member under the key both
ends of the pair derive (RFC 5869 HKDF; all of it is available in WebCrypto)::

    shared = ECDH(own private, peer public)          X25519: 32 bytes; P-256: the 32-byte x-coordinate
    key    = HKDF-SHA256(salt = "" (empty), IKM = shared,
                         info = "e2ee-lab 1.0 pairwise key " || min(pub_a, pub_b) || max(pub_a, pub_b),
                         L = 16)                      -> AES-128-GCM key, the same for both members

min/max compare the public keys' bytes lexicographically. The message's byte layout is in the
package docstring (:mod:`e2ee_lab.crypto.keys`); :class:`KeyMessage` is its wire record.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.crypto.keys.errors import MalformedMessage, MessageTampered
from e2ee_lab.crypto.keys.identity import IdentityKeyPair, PublicIdentity

PAIRWISE_LABEL = b"e2ee-lab 1.0 pairwise key "
PAIRWISE_KEY_LEN = 16  # AES-128-GCM
KEY_MESSAGE_VERSION = 1
_HEADER = struct.Struct(">BBBQI12s")  # version, sender, recipient, seq, epoch, nonce
HEADER_LEN = _HEADER.size  # 27
TAG_LEN = 16


# --- the pairwise key -------------------------------------------------------------------------------


def derive_pairwise_key(own: IdentityKeyPair, peer: PublicIdentity) -> bytes:
    """The AES-128-GCM key both ends of a pair derive: HKDF-SHA256 over ECDH, public keys sorted in info."""
    low, high = sorted((bytes(own.public), bytes(peer)))
    info = PAIRWISE_LABEL + low + high
    return HKDF(hashes.SHA256(), PAIRWISE_KEY_LEN, salt=None, info=info).derive(own.exchange(peer))


# --- the key-distribution message (wire record) ---------------------------------------------------


@dataclass(frozen=True)
class KeyMessage:
    """A key-distribution message; the layout is in the package docstring."""

    sender: int  # member index of the author
    recipient: int  # member index of the only reader
    seq: int  # per (sender, recipient) counter, from 1
    epoch: int  # epoch of the carried key
    nonce: bytes  # 12-byte AES-GCM nonce
    ciphertext: bytes  # AES-GCM output, tag included
    version: int = KEY_MESSAGE_VERSION

    def header(self) -> bytes:
        """Bytes 0..26, the AAD."""
        return _HEADER.pack(self.version, self.sender, self.recipient, self.seq, self.epoch, self.nonce)

    def __bytes__(self) -> bytes:
        return self.header() + self.ciphertext

    @classmethod
    def parse(cls, data: bytes) -> KeyMessage:
        """Parse a key message; MalformedMessage names the field and the byte counts."""
        data = bytes(data)
        if len(data) < HEADER_LEN + TAG_LEN:
            raise MalformedMessage(f"key message needs at least {HEADER_LEN + TAG_LEN} bytes, got {len(data)}")
        version, sender, recipient, seq, epoch, nonce = _HEADER.unpack_from(data)
        if version != KEY_MESSAGE_VERSION:
            raise MalformedMessage(f"version byte is {version}, expected {KEY_MESSAGE_VERSION}")
        return cls(sender, recipient, seq, epoch, nonce, data[HEADER_LEN:], version)


def seal_key_message(key: bytes, *, sender: int, recipient: int, seq: int, epoch: int, nonce: bytes,
                     payload: bytes) -> bytes:
    """Encrypt ``payload`` (a base key) to one recipient under the pairwise ``key``; returns the wire bytes."""
    header = KeyMessage(sender, recipient, seq, epoch, nonce, b"").header()
    return header + AESGCM(key).encrypt(nonce, bytes(payload), header)


def open_key_message(key: bytes, message: KeyMessage) -> bytes:
    """Decrypt a key message with the pairwise ``key``; MessageTampered if the tag does not verify."""
    try:
        return AESGCM(key).decrypt(message.nonce, message.ciphertext, message.header())
    except InvalidTag:
        raise MessageTampered("key message failed authentication") from None
