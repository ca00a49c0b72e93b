"""The page's signalling channel: non-trickle, over HTTP on 127.0.0.1, as a web client does it.

The page (``static/client.js``) talks to its signalling server with ``fetch``:

- ``GET /signal?after=N`` long-polls for the messages numbered after ``N``, in order: the SFU's
  offer, the page's member index in the key agreement, roster updates, and key messages other
  members sealed for it (opaque bytes, hex). The reply is ``{"messages": [{"seq", "message"}],
  "closed": bool}``; an empty list after :data:`POLL_TIMEOUT` s means "ask again".
- ``POST /signal`` sends one JSON object: the page's answer, a key message it sealed, or an error.
  The page chains its POSTs, so they arrive in the order it sent them.

:class:`PageChannel` is the server's side of one page. The HTTP server answers in threads while the
call runs in asyncio: the outbox is guarded by a condition variable, and each message from the page
is handed to the call's event loop with ``call_soon_threadsafe``. A body that is not a JSON object,
or arrives when nobody listens, is refused (HTTP 400) and counted in ``refused``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

#: seconds a long-poll waits for a message before it returns an empty list
POLL_TIMEOUT = 10.0
#: the largest POST body accepted (an SDP answer is a few KB; a key message under 200 bytes)
MAX_BODY = 256 * 1024
#: the URL path of the channel on the page's server
PATH = "/signal"


class PageChannel:
    """The signalling server's side of one page (module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._outbox: list[dict] = []
        self._closed = False
        self._receiver: Callable[[dict], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.refused = 0

    def __repr__(self) -> str:
        return f"PageChannel({self.sent} sent, {self.refused} refused, closed={self._closed})"

    @property
    def sent(self) -> int:
        """Messages queued for the page so far."""
        with self._cond:
            return len(self._outbox)

    # --- harness side (the event loop's thread) ----------------------------------------------------

    def to_page(self, message: dict) -> None:
        """Queue ``message`` (a JSON-able dict with a ``type``) for the page's next poll."""
        with self._cond:
            self._outbox.append(message)
            self._cond.notify_all()

    def receive_with(self, callback: Callable[[dict], None], loop: asyncio.AbstractEventLoop) -> None:
        """Call ``callback(message)`` on ``loop`` for every message the page posts."""
        self._receiver, self._loop = callback, loop

    def close(self) -> None:
        """Answer every poll now, with ``closed`` set: the page stops polling."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- HTTP side (the server's threads) ------------------------------------------------------------

    def poll(self, after: int, timeout: float = POLL_TIMEOUT) -> dict:
        """The reply to ``GET /signal?after=<after>``; waits up to ``timeout`` s for a message."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or len(self._outbox) > after, timeout)
            messages = [{"seq": seq, "message": m} for seq, m in enumerate(self._outbox[after:], start=after + 1)]
            return {"messages": messages, "closed": self._closed}

    def from_page(self, body: bytes) -> bool:
        """One ``POST /signal`` body; False (and counted in ``refused``) when it cannot be delivered."""
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            message = None
        if isinstance(message, dict) and self._receiver is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._receiver, message)
                return True
            except RuntimeError:  # the call's loop has closed
                pass
        with self._cond:
            self.refused += 1
        return False
