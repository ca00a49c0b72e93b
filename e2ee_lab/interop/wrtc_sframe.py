"""libwebrtc's native SFrame (RFC 9605) from Python through PyPI ``wrtc`` 0.1.0 (libwebrtc M152).

``wrtc.SFrameTransform(suite, encrypting)`` is libwebrtc's per-frame SFrame: ``setEncryptionKey``
/ ``addDecryptionKey`` take a base key and a KID, ``encrypt`` counts CTR up from 0 with empty
metadata, ``decrypt`` returns ``(plaintext or None, error code, KID or None)``. Its known-answer
entry points are private (``_sframeEncrypt``, ``_sframeDecrypt``, ``_sframeDerive``), used here
only to check vectors. :class:`WrtcSFrame` wraps one transform with the lab's shape
(``protect``/``unprotect`` returning bytes, failures raised in the :class:`SFrameError` family),
so tests and benchmarks can put it beside :class:`~e2ee_lab.crypto.sframe.SFrameContext`.
What wrtc does NOT do, and the lab does (each reproduced in :mod:`e2ee_lab.attacks.native`): it
keeps no replay window, accepts non-minimal headers, accepts an empty base key, and two of its
encryptors given one key and KID both start at CTR 0 (nonce reuse). Standalone transforms need no
network; nothing in this module creates a peer connection.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..crypto.sframe import (
    AuthenticationFailed,
    CipherSuite,
    MalformedHeader,
    SFrameError,
    UnknownKeyId,
)

WRTC_REQUIREMENT = "wrtc==0.1.0"  # the optional extra ``interop``; not wrtc[aiortc] (pins av<18)
# decrypt() error codes as observed with wrtc 0.1.0 (tampered tag, unknown KID, empty input)
WRTC_DECRYPT_ERRORS: dict[int, type[SFrameError]] = {
    1: AuthenticationFailed,
    2: UnknownKeyId,
    3: MalformedHeader,
}


def wrtc_problem() -> str | None:
    """None when ``wrtc`` imports, else a one-line reason (for skips and CLI messages)."""
    try:
        importlib.import_module("wrtc")
    except ImportError as exc:
        return f"wrtc is not installed ({exc}); pip install -e '.[interop]' brings {WRTC_REQUIREMENT}"
    return None


def import_wrtc() -> ModuleType:
    """The ``wrtc`` module; raises ``ImportError`` with :func:`wrtc_problem`'s reason."""
    problem = wrtc_problem()
    if problem:
        raise ImportError(problem)
    return importlib.import_module("wrtc")


class WrtcSFrame:
    """One libwebrtc SFrame transform (encrypting or decrypting) with the lab's method names."""

    def __init__(self, suite: CipherSuite | int, *, encrypting: bool) -> None:
        """Raises ``ImportError`` without wrtc and ``ValueError`` for a suite wrtc lacks."""
        self.suite = CipherSuite(suite)
        self.encrypting = encrypting
        self._transform = import_wrtc().SFrameTransform(int(self.suite), encrypting)

    def set_key(self, kid: int, base_key: bytes) -> None:
        """Install ``base_key`` under ``kid``: the send key, or one more receive key."""
        if self.encrypting:
            ok = self._transform.setEncryptionKey(bytes(base_key), kid)
        else:
            ok = self._transform.addDecryptionKey(bytes(base_key), kid)
        if not ok:
            raise ValueError(f"wrtc refused the key for KID {kid}")

    def protect(self, plaintext: bytes) -> bytes:
        """Encrypt one frame (next CTR, empty metadata)."""
        return bytes(self._transform.encrypt(bytes(plaintext)))

    def unprotect(self, ciphertext: bytes) -> bytes:
        """Decrypt one frame; raises the :class:`SFrameError` member matching wrtc's error code."""
        plaintext, code, _kid = self._transform.decrypt(bytes(ciphertext))
        if plaintext is None:
            error = WRTC_DECRYPT_ERRORS.get(code, SFrameError)
            raise error(f"wrtc refused the frame (error code {code})")
        return bytes(plaintext)


def wrtc_known_answer(suite: int, base_key: bytes, kid: int, ctr: int, metadata: bytes,
                      plaintext: bytes) -> bytes:
    """libwebrtc's SFrame encryption at an explicit CTR and metadata (its private KAT entry)."""
    return bytes(import_wrtc()._sframeEncrypt(suite, base_key, kid, ctr, metadata, plaintext))


def wrtc_known_answer_decrypt(suite: int, base_key: bytes, metadata: bytes,
                              ciphertext: bytes) -> bytes | None:
    """libwebrtc's SFrame decryption with metadata (its private KAT entry); None on failure."""
    out = import_wrtc()._sframeDecrypt(suite, base_key, metadata, ciphertext)
    return None if out is None else bytes(out)
