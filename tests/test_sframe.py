"""Tests for e2ee_lab.crypto.sframe: RFC 9605 vectors, header codec, key schedule, AEAD battery,
tampering, replay window and counter rules."""

from __future__ import annotations

import random

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from utils import load_vectors

from e2ee_lab.crypto.sframe import (
    AESCTRHMAC,
    AuthenticationFailed,
    CipherSuite,
    CounterExhausted,
    MalformedHeader,
    NonceReuse,
    ReplayedFrame,
    ReplayWindow,
    SFrameContext,
    SFrameError,
    SFrameHeader,
    UnknownKeyId,
    decode_header,
    derive_key_salt,
    encode_header,
    header_length,
    key_labels,
    overhead,
    sframe_nonce,
)

VECTORS = load_vectors("rfc9605-test-vectors")
U64 = st.integers(0, 2**64 - 1)
SUITES = st.sampled_from(list(CipherSuite))
BASE_KEY = bytes(range(16))
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _h(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr)


def _pair(suite=CipherSuite.AES_128_GCM_SHA256_128, kid=3, window=128):
    sender, receiver = SFrameContext(suite), SFrameContext(suite, window=window)
    sender.add_send_key(kid, BASE_KEY)
    receiver.add_receive_key(kid, BASE_KEY)
    return sender, receiver


# --- RFC 9605 Appendix C vectors -----------------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS["header"], ids=lambda v: f"kid{v['kid']:#x}-ctr{v['ctr']:#x}")
def test_header_vector_encodes(v):
    assert encode_header(v["kid"], v["ctr"]) == _h(v["encoded"])


@pytest.mark.parametrize("v", VECTORS["header"], ids=lambda v: f"kid{v['kid']:#x}-ctr{v['ctr']:#x}")
def test_header_vector_decodes(v):
    encoded = _h(v["encoded"])
    assert decode_header(encoded) == (v["kid"], v["ctr"], len(encoded))


@pytest.mark.parametrize("v", VECTORS["aes_ctr_hmac"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_aes_ctr_hmac_vector(v):
    aead = CipherSuite(v["cipher_suite"]).aead(_h(v["key"]))
    assert isinstance(aead, AESCTRHMAC)
    nonce, aad, pt, ct = _h(v["nonce"]), _h(v["aad"]), _h(v["pt"]), _h(v["ct"])
    assert aead.encrypt(nonce, pt, aad) == ct
    assert aead.decrypt(nonce, ct, aad) == pt
    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, ct[:-1] + bytes([ct[-1] ^ 1]), aad)


@pytest.mark.parametrize("v", VECTORS["sframe"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_key_schedule_vector(v):
    suite = CipherSuite(v["cipher_suite"])
    key, salt = derive_key_salt(suite, v["kid"], _h(v["base_key"]))
    assert (key.hex(), salt.hex()) == (v["sframe_key"], v["sframe_salt"])
    assert key_labels(suite, v["kid"]) == (_h(v["sframe_key_label"]), _h(v["sframe_salt_label"]))
    assert sframe_nonce(salt, v["ctr"]).hex() == v["nonce"]


@pytest.mark.parametrize("v", VECTORS["sframe"], ids=lambda v: f"suite{v['cipher_suite']}")
def test_sframe_vector(v):
    suite, kid, base_key = v["cipher_suite"], v["kid"], _h(v["base_key"])
    sender, receiver = SFrameContext(suite), SFrameContext(suite)
    sender.add_send_key(kid, base_key)
    receiver.add_receive_key(kid, base_key)
    ct = sender.protect(kid, _h(v["pt"]), _h(v["metadata"]), ctr=v["ctr"])
    assert ct.hex() == v["ct"]
    assert ct.startswith(_h(v["aad"])[: header_length(kid, v["ctr"])])
    assert receiver.unprotect(ct, _h(v["metadata"])) == _h(v["pt"])


@pytest.mark.parametrize("value", [0, 9, 0xF000], ids=["reserved", "unassigned", "private-use"])
def test_only_registered_suites_are_offered(value):
    # 1-5 (RFC 9605) and 6-8 (draft-barnes-sframe-iana-256, tests/test_sframe_aes256.py) only.
    with pytest.raises(ValueError):
        CipherSuite(value)


# --- cipher suites ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suite, nk, nn, nt, nka, nh, hash_name",
    [(1, 48, 12, 10, 16, 32, "sha256"), (2, 48, 12, 8, 16, 32, "sha256"), (3, 48, 12, 4, 16, 32, "sha256"),
     (4, 16, 12, 16, 0, 32, "sha256"), (5, 32, 12, 16, 0, 64, "sha512")],
    ids=[s.name for s in CipherSuite if s <= 5],
)
def test_suite_parameters_match_the_rfc_table(suite, nk, nn, nt, nka, nh, hash_name):
    s = CipherSuite(suite)
    assert (s.nk, s.nn, s.nt, s.nka, s.nh, s.hash_algorithm().name) == (nk, nn, nt, nka, nh, hash_name)
    assert (s.Nk, s.Nn, s.Nt) == (nk, nn, nt)
    assert s.is_ctr_hmac == (nka > 0)
    match = next(row for row in VECTORS["cipher_suites"] if row["id"] == suite)
    assert (match["name"], match["Nk"], match["Nt"]) == (s.name, nk, nt)


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_suite_aead_rejects_wrong_key_lengths(suite):
    for length in (0, suite.nk - 1, suite.nk + 1):
        with pytest.raises(ValueError):
            suite.aead(bytes(length))


def test_ctr_hmac_aead_checks_its_arguments():
    with pytest.raises(ValueError):
        AESCTRHMAC(CipherSuite.AES_128_GCM_SHA256_128, bytes(16))
    aead = AESCTRHMAC(CipherSuite.AES_128_CTR_HMAC_SHA256_80, bytes(48))
    with pytest.raises(ValueError):
        aead.encrypt(bytes(11), b"x", None)
    with pytest.raises(TypeError):
        aead.encrypt(bytes(12), "text", None)
    with pytest.raises(InvalidTag):
        aead.decrypt(bytes(12), bytes(9), None)  # shorter than the 10-byte tag
    assert aead.decrypt(bytes(12), aead.encrypt(bytes(12), b"x", None), b"") == b"x"


# --- header codec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hexstr",
    ["8000", "8007", "900001", "9000ff", "0800", "0807", "090001", "0900ff", "8800ff08", "880807",
     "8908000a"],
    ids=lambda h: f"nonminimal-{h}",
)
def test_non_minimal_headers_are_rejected(hexstr):
    with pytest.raises(MalformedHeader) as err:
        decode_header(_h(hexstr))
    assert err.value.reason == "malformed" and "non-minimal" in str(err.value)


@pytest.mark.parametrize("hexstr", ["", "80", "08", "9001", "0f" + "01" * 7, "ff" + "01" * 15],
                         ids=lambda h: f"truncated-{h or 'empty'}")
def test_truncated_headers_are_rejected(hexstr):
    with pytest.raises(MalformedHeader) as err:
        decode_header(_h(hexstr))
    assert "missing" in str(err.value) or "present" in str(err.value)


@given(kid=U64, ctr=U64, tail=st.binary(max_size=20))
@FAST
def test_header_round_trip_ignores_trailing_bytes(kid, ctr, tail):
    header = encode_header(kid, ctr)
    assert 1 <= len(header) == header_length(kid, ctr) <= 17
    for data in (header + tail, bytearray(header + tail), memoryview(header + tail)):
        assert decode_header(data) == (kid, ctr, len(header))
    assert SFrameHeader.parse(header + tail) == SFrameHeader(kid, ctr)
    assert bytes(SFrameHeader(kid, ctr)) == header and len(SFrameHeader(kid, ctr)) == len(header)


@given(data=st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_decode_header_on_any_bytes_parses_or_raises_malformed(data):
    try:
        kid, ctr, length = decode_header(data)
    except MalformedHeader:
        return
    assert encode_header(kid, ctr) == data[:length]  # strict: only the minimal spelling parses


@pytest.mark.parametrize("kid, ctr, exc", [(-1, 0, ValueError), (0, 2**64, ValueError),
                                           (2**64, 0, ValueError), ("1", 0, TypeError),
                                           (0, 1.0, TypeError), (True, 0, TypeError)],
                         ids=["kid-neg", "ctr-2^64", "kid-2^64", "kid-str", "ctr-float", "kid-bool"])
def test_encode_header_rejects_bad_values(kid, ctr, exc):
    with pytest.raises(exc):
        encode_header(kid, ctr)


@pytest.mark.parametrize("bad", ["0800", 8, None, [8, 0]], ids=["str", "int", "none", "list"])
def test_decode_header_wrong_type_raises_type_error(bad):
    with pytest.raises(TypeError):
        decode_header(bad)


def test_overhead_is_header_plus_tag():
    assert overhead(CipherSuite.AES_128_GCM_SHA256_128, 0x123, 0x4567) == 5 + 16
    assert overhead(3, 0, 0) == 1 + 4
    assert overhead(1, 2**64 - 1, 2**64 - 1) == 17 + 10


# --- key schedule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, exc", [((4, 1, bytes(15)), ValueError), ((4, -1, BASE_KEY), ValueError),
                                       ((0, 1, BASE_KEY), ValueError), ((4, 1, "key" * 8), TypeError),
                                       ((4, "1", BASE_KEY), TypeError)],
                         ids=["short-key", "kid-neg", "suite-0", "key-str", "kid-str"])
def test_derive_key_salt_rejects_bad_input(args, exc):
    with pytest.raises(exc):
        derive_key_salt(*args)


@given(suite=SUITES, kids=st.lists(U64, min_size=2, max_size=2, unique=True), ctrs=st.tuples(U64, U64))
@FAST
def test_two_send_keys_never_share_a_key_and_nonce(suite, kids, ctrs):
    (k1, s1), (k2, s2) = (derive_key_salt(suite, kid, BASE_KEY) for kid in kids)
    assert (k1, sframe_nonce(s1, ctrs[0])) != (k2, sframe_nonce(s2, ctrs[1]))
    assert k1 != k2 and s1 != s2


def test_one_base_key_gives_unrelated_keys_per_suite():
    keys = {derive_key_salt(s, 7, BASE_KEY)[0][:16] for s in CipherSuite}
    assert len(keys) == len(CipherSuite)


# --- protect / unprotect ---------------------------------------------------------------------------


@given(suite=SUITES, kid=U64, ctr=U64, size=st.integers(0, 100_000), metadata=st.binary(max_size=32),
       seed=st.integers(0, 2**32))
@settings(max_examples=60, deadline=None)
def test_round_trip(suite, kid, ctr, size, metadata, seed):
    sender, receiver = _pair(suite, kid)
    plaintext = random.Random(seed).randbytes(size)
    ct = sender.protect(kid, plaintext, metadata, ctr=ctr)
    assert len(ct) == len(plaintext) + overhead(suite, kid, ctr)
    assert decode_header(ct)[:2] == (kid, ctr)
    assert receiver.unprotect(ct, metadata) == plaintext


@given(suite=SUITES, kid=st.integers(0, 300), ctr=st.integers(0, 70_000),
       metadata=st.binary(min_size=1, max_size=8), data=st.data())
@settings(max_examples=80, deadline=None)
def test_any_single_bit_flip_is_rejected(suite, kid, ctr, metadata, data):
    sender, receiver = _pair(suite, kid)
    ct = sender.protect(kid, b"a frame of media", metadata, ctr=ctr)
    where = data.draw(st.sampled_from(["frame", "metadata"]))
    target = bytearray(ct if where == "frame" else metadata)
    bit = data.draw(st.integers(0, len(target) * 8 - 1))
    target[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SFrameError):
        if where == "frame":
            receiver.unprotect(bytes(target), metadata)
        else:
            receiver.unprotect(ct, bytes(target))
    assert receiver.unprotect(ct, metadata) == b"a frame of media"  # the failure moved nothing


@given(suite=SUITES, ctr=st.integers(0, 70_000), data=st.data())
@settings(max_examples=60, deadline=None)
def test_a_decoded_header_that_does_not_match_the_bytes_opens_nothing(suite, ctr, data):
    """unprotect_decoded trusts its caller's parse of the header: the right one opens the frame as
    unprotect does; any other KID, CTR or header length fails, and moves no replay window."""
    kids = (5, 300)  # one-byte and extended KIDs, both held by the receiver
    sender, receiver = SFrameContext(suite), SFrameContext(suite)
    for kid in kids:
        sender.add_send_key(kid, BASE_KEY)
        receiver.add_receive_key(kid, BASE_KEY)
    kid = data.draw(st.sampled_from(kids))
    ct = sender.protect(kid, b"a frame", b"m", ctr=ctr)
    right = decode_header(ct)
    wrong = data.draw(st.tuples(st.sampled_from(kids), st.integers(0, 70_000), st.integers(1, 12)).filter(
        lambda h: h != right))
    with pytest.raises(SFrameError):
        receiver.unprotect_decoded(ct, wrong, b"m")
    assert receiver.unprotect_decoded(ct, right, b"m") == b"a frame"
    with pytest.raises(ReplayedFrame):
        receiver.unprotect(ct, b"m")


@pytest.mark.parametrize("part", ["header", "ciphertext", "tag", "metadata"])
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_tampering_each_field_fails_authentication(suite, part):
    sender, receiver = _pair(suite, kid=5)
    ct = bytearray(sender.protect(5, b"payload bytes", b"meta", ctr=1000))
    metadata = bytearray(b"meta")
    index = {"header": 2, "ciphertext": 4, "tag": len(ct) - 1, "metadata": 0}[part]
    (metadata if part == "metadata" else ct)[index] ^= 0x01  # header byte 2: the CTR's low byte
    with pytest.raises(AuthenticationFailed) as err:
        receiver.unprotect(bytes(ct), bytes(metadata))
    assert err.value.reason == "auth" and str(err.value) == "authentication failed"


# Arbitrary bytes, and arbitrary bodies behind a well-formed header of a KID the receiver holds
# (so the tag check, not only the header parser, meets garbage), in every suite.
GARBAGE = st.binary(max_size=2048) | st.builds(lambda kid, ctr, body: encode_header(kid, ctr) + body,
                                               st.integers(0, 4), U64, st.binary(max_size=2048))


@given(suite=SUITES, data=GARBAGE, kind=st.sampled_from([bytes, bytearray, memoryview]))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_raise_only_sframe_errors(suite, data, kind):
    receiver = SFrameContext(suite)
    for kid in range(4):
        receiver.add_receive_key(kid, BASE_KEY)
    receiver.add_send_key(4, BASE_KEY)
    with pytest.raises(SFrameError):
        receiver.unprotect(kind(data))


@given(suite=SUITES, base_keys=st.lists(st.sampled_from([BASE_KEY, bytes(range(1, 17))]), min_size=3, max_size=3),
       order=st.lists(st.integers(0, 2), max_size=60), skips=st.lists(U64, max_size=3))
@FAST
def test_protect_never_uses_a_key_and_nonce_twice(suite, base_keys, order, skips):
    # three send keys (two may share a base key), frames in any order, explicit CTR jumps ahead:
    # the (key, nonce) of every frame, recomputed from its header, is never seen twice
    sender, receiver = SFrameContext(suite), SFrameContext(suite)
    for kid, base in enumerate(base_keys):
        sender.add_send_key(kid, base)
        receiver.add_receive_key(kid, base)
    seen = set()
    for i, kid in enumerate(order):
        ctr = None
        if skips and i % 20 == 0:
            ctr = max(skips.pop(), sender.next_counter(kid))
        try:
            frame = sender.protect(kid, b"frame %d" % i, ctr=ctr)
        except CounterExhausted:
            continue
        got_kid, got_ctr, _ = decode_header(frame)
        key, salt = derive_key_salt(suite, got_kid, base_keys[got_kid])
        pair = (key, sframe_nonce(salt, got_ctr))
        assert pair not in seen and receiver.unprotect(frame) == b"frame %d" % i
        seen.add(pair)


def test_frame_under_another_suite_fails_authentication():
    sender, _ = _pair(CipherSuite.AES_128_CTR_HMAC_SHA256_80)
    _, receiver = _pair(CipherSuite.AES_128_GCM_SHA256_128)
    with pytest.raises(AuthenticationFailed):
        receiver.unprotect(sender.protect(3, b"x"))


# --- the AEAD battery (STYLE.md §14) -----------------------------------------------------------------


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_none_metadata_is_empty_metadata(suite):
    sender, receiver = _pair(suite)
    assert receiver.unprotect(sender.protect(3, b"x", None), b"") == b"x"
    assert receiver.unprotect(sender.protect(3, b"y", b""), None) == b"y"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview], ids=lambda k: k.__name__)
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_bytes_bytearray_memoryview_agree(suite, kind):
    reference, _ = _pair(suite)
    expected = reference.protect(3, b"plain text", b"meta", ctr=9)
    sender = SFrameContext(suite)
    sender.add_send_key(3, kind(BASE_KEY))
    ct = sender.protect(3, kind(b"plain text"), kind(b"meta"), ctr=9)
    assert ct == expected and type(ct) is bytes
    receiver = SFrameContext(suite)
    receiver.add_receive_key(3, kind(BASE_KEY))
    assert receiver.unprotect(kind(ct), kind(b"meta")) == b"plain text"


@pytest.mark.parametrize("call", [
    lambda s, r, ct: s.protect(3, "text"),
    lambda s, r, ct: s.protect(3, None),
    lambda s, r, ct: s.protect(3, 42),
    lambda s, r, ct: s.protect(3, b"x", "meta"),
    lambda s, r, ct: s.protect(3, b"x", ""),
    lambda s, r, ct: s.protect(3, b"x", ctr="5"),
    lambda s, r, ct: s.protect("3", b"x"),
    lambda s, r, ct: r.unprotect(ct.hex()),
    lambda s, r, ct: r.unprotect(None),
    lambda s, r, ct: r.unprotect(ct, "meta"),
    lambda s, r, ct: s.add_send_key(9, "a string key of some length"),
    lambda s, r, ct: s.add_send_key(1.5, BASE_KEY),
    lambda s, r, ct: SFrameContext("4"),
], ids=["pt-str", "pt-none", "pt-int", "md-str", "md-empty-str", "ctr-str", "kid-str", "ct-str", "ct-none",
        "unprotect-md-str", "key-str", "kid-float", "suite-str"])
@pytest.mark.parametrize("suite", [1, 4], ids=["ctr-hmac", "gcm"])
def test_wrong_types_raise_type_error(suite, call):
    sender, receiver = _pair(suite)
    ct = _pair(suite)[0].protect(3, b"x")
    with pytest.raises(TypeError):
        call(sender, receiver, ct)


@pytest.mark.parametrize("call", [
    lambda: SFrameContext(4).add_send_key(1, bytes(15)),
    lambda: SFrameContext(4).add_receive_key(1, b""),
    lambda: SFrameContext(4).add_send_key(2**64, BASE_KEY),
    lambda: SFrameContext(9),
    lambda: SFrameContext(4, window=-1),
    lambda: ReplayWindow(0),
], ids=["send-key-15", "recv-key-0", "kid-2^64", "suite-9", "window-neg", "window-obj-0"])
def test_bad_lengths_and_values_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# --- keys and counters ------------------------------------------------------------------------------


def test_keys_are_encrypt_only_or_decrypt_only():
    ctx = SFrameContext(4)
    ctx.add_send_key(1, BASE_KEY)
    ctx.add_receive_key(2, BASE_KEY)
    assert (ctx.send_kids, ctx.receive_kids) == ({1}, {2})
    assert ctx.has_send_key(1) and not ctx.has_send_key(2)
    assert ctx.has_receive_key(2) and not ctx.has_receive_key(1)
    with pytest.raises(UnknownKeyId, match="receive key"):
        ctx.protect(2, b"x")
    with pytest.raises(UnknownKeyId, match="send key") as err:
        ctx.unprotect(ctx.protect(1, b"x"))  # its own send key cannot decrypt
    assert err.value.reason == "unknown_kid"
    with pytest.raises(ValueError):
        ctx.add_receive_key(1, BASE_KEY)
    with pytest.raises(ValueError):
        ctx.add_send_key(2, BASE_KEY)


def test_unknown_kid_and_remove_key():
    sender, receiver = _pair(kid=3)
    ct = sender.protect(3, b"x")
    receiver.remove_key(3)
    with pytest.raises(UnknownKeyId):
        receiver.unprotect(ct)
    with pytest.raises(UnknownKeyId):
        receiver.remove_key(3)
    with pytest.raises(UnknownKeyId):
        sender.protect(4, b"x")


def test_counter_counts_up_from_zero_and_skips_but_never_goes_back():
    sender, receiver = _pair(kid=0)
    assert [decode_header(sender.protect(0, b""))[1] for _ in range(3)] == [0, 1, 2]
    assert decode_header(sender.protect(0, b"", ctr=10))[1] == 10
    assert sender.next_counter(0) == 11
    for ctr in (10, 3, 0):
        with pytest.raises(NonceReuse) as err:
            sender.protect(0, b"", ctr=ctr)
        assert err.value.reason == "nonce_reuse"
    with pytest.raises(ValueError):
        sender.protect(0, b"", ctr=-1)
    assert decode_header(sender.protect(0, b""))[1] == 11


def test_removed_key_added_again_resumes_counter_and_window():
    sender, receiver = _pair(kid=3)
    frames = [sender.protect(3, b"f%d" % i) for i in range(3)]
    assert receiver.unprotect(frames[0]) == b"f0"
    sender.remove_key(3)
    sender.add_send_key(3, BASE_KEY)
    assert sender.next_counter(3) == 3  # not back to 0: no nonce reuse through remove/add
    receiver.remove_key(3)
    receiver.add_receive_key(3, BASE_KEY)
    with pytest.raises(ReplayedFrame):
        receiver.unprotect(frames[0])
    sender.remove_key(3)
    sender.add_send_key(3, bytes(range(1, 17)))  # a new key starts at 0
    assert sender.next_counter(3) == 0


def test_counter_exhaustion_raises_and_never_wraps():
    sender, receiver = _pair(kid=3)
    last = sender.protect(3, b"last", ctr=2**64 - 1)
    assert decode_header(last)[:2] == (3, 2**64 - 1)
    assert receiver.unprotect(last) == b"last"
    with pytest.raises(CounterExhausted) as err:
        sender.protect(3, b"x")
    assert err.value.reason == "counter_exhausted"
    with pytest.raises(CounterExhausted):
        _pair(kid=4)[0].protect(4, b"x", ctr=2**64)


# --- replay window ---------------------------------------------------------------------------------


def test_replay_is_rejected():
    sender, receiver = _pair()
    ct = sender.protect(3, b"once")
    assert receiver.unprotect(ct) == b"once"
    with pytest.raises(ReplayedFrame, match="already") as err:
        receiver.unprotect(ct)
    assert err.value.reason == "replay"


@given(order=st.permutations(range(16)))
@FAST
def test_reordering_inside_the_window_is_accepted_once(order):
    sender, receiver = _pair(window=16)
    frames = [sender.protect(3, bytes([i])) for i in range(16)]
    assert [receiver.unprotect(frames[i]) for i in order] == [bytes([i]) for i in order]
    for i in order[:3]:
        with pytest.raises(ReplayedFrame):
            receiver.unprotect(frames[i])


@pytest.mark.parametrize("behind, accepted", [(15, True), (16, False), (1000, False)],
                         ids=["edge-inside", "edge-outside", "far"])
def test_too_old_is_rejected(behind, accepted):
    sender, receiver = _pair(window=16)
    old = sender.protect(3, b"old", ctr=0)
    receiver.unprotect(sender.protect(3, b"new", ctr=behind))
    if accepted:
        assert receiver.unprotect(old) == b"old"
    else:
        with pytest.raises(ReplayedFrame, match="window"):
            receiver.unprotect(old)


def test_forged_frame_does_not_move_the_window():
    sender, receiver = _pair(window=16)
    genuine = sender.protect(3, b"genuine")  # CTR 0
    forged = encode_header(3, 10_000) + bytes(40)
    with pytest.raises(AuthenticationFailed):
        receiver.unprotect(forged)
    assert receiver.unprotect(genuine) == b"genuine"


@pytest.mark.parametrize("window", [0, None])
def test_window_can_be_turned_off(window):
    sender, receiver = _pair(window=window)
    ct = sender.protect(3, b"again")
    assert receiver.unprotect(ct) == receiver.unprotect(ct) == b"again"


def test_huge_jump_does_not_blow_up_the_window():
    window = ReplayWindow(128)
    window.update(0)
    window.update(2**64 - 1)
    window.check(2**64 - 2)
    with pytest.raises(ReplayedFrame):
        window.check(2**64 - 1)
    with pytest.raises(ReplayedFrame):
        window.check(0)


@pytest.mark.parametrize("cls, reason", [(MalformedHeader, "malformed"), (UnknownKeyId, "unknown_kid"),
                                         (AuthenticationFailed, "auth"), (ReplayedFrame, "replay"),
                                         (CounterExhausted, "counter_exhausted"),
                                         (NonceReuse, "nonce_reuse")],
                         ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_every_error_names_its_drop_counter(cls, reason):
    assert issubclass(cls, SFrameError) and cls.reason == reason
