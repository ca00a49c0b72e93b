"""The errors of the real-WebRTC layer: one family, each class with a fixed ``reason``.

:class:`WebRTCError` is the base. :class:`NotLoopback` is raised when an SDP carries an ICE
candidate (RFC 8839 §5.1) or a connection address that is not a loopback address, which would mean
packets could leave the machine; :class:`AiortcChanged` when aiortc no longer has a private
attribute the encoded-transform hooks reach into (the pinned version moved);
:class:`ConnectionFailed` when a peer connection did not reach ``connected`` in time;
:class:`CaptureImpossible` when a capture mode cannot see aiortc's sockets; :class:`WorkerError`
when a participant worker process died or missed a deadline, and :class:`MalformedMessage` for a
message between the call and a worker that is not one of the protocol's.
"""

from __future__ import annotations


class WebRTCError(Exception):
    """Base of the real-WebRTC layer's errors; ``reason`` names the counter or the failure."""

    reason = "webrtc"


class NotLoopback(WebRTCError):
    """An SDP names an address other than 127.0.0.1 / ::1 (a candidate, or the c= line)."""

    reason = "not_loopback"


class AiortcChanged(WebRTCError):
    """A private aiortc attribute the hooks need is missing: aiortc is not the pinned version."""

    reason = "aiortc_changed"


class ConnectionFailed(WebRTCError):
    """A peer connection did not reach ``connected`` (ICE + DTLS) within the timeout."""

    reason = "connect_failed"


class CaptureImpossible(WebRTCError, ValueError):
    """The capture mode cannot record this call (the socket tap does not see aiortc's sockets)."""

    reason = "capture_impossible"


class WorkerError(WebRTCError):
    """A participant worker process (:mod:`e2ee_lab.webrtc.workers`) failed: it died, missed a
    deadline or refused its setup; the message names the worker and its participants."""

    reason = "worker_failed"


class MalformedMessage(WebRTCError):
    """A message between the call's process and a participant worker is not one of the protocol's
    (:mod:`e2ee_lab.webrtc.worker_protocol`); ``reason`` is the drop counter."""

    reason = "signal_malformed"

    def __init__(self, message: str, reason: str = "signal_malformed") -> None:
        super().__init__(message)
        self.reason = reason
