"""The errors of the browser layer: one family, each class with a fixed ``reason``.

:class:`BrowserError` is the base. :class:`BrowserNotFound`: no Chromium binary; tests skip with
this reason. :class:`BrowserStartFailed`: the process died or never opened its DevTools port.
:class:`PageError`: a DevTools command failed or the page's JavaScript threw.
:class:`IsolationFailed`: the call in a private network namespace did not produce a result.
"""

from __future__ import annotations

from e2ee_lab.webrtc.errors import WebRTCError


class BrowserError(WebRTCError):
    """Base of the browser layer's errors; ``reason`` names the failure."""

    reason = "browser"


class BrowserNotFound(BrowserError):
    """No Chromium executable is installed (or ``E2EE_LAB_CHROMIUM`` names none)."""

    reason = "browser_not_found"


class BrowserStartFailed(BrowserError):
    """Chromium exited early or did not write its DevTools port in time."""

    reason = "browser_start_failed"


class PageError(BrowserError):
    """A DevTools command failed, or the page's JavaScript threw."""

    reason = "page_error"


class IsolationFailed(BrowserError):
    """The browser call in a private network namespace failed (its stderr is in the message)."""

    reason = "isolation_failed"
