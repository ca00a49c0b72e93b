"""Group key agreement for SFrame sender keys (RFC 9605 §5.1), sans-I/O: messages in, messages and keys out.

This docstring is the normative description of the lab's key management: the browser's
``e2ee_lab/browser/static/keys.js`` (key agreement) and ``e2ee.js`` (KIDs, frames) implement the
same bytes. Everything that arrives from signalling or the SFU
(rosters, key messages, SSRC-to-member mappings) is treated as adversarial.

Randomness. Live calls draw identity keys, session ids, base keys and key-message nonces from the
OS. Keys derive from a seed only where a caller asks for reproducible keys (``run_call(...,
reproducible_keys=True)``, ``e2ee-lab call --reproducible-keys``, a seeded in-memory
:class:`Group`); whoever knows the seed then recomputes every key.

Members and roster entries. Each member has an identity key pair (X25519, RFC 7748: raw 32 bytes;
or ECDH on P-256, SEC 1: uncompressed 65 bytes), a user identifier it chooses (UTF-8, 1..64 bytes,
the participant's name) and a 16-byte session id drawn when it joins a call. The signalling server
assigns the member index (0..255) and serves the roster as entries ``(index, user, identity,
session)``. JSON form for the browser: an entry is ``[index, user, identityHex, sessionHex]``; a
roster update is ``{"type": "roster", "epoch": e, "change": "join"|"leave"|"rekey", "subject":
index or null, "members": [entries], "previousCode": hex of 32 bytes or null}``; a member joins
with ``(user, identity, session)``.

Roster acceptance (:class:`KeyChecks` ``roster``). With P = the member's current peers and L = the
update's listed indices minus itself: its own JOIN is the initial view; a JOIN of s needs s ∉ P and
L = P ∪ {s}; a LEAVE of s needs s ∈ P and L = P − {s}; a REKEY needs L = P and no subject; every
update must list the member itself exactly as it joined, and no index twice. A known peer's (user,
identity, session) must not change (:class:`IdentityChanged`). Anything else raises
:class:`UnexpectedRoster` (``reason = "roster_mismatch"``) and changes nothing. Its own LEAVE puts
the member in state LEFT with every key wiped.

Group code (per epoch e, :mod:`.group_code`)::

    code_e = SHA-256("e2ee-lab 1.0 group code" || u32be(e) || prev ||
                     for each roster entry in index order:
                       u8(index) || u8(len(user)) || user || u8(len(identity)) || identity || session)

``prev`` is the member's own code of epoch e-1, 32 zero bytes for epoch 0; a newcomer joining at
e > 0 takes the JOIN update's ``previous_code`` (the server's claim, checked only by comparison;
none given counts as 32 zero bytes). Shown as 6 groups of 5 digits: the first 30 bytes as six
5-byte big-endian integers mod 100000. Comparing codes detects a split view of the roster (a ghost
shown to some members only, a member hidden from some) and substituted identity keys.

Safety numbers (:mod:`.identity`): per member ``d = 0x0000 || key || utf8(user)``, then 5200 times
``d = SHA-512(d || key)``; the first 30 bytes as above give 30 digits; a pair's number is both
30-digit strings sorted and joined (60 digits, 12 groups of 5).

Pairwise key (:mod:`.channel`): ``HKDF-SHA256(salt = "", IKM = ECDH(own, peer), info = "e2ee-lab 1.0
pairwise key " || min(pub_a, pub_b) || max(pub_a, pub_b), L = 16)``, an AES-128-GCM key.

Key-distribution message, version 2 (integers big-endian; bytes 0-42 are the AAD)::

    offset  size  field
    0       1     version     2
    1       1     sender      member index of the author, 0..255
    2       1     recipient   member index of the only reader, 0..255
    3       16    session     the recipient's session id, as the sender pinned it from the roster
    19      8     seq         per (sender, recipient) counter, starts at 1, strictly increasing
    27      4     epoch       group epoch of the carried key
    31      12    nonce       random AES-GCM nonce
    43      Nh+16 ciphertext  AES-128-GCM(pairwise key, nonce, aad = bytes 0..42, plaintext = base key)

The base key is Nh bytes (32 for suites 1-4, 64 for suite 5), the length of the §5.1 ratchet output.
The recipient refuses a message whose session is not its own current session before opening it
(:class:`WrongCall`, ``reason = "wrong_call"``, :class:`KeyChecks` ``call_binding``), so a message
recorded in one call is refused in the next even between the same identity keys. What the channel
does NOT give: the pairwise key is static-static ECDH, so key messages have no forward secrecy
(whoever later learns an identity private key opens every recorded message of that pair) and
allow key-compromise impersonation (whoever learns Alice's identity private key can write key
messages to Alice as anyone). An ephemeral ECDH per call signed by the identity keys, or MLS
(RFC 9420), would give both.

KIDs: one per (epoch, media kind, member), ``kid = (epoch << 12) | (kind << 8) | member`` with kind
0 = audio, 1 = video (2..15 are invalid: :func:`parse_kid` raises ValueError, a receiver counts
``unknown_kid``); in hex: epoch…, kind nibble, member byte (epoch 1, video, member 2 = 0x1102). A
base key serves both KIDs of its (epoch, member); RFC 9605 §4.4.2 puts the KID in the key and salt
labels, so each KID has its own SFrame key, salt, counter and 128-frame replay window. The layout
is the lab's own (§9.2 leaves KID assignment to the application; it is closer to §5.2's epoch and
sender index than to §5.1's generation and ratchet step), and the SFU reads it (§7.1). Up to 256
members per call, epochs up to 2^32-1.

Attribution by KID (:class:`KeyChecks` ``attribution``). A receiver is told, per stream, the
announced publisher (member index) and media kind, both from the SFU. ``Member.unprotect(frame,
now, sender=..., kind=...)`` parses the header first; if the KID's member is not ``sender`` or its
kind is not ``kind`` it raises :class:`KIDStreamMismatch` (``reason = "kid_stream_mismatch"``)
before decryption (the replay window is not touched). A frame is thus credited and rendered as
the member its authenticated KID names (RFC 9605 §6.1.1). This protects against the SFU, not
against another member: every member holds every sender's base key and can forge frames as any of
them (RFC 9605 §6.1.1 and §7.2: symmetric keys give group authentication only; per-sender
signatures would be needed). The clear-prefix framing has no KID: its receiver takes the key of
the stream's announced publisher, so a frame moved to another member's stream fails authentication.

Retirement. Old epochs' receive keys are deleted ``switch_delay + grace`` after the epoch that
replaced them started (:mod:`.roster`), and (:class:`KeyChecks` ``retirement``) as soon as a
receiver has authenticated a frame from (sender, kind) under epoch e, it deletes that sender's
receive keys of that kind for every epoch < e, in the SFrame and the clear-prefix receivers alike:
the grace then covers only frames in flight before the sender switched, and a leaver can no longer
inject frames under its old-epoch keys as any sender who has spoken since the switch. What stays
open: a sender silent since the switch (and the other media kind of a sender who sent only one)
until the grace ends. What it costs: whoever holds a sender's key of a newer epoch (any member; a
leaver, for the epochs it was in) can forge one frame under it and make receivers retire that
sender's older keys early, so the sender's frames under them are dropped until it switches (at most
``switch_delay`` plus what is in flight): a denial of service, not a forgery.

The naive counter-example. ``RekeyPolicy().naive()`` (``run_call(..., key_policy="naive")``) turns
the four checks of :class:`KeyChecks` off and keeps the lab's earlier behaviour on purpose: no
roster-set check (only "a JOIN's subject is listed and new, a LEAVE's subject is a peer"), no
session check, no attribution check, no retirement at a new-epoch frame. Same wire formats.

Modules (every public name is re-exported here, so ``from e2ee_lab.crypto.keys import Member`` works):

- :mod:`.errors`: the :class:`KeyAgreementError` family, one fixed ``reason`` per drop counter;
- :mod:`.identity`: identity key pairs on X25519/P-256, sessions, user ids and safety numbers;
- :mod:`.channel`: the pairwise ECDH + HKDF key and the :class:`KeyMessage` wire record;
- :mod:`.sender_keys`: the §5.1 ratchet and the KID layout;
- :mod:`.group_code`: roster entries and the group code;
- :mod:`.roster`: signalling (:class:`KeyDirectory`, :class:`Roster`), epochs, rekey policy and checks;
- :mod:`.member`: the :class:`Member` state machine (:data:`TRANSITIONS`);
- :mod:`.simulation`: the in-memory :class:`Group` and the :class:`MITM` signalling server;
- :mod:`.timeline`: a scripted :class:`Group` call, every frame tried at every listener (:class:`Timeline`).
"""

from __future__ import annotations

from e2ee_lab.crypto.keys.channel import (
    HEADER_LEN,
    KEY_MESSAGE_VERSION,
    NONCE_LEN,
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
    GroupCodeMismatch,
    IdentityChanged,
    IllegalTransition,
    InvalidIdentityKey,
    KeyAgreementError,
    KIDStreamMismatch,
    MalformedMessage,
    MessageTampered,
    ReplayedMessage,
    SafetyNumberMismatch,
    StaleEpoch,
    UnexpectedRoster,
    UnknownMember,
    WrongCall,
    WrongRecipient,
)
from e2ee_lab.crypto.keys.group_code import (
    GROUP_CODE_LABEL,
    GROUP_CODE_LEN,
    NO_CODE,
    GroupCode,
    RosterEntry,
    group_code,
)
from e2ee_lab.crypto.keys.identity import (
    MAX_USER_LEN,
    SAFETY_ITERATIONS,
    SAFETY_VERSION,
    SESSION_LEN,
    Curve,
    IdentityKeyPair,
    PublicIdentity,
    SafetyNumber,
    fingerprint,
    new_session,
    safety_number,
)
from e2ee_lab.crypto.keys.member import TRANSITIONS, Member, MemberState, Trigger, next_state
from e2ee_lab.crypto.keys.roster import (
    NO_CHECKS,
    Change,
    KeyChecks,
    KeyDirectory,
    RekeyPolicy,
    Roster,
    RosterUpdate,
    Tamper,
    check_member_set,
)
from e2ee_lab.crypto.keys.sender_keys import (
    DEFAULT_SUITE,
    EPOCH_SHIFT,
    KIND_BITS,
    MAX_EPOCH,
    MAX_MEMBERS,
    MEDIA_KINDS,
    MEMBER_BITS,
    RATCHET_LABEL,
    KIDFields,
    frame_origin,
    kid_for,
    kind_code,
    parse_kid,
    ratchet,
)
from e2ee_lab.crypto.keys.simulation import MITM, Group, Interceptor
from e2ee_lab.crypto.keys.timeline import DEFAULT_SCRIPT, FrameOutcome, Timeline, simulate_timeline

# The frame-layer names the single module imported, still importable from here as they were.
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, SFrameError, decode_header

__all__ = [
    "DEFAULT_SUITE", "EPOCH_SHIFT", "GROUP_CODE_LABEL", "GROUP_CODE_LEN", "HEADER_LEN", "KEY_MESSAGE_VERSION",
    "KIND_BITS", "MAX_EPOCH", "MAX_MEMBERS", "MAX_USER_LEN", "MEDIA_KINDS", "MEMBER_BITS", "NONCE_LEN",
    "NO_CHECKS", "NO_CODE", "PAIRWISE_KEY_LEN", "PAIRWISE_LABEL", "RATCHET_LABEL", "SAFETY_ITERATIONS",
    "SAFETY_VERSION", "SESSION_LEN", "TAG_LEN", "TRANSITIONS",
    "KeyAgreementError", "MalformedMessage", "WrongRecipient", "WrongCall", "UnknownMember", "MessageTampered",
    "ReplayedMessage", "StaleEpoch", "FutureEpoch", "IllegalTransition", "IdentityChanged",
    "InvalidIdentityKey", "SafetyNumberMismatch", "UnexpectedRoster", "GroupCodeMismatch", "KIDStreamMismatch",
    "Curve", "PublicIdentity", "IdentityKeyPair", "SafetyNumber", "safety_number", "fingerprint", "new_session",
    "RosterEntry", "GroupCode", "group_code",
    "derive_pairwise_key", "KeyMessage", "seal_key_message", "open_key_message",
    "ratchet", "kid_for", "parse_kid", "kind_code", "frame_origin", "KIDFields",
    "Tamper", "KeyDirectory", "Change", "RosterUpdate", "KeyChecks", "RekeyPolicy", "Roster", "check_member_set",
    "MemberState", "Trigger", "next_state", "Member",
    "Interceptor", "Group", "MITM",
    "DEFAULT_SCRIPT", "FrameOutcome", "Timeline", "simulate_timeline",
    "CipherSuite", "SFrameContext", "SFrameError", "decode_header",
]
