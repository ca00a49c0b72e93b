"""Self-signed DTLS certificates and SDP fingerprints (RFC 8827 §6.5, RFC 8122 §5, RFC 5763 §5).

WebRTC endpoints authenticate each DTLS handshake not with a CA but with the certificate
fingerprint that signalling carried in SDP (``a=fingerprint:sha-256 AB:CD:...``, RFC 8122 §5);
a peer whose certificate does not hash to the announced value is a man in the middle (RFC 5763
§5: the endpoint "MUST" check it). :class:`Certificate` makes an ECDSA P-256 key and a
self-signed X.509 certificate with ``cryptography`` (what browsers generate by default);
:class:`Fingerprint` is the parsed SDP value and :meth:`Fingerprint.verify` compares in constant
time and raises, never returns a bool.
"""

from __future__ import annotations

import datetime
import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import FingerprintMismatch, MalformedFingerprint

# RFC 8122 §5 hash function names (lower case, as SDP writes them) and digest sizes.
HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}
_HEX_PAIRS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*$")
CERTIFICATE_LIFETIME = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Fingerprint:
    """A certificate fingerprint as SDP carries it: hash name and digest bytes."""

    algorithm: str  # "sha-256", "sha-384" or "sha-512"
    digest: bytes  # raw digest bytes

    @classmethod
    def of(cls, certificate: x509.Certificate, algorithm: str = "sha-256") -> Fingerprint:
        """The fingerprint of ``certificate`` (DER) with ``algorithm``."""
        algorithm = _check_algorithm(algorithm)
        return cls(algorithm, certificate.fingerprint(HASH_ALGORITHMS[algorithm]()))

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse ``"sha-256 AB:CD:..."`` (optionally with the ``a=fingerprint:`` prefix).

        Raises MalformedFingerprint (a ValueError) naming what is wrong.
        """
        text = text.strip().removeprefix("a=fingerprint:")
        parts = text.split()
        if len(parts) != 2:
            raise MalformedFingerprint(f"expected '<hash> XX:XX:...', got {len(parts)} fields")
        algorithm = _check_algorithm(parts[0])
        if not _HEX_PAIRS.match(parts[1]):
            raise MalformedFingerprint("fingerprint value must be colon-separated hex byte pairs")
        digest = bytes.fromhex(parts[1].replace(":", ""))
        expected = HASH_ALGORITHMS[algorithm].digest_size
        if len(digest) != expected:
            raise MalformedFingerprint(
                f"{algorithm} digest has {len(digest)} bytes, need {expected}"
            )
        return cls(algorithm, digest)

    def __str__(self) -> str:
        """``"sha-256 AB:CD:..."``: the value of an SDP ``a=fingerprint`` attribute."""
        return f"{self.algorithm} {self.digest.hex(':').upper()}"

    @property
    def sdp(self) -> str:
        """The full SDP attribute line ``a=fingerprint:sha-256 AB:CD:...``."""
        return f"a=fingerprint:{self}"

    def verify(self, certificate: x509.Certificate) -> None:
        """Raise FingerprintMismatch unless ``certificate`` hashes to this fingerprint.

        The digests are compared in constant time.
        """
        actual = certificate.fingerprint(HASH_ALGORITHMS[self.algorithm]())
        if not hmac.compare_digest(actual, self.digest):
            raise FingerprintMismatch("peer certificate does not match the signalled fingerprint")


def _check_algorithm(name: str) -> str:
    algorithm = name.lower()
    if algorithm not in HASH_ALGORITHMS:
        raise MalformedFingerprint(f"unsupported fingerprint hash {name!r}")
    return algorithm


class Certificate:
    """An ECDSA P-256 private key and its self-signed X.509 certificate (one per endpoint)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, x509_cert: x509.Certificate):
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise TypeError("private_key must be an elliptic-curve private key")
        self.private_key = private_key
        self.x509 = x509_cert

    @classmethod
    def generate(cls, common_name: str | None = None) -> Certificate:
        """A fresh P-256 key and a 30-day self-signed certificate (random CN unless given)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name or secrets.token_hex(8))]
        )
        now = datetime.datetime.now(tz=datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + CERTIFICATE_LIFETIME)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def fingerprint(self, algorithm: str = "sha-256") -> Fingerprint:
        """This certificate's fingerprint, the value to put in SDP."""
        return Fingerprint.of(self.x509, algorithm)

    def __repr__(self) -> str:
        return f"Certificate({self.fingerprint()})"
