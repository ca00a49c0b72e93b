"""One member of the group key agreement: a state machine over roster updates, key messages and frames (RFC 9605 §5.1).

A :class:`Member` keeps pairwise channels to its peers, its own sender key per epoch and every
peer's receive keys in an :class:`~e2ee_lab.crypto.sframe.SFrameContext` (two KIDs per base key:
audio and video). It never touches sockets or clocks: every call takes ``now`` (seconds), and it
applies the epochs and rekey policy described in :mod:`e2ee_lab.crypto.keys.roster` (ratchet on a
join, fresh keys on a leave or rekey, switch after ``switch_delay``, delete after ``grace``).

Everything from signalling and the SFU is adversarial. With the policy's :class:`~e2ee_lab.crypto.keys.KeyChecks`
on (the default) a member:

- accepts a roster update only if its member set is exactly what the change implies and it lists
  this member as it joined (:class:`~e2ee_lab.crypto.keys.UnexpectedRoster`), and known peers keep
  their user, identity key and session (:class:`~e2ee_lab.crypto.keys.IdentityChanged`);
- refuses, unopened, a key message sealed for another of its sessions (:class:`~e2ee_lab.crypto.keys.WrongCall`);
- drops a frame whose KID names another member or media kind than the stream it arrived on
  (:class:`~e2ee_lab.crypto.keys.KIDStreamMismatch`), before decryption, so a frame is credited
  to the member its authenticated KID names (RFC 9605 §6.1.1);
- deletes a sender's older keys of one kind as soon as a frame of that sender and kind under a
  newer epoch has authenticated (:meth:`frame_authenticated`; what that leaves open and what it
  costs: the package docstring, "Retirement").

Attribution by KID holds against the SFU only: every member holds every sender's base key, so any
member can forge frames as any other (RFC 9605 §6.1.1, §7.2; per-sender signatures would be needed).

A member's state is an Enum driven by :data:`TRANSITIONS`; an illegal step raises
:class:`~e2ee_lab.crypto.keys.IllegalTransition`. Bad roster updates and key messages raise one
:class:`~e2ee_lab.crypto.keys.KeyAgreementError` subclass each and leave the member unchanged.

Over 500 lines: one state machine, whose checks (roster, call binding, retirement, attribution)
only make sense read together.
"""

from __future__ import annotations

import math
from collections import deque
from enum import Enum

from e2ee_lab.crypto import events as ev
from e2ee_lab.crypto.keys.channel import KeyMessage, derive_pairwise_key, open_key_message, seal_key_message
from e2ee_lab.crypto.keys.errors import (
    FutureEpoch,
    IdentityChanged,
    IllegalTransition,
    KIDStreamMismatch,
    MalformedMessage,
    ReplayedMessage,
    StaleEpoch,
    UnexpectedRoster,
    UnknownMember,
    WrongCall,
    WrongRecipient,
)
from e2ee_lab.crypto.keys.group_code import GROUP_CODE_LEN, NO_CODE, GroupCode, RosterEntry, group_code
from e2ee_lab.crypto.keys.identity import (
    SESSION_LEN, IdentityKeyPair, PublicIdentity, SafetyNumber, _Randomness, check_user, safety_number,
)
from e2ee_lab.crypto.keys.roster import Change, RekeyPolicy, RosterUpdate, check_member_set
from e2ee_lab.crypto.keys.sender_keys import DEFAULT_SUITE, MEDIA_KINDS, KIDFields, kid_for, parse_kid, ratchet
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, UnknownKeyId, decode_header
from e2ee_lab.crypto.sframe.header import byte_view


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

    Args:
        index: the member index the signalling server assigned.
        identity: the long-term identity key pair.
        user: the stable user identifier it announces (default ``"member <index>"``).
        session: its 16-byte session id for this call (default: drawn like its keys).
        policy: rekey timings and checks; suite: the SFrame cipher suite.
        seed: derive session, base keys and nonces from this seed (reproducible keys); None: the OS.
    """

    def __init__(self, index: int, identity: IdentityKeyPair, *, user: str | None = None,
                 session: bytes | None = None, policy: RekeyPolicy = RekeyPolicy(),
                 suite: CipherSuite | int = DEFAULT_SUITE, seed: int | bytes | None = None) -> None:
        kid_for(0, index, "audio")  # validates the index
        self.index, self.identity, self.policy = index, identity, policy
        self.checks = policy.checks
        self.suite = CipherSuite(suite)
        self.context = SFrameContext(self.suite)
        self.state = MemberState.OUTSIDE
        self.epoch = -1
        self.join_epoch: int | None = None
        self._rand = _Randomness(seed)
        session = self._rand.take(SESSION_LEN) if session is None else session
        self.entry = RosterEntry(index, check_user(f"member {index}" if user is None else user),
                                 identity.public, session)  # what the roster must list for this member
        self.key_version = 0  # bumps whenever the keys held change (the clear-prefix receiver follows)
        self._peers: dict[int, RosterEntry] = {}  # pinned roster entries
        self._since: dict[int, int] = {}  # peer -> first epoch it can hold keys for
        self._channels: dict[int, bytes] = {}  # peer -> pairwise AES-GCM key
        self._send_seq: dict[int, int] = {}
        self._recv_seq: dict[int, int] = {}
        self._history: dict[int, tuple[Change, int | None, float]] = {}  # epoch -> (change, subject, start)
        self._codes: dict[int, bytes] = {}  # epoch -> group code
        self._keys: dict[tuple[int, int], bytes] = {}  # (sender, epoch) -> base key
        # _keys by sender, in the same order: sender -> {epoch: base key}. A room of 50 holds ~1,300
        # keys, and the per-frame work (retirement, the own key switch) asks about one sender.
        self._by_sender: dict[int, dict[int, bytes]] = {}
        self._own_newest: int | None = None  # newest epoch of an own key (-1: none); None: recount
        self._floor: dict[tuple[int, str], int] = {}  # (sender, kind) -> oldest epoch still accepted
        self._retire_at: dict[int, float] = {}  # epoch -> when its keys are deleted
        self._next_retire = math.inf  # min(_retire_at.values()): every frame asks
        self._retired: set[int] = set()
        self._send_epoch: int | None = None
        self._events: deque = deque()

    @property
    def user(self) -> str:
        """The user identifier this member announces."""
        return self.entry.user

    @property
    def session(self) -> bytes:
        """This member's session id for the call (key messages to it must carry it)."""
        return self.entry.session

    # -- inputs --

    def handle_roster(self, update: RosterUpdate, now: float) -> list[tuple[int, bytes]]:
        """Apply a roster change: new epoch, new own key, key messages to send.

        Raises:
            IllegalTransition: not a legal step in this state (e.g. someone else's join while OUTSIDE).
            StaleEpoch, FutureEpoch: the update is not for the next epoch.
            UnexpectedRoster: the member set is not what the change implies (``checks.roster``).
            IdentityChanged: a known member's identity key (with ``checks.roster``: or user, or
                session) differs from the pinned one.
        """
        self._advance(now)
        if update.change is Change.LEAVE and update.subject == self.index:
            self.state = next_state(self.state, Trigger.REMOVED)
            self._wipe(now)
            return []
        own_join = update.change is Change.JOIN and update.subject == self.index
        new_state = next_state(self.state, Trigger.JOINED if own_join else Trigger.CHANGED)
        if not own_join:
            self._check_epoch_order(update.epoch)
        if self.checks.roster:
            check_member_set(update, self.entry, set(self._peers), own_join=own_join)
        new_peers = self._checked_peers(update, own_join)
        code = self._next_code(update, own_join)
        self._history[update.epoch] = (update.change, update.subject, now)
        if self.epoch >= 0:
            self._retire_at[self.epoch] = now + self.policy.switch_delay + self.policy.grace
            self._next_retire = min(self._retire_at.values())
        self.epoch, self._codes[update.epoch] = update.epoch, code
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
        number is the whole replay defence within a call, so an older message arriving after a
        newer one is refused as a replay and its epoch's key is lost to this member until the next
        rekey. Across calls the session id is (``checks.call_binding``): a message whose session is
        not this member's is refused before it is opened.

        Raises:
            IllegalTransition, MalformedMessage, WrongRecipient, WrongCall, UnknownMember,
            MessageTampered, ReplayedMessage, StaleEpoch, FutureEpoch (all KeyAgreementError).
        """
        self._advance(now)
        new_state = next_state(self.state, Trigger.KEY_RECEIVED)
        msg = KeyMessage.parse(data)
        if msg.recipient != self.index:
            raise WrongRecipient(f"message for member {msg.recipient} delivered to member {self.index}")
        if self.checks.call_binding and msg.session != self.session:
            raise WrongCall(f"key message for session {msg.session.hex()[:8]}…, member {self.index} is in "
                            f"session {self.session.hex()[:8]}…")
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

    def protect(self, payload: bytes, now: float, metadata: bytes = b"", *, kind: str = "video",
                min_ctr: int = 0) -> bytes:
        """Encrypt one frame of ``kind`` ("audio" or "video") with the current send key of that kind
        (SFrameError from the frame layer; ValueError for another kind). ``min_ctr``: the key's
        counter jumps up to it if it is lower (never back), as if that many frames had been sent
        under the key already (Lab 10's counter experiments)."""
        self._advance(now)
        if self.state is not MemberState.ACTIVE:  # every frame asks; ACTIVE takes frames
            next_state(self.state, Trigger.FRAME)
        kid = kid_for(self._send_epoch, self.index, kind)
        ctr = min_ctr if min_ctr and self.context.next_counter(kid) < min_ctr else None
        return self.context.protect(kid, payload, metadata, ctr=ctr)

    def unprotect(self, frame: bytes, now: float, metadata: bytes = b"", *, sender: int | None = None,
                  kind: str | None = None) -> bytes:
        """Decrypt one frame; ``sender`` and ``kind`` are what the stream it arrived on claims (the
        SFU's announcement: untrusted), None when there is no such claim (the KID alone attributes).

        With ``checks.attribution`` the KID's member and kind must equal the claims given, checked
        before decryption (the replay window is untouched); with ``checks.retirement`` an
        authenticated frame retires its sender's older keys of its kind (:meth:`frame_authenticated`).

        Raises:
            KIDStreamMismatch; MalformedHeader, UnknownKeyId (also for a KID not of the lab's
            layout), ReplayedFrame, AuthenticationFailed (SFrameError).
        """
        self._advance(now)
        if self.state is not MemberState.ACTIVE:  # every frame asks; ACTIVE takes frames
            next_state(self.state, Trigger.FRAME)
        if type(frame) is not bytes:
            frame = bytes(byte_view(frame))
        header = decode_header(frame)  # MalformedHeader
        origin = self._origin(header[0])
        if self.checks.attribution and (sender is not None and origin.member != sender
                                        or kind is not None and origin.kind != kind):
            raise KIDStreamMismatch(f"KID names member {origin.member}'s {origin.kind}; the stream is "
                                    f"announced as member {sender}'s {kind}")
        plaintext = self.context.unprotect_decoded(frame, header, metadata)
        self.frame_authenticated(origin.member, origin.kind, origin.epoch, now)
        return plaintext

    def frame_authenticated(self, sender: int, kind: str, epoch: int, now: float) -> None:
        """A frame of ``sender``'s ``kind`` under ``epoch`` has authenticated: with ``checks.retirement``
        delete that sender's receive keys of that kind for every older epoch (the grace period then
        only covers frames in flight before the sender switched). Frame transforms call it."""
        if not self.checks.retirement or sender == self.index or self._floor.get((sender, kind), -1) >= epoch:
            return
        self._floor[sender, kind] = epoch
        floor = min(self._floor.get((sender, k), -1) for k in MEDIA_KINDS)  # keys below it go altogether
        for e in [e for e in self._by_sender.get(sender, ()) if e < epoch]:
            kid = kid_for(e, sender, kind)
            if self.context.has_receive_key(kid):
                self.context.remove_key(kid)
                self._events.append(ev.KeyRetired(self.index, sender, e, kid, now))
            if floor > e:
                self._forget(sender, e)
        self.key_version += 1

    # -- queries --

    def safety_number(self, peer: int) -> SafetyNumber:
        """The safety number of this member and ``peer``, from the user id and identity key pinned for ``peer``."""
        entry = self.peer_entry(peer)
        return safety_number((self.user, self.identity.public), (entry.user, entry.identity))

    def group_code(self, epoch: int | None = None) -> GroupCode:
        """The group code of ``epoch`` (default: the current one), to compare with other members'.

        Raises:
            StaleEpoch: this member has no code for that epoch (not in the call then, or left).
        """
        epoch = self.epoch if epoch is None else epoch
        if epoch not in self._codes:
            raise StaleEpoch(f"member {self.index} has no group code for epoch {epoch}")
        return GroupCode(epoch, self._codes[epoch])

    def peer_entry(self, peer: int) -> RosterEntry:
        """The roster entry this member pinned for ``peer`` (what signalling told it)."""
        if peer not in self._peers:
            raise UnknownMember(f"member {self.index} knows no identity key for member {peer}")
        return self._peers[peer]

    def peer_identity(self, peer: int) -> PublicIdentity:
        """The identity key this member pinned for ``peer``."""
        return self.peer_entry(peer).identity

    @property
    def peers(self) -> tuple[int, ...]:
        """The member indices this member holds channels with, sorted."""
        return tuple(sorted(self._peers))

    @property
    def send_epoch(self) -> int | None:
        """Epoch of the key this member encrypts with now."""
        return self._send_epoch

    def next_timer(self) -> float | None:
        """When :meth:`tick` next has work (a switch-over or a key deletion), for the I/O edge."""
        starts = [self._history[e][2] + self.policy.switch_delay for e in self._by_sender.get(self.index, ())
                  if self._send_epoch is not None and e > self._send_epoch]
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

    def receive_keys(self, sender: int, kind: str) -> dict[int, bytes]:
        """``{epoch: base_key}`` of ``sender`` that a receiver of ``kind`` frames may still use (a copy)."""
        floor = self._floor.get((sender, kind), -1)
        return {e: key for e, key in self._by_sender.get(sender, {}).items() if e >= floor}

    def snapshot(self) -> dict:
        """A deep copy of the whole state (keys included) for tests that check nothing changed."""
        return {
            "state": self.state, "epoch": self.epoch, "join_epoch": self.join_epoch,
            "send_epoch": self._send_epoch, "peers": dict(self._peers), "since": dict(self._since),
            "channels": dict(self._channels), "send_seq": dict(self._send_seq),
            "recv_seq": dict(self._recv_seq), "history": dict(self._history), "codes": dict(self._codes),
            "keys": dict(self._keys), "floor": dict(self._floor),
            "retire_at": dict(self._retire_at), "retired": set(self._retired),
            "send_kids": self.context.send_kids, "receive_kids": self.context.receive_kids,
        }

    # -- roster helpers --

    def _check_epoch_order(self, epoch: int) -> None:
        if epoch <= self.epoch:
            raise StaleEpoch(f"roster update for epoch {epoch}, member {self.index} is already in {self.epoch}")
        if epoch > self.epoch + 1:
            raise FutureEpoch(f"roster update for epoch {epoch}, member {self.index} expects {self.epoch + 1}")

    def _checked_peers(self, update: RosterUpdate, own_join: bool) -> dict[int, tuple[RosterEntry, bytes]]:
        """Validate the roster against what is pinned; return new peers with their pairwise keys."""
        listed = {e.index: e for e in update.members if e.index != self.index}
        if not self.checks.roster:  # the naive members' weaker checks, kept on purpose
            if update.change is Change.JOIN and not own_join and (update.subject not in listed or
                                                                   update.subject in self._peers):
                raise UnknownMember(f"join of member {update.subject} that the roster does not list as new")
            if update.change is Change.LEAVE and update.subject not in self._peers:
                raise UnknownMember(f"leave of member {update.subject}, who is not a peer of member {self.index}")
        new = {}
        for m, entry in listed.items():
            if m in self._peers:
                known = self._peers[m]
                if known != entry if self.checks.roster else known.identity != entry.identity:
                    raise IdentityChanged(f"member {m}'s identity key, user or session changed in epoch {update.epoch}")
            else:
                new[m] = (entry, derive_pairwise_key(self.identity, entry.identity))  # InvalidIdentityKey
        return new

    def _next_code(self, update: RosterUpdate, own_join: bool) -> bytes:
        """The group code of the update's epoch: over its roster, after this member's previous code
        (a newcomer: after the server's ``previous_code`` claim, zeros when it gives none)."""
        if update.epoch == 0:
            prev = NO_CODE
        elif own_join:
            prev = NO_CODE if update.previous_code is None else bytes(update.previous_code)
        else:
            prev = self._codes.get(update.epoch - 1, NO_CODE)
        if len(prev) != GROUP_CODE_LEN:
            raise UnexpectedRoster(f"previous group code of {len(prev)} bytes, expected {GROUP_CODE_LEN}")
        return group_code(update.epoch, update.members, prev)

    def _pin(self, new_peers: dict[int, tuple[RosterEntry, bytes]], update: RosterUpdate) -> None:
        for m, (entry, channel) in new_peers.items():
            self._peers[m], self._channels[m] = entry, channel
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
        return seal_key_message(self._channels[recipient], sender=self.index, recipient=recipient,
                                session=self._peers[recipient].session, seq=seq, epoch=epoch,
                                nonce=self._rand.take(12), payload=key)

    # -- key helpers --

    def _origin(self, kid: int) -> KIDFields:
        try:
            return parse_kid(kid)
        except ValueError as err:
            raise UnknownKeyId(str(err)) from None

    def _check_key_epoch(self, sender: int, epoch: int) -> None:
        if epoch > self.epoch:
            raise FutureEpoch(f"key for epoch {epoch}; member {self.index} is in epoch {self.epoch}")
        if epoch < max(self.join_epoch, self._since[sender]) or epoch in self._retired:
            raise StaleEpoch(f"key for epoch {epoch} from member {sender} is before it could exist or retired")
        if (sender, epoch) in self._keys:
            raise StaleEpoch(f"member {self.index} already holds member {sender}'s key for epoch {epoch}")
        if all(epoch < self._floor.get((sender, k), -1) for k in MEDIA_KINDS):
            raise StaleEpoch(f"member {sender} already sends under a later epoch than {epoch}")

    def _store(self, sender: int, epoch: int, key: bytes, how: str, now: float) -> None:
        kids = tuple(kid_for(epoch, sender, kind) for kind in MEDIA_KINDS)
        self._keys[sender, epoch] = key
        self._by_sender.setdefault(sender, {})[epoch] = key
        if sender == self.index:
            self._own_newest = None
        for kind, kid in zip(MEDIA_KINDS, kids):
            if sender == self.index:
                self.context.add_send_key(kid, key)
            elif epoch >= self._floor.get((sender, kind), -1):
                self.context.add_receive_key(kid, key)
        self.key_version += 1
        self._events.append(ev.KeyRotated(self.index, sender, epoch, kids, how, now))

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

    def _drop(self, sender: int, epoch: int, now: float) -> None:
        """Delete a base key and both its KIDs (events for the KIDs that were installed)."""
        self._forget(sender, epoch)
        for kind in MEDIA_KINDS:
            kid = kid_for(epoch, sender, kind)
            if self.context.has_send_key(kid) or self.context.has_receive_key(kid):
                self.context.remove_key(kid)
                self._events.append(ev.KeyRetired(self.index, sender, epoch, kid, now))
        self.key_version += 1

    def _forget(self, sender: int, epoch: int) -> None:
        """Delete a base key from ``_keys`` and its index (the KIDs are the caller's business)."""
        del self._keys[sender, epoch]
        held = self._by_sender[sender]
        del held[epoch]
        if not held:
            del self._by_sender[sender]
        if sender == self.index:
            self._own_newest = None

    def _advance(self, now: float) -> None:
        if self.state in (MemberState.OUTSIDE, MemberState.LEFT):
            return
        self._switch_send_key(now)
        if self._next_retire > now:  # every frame asks: the quick no
            return
        for epoch in [e for e, t in self._retire_at.items() if t <= now]:
            del self._retire_at[epoch]
            self._retired.add(epoch)
            for sender, e in [k for k in self._keys if k[1] == epoch]:
                self._drop(sender, e, now)
        self._next_retire = min(self._retire_at.values(), default=math.inf)

    def _newest_own(self) -> int:
        """The newest epoch of this member's own base keys, -1 if none (kept until they change)."""
        if self._own_newest is None:
            self._own_newest = max(self._by_sender.get(self.index, ()), default=-1)
        return self._own_newest

    def _switch_send_key(self, now: float) -> None:
        if self._newest_own() <= self._send_epoch and self.state is not MemberState.SWITCHING:
            return  # nothing newer to switch to, nothing to settle (every frame asks)
        own = self._by_sender.get(self.index, {})
        due = [e for e in own if e > self._send_epoch and self._history[e][2] + self.policy.switch_delay <= now]
        if due:
            old, self._send_epoch = self._send_epoch, max(due)
            for kind in MEDIA_KINDS:
                if self.context.has_send_key(kid_for(old, self.index, kind)):
                    self.context.remove_key(kid_for(old, self.index, kind))
            kids = tuple(kid_for(self._send_epoch, self.index, kind) for kind in MEDIA_KINDS)
            self._events.append(ev.SendKeySwitched(self.index, self._send_epoch, kids, now))
        pending = self._newest_own() > self._send_epoch
        if self.state is MemberState.SWITCHING and not pending:
            self.state = next_state(self.state, Trigger.SWITCHED)

    def _wipe(self, now: float) -> None:
        for sender, epoch in list(self._keys):
            self._drop(sender, epoch, now)
        self._channels.clear()
        self._retire_at.clear()
        self._next_retire = math.inf
