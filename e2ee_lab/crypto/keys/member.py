"""One member of the group key agreement: a state machine over roster updates and key messages (RFC 9605 §5.1).

A :class:`Member` keeps pairwise channels to its peers, its own sender key per epoch and every
peer's receive keys in an :class:`~e2ee_lab.crypto.sframe.SFrameContext`. It never touches sockets
or clocks: every call takes ``now`` (seconds), and it applies the epochs and rekey policy described
in :mod:`e2ee_lab.crypto.keys.roster` (ratchet on a join, fresh keys on a leave or rekey, switch
after ``switch_delay``, delete after ``grace``).

A member's state is an Enum driven by :data:`TRANSITIONS`; an illegal step raises
:class:`~e2ee_lab.crypto.keys.IllegalTransition`. Bad key messages raise one
:class:`~e2ee_lab.crypto.keys.KeyAgreementError` subclass each and leave the member unchanged.
"""

from __future__ import annotations

from collections import deque
from enum import Enum

from e2ee_lab.crypto import events as ev
from e2ee_lab.crypto.keys.channel import KeyMessage, derive_pairwise_key, open_key_message, seal_key_message
from e2ee_lab.crypto.keys.errors import (
    FutureEpoch,
    IdentityChanged,
    IllegalTransition,
    MalformedMessage,
    ReplayedMessage,
    StaleEpoch,
    UnknownMember,
    WrongRecipient,
)
from e2ee_lab.crypto.keys.identity import IdentityKeyPair, PublicIdentity, SafetyNumber, _Randomness, safety_number
from e2ee_lab.crypto.keys.roster import Change, RekeyPolicy, RosterUpdate
from e2ee_lab.crypto.keys.sender_keys import DEFAULT_SUITE, kid_for, ratchet
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext


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
        """Check and apply a key message; on any error the message changes nothing.

        Time passes first: a key switch or deletion due at ``now`` happens whatever the message.
        Delivery per sender is assumed in order (the signalling relay is ordered): the sequence
        number is the whole replay defence, so an older message arriving after a newer one is
        refused as a replay and its epoch's key is lost to this member until the next rekey.

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

    def base_keys(self) -> dict[tuple[int, int], bytes]:
        """The SFrame base keys this member holds now, as ``{(sender, epoch): base_key}`` (a copy).

        The frame layer installs them (clear-prefix framing derives its AES key from them); the
        lab also uses them to show who holds which key. Nothing here ever leaves the member.
        """
        return dict(self._keys)

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
