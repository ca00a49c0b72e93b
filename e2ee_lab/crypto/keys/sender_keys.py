"""Sender keys and their KIDs (RFC 9605 §5.1 ratchet, §4.4.1 per-sender keys, §7 the SFU's view).

Each member has its own SFrame base key per epoch, used by that sender only. On a join it is
ratcheted forward with HKDF (§5.1); the KID ``(epoch << 8) | member`` names sender and epoch in the
authenticated SFrame header, where the SFU can read both (layout in the package docstring).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.crypto.sframe import CipherSuite, decode_header

DEFAULT_SUITE = CipherSuite.AES_128_GCM_SHA256_128
MEMBER_BITS = 8  # low KID bits hold the member index
MAX_MEMBERS = 1 << MEMBER_BITS
MAX_EPOCH = 2**32 - 1  # the wire's epoch field is 32 bits
RATCHET_LABEL = b"SFrame 1.0 Ratchet"  # RFC 9605 §5.1


def ratchet(base_key: bytes, suite: CipherSuite | int = DEFAULT_SUITE) -> bytes:
    """The next sender key: HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Ratchet", Nh) (§5.1)."""
    suite = CipherSuite(suite)
    return HKDF(suite.hash_algorithm(), suite.nh, salt=None, info=RATCHET_LABEL).derive(bytes(base_key))


def kid_for(epoch: int, member: int) -> int:
    """The SFrame KID of ``member``'s key in ``epoch``: ``(epoch << 8) | member``.

    Raises:
        ValueError: member outside 0..255 or epoch outside 0..2^32-1.
    """
    if not 0 <= member < MAX_MEMBERS:
        raise ValueError(f"member index must be in 0..{MAX_MEMBERS - 1}, got {member}")
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch must be in 0..2^32-1, got {epoch}")
    return epoch << MEMBER_BITS | member


def parse_kid(kid: int) -> tuple[int, int]:
    """(epoch, member) of a KID made by :func:`kid_for`."""
    return kid >> MEMBER_BITS, kid & (MAX_MEMBERS - 1)


def frame_origin(frame: bytes) -> tuple[int, int]:
    """(epoch, sender) of an SFrame ciphertext, read from its header as the SFU can (MalformedHeader)."""
    kid, _, _ = decode_header(frame)
    return parse_kid(kid)
