"""Suites 6-8 (AES-256-CTR + HMAC-SHA512, draft-barnes-sframe-iana-256-06): the draft's vectors for
the construction and for whole SFrame encryption, and the AEAD battery on the new suites."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from utils import load_vectors

from e2ee_lab.crypto.sframe import (
    AESCTRHMAC,
    AuthenticationFailed,
    CipherSuite,
    SFrameContext,
    derive_key_salt,
    key_labels,
)

VECTORS = load_vectors("sframe-aes256-ctr-vectors")
NEW = [CipherSuite(6), CipherSuite(7), CipherSuite(8)]
h = bytes.fromhex


def test_the_vector_file_names_its_source():
    assert "draft-barnes-sframe-iana-256-06" in VECTORS["_meta"]["source"]
    assert [v["cipher_suite"] for v in VECTORS["aes_256_ctr_hmac"]] == [6, 7, 8]
    assert [v["cipher_suite"] for v in VECTORS["sframe_aes_256_ctr_hmac"]] == [6, 7, 8]


@pytest.mark.parametrize("suite,nt", [(6, 10), (7, 8), (8, 4)])
def test_registry_sizes(suite, nt):
    s = CipherSuite(suite)
    assert (s.nh, s.nka, s.nk, s.nn, s.nt) == (64, 32, 96, 12, nt)
    assert s.is_ctr_hmac and s.hash_algorithm().name == "sha512"


@pytest.mark.parametrize("case", VECTORS["aes_256_ctr_hmac"], ids=lambda c: f"suite{c['cipher_suite']}")
def test_aes256_ctr_hmac_construction_vectors(case):
    aead = AESCTRHMAC(CipherSuite(case["cipher_suite"]), h(case["key"]))
    assert aead.encrypt(h(case["nonce"]), h(case["pt"]), h(case["aad"])).hex() == case["ct"]
    assert aead.decrypt(h(case["nonce"]), h(case["ct"]), h(case["aad"])) == h(case["pt"])
    assert h(case["key"])[:32] == h(case["enc_key"]) and h(case["key"])[32:] == h(case["auth_key"])


@pytest.mark.parametrize("case", VECTORS["sframe_aes_256_ctr_hmac"], ids=lambda c: f"suite{c['cipher_suite']}")
def test_sframe_vectors(case):
    suite, kid, ctr = CipherSuite(case["cipher_suite"]), case["kid"], case["ctr"]
    key_label, salt_label = key_labels(suite, kid)
    assert (key_label.hex(), salt_label.hex()) == (case["sframe_key_label"], case["sframe_salt_label"])
    key, salt = derive_key_salt(suite, kid, h(case["base_key"]))
    assert (key.hex(), salt.hex()) == (case["sframe_key"], case["sframe_salt"])
    send, recv = SFrameContext(suite), SFrameContext(suite)
    send.add_send_key(kid, h(case["base_key"]))
    recv.add_receive_key(kid, h(case["base_key"]))
    ct = send.protect(kid, h(case["pt"]), h(case["metadata"]), ctr=ctr)
    assert ct.hex() == case["ct"]
    assert recv.unprotect(ct, h(case["metadata"])) == h(case["pt"])


@pytest.mark.parametrize("case", VECTORS["sframe_aes_256_ctr_hmac"], ids=lambda c: f"suite{c['cipher_suite']}")
def test_every_byte_of_a_vector_ciphertext_is_authenticated(case):
    suite, kid = CipherSuite(case["cipher_suite"]), case["kid"]
    ct = h(case["ct"])
    for i in range(len(ct)):
        recv = SFrameContext(suite)
        recv.add_receive_key(kid, h(case["base_key"]))
        tampered = ct[:i] + bytes((ct[i] ^ 0x01,)) + ct[i + 1 :]
        with pytest.raises(Exception) as err:
            recv.unprotect(tampered, h(case["metadata"]))
        assert getattr(err.value, "reason", None) in {"auth", "malformed", "unknown_kid"}
    recv = SFrameContext(suite)
    recv.add_receive_key(kid, h(case["base_key"]))
    with pytest.raises(AuthenticationFailed):
        recv.unprotect(ct, h(case["metadata"]) + b"!")  # metadata is authenticated too


@pytest.mark.parametrize("suite", NEW, ids=lambda s: s.name)
def test_new_suites_refuse_bad_keys_and_tags(suite):
    with pytest.raises(ValueError):
        AESCTRHMAC(suite, bytes(48))  # a suite-1 length key
    aead = AESCTRHMAC(suite, bytes(96))
    sealed = aead.encrypt(bytes(12), b"frame", b"")
    assert len(sealed) == 5 + suite.nt
    with pytest.raises(InvalidTag):
        aead.decrypt(bytes(12), sealed[:-1] + bytes((sealed[-1] ^ 1,)), b"")
    with pytest.raises(InvalidTag):
        aead.decrypt(bytes(12), sealed[: suite.nt - 1], b"")
