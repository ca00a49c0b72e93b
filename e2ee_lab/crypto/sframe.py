"""SFrame (RFC 9605): header codec, cipher suites 1-5, key schedule, protect/unprotect, replay window.

The header codec follows §4.3 (config byte ``X|KKK|Y|CCC``, minimal big-endian KID/CTR extensions);
the key schedule §4.4.2 (HKDF-Extract with an empty salt, HKDF-Expand with the labels
"SFrame 1.0 Secret key " / "SFrame 1.0 Secret salt " followed by KID as 8 bytes and the suite as 2
bytes); encryption and decryption §4.4.3 (nonce = salt XOR CTR, AAD = header || metadata); the
AES-CTR + HMAC construction §4.5.1 and the GCM suites §4.5. Keys are encrypt-only or decrypt-only
and a (key, CTR) pair is never used twice (§4.4.1). An optional RFC 3711 §3.3.2-style sliding
window on CTR rejects replays (§7.3 leaves replay handling to the application). Every primitive
comes from ``cryptography``; this module only arranges them. The core does no I/O: receivers catch
:class:`SFrameError`, count ``err.reason`` and carry on.
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

MAX_KID = 2**64 - 1  # §4.3: KID is a 64-bit unsigned integer
MAX_CTR = 2**64 - 1  # §4.3: CTR is a 64-bit unsigned integer; it never wraps
MAX_HEADER_LEN = 17  # config byte + 8 KID bytes + 8 CTR bytes
MIN_BASE_KEY_LEN = 16  # this module's policy: a base key shorter than 128 bits is refused
DEFAULT_WINDOW = 128  # replay window in frames, as SRTP's default of RFC 3711 §3.3.2
_EMPTY = b""  # the default metadata; an identity test skips one concatenation per frame
_VIEW_ABOVE = 4096  # unprotect passes bodies at least this long as a memoryview instead of a copy
KEY_LABEL = b"SFrame 1.0 Secret key "  # §4.4.2, note the trailing space
SALT_LABEL = b"SFrame 1.0 Secret salt "  # §4.4.2


# --- errors (one family; ``reason`` names the receiver's drop counter) -------------------------


class SFrameError(Exception):
    """Base class of every SFrame failure."""

    reason = "sframe"


class MalformedHeader(SFrameError):
    """The SFrame header is truncated or not minimally encoded (§4.3)."""

    reason = "malformed"


class UnknownKeyId(SFrameError):
    """No key of the needed direction is installed for the KID."""

    reason = "unknown_kid"


class AuthenticationFailed(SFrameError):
    """The AEAD tag did not verify; deliberately says nothing about why."""

    reason = "auth"


class ReplayedFrame(SFrameError):
    """The CTR was already accepted, or is older than the replay window."""

    reason = "replay"


class CounterExhausted(SFrameError):
    """The send key has used CTR 2^64-1; a new key is needed."""

    reason = "counter_exhausted"


class NonceReuse(SFrameError):
    """An explicit ``ctr=`` would repeat or go below a CTR already used with this key (§4.4.1)."""

    reason = "nonce_reuse"


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
}


class CipherSuite(IntEnum):
    """The five RFC 9605 cipher suites with their sizes in bytes (``nk``, ``nn``, ``nt``, ...)."""

    AES_128_CTR_HMAC_SHA256_80 = 1
    AES_128_CTR_HMAC_SHA256_64 = 2
    AES_128_CTR_HMAC_SHA256_32 = 3
    AES_128_GCM_SHA256_128 = 4
    AES_256_GCM_SHA512_128 = 5

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
        """True for the AES-CTR + HMAC suites 1-3 (§4.5.1)."""
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
        view = _byte_view(data)
        if len(view) < self._nt:
            raise InvalidTag
        ct, tag = view[: len(view) - self._nt], bytes(view[len(view) - self._nt :])
        if not constant_time.bytes_eq(self._tag(nonce, associated_data, ct), tag):
            raise InvalidTag
        dec = Cipher(self._aes, modes.CTR(nonce + b"\x00\x00\x00\x00")).decryptor()
        return dec.update(ct) + dec.finalize()

    def _tag(self, nonce: bytes, aad: bytes | None, ct: bytes | memoryview) -> bytes:
        aad = b"" if aad is None else _byte_view(aad)
        mac = self._mac.copy()
        mac.update(struct.pack(">QQQ", len(aad), len(ct), self._nt) + nonce)
        mac.update(aad)
        mac.update(ct)
        return mac.finalize()[: self._nt]


def _check_nonce(nonce: bytes) -> bytes:
    nonce = bytes(_byte_view(nonce))
    if len(nonce) != 12:
        raise ValueError(f"the nonce must be 12 bytes, got {len(nonce)}")
    return nonce


def _byte_view(data: object) -> memoryview:
    """A flat byte view of any bytes-like object; TypeError for anything else."""
    view = memoryview(data)  # type: ignore[arg-type]
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


# --- header (§4.3) ------------------------------------------------------------------------------


def _check_u64(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_CTR:
        raise ValueError(f"{name} must be in 0..2^64-1, got {value}")


def _field(value: int) -> tuple[int, bytes]:
    """(4-bit field: flag bit + value or length-1, extension bytes) for a KID or CTR."""
    if value < 8:
        return value, b""
    n = (value.bit_length() + 7) >> 3
    return 8 | (n - 1), value.to_bytes(n, "big")


def encode_header(kid: int, ctr: int) -> bytes:
    """Encode the SFrame header for (KID, CTR) in the minimal form of §4.3.

    Raises:
        TypeError: kid or ctr is not an int.  ValueError: either is outside 0..2^64-1.
    """
    _check_u64("kid", kid)
    _check_u64("ctr", ctr)
    k, kid_bytes = _field(kid)
    c, ctr_bytes = _field(ctr)
    # Each 4-bit field is flag|3 bits, so the config byte is simply X|KKK followed by Y|CCC.
    return bytes((k << 4 | c,)) + kid_bytes + ctr_bytes


def _malformed(view, field: str, pos: int, nbytes: int) -> MalformedHeader:
    """The error for a KID/CTR extension that is truncated or not minimal, naming byte counts."""
    present = len(view) - pos
    if present < nbytes:
        return MalformedHeader(
            f"{field} needs {nbytes} bytes at offset {pos}, only {max(present, 0)} present")
    value = int.from_bytes(view[pos : pos + nbytes], "big")
    need = (value.bit_length() + 7) >> 3
    if value < 8:
        return MalformedHeader(
            f"non-minimal {field}: {value} fits in the config byte, sent in {nbytes} bytes")
    return MalformedHeader(f"non-minimal {field}: {value} needs {need} bytes, sent in {nbytes}")


def _extension(data, pos: int, nbytes: int, field: str) -> tuple[int, int]:
    """(value, end offset) of a KID/CTR extension; minimal means a 1-byte value is at least 8
    and a longer one starts with a non-zero byte."""
    end = pos + nbytes
    if len(data) < end:
        raise _malformed(data, field, pos, nbytes)
    first = data[pos]
    if nbytes == 1:
        if first < 8:
            raise _malformed(data, field, pos, nbytes)
        return first, end
    if not first:
        raise _malformed(data, field, pos, nbytes)
    if nbytes == 2:
        return first << 8 | data[pos + 1], end
    return int.from_bytes(data[pos:end], "big"), end


def decode_header(data: bytes) -> tuple[int, int, int]:
    """Parse the SFrame header at the start of ``data``; bytes after it are ignored.

    This parser is strict: a KID or CTR in a longer-than-minimal encoding (an extension for a
    value below 8, or leading zero bytes) is rejected, since §4.3 requires the minimal form and
    accepting two spellings of one header would let a middlebox alter the authenticated bytes.

    Returns:
        (kid, ctr, header_length).
    Raises:
        MalformedHeader: empty, truncated or non-minimal header.  TypeError: not bytes-like.
    """
    if type(data) is not bytes:
        data = _byte_view(data)
    try:
        cfg = data[0]
    except IndexError:
        raise MalformedHeader("empty frame: the config byte is missing") from None
    if cfg & 0x88 == 0x08:  # fast path, the usual shape: KID below 8, CTR in 1..8 extra bytes
        end = (cfg & 7) + 2
        if len(data) < end or data[1] < (8 if end == 2 else 1):
            raise _malformed(data, "CTR", 1, end - 1)
        return cfg >> 4, (data[1] << 8 | data[2]) if end == 3 else int.from_bytes(data[1:end], "big"), end
    if cfg & 0x80:
        kid, end = _extension(data, 1, (cfg >> 4 & 7) + 1, "KID")
    else:
        kid, end = cfg >> 4 & 7, 1
    if cfg & 0x08:
        ctr, end = _extension(data, end, (cfg & 7) + 1, "CTR")
    else:
        ctr = cfg & 7
    return kid, ctr, end


def header_length(kid: int, ctr: int) -> int:
    """Length in bytes of the minimal header for (KID, CTR): 1 to 17."""
    return len(encode_header(kid, ctr))


def overhead(suite: CipherSuite | int, kid: int, ctr: int) -> int:
    """Bytes SFrame adds to one frame: header length + the suite's tag length."""
    return header_length(kid, ctr) + CipherSuite(suite).nt


@dataclass(frozen=True)
class SFrameHeader:
    """The SFrame header as a wire record: ``SFrameHeader.parse(data)`` and ``bytes(header)``."""

    kid: int  # key ID, 0..2^64-1
    ctr: int  # frame counter, 0..2^64-1

    def __post_init__(self) -> None:
        _check_u64("kid", self.kid)
        _check_u64("ctr", self.ctr)

    @classmethod
    def parse(cls, data: bytes) -> SFrameHeader:
        """Parse the header at the start of ``data`` (see :func:`decode_header`)."""
        kid, ctr, _ = decode_header(data)
        return cls(kid, ctr)

    def __bytes__(self) -> bytes:
        return encode_header(self.kid, self.ctr)

    def __len__(self) -> int:
        return header_length(self.kid, self.ctr)


# --- key schedule (§4.4.2) ----------------------------------------------------------------------


def _check_base_key(base_key: bytes) -> bytes:
    key = bytes(_byte_view(base_key))
    if len(key) < MIN_BASE_KEY_LEN:
        raise ValueError(f"base_key must be at least {MIN_BASE_KEY_LEN} bytes, got {len(key)}")
    return key


def key_labels(suite: CipherSuite | int, kid: int) -> tuple[bytes, bytes]:
    """The HKDF-Expand info strings (key label, salt label) for (suite, KID)."""
    _check_u64("kid", kid)
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
    _check_u64("ctr", ctr)
    return (int.from_bytes(salt, "big") ^ ctr).to_bytes(len(salt), "big")


# --- replay window (RFC 3711 §3.3.2 style) --------------------------------------------------------


class ReplayWindow:
    """Sliding window over CTR: accept each CTR once, reject those ``size`` or more behind the top.

    :meth:`check` only reads; :meth:`update` records a CTR and must be called only after the
    frame authenticated, so forged frames cannot move the window.
    """

    __slots__ = ("size", "top", "_mask", "_full")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"window size must be a positive int, got {size!r}")
        self.size = size
        self.top = -1  # highest CTR accepted so far
        self._mask = 0  # bit i set: CTR top-i accepted
        self._full = (1 << size) - 1

    def check(self, ctr: int) -> None:
        """Raise ReplayedFrame if ``ctr`` was accepted before or is too old."""
        if ctr > self.top:
            return
        delta = self.top - ctr
        if delta >= self.size:
            raise ReplayedFrame(
                f"CTR {ctr} is {delta} behind the newest, outside the {self.size}-frame window")
        if self._mask >> delta & 1:
            raise ReplayedFrame(f"CTR {ctr} was already received")

    def update(self, ctr: int) -> None:
        """Record ``ctr`` as accepted."""
        shift = ctr - self.top
        if shift > 0:
            # A jump of a whole window or more clears it (never shift by a huge amount).
            self._mask = (self._mask << shift | 1) & self._full if shift < self.size else 1
            self.top = ctr
        else:
            self._mask |= 1 << -shift


# --- context: keys, protect, unprotect (§4.4) ---------------------------------------------------


def _fingerprint(direction: bytes, key: bytes, salt: bytes) -> bytes:
    """A one-way tag of derived key material, so a removed key can be recognised if re-added."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(direction + key + salt)
    return digest.finalize()


class _SendKey:
    """Encrypt-only key state: AEAD, salt, next CTR and the precomputed header prefixes."""

    __slots__ = ("encrypt", "salt", "next_ctr", "small", "prefix", "fingerprint")

    def __init__(self, aead, salt: bytes, kid: int, next_ctr: int, fingerprint: bytes) -> None:
        self.encrypt = aead.encrypt
        self.salt = int.from_bytes(salt, "big")
        self.next_ctr = next_ctr
        k, kid_bytes = _field(kid)
        # Headers for CTR 0..7 are constant; for longer CTRs only the CTR bytes vary.
        self.small = tuple(bytes((k << 4 | c,)) + kid_bytes for c in range(8))
        self.prefix = (b"",) + tuple(bytes((k << 4 | 8 | n - 1,)) + kid_bytes for n in range(1, 9))
        self.fingerprint = fingerprint


class _ReceiveKey:
    """Decrypt-only key state: AEAD, salt and the replay window (None when turned off)."""

    __slots__ = ("decrypt", "salt", "window", "fingerprint")

    def __init__(self, aead, salt: bytes, window: ReplayWindow | None, fingerprint: bytes) -> None:
        self.decrypt = aead.decrypt
        self.salt = int.from_bytes(salt, "big")
        self.window = window
        self.fingerprint = fingerprint


class SFrameContext:
    """One participant's SFrame state for one cipher suite: send keys and receive keys by KID.

    Keys are derived once when added (§4.4.2) and are encrypt-only or decrypt-only (§4.4.1), so
    a KID holds one key of one direction. Each send key counts CTR up from 0 and never repeats a
    CTR; a removed key that is added again resumes its counter (and its replay window), so
    ``remove_key`` cannot be used to reuse a nonce. ``window`` is the replay window in frames per
    receive key (0 or None turns it off).
    """

    def __init__(self, suite: CipherSuite | int, *, window: int | None = DEFAULT_WINDOW) -> None:
        if not isinstance(suite, int) or isinstance(suite, bool):
            raise TypeError(f"suite must be a CipherSuite or int, not {type(suite).__name__}")
        if window is not None and (not isinstance(window, int) or window < 0):
            raise ValueError(f"window must be None or an int >= 0, got {window!r}")
        self.suite = CipherSuite(suite)
        self.window = window or None
        self._send: dict[int, _SendKey] = {}
        self._recv: dict[int, _ReceiveKey] = {}
        self._retired: dict[bytes, int | ReplayWindow | None] = {}

    # -- keys --

    def add_send_key(self, kid: int, base_key: bytes) -> None:
        """Install the encrypt-only key for ``kid`` derived from ``base_key``.

        Raises:
            ValueError: the KID already has a key, or the base key is too short.
            TypeError: wrong argument types.
        """
        key, salt = self._derive(kid, base_key)
        fp = _fingerprint(b"send", key, salt)
        self._send[kid] = _SendKey(self.suite.aead(key), salt, kid, self._retired.pop(fp, 0), fp)

    def add_receive_key(self, kid: int, base_key: bytes) -> None:
        """Install the decrypt-only key for ``kid`` derived from ``base_key`` (same errors)."""
        key, salt = self._derive(kid, base_key)
        fp = _fingerprint(b"recv", key, salt)
        window = self._retired.pop(fp) if fp in self._retired else self._new_window()
        self._recv[kid] = _ReceiveKey(self.suite.aead(key), salt, window, fp)

    def remove_key(self, kid: int) -> None:
        """Forget the key of ``kid`` (either direction); raises UnknownKeyId if there is none."""
        if kid in self._send:
            state = self._send.pop(kid)
            self._retired[state.fingerprint] = state.next_ctr
        elif kid in self._recv:
            state = self._recv.pop(kid)
            self._retired[state.fingerprint] = state.window
        else:
            raise UnknownKeyId(f"KID {kid} has no key to remove")

    @property
    def send_kids(self) -> frozenset[int]:
        """KIDs with an encrypt-only key."""
        return frozenset(self._send)

    @property
    def receive_kids(self) -> frozenset[int]:
        """KIDs with a decrypt-only key."""
        return frozenset(self._recv)

    def next_counter(self, kid: int) -> int:
        """The CTR the next :meth:`protect` with ``kid`` will use."""
        return self._send_key(kid).next_ctr

    def _derive(self, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
        _check_u64("kid", kid)
        if kid in self._send or kid in self._recv:
            raise ValueError(f"KID {kid} already has a key; remove_key({kid}) first")
        return derive_key_salt(self.suite, kid, base_key)

    def _new_window(self) -> ReplayWindow | None:
        return ReplayWindow(self.window) if self.window else None

    def _send_key(self, kid: int) -> _SendKey:
        key = self._send.get(kid)
        if key is None:
            _check_u64("kid", kid)
            other = " (it is a receive key: keys are encrypt-only or decrypt-only)" \
                if kid in self._recv else ""
            raise UnknownKeyId(f"KID {kid} has no send key{other}")
        return key

    # -- frames --

    def protect(self, kid: int, plaintext: bytes, metadata: bytes | None = b"", *,
                ctr: int | None = None) -> bytes:
        """Encrypt one frame: header || AEAD.Encrypt(key, salt XOR CTR, header || metadata, plaintext).

        ``ctr`` is for known-answer tests only; it may skip ahead but never go back.
        Raises:
            UnknownKeyId: no send key for ``kid``.  CounterExhausted: CTR 2^64-1 already used.
            NonceReuse: ``ctr`` is below the key's next CTR.  TypeError: wrong argument types.
        """
        try:
            key = self._send[kid]
        except KeyError:
            key = self._send_key(kid)  # raises UnknownKeyId with the reason
        if ctr is None:
            ctr = key.next_ctr
        else:
            _check_explicit_ctr(ctr, key.next_ctr)
        if ctr > 0xFFFF_FFFF_FFFF_FFFF:
            raise CounterExhausted(f"KID {kid} has used every CTR up to 2^64-1; install a new key")
        # §4.4.1: "MUST NOT encrypt twice with the same key and nonce": the next CTR is stored
        # before this one is used, so even a failed encryption never frees its CTR again.
        key.next_ctr = ctr + 1
        if ctr < 8:
            header = key.small[ctr]
        else:
            n = (ctr.bit_length() + 7) >> 3
            header = key.prefix[n] + ctr.to_bytes(n)  # big-endian is the default (3.11+)
        aad = header if metadata is None or metadata is _EMPTY else header + metadata
        return header + key.encrypt((key.salt ^ ctr).to_bytes(12), plaintext, aad)

    def unprotect(self, ciphertext: bytes, metadata: bytes | None = b"") -> bytes:
        """Check and decrypt one SFrame ciphertext; the replay window moves only on success.

        Raises:
            MalformedHeader, UnknownKeyId, ReplayedFrame, AuthenticationFailed (all SFrameError,
            whatever bytes arrive).  TypeError: ``ciphertext`` or ``metadata`` is not bytes-like.
        """
        if type(ciphertext) is not bytes:
            ciphertext = bytes(_byte_view(ciphertext))
        cfg = ciphertext[0] if ciphertext else 0x80
        if cfg & 0x88 == 0x08 and len(ciphertext) > 2 and ciphertext[1] and cfg & 7 == 1:
            # Inlined fast path of decode_header for the usual shape: KID < 8, CTR in 2 bytes.
            kid, ctr, hlen = cfg >> 4, ciphertext[1] << 8 | ciphertext[2], 3
        else:
            kid, ctr, hlen = decode_header(ciphertext)
        try:
            key = self._recv[kid]
        except KeyError:
            other = " (it is a send key: keys are encrypt-only or decrypt-only)" if kid in self._send else ""
            raise UnknownKeyId(f"KID {kid} has no receive key{other}") from None
        window = key.window
        if window is not None and ctr <= window.top:
            window.check(ctr)
        header = ciphertext[:hlen]
        # Copying a small body is cheaper than making a memoryview; from ~4 KB it is not.
        body = ciphertext[hlen:] if len(ciphertext) < _VIEW_ABOVE else memoryview(ciphertext)[hlen:]
        aad = header if metadata is None or metadata is _EMPTY else header + metadata
        try:
            plaintext = key.decrypt((key.salt ^ ctr).to_bytes(12), body, aad)
        except InvalidTag:
            raise AuthenticationFailed("authentication failed") from None
        if window is not None:
            if ctr == window.top + 1:  # in order, the usual case: ReplayWindow.update inlined
                window._mask = (window._mask << 1 | 1) & window._full
                window.top = ctr
            else:
                window.update(ctr)
        return plaintext


def _check_explicit_ctr(ctr: int, next_ctr: int) -> None:
    if not isinstance(ctr, int) or isinstance(ctr, bool):
        raise TypeError(f"ctr must be an int, not {type(ctr).__name__}")
    if ctr < 0:
        raise ValueError(f"ctr must be >= 0, got {ctr}")
    if ctr < next_ctr:
        raise NonceReuse(f"CTR {ctr} would reuse a nonce: this key's next unused CTR is {next_ctr}")
