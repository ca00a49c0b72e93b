"""The SFrame layer's exceptions: one family, each class with a fixed ``reason`` naming its drop counter.

Receivers catch :class:`SFrameError`, count ``err.reason`` and carry on (RFC 9605 §4.4.4: a frame
that fails for any reason but a missing key MUST be discarded, one without its key MAY be buffered;
this lab discards both). :class:`AuthenticationFailed` deliberately says nothing about why.
"""

from __future__ import annotations


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
    """An explicit ``ctr=`` would repeat or go below a CTR already used with this key (§4.3, §9.1)."""

    reason = "nonce_reuse"
