"""Attacks on the group key agreement in real calls: a ghost member, a forging ex-member, a replayed key message.

The signalling server is untrusted (:mod:`e2ee_lab.crypto.keys`, "Roster acceptance"), and so is
anyone who was once a member. Each class here is installed on a call's
:class:`~e2ee_lab.sfu.server.SignallingRelay` before anyone connects (``run_call(...,
sfu_setup=...)``, as :mod:`e2ee_lab.attacks.runner` does) and beats the naive members
(:meth:`~e2ee_lab.crypto.keys.RekeyPolicy.naive`); the fixed members' checks stop each:

- :class:`Ghost`: the server adds a member of its own (its identity key, an unused index) to a
  REKEY update. Naive members seal their fresh base keys to it, and the server reads their frames
  (:meth:`Ghost.unprotect` with :func:`~e2ee_lab.attacks.signalling.frames_read`); pairwise safety numbers still match. Stopped
  by the roster check (a REKEY must list exactly the current members: ``roster_mismatch``). A
  ghost that entered by a JOIN shown to some members only passes that check; comparing group
  codes catches it (Lab 04).
- :class:`ExMember`: a member without media who joins with the participants, leaves mid-call and,
  unlike an honest client, keeps every key (it holds every sender's base key of the epochs it was
  in). The SFU, its accomplice, injects frames it seals under its last epoch's KIDs as any
  remaining member (:meth:`ExMember.seal`). Naive receivers accept them until the grace period
  ends; the fixed ones have deleted a sender's old key at that sender's first authenticated
  new-epoch frame (retirement), so a forgery as a sender who has spoken since the switch is an
  unknown KID. (A sender silent since the switch, and the media kind a sender has not sent on the
  new epoch, stay open until the grace period ends.)
- :class:`CrossCallReplay`: the signalling relays, before the genuine one, a key message it
  recorded in an earlier call between the same identity keys (the pairwise key is static-static
  ECDH, so it still opens). A naive recipient installs the earlier call's key and then refuses the
  genuine message as a replay; it can no longer decrypt that sender, and whoever knows the earlier
  key (every member of the earlier call held it) forges as that sender. The fixed recipient
  refuses the recorded message unopened: its session id is not this call's (call binding,
  ``wrong_call``). With identity keys drawn per call the recorded message does not even open
  (``auth``): the attack needs long-term identities, as real devices have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from e2ee_lab.attacks.tamper import forged_vp8_frame
from e2ee_lab.call import CallResult
from e2ee_lab.crypto.keys import (
    MEDIA_KINDS, Change, IdentityKeyPair, KeyAgreementError, KeyMessage, Member, RekeyPolicy, RosterEntry,
    RosterUpdate, derive_pairwise_key, kid_for, new_session, open_key_message, parse_kid,
)
from e2ee_lab.crypto.keys.sender_keys import DEFAULT_SUITE
from e2ee_lab.crypto.sframe import SFrameContext
from e2ee_lab.sfu.server import SignallingRelay

GHOST_USER = "ghost"  #: the user id the ghost's roster entry announces
EX_MEMBER = "mallory"  #: the ex-member's participant name and user id
FORGED_CTR = 1_000_000  #: CTR of the first sealed forgery: above any CTR a sender used in a short call


def _seal_picture(forger: SFrameContext, kid: int, key: bytes, picture_size: tuple[int, int]) -> bytes:
    """A forged VP8 picture sealed under ``kid`` with ``key`` (installed on first use), CTRs from
    :data:`FORGED_CTR` up (above any CTR the real sender used, so no replay window refuses it)."""
    if kid not in forger.send_kids:
        forger.add_send_key(kid, key)
    return forger.protect(kid, forged_vp8_frame(*picture_size), ctr=max(FORGED_CTR, forger.next_counter(kid)))


class _Reader:
    """An SFrame context holding base keys by (sender, epoch), both KIDs each: decrypt-only."""

    def __init__(self) -> None:
        self.keys: dict[tuple[int, int], bytes] = {}
        self.context = SFrameContext(DEFAULT_SUITE)

    def add(self, sender: int, epoch: int, key: bytes) -> None:
        if (sender, epoch) not in self.keys:
            self.keys[sender, epoch] = key
            for kind in MEDIA_KINDS:
                self.context.add_receive_key(kid_for(epoch, sender, kind), key)


# --- a ghost in a REKEY -----------------------------------------------------------------------------


class Ghost:
    """A malicious signalling server's ghost member, added to every REKEY update it sends.

    The ghost's roster entry has the server's own identity key, a fresh session and the next index
    no member has; it is shown to every member, so their views (and group codes) agree. Start the
    REKEY with :meth:`rekey` (the call's roster policy needs a ``rekey_interval``). After the call,
    :meth:`open` reads the key messages the members sealed to the ghost from the relay's log.
    """

    def __init__(self, relay: SignallingRelay, *, user: str = GHOST_USER) -> None:
        self.relay, self.user = relay, user
        self.identity = IdentityKeyPair.generate()
        self.session = new_session()
        self.index: int | None = None
        self.shown_to: list[int] = []  # members whose REKEY listed the ghost
        self.rekeyed_at: float | None = None
        self.reader = _Reader()
        relay.roster_interceptor = self._add

    def _add(self, recipient: int, update: RosterUpdate) -> RosterUpdate:
        if update.change is not Change.REKEY:
            return update
        if self.index is None:
            self.index = self.relay.roster.next_index  # an index no member has (yet)
        self.shown_to.append(recipient)
        entry = RosterEntry(self.index, self.user, self.identity.public, self.session)
        return dataclasses.replace(update, members=update.members + (entry,))

    def rekey(self, now: float) -> None:
        """Ask the roster for a periodic REKEY (``now``: seconds on the roster's clock)."""
        self.rekeyed_at = now
        self.relay.poll(now)

    def open(self) -> dict[tuple[int, int], bytes]:
        """The base keys the members sealed to the ghost, ``{(sender, epoch): key}`` (and keep them)."""
        for message in self.relay.relayed:
            if self.index is None or message.recipient != self.index:
                continue
            try:
                msg = KeyMessage.parse(message.data)
                sender = self.relay.directory.genuine(msg.sender).identity
                key = open_key_message(derive_pairwise_key(self.identity, sender), msg)
            except KeyAgreementError:
                continue
            self.reader.add(msg.sender, msg.epoch, key)
        return dict(self.reader.keys)

    def unprotect(self, frame: bytes) -> bytes:
        """Decrypt a member's frame with a key sealed to the ghost (SFrameError if it has none)."""
        return self.reader.context.unprotect(frame)


# --- an ex-member that keeps its keys -----------------------------------------------------------------


class ExMember:
    """A member with no media that joins right after ``after`` participants, leaves at :meth:`leave`
    and keeps every key; :meth:`seal` forges frames under the last epoch it was in.

    Args:
        relay: the call's signalling relay (set before anyone connects).
        after: how many participants join before it (it joins right after the last of them).
        policy: its member's rekey policy (the call's).
        clock: seconds on the roster's clock.
        picture_size: (width, height) of the forged VP8 picture.
    """

    def __init__(self, relay: SignallingRelay, *, after: int, policy: RekeyPolicy,
                 clock: Callable[[], float], picture_size: tuple[int, int] = (320, 240),
                 user: str = EX_MEMBER) -> None:
        self.relay, self.after, self.policy, self.clock, self.user = relay, after, policy, clock, user
        self.picture_size = picture_size
        self.identity, self.session = IdentityKeyPair.generate(), new_session()
        self.member: Member | None = None
        self.left_at: float | None = None
        self.epoch: int | None = None  # the last epoch it was a member of
        self.keys: dict[tuple[int, int], bytes] = {}  # what it kept: (sender, epoch) -> base key
        self.dropped: dict[str, int] = {}
        self._forger = SFrameContext(DEFAULT_SUITE)
        self._join = relay.join
        relay.join = self._after_join  # type: ignore[method-assign]  # a malicious server's admission

    def _after_join(self, name: str, public, session: bytes, now: float) -> int:
        index = self._join(name, public, session, now)
        if self.member is None and len(self.relay.members) == self.after:
            self.relay.register(self.user, self._on_signal)
            me = self._join(self.user, self.identity.public, self.session, now)
            self.member = Member(me, self.identity, user=self.user, session=self.session, policy=self.policy)
        return index

    def _on_signal(self, message: object) -> None:
        if self.member is None or self.left_at is not None:
            return  # after its leave it ignores everything, its own LEAVE included: it keeps its keys
        now = self.clock()
        try:
            if isinstance(message, RosterUpdate):
                for recipient, data in self.member.handle_roster(message, now):
                    self.relay.relay(self.member.index, recipient, data, now)
            elif isinstance(message, bytes):
                self.member.receive_key_message(message, now)
        except KeyAgreementError as err:
            self.dropped[err.reason] = self.dropped.get(err.reason, 0) + 1

    def leave(self, now: float) -> None:
        """Leave the key agreement at ``now`` (roster clock), keeping every key; no-op if it never joined."""
        if self.member is None or self.left_at is not None:
            return
        self.member.tick(now)
        self.left_at, self.epoch, self.keys = now, self.member.epoch, self.member.base_keys()
        self.relay.leave(self.user, now)

    def ready(self, kid: int | None) -> bool:
        """True once it has left and ``kid`` (a stream's latest KID, as the SFU saw it) is of a later
        epoch than its own: the impersonated sender has spoken since the switch (the review's case)."""
        if self.epoch is None or kid is None:
            return False
        try:
            return parse_kid(kid).epoch > self.epoch
        except ValueError:
            return False

    def seal(self, kid: int | None, ctr: int | None) -> bytes | None:
        """A forged VP8 picture sealed as the member and kind ``kid`` names, under that member's key of
        the last epoch the ex-member was in (``ctr`` ignored: CTRs from :data:`FORGED_CTR` up); None
        before the leave, or without such a key (dtls-srtp: no KID)."""
        if kid is None or self.epoch is None:
            return None
        try:
            origin = parse_kid(kid)
        except ValueError:
            return None
        key = self.keys.get((origin.member, self.epoch))
        if key is None:
            return None
        return _seal_picture(self._forger, kid_for(self.epoch, origin.member, origin.kind), key, self.picture_size)


# --- a key message replayed from an earlier call ----------------------------------------------------


class CrossCallReplay:
    """The signalling relays ``recorded``, a key message of an earlier call between the same identity
    keys, to its recipient just before the first genuine message of the same sender in this call.

    ``leaked``: the sender's base key of ``epoch`` that the recorded key leads to (ratcheted through
    the same joins), as every member of the earlier call held it; :meth:`seal` forges as the sender
    with it. Without it the attack only denies the recipient the sender's frames.
    """

    def __init__(self, relay: SignallingRelay, recorded: bytes, *, leaked: bytes | None = None,
                 epoch: int | None = None, picture_size: tuple[int, int] = (320, 240)) -> None:
        self.recorded, self.message = bytes(recorded), KeyMessage.parse(recorded)  # MalformedMessage
        self.leaked, self.epoch, self.picture_size = leaked, epoch, picture_size
        self.replayed_at: float | None = None
        self._forger = SFrameContext(DEFAULT_SUITE)
        self._relay = relay.relay
        relay.relay = self._relay_first  # type: ignore[method-assign]  # a malicious relay

    def _relay_first(self, sender: int, recipient: int, data: bytes, now: float) -> None:
        if self.replayed_at is None and (sender, recipient) == (self.message.sender, self.message.recipient):
            self.replayed_at = now
            self._relay(sender, recipient, self.recorded, now)
        self._relay(sender, recipient, data, now)

    def seal(self, kid: int | None, ctr: int | None) -> bytes | None:
        """A forged VP8 picture sealed under ``kid`` with the leaked key when ``kid`` is the sender's
        of ``epoch`` (CTRs from :data:`FORGED_CTR` up); else None."""
        if kid is None or self.leaked is None:
            return None
        try:
            origin = parse_kid(kid)
        except ValueError:
            return None
        if origin.member != self.message.sender or origin.epoch != self.epoch:
            return None
        return _seal_picture(self._forger, kid, self.leaked, self.picture_size)


def recorded_key_message(result: CallResult, sender: int, recipient: int,
                         epoch: int) -> tuple[bytes, bytes | None] | None:
    """From an earlier call: the first key message ``sender`` sent ``recipient`` (as the relay logged
    it), and ``sender``'s base key of ``epoch`` if the call's frame keys still held it; None if the
    relay carried no such message."""
    relay = result.relay
    rows = relay[(relay.sender == sender) & (relay.recipient == recipient)]
    if not len(rows):
        return None
    keys = result.frame_keys.keys if result.frame_keys is not None else ()
    leaked = next((k.base_key for k in keys if (k.member, k.epoch) == (sender, epoch)), None)
    return bytes(rows.data.iloc[0]), leaked
