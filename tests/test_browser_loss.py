"""Tests for e2ee_lab.browser.loss (Lab 10's loss experiment) without a browser: what Chrome's VP8
depacketizer reads from an SFrame frame's first RTP payload, the freeze measure, the SFU's one-frame
drop, and the senders' counter jump (Member.protect's ``min_ctr``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from e2ee_lab.browser.loss import OneFrameLoss, depacketizer_reading, jump_counters, recovery
from e2ee_lab.call.frame_keys import SFrameCrypto
from e2ee_lab.crypto.keys import Change, IdentityKeyPair, Member, RosterUpdate, kid_for
from e2ee_lab.crypto.sframe import NonceReuse, decode_header, encode_header
from e2ee_lab.rtp.vp8 import VP8PayloadDescriptor

VIDEO = kid_for(1, 0, "video")  # 0x1100, Alice's video in the lab's browser call


def _payload(kid: int, ctr: int) -> bytes:
    """The first RTP payload of an SFrame-encrypted VP8 frame as aiortc packetizes it."""
    descriptor = bytes(VP8PayloadDescriptor(start_of_partition=True, picture_id=1234))
    return descriptor + encode_header(kid, ctr) + bytes(40)


@pytest.mark.parametrize("ctr, p_bit", [(0, 0), (1, 1), (7, 1), (8, 0), (15, 0), (255, 0), (256, 1), (307, 1),
                                        (65535, 1), (65536, 0), (65537, 0), (2**24 - 1, 0), (2**24, 1), (2**32, 0)])
def test_the_p_bit_is_the_low_bit_of_the_ctr_length_minus_one(ctr, p_bit):
    got = depacketizer_reading(_payload(VIDEO, ctr))
    assert (got["kid"], got["kid_hex"], got["ctr"]) == (VIDEO, "0x1100", ctr)
    assert got["p_bit"] == p_bit and got["reads_as"] == ("key frame" if p_bit == 0 else "delta frame")
    assert got["config_byte"].startswith("1001")  # X=1, KKK=001: the 2-byte KID fills the high nibble only


def test_the_kid_never_reaches_the_p_bit():
    for kid in (1, 0x100, VIDEO, kid_for(16, 255, "video"), kid_for(2**32 - 1, 7, "audio")):
        assert {depacketizer_reading(_payload(kid, ctr))["p_bit"] for ctr in (300, 70000)} == {1, 0}


DESCRIPTOR = bytes(VP8PayloadDescriptor(start_of_partition=True, picture_id=1234))


@pytest.mark.parametrize("payload", [None, b"", b"\x90", DESCRIPTOR, DESCRIPTOR + b"\x99\x11", DESCRIPTOR + b"\x88\x00"],
                         ids=["none", "empty", "truncated-descriptor", "no-sframe", "truncated-kid", "non-minimal"])
def test_a_payload_that_does_not_parse_reads_as_nothing(payload):
    assert depacketizer_reading(payload) is None


def test_recovery_measure():
    assert recovery([0, 100, 200], None) == {"dropped": False}
    got = recovery([0, 100, 200, 1200, 1300], 150)
    assert got["recovered_after_s"] == 1.05
    assert recovery([0, 100, 200], 150)["recovered_after_s"] is None
    assert recovery([0, 100, 200, 300, 400, 500], 150)["recovered_after_s"] == 0.0  # no gap over 0.3 s


def test_one_frame_loss_drops_every_packet_of_one_frame_and_keeps_its_first_payload():
    clock = iter([0.0, 0.5, 1.0, 1.0, 1.1, 1.2]).__next__
    loss = OneFrameLoss("alice", "chromium", 1.0, clock)
    packets = [SimpleNamespace(timestamp=t, payload=_payload(VIDEO, c)) for t, c in
               ((0, 1), (3000, 2), (6000, 3), (6000, 3), (9000, 4))]
    assert not loss("bob", "chromium", "video", packets[0]) and not loss("alice", "chromium", "audio", packets[0])
    hits = [loss("alice", "chromium", "video", p) for p in packets]
    assert hits == [False, False, True, True, False] and loss.packets == 2 and loss.timestamp == 6000
    assert depacketizer_reading(loss.first_payload)["ctr"] == 3


def test_a_counter_jump_moves_ahead_and_never_back():
    identity = IdentityKeyPair.generate()
    alice = Member(0, identity, user="alice")
    alice.handle_roster(RosterUpdate(0, Change.JOIN, 0, (alice.entry,)), 0.0)
    crypto = SFrameCrypto(alice)
    frame = SimpleNamespace(kind="video", data=b"x", replace=lambda data: data)
    kid = kid_for(alice.send_epoch, alice.index, "video")
    first = crypto.protect(frame, 1.0)
    jump_counters([crypto], 300)
    jumped = [crypto.protect(frame, 1.0) for _ in range(2)]
    jump_counters([crypto], 10)  # below the counter: no effect
    after = crypto.protect(frame, 1.0)
    assert [decode_header(f)[:2] for f in (first, *jumped, after)] == [(kid, 0), (kid, 300), (kid, 301), (kid, 302)]
    audio = SimpleNamespace(kind="audio", data=b"x", replace=lambda data: data)
    assert decode_header(crypto.protect(audio, 1.0))[1] == 0  # only video jumps
    with pytest.raises(NonceReuse):
        alice.context.protect(kid, b"x", ctr=301)  # the skipped-over range stays behind, never reused
