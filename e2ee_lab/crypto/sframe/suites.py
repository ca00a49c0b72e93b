"""SFrame's cipher suites and key schedule (RFC 9605 §4.4.2, §4.5, §8.1; draft-barnes-sframe-iana-256-06).

:class:`CipherSuite` names the eight registered suites with their sizes: RFC 9605's five and the
AES-256-CTR + HMAC-SHA512 instances of the §4.5.1 construction (suites 6-8: Nka 32, Nh 64, Nk 96,
tags of 10, 8 and 4 bytes) that draft-barnes-sframe-iana-256-06 (§2, §4.2 there) adds and IANA
registered; :meth:`CipherSuite.aead` keys the
suite's AEAD: AES-GCM from ``cryptography`` (suites 4 and 5, §4.5) or :class:`AESCTRHMAC`, the
AES-CTR + HMAC construction of §4.5.1 (suites 1-3, encrypt-then-MAC with a truncated tag). The key
schedule (§4.4.2) is :func:`derive_key_salt`: HKDF-Extract with an empty salt, HKDF-Expand with
the labels "SFrame 1.0 Secret key " / "SFrame 1.0 Secret salt " followed by KID as 8 bytes and
the suite as 2 bytes (:func:`key_labels`); the per-frame nonce is salt XOR CTR (§4.4.3,
:func:`sframe_nonce`). Every primitive comes from ``cryptography``; this module only arranges them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from e2ee_lab.crypto.sframe.header import byte_view, check_u64, header_length

MIN_BASE_KEY_LEN = 16  # this module's policy: a base key shorter than 128 bits is refused
KEY_LABEL = b"SFrame 1.0 Secret key "  # §4.4.2, note the trailing space
SALT_LABEL = b"SFrame 1.0 Secret salt "  # §4.4.2


# --- cipher suites (§4.5, §8.1) ----------------------------------------------------------------


@dataclass(frozen=True)
class _SuiteParams:
    hash_name: str  # "SHA256" or "SHA512", the attribute of cryptography.hazmat.primitives.hashes
    nh: int  # hash output bytes
    nka: int  # AES key bytes inside the AEAD key (CTR suites), 0 for GCM
    nk: int  # AEAD key bytes
    nn: int  # nonce bytes
    nt: int  # tag bytes (the whole per-frame cipher overhead)


_PARAMS: dict[int, _SuiteParams] = {
    1: _SuiteParams("SHA256", 32, 16, 48, 12, 10),
    2: _SuiteParams("SHA256", 32, 16, 48, 12, 8),
    3: _SuiteParams("SHA256", 32, 16, 48, 12, 4),
    4: _SuiteParams("SHA256", 32, 0, 16, 12, 16),
    5: _SuiteParams("SHA512", 64, 0, 32, 12, 16),
    6: _SuiteParams("SHA512", 64, 32, 96, 12, 10),  # draft-barnes-sframe-iana-256-06 §4.2
    7: _SuiteParams("SHA512", 64, 32, 96, 12, 8),
    8: _SuiteParams("SHA512", 64, 32, 96, 12, 4),
}


class CipherSuite(IntEnum):
    """The SFrame cipher suites with their sizes in bytes (``nk``, ``nn``, ``nt``, ...): RFC 9605's
    five and the three AES-256-CTR + HMAC-SHA512 suites of draft-barnes-sframe-iana-256-06."""

    AES_128_CTR_HMAC_SHA256_80 = 1
    AES_128_CTR_HMAC_SHA256_64 = 2
    AES_128_CTR_HMAC_SHA256_32 = 3
    AES_128_GCM_SHA256_128 = 4
    AES_256_GCM_SHA512_128 = 5
    AES_256_CTR_HMAC_SHA512_80 = 6
    AES_256_CTR_HMAC_SHA512_64 = 7
    AES_256_CTR_HMAC_SHA512_32 = 8

    @property
    def nk(self) -> int:
        """AEAD key length (for CTR suites: AES key + HMAC key)."""
        return _PARAMS[self].nk

    @property
    def nn(self) -> int:
        """Nonce length."""
        return _PARAMS[self].nn

    @property
    def nt(self) -> int:
        """Tag length, the cipher's whole overhead per frame."""
        return _PARAMS[self].nt

    @property
    def nka(self) -> int:
        """AES key length inside the AEAD key of a CTR suite (0 for GCM suites)."""
        return _PARAMS[self].nka

    @property
    def nh(self) -> int:
        """Output length of the suite's hash."""
        return _PARAMS[self].nh

    # The RFC's own spellings, for readers following the text.
    Nk = nk
    Nn = nn
    Nt = nt
    Nka = nka
    Nh = nh

    @property
    def is_ctr_hmac(self) -> bool:
        """True for the AES-CTR + HMAC suites 1-3 and 6-8 (§4.5.1)."""
        return _PARAMS[self].nka > 0

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """A fresh cryptography hash object (SHA-256 or SHA-512) for HKDF and HMAC."""
        return getattr(hashes, _PARAMS[self].hash_name)()

    def aead(self, key: bytes) -> AESGCM | AESCTRHMAC:
        """The suite's AEAD keyed with ``key`` (``nk`` bytes), with AESGCM's encrypt/decrypt API.

        Raises:
            ValueError: the key length is not ``nk``.
        """
        if len(key) != self.nk:
            raise ValueError(f"{self.name} needs a {self.nk}-byte key, got {len(key)} bytes")
        return AESCTRHMAC(self, key) if self.is_ctr_hmac else AESGCM(bytes(key))


class AESCTRHMAC:
    """The AES-CTR + HMAC AEAD of RFC 9605 §4.5.1 (encrypt-then-MAC, truncated tag).

    ``key`` is enc_key (``nka`` bytes) || auth_key (``nh`` bytes). The counter block is
    nonce || 0x00000000; the tag is HMAC(auth_key, len(aad) || len(ct) || Nt || nonce || aad || ct)
    with lengths as 64-bit big-endian integers, truncated to ``nt`` bytes. Decryption checks the
    tag in constant time before decrypting and raises :class:`cryptography.exceptions.InvalidTag`.
    """

    def __init__(self, suite: CipherSuite, key: bytes) -> None:
        suite = CipherSuite(suite)
        if not suite.is_ctr_hmac:
            raise ValueError(f"{suite.name} is not an AES-CTR + HMAC suite")
        key = bytes(key)
        if len(key) != suite.nk:
            raise ValueError(f"{suite.name} needs a {suite.nk}-byte key, got {len(key)} bytes")
        self._aes = algorithms.AES(key[: suite.nka])
        self._mac = hmac.HMAC(key[suite.nka :], suite.hash_algorithm())
        self._nt = suite.nt

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        """Return AES-CTR(data) || tag."""
        nonce = _check_nonce(nonce)
        enc = Cipher(self._aes, modes.CTR(nonce + b"\x00\x00\x00\x00")).encryptor()
        ct = enc.update(data) + enc.finalize()
        return ct + self._tag(nonce, associated_data, ct)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        """Verify the tag, then return the plaintext; raise InvalidTag if it does not verify."""
        nonce = _check_nonce(nonce)
        view = byte_view(data)
        if len(view) < self._nt:
            raise InvalidTag
        ct, tag = view[: len(view) - self._nt], bytes(view[len(view) - self._nt :])
        if not constant_time.bytes_eq(self._tag(nonce, associated_data, ct), tag):
            raise InvalidTag
        dec = Cipher(self._aes, modes.CTR(nonce + b"\x00\x00\x00\x00")).decryptor()
        return dec.update(ct) + dec.finalize()

    def _tag(self, nonce: bytes, aad: bytes | None, ct: bytes | memoryview) -> bytes:
        aad = b"" if aad is None else byte_view(aad)
        mac = self._mac.copy()
        mac.update(struct.pack(">QQQ", len(aad), len(ct), self._nt) + nonce)
        mac.update(aad)
        mac.update(ct)
        return mac.finalize()[: self._nt]


def _check_nonce(nonce: bytes) -> bytes:
    nonce = bytes(byte_view(nonce))
    if len(nonce) != 12:
        raise ValueError(f"the nonce must be 12 bytes, got {len(nonce)}")
    return nonce


def overhead(suite: CipherSuite | int, kid: int, ctr: int) -> int:
    """Bytes SFrame adds to one frame: header length + the suite's tag length."""
    return header_length(kid, ctr) + CipherSuite(suite).nt


# --- key schedule (§4.4.2) ---------------------------------------------------------------------


def _check_base_key(base_key: bytes) -> bytes:
    key = bytes(byte_view(base_key))
    if len(key) < MIN_BASE_KEY_LEN:
        raise ValueError(f"base_key must be at least {MIN_BASE_KEY_LEN} bytes, got {len(key)}")
    return key


def key_labels(suite: CipherSuite | int, kid: int) -> tuple[bytes, bytes]:
    """The HKDF-Expand info strings (key label, salt label) for (suite, KID)."""
    check_u64("kid", kid)
    suffix = kid.to_bytes(8, "big") + CipherSuite(suite).to_bytes(2, "big")
    return KEY_LABEL + suffix, SALT_LABEL + suffix


def derive_key_salt(suite: CipherSuite | int, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """Derive (sframe_key, sframe_salt) from a base key as in §4.4.2.

    Raises:
        ValueError: unknown suite, KID out of range, or base_key shorter than 16 bytes.
        TypeError: kid is not an int or base_key is not bytes-like.
    """
    suite = CipherSuite(suite)
    key_label, salt_label = key_labels(suite, kid)
    secret = HKDF.extract(suite.hash_algorithm(), None, _check_base_key(base_key))
    key = HKDFExpand(suite.hash_algorithm(), suite.nk, key_label).derive(secret)
    salt = HKDFExpand(suite.hash_algorithm(), suite.nn, salt_label).derive(secret)
    return key, salt


def sframe_nonce(salt: bytes, ctr: int) -> bytes:
    """nonce = sframe_salt XOR big-endian(CTR) left-padded to the salt's length (§4.4.3)."""
    check_u64("ctr", ctr)
    return (int.from_bytes(salt, "big") ^ ctr).to_bytes(len(salt), "big")
