"""The SFrame context (RFC 9605 §4.4): send and receive keys by KID, protect/unprotect, the replay window.

:class:`SFrameContext` holds one participant's keys for one cipher suite, derived once when added
(§4.4.2, :mod:`e2ee_lab.crypto.sframe.suites`); keys are encrypt-only or decrypt-only (§4.4.1)
and a (key, CTR) pair is never used twice (§4.3, §9.1, §7.4). :meth:`~SFrameContext.protect` writes header ||
AEAD.Encrypt(key, salt XOR CTR, header || metadata, plaintext) (§4.4.3); :meth:`~SFrameContext.unprotect`
checks and decrypts. An optional RFC 3711 §3.3.2-style sliding window on CTR
(:class:`ReplayWindow`) rejects replays (replay handling is the application's: §7.4, §9.3); it moves
only after a frame authenticated. The core does no I/O: receivers catch
:class:`~e2ee_lab.crypto.sframe.errors.SFrameError`, count ``err.reason`` and carry on.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes

from e2ee_lab.crypto.sframe.errors import (
    AuthenticationFailed,
    CounterExhausted,
    NonceReuse,
    ReplayedFrame,
    UnknownKeyId,
)
from e2ee_lab.crypto.sframe.header import byte_view, check_u64, decode_header, header_field
from e2ee_lab.crypto.sframe.suites import CipherSuite, derive_key_salt

DEFAULT_WINDOW = 128  # replay window in frames, as libsrtp's default (RFC 3711 §3.3.2 asks for at least 64)
_EMPTY = b""  # the default metadata; an identity test skips one concatenation per frame
_VIEW_ABOVE = 4096  # unprotect passes bodies at least this long as a memoryview instead of a copy


# --- replay window (RFC 3711 §3.3.2 style) -----------------------------------------------------


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


# --- context: keys, protect, unprotect (§4.4) --------------------------------------------------


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
        k, kid_bytes = header_field(kid)
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

    def has_send_key(self, kid: int) -> bool:
        """Whether ``kid`` has an encrypt-only key (O(1); :attr:`send_kids` copies the set)."""
        return kid in self._send

    def has_receive_key(self, kid: int) -> bool:
        """Whether ``kid`` has a decrypt-only key (O(1); :attr:`receive_kids` copies the set)."""
        return kid in self._recv

    def next_counter(self, kid: int) -> int:
        """The CTR the next :meth:`protect` with ``kid`` will use."""
        return self._send_key(kid).next_ctr

    def _derive(self, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
        check_u64("kid", kid)
        if kid in self._send or kid in self._recv:
            raise ValueError(f"KID {kid} already has a key; remove_key({kid}) first")
        return derive_key_salt(self.suite, kid, base_key)

    def _new_window(self) -> ReplayWindow | None:
        return ReplayWindow(self.window) if self.window else None

    def _send_key(self, kid: int) -> _SendKey:
        key = self._send.get(kid)
        if key is None:
            check_u64("kid", kid)
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
        # §7.4: senders "MUST reject requests to encrypt multiple times with the same key and
        # nonce" (and §9.1: store the next CTR before using it): the next CTR is stored
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
            ciphertext = bytes(byte_view(ciphertext))
        cfg = ciphertext[0] if ciphertext else 0x80
        if cfg & 0x88 == 0x08 and len(ciphertext) > 2 and ciphertext[1] and cfg & 7 == 1:
            # Inlined fast path of decode_header for the usual shape: KID < 8, CTR in 2 bytes.
            kid, ctr, hlen = cfg >> 4, ciphertext[1] << 8 | ciphertext[2], 3
        else:
            kid, ctr, hlen = decode_header(ciphertext)
        return self.unprotect_decoded(ciphertext, (kid, ctr, hlen), metadata)

    def unprotect_decoded(self, ciphertext: bytes, header: tuple[int, int, int],
                          metadata: bytes | None = b"") -> bytes:
        """:meth:`unprotect` of ``ciphertext`` (bytes) whose header :func:`decode_header` has read
        (``header`` is what it returned): for a caller that checks the KID before it decrypts (a
        group member checking attribution), so the header is parsed once. Values that do not match
        the bytes cannot open a frame: the header bytes are the AEAD's associated data, the KID picks
        the key and the CTR the nonce, so a mismatch fails authentication.
        """
        kid, ctr, hlen = header
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
