"""Identity keys, call sessions and safety numbers of the group key agreement (RFC 7748 X25519, SEC 1 P-256).

Each member has a long-term identity key pair, X25519 (RFC 7748) or ECDH on P-256 (SEC 1), and a
stable user identifier it chooses (its name, UTF-8, 1..64 bytes). Public keys are raw 32 bytes
(X25519) or the 65-byte uncompressed point ``04 || x || y`` (P-256, what WebCrypto's
``exportKey("raw")`` gives). Live calls draw keys and sessions from the OS; a seed derives them from
an HKDF (RFC 5869) stream instead, only where a caller asks for reproducible keys (tests, recorded
captures, figures): anyone who knows that seed recomputes every key.

Safety numbers, after Signal's: per member, ``d = 0x0000 || key || utf8(user)``, then 5200 times
``d = SHA-512(d || key)``; the first 30 bytes, as six 5-byte big-endian numbers mod 100000, give 30
digits. A pair's number is both 30-digit strings sorted and joined: 60 digits, read as 12 groups of
5, the same on both sides. They let two members compare each other's identity key and user
identifier out of band: a malicious :class:`~e2ee_lab.crypto.keys.KeyDirectory` can substitute
keys (:class:`~e2ee_lab.crypto.keys.MITM`), which succeeds silently unless the numbers are
compared. A pair's number says nothing about the rest of the roster: a ghost member leaves every
pair's number unchanged (the group code of :mod:`e2ee_lab.crypto.keys.group_code` covers that).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives import constant_time, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from e2ee_lab.crypto.keys.errors import InvalidIdentityKey, SafetyNumberMismatch

SAFETY_VERSION = b"\x00\x00"
SAFETY_ITERATIONS = 5200  # as Signal's fingerprint: slows a search for a matching number
SESSION_LEN = 16  # a member's random per-call session id
MAX_USER_LEN = 64  # bytes of UTF-8 in a user identifier
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- randomness: os.urandom, or a reproducible stream when a seed is given -----------------------


class _Randomness:
    """Random bytes from the OS, or from HKDF-Expand over a seed (reproducible labs and figures)."""

    def __init__(self, seed: int | bytes | None) -> None:
        if seed is None:
            self._prk = None
        else:
            raw = seed if isinstance(seed, bytes) else str(seed).encode()
            self._prk = HKDF.extract(hashes.SHA256(), b"e2ee-lab seed", raw)
        self._counter = 0

    def take(self, n: int) -> bytes:
        if self._prk is None:
            return os.urandom(n)
        self._counter += 1
        return HKDFExpand(hashes.SHA256(), n, b"stream %d" % self._counter).derive(self._prk)

    def child(self, label: str) -> bytes | None:
        """A seed for a sub-component, or None when this stream is not seeded."""
        if self._prk is None:
            return None
        return HKDFExpand(hashes.SHA256(), 32, b"child " + label.encode()).derive(self._prk)


def new_session(seed: int | bytes | None = None) -> bytes:
    """A member's 16-byte session id for one call: from the OS, or from ``seed`` (reproducible keys)."""
    return _Randomness(seed).take(SESSION_LEN)


def check_user(user: str) -> str:
    """``user`` if it is a str of 1..64 bytes of UTF-8; TypeError or ValueError otherwise."""
    if not isinstance(user, str):
        raise TypeError(f"a user identifier is a str, not {type(user).__name__}")
    size = len(user.encode("utf-8", "strict"))
    if not 1 <= size <= MAX_USER_LEN:
        raise ValueError(f"a user identifier has 1..{MAX_USER_LEN} bytes of UTF-8, got {size}")
    return user


# --- identities -----------------------------------------------------------------------------------


class Curve(Enum):
    """The identity-key curves: X25519 (RFC 7748) and ECDH over P-256 (SECP256R1)."""

    X25519 = "x25519"
    P256 = "p256"


@dataclass(frozen=True)
class PublicIdentity:
    """An identity public key as signalling serves it: raw X25519 (32 B) or uncompressed P-256 (65 B)."""

    curve: Curve
    data: bytes

    def __post_init__(self) -> None:
        self.load()  # raises InvalidIdentityKey

    def load(self) -> x25519.X25519PublicKey | ec.EllipticCurvePublicKey:
        """The ``cryptography`` public-key object; InvalidIdentityKey if the bytes are not a key."""
        try:
            if self.curve is Curve.X25519:
                return x25519.X25519PublicKey.from_public_bytes(bytes(self.data))
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(self.data))
        except ValueError as err:
            raise InvalidIdentityKey(f"{self.curve.value} public key of {len(self.data)} bytes: {err}") from None

    def __bytes__(self) -> bytes:
        return bytes(self.data)


class IdentityKeyPair:
    """A member's long-term identity: a private key and its :class:`PublicIdentity`."""

    def __init__(self, private_key: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self._private = private_key
        if isinstance(private_key, x25519.X25519PrivateKey):
            raw = private_key.public_key().public_bytes_raw()
            self.public = PublicIdentity(Curve.X25519, raw)
        else:
            point = private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
            self.public = PublicIdentity(Curve.P256, point)

    @classmethod
    def generate(cls, curve: Curve = Curve.X25519, *, seed: int | bytes | None = None) -> IdentityKeyPair:
        """A new key pair on ``curve``: random, or derived from ``seed`` (same seed, same key)."""
        material = _Randomness(seed).take(48)
        if curve is Curve.X25519:
            key = x25519.X25519PrivateKey.generate() if seed is None else \
                x25519.X25519PrivateKey.from_private_bytes(material[:32])
            return cls(key)
        if seed is None:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        return cls(ec.derive_private_key(int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1()))

    @property
    def curve(self) -> Curve:
        return self.public.curve

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (tests use it to prove it never reaches the relay)."""
        if isinstance(self._private, x25519.X25519PrivateKey):
            return self._private.private_bytes_raw()
        return self._private.private_numbers().private_value.to_bytes(32, "big")

    def exchange(self, peer: PublicIdentity) -> bytes:
        """The ECDH shared secret with ``peer`` (32 bytes).

        Raises:
            InvalidIdentityKey: ``peer`` is on another curve or gives a degenerate (all-zero) secret.
        """
        if peer.curve is not self.curve:
            raise InvalidIdentityKey(f"a {self.curve.value} identity cannot use a {peer.curve.value} key")
        try:
            if self.curve is Curve.X25519:
                return self._private.exchange(peer.load())
            return self._private.exchange(ec.ECDH(), peer.load())
        except ValueError as err:
            raise InvalidIdentityKey(f"no shared secret with this {peer.curve.value} key: {err}") from None


# --- safety numbers ---------------------------------------------------------------------------------


def digits(digest: bytes) -> str:
    """30 decimal digits from the first 30 bytes: six 5-byte big-endian numbers, each mod 100000."""
    return "".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def fingerprint(user: str, public: PublicIdentity) -> str:
    """30 digits for one member: SHA-512 iterated over (version || key || utf8(user)), see the module docstring."""
    key = bytes(public)
    digest = SAFETY_VERSION + key + check_user(user).encode()
    for _ in range(SAFETY_ITERATIONS):
        h = hashes.Hash(hashes.SHA512())
        h.update(digest + key)
        digest = h.finalize()
    return digits(digest)


@dataclass(frozen=True)
class SafetyNumber:
    """60 decimal digits both members of a pair see when their identity keys are genuine."""

    digits: str

    def groups(self) -> list[str]:
        """The 12 five-digit groups, as read aloud."""
        return [self.digits[i:i + 5] for i in range(0, len(self.digits), 5)]

    def __str__(self) -> str:
        return " ".join(self.groups())

    def verify(self, other: SafetyNumber | str) -> None:
        """Compare with the number the other member reads out (constant time).

        Raises:
            SafetyNumberMismatch: the numbers differ (someone substituted an identity key).
        """
        theirs = other.digits if isinstance(other, SafetyNumber) else "".join(str(other).split())
        if not constant_time.bytes_eq(self.digits.encode(), theirs.encode()):
            raise SafetyNumberMismatch("safety numbers differ: an identity key was substituted")


def safety_number(a: tuple[str, PublicIdentity], b: tuple[str, PublicIdentity]) -> SafetyNumber:
    """The safety number of a pair, each given as ``(user, identity key)``: both 30-digit fingerprints,
    sorted, so the order of a and b is irrelevant."""
    return SafetyNumber("".join(sorted((fingerprint(*a), fingerprint(*b)))))
