"""A small client of Janus's HTTP API (session, handles, long-poll events) and its VideoRoom plugin.

Janus API (over HTTP, ``/janus``): ``create`` a session, ``attach`` a handle to a plugin, send it
``message``\\ s (a plugin request in ``body``, optionally an SDP in ``jsep``), ``keepalive`` and
``destroy``. A plugin answers a synchronous request (``create``, ``exists``, ``list``) in the POST
answer (``janus: success`` with ``plugindata``); an asynchronous one (``join``, ``configure``,
``start``) with ``janus: ack``, and its result comes later as an ``event`` carrying the same
``transaction``, fetched by long-polling ``GET /janus/<session>``. Events of a handle without a
transaction (``webrtcup``, ``media``, ``hangup``, VideoRoom's ``publishers`` notifications) are kept
per handle for :meth:`JanusSession.wait_for`.

Errors: Janus's own (``janus: error``, ``error.code``/``error.reason``) and VideoRoom's
(``error_code``/``error`` in the plugin data) raise :class:`~e2ee_lab.janus.errors.JanusAPIError`;
answers of the wrong shape :class:`~e2ee_lab.janus.errors.JanusProtocolError`. Everything Janus says
is treated as untrusted: ids must be integers, events are matched by transaction and handle.

:class:`VideoRoom` wraps the VideoRoom requests the call needs: create a room with the admin key
(``record``, ``rec_dir``, ``require_e2ee``), join as publisher, publish with an offer (``configure``
with ``jsep``; ``"e2ee": true`` marks frames the publisher encrypts end to end), subscribe to feeds
(multistream ``join`` as subscriber, answered by ``start``), leave, destroy.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Callable

from . import http
from .errors import JanusAPIError, JanusError, JanusProtocolError, JanusTimeout

PLUGIN = "janus.plugin.videoroom"
REQUEST_TIMEOUT = 10.0  # seconds for a POST answer or an asynchronous request's event
POLL_TIMEOUT = 40.0  # seconds a long-poll may hang (Janus answers a keepalive after 30 s)
KEEPALIVE = 25.0  # seconds between keepalives (Janus's session_timeout is 60 s)
MAX_EVENTS = 10  # events per long-poll answer
STOP_WAIT = 2.0  # seconds destroy() waits for the cancelled poll and keepalive tasks
# VideoRoom's talking detection (room settings): average the RFC 6464 level of this many audio
# packets (0.5 s of 20 ms frames); "talking" when the average is below this many -dBov
TALKING_PACKETS = 25
TALKING_LEVEL = 40


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JanusProtocolError(f"{what} is not an integer: {value!r}")
    return value


def check_answer(answer: object, request: str) -> dict:
    """``answer`` as a dict, or the typed error it carries (Janus's or the plugin's)."""
    if not isinstance(answer, dict):
        raise JanusProtocolError(f"{request}: the answer is not a JSON object")
    if answer.get("janus") == "error":
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        raise JanusAPIError(_code(error.get("code")), str(error.get("reason", "")), request)
    data = plugin_data(answer)
    if data is not None and "error_code" in data:
        raise JanusAPIError(_code(data.get("error_code")), str(data.get("error", "")), request)
    return answer


def _code(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def plugin_data(message: dict) -> dict | None:
    """``plugindata.data`` of a Janus message, or None."""
    wrapper = message.get("plugindata")
    data = wrapper.get("data") if isinstance(wrapper, dict) else None
    return data if isinstance(data, dict) else None


class JanusSession:
    """One Janus session over HTTP, with its long-poll task and keepalives.

    Args:
        url: the Janus API, ``http://127.0.0.1:PORT/janus``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.session_id: int | None = None
        self.events: dict[int, list[dict]] = defaultdict(list)  # handle -> events without transaction
        self.dropped: dict[str, int] = defaultdict(int)  # events that matched nothing, by kind
        self._pending: dict[str, asyncio.Future] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.poll_error: BaseException | None = None

    async def _post(self, path: str, payload: dict, request: str) -> dict:
        payload = {**payload, "transaction": payload.get("transaction") or secrets.token_hex(8)}
        answer = check_answer(await http.request_json(self.url + path, payload, timeout=REQUEST_TIMEOUT), request)
        if answer.get("transaction") != payload["transaction"]:
            raise JanusProtocolError(f"{request}: the answer names another transaction")
        return answer

    async def create(self) -> int:
        """Create the session and start long-polling its events; returns the session id."""
        answer = await self._post("", {"janus": "create"}, "create")
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        self.session_id = _int(data.get("id"), "session id")
        self._tasks = [asyncio.ensure_future(self._poll()), asyncio.ensure_future(self._keepalive())]
        return self.session_id

    async def attach(self, plugin: str = PLUGIN) -> int:
        """Attach a handle to ``plugin``; returns the handle id."""
        answer = await self._post(f"/{self.session_id}", {"janus": "attach", "plugin": plugin}, "attach")
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        return _int(data.get("id"), "handle id")

    async def message(self, handle: int, body: dict, jsep: dict | None = None) -> tuple[dict, dict | None]:
        """Send a plugin request; returns (plugin data, jsep or None) of its result, from the POST
        answer (synchronous requests) or from the event with the same transaction (asynchronous).

        Raises:
            JanusAPIError: Janus or the plugin answered with an error.  JanusTimeout: no event.
        """
        transaction = secrets.token_hex(8)
        payload = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            payload["jsep"] = jsep
        waiter = asyncio.get_running_loop().create_future()
        self._pending[transaction] = waiter
        request = str(body.get("request", "message"))
        try:
            answer = await self._post(f"/{self.session_id}/{handle}", payload, request)
            if answer.get("janus") != "ack":
                return self._result(answer, request)
            event = await asyncio.wait_for(waiter, REQUEST_TIMEOUT)
            return self._result(check_answer(event, request), request)
        except asyncio.TimeoutError:
            raise JanusTimeout(f"{request}: no event within {REQUEST_TIMEOUT} s") from None
        finally:
            self._pending.pop(transaction, None)

    @staticmethod
    def _result(message: dict, request: str) -> tuple[dict, dict | None]:
        data = plugin_data(message)
        if data is None:
            raise JanusProtocolError(f"{request}: no plugin data in {message.get('janus')!r}")
        jsep = message.get("jsep")
        return data, jsep if isinstance(jsep, dict) else None

    async def wait_for(self, handle: int, match: Callable[[dict], bool], timeout: float) -> dict:
        """The first event of ``handle`` (without a transaction) for which ``match`` is true.

        Raises:
            JanusTimeout: none within ``timeout`` s.  JanusError: the long-poll failed meanwhile.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = next((e for e in self.events[handle] if match(e)), None)
            if found is not None:
                return found
            if self.poll_error is not None:
                raise JanusError(f"the event long-poll failed: {self.poll_error}")
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise JanusTimeout(f"handle {handle}: the awaited event did not come in {timeout} s")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def _poll(self) -> None:
        url = f"{self.url}/{self.session_id}?maxev={MAX_EVENTS}"
        try:
            while True:
                answer = await http.request_json(url, None, timeout=POLL_TIMEOUT)
                for event in answer if isinstance(answer, list) else [answer]:
                    self._dispatch(event)
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except (JanusError, OSError) as err:
            self.poll_error = err
            self._changed.set()

    def _dispatch(self, event: object) -> None:
        if not isinstance(event, dict):
            self.dropped["not_an_object"] += 1
            return
        kind, transaction, sender = str(event.get("janus")), event.get("transaction"), event.get("sender")
        waiter = self._pending.get(transaction) if isinstance(transaction, str) else None
        if waiter is not None and kind in ("event", "error") and not waiter.done():
            waiter.set_result(event)
        elif isinstance(sender, int) and not isinstance(sender, bool) and kind != "keepalive":
            self.events[sender].append(event)
        elif kind != "keepalive":
            self.dropped[kind] += 1

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE)
            try:
                await self._post(f"/{self.session_id}", {"janus": "keepalive"}, "keepalive")
            except (JanusError, OSError):
                return

    async def detach(self, handle: int) -> None:
        """Detach a handle (Janus hangs its PeerConnection up)."""
        await self._post(f"/{self.session_id}/{handle}", {"janus": "detach"}, "detach")

    async def destroy(self) -> None:
        """Stop polling and destroy the session (errors on the way out are ignored)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_WAIT)
        self._tasks = []
        if self.session_id is not None:
            try:
                await self._post(f"/{self.session_id}", {"janus": "destroy"}, "destroy")
            except (JanusError, OSError):
                pass
            self.session_id = None


def is_webrtcup(event: dict) -> bool:
    return event.get("janus") == "webrtcup"


class VideoRoom:
    """VideoRoom requests on one handle of a :class:`JanusSession`."""

    def __init__(self, session: JanusSession, handle: int) -> None:
        self.session, self.handle = session, handle

    @classmethod
    async def attach(cls, session: JanusSession) -> VideoRoom:
        return cls(session, await session.attach(PLUGIN))

    async def create_room(self, room: int, *, admin_key: str, publishers: int, record: bool = False,
                          rec_dir: str | None = None, require_e2ee: bool = False) -> dict:
        """Create a VP8/Opus room (needs the plugin's ``admin_key``); returns the plugin data.

        The room announces who is talking (``audiolevel_event``: VideoRoom reads each publisher's
        RFC 6464 audio level, which frame encryption leaves in clear, and sends ``talking`` /
        ``stopped-talking`` events to the publisher's handle)."""
        body = {"request": "create", "room": room, "admin_key": admin_key, "publishers": publishers,
                "videocodec": "vp8", "audiocodec": "opus", "record": record, "require_e2ee": require_e2ee,
                "is_private": True, "permanent": False, "bitrate": 0, "fir_freq": 0,
                "audiolevel_event": True, "audio_active_packets": TALKING_PACKETS,
                "audio_level_average": TALKING_LEVEL}
        if rec_dir is not None:
            body["rec_dir"] = rec_dir
        data, _ = await self.session.message(self.handle, body)
        return data

    async def join_publisher(self, room: int, display: str) -> dict:
        """Join ``room`` as a publisher; returns the ``joined`` data (``id``: this feed's id)."""
        data, _ = await self.session.message(self.handle, {"request": "join", "ptype": "publisher",
                                                           "room": room, "display": display})
        _int(data.get("id"), "feed id")
        return data

    async def publish(self, offer_sdp: str, *, e2ee: bool) -> str:
        """Send the publisher's offer (``configure`` with jsep); returns Janus's answer SDP."""
        jsep = {"type": "offer", "sdp": offer_sdp, "trickle": False, "e2ee": e2ee}
        _, answer = await self.session.message(self.handle, {"request": "configure", "audio": True,
                                                             "video": True}, jsep)
        return _sdp(answer, "answer", "configure")

    async def subscribe(self, room: int, feeds: list[int]) -> tuple[dict, str]:
        """Join ``room`` as a subscriber to ``feeds`` (one multistream PeerConnection); returns
        the ``attached`` data (its ``streams`` map each ``mid`` to a ``feed_id``) and Janus's offer."""
        body = {"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": f} for f in feeds]}
        data, offer = await self.session.message(self.handle, body)
        return data, _sdp(offer, "offer", "join (subscriber)")

    async def start(self, answer_sdp: str) -> dict:
        """Send the subscriber's answer (``start``); returns the plugin data."""
        jsep = {"type": "answer", "sdp": answer_sdp, "trickle": False}
        data, _ = await self.session.message(self.handle, {"request": "start"}, jsep)
        return data

    async def leave(self) -> None:
        await self.session.message(self.handle, {"request": "leave"})

    async def destroy_room(self, room: int, *, admin_key: str) -> None:
        await self.session.message(self.handle, {"request": "destroy", "room": room, "admin_key": admin_key})

    async def wait_webrtcup(self, timeout: float) -> dict:
        """Until Janus reports this handle's PeerConnection up (ICE and DTLS done)."""
        return await self.session.wait_for(self.handle, is_webrtcup, timeout)


def _sdp(jsep: dict | None, kind: str, request: str) -> str:
    if jsep is None or jsep.get("type") != kind or not isinstance(jsep.get("sdp"), str):
        raise JanusProtocolError(f"{request}: expected an SDP {kind} from Janus")
    return jsep["sdp"]
