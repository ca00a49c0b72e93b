"""Signalling for the group key agreement: the key directory, the roster and the rekey policy (RFC 9605 §5.1).

Epochs and rekey policy. The signalling server (:class:`Roster`) orders membership changes and
numbers them; every member applies the same :class:`RosterUpdate` sequence (assumptions: the
roster change reaches a member before key messages of that epoch, and one sender's key messages
arrive in the order sent; a swapped pair loses the older one, see :meth:`Member.receive_key_message`).
An update lists the roster after the change as :class:`~e2ee_lab.crypto.keys.group_code.RosterEntry`
records (index, user, identity key, session); the server is untrusted, so a member accepts an
update only if its member set is exactly what the change implies (:class:`KeyChecks`). On a JOIN every sender ratchets
its key, ``base_key[e] = HKDF-Expand(HKDF-Extract("", base_key[e-1]), "SFrame 1.0 Ratchet", Nh)``
(§5.1); existing members ratchet their copies themselves and the newcomer receives only the
epoch-e keys, so it cannot read earlier frames. On a LEAVE, and every ``rekey_interval`` seconds,
every remaining sender draws a fresh random key and sends it to the remaining members only, so a
leaver cannot read later frames. New receive keys are usable at once; a sender switches to its
epoch-e key ``switch_delay`` seconds after the epoch started (§4.4.1: "after a timeout"), and
receivers delete epoch e-1 keys ``grace`` seconds after that switch, or, for one sender's audio or
video, as soon as they have authenticated a frame of that sender and kind under a newer epoch.
Defaults (:class:`RekeyPolicy`):
``switch_delay = 2 s`` (Zoom waits ~2 s, DAVE executes a new epoch within ~2 s, Signal's RingRTC waits 3 s): long
enough for a key message to cross the signalling relay; it is also the leaver's exposure window and
a newcomer's wait for its first decryptable frame, so shorter is better; ``grace = 10 s`` (DAVE keeps old keys ≤10 s, Signal ≤300 frames, i.e.
10 s at 30 fps): covers jitter buffers and retransmissions. Grace costs nothing in confidentiality
against a leaver, who already had those keys, but it is a forgery window: the leaver holds every
member's old base key and can inject frames as any of them while receivers still accept the old
epoch. Retiring a sender's old keys at its first authenticated new-epoch frame closes that window
for every sender who has spoken since the switch; for a silent sender it stays open until the grace
ends. ``rekey_interval = 300 s`` (Zoom's 5 minutes) bounds how long a
silently leaked key stays useful, since a ratchet does not heal a leak. The roster issues the
periodic rekey, so a malicious server can suppress it, as it can delay a leave (Zoom notes the same).

The :class:`KeyDirectory` serves roster entries; its ``tamper`` hook lets a malicious server lie
about identity keys. The server also computes the group code of every epoch over the genuine
roster and hands a newcomer the previous one (``RosterUpdate.previous_code``, a claim).

``RekeyPolicy.checks`` (:class:`KeyChecks`) switches the four checks of the fixed members: the
roster's member set, the session (call binding) of key messages, attribution of frames by KID, and
retirement of a sender's old keys at its first new-epoch frame. :meth:`RekeyPolicy.naive` turns
all four off: the lab's earlier members, kept on purpose as the counter-example the attacks beat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

from e2ee_lab.crypto.keys.errors import UnexpectedRoster, UnknownMember
from e2ee_lab.crypto.keys.group_code import NO_CODE, RosterEntry, group_code
from e2ee_lab.crypto.keys.identity import PublicIdentity
from e2ee_lab.crypto.keys.sender_keys import MAX_MEMBERS


Tamper = Callable[[int, int, PublicIdentity], PublicIdentity]


class KeyDirectory:
    """What signalling serves: member index → roster entry. A ``tamper`` hook lets it lie about keys per asker."""

    def __init__(self) -> None:
        self._entries: dict[int, RosterEntry] = {}
        self.tamper: Tamper | None = None  # (asker, member, genuine key) -> key served

    def publish(self, entry: RosterEntry) -> None:
        """Record the entry (user, identity key, session) a member uploaded when it joined."""
        self._entries[entry.index] = entry

    def remove(self, member: int) -> None:
        """Forget a member that left."""
        self._entries.pop(member, None)

    def genuine(self, member: int) -> RosterEntry:
        """The entry the member published (UnknownMember if none)."""
        if member not in self._entries:
            raise UnknownMember(f"member {member} has published no identity key")
        return self._entries[member]

    def lookup(self, member: int, *, asker: int) -> RosterEntry:
        """The entry served to ``asker`` for ``member`` (its identity key tampered if a hook says so)."""
        entry = self.genuine(member)
        if self.tamper is None:
            return entry
        return replace(entry, identity=self.tamper(asker, member, entry.identity))

    def view(self, asker: int) -> tuple[RosterEntry, ...]:
        """The whole directory as served to ``asker``, by index."""
        return tuple(self.lookup(m, asker=asker) for m in sorted(self._entries))

    def genuine_view(self) -> tuple[RosterEntry, ...]:
        """The whole directory as published, by index."""
        return tuple(self._entries[m] for m in sorted(self._entries))


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
    members: tuple[RosterEntry, ...]  # roster after the change, as served to this member
    previous_code: bytes | None = None  # the server's group code of epoch - 1 (a newcomer's ``prev``)

    @property
    def identities(self) -> dict[int, PublicIdentity]:
        """The roster as a dict: member index → identity key."""
        return {e.index: e.identity for e in self.members}


def check_member_set(update: RosterUpdate, me: RosterEntry, peers: set[int], *, own_join: bool) -> None:
    """The roster check of the fixed members: ``update`` lists ``me`` exactly as it joined, no index
    twice, and (but for its own JOIN, the initial view) exactly the members its change implies with
    P = ``peers``: JOIN of s: s not in P, P | {s}; LEAVE of s: s in P, P - {s}; REKEY: P, no subject.

    Raises:
        UnexpectedRoster: any of that is not so (a ghost, a missing member, a misplaced subject).
    """
    indices = [e.index for e in update.members]
    if len(set(indices)) != len(indices):
        raise UnexpectedRoster(f"the epoch-{update.epoch} roster lists a member index twice")
    if me not in update.members:
        raise UnexpectedRoster(f"the epoch-{update.epoch} roster does not list member {me.index} "
                               "with the user, identity key and session it joined with")
    if own_join:
        return
    listed, subject = set(indices) - {me.index}, update.subject
    expected, subject_ok = {
        Change.JOIN: (peers | {subject}, subject not in peers),
        Change.LEAVE: (peers - {subject}, subject in peers),
        Change.REKEY: (peers, subject is None),
    }[update.change]
    if listed != expected or not subject_ok:
        raise UnexpectedRoster(
            f"{update.change.value} of member {subject} in epoch {update.epoch} lists {sorted(listed)}; "
            f"with peers {sorted(peers)} it implies {sorted(expected)}")


@dataclass(frozen=True)
class KeyChecks:
    """The checks of the fixed members (all on by default; :meth:`RekeyPolicy.naive` turns them off)."""

    roster: bool = True  # accept a roster update only with exactly the member set its change implies
    call_binding: bool = True  # refuse key messages sealed for another session (another call)
    attribution: bool = True  # drop a frame whose KID names another member or kind than its stream's
    retirement: bool = True  # delete a sender's old keys at its first authenticated new-epoch frame

    def names(self) -> list[str]:
        """The names of the checks that are on."""
        return [name for name, on in vars(self).items() if on]


NO_CHECKS = KeyChecks(roster=False, call_binding=False, attribution=False, retirement=False)


@dataclass(frozen=True)
class RekeyPolicy:
    """When senders switch keys and receivers drop old ones (seconds), and which checks members make."""

    switch_delay: float = 2.0  # epoch start → sender uses its new key
    grace: float = 10.0  # sender's switch → receivers delete the previous key
    rekey_interval: float | None = 300.0  # fresh keys this long after the last fresh keys; None: never
    checks: KeyChecks = field(default_factory=KeyChecks)  # the fixed members' checks

    def __post_init__(self) -> None:
        if self.switch_delay < 0 or self.grace < 0:
            raise ValueError(f"switch_delay and grace must be >= 0, got {self.switch_delay}, {self.grace}")
        if self.rekey_interval is not None and self.rekey_interval <= 0:
            raise ValueError(f"rekey_interval must be > 0 or None, got {self.rekey_interval}")
        if not isinstance(self.checks, KeyChecks):
            raise TypeError(f"checks must be KeyChecks, not {type(self.checks).__name__}")

    def naive(self) -> RekeyPolicy:
        """This policy with every check off: the naive members, the attacks' counter-example."""
        return replace(self, checks=NO_CHECKS)

    @property
    def name(self) -> str:
        """"fixed" (every check on), "naive" (none) or "custom"."""
        return {KeyChecks(): "fixed", NO_CHECKS: "naive"}.get(self.checks, "custom")


class Roster:
    """The signalling server: assigns member indices, orders joins, leaves and rekeys into epochs, and
    keeps the group code of each epoch over the genuine roster (``codes``)."""

    def __init__(self, directory: KeyDirectory, policy: RekeyPolicy = RekeyPolicy()) -> None:
        self.directory = directory
        self.policy = policy
        self.epoch = -1
        self.members: list[int] = []
        self.codes: dict[int, bytes] = {}  # epoch -> group code over the genuine roster
        self._next_index = 0
        self._last_fresh: float | None = None

    @property
    def next_index(self) -> int:
        """The index the next member to join will get (indices are never reused)."""
        return self._next_index

    def join(self, user: str, public: PublicIdentity, session: bytes,
             now: float) -> tuple[int, dict[int, RosterUpdate]]:
        """Admit a member; returns its index and the update for every member (the newcomer included).

        Raises:
            ValueError: 256 members have joined, or a bad user id or session (RosterEntry).
        """
        if self._next_index >= MAX_MEMBERS:
            raise ValueError(f"a call has at most {MAX_MEMBERS} member indices")
        entry = RosterEntry(self._next_index, user, public, session)
        self._next_index += 1
        self.directory.publish(entry)
        self.members.append(entry.index)
        if self._last_fresh is None:
            self._last_fresh = now
        return entry.index, self._start(Change.JOIN, entry.index, self.members)

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
        previous = self.codes.get(self.epoch - 1, NO_CODE)
        self.codes[self.epoch] = group_code(self.epoch, self.directory.genuine_view(), previous)
        return {m: RosterUpdate(self.epoch, change, subject, self.directory.view(m), previous)
                for m in recipients}
