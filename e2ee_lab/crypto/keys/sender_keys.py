"""Sender keys and their KIDs (RFC 9605 §5.1 ratchet, §4.4.2 key derivation, §9.2 KID assignment).

Each member has its own SFrame base key per epoch, used by that sender only. On a join it is
ratcheted forward with HKDF (§5.1). A base key serves two KIDs, one per media kind:
``kid = (epoch << 12) | (kind << 8) | member`` with kind 0 = audio, 1 = video (2..15 invalid), so
audio and video have separate SFrame keys, salts, counters and replay windows (§4.4.2 puts the KID
in the key and salt labels). The layout is the lab's own (§9.2 leaves it to the application; it is
closer to §5.2's epoch and sender index than to §5.1's generation and ratchet step). The header
carries it in clear: the SFU reads epoch, kind and member of every frame (§7.1).
"""

from __future__ import annotations

from typing import NamedTuple

from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.crypto.sframe import CipherSuite, decode_header

DEFAULT_SUITE = CipherSuite.AES_128_GCM_SHA256_128
MEMBER_BITS = 8  # low KID bits hold the member index
KIND_BITS = 4  # the next bits hold the media kind
EPOCH_SHIFT = MEMBER_BITS + KIND_BITS  # 12
MAX_MEMBERS = 1 << MEMBER_BITS
MAX_EPOCH = 2**32 - 1  # the key message's epoch field is 32 bits
MEDIA_KINDS = ("audio", "video")  # kind code = position: audio 0, video 1
RATCHET_LABEL = b"SFrame 1.0 Ratchet"  # RFC 9605 §5.1


class KIDFields(NamedTuple):
    """What a KID of this layout names: the epoch, the sending member and the media kind."""

    epoch: int
    member: int
    kind: str  # "audio" or "video"


def ratchet(base_key: bytes, suite: CipherSuite | int = DEFAULT_SUITE) -> bytes:
    """The next sender key: HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Ratchet", Nh) (§5.1)."""
    suite = CipherSuite(suite)
    return HKDF(suite.hash_algorithm(), suite.nh, salt=None, info=RATCHET_LABEL).derive(bytes(base_key))


def kind_code(kind: str) -> int:
    """0 for "audio", 1 for "video"; ValueError for anything else."""
    try:
        return MEDIA_KINDS.index(kind)
    except ValueError:
        raise ValueError(f"media kind must be one of {', '.join(MEDIA_KINDS)}, got {kind!r}") from None


def kid_for(epoch: int, member: int, kind: str) -> int:
    """The SFrame KID of ``member``'s ``kind`` stream in ``epoch``: ``(epoch << 12) | (kind << 8) | member``.

    Raises:
        ValueError: member outside 0..255, epoch outside 0..2^32-1, or a kind other than audio/video.
    """
    if not 0 <= member < MAX_MEMBERS:
        raise ValueError(f"member index must be in 0..{MAX_MEMBERS - 1}, got {member}")
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch must be in 0..2^32-1, got {epoch}")
    return epoch << EPOCH_SHIFT | kind_code(kind) << MEMBER_BITS | member


def parse_kid(kid: int) -> KIDFields:
    """(epoch, member, kind) of a KID made by :func:`kid_for`.

    Raises:
        ValueError: a kind code 2..15 or an epoch beyond 2^32-1: not a KID of this layout.
    """
    code = kid >> MEMBER_BITS & (1 << KIND_BITS) - 1
    epoch = kid >> EPOCH_SHIFT
    if code >= len(MEDIA_KINDS) or epoch > MAX_EPOCH or kid < 0:
        raise ValueError(f"KID {kid:#x} is not of the lab's layout (kind code {code}, epoch {epoch})")
    return KIDFields(epoch, kid & MAX_MEMBERS - 1, MEDIA_KINDS[code])


def frame_origin(frame: bytes) -> KIDFields:
    """(epoch, member, kind) of an SFrame ciphertext, read from its header as the SFU can.

    Raises:
        MalformedHeader: the header does not parse.  ValueError: the KID is not of this layout.
    """
    kid, _, _ = decode_header(frame)
    return parse_kid(kid)
