"""SRTP and SRTCP sessions over libsrtp (pylibsrtp): RFC 3711, RFC 7714 (AES-GCM), RFC 5764 §4.1.2.

:class:`SRTPProfile` names the protection profiles the lab negotiates over DTLS (RFC 5764 §4.1.2
and RFC 7714 §14.2): ``AEAD_AES_128_GCM`` (the default, 16-byte key, 12-byte salt, 16-byte tag),
``AES_CM_128_HMAC_SHA1_80`` (16-byte key, 14-byte salt, 10-byte HMAC tag) and
``AEAD_AES_256_GCM``. :class:`SRTPMasterKey` is one direction's master key and master salt.
:class:`SRTPSession` wraps one ``pylibsrtp.Session`` for one direction (outbound sessions protect,
inbound sessions unprotect, any SSRC) and turns ``pylibsrtp.Error`` into the typed
:class:`~e2ee_lab.transport.errors.SRTPError` family. The replay window (RFC 3711 §3.3.2) is
libsrtp's; inbound sessions default to 1024 packets as browsers use.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import pylibsrtp
from pylibsrtp import Policy

from .errors import AuthenticationFailed, MalformedPacket, ReplayDetected, SRTPError

Direction = Literal["inbound", "outbound"]

RTP_HEADER_SIZE = 12  # RFC 3550 §5.1: fixed header
RTCP_HEADER_SIZE = 8  # RFC 3550 §6.4.1: header + sender SSRC
SRTCP_INDEX_SIZE = 4  # RFC 3711 §3.4: E flag + 31-bit SRTCP index
# pylibsrtp copies every packet into a 1500-byte buffer and reserves room for tag and MKI.
LIBSRTP_BUFFER = 1500
MAX_RTP_SIZE = LIBSRTP_BUFFER - 16 - 128  # largest RTP packet protect() accepts
MAX_RTCP_SIZE = LIBSRTP_BUFFER - 4 - 16 - 128  # largest RTCP packet protect_rtcp() accepts


@dataclass(frozen=True)
class _ProfileSpec:
    profile_id: int  # the uint16 in the use_srtp extension
    openssl_name: bytes  # the name OpenSSL's set_tlsext_use_srtp understands
    libsrtp_id: int  # pylibsrtp Policy.SRTP_PROFILE_*
    key_length: int  # master key bytes
    salt_length: int  # master salt bytes
    tag_length: int  # authentication tag bytes on SRTP and SRTCP


class SRTPProfile(enum.Enum):
    """A DTLS-SRTP protection profile; the value is the name used in key logs."""

    AEAD_AES_128_GCM = "AEAD_AES_128_GCM"
    AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
    AEAD_AES_256_GCM = "AEAD_AES_256_GCM"

    @property
    def _spec(self) -> _ProfileSpec:
        return _SPECS[self]

    @property
    def profile_id(self) -> int:
        """The 16-bit SRTPProtectionProfile value (RFC 5764 §4.1.2, RFC 7714 §14.2)."""
        return self._spec.profile_id

    @property
    def openssl_name(self) -> bytes:
        """The profile name in OpenSSL's ``set_tlsext_use_srtp`` list."""
        return self._spec.openssl_name

    @property
    def libsrtp_id(self) -> int:
        """The ``pylibsrtp.Policy.SRTP_PROFILE_*`` constant."""
        return self._spec.libsrtp_id

    @property
    def key_length(self) -> int:
        """Master key length in bytes."""
        return self._spec.key_length

    @property
    def salt_length(self) -> int:
        """Master salt length in bytes."""
        return self._spec.salt_length

    @property
    def rtp_overhead(self) -> int:
        """Bytes SRTP adds to an RTP packet (the tag; no MKI)."""
        return self._spec.tag_length

    @property
    def rtcp_overhead(self) -> int:
        """Bytes SRTCP adds to an RTCP packet (E flag + index, then the tag)."""
        return SRTCP_INDEX_SIZE + self._spec.tag_length

    @classmethod
    def from_openssl_name(cls, name: bytes) -> SRTPProfile:
        """The profile of an OpenSSL ``get_selected_srtp_profile()`` name; ValueError if unknown."""
        for profile in cls:
            if profile.openssl_name == name:
                return profile
        raise ValueError(f"unknown SRTP profile {name!r}")


_SPECS = {
    SRTPProfile.AEAD_AES_128_GCM: _ProfileSpec(
        0x0007, b"SRTP_AEAD_AES_128_GCM", Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12, 16
    ),
    SRTPProfile.AES_CM_128_HMAC_SHA1_80: _ProfileSpec(
        0x0001, b"SRTP_AES128_CM_SHA1_80", Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14, 10
    ),
    SRTPProfile.AEAD_AES_256_GCM: _ProfileSpec(
        0x0008, b"SRTP_AEAD_AES_256_GCM", Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 32, 12, 16
    ),
}

DEFAULT_PROFILE = SRTPProfile.AEAD_AES_128_GCM
# The offer order of the lab's DTLS endpoints (most preferred first).
DEFAULT_PROFILES: tuple[SRTPProfile, ...] = (
    SRTPProfile.AEAD_AES_128_GCM,
    SRTPProfile.AES_CM_128_HMAC_SHA1_80,
)


@dataclass(frozen=True)
class SRTPMasterKey:
    """One direction's SRTP master key and master salt (RFC 3711 §8.2)."""

    key: bytes  # master key (16 or 32 bytes)
    salt: bytes  # master salt (12 bytes for GCM, 14 for AES-CM)

    def __bytes__(self) -> bytes:
        """key || salt, the layout libsrtp takes."""
        return self.key + self.salt

    def check(self, profile: SRTPProfile) -> None:
        """Raise ValueError unless the lengths fit ``profile``."""
        if len(self.key) != profile.key_length or len(self.salt) != profile.salt_length:
            raise ValueError(
                f"{profile.value} needs a {profile.key_length}-byte key and "
                f"{profile.salt_length}-byte salt, got {len(self.key)} and {len(self.salt)}"
            )

    @classmethod
    def from_hex(cls, key: str, salt: str) -> SRTPMasterKey:
        """Build from two hex strings (the key log's format); ValueError if not hex."""
        return cls(key=bytes.fromhex(key), salt=bytes.fromhex(salt))


# libsrtp status strings (pylibsrtp.ERRORS) mapped to the typed errors.
_AUTH_MESSAGES = {"authentication failure", "cipher failure"}
_REPLAY_MESSAGES = {
    "replay check failed (bad index)",
    "replay check failed (index too old)",
    "packet index is too old to consider",
}


def _typed_error(exc: pylibsrtp.Error | ValueError, what: str) -> SRTPError:
    message = str(exc)
    if message in _AUTH_MESSAGES:
        return AuthenticationFailed(f"{what}: authentication failed")
    if message in _REPLAY_MESSAGES:
        return ReplayDetected(f"{what}: {message}")
    return MalformedPacket(f"{what}: libsrtp said {message!r}")


def _as_bytes(packet: bytes | bytearray | memoryview) -> bytes:
    if type(packet) is bytes:  # the hot path: no copy, no isinstance chain
        return packet
    if not isinstance(packet, (bytes, bytearray, memoryview)):
        raise TypeError(f"packet must be bytes-like, not {type(packet).__name__}")
    return bytes(packet)


def _check_rtp(data: bytes, minimum: int, maximum: int, what: str) -> None:
    if minimum <= len(data) <= maximum and data[0] >> 6 == 2:
        return
    if len(data) < minimum:
        raise MalformedPacket(f"{what}: {len(data)} bytes, need at least {minimum}")
    if len(data) > maximum:
        raise MalformedPacket(f"{what}: {len(data)} bytes, at most {maximum} fit libsrtp's buffer")
    raise MalformedPacket(f"{what}: version {data[0] >> 6}, expected 2")


class SRTPSession:
    """One direction of SRTP/SRTCP for any SSRC, backed by ``pylibsrtp.Session``.

    Args:
        profile: the protection profile (keyword-only, as are all arguments).
        key: the master key and salt of the *sender* of the packets this session handles.
        direction: ``"outbound"`` to protect, ``"inbound"`` to unprotect.
        window_size: replay window in packets (libsrtp accepts 64..32767).
        allow_repeat_tx: outbound only; let libsrtp protect the same index twice (RTP
            retransmissions). Off by default: RFC 3711 §9.1 forbids reusing a keystream.

    Raises:
        ValueError: key or salt length does not fit ``profile``, or a bad window size.
    """

    def __init__(
        self,
        *,
        profile: SRTPProfile = DEFAULT_PROFILE,
        key: SRTPMasterKey,
        direction: Direction,
        window_size: int = 1024,
        allow_repeat_tx: bool = False,
    ) -> None:
        key.check(profile)
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be 'inbound' or 'outbound', not {direction!r}")
        if not 64 <= window_size <= 0x7FFF:
            raise ValueError(f"window_size must be 64..32767, not {window_size}")
        ssrc_type = Policy.SSRC_ANY_INBOUND if direction == "inbound" else Policy.SSRC_ANY_OUTBOUND
        policy = Policy(key=bytes(key), ssrc_type=ssrc_type, srtp_profile=profile.libsrtp_id)
        policy.window_size = window_size
        policy.allow_repeat_tx = allow_repeat_tx
        self.profile = profile
        self.direction: Direction = direction
        self._min_srtp = RTP_HEADER_SIZE + profile.rtp_overhead
        self._min_srtcp = RTCP_HEADER_SIZE + profile.rtcp_overhead
        self._session = pylibsrtp.Session(policy)

    def __repr__(self) -> str:
        return f"SRTPSession({self.profile.value}, {self.direction})"

    def _require(self, direction: Direction, call: str) -> None:
        if self.direction != direction:
            raise ValueError(f"{call}() needs an {direction} session; this one is {self.direction}")

    def protect(self, packet: bytes | bytearray | memoryview) -> bytes:
        """Encrypt and authenticate an RTP packet; returns SRTP (``rtp_overhead`` bytes longer).

        Raises MalformedPacket for a packet that is too short, too long or not version 2, and
        ReplayDetected when the index was already protected and ``allow_repeat_tx`` is off.
        """
        self._require("outbound", "protect")
        data = _as_bytes(packet)
        _check_rtp(data, RTP_HEADER_SIZE, MAX_RTP_SIZE, "RTP")
        return self._call(self._session.protect, data, "protect RTP")

    def protect_rtcp(self, packet: bytes | bytearray | memoryview) -> bytes:
        """Encrypt and authenticate an RTCP compound packet; returns SRTCP."""
        self._require("outbound", "protect_rtcp")
        data = _as_bytes(packet)
        _check_rtp(data, RTCP_HEADER_SIZE, MAX_RTCP_SIZE, "RTCP")
        return self._call(self._session.protect_rtcp, data, "protect RTCP")

    def unprotect(self, packet: bytes | bytearray | memoryview) -> bytes:
        """Verify and decrypt an SRTP packet; returns the RTP packet.

        Raises AuthenticationFailed, ReplayDetected or MalformedPacket (all SRTPError).
        """
        self._require("inbound", "unprotect")
        data = _as_bytes(packet)
        _check_rtp(data, self._min_srtp, LIBSRTP_BUFFER, "SRTP")
        return self._call(self._session.unprotect, data, "unprotect SRTP")

    def unprotect_rtcp(self, packet: bytes | bytearray | memoryview) -> bytes:
        """Verify and decrypt an SRTCP packet; returns the RTCP compound packet."""
        self._require("inbound", "unprotect_rtcp")
        data = _as_bytes(packet)
        _check_rtp(data, self._min_srtcp, LIBSRTP_BUFFER, "SRTCP")
        return self._call(self._session.unprotect_rtcp, data, "unprotect SRTCP")

    @staticmethod
    def _call(func, data: bytes, what: str) -> bytes:
        try:
            return func(data)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _typed_error(exc, what) from exc


@dataclass(frozen=True)
class SRTPSessionPair:
    """The two sessions of one endpoint on one leg: ``tx`` protects, ``rx`` unprotects."""

    tx: SRTPSession
    rx: SRTPSession


def session_pair(
    profile: SRTPProfile,
    *,
    local_key: SRTPMasterKey,
    remote_key: SRTPMasterKey,
    window_size: int = 1024,
    allow_repeat_tx: bool = False,
) -> SRTPSessionPair:
    """Sessions of an endpoint that writes with ``local_key`` and reads the peer's ``remote_key``.

    Returns an :class:`SRTPSessionPair` (outbound ``tx``, inbound ``rx``).
    """
    tx = SRTPSession(
        profile=profile, key=local_key, direction="outbound", allow_repeat_tx=allow_repeat_tx
    )
    rx = SRTPSession(profile=profile, key=remote_key, direction="inbound", window_size=window_size)
    return SRTPSessionPair(tx=tx, rx=rx)
