"""The browser participant: the page in headless Chromium as seen from the SFU and the signalling relay.

:class:`BrowserParticipant` gives the aiortc SFU (:class:`~e2ee_lab.webrtc.sfu.WebRTCSFU`) what a
:class:`~e2ee_lab.webrtc.participant.WebRTCParticipant` gives it (an answer to its offer, a member of
the key agreement), but every step happens in the page (``static/client.js``). Signalling goes the
way a web client's does, over HTTP on 127.0.0.1 (:mod:`e2ee_lab.browser.signalling`); the DevTools
protocol only drives the harness's side (open the page, start and stop media, read results):

- :meth:`answer`: the SFU's offer goes to the page's signalling channel. The page applies it,
  attaches its canvas pattern and fake microphone to the m-sections the SFU receives, puts an
  Encoded Transform on every sender and, right after ``setRemoteDescription``, before the answer,
  on every receiver (set after negotiation, as an offerer's ``ontrack`` would, Chromium 156 ignores
  an ``RTCRtpScriptTransform``); it posts its answer with loopback candidates only (non-trickle).
  The answer is checked by address.
- :meth:`join_keys`: the page made an ECDH P-256 identity in WebCrypto and drew a 16-byte session
  id for this call (``crypto.getRandomValues``; its user id is its participant name); it joins the
  relay's roster with all three. The page's member index, roster updates (JSON: entries
  ``[index, user, identityHex, sessionHex]`` and the previous group code, the
  :mod:`e2ee_lab.crypto.keys` docstring) and the key messages others sealed for it go down the
  channel in order; key messages the page seals come back as POSTs and are relayed as opaque
  bytes. The harness never sees a frame key: the page derives them (``keys.js``) and hands them to
  its worker (``e2ee.js``). The page's keys are always its own random ones, also in a call made
  with reproducible keys for the Python members.
- :meth:`stats`: the worker's per-transform counts, requestVideoFrameCallback counts and canvas
  pixel samples of every received video, and the page's ``getStats()`` RTP counters.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from e2ee_lab.crypto.keys import Curve, PublicIdentity, RekeyPolicy, RosterUpdate
from e2ee_lab.sfu.server import SignallingRelay
from e2ee_lab.webrtc.sdp import check_loopback

from .chromium import Chromium
from .errors import PageError
from .signalling import PageChannel

Clock = Callable[[], float]
#: seconds the page may take to answer an offer
ANSWER_TIMEOUT = 30.0


def roster_json(update: RosterUpdate) -> dict:
    """A roster update as the page receives it (the :mod:`e2ee_lab.crypto.keys` docstring's JSON form)."""
    return {"type": "roster", "epoch": update.epoch, "change": update.change.value, "subject": update.subject,
            "members": [[e.index, e.user, bytes(e.identity).hex(), e.session.hex()] for e in update.members],
            "previousCode": None if update.previous_code is None else bytes(update.previous_code).hex()}


class BrowserParticipant:
    """One headless Chromium page in the call (module docstring).

    Args:
        name: the participant's name (SFU track labels, relay).
        browser: a started :class:`~e2ee_lab.browser.chromium.Chromium`.
        channel: the page's signalling channel (``StaticServer.channel`` of the server it loads from).
        clock: seconds since the call started.
    """

    def __init__(self, name: str, browser: Chromium, channel: PageChannel, *, clock: Clock) -> None:
        self.name, self.browser, self.page, self.channel = name, browser, browser.page, channel
        self.index: int | None = None
        self.public: PublicIdentity | None = None
        self.session: bytes | None = None  # the page's call session (its own random bytes)
        self.offer: str | None = None
        self.answer_sdp: str | None = None
        self.raw_answer: str | None = None
        self.init: dict = {}
        self.dropped: Counter[str] = Counter()
        self._clock = clock
        self._relay: SignallingRelay | None = None
        self._answer: asyncio.Future | None = None

    def __repr__(self) -> str:
        return f"BrowserParticipant({self.name!r}, member {self.index})"

    async def load(self, url: str, *, mode: str, width: int, height: int, fps: int, api: str = "script",
                   transform_in_ontrack: bool = False, policy: RekeyPolicy = RekeyPolicy()) -> dict:
        """Open the page and start its media; returns what it reports (API, identity, session,
        features). ``policy``: the page's switch delay and grace (its checks are always the fixed ones)."""
        self.channel.receive_with(self._on_page_message, asyncio.get_running_loop())
        await self.browser.navigate(url)
        self.init = await self.page.call("(o) => lab.init(o)", {
            "mode": mode, "width": width, "height": height, "fps": fps, "api": api, "name": self.name,
            "transformInOntrack": transform_in_ontrack, "switchDelay": policy.switch_delay, "grace": policy.grace})
        self.public = PublicIdentity(Curve.P256, bytes.fromhex(self.init["identity"]))
        self.session = bytes.fromhex(self.init["session"])
        return self.init

    async def answer(self, offer: str) -> str:
        """The page's answer to the SFU's ``offer`` (loopback candidates only).

        Raises:
            NotLoopback: the offer, or the answer after the page's filter, names another address.
            PageError: the page reported an error, or did not answer within :data:`ANSWER_TIMEOUT` s.
        """
        check_loopback(offer, where=f"the SFU's offer to {self.name}")
        self.offer = offer
        self._answer = asyncio.get_running_loop().create_future()
        self.channel.to_page({"type": "offer", "sdp": offer})
        try:
            reply = await asyncio.wait_for(self._answer, ANSWER_TIMEOUT)
        except asyncio.TimeoutError:
            raise PageError(f"{self.name} did not answer the SFU's offer within {ANSWER_TIMEOUT} s") from None
        self.raw_answer, self.answer_sdp = reply["raw"], reply["sdp"]
        check_loopback(self.answer_sdp, where=f"{self.name}'s answer")
        return self.answer_sdp

    # --- keys ------------------------------------------------------------------------------------

    def join_keys(self, relay: SignallingRelay) -> None:
        """Join the key agreement through ``relay`` as (name, the page's P-256 identity, its session)."""
        self._relay = relay
        relay.register(self.name, self.on_signal)
        self.index = relay.join(self.name, self.public, self.session, self._clock())
        self.channel.to_page({"type": "join", "index": self.index})

    def on_signal(self, message: object) -> None:
        """Signalling input (a roster update or key-message bytes), forwarded to the page in order."""
        if isinstance(message, RosterUpdate):
            self.channel.to_page(roster_json(message))
        elif isinstance(message, (bytes, bytearray)):
            self.channel.to_page({"type": "key", "data": bytes(message).hex()})
        else:
            self.dropped["unknown_signal"] += 1

    def _on_page_message(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind in ("answer", "error") and self._answer is not None and not self._answer.done():
            if kind == "answer" and isinstance(msg.get("raw"), str) and isinstance(msg.get("sdp"), str):
                self._answer.set_result(msg)
            else:
                self._answer.set_exception(PageError(f"{self.name} could not answer: {msg.get('message', msg)}"))
            return
        try:
            if kind != "key" or self._relay is None:
                raise ValueError(kind)
            self._relay.relay(int(msg["sender"]), int(msg["recipient"]), bytes.fromhex(msg["data"]), self._clock())
        except (ValueError, KeyError, TypeError):
            self.dropped["bad_page_message"] += 1

    async def keys_ready(self, epoch: int, members: list[int]) -> bool:
        """True once the page sends under ``epoch`` and holds every member's key for it."""
        return bool(await self.page.call("(e, m) => lab.keysReady(e, m)", epoch, members))

    async def safety_numbers(self, peers: list[int]) -> dict[int, str]:
        """The 60-digit safety number the page computes with each of ``peers`` (member indices), from
        the user id and identity key it pinned for them (WebCrypto, ``keys.js``)."""
        return {peer: await self.page.call("(p) => lab.safetyNumber(p)", peer) for peer in peers}

    async def arm(self, members: dict[str, int]) -> None:
        """Hand the page's keys to its worker (the frame transforms stop dropping frames)."""
        await self.page.call("(m) => lab.arm(m)", members)

    # --- state and results ---------------------------------------------------------------------------

    async def connection_state(self) -> str:
        """The page's ``RTCPeerConnection.connectionState``."""
        return await self.page.evaluate("lab.pc ? lab.pc.connectionState : 'new'")

    async def stop_sending(self) -> None:
        """Stop the page's senders (``replaceTrack(null)``): no more frames after this."""
        await self.page.evaluate("lab.stopSending()")

    async def stats(self) -> dict:
        """Worker counts, render counts, pixel samples and RTP counters (see ``client.js``)."""
        return await self.page.evaluate("lab.stats()")

    async def close(self) -> None:
        """Close the page's peer connection."""
        try:
            await self.page.evaluate("lab.pc && lab.pc.close()", timeout=5)
        except PageError:
            pass
