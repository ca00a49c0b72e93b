"""Group key agreement for SFrame sender keys (RFC 9605 §5.1), sans-I/O: messages in, messages and keys out.

Each member has an identity key pair (X25519, RFC 7748, or ECDH on P-256, SEC 1) and its own SFrame
base key per epoch, used by that sender only (§4.4.1, §5.1). Base keys travel in key-distribution
messages encrypted to exactly one member over a pairwise channel; the SFU relays these opaque bytes
and never holds a key. Members never touch sockets or clocks: every call takes ``now`` (seconds).

Pairwise key (RFC 5869 HKDF; all of it is available in WebCrypto)::

    shared = ECDH(own private, peer public)          X25519: 32 bytes; P-256: the 32-byte x-coordinate
    key    = HKDF-SHA256(salt = "" (empty), IKM = shared,
                         info = "e2ee-lab 1.0 pairwise key " || min(pub_a, pub_b) || max(pub_a, pub_b),
                         L = 16)                      -> AES-128-GCM key, the same for both members

Public keys are raw 32 bytes (X25519) or the 65-byte uncompressed point ``04 || x || y`` (P-256, what
WebCrypto's ``exportKey("raw")`` gives); min/max compare the bytes lexicographically.

Key-distribution message (integers big-endian; bytes 0-26 are the AAD)::

    offset  size  field
    0       1     version     1
    1       1     sender      member index of the author, 0..255
    2       1     recipient   member index of the only reader, 0..255
    3       8     seq         per (sender, recipient) counter, starts at 1, strictly increasing
    11      4     epoch       group epoch of the carried key
    15      12    nonce       random AES-GCM nonce
    27      Nh+16 ciphertext  AES-128-GCM(pairwise key, nonce, aad = bytes 0..26, plaintext = base key)

The base key is Nh bytes (32 for suites 1-4, 64 for suite 5), the length of the §5.1 ratchet output.

KID layout: ``kid = (epoch << 8) | member`` (:func:`kid_for`, :func:`parse_kid`), so a receiver
attributes every frame to one sender and one epoch from the authenticated SFrame header; the SFU
reads both (RFC 9605 §7, no header confidentiality). Up to 256 members per call.

Epochs and rekey policy. The signalling server (:class:`Roster`) orders membership changes and
numbers them; every member applies the same :class:`RosterUpdate` sequence (an assumption: the
roster change reaches a member before key messages of that epoch). On a JOIN every sender ratchets
its key, ``base_key[e] = HKDF-Expand(HKDF-Extract("", base_key[e-1]), "SFrame 1.0 Ratchet", Nh)``
(§5.1); existing members ratchet their copies themselves and the newcomer receives only the
epoch-e keys, so it cannot read earlier frames. On a LEAVE, and every ``rekey_interval`` seconds,
every remaining sender draws a fresh random key and sends it to the remaining members only, so a
leaver cannot read later frames. New receive keys are usable at once; a sender switches to its
epoch-e key ``switch_delay`` seconds after the epoch started (§4.4.1: "after a timeout"), and
receivers delete epoch e-1 keys ``grace`` seconds after that switch. Defaults (:class:`RekeyPolicy`):
``switch_delay = 2 s`` (Zoom waits ~2 s, DAVE executes a new epoch within ~2 s, Signal waits 5 s): long
enough for a key message to cross the signalling relay; it is also the leaver's exposure window and
a newcomer's wait for its first decryptable frame, so shorter is better; ``grace = 10 s`` (DAVE keeps old keys ≤10 s, Signal ≤300 frames, i.e.
10 s at 30 fps): covers jitter buffers and retransmissions and costs nothing against a leaver,
who already had those keys; ``rekey_interval = 300 s`` (Zoom's 5 minutes) bounds how long a
silently leaked key stays useful, since a ratchet does not heal a leak. The roster issues the
periodic rekey, so a malicious server can suppress it, as it can delay a leave (Zoom notes the same).

A :class:`Member`'s state is an Enum driven by :data:`TRANSITIONS`; an illegal step raises
:class:`IllegalTransition`. Bad key messages raise one :class:`KeyAgreementError` subclass each
and leave the member unchanged.

Safety numbers, after Signal's: per identity key, ``d = 0x0000 || key``, then 5200 times
``d = SHA-512(d || key)``; the first 30 bytes, as six 5-byte big-endian numbers mod 100000, give 30
digits. A pair's number is both 30-digit strings sorted and joined: 60 digits, read as 12 groups of
5, the same on both sides. They let members compare identity keys out of band: a malicious
:class:`KeyDirectory` can substitute keys (:class:`MITM`), which succeeds silently unless the
numbers are compared.
"""

from __future__ import annotations

import os
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from e2ee_lab.crypto import events as ev
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, SFrameError, decode_header

DEFAULT_SUITE = CipherSuite.AES_128_GCM_SHA256_128
MEMBER_BITS = 8  # low KID bits hold the member index
MAX_MEMBERS = 1 << MEMBER_BITS
MAX_EPOCH = 2**32 - 1  # the wire's epoch field is 32 bits
RATCHET_LABEL = b"SFrame 1.0 Ratchet"  # RFC 9605 §5.1
PAIRWISE_LABEL = b"e2ee-lab 1.0 pairwise key "
PAIRWISE_KEY_LEN = 16  # AES-128-GCM
KEY_MESSAGE_VERSION = 1
_HEADER = struct.Struct(">BBBQI12s")  # version, sender, recipient, seq, epoch, nonce
HEADER_LEN = _HEADER.size  # 27
TAG_LEN = 16
SAFETY_VERSION = b"\x00\x00"
SAFETY_ITERATIONS = 5200  # as Signal's fingerprint: slows a search for a matching number
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- errors (one family; ``reason`` names the recipient's drop counter) --------------------------


class KeyAgreementError(Exception):
    """Base class of every key-agreement failure; the member's state is unchanged."""

    reason = "key_agreement"


class MalformedMessage(KeyAgreementError):
    """A key message is truncated, has an unknown version or carries a key of the wrong length."""

    reason = "malformed"


class WrongRecipient(KeyAgreementError):
    """A key message addressed to another member."""

    reason = "wrong_recipient"


class UnknownMember(KeyAgreementError):
    """A message from, or a question about, a member this one has no channel with."""

    reason = "unknown_member"


class MessageTampered(KeyAgreementError):
    """The AES-GCM tag did not verify; deliberately says nothing about why."""

    reason = "auth"


class ReplayedMessage(KeyAgreementError):
    """A key message whose sequence number is not above the last one accepted from its sender."""

    reason = "replay"


class StaleEpoch(KeyAgreementError):
    """A key or roster update for an epoch already held, retired, or before the member joined."""

    reason = "stale_epoch"


class FutureEpoch(KeyAgreementError):
    """A key or roster update for an epoch beyond the next one this member expects."""

    reason = "future_epoch"


class IllegalTransition(KeyAgreementError):
    """An event the member's current state does not allow (e.g. a key message after leaving)."""

    reason = "illegal_transition"


class IdentityChanged(KeyAgreementError):
    """The roster gives a known member a different identity key than the one pinned at first sight."""

    reason = "identity_changed"


class InvalidIdentityKey(KeyAgreementError):
    """A public key that does not parse, is on the other curve, or gives no shared secret."""

    reason = "invalid_identity"


class SafetyNumberMismatch(KeyAgreementError):
    """The safety numbers two members see differ: their identity keys were substituted."""

    reason = "safety_number_mismatch"


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


# --- identities and the pairwise channel ----------------------------------------------------------


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


def derive_pairwise_key(own: IdentityKeyPair, peer: PublicIdentity) -> bytes:
    """The AES-128-GCM key both ends of a pair derive: HKDF-SHA256 over ECDH, public keys sorted in info."""
    low, high = sorted((bytes(own.public), bytes(peer)))
    info = PAIRWISE_LABEL + low + high
    return HKDF(hashes.SHA256(), PAIRWISE_KEY_LEN, salt=None, info=info).derive(own.exchange(peer))


# --- sender keys and KIDs (RFC 9605 §5.1) ---------------------------------------------------------


def ratchet(base_key: bytes, suite: CipherSuite | int = DEFAULT_SUITE) -> bytes:
    """The next sender key: HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Ratchet", Nh) (§5.1)."""
    suite = CipherSuite(suite)
    return HKDF(suite.hash_algorithm(), suite.nh, salt=None, info=RATCHET_LABEL).derive(bytes(base_key))


def kid_for(epoch: int, member: int) -> int:
    """The SFrame KID of ``member``'s key in ``epoch``: ``(epoch << 8) | member``.

    Raises:
        ValueError: member outside 0..255 or epoch outside 0..2^32-1.
    """
    if not 0 <= member < MAX_MEMBERS:
        raise ValueError(f"member index must be in 0..{MAX_MEMBERS - 1}, got {member}")
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch must be in 0..2^32-1, got {epoch}")
    return epoch << MEMBER_BITS | member


def parse_kid(kid: int) -> tuple[int, int]:
    """(epoch, member) of a KID made by :func:`kid_for`."""
    return kid >> MEMBER_BITS, kid & (MAX_MEMBERS - 1)


def frame_origin(frame: bytes) -> tuple[int, int]:
    """(epoch, sender) of an SFrame ciphertext, read from its header as the SFU can (MalformedHeader)."""
    kid, _, _ = decode_header(frame)
    return parse_kid(kid)


# --- the key-distribution message (wire record) ---------------------------------------------------


@dataclass(frozen=True)
class KeyMessage:
    """A key-distribution message; the layout is in the module docstring."""

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


# --- safety numbers ---------------------------------------------------------------------------------


def _fingerprint(public: PublicIdentity) -> str:
    """30 digits for one key: SHA-512 iterated over (version || key), six 5-byte chunks mod 100000."""
    key = bytes(public)
    digest = SAFETY_VERSION + key
    for _ in range(SAFETY_ITERATIONS):
        h = hashes.Hash(hashes.SHA512())
        h.update(digest + key)
        digest = h.finalize()
    return "".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


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


def safety_number(a: PublicIdentity, b: PublicIdentity) -> SafetyNumber:
    """The safety number of a pair: both 30-digit fingerprints, sorted, so the order of a and b is irrelevant."""
    return SafetyNumber("".join(sorted((_fingerprint(a), _fingerprint(b)))))


# --- signalling: the key directory and the roster ----------------------------------------------------


Tamper = Callable[[int, int, PublicIdentity], PublicIdentity]


class KeyDirectory:
    """What signalling serves: member index → identity public key. A ``tamper`` hook lets it lie per asker."""

    def __init__(self) -> None:
        self._keys: dict[int, PublicIdentity] = {}
        self.tamper: Tamper | None = None  # (asker, member, genuine key) -> key served

    def publish(self, member: int, public: PublicIdentity) -> None:
        """Record the identity key a member uploaded when it joined."""
        self._keys[member] = public

    def remove(self, member: int) -> None:
        """Forget a member that left."""
        self._keys.pop(member, None)

    def genuine(self, member: int) -> PublicIdentity:
        """The key the member published (UnknownMember if none)."""
        if member not in self._keys:
            raise UnknownMember(f"member {member} has published no identity key")
        return self._keys[member]

    def lookup(self, member: int, *, asker: int) -> PublicIdentity:
        """The key served to ``asker`` for ``member`` (tampered if a hook says so)."""
        key = self.genuine(member)
        return key if self.tamper is None else self.tamper(asker, member, key)

    def view(self, asker: int) -> tuple[tuple[int, PublicIdentity], ...]:
        """The whole directory as served to ``asker``: (member, key) pairs by index."""
        return tuple((m, self.lookup(m, asker=asker)) for m in sorted(self._keys))


class Change(Enum):
    """Why an epoch started."""

    JOIN = "join"
    LEAVE = "leave"
    REKEY = "rekey"


@dataclass(frozen=True)
class RosterUpdate:
    """One numbered membership change, as the signalling server tells it to one member."""

    epoch: int  # the epoch this change starts
    change: Change  # join, leave or periodic rekey
    subject: int | None  # who joined or left; None for a rekey
    members: tuple[tuple[int, PublicIdentity], ...]  # roster after the change, as served to this member

    @property
    def identities(self) -> dict[int, PublicIdentity]:
        """The roster as a dict: member index → identity key."""
        return dict(self.members)


@dataclass(frozen=True)
class RekeyPolicy:
    """When senders switch keys and receivers drop old ones (seconds); defaults in the module docstring."""

    switch_delay: float = 2.0  # epoch start → sender uses its new key
    grace: float = 10.0  # sender's switch → receivers delete the previous key
    rekey_interval: float | None = 300.0  # fresh keys this long after the last fresh keys; None: never

    def __post_init__(self) -> None:
        if self.switch_delay < 0 or self.grace < 0:
            raise ValueError(f"switch_delay and grace must be >= 0, got {self.switch_delay}, {self.grace}")
        if self.rekey_interval is not None and self.rekey_interval <= 0:
            raise ValueError(f"rekey_interval must be > 0 or None, got {self.rekey_interval}")


class Roster:
    """The signalling server: assigns member indices and orders joins, leaves and rekeys into epochs."""

    def __init__(self, directory: KeyDirectory, policy: RekeyPolicy = RekeyPolicy()) -> None:
        self.directory = directory
        self.policy = policy
        self.epoch = -1
        self.members: list[int] = []
        self._next_index = 0
        self._last_fresh: float | None = None

    @property
    def next_index(self) -> int:
        """The index the next member to join will get (indices are never reused)."""
        return self._next_index

    def join(self, public: PublicIdentity, now: float) -> tuple[int, dict[int, RosterUpdate]]:
        """Admit a member; returns its index and the update for every member (the newcomer included)."""
        if self._next_index >= MAX_MEMBERS:
            raise ValueError(f"a call has at most {MAX_MEMBERS} member indices")
        index, self._next_index = self._next_index, self._next_index + 1
        self.directory.publish(index, public)
        self.members.append(index)
        if self._last_fresh is None:
            self._last_fresh = now
        return index, self._start(Change.JOIN, index, self.members)

    def leave(self, index: int, now: float) -> dict[int, RosterUpdate]:
        """Remove a member; the update goes to the remaining members and to the leaver."""
        if index not in self.members:
            raise UnknownMember(f"member {index} is not in the call")
        self.members.remove(index)
        self.directory.remove(index)
        updates = self._start(Change.LEAVE, index, self.members)
        updates[index] = RosterUpdate(self.epoch, Change.LEAVE, index, ())
        self._last_fresh = now
        return updates

    def poll(self, now: float) -> dict[int, RosterUpdate]:
        """A periodic REKEY when ``rekey_interval`` has passed since the last fresh keys, else nothing."""
        interval = self.policy.rekey_interval
        if interval is None or self._last_fresh is None or now - self._last_fresh < interval or not self.members:
            return {}
        self._last_fresh = now
        return self._start(Change.REKEY, None, self.members)

    def _start(self, change: Change, subject: int | None, recipients: Iterable[int]) -> dict[int, RosterUpdate]:
        self.epoch += 1
        return {m: RosterUpdate(self.epoch, change, subject, self.directory.view(m)) for m in recipients}


# --- the member: state machine, keys, frames --------------------------------------------------------


class MemberState(Enum):
    """A member's life: outside the call, active, switching to a newer send key, left."""

    OUTSIDE = "outside"
    ACTIVE = "active"
    SWITCHING = "switching"
    LEFT = "left"


class Trigger(Enum):
    """What can happen to a member."""

    JOINED = "own join"
    CHANGED = "roster change"
    KEY_RECEIVED = "key message"
    SWITCHED = "switch-over"
    REMOVED = "own leave"
    FRAME = "frame"


_S, _T = MemberState, Trigger
TRANSITIONS: dict[tuple[MemberState, Trigger], MemberState] = {
    (_S.OUTSIDE, _T.JOINED): _S.ACTIVE,
    (_S.ACTIVE, _T.CHANGED): _S.SWITCHING,
    (_S.SWITCHING, _T.CHANGED): _S.SWITCHING,
    (_S.SWITCHING, _T.SWITCHED): _S.ACTIVE,
    (_S.ACTIVE, _T.KEY_RECEIVED): _S.ACTIVE,
    (_S.SWITCHING, _T.KEY_RECEIVED): _S.SWITCHING,
    (_S.ACTIVE, _T.FRAME): _S.ACTIVE,
    (_S.SWITCHING, _T.FRAME): _S.SWITCHING,
    (_S.ACTIVE, _T.REMOVED): _S.LEFT,
    (_S.SWITCHING, _T.REMOVED): _S.LEFT,
}


def next_state(state: MemberState, trigger: Trigger) -> MemberState:
    """The state after ``trigger``; IllegalTransition names both when the table has no entry."""
    try:
        return TRANSITIONS[state, trigger]
    except KeyError:
        raise IllegalTransition(f"event {trigger.name} ({trigger.value}) is illegal in state {state.name}") from None


class Member:
    """One participant's key agreement: pairwise channels, its sender keys, everyone's receive keys.

    Feed it :meth:`handle_roster` (returns key messages as ``(recipient, bytes)`` for the relay) and
    :meth:`receive_key_message`; encrypt and decrypt frames with :meth:`protect`/:meth:`unprotect`
    (the keys live in ``self.context``, an :class:`SFrameContext`). Time only moves through ``now``.
    """

    def __init__(self, index: int, identity: IdentityKeyPair, *, policy: RekeyPolicy = RekeyPolicy(),
                 suite: CipherSuite | int = DEFAULT_SUITE, seed: int | bytes | None = None) -> None:
        kid_for(0, index)  # validates the index
        self.index, self.identity, self.policy = index, identity, policy
        self.suite = CipherSuite(suite)
        self.context = SFrameContext(self.suite)
        self.state = MemberState.OUTSIDE
        self.epoch = -1
        self.join_epoch: int | None = None
        self._rand = _Randomness(seed)
        self._peers: dict[int, PublicIdentity] = {}  # pinned identity keys
        self._since: dict[int, int] = {}  # peer -> first epoch it can hold keys for
        self._channels: dict[int, bytes] = {}  # peer -> pairwise AES-GCM key
        self._send_seq: dict[int, int] = {}
        self._recv_seq: dict[int, int] = {}
        self._history: dict[int, tuple[Change, int | None, float]] = {}  # epoch -> (change, subject, start)
        self._keys: dict[tuple[int, int], bytes] = {}  # (sender, epoch) -> base key
        self._retire_at: dict[int, float] = {}  # epoch -> when its keys are deleted
        self._retired: set[int] = set()
        self._send_epoch: int | None = None
        self._events: deque = deque()

    # -- inputs --

    def handle_roster(self, update: RosterUpdate, now: float) -> list[tuple[int, bytes]]:
        """Apply a roster change: new epoch, new own key, key messages to send.

        Raises:
            IllegalTransition: not a legal step in this state (e.g. someone else's join while OUTSIDE).
            StaleEpoch, FutureEpoch: the update is not for the next epoch.
            IdentityChanged: a known member's identity key differs from the pinned one.
        """
        self._advance(now)
        if update.change is Change.LEAVE and update.subject == self.index:
            self.state = next_state(self.state, Trigger.REMOVED)
            self._wipe()
            return []
        own_join = update.change is Change.JOIN and update.subject == self.index
        new_state = next_state(self.state, Trigger.JOINED if own_join else Trigger.CHANGED)
        if not own_join:
            self._check_epoch_order(update.epoch)
        new_peers = self._checked_peers(update, own_join)
        self._history[update.epoch] = (update.change, update.subject, now)
        if self.epoch >= 0:
            self._retire_at[self.epoch] = now + self.policy.switch_delay + self.policy.grace
        self.epoch = update.epoch
        if own_join:
            self.join_epoch = self._send_epoch = update.epoch
        self._pin(new_peers, update)
        self._events.append(ev.EpochStarted(self.index, update.epoch, update.change.value, update.subject, now))
        out = self._rotate_own_key(update, now)
        self.state = new_state
        return out

    def receive_key_message(self, data: bytes, now: float) -> None:
        """Check and apply a key message; on any error nothing changes.

        Raises:
            IllegalTransition, MalformedMessage, WrongRecipient, UnknownMember, MessageTampered,
            ReplayedMessage, StaleEpoch, FutureEpoch (all KeyAgreementError).
        """
        self._advance(now)
        new_state = next_state(self.state, Trigger.KEY_RECEIVED)
        msg = KeyMessage.parse(data)
        if msg.recipient != self.index:
            raise WrongRecipient(f"message for member {msg.recipient} delivered to member {self.index}")
        if msg.sender not in self._channels:
            raise UnknownMember(f"member {self.index} has no channel with member {msg.sender}")
        key = open_key_message(self._channels[msg.sender], msg)
        if len(key) != self.suite.nh:
            raise MalformedMessage(f"base key is {len(key)} bytes, {self.suite.name} needs {self.suite.nh}")
        if msg.seq <= self._recv_seq.get(msg.sender, 0):
            last = self._recv_seq.get(msg.sender, 0)
            raise ReplayedMessage(f"seq {msg.seq} from member {msg.sender} is not above {last}")
        self._check_key_epoch(msg.sender, msg.epoch)
        self._recv_seq[msg.sender] = msg.seq
        self._install(msg.sender, msg.epoch, key, "received", now)
        self.state = new_state

    def tick(self, now: float) -> None:
        """Let time pass: switch to a due send key, delete keys whose grace period ended."""
        self._advance(now)

    def protect(self, payload: bytes, now: float, metadata: bytes = b"") -> bytes:
        """Encrypt one frame with the current send key (SFrameError from the frame layer)."""
        self._advance(now)
        next_state(self.state, Trigger.FRAME)
        return self.context.protect(kid_for(self._send_epoch, self.index), payload, metadata)

    def unprotect(self, frame: bytes, now: float, metadata: bytes = b"") -> bytes:
        """Decrypt one frame (UnknownKeyId, AuthenticationFailed, ... from the frame layer)."""
        self._advance(now)
        next_state(self.state, Trigger.FRAME)
        return self.context.unprotect(frame, metadata)

    # -- queries --

    def safety_number(self, peer: int) -> SafetyNumber:
        """The safety number of this member and ``peer``, from the identity key pinned for ``peer``."""
        return safety_number(self.identity.public, self.peer_identity(peer))

    def peer_identity(self, peer: int) -> PublicIdentity:
        """The identity key this member pinned for ``peer`` (what signalling told it)."""
        if peer not in self._peers:
            raise UnknownMember(f"member {self.index} knows no identity key for member {peer}")
        return self._peers[peer]

    @property
    def send_epoch(self) -> int | None:
        """Epoch of the key this member encrypts with now."""
        return self._send_epoch

    def next_timer(self) -> float | None:
        """When :meth:`tick` next has work (a switch-over or a key deletion), for the I/O edge."""
        starts = [self._history[e][2] + self.policy.switch_delay for (s, e) in self._keys
                  if s == self.index and self._send_epoch is not None and e > self._send_epoch]
        times = starts + list(self._retire_at.values())
        return min(times) if times else None

    def next_event(self) -> object | None:
        """The oldest queued event (:mod:`e2ee_lab.crypto.events`), or None."""
        return self._events.popleft() if self._events else None

    def snapshot(self) -> dict:
        """A deep copy of the whole state (keys included) for tests that check nothing changed."""
        return {
            "state": self.state, "epoch": self.epoch, "join_epoch": self.join_epoch,
            "send_epoch": self._send_epoch, "peers": dict(self._peers), "since": dict(self._since),
            "channels": dict(self._channels), "send_seq": dict(self._send_seq),
            "recv_seq": dict(self._recv_seq), "history": dict(self._history), "keys": dict(self._keys),
            "retire_at": dict(self._retire_at), "retired": set(self._retired),
            "send_kids": self.context.send_kids, "receive_kids": self.context.receive_kids,
        }

    # -- roster helpers --

    def _check_epoch_order(self, epoch: int) -> None:
        if epoch <= self.epoch:
            raise StaleEpoch(f"roster update for epoch {epoch}, member {self.index} is already in {self.epoch}")
        if epoch > self.epoch + 1:
            raise FutureEpoch(f"roster update for epoch {epoch}, member {self.index} expects {self.epoch + 1}")

    def _checked_peers(self, update: RosterUpdate, own_join: bool) -> dict[int, tuple[PublicIdentity, bytes]]:
        """Validate the roster against what is pinned; return new peers with their pairwise keys."""
        listed = {m: key for m, key in update.members if m != self.index}
        if update.change is Change.JOIN and not own_join and (update.subject not in listed or
                                                               update.subject in self._peers):
            raise UnknownMember(f"join of member {update.subject} that the roster does not list as new")
        if update.change is Change.LEAVE and update.subject not in self._peers:
            raise UnknownMember(f"leave of member {update.subject}, who is not a peer of member {self.index}")
        new = {}
        for m, key in listed.items():
            if m in self._peers:
                if self._peers[m] != key:
                    raise IdentityChanged(f"member {m}'s identity key changed in epoch {update.epoch}")
            else:
                new[m] = (key, derive_pairwise_key(self.identity, key))  # InvalidIdentityKey
        return new

    def _pin(self, new_peers: dict[int, tuple[PublicIdentity, bytes]], update: RosterUpdate) -> None:
        for m, (key, channel) in new_peers.items():
            self._peers[m], self._channels[m] = key, channel
            self._since[m] = update.epoch if update.subject == m else 0
        if update.change is Change.LEAVE:
            for table in (self._peers, self._channels, self._send_seq, self._recv_seq):
                table.pop(update.subject, None)

    def _rotate_own_key(self, update: RosterUpdate, now: float) -> list[tuple[int, bytes]]:
        e = update.epoch
        if update.change is Change.JOIN and update.subject != self.index:
            for sender, epoch in [k for k in self._keys if k[1] == e - 1]:
                self._ratchet_forward(sender, epoch, now)
            recipients = [update.subject]
            key = self._keys[self.index, e]
        else:
            key = self._rand.take(self.suite.nh)
            self._store(self.index, e, key, "generated", now)
            recipients = sorted(self._channels)
        return [(r, self._seal(r, e, key)) for r in recipients]

    def _seal(self, recipient: int, epoch: int, key: bytes) -> bytes:
        seq = self._send_seq.get(recipient, 0) + 1
        self._send_seq[recipient] = seq
        return seal_key_message(self._channels[recipient], sender=self.index, recipient=recipient, seq=seq,
                                epoch=epoch, nonce=self._rand.take(12), payload=key)

    # -- key helpers --

    def _check_key_epoch(self, sender: int, epoch: int) -> None:
        if epoch > self.epoch:
            raise FutureEpoch(f"key for epoch {epoch}; member {self.index} is in epoch {self.epoch}")
        if epoch < max(self.join_epoch, self._since[sender]) or epoch in self._retired:
            raise StaleEpoch(f"key for epoch {epoch} from member {sender} is before it could exist or retired")
        if (sender, epoch) in self._keys:
            raise StaleEpoch(f"member {self.index} already holds member {sender}'s key for epoch {epoch}")

    def _store(self, sender: int, epoch: int, key: bytes, how: str, now: float) -> None:
        kid = kid_for(epoch, sender)
        self._keys[sender, epoch] = key
        if sender == self.index:
            self.context.add_send_key(kid, key)
        else:
            self.context.add_receive_key(kid, key)
        self._events.append(ev.KeyRotated(self.index, sender, epoch, kid, how, now))

    def _install(self, sender: int, epoch: int, key: bytes, how: str, now: float) -> None:
        self._store(sender, epoch, key, how, now)
        self._ratchet_forward(sender, epoch, now)

    def _ratchet_forward(self, sender: int, epoch: int, now: float) -> None:
        """Derive the sender's keys for later JOIN epochs this member already entered (§5.1)."""
        key = self._keys[sender, epoch]
        for nxt in range(epoch + 1, self.epoch + 1):
            change, subject, _ = self._history[nxt]
            if change is not Change.JOIN or subject == sender or (sender, nxt) in self._keys:
                break
            key = ratchet(key, self.suite)
            self._store(sender, nxt, key, "ratcheted", now)

    def _drop(self, sender: int, epoch: int) -> int:
        kid = kid_for(epoch, sender)
        del self._keys[sender, epoch]
        if kid in self.context.send_kids or kid in self.context.receive_kids:
            self.context.remove_key(kid)
        return kid

    def _advance(self, now: float) -> None:
        if self.state in (MemberState.OUTSIDE, MemberState.LEFT):
            return
        self._switch_send_key(now)
        for epoch in [e for e, t in self._retire_at.items() if t <= now]:
            del self._retire_at[epoch]
            self._retired.add(epoch)
            for sender, e in [k for k in self._keys if k[1] == epoch]:
                kid = self._drop(sender, e)
                self._events.append(ev.KeyRetired(self.index, sender, e, kid, now))

    def _switch_send_key(self, now: float) -> None:
        due = [e for (s, e) in self._keys if s == self.index and e > self._send_epoch
               and self._history[e][2] + self.policy.switch_delay <= now]
        if due:
            old, self._send_epoch = self._send_epoch, max(due)
            if kid_for(old, self.index) in self.context.send_kids:
                self.context.remove_key(kid_for(old, self.index))
            self._events.append(ev.SendKeySwitched(self.index, self._send_epoch,
                                                   kid_for(self._send_epoch, self.index), now))
        pending = any(s == self.index and e > self._send_epoch for (s, e) in self._keys)
        if self.state is MemberState.SWITCHING and not pending:
            self.state = next_state(self.state, Trigger.SWITCHED)

    def _wipe(self) -> None:
        for sender, epoch in list(self._keys):
            self._drop(sender, epoch)
        self._channels.clear()
        self._retire_at.clear()


# --- an in-memory call: roster + relay + members (tests and notebooks) -------------------------------


Interceptor = Callable[[int, bytes], bytes]


class Group:
    """Members wired together in memory through a relay that sees only bytes, as an SFU would.

    ``relay`` lists every key message the SFU carried as ``(recipient, bytes)``; ``frames`` every
    frame it forwarded. A leaver is kept in ``former`` with all its keys and never deletes them:
    the strongest leaver, used to show what it can still read. ``dropped`` counts rejected key
    messages by reason; ``events`` collects every member's events in order.
    """

    def __init__(self, *, curve: Curve = Curve.X25519, policy: RekeyPolicy = RekeyPolicy(),
                 suite: CipherSuite | int = DEFAULT_SUITE, seed: int | bytes | None = None) -> None:
        self.curve, self.policy, self.suite = curve, policy, CipherSuite(suite)
        self.directory = KeyDirectory()
        self.roster = Roster(self.directory, policy)
        self.members: dict[int, Member] = {}
        self.former: dict[int, Member] = {}
        self.relay: list[tuple[int, bytes]] = []
        self.frames: list[bytes] = []
        self.dropped: Counter[str] = Counter()
        self.events: list[object] = []
        self.interceptor: Interceptor | None = None  # a malicious relay's hook (see MITM)
        self.epochs: list[tuple[int, float, Change, int | None]] = []  # (epoch, start, change, subject)
        self._rand = _Randomness(seed)

    def join(self, now: float) -> int:
        """A new member joins at ``now``; returns its index."""
        index = self.roster.next_index
        identity = IdentityKeyPair.generate(self.curve, seed=self._rand.child(f"identity {index}"))
        member = Member(index, identity, policy=self.policy, suite=self.suite,
                        seed=self._rand.child(f"member {index}"))
        index, updates = self.roster.join(identity.public, now)
        self.members[index] = member
        self._apply(updates, now)
        return index

    def leave(self, index: int, now: float) -> None:
        """``index`` leaves at ``now``; it keeps its keys (in ``former``), the others rekey."""
        updates = self.roster.leave(index, now)
        self.former[index] = self.members.pop(index)
        del updates[index]
        self._apply(updates, now)

    def tick(self, now: float) -> None:
        """Let time pass: a periodic rekey if due, then every member's timers."""
        self._apply(self.roster.poll(now), now)
        for member in self.members.values():
            member.tick(now)
        self._drain()

    def send_frame(self, sender: int, payload: bytes, now: float) -> bytes:
        """``sender`` encrypts a frame; the SFU records and forwards the ciphertext."""
        frame = self.members[sender].protect(payload, now)
        self.frames.append(frame)
        self._drain()
        return frame

    def receive_frame(self, receiver: int, frame: bytes, now: float) -> bytes:
        """``receiver`` (current or former member) decrypts a frame; SFrameError if it cannot."""
        if receiver in self.members:
            try:
                return self.members[receiver].unprotect(frame, now)
            finally:
                self._drain()
        return self.former[receiver].context.unprotect(frame)

    def sfu_bytes(self) -> bytes:
        """Everything the SFU carried, concatenated (to search it for key bytes)."""
        return b"".join(data for _, data in self.relay) + b"".join(self.frames)

    def _apply(self, updates: dict[int, RosterUpdate], now: float) -> None:
        if updates:
            first = next(iter(updates.values()))
            self.epochs.append((first.epoch, now, first.change, first.subject))
        outgoing: list[tuple[int, bytes]] = []
        for index in sorted(updates):
            outgoing += self.members[index].handle_roster(updates[index], now)
        self._relay(outgoing, now)

    def _relay(self, messages: list[tuple[int, bytes]], now: float) -> None:
        for recipient, data in messages:
            if self.interceptor is not None:
                data = self.interceptor(recipient, data)
            self.relay.append((recipient, data))
            self.deliver(recipient, data, now)
        self._drain()

    def deliver(self, recipient: int, data: bytes, now: float) -> bool:
        """Hand key-message bytes to a member; a rejection is counted and logged, never raised."""
        if recipient not in self.members:
            self.dropped["no_such_member"] += 1
            return False
        try:
            self.members[recipient].receive_key_message(data, now)
            return True
        except KeyAgreementError as err:
            self.dropped[err.reason] += 1
            self.events.append(ev.KeyMessageRejected(recipient, err.reason, str(err), now))
            return False

    def _drain(self) -> None:
        for member in self.members.values():
            while (event := member.next_event()) is not None:
                self.events.append(event)


class MITM:
    """A malicious signalling server between ``victims``: substitutes identity keys, re-encrypts key messages.

    Every victim is served an attacker key for every other victim, so each pairwise channel between
    victims ends at the attacker, who opens each key message, keeps the base key and re-seals it to
    the real recipient. The victims notice nothing unless they compare safety numbers.
    """

    def __init__(self, group: Group, victims: Iterable[int], *, seed: int | bytes | None = None) -> None:
        self.group, self.victims = group, frozenset(victims)
        self._rand = _Randomness(seed)
        self._fakes: dict[tuple[int, int], IdentityKeyPair] = {}
        self.learned: dict[tuple[int, int], bytes] = {}  # (sender, epoch) -> base key
        self.context = SFrameContext(group.suite)
        group.directory.tamper = self._tamper
        group.interceptor = self._intercept

    def _fake(self, asker: int, target: int) -> IdentityKeyPair:
        if (asker, target) not in self._fakes:
            seed = self._rand.child(f"fake {asker} {target}")
            self._fakes[asker, target] = IdentityKeyPair.generate(self.group.curve, seed=seed)
        return self._fakes[asker, target]

    def _tamper(self, asker: int, member: int, genuine: PublicIdentity) -> PublicIdentity:
        if asker != member and {asker, member} <= self.victims:
            return self._fake(asker, member).public
        return genuine

    def _intercept(self, recipient: int, data: bytes) -> bytes:
        try:
            msg = KeyMessage.parse(data)
        except MalformedMessage:
            return data
        if msg.sender == msg.recipient or not {msg.sender, msg.recipient} <= self.victims:
            return data
        directory = self.group.directory
        inbound = derive_pairwise_key(self._fake(msg.sender, msg.recipient), directory.genuine(msg.sender))
        try:
            base_key = open_key_message(inbound, msg)
        except MessageTampered:
            return data
        self.learned[msg.sender, msg.epoch] = base_key
        outbound = derive_pairwise_key(self._fake(msg.recipient, msg.sender), directory.genuine(msg.recipient))
        return seal_key_message(outbound, sender=msg.sender, recipient=msg.recipient, seq=msg.seq,
                                epoch=msg.epoch, nonce=msg.nonce, payload=base_key)

    def unprotect(self, frame: bytes) -> bytes:
        """Decrypt a victim's frame with the learned keys (ratcheting forward like a member would)."""
        kid, _, _ = decode_header(frame)
        if kid not in self.context.receive_kids:
            epoch, sender = parse_kid(kid)
            known = [e for (s, e) in self.learned if s == sender and e <= epoch]
            if known:
                key = self.learned[sender, max(known)]
                for _ in range(epoch - max(known)):
                    key = ratchet(key, self.group.suite)
                self.context.add_receive_key(kid, key)
        return self.context.unprotect(frame)

