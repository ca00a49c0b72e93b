"""Group key agreement (e2ee_lab.crypto.keys): identities, pairwise channel, sender keys, epochs,
rekey on join/leave, bad key messages, safety numbers and the key-substitution MITM.

Frames go through the real SFrameContext of e2ee_lab.crypto.sframe; no crypto is mocked.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from e2ee_lab.crypto import events as ev
from e2ee_lab.crypto.keys import (
    HEADER_LEN, MITM, NO_CODE, TRANSITIONS, Change, Curve, FutureEpoch, Group, GroupCode, GroupCodeMismatch,
    IdentityChanged, IdentityKeyPair, IllegalTransition, InvalidIdentityKey, KeyAgreementError, KeyChecks,
    KeyDirectory, KeyMessage, KIDStreamMismatch, MalformedMessage, Member, MemberState, MessageTampered,
    PublicIdentity, RekeyPolicy, ReplayedMessage, Roster, RosterEntry, RosterUpdate, SafetyNumberMismatch,
    StaleEpoch, Trigger, UnexpectedRoster, UnknownMember, WrongCall, WrongRecipient, derive_pairwise_key,
    fingerprint, frame_origin, group_code, kid_for, new_session, next_state, open_key_message, parse_kid, ratchet,
    safety_number, seal_key_message,
)
from e2ee_lab.crypto.sframe import (
    CipherSuite, ReplayedFrame, SFrameContext, SFrameError, UnknownKeyId, decode_header, derive_key_salt,
)
from e2ee_lab.labs.keys import simulate_timeline

CURVES = pytest.mark.parametrize("curve", list(Curve), ids=lambda c: c.value)
POLICY = RekeyPolicy(switch_delay=2.0, grace=10.0, rekey_interval=None)


def _group(curve: Curve = Curve.X25519, n: int = 3, *, policy: RekeyPolicy = POLICY, seed=7) -> Group:
    group = Group(curve=curve, policy=policy, seed=seed)
    for _ in range(n):
        group.join(0.0)
    return group


def _snapshots(group: Group) -> dict:
    return {i: m.snapshot() for i, m in {**group.former, **group.members}.items()}


def _can_read(holder: Member, frame: bytes) -> bool:
    """Whether ``holder`` can read ``frame`` with any key of that sender it has or had: as is, or
    ratcheted forward to the frame's epoch (a leaver or joiner trying harder than its context)."""
    epoch, sender, kind = frame_origin(frame)
    for (owner, kept), key in holder.snapshot()["keys"].items():
        candidates = [key]
        for _ in range(epoch - kept):
            candidates.append(ratchet(candidates[-1], holder.suite))
        for candidate in candidates if owner == sender else []:
            context = SFrameContext(holder.suite)
            context.add_receive_key(kid_for(epoch, sender, kind), candidate)
            if _try(context, frame):
                return True
    return False


def _decrypts(group: Group, receiver: int, frame: bytes, now: float) -> bool:
    try:
        group.receive_frame(receiver, frame, now)
        return True
    except UnknownKeyId:
        return False


def _forge(group: Group, sender: int, recipient: int, *, epoch: int, seq: int | None = None,
           payload: bytes | None = None) -> bytes:
    """A correctly sealed message from ``sender`` as its real owner could write it."""
    author, reader = group.members[sender], group.members[recipient]
    key = derive_pairwise_key(author.identity, reader.identity.public)
    seq = reader.snapshot()["recv_seq"].get(sender, 0) + 1 if seq is None else seq
    payload = bytes(range(32)) if payload is None else payload
    return seal_key_message(key, sender=sender, recipient=recipient, session=reader.session, seq=seq,
                            epoch=epoch, nonce=b"\x01" * 12, payload=payload)


# --- identities and the pairwise channel -------------------------------------------------------


@CURVES
def test_public_key_formats_match_webcrypto_raw_export(curve):
    public = IdentityKeyPair.generate(curve).public
    if curve is Curve.X25519:
        assert len(bytes(public)) == 32
    else:
        assert len(bytes(public)) == 65 and bytes(public)[0] == 0x04
    assert PublicIdentity(curve, bytes(public)) == public


@pytest.mark.parametrize("curve, data", [(Curve.X25519, b"\x01" * 31), (Curve.P256, b"\x04" + b"\x00" * 64),
                                         (Curve.P256, b"\x02" * 33 + b"\x00")], ids=["x25519-short", "p256-off-curve",
                                                                                    "p256-bad-length"])
def test_bad_public_key_is_rejected(curve, data):
    with pytest.raises(InvalidIdentityKey):
        PublicIdentity(curve, data)


@CURVES
def test_both_ends_derive_the_same_pairwise_key_and_other_pairs_differ(curve):
    a, b, c = (IdentityKeyPair.generate(curve) for _ in range(3))
    assert a.exchange(b.public) == b.exchange(a.public)
    ab = derive_pairwise_key(a, b.public)
    assert ab == derive_pairwise_key(b, a.public) and len(ab) == 16
    assert ab != derive_pairwise_key(a, c.public)


def test_pairwise_key_is_hkdf_sha256_over_ecdh_with_sorted_public_keys():
    a, b = IdentityKeyPair.generate(seed=1), IdentityKeyPair.generate(seed=2)
    low, high = sorted((bytes(a.public), bytes(b.public)))
    expected = HKDF(hashes.SHA256(), 16, salt=b"", info=b"e2ee-lab 1.0 pairwise key " + low + high)
    assert derive_pairwise_key(a, b.public) == expected.derive(a.exchange(b.public))


def test_curves_do_not_mix():
    with pytest.raises(InvalidIdentityKey):
        IdentityKeyPair.generate(Curve.X25519).exchange(IdentityKeyPair.generate(Curve.P256).public)


@CURVES
def test_seeded_identity_is_reproducible(curve):
    assert IdentityKeyPair.generate(curve, seed=5).public == IdentityKeyPair.generate(curve, seed=5).public
    assert IdentityKeyPair.generate(curve, seed=5).public != IdentityKeyPair.generate(curve, seed=6).public


# --- sender keys, KIDs, ratchet -----------------------------------------------------------------


@given(st.integers(0, 2**32 - 1), st.integers(0, 255), st.sampled_from(["audio", "video"]))
def test_kid_round_trip(epoch, member, kind):
    assert parse_kid(kid_for(epoch, member, kind)) == (epoch, member, kind)


def test_kid_layout_is_epoch_kind_nibble_member_byte():
    assert kid_for(1, 2, "video") == 0x1102 and kid_for(1, 2, "audio") == 0x1002
    assert kid_for(0, 0, "audio") == 0 and kid_for(0xABCDEF12, 0x34, "video") == 0xABCDEF12134


@pytest.mark.parametrize("epoch, member, kind", [(0, 256, "audio"), (0, -1, "audio"), (-1, 0, "video"),
                                                 (2**32, 0, "video"), (0, 0, "screen"), (0, 0, 1)])
def test_kid_out_of_range(epoch, member, kind):
    with pytest.raises(ValueError):
        kid_for(epoch, member, kind)


@pytest.mark.parametrize("kid", [0x200, 0xF05, 0x1_2FF, 2**44, -1], ids=lambda k: hex(k))
def test_parse_kid_rejects_a_kid_of_another_layout(kid):
    with pytest.raises(ValueError, match="layout"):
        parse_kid(kid)


@pytest.mark.parametrize("suite", [CipherSuite.AES_128_GCM_SHA256_128, CipherSuite.AES_256_GCM_SHA512_128],
                         ids=lambda s: s.name)
def test_ratchet_is_rfc9605_5_1(suite):
    key = bytes(range(suite.nh))
    prk = HKDF.extract(suite.hash_algorithm(), b"", key)
    expected = HKDFExpand(suite.hash_algorithm(), suite.nh, b"SFrame 1.0 Ratchet").derive(prk)
    assert ratchet(key, suite) == expected and len(expected) == suite.nh


# --- the wire record --------------------------------------------------------------------------------


SESSION = bytes(range(16))


def test_key_message_round_trip_and_layout():
    data = seal_key_message(b"k" * 16, sender=3, recipient=9, session=SESSION, seq=0x0102, epoch=0x0A0B0C0D,
                            nonce=b"n" * 12, payload=b"p" * 32)
    msg = KeyMessage.parse(bytearray(data))
    assert (msg.sender, msg.recipient, msg.session, msg.seq, msg.epoch, msg.nonce) == \
        (3, 9, SESSION, 0x0102, 0x0A0B0C0D, b"n" * 12)
    assert bytes(msg) == data and len(data) == HEADER_LEN + 32 + 16 and HEADER_LEN == 43
    assert data[:HEADER_LEN].hex() == ("020309" + SESSION.hex() + "0000000000000102" + "0a0b0c0d"
                                       + (b"n" * 12).hex())
    assert KeyMessage.parse(memoryview(data)) == msg == KeyMessage.parse(data)
    key = AESGCM(b"k" * 16)
    assert key.decrypt(b"n" * 12, data[HEADER_LEN:], data[:HEADER_LEN]) == b"p" * 32  # AAD = bytes 0..42


@pytest.mark.parametrize("data, field", [(b"", "at least"), (b"\x02" * 58, "at least"),
                                         (b"\x01" + b"\x00" * 60, "version"), (b"\x03" + b"\x00" * 60, "version")],
                         ids=["empty", "short", "version-1", "version-3"])
def test_malformed_key_message(data, field):
    with pytest.raises(MalformedMessage, match=field):
        KeyMessage.parse(data)


@pytest.mark.parametrize("field, value, error", [
    ("sender", 256, ValueError), ("recipient", -1, ValueError), ("seq", 2**64, ValueError),
    ("epoch", 2**32, ValueError), ("session", b"s" * 15, ValueError), ("nonce", b"n" * 13, ValueError),
    ("sender", "3", TypeError), ("seq", 1.0, TypeError), ("session", "s" * 16, TypeError),
    ("epoch", True, TypeError)])
def test_key_message_fields_are_checked(field, value, error):
    fields = dict(sender=3, recipient=9, session=SESSION, seq=1, epoch=0, nonce=b"n" * 12, payload=b"p" * 32)
    fields[field] = value
    with pytest.raises(error):
        seal_key_message(b"k" * 16, **fields)


def test_key_message_accepts_any_bytes_like_and_rejects_other_types():
    data = seal_key_message(b"k" * 16, sender=1, recipient=2, session=bytearray(SESSION), seq=1, epoch=0,
                            nonce=memoryview(b"n" * 12), payload=b"p" * 32)
    assert KeyMessage.parse(data).session == SESSION
    with pytest.raises(TypeError):
        KeyMessage.parse("not bytes")


# --- membership changes, end to end with SFrame --------------------------------------------------


@CURVES
def test_leaver_reads_only_frames_sent_before_its_leave_took_effect(curve):
    group = _group(curve)
    group.leave(1, 10.0)
    frames = {t: group.send_frame(s, b"media", t) for s in (0, 2) for t in (10.0, 11.0, 11.9, 12.0, 13.0, 40.0)}
    for t in (10.0, 11.0, 11.9):
        assert group.former[1].context.unprotect(frames[t])  # the switch-over delay is its window
    for t in (12.0, 13.0, 40.0):
        with pytest.raises(UnknownKeyId):
            group.former[1].context.unprotect(frames[t])
        assert not _can_read(group.former[1], frames[t])  # ratcheting what it kept does not help


@CURVES
def test_joiner_reads_no_frame_sent_before_its_join(curve):
    group = _group(curve)
    before = [group.send_frame(s, b"old", t) for s in (0, 1, 2) for t in (2.0, 5.0, 9.9)]
    joiner = group.join(10.0)
    assert not any(_decrypts(group, joiner, f, 10.0) or _can_read(group.members[joiner], f) for f in before)
    assert not any(_decrypts(group, joiner, group.send_frame(s, b"gap", 11.0), 11.0) for s in (0, 1, 2))
    after = [group.send_frame(s, b"new", 12.0) for s in (0, 1, 2)]
    assert all(_decrypts(group, joiner, f, 12.0) for f in after)
    assert all(_decrypts(group, r, group.send_frame(joiner, b"hi", 10.5), 10.5) for r in (0, 1, 2))


@pytest.mark.parametrize("change", ["join", "leave"])
def test_remaining_members_decrypt_across_a_change_within_grace(change):
    group = _group()
    frames = [(9.0, group.send_frame(0, b"x", 9.0))]
    group.join(10.0) if change == "join" else group.leave(1, 10.0)
    frames += [(t, group.send_frame(0, b"x", t)) for t in (10.0, 11.0, 11.75)]
    late = group.send_frame(0, b"y", 11.9)  # still the old key: in flight past its retirement at 22 s
    frames.append((12.0, group.send_frame(0, b"x", 12.0)))
    assert frame_origin(late)[0] == 2 and frame_origin(frames[-1][1])[0] == 3
    for t, frame in frames:
        assert group.receive_frame(2, frame, t + 10.0) == b"x"  # arrives exactly `grace` late
    assert not _decrypts(group, 2, late, 22.0)


def test_join_ratchets_and_leave_draws_fresh_keys():
    group = _group()
    keys = group.members[0].snapshot()["keys"]
    group.join(10.0)
    after_join = group.members[0].snapshot()["keys"]
    assert after_join[0, 3] == ratchet(keys[0, 2]) and after_join[1, 3] == ratchet(keys[1, 2])
    group.leave(3, 20.0)
    after_leave = group.members[0].snapshot()["keys"]
    assert after_leave[0, 4] != ratchet(after_join[0, 3]) and after_leave[1, 4] != ratchet(after_join[1, 3])
    assert {(3, 4)}.isdisjoint(after_leave) and not group.dropped


def test_periodic_rekey_draws_fresh_keys_and_everyone_follows():
    group = _group(policy=RekeyPolicy(switch_delay=2.0, grace=10.0, rekey_interval=30.0))
    group.tick(29.9)
    assert group.roster.epoch == 2
    group.tick(30.0)
    assert group.epochs[-1][2] is Change.REKEY and group.members[1].epoch == 3
    old, new = group.members[0].snapshot()["keys"][0, 2], group.members[0].snapshot()["keys"][0, 3]
    assert new != ratchet(old)
    frame = group.send_frame(0, b"z", 32.0)
    assert frame_origin(frame) == (3, 0, "video") and group.receive_frame(2, frame, 32.0) == b"z"


def test_late_key_message_is_ratcheted_into_later_join_epochs():
    policy = RekeyPolicy(rekey_interval=None)
    roster, ids, members, held = Roster(KeyDirectory(), policy), {}, {}, []

    def admit(now):
        identity, session = IdentityKeyPair.generate(), new_session()
        index, updates = roster.join(f"user {roster.next_index}", identity.public, session, now)
        members[index] = Member(index, identity, user=f"user {index}", session=session, policy=policy)
        return [msg for m in sorted(updates) for msg in members[m].handle_roster(updates[m], now)]

    def deliver(messages, now):
        for recipient, data in messages:
            members[recipient].receive_key_message(data, now)

    deliver(admit(0.0), 0.0), deliver(admit(0.0), 0.0), deliver(admit(0.0), 0.0)
    updates = roster.leave(2, 5.0)
    held = [m for i in (0, 1) for m in members[i].handle_roster(updates[i], 5.0)]  # epoch 3, in flight
    deliver(admit(6.0), 6.0)  # epoch 4: a join; member 1 lacks 0's epoch-3 key to ratchet from
    assert (0, 4) not in members[1].snapshot()["keys"]
    deliver([m for m in held if m[0] != 2], 6.5)
    assert members[1].snapshot()["keys"][0, 4] == ratchet(members[0].snapshot()["keys"][0, 3])
    frame = members[0].protect(b"late", 8.0)
    assert frame_origin(frame) == (4, 0, "video") and members[1].unprotect(frame, 8.0) == b"late"


def test_key_messages_swapped_in_transit_lose_the_older_one_and_change_nothing():
    # The pairwise channel assumes in-order delivery per sender (the signalling relay is ordered):
    # one counter is the whole replay defence, so an older message arriving after a newer one is
    # refused as a replay. Its epoch is lost for that receiver; the newer epoch works.
    policy = RekeyPolicy(switch_delay=0.5, grace=10.0, rekey_interval=None)
    roster, members = Roster(KeyDirectory(), policy), {}
    for _ in range(4):
        identity, session = IdentityKeyPair.generate(), new_session()
        index, updates = roster.join(f"user {roster.next_index}", identity.public, session, 0.0)
        members[index] = Member(index, identity, user=f"user {index}", session=session, policy=policy)
        for recipient, data in [msg for m in sorted(updates) for msg in members[m].handle_roster(updates[m], 0.0)]:
            members[recipient].receive_key_message(data, 0.0)

    def from_0_to_1(updates, now):
        out = {m: members[m].handle_roster(updates[m], now) for m in sorted(updates)}
        return next(data for recipient, data in out[0] if recipient == 1)

    older = from_0_to_1(roster.leave(3, 5.0), 5.0)
    newer = from_0_to_1(roster.leave(2, 5.1), 5.1)
    members[1].receive_key_message(newer, 5.2)
    before = members[1].snapshot()
    with pytest.raises(ReplayedMessage, match="is not above"):
        members[1].receive_key_message(older, 5.2)
    assert members[1].snapshot() == before
    frame = members[0].protect(b"after the swap", 6.0)
    assert members[1].unprotect(frame, 6.0) == b"after the swap"


def test_a_rejected_message_changes_only_what_time_changes():
    # receive_key_message lets time pass first (a due key switch or deletion happens at `now`
    # whatever the message); the message itself, when rejected, changes nothing.
    twin_a, twin_b = _group(seed=11), _group(seed=11)
    bad = _bad_messages(twin_a)["tampered-ciphertext"][1]
    with pytest.raises(MessageTampered):
        twin_a.members[1].receive_key_message(bad, 3.0)
    twin_b.members[1].tick(3.0)
    assert twin_a.members[1].snapshot() == twin_b.members[1].snapshot()


# --- nothing secret crosses the relay ------------------------------------------------------------


def _all_secrets(group: Group, history: list[dict]) -> set[bytes]:
    secrets = {m.identity.private_bytes() for m in {**group.members, **group.former}.values()}
    for snap in history:
        secrets |= set(snap["channels"].values())
        for (sender, epoch), base in snap["keys"].items():
            for kind in ("audio", "video"):
                secrets |= {base, *derive_key_salt(group.suite, kid_for(epoch, sender, kind), base)}
    return secrets


@CURVES
def test_relay_carries_no_key_bytes(curve):
    group = Group(curve=curve, policy=RekeyPolicy(rekey_interval=15.0), seed=11)
    history, now = [], 0.0
    steps = [lambda t: group.join(t)] * 3 + [lambda t: group.join(t), lambda t: group.leave(1, t),
                                             lambda t: group.tick(t), lambda t: group.leave(3, t)]
    for step in steps:
        now += 8.0
        step(now)
        for sender in group.members:
            group.send_frame(sender, b"frame payload", now + 3.0)
        history += _snapshots(group).values()
    secrets = _all_secrets(group, history)
    relayed = group.sfu_bytes()
    assert len(group.relay) > 10 and len(group.frames) > 10 and len(secrets) > 40
    assert not [s.hex() for s in secrets if s in relayed]


# --- bad key messages: typed errors, nothing changes ---------------------------------------------


def _bad_messages(group: Group) -> dict[str, tuple[int, bytes, type]]:
    delivered_to_1 = next(data for r, data in group.relay if r == 1)
    good = _forge(group, 0, 1, epoch=2, seq=50)
    tampered = bytearray(good)
    tampered[-1] ^= 1
    stranger = KeyMessage(77, 1, group.members[1].session, 1, 2, b"\x00" * 12, b"\x00" * 48)
    other_call = bytearray(good)
    other_call[3:19] = bytes(16)
    return {
        "wrong-recipient": (2, good, WrongRecipient),
        "wrong-call": (1, bytes(other_call), WrongCall),
        "tampered-ciphertext": (1, bytes(tampered), MessageTampered),
        "tampered-sender": (1, good[:1] + b"\x02" + good[2:], MessageTampered),
        "tampered-seq": (1, good[:26] + b"\x33" + good[27:], MessageTampered),
        "tampered-epoch": (1, good[:30] + b"\x03" + good[31:], MessageTampered),
        "tampered-nonce": (1, good[:31] + b"\x00" + good[32:], MessageTampered),
        "replayed": (1, delivered_to_1, ReplayedMessage),
        "sequence-zero": (1, _forge(group, 0, 1, epoch=2, seq=0), ReplayedMessage),
        "stale-epoch-already-held": (1, _forge(group, 0, 1, epoch=2), StaleEpoch),
        "stale-epoch-before-join": (2, _forge(group, 0, 2, epoch=1), StaleEpoch),
        "future-epoch": (1, _forge(group, 0, 1, epoch=3), FutureEpoch),
        "unknown-sender": (1, bytes(stranger), UnknownMember),
        "short-key": (1, _forge(group, 0, 1, epoch=2, payload=b"k" * 16), MalformedMessage),
        "truncated": (1, good[:30], MalformedMessage),
    }


@pytest.mark.parametrize("case", ["wrong-recipient", "wrong-call", "tampered-ciphertext", "tampered-sender",
                                  "tampered-seq", "tampered-epoch", "tampered-nonce", "replayed", "sequence-zero",
                                  "stale-epoch-already-held", "stale-epoch-before-join", "future-epoch",
                                  "unknown-sender", "short-key", "truncated"])
def test_bad_key_message_raises_its_error_and_changes_nothing(case):
    group = _group()
    recipient, data, error = _bad_messages(group)[case]
    before = _snapshots(group)
    with pytest.raises(error) as info:
        group.members[recipient].receive_key_message(data, 0.0)
    assert isinstance(info.value, KeyAgreementError) and info.value.reason
    assert _snapshots(group) == before


def test_relay_counts_a_rejected_message_and_carries_on():
    group = _group()
    _, data, _ = _bad_messages(group)["replayed"]
    assert group.deliver(1, data, 0.0) is False
    assert group.dropped == {"replay": 1}
    assert isinstance(group.events[-1], ev.KeyMessageRejected) and group.events[-1].reason == "replay"
    assert group.deliver(9, data, 0.0) is False and group.dropped["no_such_member"] == 1


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_flipped_bit_is_rejected_without_a_state_change(data):
    group = _group(seed=3)
    message = bytearray(_forge(group, 0, 1, epoch=0))
    index = data.draw(st.integers(0, len(message) - 1))
    message[index] ^= 1 << data.draw(st.integers(0, 7))
    before = _snapshots(group)
    with pytest.raises(KeyAgreementError):
        group.members[1].receive_key_message(bytes(message), 0.0)
    assert _snapshots(group) == before


def test_key_message_after_leaving_is_an_illegal_transition():
    group = _group()
    updates = group.roster.leave(2, 5.0)
    member = group.members.pop(2)
    member.handle_roster(updates[2], 5.0)
    assert member.state is MemberState.LEFT and not member.context.receive_kids
    before = member.snapshot()
    with pytest.raises(IllegalTransition, match="KEY_RECEIVED.*LEFT"):
        member.receive_key_message(_forge(group, 0, 1, epoch=3), 5.0)
    assert member.snapshot() == before


def _entries(group: Group, indices=None) -> tuple[RosterEntry, ...]:
    """The genuine roster entries of ``indices`` (default: every current member)."""
    indices = sorted(group.members) if indices is None else indices
    return tuple(group.directory.genuine(i) for i in indices)


def _stranger(index: int, user: str = "mallory") -> RosterEntry:
    return RosterEntry(index, user, IdentityKeyPair.generate().public, new_session())


def test_roster_out_of_order_or_with_a_swapped_identity_is_rejected():
    group = _group()
    member, fake = group.members[0], _stranger(3)
    roster = _entries(group) + (fake,)
    before = member.snapshot()
    for epoch, error in [(2, StaleEpoch), (4, FutureEpoch)]:
        with pytest.raises(error):
            member.handle_roster(RosterUpdate(epoch, Change.JOIN, 3, roster), 1.0)
    for field, value in [("identity", fake.identity), ("user", "not bob"), ("session", new_session())]:
        changed = (roster[0], dataclasses.replace(roster[1], **{field: value}), roster[2], fake)
        with pytest.raises(IdentityChanged):
            member.handle_roster(RosterUpdate(3, Change.JOIN, 3, changed), 1.0)
    other_curve = roster[:3] + (dataclasses.replace(fake, identity=IdentityKeyPair.generate(Curve.P256).public),)
    with pytest.raises(InvalidIdentityKey):
        member.handle_roster(RosterUpdate(3, Change.JOIN, 3, other_curve), 1.0)
    for update in (RosterUpdate(3, Change.JOIN, 4, roster), RosterUpdate(3, Change.JOIN, 1, roster),
                   RosterUpdate(3, Change.LEAVE, 5, roster[:3])):
        with pytest.raises(UnexpectedRoster):
            member.handle_roster(update, 1.0)
    assert member.snapshot() == before


def test_the_naive_members_keep_their_weaker_roster_checks():
    group = _group(policy=POLICY.naive())
    member, roster = group.members[0], _entries(group)
    before = member.snapshot()
    for update in (RosterUpdate(3, Change.JOIN, 4, roster), RosterUpdate(3, Change.JOIN, 1, roster),
                   RosterUpdate(3, Change.LEAVE, 5, roster)):
        with pytest.raises(UnknownMember):
            member.handle_roster(update, 1.0)
    assert member.snapshot() == before


# --- the state machine ------------------------------------------------------------------------------


def test_illegal_transition_names_event_and_state():
    assert (MemberState.LEFT, Trigger.FRAME) not in TRANSITIONS
    with pytest.raises(IllegalTransition, match="FRAME.*LEFT"):
        next_state(MemberState.LEFT, Trigger.FRAME)
    member = Member(0, IdentityKeyPair.generate())
    with pytest.raises(IllegalTransition, match="FRAME.*OUTSIDE"):
        member.protect(b"x", 0.0)


def test_member_goes_active_switching_active_left():
    group = _group(n=2)
    member = group.members[0]
    assert member.state is MemberState.SWITCHING and member.next_timer() == 2.0
    group.tick(2.0)
    assert member.state is MemberState.ACTIVE and member.send_epoch == 1
    group.join(5.0)
    assert member.state is MemberState.SWITCHING and member.next_timer() == 7.0
    group.tick(7.0)
    assert member.state is MemberState.ACTIVE
    kinds = [type(e) for e in group.events if getattr(e, "member", None) == 0]
    assert kinds.count(ev.EpochStarted) == 3 and kinds.count(ev.SendKeySwitched) == 2


@pytest.mark.parametrize("kwargs", [{"switch_delay": -1.0}, {"grace": -0.5}, {"rekey_interval": 0.0}])
def test_policy_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        RekeyPolicy(**kwargs)


# --- safety numbers and the key-substitution MITM -------------------------------------------------


def test_safety_number_is_12_groups_of_5_digits_and_order_independent():
    a, b = ("alice", IdentityKeyPair.generate(seed=1).public), ("bob", IdentityKeyPair.generate(seed=2).public)
    number = safety_number(a, b)
    assert number == safety_number(b, a)
    assert len(number.groups()) == 12 and all(len(g) == 5 and g.isdigit() for g in number.groups())
    number.verify(str(safety_number(b, a)))
    with pytest.raises(SafetyNumberMismatch):
        number.verify(safety_number(a, ("bob", IdentityKeyPair.generate(seed=3).public)))


def test_fingerprint_is_signals_iterated_sha512_over_key_and_user():
    key = IdentityKeyPair.generate(seed=1).public
    digest = b"\x00\x00" + bytes(key) + "alice".encode()
    for _ in range(5200):
        h = hashes.Hash(hashes.SHA512())
        h.update(digest + bytes(key))
        digest = h.finalize()
    expected = "".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))
    assert fingerprint("alice", key) == expected


def test_safety_number_changes_with_the_user_id():
    # Finding 8: a number over the two keys alone stays the same when signalling renames a member.
    a, b = IdentityKeyPair.generate(seed=1).public, IdentityKeyPair.generate(seed=2).public
    genuine = safety_number(("alice", a), ("bob", b))
    with pytest.raises(SafetyNumberMismatch):
        genuine.verify(safety_number(("alice", a), ("b0b", b)))
    assert fingerprint("bob", b) != fingerprint("bo", b) != fingerprint("b", b)


@pytest.mark.parametrize("user, error", [("", ValueError), ("x" * 65, ValueError), ("é" * 33, ValueError),
                                         (b"alice", TypeError), (None, TypeError)])
def test_user_ids_are_1_to_64_bytes_of_utf8(user, error):
    key = IdentityKeyPair.generate(seed=1).public
    with pytest.raises(error):
        fingerprint(user, key)
    with pytest.raises(error):
        RosterEntry(0, user, key, SESSION)
    assert fingerprint("é" * 32, key)  # 64 bytes


@CURVES
def test_mitm_reads_victims_frames_silently_without_comparison(curve):
    group = Group(curve=curve, policy=POLICY, seed=21)
    mitm = MITM(group, victims={0, 1}, seed=22)
    for _ in range(3):
        group.join(0.0)
    group.leave(2, 5.0)
    from_0, from_1 = group.send_frame(0, b"alice", 8.0), group.send_frame(1, b"bob", 8.0)
    assert group.receive_frame(1, from_0, 8.0) == b"alice" and group.receive_frame(0, from_1, 8.0) == b"bob"
    assert not group.dropped  # nothing looked wrong to anyone
    assert mitm.unprotect(from_0) == b"alice" and mitm.unprotect(from_1) == b"bob"


@CURVES
def test_comparing_safety_numbers_catches_the_mitm(curve):
    group = Group(curve=curve, policy=POLICY, seed=21)
    MITM(group, victims={0, 1}, seed=22)
    for _ in range(3):
        group.join(0.0)
    a, b, c = (group.members[i] for i in range(3))
    with pytest.raises(SafetyNumberMismatch):
        a.safety_number(1).verify(b.safety_number(0))
    a.safety_number(2).verify(c.safety_number(0))  # the untouched pair matches


def test_honest_group_safety_numbers_match_and_mitm_learns_nothing_from_non_victims():
    group = _group()
    for i, j in itertools.combinations(range(3), 2):
        group.members[i].safety_number(j).verify(group.members[j].safety_number(i))
    attacked = Group(policy=POLICY, seed=4)
    mitm = MITM(attacked, victims={0, 1})
    for _ in range(3):
        attacked.join(0.0)
    with pytest.raises(UnknownKeyId):
        mitm.unprotect(attacked.send_frame(2, b"carol", 3.0))


# --- issue 13: what a hostile signalling server, SFU or ex-member tries ---------------------------

GHOST_POLICY = RekeyPolicy(switch_delay=2.0, grace=10.0, rekey_interval=30.0)
CHECKED = pytest.mark.parametrize("policy", [GHOST_POLICY, GHOST_POLICY.naive()], ids=["fixed", "naive"])


def _ghost_opens(group: Group, ghost: IdentityKeyPair, index: int) -> dict[tuple[int, int], bytes]:
    """The base keys the members sealed to the ghost's index, opened with its identity key."""
    keys = {}
    for recipient, data in group.relay:
        msg = KeyMessage.parse(data)
        if recipient == index:
            sender_key = group.members[msg.sender].identity.public
            keys[msg.sender, msg.epoch] = open_key_message(derive_pairwise_key(ghost, sender_key), msg)
    return keys


def _with_ghost(change: Change, ghost: RosterEntry):
    """A roster_tamper that adds ``ghost`` to every update of ``change`` for the existing members."""
    def tamper(recipient: int, update: RosterUpdate) -> RosterUpdate:
        if update.change is change and update.subject != recipient:
            return dataclasses.replace(update, members=update.members + (ghost,))
        return update
    return tamper


@CHECKED
def test_a_ghost_added_to_a_rekey(policy):
    # Finding 2: a REKEY that lists an extra member. Naive members seal their fresh keys to it;
    # the fixed ones refuse the update (UnexpectedRoster) and seal nothing.
    group, ghost = _group(policy=policy), IdentityKeyPair.generate()
    entry = RosterEntry(9, "ghost", ghost.public, new_session())
    group.roster_tamper = _with_ghost(Change.REKEY, entry)
    group.tick(30.0)
    keys = _ghost_opens(group, ghost, 9)
    if policy.checks.roster:
        assert group.dropped == {"roster_mismatch": 3} and not keys
        assert all(m.epoch == 2 and 9 not in m.peers for m in group.members.values())
        assert {type(e) for e in group.events if getattr(e, "epoch", None) == 3} == {ev.RosterRejected}
        return
    assert set(keys) == {(0, 3), (1, 3), (2, 3)} and group.dropped == {"no_such_member": 3}
    frame = group.send_frame(0, b"alice after the rekey", 33.0)
    reader = SFrameContext(group.suite)
    reader.add_receive_key(kid_for(3, 0, "video"), keys[0, 3])
    assert reader.unprotect(frame) == b"alice after the rekey"  # the ghost reads Alice


@CHECKED
@pytest.mark.parametrize("change", [Change.LEAVE, Change.JOIN], ids=["leave", "someone-elses-join"])
def test_a_ghost_added_to_a_leave_or_to_someone_elses_join(policy, change):
    group, ghost = _group(policy=policy), IdentityKeyPair.generate()
    group.roster_tamper = _with_ghost(change, RosterEntry(9, "ghost", ghost.public, new_session()))
    group.leave(1, 10.0) if change is Change.LEAVE else group.join(10.0)
    if policy.checks.roster:
        told = 2 if change is Change.LEAVE else 3  # the remaining members / the existing ones
        assert group.dropped["roster_mismatch"] == told and not _ghost_opens(group, ghost, 9)
        assert all(9 not in m.peers for m in group.members.values())
        return
    assert all(9 in group.members[i].peers for i in (0, 2))  # pinned as a peer
    group.tick(30.0)  # the next periodic rekey seals everyone's fresh keys to the ghost too
    assert {(0, group.roster.epoch), (2, group.roster.epoch)} <= set(_ghost_opens(group, ghost, 9))


def _forge_as(leaver: Member, sender: int, epoch: int, kind: str = "video", ctr: int = 10**6) -> bytes:
    forger = SFrameContext(leaver.suite)
    forger.add_send_key(kid_for(epoch, sender, kind), leaver.snapshot()["keys"][sender, epoch])
    return forger.protect(kid_for(epoch, sender, kind), b"forged by the leaver", ctr=ctr)


@CHECKED
def test_a_leaver_forges_as_a_sender_who_has_spoken_since_the_switch(policy):
    # Finding 4: after B leaves at 10 s, receivers keep epoch-2 keys until 22 s. B holds A's
    # epoch-2 base key; at 20 s it injects a frame as A. Once C has authenticated A's epoch-3 frame,
    # the fixed members refuse it; the naive ones accept it.
    group = _group(policy=policy)
    group.leave(1, 10.0)
    spoken = group.send_frame(0, b"A on the new key", 12.5)
    assert frame_origin(spoken).epoch == 3 and group.receive_frame(2, spoken, 12.6, sender=0, kind="video")
    forged = _forge_as(group.former[1], 0, 2)
    if policy.checks.retirement:
        with pytest.raises(UnknownKeyId):
            group.receive_frame(2, forged, 20.0, sender=0, kind="video")
    else:
        assert group.receive_frame(2, forged, 20.0, sender=0, kind="video") == b"forged by the leaver"


def test_what_retirement_does_not_close_a_silent_senders_window_and_the_other_kind():
    # Stated limits: C has not spoken since the switch, and A has sent video only, so the leaver's
    # forgeries as C, and as A's audio, are accepted until the grace period ends (22 s).
    group = _group(policy=GHOST_POLICY)
    group.leave(1, 10.0)
    group.receive_frame(2, group.send_frame(0, b"A video", 12.5), 12.6, sender=0, kind="video")
    as_c = _forge_as(group.former[1], 2, 2, ctr=10**6)
    as_a_audio = _forge_as(group.former[1], 0, 2, kind="audio", ctr=10**6 + 1)
    assert group.receive_frame(0, as_c, 20.0, sender=2, kind="video") == b"forged by the leaver"
    assert group.receive_frame(2, as_a_audio, 20.0, sender=0, kind="audio") == b"forged by the leaver"
    with pytest.raises(UnknownKeyId):
        group.receive_frame(0, _forge_as(group.former[1], 2, 2, ctr=10**6 + 2), 22.0, sender=2, kind="video")


def test_retirement_on_a_new_epoch_frame_is_per_sender_and_kind_and_emits_events():
    group = _group(policy=GHOST_POLICY)
    group.leave(1, 10.0)
    receiver = group.members[2]
    group.receive_frame(2, group.send_frame(0, b"v", 12.5), 12.5, sender=0, kind="video")
    kids = receiver.context.receive_kids
    assert kid_for(2, 0, "video") not in kids and kid_for(2, 0, "audio") in kids  # audio: not yet
    assert (0, 2) in receiver.base_keys()  # still needed for A's audio
    retired = [e for e in group.events if isinstance(e, ev.KeyRetired) and e.member == 2]
    assert [(e.sender, e.epoch, e.kid) for e in retired] == [(0, 2, kid_for(2, 0, "video"))]  # C joined at 2
    group.receive_frame(2, group.send_frame(0, b"a", 12.6, kind="audio"), 12.6, sender=0, kind="audio")
    assert (0, 2) not in receiver.base_keys()  # both kinds moved on: the base key is gone
    assert receiver.receive_keys(0, "audio") == {3: receiver.base_keys()[0, 3]}


def test_a_late_key_message_for_an_epoch_a_sender_has_left_behind_is_stale():
    group = _group(policy=GHOST_POLICY)
    for kind in ("audio", "video"):
        group.receive_frame(1, group.send_frame(0, b"x", 5.0, kind=kind), 5.0, sender=0, kind=kind)
    late = _forge(group, 0, 1, epoch=1)
    before = group.members[1].snapshot()
    with pytest.raises(StaleEpoch):
        group.members[1].receive_key_message(late, 5.0)
    assert group.members[1].snapshot() == before


@CHECKED
def test_a_key_message_replayed_from_an_earlier_call(policy):
    # Finding 6: Alice and Bob reuse their identity keys; the signalling replays Alice's key message
    # of the first call in the second. The pairwise key is the same, so only the session id in the
    # AAD tells the calls apart.
    alice, bob = IdentityKeyPair.generate(), IdentityKeyPair.generate()
    first = Group(policy=policy)
    first.join(0.0, identity=alice, user="alice"), first.join(0.0, identity=bob, user="bob")
    recorded = next(data for recipient, data in first.relay if recipient == 1)
    old_key = first.members[0].base_keys()[0, 1]
    second, genuine = Group(policy=policy), []

    def replay(recipient: int, data: bytes) -> bytes:
        if recipient != 1:
            return data
        genuine.append(data)
        return recorded

    second.interceptor = replay
    second.join(0.0, identity=alice, user="alice")
    second.join(0.0, identity=bob, user="bob")
    bob_now, alice_key = second.members[1], second.members[0].base_keys()[0, 1]
    if policy.checks.call_binding:
        assert second.dropped == {"wrong_call": 1} and (0, 1) not in bob_now.base_keys()
        before = bob_now.snapshot()
        with pytest.raises(WrongCall):
            bob_now.receive_key_message(recorded, 1.0)
        assert bob_now.snapshot() == before
        bob_now.receive_key_message(genuine[0], 1.0)  # the genuine message still goes through
        assert bob_now.base_keys()[0, 1] == alice_key
        return
    assert not second.dropped and bob_now.base_keys()[0, 1] == old_key != alice_key  # the old call's key
    with pytest.raises(ReplayedMessage):  # the genuine message now looks like the replay
        bob_now.receive_key_message(genuine[0], 1.0)


def test_a_video_frame_far_behind_the_newest_audio_is_not_a_replay():
    # Finding 7: one KID per sender for audio and video shared one 128-frame window, so a video
    # frame 128 audio frames (2.6 s) behind was dropped as a replay. Each kind has its own KID now.
    group = _group()
    video = group.send_frame(0, b"late video", 5.0)
    for i in range(1, 201):  # 4 s of 20 ms audio frames, delivered before the video frame
        frame = group.send_frame(0, b"a", 5.0 + 0.02 * i, kind="audio")
        group.receive_frame(1, frame, 5.0 + 0.02 * i, sender=0, kind="audio")
    assert parse_kid(decode_header(video)[0]).kind == "video"
    assert group.receive_frame(1, video, 9.1, sender=0, kind="video") == b"late video"
    with pytest.raises(ReplayedFrame):
        group.receive_frame(1, video, 9.2, sender=0, kind="video")


@CHECKED
@pytest.mark.parametrize("claim", [{"sender": 1, "kind": "video"}, {"sender": 0, "kind": "audio"},
                                   {"sender": 1}, {"kind": "audio"}], ids=["other-member", "other-kind",
                                                                           "member-only", "kind-only"])
def test_a_frame_whose_kid_names_another_stream(policy, claim):
    # Finding 5: the SFU forwards A's video on another stream. The fixed receiver drops it before
    # decryption (its replay window untouched: the frame still decrypts on its own stream).
    group = _group(policy=policy)
    frame = group.send_frame(0, b"A's video", 5.0)
    if not policy.checks.attribution:
        assert group.receive_frame(2, frame, 5.0, **claim) == b"A's video"  # credited to the SFU's claim
        return
    before = group.members[2].snapshot()
    with pytest.raises(KIDStreamMismatch) as info:
        group.receive_frame(2, frame, 5.0, **claim)
    assert info.value.reason == "kid_stream_mismatch" and group.members[2].snapshot() == before
    assert group.receive_frame(2, frame, 5.0, sender=0, kind="video") == b"A's video"


def test_a_kid_of_another_layout_is_an_unknown_kid():
    group = _group()
    context = SFrameContext(group.suite)
    context.add_send_key(0x0200, bytes(32))  # kind code 2
    with pytest.raises(UnknownKeyId, match="layout"):
        group.receive_frame(1, context.protect(0x0200, b"x"), 5.0)


# --- group codes --------------------------------------------------------------------------------------


def test_group_code_is_the_spec_formula():
    entries = [RosterEntry(1, "bob", IdentityKeyPair.generate(seed=2).public, b"\x02" * 16),
               RosterEntry(0, "alice", IdentityKeyPair.generate(seed=1, curve=Curve.P256).public, b"\x01" * 16)]
    prev = bytes(range(32))
    body = b"e2ee-lab 1.0 group code" + (7).to_bytes(4, "big") + prev
    for e in sorted(entries, key=lambda e: e.index):
        user, key = e.user.encode(), bytes(e.identity)
        body += bytes((e.index, len(user))) + user + bytes((len(key),)) + key + e.session
    digest = hashes.Hash(hashes.SHA256())
    digest.update(body)
    assert group_code(7, entries, prev) == digest.finalize()
    code = GroupCode(7, group_code(7, entries, prev))
    assert len(code.groups()) == 6 and all(len(g) == 5 and g.isdigit() for g in code.groups())
    assert code.digits == "".join(f"{int.from_bytes(code.code[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))
    code.verify(str(code))
    with pytest.raises(GroupCodeMismatch):
        code.verify(GroupCode(7, group_code(7, entries, NO_CODE)))
    with pytest.raises(ValueError):
        group_code(7, entries, b"short")


def test_members_and_server_agree_on_the_group_code_of_every_epoch():
    group = _group(policy=GHOST_POLICY)
    group.join(5.0)
    group.leave(1, 8.0)
    for epoch in range(group.roster.epoch + 1):
        codes = {m.group_code(epoch).code for m in group.members.values() if epoch >= m.join_epoch}
        assert codes == {group.roster.codes[epoch]}
    assert len(set(group.roster.codes.values())) == group.roster.epoch + 1  # every epoch its own code
    joiner = group.members[3]
    assert joiner.group_code(4).code == group.members[0].group_code(4).code  # the newcomer took prev
    with pytest.raises(StaleEpoch):
        joiner.group_code(2)  # before it joined


def test_a_server_that_lies_to_a_newcomer_about_the_history_shows_in_the_codes():
    group = _group(policy=GHOST_POLICY)
    group.roster_tamper = lambda r, u: dataclasses.replace(u, previous_code=bytes(32)) if u.subject == r else u
    joiner = group.join(5.0)
    with pytest.raises(GroupCodeMismatch):
        group.members[joiner].group_code().verify(group.members[0].group_code())


def test_group_codes_catch_a_ghost_that_safety_numbers_miss():
    # Findings 2 and 8: the server shows A a JOIN of a ghost (a split view: B and C get a REKEY of
    # the same epoch). Every check of each member passes, every pairwise safety number matches,
    # and the ghost gets A's key; only the group codes differ.
    group, ghost = _group(policy=GHOST_POLICY), IdentityKeyPair.generate()
    entry = RosterEntry(9, "ghost", ghost.public, new_session())

    def split_view(recipient: int, update: RosterUpdate) -> RosterUpdate:
        if recipient == 0:
            return dataclasses.replace(update, change=Change.JOIN, subject=9, members=update.members + (entry,))
        return update

    group.roster_tamper = split_view
    group.tick(30.0)
    assert not group.dropped.get("roster_mismatch") and group.members[0].epoch == 3
    assert (0, 3) in _ghost_opens(group, ghost, 9)  # A ratcheted and sent its key to the ghost
    for a, b in itertools.combinations(range(3), 2):
        group.members[a].safety_number(b).verify(group.members[b].safety_number(a))
    group.members[1].group_code().verify(group.members[2].group_code())
    with pytest.raises(GroupCodeMismatch):
        group.members[0].group_code().verify(group.members[1].group_code())


@pytest.mark.parametrize("field, value, error", [
    ("index", 256, ValueError), ("index", -1, ValueError), ("index", "1", TypeError), ("index", True, TypeError),
    ("user", "", ValueError), ("user", 7, TypeError), ("identity", b"\x00" * 32, TypeError),
    ("session", b"s" * 15, ValueError), ("session", b"s" * 17, ValueError), ("session", "s" * 16, TypeError)])
def test_roster_entry_fields_are_checked(field, value, error):
    fields = dict(index=1, user="bob", identity=IdentityKeyPair.generate(seed=2).public, session=SESSION)
    fields[field] = value
    with pytest.raises(error):
        RosterEntry(**fields)
    assert RosterEntry(1, "bob", fields["identity"] if field != "identity" else IdentityKeyPair.generate().public,
                       bytearray(SESSION)).session == SESSION


def test_an_update_that_lists_a_member_twice_or_the_member_wrongly_is_refused():
    group = _group(policy=GHOST_POLICY)
    member = group.members[0]
    roster = _entries(group)
    me_other_session = dataclasses.replace(roster[0], session=new_session())
    before = member.snapshot()
    for listed in (roster + (roster[1],), (me_other_session,) + roster[1:]):
        with pytest.raises(UnexpectedRoster):
            member.handle_roster(RosterUpdate(3, Change.REKEY, None, listed), 1.0)
    with pytest.raises(UnexpectedRoster):  # a REKEY naming a subject
        member.handle_roster(RosterUpdate(3, Change.REKEY, 1, roster), 1.0)
    assert member.snapshot() == before
    member.handle_roster(RosterUpdate(3, Change.REKEY, None, roster), 1.0)  # the honest one goes through
    assert member.epoch == 3


def test_the_key_checks_switch():
    assert RekeyPolicy().checks == KeyChecks() and RekeyPolicy().name == "fixed"
    naive = RekeyPolicy(switch_delay=0.1).naive()
    assert naive.switch_delay == 0.1 and naive.name == "naive" and not naive.checks.names()
    assert RekeyPolicy(checks=KeyChecks(attribution=False)).name == "custom"
    with pytest.raises(TypeError):
        RekeyPolicy(checks=True)


# --- random sequences of joins, leaves and frames (hypothesis, stateful) ---------------------------


STEP = 0.25  # every time is a multiple of a power of two, so the boundary arithmetic is exact


class KeyAgreementMachine(RuleBasedStateMachine):
    """Joins, leaves, periodic rekeys, audio and video frames in flight with random delays up to the
    grace period, roster updates with an extra or a missing member, and a leaver forging frames.

    The model of retirement: a receiver accepts a frame of (sender, kind) under epoch e unless it has
    already authenticated a frame of that sender and kind under a later epoch (then the old key is
    gone); frames arrive within the grace period, so time never retires a key they need.
    """

    policy = RekeyPolicy(switch_delay=1.0, grace=3.0, rekey_interval=12.0)

    @initialize(curve=st.sampled_from(list(Curve)))
    def start(self, curve):
        self.group = Group(curve=curve, policy=self.policy, seed=None)
        self.now, self.order = 0.0, itertools.count()
        self.joined, self.left, self.sent, self.flight, self.history = {}, {}, [], [], []
        self.seen: dict[tuple[int, int, str], int] = {}  # (receiver, sender, kind) -> newest epoch read
        self.poisoned: set[tuple[int, int]] = set()  # (receiver, KID) whose window a forgery moved far ahead
        self.forged = 0
        for _ in range(2):
            self._join()

    def _join(self):
        index = self.group.join(self.now)
        self.joined[index] = self.now
        member = self.group.members[index]
        # A joiner decrypts no frame sent before its join.
        assert not any(_can_read(member, frame) for _, _, frame in self.sent)

    @precondition(lambda self: len(self.group.members) < 6 and self.group.roster.next_index < 40)
    @rule()
    def join(self):
        self._join()

    @precondition(lambda self: len(self.group.members) > 1)
    @rule(data=st.data())
    def leave(self, data):
        index = data.draw(st.sampled_from(sorted(self.group.members)))
        self.group.leave(index, self.now)
        self.left[index] = self.now

    @rule(data=st.data())
    def send(self, data):
        """Every member sends one frame of a drawn kind; each copy travels with its own delay, up to
        the grace period, with the true sender and kind announced for its stream."""
        kind = data.draw(st.sampled_from(["audio", "video"]))
        for sender in sorted(self.group.members):
            frame = self.group.send_frame(sender, b"m%d" % len(self.sent), self.now, kind=kind)
            self.sent.append((sender, self.now, frame))
            for receiver in self.group.members:
                if receiver != sender:
                    delay = STEP * data.draw(st.integers(0, int(self.policy.grace / STEP)))
                    heapq.heappush(self.flight, (self.now + delay, next(self.order), receiver, self.now, frame))
            for leaver, gone in self.left.items():
                if self.now >= gone + self.policy.switch_delay:  # a leaver decrypts nothing after that
                    assert not _can_read(self.group.former[leaver], frame)

    @rule(steps=st.integers(0, 12))
    def advance(self, steps):
        target = self.now + steps * STEP
        while self.flight and self.flight[0][0] <= target:
            arrival, _, receiver, sent_at, frame = heapq.heappop(self.flight)
            self.group.tick(arrival)
            if receiver in self.group.members and sent_at >= self.joined[receiver] + self.policy.switch_delay:
                self._deliver(receiver, frame, arrival)
        self.now = target
        self.group.tick(target)

    def _deliver(self, receiver, frame, arrival):
        epoch, sender, kind = frame_origin(frame)
        newest = self.seen.get((receiver, sender, kind), -1)
        if epoch < newest:  # the sender has spoken under a newer epoch: its old key is retired
            with pytest.raises(UnknownKeyId):
                self.group.receive_frame(receiver, frame, arrival, sender=sender, kind=kind)
            return
        if (receiver, decode_header(frame)[0]) in self.poisoned:  # CTR far behind the forged one
            with pytest.raises(ReplayedFrame):
                self.group.receive_frame(receiver, frame, arrival, sender=sender, kind=kind)
            return
        got = self.group.receive_frame(receiver, frame, arrival, sender=sender, kind=kind)
        assert got == b"m%d" % self._number(frame)
        self.seen[receiver, sender, kind] = epoch

    @precondition(lambda self: len(self.group.members) >= 2)
    @rule(data=st.data())
    def bad_roster(self, data):
        """The server hands one member an update whose member set is not what its change implies:
        refused with UnexpectedRoster, nothing changes (the others never see it)."""
        target = data.draw(st.sampled_from(sorted(self.group.members)))
        member = self.group.members[target]
        peers = [p for p in member.peers if p in self.group.members]
        if not peers:
            return
        entries = {i: self.group.directory.genuine(i) for i in [target, *peers]}
        ghost = _stranger(200 + data.draw(st.integers(0, 50)))
        x = data.draw(st.sampled_from(peers))
        variants = {
            "rekey-extra": (Change.REKEY, None, [*entries.values(), ghost]),
            "rekey-missing": (Change.REKEY, None, [e for i, e in entries.items() if i != x]),
            "leave-extra": (Change.LEAVE, x, [e for i, e in entries.items() if i != x] + [ghost]),
            "leave-still-listed": (Change.LEAVE, x, list(entries.values())),
            "join-extra": (Change.JOIN, ghost.index, [*entries.values(), ghost, _stranger(199)]),
            "join-missing": (Change.JOIN, ghost.index, [e for i, e in entries.items() if i != x] + [ghost]),
            "self-missing": (Change.REKEY, None, [e for i, e in entries.items() if i != target]),
        }
        change, subject, listed = variants[data.draw(st.sampled_from(sorted(variants)))]
        before = member.snapshot()
        with pytest.raises(UnexpectedRoster):
            member.handle_roster(RosterUpdate(member.epoch + 1, change, subject, tuple(listed)), self.now)
        assert member.snapshot() == before

    @precondition(lambda self: bool(self.group.former) and len(self.group.members) >= 2)
    @rule(data=st.data())
    def leaver_forges(self, data):
        """A leaver injects a frame under a remaining sender's newest key it kept: refused by every
        receiver that has authenticated a frame of that sender and kind under a later epoch."""
        leaver = self.group.former[data.draw(st.sampled_from(sorted(self.group.former)))]
        kept = {(s, e): k for (s, e), k in leaver.snapshot()["keys"].items() if s in self.group.members}
        if not kept:
            return
        sender, epoch = data.draw(st.sampled_from(sorted(kept)))
        receiver = data.draw(st.sampled_from([r for r in sorted(self.group.members) if r != sender] or [sender]))
        kind = data.draw(st.sampled_from(["audio", "video"]))
        if receiver == sender:
            return
        forger = SFrameContext(self.group.suite)
        forger.add_send_key(kid_for(epoch, sender, kind), kept[sender, epoch])
        self.forged += 1
        frame = forger.protect(kid_for(epoch, sender, kind), b"forged", ctr=2**40 + self.forged)
        self.group.tick(self.now)
        if self.seen.get((receiver, sender, kind), -1) > epoch:
            with pytest.raises(UnknownKeyId):
                self.group.receive_frame(receiver, frame, self.now, sender=sender, kind=kind)
        else:  # the window that remains: a sender silent since the switch, within the grace period
            try:
                self.group.receive_frame(receiver, frame, self.now, sender=sender, kind=kind)
            except UnknownKeyId:
                return
            # Accepted: it authenticated, so it retires the sender's older keys like a genuine frame
            # (a forgery under an epoch the sender has not switched to yet drops its frames until it does),
            # and its CTR moved that KID's replay window past every genuine frame.
            self.seen[receiver, sender, kind] = max(epoch, self.seen.get((receiver, sender, kind), -1))
            self.poisoned.add((receiver, kid_for(epoch, sender, kind)))

    def _number(self, frame):
        return next(i for i, (_, _, f) in enumerate(self.sent) if f == frame)

    @invariant()
    def relay_is_clean(self):
        if hasattr(self, "group"):
            assert not self.group.dropped
            self.history += _snapshots(self.group).values()

    @invariant()
    def indexes_match_the_keys_they_index(self):
        """The member's per-frame shortcuts (keys by sender, newest own epoch, next retirement)
        always say what a scan of its keys and deadlines says."""
        if not hasattr(self, "group"):
            return
        for member in self.group.members.values():
            keys = member._keys
            assert {s: {e: k for (s2, e), k in keys.items() if s2 == s} for s, _ in keys} == member._by_sender
            assert all(list(held) == [e for (s, e) in keys if s == sender]  # same order: events follow it
                       for sender, held in member._by_sender.items())
            assert member._newest_own() == max((e for (s, e) in keys if s == member.index), default=-1)
            assert member._next_retire == min(member._retire_at.values(), default=math.inf)

    def teardown(self):
        if hasattr(self, "group"):
            secrets = _all_secrets(self.group, self.history)
            relayed = self.group.sfu_bytes()
            assert not [s for s in secrets if s in relayed]


def _try(context, frame) -> bool:
    try:
        context.unprotect(frame)
        return True
    except SFrameError:
        return False


TestKeyAgreementMachine = KeyAgreementMachine.TestCase
TestKeyAgreementMachine.settings = settings(max_examples=40, stateful_step_count=40, deadline=None,
                                            suppress_health_check=[HealthCheck.too_slow])


# --- the scripted timeline of notebook 04 (e2ee_lab.labs.keys) ---------------------------------------------------


def test_timeline_shows_the_leaver_window_and_the_newcomer_gap():
    timeline = simulate_timeline()
    leaver = [o for o in timeline.frames if o.receiver == "B" and o.sent_at >= 20.0 and o.decrypted]
    assert leaver and {o.sent_at for o in leaver} <= {20.0, 20.2, 20.4, 20.6, 20.8, 21.0, 21.2, 21.4, 21.6, 21.8}
    joiner_old = [o for o in timeline.frames if o.receiver == "D" and o.sent_at < 10.0]
    assert joiner_old and not any(o.decrypted for o in joiner_old)
    members = [o for o in timeline.frames if o.member_at_send and o.receiver != "D"]
    assert all(o.decrypted for o in members)
    assert [e[2:] for e in timeline.epochs] == [("join", "A"), ("join", "B"), ("join", "C"), ("join", "D"),
                                               ("leave", "B")]


def test_base_keys_is_a_copy_of_what_the_member_holds():
    group = _group(n=3)
    member = next(iter(group.members.values()))
    keys = member.base_keys()
    assert keys == member.snapshot()["keys"]
    assert {sender for sender, _ in keys} == set(group.members)
    keys.clear()
    assert member.base_keys(), "clearing the copy must not touch the member"
