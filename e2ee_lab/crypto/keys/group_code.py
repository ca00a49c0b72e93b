"""Roster entries and the group code: what a member knows of its group in one epoch, in one number.

A roster entry is ``(index, user, identity, session)``: the member index the signalling server
assigned (0..255, untrusted), the user identifier the client chose (UTF-8, 1..64 bytes), its
identity public key and the 16 random bytes it drew for this call. Every member computes, per
epoch ``e``, a group code over the roster it accepted and its own code of the previous epoch (the
role the epoch authenticator plays in MLS, RFC 9420)::

    code_e = SHA-256("e2ee-lab 1.0 group code" || u32be(e) || prev ||
                     for each entry in index order:
                         u8(index) || u8(len(user)) || user || u8(len(identity)) || identity || session)

``prev`` is 32 zero bytes for epoch 0. A newcomer joining at epoch e > 0 cannot know the history:
it takes ``prev`` from the JOIN update's ``previous_code``, the server's claim, which is verified
only when codes are compared. Shown like a safety number: the first 30 bytes as six 5-byte
big-endian numbers mod 100000, 6 groups of 5 digits. Members whose codes match agree on every
roster since the first of them joined; a ghost shown to some members only (a split view), or a
substituted identity key, makes codes differ. A ghost the server admits with a JOIN shown to every
member is in every member's roster alike: the code cannot tell it from a real member, people have
to read the roster (the user identifiers) to see it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import constant_time, hashes

from e2ee_lab.crypto.keys.errors import GroupCodeMismatch
from e2ee_lab.crypto.keys.identity import SESSION_LEN, PublicIdentity, check_user, digits
from e2ee_lab.crypto.keys.sender_keys import MAX_EPOCH, MAX_MEMBERS

GROUP_CODE_LABEL = b"e2ee-lab 1.0 group code"
GROUP_CODE_LEN = 32  # SHA-256
NO_CODE = bytes(GROUP_CODE_LEN)  # ``prev`` of epoch 0


@dataclass(frozen=True)
class RosterEntry:
    """One member as a roster lists it: index (server's), user id (client's), identity key, call session.

    Raises:
        TypeError: a field of the wrong type.  ValueError: an index outside 0..255, a user id
            outside 1..64 bytes of UTF-8, or a session that is not 16 bytes.
    """

    index: int
    user: str
    identity: PublicIdentity
    session: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or isinstance(self.index, bool):
            raise TypeError(f"index must be an int, not {type(self.index).__name__}")
        if not 0 <= self.index < MAX_MEMBERS:
            raise ValueError(f"index must be in 0..{MAX_MEMBERS - 1}, got {self.index}")
        check_user(self.user)
        if not isinstance(self.identity, PublicIdentity):
            raise TypeError(f"identity must be a PublicIdentity, not {type(self.identity).__name__}")
        if not isinstance(self.session, (bytes, bytearray, memoryview)):
            raise TypeError(f"session must be bytes, not {type(self.session).__name__}")
        object.__setattr__(self, "session", bytes(self.session))
        if len(self.session) != SESSION_LEN:
            raise ValueError(f"session must be {SESSION_LEN} bytes, got {len(self.session)}")

    def encode(self) -> bytes:
        """The entry's bytes in the group code: u8 index, u8-length user, u8-length identity, session."""
        user, key = self.user.encode(), bytes(self.identity)
        return bytes((self.index, len(user))) + user + bytes((len(key),)) + key + self.session


def group_code(epoch: int, entries: Iterable[RosterEntry], prev: bytes = NO_CODE) -> bytes:
    """The 32-byte group code of ``epoch`` over ``entries`` (sorted by index here) after ``prev``.

    Raises:
        ValueError: an epoch outside 0..2^32-1 or a ``prev`` that is not 32 bytes.
    """
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch must be in 0..2^32-1, got {epoch}")
    if len(prev) != GROUP_CODE_LEN:
        raise ValueError(f"previous group code must be {GROUP_CODE_LEN} bytes, got {len(prev)}")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(GROUP_CODE_LABEL + struct.pack(">I", epoch) + bytes(prev))
    for entry in sorted(entries, key=lambda e: e.index):
        digest.update(entry.encode())
    return digest.finalize()


@dataclass(frozen=True)
class GroupCode:
    """An epoch's group code as members compare it: 30 digits in 6 groups of 5 (module docstring)."""

    epoch: int
    code: bytes  # the 32-byte SHA-256 value

    @property
    def digits(self) -> str:
        """The 30 digits."""
        return digits(self.code)

    def groups(self) -> list[str]:
        """The 6 five-digit groups, as read aloud."""
        return [self.digits[i:i + 5] for i in range(0, 30, 5)]

    def __str__(self) -> str:
        return " ".join(self.groups())

    def verify(self, other: GroupCode | str) -> None:
        """Compare with the code another member reads out (constant time).

        Raises:
            GroupCodeMismatch: the codes differ: the two members hold different rosters (a ghost
                or a missing member in one view, a substituted key) or different histories.
        """
        theirs = other.digits if isinstance(other, GroupCode) else "".join(str(other).split())
        if not constant_time.bytes_eq(self.digits.encode(), theirs.encode()):
            raise GroupCodeMismatch(f"group codes of epoch {self.epoch} differ: the rosters seen differ")
