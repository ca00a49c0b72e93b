"""An in-memory call for tests and notebooks: roster, relay and members, and a MITM signalling server (RFC 9605 §5.1).

:class:`Group` wires :class:`~e2ee_lab.crypto.keys.Member` objects together through a relay that
sees only bytes, as an SFU would, and keeps leavers with their keys to show what they can still
read. Its ``roster_tamper`` hook lets a malicious signalling server rewrite each roster update
before it reaches a member (a ghost member, a hidden one). :class:`MITM` is a malicious
:class:`~e2ee_lab.crypto.keys.KeyDirectory`: it substitutes identity keys between victims and
re-encrypts their key messages, which succeeds silently unless the victims compare safety numbers
(or group codes). A Group with a seed derives every key from it (reproducible figures and tests);
without one the OS draws them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from e2ee_lab.crypto import events as ev
from e2ee_lab.crypto.keys.channel import KeyMessage, derive_pairwise_key, open_key_message, seal_key_message
from e2ee_lab.crypto.keys.errors import KeyAgreementError, MalformedMessage, MessageTampered
from e2ee_lab.crypto.keys.identity import Curve, IdentityKeyPair, PublicIdentity, _Randomness, new_session
from e2ee_lab.crypto.keys.member import Member
from e2ee_lab.crypto.keys.roster import Change, KeyDirectory, RekeyPolicy, Roster, RosterUpdate
from e2ee_lab.crypto.keys.sender_keys import DEFAULT_SUITE, kid_for, parse_kid, ratchet
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, decode_header


Interceptor = Callable[[int, bytes], bytes]
RosterTamper = Callable[[int, RosterUpdate], RosterUpdate]


def default_user(index: int) -> str:
    """The user id of member ``index`` in an in-memory group: "A", "B", ... then "member 26", ..."""
    return chr(ord("A") + index) if index < 26 else f"member {index}"


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
        self.roster_tamper: RosterTamper | None = None  # (recipient, update) -> update delivered
        self.epochs: list[tuple[int, float, Change, int | None]] = []  # (epoch, start, change, subject)
        self._rand = _Randomness(seed)

    def join(self, now: float, *, identity: IdentityKeyPair | None = None, user: str | None = None) -> int:
        """A new member joins at ``now`` (with ``identity`` if given: a long-term key reused across
        calls; else a new one); returns its index."""
        index = self.roster.next_index
        if identity is None:
            identity = IdentityKeyPair.generate(self.curve, seed=self._rand.child(f"identity {index}"))
        user = default_user(index) if user is None else user
        session = new_session(self._rand.child(f"session {index}"))
        member = Member(index, identity, user=user, session=session, policy=self.policy, suite=self.suite,
                        seed=self._rand.child(f"member {index}"))
        index, updates = self.roster.join(user, identity.public, session, now)
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

    def send_frame(self, sender: int, payload: bytes, now: float, *, kind: str = "video") -> bytes:
        """``sender`` encrypts a frame of ``kind``; the SFU records and forwards the ciphertext."""
        frame = self.members[sender].protect(payload, now, kind=kind)
        self.frames.append(frame)
        self._drain()
        return frame

    def receive_frame(self, receiver: int, frame: bytes, now: float, *, sender: int | None = None,
                      kind: str | None = None) -> bytes:
        """``receiver`` (current or former member) decrypts a frame; SFrameError (or KIDStreamMismatch)
        if it cannot. ``sender``/``kind``: what the stream claims (None: no claim, the KID attributes)."""
        if receiver in self.members:
            try:
                return self.members[receiver].unprotect(frame, now, sender=sender, kind=kind)
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
            update = updates[index] if self.roster_tamper is None else self.roster_tamper(index, updates[index])
            try:
                outgoing += self.members[index].handle_roster(update, now)
            except KeyAgreementError as err:
                self.dropped[err.reason] += 1
                self.events.append(ev.RosterRejected(index, update.epoch, err.reason, str(err), now))
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
        inbound = derive_pairwise_key(self._fake(msg.sender, msg.recipient), directory.genuine(msg.sender).identity)
        try:
            base_key = open_key_message(inbound, msg)
        except MessageTampered:
            return data
        self.learned[msg.sender, msg.epoch] = base_key
        outbound = derive_pairwise_key(self._fake(msg.recipient, msg.sender), directory.genuine(msg.recipient).identity)
        return seal_key_message(outbound, sender=msg.sender, recipient=msg.recipient, session=msg.session,
                                seq=msg.seq, epoch=msg.epoch, nonce=msg.nonce, payload=base_key)

    def unprotect(self, frame: bytes) -> bytes:
        """Decrypt a victim's frame with the learned keys (ratcheting forward like a member would)."""
        kid, _, _ = decode_header(frame)
        if not self.context.has_receive_key(kid):
            epoch, sender, kind = parse_kid(kid)
            known = [e for (s, e) in self.learned if s == sender and e <= epoch]
            if known:
                key = self.learned[sender, max(known)]
                for _ in range(epoch - max(known)):
                    key = ratchet(key, self.group.suite)
                self.context.add_receive_key(kid_for(epoch, sender, kind), key)
        return self.context.unprotect(frame)
