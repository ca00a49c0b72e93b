"""The browser participant's key management and frame keys (``static/keys.js``, ``static/e2ee.js``), in
headless Chromium, against the Python implementation (issue 13).

One page is opened for the module and ``tests/js/e2ee_checks.js`` is evaluated into it: small drivers
that run the page's own code on inputs made here with the Python package and return what happened.
Every assertion is made here: cross-implementation values (KIDs, the ratchet, group codes, safety
numbers, key messages v2 both ways, a page member and a Python member agreeing on keys), the
roster-set check (ghosts and missing members refused with the state unchanged, each case also run
on a Python member), retirement (after the grace, and at a sender's first new-epoch frame, SFrame
and clear-prefix), the CTR reservation (concurrent copies and protects), CTR and IV-count
exhaustion, and attribution by KID. Marked ``browser``; skipped, naming the reason, without Chromium.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from e2ee_lab.browser import Chromium, StaticServer, find_chromium
from e2ee_lab.browser.participant import roster_json
from e2ee_lab.call.frame_keys import clear_prefix_key
from e2ee_lab.crypto.keys import (
    MEDIA_KINDS,
    Change,
    Curve,
    GroupCode,
    IdentityKeyPair,
    KeyAgreementError,
    KeyDirectory,
    KeyMessage,
    Member,
    RekeyPolicy,
    Roster,
    RosterEntry,
    RosterUpdate,
    derive_pairwise_key,
    fingerprint,
    group_code,
    kid_for,
    new_session,
    open_key_message,
    parse_kid,
    ratchet,
    safety_number,
    seal_key_message,
)
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, decode_header
from e2ee_lab.crypto.transforms import MAX_SEND_COUNT, ClearPrefixSender
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium)")]

CHECKS = Path(__file__).resolve().parent / "js" / "e2ee_checks.js"
PAGE = 1  # the page's member index in every scenario here
POLICY = RekeyPolicy(switch_delay=2.0, grace=10.0, rekey_interval=30.0)


class _Page:
    """``page("check", **args)``: ``e2eeChecks.check(args)`` in the page, its JSON result."""

    def __init__(self, loop: asyncio.AbstractEventLoop, chrome: Chromium) -> None:
        self.loop, self.chrome = loop, chrome

    def __call__(self, check: str, **args):
        return self.loop.run_until_complete(self.chrome.page.call(f"(a) => e2eeChecks.{check}(a)", args))


@pytest.fixture(scope="module")
def page():
    loop = asyncio.new_event_loop()
    with StaticServer() as server:
        chrome = Chromium()
        try:
            loop.run_until_complete(chrome.start())
            loop.run_until_complete(chrome.navigate(server.url))
            loop.run_until_complete(chrome.page.evaluate(CHECKS.read_text(encoding="utf-8")))
            yield _Page(loop, chrome)
        finally:
            loop.run_until_complete(chrome.close())
            loop.close()


def p256(label: str) -> tuple[IdentityKeyPair, str]:
    """A P-256 identity fixed by ``label`` and its PKCS #8 private key (hex), for the page to import."""
    identity = IdentityKeyPair.generate(Curve.P256, seed=label.encode())
    private = ec.derive_private_key(int.from_bytes(identity.private_bytes(), "big"), ec.SECP256R1())
    return identity, private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()).hex()


def new_page_member(page, name: str, *, suite: int = 4, policy: RekeyPolicy = POLICY, user: str = "chromium",
                    label: str = "page") -> tuple[RosterEntry, IdentityKeyPair]:
    """A Member in the page at index :data:`PAGE` (the identity of ``label``); returns its roster entry."""
    identity, pkcs8 = p256(label)
    session = new_session()
    page("newMember", name=name, pkcs8=pkcs8, publicKey=bytes(identity.public).hex(), index=PAGE, user=user,
         session=session.hex(), suite=suite, switchDelay=policy.switch_delay, grace=policy.grace)
    return RosterEntry(PAGE, user, identity.public, session), identity


def steps(page, name: str, *todo: dict) -> list[dict]:
    return page("memberSteps", name=name, steps=list(todo))


def roster_step(update: RosterUpdate, now: float) -> dict:
    return {"op": "roster", "msg": roster_json(update), "now": now}


def held(state: dict) -> dict[tuple[int, int], bytes]:
    """The page member's base keys from a step's result: (sender, epoch) -> key."""
    return {(k["member"], k["epoch"]): bytes.fromhex(k["baseKey"]) for k in state["keys"]}


class Mixed:
    """A Python signalling roster whose members are Python :class:`Member` objects and the page's
    member ``name``; roster updates and key messages are delivered as the relay would."""

    def __init__(self, page, name: str, *, suite: int = 4, policy: RekeyPolicy = POLICY) -> None:
        self.page, self.name, self.suite, self.policy = page, name, suite, policy
        self.roster = Roster(KeyDirectory(), policy)
        self.python: dict[int, Member] = {}
        self.last: dict = {}
        self.sent: list[tuple[int, int, bytes]] = []  # every key message: (sender, recipient, bytes)

    def join_python(self, user: str, now: float) -> Member:
        identity, session = IdentityKeyPair.generate(Curve.P256), new_session()
        index, updates = self.roster.join(user, identity.public, session, now)
        self.python[index] = Member(index, identity, user=user, session=session, policy=self.policy, suite=self.suite)
        self.deliver(updates, now)
        return self.python[index]

    def join_page(self, now: float) -> RosterEntry:
        assert self.roster.next_index == PAGE
        entry, _ = new_page_member(self.page, self.name, suite=self.suite, policy=self.policy)
        self.deliver(self.roster.join(entry.user, entry.identity, entry.session, now)[1], now)
        return entry

    def deliver(self, updates: dict[int, RosterUpdate], now: float) -> None:
        out = []
        for i in sorted(updates):
            if i == PAGE:
                self.last = steps(self.page, self.name, roster_step(updates[i], now))[0]
                assert self.last["ok"], self.last
                out += [(PAGE, r, bytes.fromhex(d)) for r, d in self.last["value"]]
            else:
                out += [(i, r, d) for r, d in self.python[i].handle_roster(updates[i], now)]
        self.sent += out
        for_page = [{"op": "key", "data": d.hex(), "now": now} for _, r, d in out if r == PAGE]
        for _, r, d in out:
            if r != PAGE:
                self.python[r].receive_key_message(d, now)
        if for_page:
            results = steps(self.page, self.name, *for_page)
            assert all(r["ok"] for r in results), results
            self.last = results[-1]

    def state(self, now: float) -> dict:
        self.last = steps(self.page, self.name, {"op": "tick", "now": now})[0]
        return self.last


# --- cross-implementation values ---------------------------------------------------------------


def test_kids_and_their_headers_match_python(page):
    cases = [(0, 0, "audio"), (0, 2, "video"), (1, 2, "video"), (15, 255, "video"), (16, 1, "audio"),
             (2**32 - 1, 255, "video")]
    invalid = [1 << 12 | 2 << 8, 15 << 8 | 3, 2**32 << 12]
    got = page("kids", cases=cases, invalid=[str(k) for k in invalid])
    assert got["kids"] == [str(kid_for(*c)) for c in cases]
    assert got["kids"][2] == str(0x1102)  # epoch 1, video, member 2
    assert got["parsed"] == [dict(zip(("epoch", "member", "kind"), parse_kid(kid_for(*c)))) for c in cases]
    from e2ee_lab.crypto.sframe import encode_header
    assert got["headers"] == [encode_header(kid_for(*c), 300).hex() for c in cases]
    for kid in invalid:
        with pytest.raises(ValueError):
            parse_kid(kid)
    assert got["invalid"] == ["unknown_kid"] * len(invalid)


@pytest.mark.parametrize("suite", [4, 5])
def test_ratchet_uses_the_suites_hash_and_length(page, suite):
    base = os.urandom(CipherSuite(suite).nh)
    got = bytes.fromhex(page("ratchet", suite=suite, base=base.hex()))
    assert got == ratchet(base, suite) and len(got) == CipherSuite(suite).nh  # suite 5: SHA-512, 64 bytes


def test_group_code_matches_python(page):
    x25519 = IdentityKeyPair.generate(Curve.X25519).public
    entries = [RosterEntry(7, "zoë 🎧", x25519, os.urandom(16)), RosterEntry(0, "alice", p256("a")[0].public, os.urandom(16)),
               RosterEntry(3, "b" * 64, p256("b")[0].public, os.urandom(16))]
    prev = os.urandom(32)
    members = [[e.index, e.user, bytes(e.identity).hex(), e.session.hex()] for e in entries]
    got = page("groupCode", epoch=70000, members=members, prev=prev.hex())
    want = group_code(70000, entries, prev)
    assert got["code"] == want.hex()
    assert got["digits"] == GroupCode(70000, want).digits


def test_safety_number_binds_the_user_id_as_python_does(page):
    a, b = p256("a")[0].public, p256("b")[0].public
    got = page("safetyNumber", a=["alice", bytes(a).hex()], b=["bob", bytes(b).hex()])
    assert got["number"] == safety_number(("alice", a), ("bob", b)).digits
    assert got["fingerprintA"] == fingerprint("alice", a)
    renamed = page("safetyNumber", a=["mallory", bytes(a).hex()], b=["bob", bytes(b).hex()])
    assert renamed["number"] != got["number"]  # same keys, another user id: another number


def test_key_message_v2_both_ways(page):
    me, pkcs8 = p256("page")
    peer = p256("peer")[0]
    key = derive_pairwise_key(peer, me.public)
    my_session, peer_session, base = os.urandom(16), os.urandom(16), os.urandom(32)
    message = seal_key_message(key, sender=0, recipient=1, session=my_session, seq=7, epoch=3,
                               nonce=os.urandom(12), payload=base)
    reply = {"sender": 1, "recipient": 0, "session": peer_session.hex(), "seq": str(2**40 + 1),
             "epoch": 2**32 - 1, "nonce": os.urandom(12).hex(), "payload": os.urandom(64).hex()}
    got = page("keyMessage", pkcs8=pkcs8, publicKey=bytes(me.public).hex(), peer=bytes(peer.public).hex(),
               message=message.hex(), seal=reply)
    assert bytes.fromhex(got["pairwise"]) == key
    assert (got["sender"], got["recipient"], got["session"], got["seq"], got["epoch"]) == (0, 1, my_session.hex(), "7", 3)
    assert bytes.fromhex(got["payload"]) == base
    assert got["tampered"] == "auth"  # a session byte changed: the AAD no longer matches
    sealed = bytes.fromhex(got["sealed"])
    assert sealed == seal_key_message(key, sender=1, recipient=0, session=peer_session, seq=2**40 + 1,
                                      epoch=2**32 - 1, nonce=bytes.fromhex(reply["nonce"]),
                                      payload=bytes.fromhex(reply["payload"]))
    parsed = KeyMessage.parse(sealed)
    assert parsed.session == peer_session and open_key_message(key, parsed).hex() == reply["payload"]


# --- a page member among Python members ------------------------------------------------------------


@pytest.mark.parametrize("suite", [4, 5])
def test_page_and_python_member_agree_on_keys_codes_and_safety_numbers(page, suite):
    g = Mixed(page, f"interop-{suite}", suite=suite)
    bob = g.join_python("bob", 0.0)
    g.join_page(1.0)
    keys = held(g.state(1.0))
    assert set(keys) == {(0, 1), (1, 1)}  # the newcomer never sees bob's epoch-0 key
    assert keys[0, 1] == bob.base_keys()[0, 1] and keys[1, 1] == bob.base_keys()[1, 1]
    assert len(keys[1, 1]) == CipherSuite(suite).nh
    code, number = steps(page, g.name, {"op": "groupCode", "epoch": 1}, {"op": "safetyNumber", "peer": 0})
    assert code["value"]["digits"] == bob.group_code(1).digits
    assert number["value"] == bob.safety_number(PAGE).digits
    g.deliver(g.roster.poll(31.0), 31.0)  # periodic REKEY: epoch 2, fresh keys both ways
    keys = held(g.state(31.0))
    assert keys[0, 2] == bob.base_keys()[0, 2] and keys[1, 2] == bob.base_keys()[1, 2]
    assert steps(page, g.name, {"op": "groupCode", "epoch": 2})[0]["value"]["digits"] == bob.group_code(2).digits
    g.deliver(g.roster.leave(PAGE, 40.0), 40.0)  # the page leaves: LEFT, every key wiped
    assert g.last["state"] == "left" and g.last["keys"] == []
    after = steps(page, g.name, roster_step(g.roster.poll(100.0)[0], 100.0),
                  {"op": "key", "data": g.sent[-1][2].hex(), "now": 100.0})
    assert [(r["ok"], r["reason"], r["unchanged"]) for r in after] == [(False, "illegal_transition", True)] * 2


def test_page_refuses_key_messages_it_must_refuse_and_changes_nothing(page):
    g = Mixed(page, "refuse")
    bob = g.join_python("bob", 0.0)
    entry = g.join_page(1.0)
    pairwise = derive_pairwise_key(bob.identity, entry.identity)
    genuine = next(d for s, r, d in g.sent if (s, r) == (0, PAGE))

    def sealed(**fields) -> str:
        args = {"sender": 0, "recipient": PAGE, "session": entry.session, "seq": 50, "epoch": 1,
                "nonce": os.urandom(12), "payload": os.urandom(32), **fields}
        return seal_key_message(pairwise, **args).hex()

    tampered = bytearray.fromhex(sealed())
    tampered[-1] ^= 1
    cases = {"wrong_call": sealed(session=os.urandom(16)),  # recorded in another call: refused unopened
             "wrong_recipient": sealed(recipient=2), "auth": bytes(tampered).hex(),
             "replay": genuine.hex(), "malformed": "01" + sealed()[2:],  # a version-1 message
             "future_epoch": sealed(epoch=2)}
    results = steps(page, g.name, *({"op": "key", "data": d, "now": 2.0} for d in cases.values()))
    assert [(r["ok"], r["reason"], r["unchanged"]) for r in results] == [(False, why, True) for why in cases]


def _cast() -> dict[int, RosterEntry]:
    return {i: RosterEntry(i, name, p256(name)[0].public, os.urandom(16))
            for i, name in ((0, "alice"), (2, "bob"), (3, "carol"), (4, "dave"))}


def _roster_cases(me: RosterEntry, cast: dict[int, RosterEntry]) -> dict[str, tuple[RosterUpdate, str]]:
    """Updates for epoch 3 of a member whose peers are 0 and 2, and the reason each must be refused."""
    def up(change: Change, subject: int | None, *listed: int | RosterEntry, epoch: int = 3) -> RosterUpdate:
        return RosterUpdate(epoch, change, subject, tuple(x if isinstance(x, RosterEntry) else (me if x == PAGE else cast[x])
                                                           for x in listed))

    J, L, R = Change.JOIN, Change.LEAVE, Change.REKEY
    alice = cast[0]
    return {
        "ghost-in-rekey": (up(R, None, 0, 1, 2, 3), "roster_mismatch"),
        "ghost-in-leave": (up(L, 2, 0, 1, 3), "roster_mismatch"),
        "ghost-in-someone-elses-join": (up(J, 3, 0, 1, 2, 3, 4), "roster_mismatch"),
        "missing-in-rekey": (up(R, None, 0, 1), "roster_mismatch"),
        "missing-in-join": (up(J, 3, 0, 1, 3), "roster_mismatch"),
        "join-of-a-peer": (up(J, 2, 0, 1, 2), "roster_mismatch"),
        "leave-of-a-stranger": (up(L, 3, 0, 1, 2), "roster_mismatch"),
        "rekey-with-a-subject": (up(R, 0, 0, 1, 2), "roster_mismatch"),
        "self-missing": (up(R, None, 0, 2), "roster_mismatch"),
        "self-in-another-session": (up(R, None, 0, RosterEntry(PAGE, me.user, me.identity, os.urandom(16)), 2),
                                    "roster_mismatch"),
        "an-index-twice": (up(R, None, 0, 1, 2, 2), "roster_mismatch"),
        "peer-identity-swapped": (up(R, None, RosterEntry(0, alice.user, p256("mallory")[0].public, alice.session), 1, 2),
                                  "identity_changed"),
        "peer-user-renamed": (up(R, None, RosterEntry(0, "mallory", alice.identity, alice.session), 1, 2),
                              "identity_changed"),
        "stale-epoch": (up(R, None, 0, 1, 2, epoch=2), "stale_epoch"),
        "future-epoch": (up(R, None, 0, 1, 2, epoch=4), "future_epoch"),
    }


ROSTER_CASES = list(_roster_cases(RosterEntry(PAGE, "x", p256("page")[0].public, bytes(16)), _cast()))


@pytest.mark.parametrize("case", ROSTER_CASES)
def test_roster_check_refuses_like_python_and_changes_nothing(page, case):
    cast = _cast()
    me, identity = new_page_member(page, f"roster-{case}")
    history = [RosterUpdate(1, Change.JOIN, PAGE, (cast[0], me)), RosterUpdate(2, Change.JOIN, 2, (cast[0], me, cast[2]))]
    bad, reason = _roster_cases(me, cast)[case]
    good = RosterUpdate(3, Change.REKEY, None, (cast[0], me, cast[2]))
    results = steps(page, f"roster-{case}", *(roster_step(u, t) for t, u in enumerate(history)),
                    roster_step(bad, 5.0), roster_step(good, 6.0))
    assert [r["ok"] for r in results[:2]] == [True, True], results[:2]
    assert (results[2]["ok"], results[2]["reason"], results[2]["unchanged"]) == (False, reason, True), results[2]
    assert results[3]["ok"] and results[3]["epoch"] == 3  # the refused update left the member able to go on
    python = Member(PAGE, identity, user=me.user, session=me.session, policy=POLICY)
    for t, u in enumerate(history):
        python.handle_roster(u, t)
    with pytest.raises(KeyAgreementError) as err:
        python.handle_roster(bad, 5.0)
    assert err.value.reason == reason


def test_a_malformed_roster_update_is_refused(page):
    me, _ = new_page_member(page, "roster-malformed")
    own = roster_json(RosterUpdate(1, Change.JOIN, PAGE, (_cast()[0], me)))
    bad = [{**own, "members": own["members"] + [[2, "", "04", "00" * 16]]},  # empty user id
           {**own, "members": own["members"] + [[2, "bob", "zz", "00" * 16]]},  # not hex
           {**own, "members": own["members"] + [[2, "bob", "04", "00" * 15]]},  # a 15-byte session
           {**own, "change": "promote"}, {**own, "epoch": -1}]
    results = steps(page, "roster-malformed", *({"op": "roster", "msg": m, "now": 0.0} for m in bad))
    assert [(r["ok"], r["reason"], r["unchanged"]) for r in results] == [(False, "malformed", True)] * len(bad)


# --- retirement ------------------------------------------------------------------------------------------


def test_old_epochs_retire_after_switch_delay_plus_grace_as_in_python(page):
    g = Mixed(page, "retire")
    bob = g.join_python("bob", 0.0)
    g.join_page(1.0)
    g.deliver(g.roster.poll(31.0), 31.0)  # REKEY at 31: epoch 1 retires at 31 + 2 + 10
    due = 31.0 + POLICY.switch_delay + POLICY.grace
    for now in (due - 0.01, due):
        bob.tick(now)
        mine = {e for _, e in held(g.state(now))}
        assert mine == {e for _, e in bob.base_keys()}, now
        assert (1 in mine) is (now < due)
    assert g.last["sendEpoch"] == 2


def test_member_retires_a_base_key_once_both_kinds_moved_on_and_refuses_it_again(page):
    g = Mixed(page, "retire-frame")
    bob = g.join_python("bob", 0.0)
    entry = g.join_page(1.0)
    g.deliver(g.roster.poll(31.0), 31.0)
    video, audio = steps(page, g.name, {"op": "frame", "sender": 0, "kind": "video", "epoch": 2},
                         {"op": "frame", "sender": 0, "kind": "audio", "epoch": 2})
    assert (0, 1) in held(video) and (0, 1) not in held(audio)  # audio of epoch 1 stayed usable until now
    assert (1, 1) in held(audio) and held(audio)[0, 2] == bob.base_keys()[0, 2]
    # bob's epoch-1 key sent again (a fresh sequence number): both kinds are past epoch 1, refused
    again = seal_key_message(derive_pairwise_key(bob.identity, entry.identity), sender=0, recipient=PAGE,
                             session=entry.session, seq=100, epoch=1, nonce=os.urandom(12), payload=os.urandom(32))
    refused = steps(page, g.name, {"op": "key", "data": again.hex(), "now": 32.0})[0]
    assert (refused["ok"], refused["reason"], refused["unchanged"]) == (False, "stale_epoch", True)


def _sframe_frames(base: bytes, epoch: int, member: int, kind: str, n: int, *, start: int = 0) -> list[str]:
    ctx = SFrameContext(CipherSuite.AES_128_GCM_SHA256_128)
    kid = kid_for(epoch, member, kind)
    ctx.add_send_key(kid, base)
    return [ctx.protect(kid, bytes([0x31, i]) + b"frame", ctr=start + i).hex() for i in range(n)]


def _clear_frames(base: bytes, epoch: int, member: int, kind: str, n: int, *, start: int = 0) -> list[str]:
    sender = ClearPrefixSender(clear_prefix_key(base), key_index=epoch % 256, initial_count=start)
    meta = FrameMetadata(0x5EED0000 + member, 96, kind)
    return [sender.transform(EncodedFrame(bytes([0x31, i]) + b"frame-body", 3000 * i, meta,
                                          "delta" if kind == "video" else None)).data.hex() for i in range(n)]


FRAMES = {"e2ee": _sframe_frames, "clear-prefix": _clear_frames}
GONE = {"e2ee": "unknown_kid", "clear-prefix": "unknown_key"}


def _installed(result: dict, mode: str, member: int, kind: str) -> list[int]:
    """The epochs of ``member``'s ``kind`` keys the worker holds after a step."""
    if mode == "e2ee":
        fields = [parse_kid(int(k, 16)) for k in result["installed"]["receiveKids"]]
        return sorted(f.epoch for f in fields if (f.member, f.kind) == (member, kind))
    return result["installed"]["rings"].get(f"{member}:{kind}", [])


@pytest.mark.parametrize("mode", ["e2ee", "clear-prefix"])
def test_worker_retires_old_epochs_at_the_first_new_epoch_frame_and_after_the_grace(page, mode):
    name, b1, b2, own = f"retire-{mode}", os.urandom(32), os.urandom(32), os.urandom(32)
    keys = [{"member": 0, "epoch": 1, "baseKey": b1.hex()}, {"member": 0, "epoch": 2, "baseKey": b2.hex()},
            {"member": PAGE, "epoch": 2, "baseKey": own.hex()}]
    old, new, old_audio = (FRAMES[mode](b, e, 0, k, 2) for b, e, k in ((b1, 1, "video"), (b2, 2, "video"), (b1, 1, "audio")))
    page("newFrameKeys", name=name, mode=mode, suite=4)
    r = page("frameSteps", name=name, steps=[
        {"op": "install", "index": PAGE, "sendEpoch": 2, "keys": keys},
        {"op": "decrypt", "frame": old[0], "member": 0, "kind": "video"},  # in flight from before the switch
        {"op": "decrypt", "frame": new[0], "member": 0, "kind": "video"},  # the sender switched: epoch 1 retires
        {"op": "decrypt", "frame": old[1], "member": 0, "kind": "video"},  # a leaver's forgery would land here
        {"op": "decrypt", "frame": old_audio[0], "member": 0, "kind": "audio"},  # audio has not switched yet
        {"op": "install", "index": PAGE, "sendEpoch": 2, "keys": keys},  # the page's full set again
        {"op": "install", "index": PAGE, "sendEpoch": 2, "keys": keys[1:]},  # the grace ended: the Member dropped epoch 1
    ])
    assert _installed(r[0], mode, 0, "video") == [1, 2] and _installed(r[0], mode, 0, "audio") == [1, 2]
    assert r[1]["ok"] and r[1]["value"]["epoch"] == 1
    assert r[2]["ok"] and r[2]["value"] == {"data": bytes([0x31, 0]).hex() + b"frame".hex() if mode == "e2ee"
                                            else bytes([0x31, 0]).hex() + b"frame-body".hex(),
                                            "member": 0, "kind": "video", "epoch": 2}
    assert _installed(r[2], mode, 0, "video") == [2] and r[2]["retired"] == [[0, "video", 1], [0, "video", 2]]
    assert (r[3]["ok"], r[3]["reason"]) == (False, GONE[mode])
    assert r[4]["ok"] and _installed(r[4], mode, 0, "audio") == [1, 2]
    assert _installed(r[5], mode, 0, "video") == [2]  # never installed again
    assert _installed(r[6], mode, 0, "audio") == [2]


# --- the CTR: reserved before the await, exhausted never reused --------------------------------------------


def test_two_concurrent_copies_of_one_frame_exactly_one_is_accepted(page):
    base = os.urandom(32)
    kid = kid_for(1, 0, "video")
    frame = _sframe_frames(base, 1, 0, "video", 1)[0]
    got = page("replayRace", suite=4, kid=str(kid), base=base.hex(), frame=frame, copies=5)
    assert sorted(r["ok"] for r in got["race"]) == [False] * 4 + [True]
    assert {r.get("reason") for r in got["race"] if not r["ok"]} == {"replay"}
    # a forged copy first holds the CTR while it is checked (the genuine copy beside it is refused) ...
    assert [r.get("reason") for r in got["withForgery"]] == ["auth", "replay"]
    # ... and releases it when it fails: the genuine frame is then accepted, once
    assert got["afterRelease"]["ok"] and got["forgedAlone"]["reason"] == "auth" and got["genuineAfter"]["ok"]
    # the worker's receive path too: two streams announced as member 0's video carry the same frame
    page("newFrameKeys", name="race", mode="e2ee", suite=4)
    r = page("frameSteps", name="race", steps=[
        {"op": "install", "index": PAGE, "sendEpoch": None, "keys": [{"member": 0, "epoch": 1, "baseKey": base.hex()}]},
        {"op": "concurrent", "frames": [frame, frame], "member": 0, "kind": "video"}])
    assert sorted((x["ok"], x.get("reason")) for x in r[1]["value"]) == [(False, "replay"), (True, None)]


def test_concurrent_protects_never_share_a_ctr(page):
    base = os.urandom(32)
    kid = kid_for(3, PAGE, "audio")
    frames = [bytes.fromhex(f) for f in page("concurrentProtects", suite=4, kid=str(kid), base=base.hex(), n=64)]
    assert [decode_header(f)[:2] for f in frames] == [(kid, i) for i in range(64)]
    receiver = SFrameContext(CipherSuite.AES_128_GCM_SHA256_128)
    receiver.add_receive_key(kid, base)
    assert [receiver.unprotect(f) for f in frames] == [bytes([i]) for i in range(64)]
    # the worker's send path: its send KIDs per kind under the Member's send epoch
    page("newFrameKeys", name="send", mode="e2ee", suite=4)
    r = page("frameSteps", name="send", steps=[
        {"op": "install", "index": PAGE, "sendEpoch": 3, "keys": [{"member": PAGE, "epoch": 3, "baseKey": base.hex()}]},
        {"op": "encryptMany", "kind": "video", "n": 32, "data": "9d012a"}])
    sent = [bytes.fromhex(f) for f in r[1]["value"]]
    assert [decode_header(f)[:2] for f in sent] == [(kid_for(3, PAGE, "video"), i) for i in range(32)]


def test_ctr_and_iv_count_exhaustion_are_refused(page):
    base, kid = os.urandom(32), kid_for(1, 0, "video")
    got = page("ctrLimits", suite=4, kid=str(kid), base=base.hex())
    ctx = SFrameContext(CipherSuite.AES_128_GCM_SHA256_128)
    ctx.add_send_key(kid, base)
    assert got["last"]["value"] == ctx.protect(kid, bytes([1, 2, 3]), ctr=2**64 - 1).hex()  # the last CTR, byte for byte
    assert got["past"]["reason"] == "counter_exhausted" and got["back"]["reason"] == "nonce_reuse" and got["next"] == "6"
    key = os.urandom(16)
    iv = page("ivLimit", key=key.hex())
    python = ClearPrefixSender(key, key_index=7, initial_count=MAX_SEND_COUNT)
    frame = EncodedFrame(bytes(20), 90000, FrameMetadata(0x11223344, 96, "video"), "key")
    assert iv["last"]["value"] == python.transform(frame).data.hex()
    assert iv["past"]["reason"] == "iv_exhausted" and iv["count"] == MAX_SEND_COUNT + 1  # refused, not wrapped to 0


# --- attribution by KID ------------------------------------------------------------------------------------


def test_a_frame_on_another_members_or_kinds_stream_is_dropped_before_decryption(page):
    a, b = os.urandom(32), os.urandom(32)
    keys = [{"member": 0, "epoch": 1, "baseKey": a.hex()}, {"member": 2, "epoch": 1, "baseKey": b.hex()}]
    frame = _sframe_frames(a, 1, 0, "video", 1)[0]
    odd = SFrameContext(CipherSuite.AES_128_GCM_SHA256_128)
    odd.add_send_key(1 << 12 | 2 << 8, a)  # kind code 2: no KID of the layout
    page("newFrameKeys", name="attribution", mode="e2ee", suite=4)
    r = page("frameSteps", name="attribution", steps=[
        {"op": "install", "index": PAGE, "sendEpoch": None, "keys": keys},
        {"op": "decrypt", "frame": frame, "member": 2, "kind": "video"},  # moved onto bob's stream
        {"op": "decrypt", "frame": frame, "member": 0, "kind": "audio"},  # moved into alice's audio
        {"op": "decrypt", "frame": frame, "member": None, "kind": "video"},  # a stream no member publishes
        {"op": "decrypt", "frame": odd.protect(1 << 12 | 2 << 8, b"x").hex(), "member": 0, "kind": "video"},
        {"op": "decrypt", "frame": frame, "member": 0, "kind": "video"},  # its own stream: the window was untouched
        {"op": "decrypt", "frame": frame, "member": 0, "kind": "video"}])
    assert [x.get("reason") for x in r[1:5]] == ["kid_stream_mismatch"] * 3 + ["unknown_kid"]
    assert r[5]["ok"] and (r[5]["value"]["member"], r[5]["value"]["kind"]) == (0, "video")
    assert r[6]["reason"] == "replay"
    # clear-prefix has no KID: the announced publisher's key ring is used, and the tag fails
    clear = _clear_frames(a, 1, 0, "video", 1)[0]
    page("newFrameKeys", name="attribution-clear", mode="clear-prefix", suite=4)
    r = page("frameSteps", name="attribution-clear", steps=[
        {"op": "install", "index": PAGE, "sendEpoch": None, "keys": keys},
        {"op": "decrypt", "frame": clear, "member": 2, "kind": "video"},
        {"op": "decrypt", "frame": clear, "member": 3, "kind": "video"},
        {"op": "decrypt", "frame": clear, "member": None, "kind": "video"},
        {"op": "decrypt", "frame": clear, "member": 0, "kind": "video"}])
    assert [x.get("reason") for x in r[1:4]] == ["auth", "unknown_key", "unknown_key"] and r[4]["ok"]


def test_every_media_kind_has_its_own_kid(page):
    assert MEDIA_KINDS == ("audio", "video")
    got = page("kids", cases=[(4, PAGE, k) for k in MEDIA_KINDS], invalid=[])
    assert got["kids"] == [str(kid_for(4, PAGE, k)) for k in MEDIA_KINDS] and len(set(got["kids"])) == 2
