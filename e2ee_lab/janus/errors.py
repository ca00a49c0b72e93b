"""The errors of the Janus layer: one family, each class with a fixed ``reason``.

:class:`JanusError` is the base (a :class:`~e2ee_lab.webrtc.errors.WebRTCError`, so the ``call``
command reports it in one line). :class:`JanusUnavailable`: no Janus binary, no root, or no private
network namespace here; tests skip with this reason. :class:`NotIsolated`: something tried to start
Janus in a network namespace that has an interface besides ``lo`` (Janus never runs there).
:class:`JanusStartFailed`: the process exited or never answered on its HTTP port.
:class:`JanusAPIError`: Janus answered a request with an error (``code`` and ``text`` are Janus's
own, e.g. 428 "No such feed"); :class:`JanusProtocolError`: an answer that is not what the Janus
API defines (not JSON, a missing field, a wrong transaction). :class:`JanusTimeout`: an event or a
state did not arrive in time. :class:`ShimBuildFailed`: the loopback shim did not compile.
"""

from __future__ import annotations

from e2ee_lab.webrtc.errors import WebRTCError


class JanusError(WebRTCError):
    """Base of the Janus layer's errors; ``reason`` names the failure."""

    reason = "janus"


class JanusUnavailable(JanusError):
    """Janus cannot run here (binary missing, not root, no network namespace); the message says why."""

    reason = "janus_unavailable"


class NotIsolated(JanusError):
    """The current network namespace has an interface besides ``lo``: Janus is not started."""

    reason = "not_isolated"


class JanusStartFailed(JanusError):
    """Janus exited early or did not answer on its HTTP port in time (its log's end is in the message)."""

    reason = "janus_start_failed"


class JanusAPIError(JanusError):
    """Janus answered with an error: ``code`` (Janus's or the plugin's error code) and ``text``."""

    reason = "janus_api_error"

    def __init__(self, code: int, text: str, request: str = "") -> None:
        self.code, self.text, self.request = code, text, request
        where = f" ({request})" if request else ""
        super().__init__(f"Janus error {code}: {text}{where}")


class JanusProtocolError(JanusError):
    """An answer that breaks the Janus API's shape (not JSON, a field missing, another transaction)."""

    reason = "janus_protocol_error"


class JanusTimeout(JanusError):
    """An awaited event (answer, ``webrtcup``, recording) or state did not come in time."""

    reason = "janus_timeout"


class ShimBuildFailed(JanusError):
    """The loopback shim (``loopback_shim.c``) did not compile with the system C compiler."""

    reason = "shim_build_failed"
