"""The errors of the native (libwebrtc) participant: one family, each class with a fixed ``reason``.

:class:`NativeError` is the base (a :class:`~e2ee_lab.webrtc.errors.WebRTCError`, so ``e2ee-lab
call`` reports it in one line and exits 2). :class:`NativeUnavailable`: no ``wrtc``, not root, or no
private network namespace here; tests skip with this reason. :class:`NotIsolated`: something tried
to create a libwebrtc peer connection in a network namespace with an interface besides ``lo``
(libwebrtc gathers on every interface and cannot be restricted, so it is never created there).
"""

from __future__ import annotations

from e2ee_lab.webrtc.errors import WebRTCError


class NativeError(WebRTCError):
    """Base of the native participant's errors; ``reason`` names the failure."""

    reason = "native"


class NativeUnavailable(NativeError):
    """A native participant cannot run here (wrtc missing, not root, no namespace); the message says why."""

    reason = "native_unavailable"


class NotIsolated(NativeError):
    """The current network namespace has an interface besides ``lo``: no libwebrtc peer connection."""

    reason = "not_isolated"
