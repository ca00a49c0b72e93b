"""SFrame (RFC 9605): header codec, cipher suites 1-8, key schedule, protect/unprotect, replay window.

The header codec follows §4.3 (config byte ``X|KKK|Y|CCC``, minimal big-endian KID/CTR extensions);
the key schedule §4.4.2 (HKDF-Extract with an empty salt, HKDF-Expand with the labels
"SFrame 1.0 Secret key " / "SFrame 1.0 Secret salt " followed by KID as 8 bytes and the suite as 2
bytes); encryption and decryption §4.4.3 (nonce = salt XOR CTR, AAD = header || metadata); the
AES-CTR + HMAC construction §4.5.1 and the GCM suites §4.5; suites 6-8 are the AES-256-CTR +
HMAC-SHA512 instances of §4.5.1 from draft-barnes-sframe-iana-256-06. Keys are encrypt-only or
decrypt-only (§4.4.1) and a (key, CTR) pair is never used twice (§4.3, §9.1; senders "MUST reject
requests to encrypt multiple times with the same key and nonce", §7.4). An optional RFC 3711
§3.3.2-style sliding window on CTR rejects replays (replay handling is the application's: §7.4,
§9.3). Every primitive comes from ``cryptography``; this package only arranges them. The core
does no I/O: receivers catch :class:`SFrameError`, count ``err.reason`` and carry on.

Modules, one job each (every public name is re-exported here, so
``from e2ee_lab.crypto.sframe import SFrameContext`` works):

- :mod:`.errors`: the :class:`SFrameError` family, one fixed ``reason`` per drop counter;
- :mod:`.header`: the header codec (:func:`encode_header`, :func:`decode_header`, :class:`SFrameHeader`);
- :mod:`.suites`: :class:`CipherSuite`, the AES-CTR + HMAC AEAD, the key schedule (:func:`derive_key_salt`);
- :mod:`.context`: :class:`SFrameContext` (keys by KID, protect, unprotect) and :class:`ReplayWindow`.
"""

from __future__ import annotations

from e2ee_lab.crypto.sframe.context import DEFAULT_WINDOW, ReplayWindow, SFrameContext
from e2ee_lab.crypto.sframe.errors import (
    AuthenticationFailed,
    CounterExhausted,
    MalformedHeader,
    NonceReuse,
    ReplayedFrame,
    SFrameError,
    UnknownKeyId,
)
from e2ee_lab.crypto.sframe.header import (
    MAX_CTR,
    MAX_HEADER_LEN,
    MAX_KID,
    SFrameHeader,
    decode_header,
    encode_header,
    header_length,
)
from e2ee_lab.crypto.sframe.suites import (
    AESCTRHMAC,
    KEY_LABEL,
    MIN_BASE_KEY_LEN,
    SALT_LABEL,
    CipherSuite,
    derive_key_salt,
    key_labels,
    overhead,
    sframe_nonce,
)

__all__ = [
    "MAX_KID", "MAX_CTR", "MAX_HEADER_LEN", "MIN_BASE_KEY_LEN", "DEFAULT_WINDOW", "KEY_LABEL", "SALT_LABEL",
    "SFrameError", "MalformedHeader", "UnknownKeyId", "AuthenticationFailed", "ReplayedFrame",
    "CounterExhausted", "NonceReuse",
    "CipherSuite", "AESCTRHMAC", "encode_header", "decode_header", "header_length", "overhead",
    "SFrameHeader", "key_labels", "derive_key_salt", "sframe_nonce", "ReplayWindow", "SFrameContext",
]
