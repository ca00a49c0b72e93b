"""Crypto pitfalls of frame E2EE, run against the real SFrame code: nonce reuse and short tags.

**Nonce reuse** (RFC 9605 §4.1: "each key used for encrypting media is used by exactly one media
sender"; §4.3 and §9.1: each (base_key, KID, CTR) at most once; §7.4: senders MUST refuse to
encrypt twice with the same key and nonce). Two senders given the same base key under the same
KID both count CTR up from 0, so their n-th frames share (key, nonce). AES-CTR and AES-GCM XOR the
plaintext with a keystream that depends on (key, nonce) only, so ``C1 XOR C2 = P1 XOR P2`` and a
known or guessed P1 gives P2 (RFC 5116 §5.1.1). For the GCM suites the two tags also reveal the
GHASH key ``H`` (Joux, "Authentication failures in NIST version of GCM", 2006, the "forbidden
attack"): ``T1 XOR T2`` is a polynomial in ``H`` with known coefficients, whose roots in GF(2^128)
this module finds; with ``H`` anyone computes valid tags for ciphertexts of their choosing.

**Short tags** (RFC 9605 §7.5): the AES-CTR + HMAC suites cut the tag to ``Nt`` bytes, and a
random (ciphertext, tag) is accepted with probability 2^-(8·Nt). :class:`TruncatedTagAEAD` is a
deliberately weakened, lab-only variant of the §4.5.1 construction with a 1- or 2-byte tag so a
brute-force forgery finishes in a classroom; with ``tag_bytes`` 4, 8 or 10 it is exactly suite 3,
2 or 1 (a test checks it), so the measured attempts extrapolate to the real suites.

Every cipher call goes through ``cryptography`` (via :mod:`e2ee_lab.crypto.sframe`). The
GF(2^128) arithmetic (NIST SP 800-38D §6.3 multiplication, §6.4 GHASH, and root finding for
polynomials over the field) is the attacker's algebra, which ``cryptography`` does not offer:
:mod:`e2ee_lab.attacks.gf128`. :class:`VideoReuse` records one nonce reuse on real video key
frames (notebook 07 runs it, :func:`e2ee_lab.labs.pitfalls.video_nonce_reuse`, and
:func:`e2ee_lab.analysis.plots.nonce_reuse_pictures` draws it). Like the rest of the core,
nothing here does I/O; the one clock (attempts per second) is a parameter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from e2ee_lab.attacks.gf128 import (
    BLOCK,
    ghash,
    ghash_coefficients,
    poly_add,
    poly_eval,
    poly_roots,
    to_block,
    to_field,
)
from e2ee_lab.crypto.sframe import (
    AESCTRHMAC,
    AuthenticationFailed,
    CipherSuite,
    MalformedHeader,
    SFrameContext,
    SFrameError,
    UnknownKeyId,
    decode_header,
    derive_key_salt,
    encode_header,
    sframe_nonce,
)

if TYPE_CHECKING:
    import numpy as np

_GCM_SUITES = (CipherSuite.AES_128_GCM_SHA256_128, CipherSuite.AES_256_GCM_SHA512_128)


def xor_bytes(a: bytes, b: bytes) -> bytes:
    """Bytewise XOR of ``a`` and ``b`` over the shorter length."""
    n = min(len(a), len(b))
    return (int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


# --- nonce reuse: frames, keystream (RFC 9605 §4.1, §9.1; RFC 5116 §5.1.1) ---------------------


@dataclass(frozen=True)
class FrameParts:
    """An SFrame ciphertext cut into header, AEAD ciphertext and tag (what the SFU can see)."""

    kid: int  # key ID from the header
    ctr: int  # counter from the header
    header: bytes  # the encoded header, also the start of the AAD
    ciphertext: bytes  # the encrypted frame, as long as the plaintext
    tag: bytes  # the last Nt bytes

    @classmethod
    def parse(cls, frame: bytes, suite: CipherSuite | int) -> FrameParts:
        """Split ``frame``; raises MalformedHeader if it is shorter than its header plus a tag."""
        nt = CipherSuite(suite).nt
        kid, ctr, hlen = decode_header(frame)
        if len(frame) < hlen + nt:
            raise MalformedHeader(f"frame of {len(frame)} bytes has no room for a {hlen}-byte header "
                                  f"and a {nt}-byte tag")
        frame = bytes(frame)
        return cls(kid, ctr, frame[:hlen], frame[hlen : len(frame) - nt], frame[len(frame) - nt :])


def shared_key_senders(suite: CipherSuite | int, kid: int, base_key: bytes,
                       count: int = 2) -> list[SFrameContext]:
    """THE PITFALL: ``count`` senders each holding ``base_key`` as send key under the same ``kid``.

    Each context is correct on its own (its CTR never repeats), but together they encrypt
    frame n under the same (key, nonce) -- what RFC 9605 §4.1 forbids.
    """
    senders = []
    for _ in range(count):
        context = SFrameContext(suite)
        context.add_send_key(kid, base_key)
        senders.append(context)
    return senders


def ciphertext_xor(frame_a: bytes, frame_b: bytes, suite: CipherSuite | int) -> bytes:
    """C_a XOR C_b over the shorter ciphertext (headers and tags removed).

    Under the same (key, nonce) this equals P_a XOR P_b exactly; otherwise it looks random.
    """
    return xor_bytes(FrameParts.parse(frame_a, suite).ciphertext, FrameParts.parse(frame_b, suite).ciphertext)


def recover_plaintext(frame_a: bytes, frame_b: bytes, known_a: bytes, suite: CipherSuite | int) -> bytes:
    """P_b from two frames under one (key, nonce) and the plaintext of the first: C_a ⊕ C_b ⊕ P_a.

    Returns as many bytes of P_b as all three inputs cover (all of it when ``known_a`` is at least
    as long). Raises ValueError if the headers differ: another (KID, CTR) means another nonce.
    """
    a, b = FrameParts.parse(frame_a, suite), FrameParts.parse(frame_b, suite)
    if a.header != b.header:
        raise ValueError(f"the frames carry different headers ({a.header.hex()} vs {b.header.hex()}): "
                         "different (KID, CTR), so no shared keystream")
    return xor_bytes(xor_bytes(a.ciphertext, b.ciphertext), known_a)


@dataclass(frozen=True)
class VideoReuse:
    """Alice's and Bob's first key frames under one (key, nonce), and what the SFU got out of them."""

    known_name: str  # the sender whose picture the attacker knows (Alice's role)
    victim_name: str  # the sender whose frame the attacker reads (Bob's role)
    frame_known: bytes  # SFrame ciphertext of the known sender's key frame, as the SFU forwards it
    frame_victim: bytes  # SFrame ciphertext of the victim's key frame
    known_plaintext: bytes  # the known sender's VP8 frame as the attacker re-encoded it
    reencoded_equal: bool  # the re-encoding is bit-identical to what the sender encrypted
    victim_plaintext: bytes  # the victim's VP8 frame (ground truth, for checking only)
    recovered: bytes  # C_known XOR C_victim XOR known_plaintext
    sent: np.ndarray  # the victim's camera picture
    picture: np.ndarray | None  # the recovered frame decoded by libvpx (None if it refused)
    suite: CipherSuite

    @property
    def exact(self) -> bool:
        """The recovered bytes are the victim's whole frame."""
        return self.recovered == self.victim_plaintext


def gcm_auth_key(sframe_key: bytes) -> bytes:
    """The GHASH key H = AES_K(0^128) of a GCM key: ground truth the attacker does not have."""
    encryptor = Cipher(algorithms.AES(bytes(sframe_key)), modes.ECB()).encryptor()
    return encryptor.update(bytes(BLOCK)) + encryptor.finalize()


# --- the forbidden attack (Joux 2006; RFC 5116 §5.1.1) ----------------------------------------------


def _check_gcm(suite: CipherSuite | int) -> CipherSuite:
    suite = CipherSuite(suite)
    if suite not in _GCM_SUITES:
        raise ValueError(f"{suite.name} is not a GCM suite: no GHASH key to recover")
    return suite


def _tag_polynomial(frame_a: bytes, frame_b: bytes, suite: CipherSuite, metadata: bytes) -> list[int]:
    """f with f(H) = 0: GHASH(A, C_a) + GHASH(A, C_b) + T_a + T_b, the E_K(J0) masks cancelled."""
    a, b = FrameParts.parse(frame_a, suite), FrameParts.parse(frame_b, suite)
    if a.header != b.header:
        raise ValueError("the frames carry different headers: different nonces, the masks do not cancel")
    ca = ghash_coefficients(a.header + metadata, a.ciphertext)
    cb = ghash_coefficients(b.header + metadata, b.ciphertext)
    f = poly_add(ca, cb)
    f = poly_add(f, [to_field(a.tag) ^ to_field(b.tag)])
    if len(f) < 2:
        raise ValueError("the two frames are identical: no equation for H")
    return f


def auth_key_candidates(frame_a: bytes, frame_b: bytes, *, suite: CipherSuite | int,
                        metadata: bytes = b"", seed: int = 0) -> list[bytes]:
    """Every non-zero H consistent with two GCM frames that share (key, nonce).

    The cost grows with the square of the frames' length in blocks: pick short frames.
    Raises:
        ValueError: not a GCM suite, different headers, or identical frames.
    """
    f = _tag_polynomial(frame_a, frame_b, _check_gcm(suite), bytes(metadata))
    roots = poly_roots(f, random.Random(seed))
    return sorted(to_block(r) for r in roots if r)


def recover_auth_key(pairs: Sequence[tuple[bytes, bytes]], *, suite: CipherSuite | int,
                     metadata: bytes = b"") -> bytes:
    """The GHASH key H from pairs of frames that each share a nonce.

    Roots come from the first pair; each further pair keeps the candidates that also solve its
    equation, until one is left. Raises ValueError if none, or more than one, survives.
    """
    suite = _check_gcm(suite)
    if not pairs:
        raise ValueError("need at least one pair of frames")
    candidates = auth_key_candidates(*pairs[0], suite=suite, metadata=metadata)
    for frame_a, frame_b in pairs[1:]:
        if len(candidates) <= 1:
            break
        f = _tag_polynomial(frame_a, frame_b, suite, bytes(metadata))
        candidates = [h for h in candidates if not poly_eval(f, to_field(h))]
    if len(candidates) != 1:
        raise ValueError(f"{len(candidates)} candidates for H remain: give more pairs")
    return candidates[0]


def tag_mask(frame: bytes, auth_key: bytes, *, suite: CipherSuite | int, metadata: bytes = b"") -> bytes:
    """E_K(J0) of a genuine GCM frame's nonce: its tag XOR GHASH_H(header || metadata, C)."""
    parts = FrameParts.parse(frame, _check_gcm(suite))
    return xor_bytes(parts.tag, ghash(auth_key, parts.header + bytes(metadata), parts.ciphertext))


def chosen_ciphertext(frame: bytes, known_plaintext: bytes, new_plaintext: bytes, *,
                      suite: CipherSuite | int) -> bytes:
    """The ciphertext that decrypts to ``new_plaintext`` under ``frame``'s nonce: keystream ⊕ P'.

    The keystream is C ⊕ P of the genuine frame, so ``new_plaintext`` may be at most as long.
    Raises ValueError otherwise.
    """
    parts = FrameParts.parse(frame, suite)
    keystream = xor_bytes(parts.ciphertext, known_plaintext)
    if len(new_plaintext) > len(keystream):
        raise ValueError(f"only {len(keystream)} keystream bytes are known; "
                         f"the new plaintext has {len(new_plaintext)}")
    return xor_bytes(keystream, new_plaintext)


def forge_frame(frame: bytes, auth_key: bytes, new_ciphertext: bytes, *, suite: CipherSuite | int,
                metadata: bytes = b"") -> bytes:
    """A frame with ``frame``'s header and nonce, any ciphertext, and a tag the receiver accepts.

    ``frame`` is a genuine frame the attacker holds back (it gives the mask E_K(J0) for its
    nonce); the receiver must not have seen its CTR yet, or its replay window drops the forgery.
    """
    suite = _check_gcm(suite)
    parts = FrameParts.parse(frame, suite)
    mask = tag_mask(frame, auth_key, suite=suite, metadata=metadata)
    tag = xor_bytes(ghash(auth_key, parts.header + bytes(metadata), bytes(new_ciphertext)), mask)
    return parts.header + bytes(new_ciphertext) + tag


# --- short tags (RFC 9605 §7.5) ---------------------------------------------------------------------


class TruncatedTagAEAD(AESCTRHMAC):
    """LAB-ONLY WEAKENING: the AES-CTR + HMAC-SHA256 AEAD of RFC 9605 §4.5.1 with a ``tag_bytes`` tag.

    The key is suite 3's (16-byte AES key || 32-byte HMAC key); the tag is the HMAC over
    len(AAD) || len(C) || Nt || nonce || AAD || C cut to ``tag_bytes``, exactly as the registered
    suites do with Nt = 10, 8, 4. Tags of 1-3 bytes are not in any registry: they exist so a
    brute-force forgery finishes during a class. Never use this class to protect media.
    """

    def __init__(self, key: bytes, tag_bytes: int) -> None:
        if not isinstance(tag_bytes, int) or not 1 <= tag_bytes <= 32:
            raise ValueError(f"tag_bytes must be an int in 1..32, got {tag_bytes!r}")
        super().__init__(CipherSuite.AES_128_CTR_HMAC_SHA256_32, key)
        self._nt = tag_bytes  # the one change: where the HMAC output is cut (and the Nt it covers)


class ShortTagEndpoint:
    """One KID's SFrame key with a ``tag_bytes`` tag (lab-only; see :class:`TruncatedTagAEAD`).

    Key and salt come from the suite 3 key schedule (§4.4.2), frames are
    header || AES-CTR(P) || tag as in §4.4.3. :meth:`protect` is the genuine sender,
    :meth:`unprotect` the receiver under attack; the toy holds one key for both only to keep
    the demo small, and has no replay window.
    """

    def __init__(self, kid: int, base_key: bytes, tag_bytes: int) -> None:
        key, salt = derive_key_salt(CipherSuite.AES_128_CTR_HMAC_SHA256_32, kid, base_key)
        self.kid, self.tag_bytes = kid, tag_bytes
        self._aead = TruncatedTagAEAD(key, tag_bytes)
        self._salt = salt

    def protect(self, plaintext: bytes, *, ctr: int, metadata: bytes = b"") -> bytes:
        """header || AES-CTR(plaintext) || truncated tag for CTR ``ctr``."""
        header = encode_header(self.kid, ctr)
        return header + self._aead.encrypt(sframe_nonce(self._salt, ctr), plaintext, header + metadata)

    def unprotect(self, frame: bytes, metadata: bytes = b"") -> bytes:
        """Check the truncated tag, then decrypt.

        Raises:
            MalformedHeader, UnknownKeyId, AuthenticationFailed (as SFrameContext.unprotect).
        """
        kid, ctr, hlen = decode_header(frame)
        if kid != self.kid:
            raise UnknownKeyId(f"KID {kid} has no receive key")
        try:
            return self._aead.decrypt(sframe_nonce(self._salt, ctr), frame[hlen:], frame[:hlen] + metadata)
        except InvalidTag:
            raise AuthenticationFailed("authentication failed") from None


def expected_attempts(tag_bytes: int) -> int:
    """Mean random forgeries until one is accepted: 2^(8·Nt) (a geometric distribution's mean)."""
    return 2 ** (8 * tag_bytes)


def _forgeries(kid: int, ctr: int, body_len: int, tag_bytes: int, rng: random.Random):
    header, size = encode_header(kid, ctr), body_len + tag_bytes
    while True:
        yield header + rng.randbytes(size)


def attempts_until_accepted(unprotect: Callable[[bytes], bytes], *, kid: int, ctr: int, body_len: int,
                            tag_bytes: int, rng: random.Random, limit: int | None = None) -> int:
    """Send random (ciphertext, tag) frames for (kid, ctr) until ``unprotect`` accepts one.

    A rejected forgery does not move a replay window, so the attacker keeps one fresh CTR.
    Returns the number of attempts including the accepted one.
    Raises:
        LookupError: ``limit`` attempts were all rejected.
    """
    forgeries, attempt = _forgeries(kid, ctr, body_len, tag_bytes, rng), 0
    while limit is None or attempt < limit:
        attempt += 1
        try:
            unprotect(next(forgeries))
        except SFrameError:
            continue
        return attempt
    raise LookupError(f"no forgery accepted in {limit} attempts")


def count_accepted(unprotect: Callable[[bytes], bytes], attempts: int, *, kid: int, ctr: int,
                   body_len: int, tag_bytes: int, rng: random.Random) -> int:
    """How many of ``attempts`` random forgeries ``unprotect`` accepts (0 expected for full tags)."""
    accepted = 0
    for _, frame in zip(range(attempts), _forgeries(kid, ctr, body_len, tag_bytes, rng)):
        try:
            unprotect(frame)
        except SFrameError:
            continue
        accepted += 1
    return accepted


@dataclass(frozen=True)
class BruteForceRun:
    """Trials of the random-forgery attack against one tag length."""

    tag_bytes: int  # Nt of the receiver under attack
    attempts: tuple[int, ...]  # attempts until acceptance, one entry per trial
    seconds: float  # wall time of all trials together

    @property
    def expected(self) -> int:
        """2^(8·Nt), the mean the attempts should scatter around."""
        return expected_attempts(self.tag_bytes)

    @property
    def mean(self) -> float:
        """Mean attempts per successful forgery."""
        return sum(self.attempts) / len(self.attempts)

    @property
    def ratio(self) -> float:
        """Measured mean over the expectation (1.0 = exactly as predicted)."""
        return self.mean / self.expected

    @property
    def rate(self) -> float:
        """Forgeries the receiver checked per second."""
        return sum(self.attempts) / self.seconds if self.seconds > 0 else float("inf")


def brute_force(tag_bytes: int, trials: int, *, seed: int = 0, body_len: int = 20, kid: int = 1,
                ctr: int = 1000, clock: Callable[[], float] = time.perf_counter) -> BruteForceRun:
    """Run ``trials`` brute-force forgeries against fresh ``tag_bytes`` receivers (random keys).

    Each trial gets a new base key from the seeded generator, so trials are independent and the
    whole run is reproducible. ``body_len`` is the forged ciphertext's length (a small audio frame).
    """
    rng = random.Random(seed)
    counts = []
    start = clock()
    for _ in range(trials):
        receiver = ShortTagEndpoint(kid, rng.randbytes(16), tag_bytes)
        counts.append(attempts_until_accepted(receiver.unprotect, kid=kid, ctr=ctr, body_len=body_len,
                                              tag_bytes=tag_bytes, rng=rng))
    return BruteForceRun(tag_bytes, tuple(counts), clock() - start)


def receiver_rate(suite: CipherSuite | int = CipherSuite.AES_128_CTR_HMAC_SHA256_32, attempts: int = 20_000,
                  *, seed: int = 0, body_len: int = 20,
                  clock: Callable[[], float] = time.perf_counter) -> tuple[float, int]:
    """(forgeries per second a real :class:`SFrameContext` rejects, how many it accepted).

    The rate is what this machine's receiver sustains, the ceiling for an attacker it talks to.
    """
    suite = CipherSuite(suite)
    rng = random.Random(seed)
    receiver = SFrameContext(suite)
    receiver.add_receive_key(1, rng.randbytes(16))
    start = clock()
    accepted = count_accepted(receiver.unprotect, attempts, kid=1, ctr=1000, body_len=body_len,
                              tag_bytes=suite.nt, rng=rng)
    seconds = clock() - start
    return (attempts / seconds if seconds > 0 else float("inf")), accepted
