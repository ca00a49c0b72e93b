"""Signalling for the group key agreement: the key directory, the roster and the rekey policy (RFC 9605 §5.1).

Epochs and rekey policy. The signalling server (:class:`Roster`) orders membership changes and
numbers them; every member applies the same :class:`RosterUpdate` sequence (assumptions: the
roster change reaches a member before key messages of that epoch, and one sender's key messages
arrive in the order sent; a swapped pair loses the older one, see :meth:`Member.receive_key_message`). On a JOIN every sender ratchets
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

The :class:`KeyDirectory` serves identity keys; its ``tamper`` hook lets a malicious server lie.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from e2ee_lab.crypto.keys.errors import UnknownMember
from e2ee_lab.crypto.keys.identity import PublicIdentity
from e2ee_lab.crypto.keys.sender_keys import MAX_MEMBERS


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
