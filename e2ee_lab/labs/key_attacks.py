"""Notebook 04's hostile-server scenarios: what the fixed members' checks stop, and what they do not.

Each function runs the in-memory :class:`~e2ee_lab.crypto.keys.Group` (real X25519, HKDF, AES-GCM
key messages and SFrame frames) once with the fixed members and once with the naive ones
(:meth:`~e2ee_lab.crypto.keys.RekeyPolicy.naive`: the lab's earlier members, every check of
:class:`~e2ee_lab.crypto.keys.KeyChecks` off) and returns one table row per policy or case:

- :func:`ghost_in_rekey`: the server adds a ghost to a REKEY (the roster check);
- :func:`ghost_by_join`, :func:`group_code_table`: a ghost by a JOIN shown to one member only,
  which every member's checks accept and only a comparison of group codes reveals;
- :func:`replay_from_earlier_call`: a key message recorded in an earlier call (call binding);
- :func:`attribution_table`: a frame on another member's stream (attribution by KID), and a member
  forging as another, which nothing here stops (RFC 9605 §6.1.1, §7.2);
- :func:`leaver_forgeries`: a leaver's forgeries after the switch (retirement at a sender's first
  new-epoch frame), and the window that stays open.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from e2ee_lab.crypto.keys import (
    Change, Group, IdentityKeyPair, KeyAgreementError, KeyMessage, RekeyPolicy, RosterEntry, RosterUpdate,
    derive_pairwise_key, kid_for, new_session, open_key_message,
)
from e2ee_lab.crypto.sframe import SFrameContext, SFrameError

#: The default timings with a periodic rekey at 30 s: the REKEY a ghost is slipped into.
POLICY = RekeyPolicy(switch_delay=2.0, grace=10.0, rekey_interval=30.0)
GHOST = 9  #: the ghost's member index (one no member has)
_NAMES = "ABCDEFGH"


def _policies() -> tuple[tuple[str, RekeyPolicy], ...]:
    return ("naive", POLICY.naive()), ("fixed", POLICY)


def _group(policy: RekeyPolicy, seed: int, *, members: int = 3) -> Group:
    group = Group(policy=policy, seed=seed)
    for _ in range(members):
        group.join(0.0)
    return group


def _ghost() -> tuple[IdentityKeyPair, RosterEntry]:
    ghost = IdentityKeyPair.generate()
    return ghost, RosterEntry(GHOST, "ghost", ghost.public, new_session())


def ghost_keys(group: Group, ghost: IdentityKeyPair) -> dict[tuple[int, int], bytes]:
    """The base keys the members sealed to the ghost's index, opened with the ghost's (the server's) key."""
    keys = {}
    for recipient, data in group.relay:
        if recipient != GHOST:
            continue
        msg = KeyMessage.parse(data)
        keys[msg.sender, msg.epoch] = open_key_message(derive_pairwise_key(ghost, group.directory.genuine(
            msg.sender).identity), msg)
    return keys


def _reads(keys: dict[tuple[int, int], bytes], frame: bytes, epoch: int, sender: int) -> bool:
    """Whether the key of (sender, epoch), if among ``keys``, decrypts ``frame`` (a video frame)."""
    if (sender, epoch) not in keys:
        return False
    reader = SFrameContext(Group().suite)
    reader.add_receive_key(kid_for(epoch, sender, "video"), keys[sender, epoch])
    return _accepted(lambda: reader.unprotect(frame)) == "accepted"


def _accepted(attempt) -> str:
    """"accepted", or the reason the frame layer or the member gave for refusing."""
    try:
        attempt()
        return "accepted"
    except (SFrameError, KeyAgreementError) as err:
        return err.reason


def ghost_in_rekey(seed: int = 1) -> pd.DataFrame:
    """A, B and C are in a call; at 30 s the server's periodic REKEY lists a ghost (its own identity
    key) for every member. One row per key policy: who accepted the update, whose fresh keys the
    ghost received, and whether it decrypts A's next frame."""
    rows = []
    for name, policy in _policies():
        group, (ghost, entry) = _group(policy, seed), _ghost()
        group.roster_tamper = lambda r, u, e=entry: (dataclasses.replace(u, members=u.members + (e,))
                                                     if u.change is Change.REKEY else u)
        group.tick(30.0)
        keys = ghost_keys(group, ghost)
        frame = group.send_frame(0, b"A after the rekey", 33.0)
        rows.append({"members": name, "accepted the REKEY": "".join(_NAMES[m] for m, x in group.members.items()
                                                            if x.epoch == group.roster.epoch) or "nobody",
                     "refused (roster_mismatch)": group.dropped.get("roster_mismatch", 0),
                     "keys sealed to the ghost": ", ".join(_NAMES[s] for s, _ in sorted(keys)) or "none",
                     "ghost reads A's next frame": _reads(keys, frame, group.roster.epoch, 0)})
    return pd.DataFrame(rows).set_index("members")


def ghost_by_join(seed: int = 1) -> tuple[Group, pd.DataFrame]:
    """A split view: at 30 s the server tells A that a ghost joined (a JOIN, so A sends it A's key)
    and tells B and C that the epoch is a plain REKEY. Every member's checks pass, fixed members
    included. Returns the group (for :func:`~e2ee_lab.labs.keys.safety_table` and
    :func:`group_code_table`) and what the ghost got."""
    group, (ghost, entry) = _group(POLICY, seed), _ghost()

    def split_view(recipient: int, update: RosterUpdate) -> RosterUpdate:
        if recipient == 0 and update.change is Change.REKEY:
            return dataclasses.replace(update, change=Change.JOIN, subject=GHOST, members=update.members + (entry,))
        return update

    group.roster_tamper = split_view
    group.tick(30.0)
    keys = ghost_keys(group, ghost)
    frame = group.send_frame(0, b"A after the rekey", 33.0)
    table = pd.DataFrame([{"updates refused (roster_mismatch)": group.dropped.get("roster_mismatch", 0),
                           "keys sealed to the ghost": ", ".join(_NAMES[s] for s, _ in sorted(keys)) or "none",
                           "ghost reads A's next frame": _reads(keys, frame, group.roster.epoch, 0)}])
    return group, table


def group_code_table(group: Group) -> pd.DataFrame:
    """Each member's group code of the current epoch (6 groups of 5 digits) and whether it equals A's."""
    codes = {m: member.group_code() for m, member in sorted(group.members.items())}
    first = codes[min(codes)]
    return pd.DataFrame([{"member": _NAMES[m], "epoch": c.epoch, "group code": str(c),
                          "same as A's": c.code == first.code} for m, c in codes.items()]).set_index("member")


def replay_from_earlier_call() -> pd.DataFrame:
    """Alice and Bob meet twice with the same identity keys; in the second call the signalling
    relays Alice's key message of the first call to Bob just before the genuine one. One row per key
    policy, and one for naive members whose identity keys are drawn per call: what Bob did with
    each message, and whose key he then holds for Alice."""
    rows = []
    cases = (*((name, policy, True) for name, policy in _policies()),
             ("naive, identity keys new per call", POLICY.naive(), False))
    for name, policy, reuse in cases:
        alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
        first = Group(policy=policy)
        first.join(0.0, identity=alice if reuse else None), first.join(0.0, identity=bob if reuse else None)
        recorded, earlier = first.relay[0][1], first.members[0].base_keys()[0, 1]  # Alice -> Bob, epoch 1
        second, replayed = Group(policy=policy), []

        def replay_first(recipient: int, data: bytes, group: Group = second, done: list = replayed) -> bytes:
            if recipient == 1 and not done:
                before = dict(group.dropped)
                done.append("installed" if group.deliver(1, recorded, 0.0) else
                            next(k for k in group.dropped if group.dropped[k] != before.get(k, 0)))
            return data

        second.interceptor = replay_first
        second.join(0.0, identity=alice), second.join(0.0, identity=bob)
        held = second.members[1].base_keys().get((0, 1))
        rows.append({"members": name, "recorded message": replayed[0],
                     "genuine message": "refused (replay)" if second.dropped.get("replay") else "installed",
                     "Bob holds Alice's key of": "the earlier call" if held == earlier else "this call"})
    return pd.DataFrame(rows).set_index("members")


def _forge(key: bytes, epoch: int, sender: int, kind: str = "video", *, ctr: int = 10**6) -> bytes:
    """A frame sealed under ``sender``'s KID of ``epoch`` and ``kind`` with base key ``key``."""
    forger = SFrameContext(Group().suite)
    kid = kid_for(epoch, sender, kind)
    forger.add_send_key(kid, key)
    return forger.protect(kid, b"forged", ctr=ctr)


def attribution_table(seed: int = 1) -> pd.DataFrame:
    """Two ways to show B a frame as A's. The SFU forwards B's own frame on A's stream: the KID names
    B, so the fixed receiver drops it (attribution by KID). Member C seals a frame under A's KID
    with A's base key, which every member holds, on A's stream: both receivers accept it."""
    rows = []
    for name, policy in _policies():
        group = _group(policy, seed)
        epoch = group.members[2].epoch
        b_frame = group.send_frame(1, b"B's video", 5.0)
        by_c = _forge(group.members[2].base_keys()[0, epoch], epoch, 0)
        rows.append({"members": name,
                     "the SFU moves B's frame onto A's stream":
                         _accepted(lambda: group.receive_frame(2, b_frame, 5.0, sender=0, kind="video")),
                     "member C forges a frame as A":
                         _accepted(lambda: group.receive_frame(1, by_c, 5.0, sender=0, kind="video"))})
    return pd.DataFrame(rows).set_index("members")


def leaver_forgeries(seed: int = 1) -> pd.DataFrame:
    """B leaves at 10 s keeping every key (the senders switch at 12 s; old keys kept until 22 s). A
    sends a video frame at 12.5 s, which C authenticates; C sends nothing. B then forges frames under
    its epoch-2 keys. One row per forgery, one column per key policy: what C (or A) did with it."""
    cases = (("as A's video at 20 s (A has spoken since the switch)", 0, 2, "video", 20.0),
             ("as C's video at 20 s (C silent since the switch)", 2, 0, "video", 20.0),
             ("as A's audio at 20 s (A sent no audio since)", 0, 2, "audio", 20.0),
             ("as C's video at 22.5 s (after the grace period)", 2, 0, "video", 22.5))
    columns: dict[str, list[str]] = {}
    for name, policy in _policies():
        group = _group(policy, seed)
        group.leave(1, 10.0)
        spoken = group.send_frame(0, b"A on the new key", 12.5)
        group.receive_frame(2, spoken, 12.5, sender=0, kind="video")
        old = group.former[1].base_keys()
        columns[f"{name} members"] = [_accepted(lambda s=sender, r=receiver, k=kind, t=at, i=i: group.receive_frame(
            r, _forge(old[s, 2], 2, s, k, ctr=10**6 + i), t, sender=s, kind=k))
            for i, (_, sender, receiver, kind, at) in enumerate(cases)]
    return pd.DataFrame(columns, index=pd.Index([c[0] for c in cases], name="B's forgery"))
