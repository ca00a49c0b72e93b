"""Headless Chromium as a participant of the lab's aiortc call (W3C WebRTC Encoded Transform, RFC 9605).

The browser joins the aiortc SFU of :mod:`e2ee_lab.webrtc` next to the Python participants. Its
web client ships here (``static/``: page, WebCrypto SFrame and clear-prefix framings, the key
agreement, the Encoded Transform worker) and is served on 127.0.0.1; :mod:`.chromium` launches the
system Chromium and drives it over the DevTools protocol; :mod:`.participant` is the page as the
SFU and the signalling relay see it; :mod:`.call` runs a call and measures it; :mod:`.isolation`
runs it in a network namespace with only ``lo`` (the child process is :mod:`.in_netns`);
:mod:`.loss` is its loss experiment (one frame dropped, what Chrome's depacketizer reads);
:mod:`.tally` gives it ``e2ee-lab call``'s table and the three views of the browser's video;
:mod:`.stack` registers it as a participant of ``run_call`` / ``e2ee-lab call``
(``browser_participants=1``, ``--browser 1``); :mod:`.vectors` runs RFC 9605 vectors in the page.
"""

from .call import BROWSER_NAME, BrowserCallResult, pattern, run_browser_call, run_browser_call_async, sfu_judges_browser
from .chromium import FLAGS, CDPSession, Chromium, chromium_version, find_chromium
from .errors import BrowserError, BrowserNotFound, BrowserStartFailed, IsolationFailed, PageError
from .isolation import netns_problem, resolve_isolation
from .server import STATIC, StaticServer, static_file
from .vectors import run_vectors_in_browser

__all__ = [
    "BROWSER_NAME", "FLAGS", "STATIC", "BrowserCallResult", "BrowserError", "BrowserNotFound",
    "BrowserStartFailed", "CDPSession", "Chromium", "IsolationFailed", "PageError", "StaticServer",
    "chromium_version", "find_chromium", "netns_problem", "pattern", "resolve_isolation",
    "run_browser_call", "run_browser_call_async", "run_vectors_in_browser", "sfu_judges_browser",
    "static_file",
]
