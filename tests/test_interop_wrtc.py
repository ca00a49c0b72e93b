"""libwebrtc's native SFrame (PyPI wrtc, libwebrtc M152) against e2ee_lab's, byte for byte both ways,
for every suite both sides have; and wrtc's pitfalls reproduced (nonce reuse, no replay window).

Needs the ``interop`` extra; without wrtc every test here skips with the reason. Standalone
SFrameTransform objects only: no peer connection, no network."""

from __future__ import annotations

import os
import random

import pytest
from utils import load_vectors

from e2ee_lab.crypto.sframe import (
    AuthenticationFailed,
    CipherSuite,
    MalformedHeader,
    SFrameContext,
    UnknownKeyId,
    decode_header,
)
from e2ee_lab.interop import WrtcSFrame, wrtc_problem
from e2ee_lab.interop.wrtc_sframe import wrtc_known_answer, wrtc_known_answer_decrypt

pytestmark = pytest.mark.skipif(wrtc_problem() is not None, reason=str(wrtc_problem()))

RFC = load_vectors("rfc9605-test-vectors")
SUITES = list(CipherSuite)  # every suite the lab has; wrtc 0.1.0 has suites 1-8


def lab_pair(suite, kid, key):
    send, recv = SFrameContext(suite), SFrameContext(suite)
    send.add_send_key(kid, key)
    recv.add_receive_key(kid, key)
    return send, recv


def wrtc_pair(suite, kid, key):
    send, recv = WrtcSFrame(suite, encrypting=True), WrtcSFrame(suite, encrypting=False)
    send.set_key(kid, key)
    recv.set_key(kid, key)
    return send, recv


@pytest.mark.parametrize("case", RFC["sframe"], ids=lambda c: f"suite{c['cipher_suite']}")
def test_wrtc_reproduces_the_rfc9605_vectors(case):
    h = bytes.fromhex
    ct = wrtc_known_answer(case["cipher_suite"], h(case["base_key"]), case["kid"], case["ctr"],
                           h(case["metadata"]), h(case["pt"]))
    assert ct.hex() == case["ct"]
    assert wrtc_known_answer_decrypt(case["cipher_suite"], h(case["base_key"]), h(case["metadata"]),
                                     ct) == h(case["pt"])


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_random_frames_are_byte_identical_and_decrypt_both_ways(suite):
    rng = random.Random(int(suite))
    for _ in range(30):
        kid, key = rng.randrange(2**16), rng.randbytes(16)
        lab_send, lab_recv = lab_pair(suite, kid, key)
        native_send, native_recv = wrtc_pair(suite, kid, key)
        for size in (1, 17, rng.randrange(2, 3000)):
            frame = rng.randbytes(size)
            ours, theirs = lab_send.protect(kid, frame), native_send.protect(frame)
            assert ours == theirs  # same key, KID, CTR and empty metadata: same bytes
            assert native_recv.unprotect(ours) == frame
            assert lab_recv.unprotect(theirs) == frame


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_explicit_ctr_and_metadata_agree_both_ways(suite):
    rng = random.Random(100 + int(suite))
    for _ in range(20):
        kid, ctr, key = rng.randrange(2**64), rng.randrange(2**64), rng.randbytes(32)
        metadata, frame = rng.randbytes(rng.randrange(40)), rng.randbytes(rng.randrange(1, 500))
        send, recv = lab_pair(suite, kid, key)
        ours = send.protect(kid, frame, metadata, ctr=ctr)
        assert wrtc_known_answer(int(suite), key, kid, ctr, metadata, frame) == ours
        assert wrtc_known_answer_decrypt(int(suite), key, metadata, ours) == frame
        assert recv.unprotect(ours, metadata) == frame


def test_wrtc_refusals_map_to_the_lab_error_family():
    send, recv = wrtc_pair(CipherSuite.AES_128_GCM_SHA256_128, 5, os.urandom(16))
    frame = bytearray(send.protect(b"media"))
    frame[-1] ^= 1
    with pytest.raises(AuthenticationFailed):
        recv.unprotect(bytes(frame))
    with pytest.raises(UnknownKeyId):
        recv.unprotect(b"\x60" + bytes(20))  # KID 6 has no key
    with pytest.raises(MalformedHeader):
        recv.unprotect(b"")


def test_wrtc_is_looser_than_the_lab():
    import wrtc

    assert wrtc._sframeParseHeader(b"\x80\x05") == (5, 0, 2)  # KID 5 in an extension byte
    with pytest.raises(MalformedHeader):
        decode_header(b"\x80\x05")  # the lab insists on the minimal form (RFC 9605 §4.3)
    native = WrtcSFrame(CipherSuite.AES_128_GCM_SHA256_128, encrypting=True)
    native.set_key(1, b"")  # an empty base key is accepted...
    with pytest.raises(ValueError):
        SFrameContext(CipherSuite.AES_128_GCM_SHA256_128).add_send_key(1, b"")  # ...not here


# --- Lab 07: wrtc's pitfalls --------------------------------------------------------------------


@pytest.mark.parametrize("suite", [CipherSuite.AES_128_GCM_SHA256_128,
                                   CipherSuite.AES_128_CTR_HMAC_SHA256_80], ids=lambda s: s.name)
def test_one_kid_across_audio_and_video_reuses_the_nonce_in_wrtc(suite):
    from e2ee_lab.attacks.native import native_nonce_reuse

    audio, video = bytes(160), os.urandom(300)  # a known (silent) audio frame, a secret video frame
    pitfall = native_nonce_reuse(audio, video, suite=suite, kids=(1, 1))
    assert pitfall.same_nonce and pitfall.xor_leaks and pitfall.recovered_ok
    assert pitfall.recovered == video[:160]
    fixed = native_nonce_reuse(audio, video, suite=suite, kids=(2, 3))  # one KID per media kind
    assert not fixed.same_nonce and not fixed.xor_leaks and not fixed.recovered_ok


def test_wrtc_accepts_replays_that_the_lab_refuses():
    from e2ee_lab.attacks.native import replay_against_native

    table = replay_against_native(frames=20, replayed=range(5)).set_index("receiver")
    lab = table.loc["e2ee_lab SFrameContext (window 128)"]
    native = table.loc["libwebrtc SFrameTransform (wrtc)"]
    assert lab.frames_accepted == native.frames_accepted == 20
    assert (lab.replays_accepted, lab.replays_refused) == (0, 5)
    assert lab.refusal_reasons == {"replay": 5}
    assert (native.replays_accepted, native.replays_refused) == (5, 0)
