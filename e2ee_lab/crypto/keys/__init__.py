"""Group key agreement for SFrame sender keys (RFC 9605 §5.1), sans-I/O: messages in, messages and keys out.

Each member has an identity key pair (X25519, RFC 7748, or ECDH on P-256, SEC 1) and its own SFrame
base key per epoch, used by that sender only (§4.4.1, §5.1). Base keys travel in key-distribution
messages encrypted to exactly one member over a pairwise channel; the SFU relays these opaque bytes
and never holds a key. Members never touch sockets or clocks: every call takes ``now`` (seconds).

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

Modules (every public name is re-exported here, so ``from e2ee_lab.crypto.keys import Member`` works):

- :mod:`.errors`: the :class:`KeyAgreementError` family, one fixed ``reason`` per drop counter;
- :mod:`.identity`: identity key pairs on X25519/P-256 and Signal-style safety numbers;
- :mod:`.channel`: the pairwise ECDH + HKDF key and the :class:`KeyMessage` wire record;
- :mod:`.sender_keys`: the §5.1 ratchet and the KID layout;
- :mod:`.roster`: signalling (:class:`KeyDirectory`, :class:`Roster`) and the epochs and rekey policy;
- :mod:`.member`: the :class:`Member` state machine (:data:`TRANSITIONS`);
- :mod:`.simulation`: the in-memory :class:`Group` and the :class:`MITM` signalling server;
- :mod:`.timeline`: a scripted :class:`Group` call, every frame tried at every listener (:class:`Timeline`).
"""

from __future__ import annotations

from e2ee_lab.crypto.keys.channel import (
    HEADER_LEN,
    KEY_MESSAGE_VERSION,
    PAIRWISE_KEY_LEN,
    PAIRWISE_LABEL,
    TAG_LEN,
    KeyMessage,
    derive_pairwise_key,
    open_key_message,
    seal_key_message,
)
from e2ee_lab.crypto.keys.errors import (
    FutureEpoch,
    IdentityChanged,
    IllegalTransition,
    InvalidIdentityKey,
    KeyAgreementError,
    MalformedMessage,
    MessageTampered,
    ReplayedMessage,
    SafetyNumberMismatch,
    StaleEpoch,
    UnknownMember,
    WrongRecipient,
)
from e2ee_lab.crypto.keys.identity import (
    SAFETY_ITERATIONS,
    SAFETY_VERSION,
    Curve,
    IdentityKeyPair,
    PublicIdentity,
    SafetyNumber,
    safety_number,
)
from e2ee_lab.crypto.keys.member import TRANSITIONS, Member, MemberState, Trigger, next_state
from e2ee_lab.crypto.keys.roster import Change, KeyDirectory, RekeyPolicy, Roster, RosterUpdate, Tamper
from e2ee_lab.crypto.keys.sender_keys import (
    DEFAULT_SUITE,
    MAX_EPOCH,
    MAX_MEMBERS,
    MEMBER_BITS,
    RATCHET_LABEL,
    frame_origin,
    kid_for,
    parse_kid,
    ratchet,
)
from e2ee_lab.crypto.keys.simulation import MITM, Group, Interceptor
from e2ee_lab.crypto.keys.timeline import DEFAULT_SCRIPT, FrameOutcome, Timeline, simulate_timeline

# The frame-layer names the single module imported, still importable from here as they were.
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, SFrameError, decode_header

__all__ = [
    "DEFAULT_SUITE", "HEADER_LEN", "KEY_MESSAGE_VERSION", "MAX_EPOCH", "MAX_MEMBERS", "MEMBER_BITS",
    "PAIRWISE_KEY_LEN", "PAIRWISE_LABEL", "RATCHET_LABEL", "SAFETY_ITERATIONS", "SAFETY_VERSION", "TAG_LEN",
    "TRANSITIONS",
    "KeyAgreementError", "MalformedMessage", "WrongRecipient", "UnknownMember", "MessageTampered",
    "ReplayedMessage", "StaleEpoch", "FutureEpoch", "IllegalTransition", "IdentityChanged",
    "InvalidIdentityKey", "SafetyNumberMismatch",
    "Curve", "PublicIdentity", "IdentityKeyPair", "SafetyNumber", "safety_number",
    "derive_pairwise_key", "KeyMessage", "seal_key_message", "open_key_message",
    "ratchet", "kid_for", "parse_kid", "frame_origin",
    "Tamper", "KeyDirectory", "Change", "RosterUpdate", "RekeyPolicy", "Roster",
    "MemberState", "Trigger", "next_state", "Member",
    "Interceptor", "Group", "MITM",
    "DEFAULT_SCRIPT", "FrameOutcome", "Timeline", "simulate_timeline",
    "CipherSuite", "SFrameContext", "SFrameError", "decode_header",
]
