"""Headless Chromium, launched and driven over the Chrome DevTools Protocol (CDP), on loopback.

:class:`Chromium` starts the system browser itself: the real binary (``/usr/lib/chromium/chromium``
on Debian, not the ``/usr/bin/chromium`` shell wrapper, which adds flags from ``/etc/chromium.d``
and prints errors), with a fresh profile directory and :data:`FLAGS`. ``--remote-debugging-port=0``
lets the browser pick its DevTools port, which it writes to ``<profile>/DevToolsActivePort``; the
page target's WebSocket URL comes from ``http://127.0.0.1:<port>/json/list``. :class:`CDPSession`
speaks CDP over that WebSocket (the ``websockets`` package): numbered commands and their replies,
events (console messages, uncaught exceptions), and ``Runtime.evaluate`` with promises awaited.
The page's own signalling does not use CDP: it is HTTP (:mod:`e2ee_lab.browser.signalling`).
Nothing is downloaded: no Playwright browser, no driver.

``--allow-loopback-in-peer-connection`` is what makes 127.0.0.1 an ICE candidate at all; Chrome
has no switch that removes the other interfaces, hence the page's candidate filter and the
network namespace of :mod:`e2ee_lab.browser.isolation`. ``--host-resolver-rules`` makes every
name lookup fail without a query: even with ``--disable-background-networking`` and
``--disable-component-update`` Chromium 156 otherwise resolves ``clients2.google.com``,
``update.googleapis.com`` and ``accounts.google.com`` within seconds of starting, through the
system's DNS server on a real interface.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import websockets

from e2ee_lab.config import scratch_dir

from .errors import BrowserNotFound, BrowserStartFailed, PageError

#: where Debian, Ubuntu and Fedora put the real binary (never a wrapper script)
CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser",
              "/usr/lib64/chromium-browser/chromium-browser", "/opt/google/chrome/chrome")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--remote-debugging-port=0",
)
START_TIMEOUT = 15.0  # seconds until DevToolsActivePort appears


def find_chromium() -> str | None:
    """The Chromium binary to launch: ``$E2EE_LAB_CHROMIUM``, else the first of :data:`CANDIDATES`
    that exists, else None (browser features then skip with that reason)."""
    env = os.environ.get("E2EE_LAB_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def chromium_version(binary: str | None = None) -> str | None:
    """``chromium --version`` of the binary :func:`find_chromium` picks, or None."""
    binary = binary or find_chromium()
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or None


class CDPSession:
    """One CDP connection to a page target: commands and events (module docstring)."""

    def __init__(self, ws) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.console: list[str] = []
        self.exceptions: list[str] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self._dispatch(json.loads(raw))
        except websockets.ConnectionClosed:
            pass
        for future in self._pending.values():
            if not future.done():
                future.set_exception(PageError("the DevTools connection closed"))

    def _dispatch(self, msg: dict) -> None:
        if "id" in msg:
            future = self._pending.pop(msg["id"], None)
            if future is not None and not future.done():
                if "error" in msg:
                    future.set_exception(PageError(f"CDP error: {msg['error'].get('message')}"))
                else:
                    future.set_result(msg.get("result", {}))
            return
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.exceptions.append(details.get("exception", {}).get("description") or details.get("text", "?"))

    async def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        """Send one CDP command and return its result; PageError on a protocol error or timeout."""
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise PageError(f"{method} got no reply within {timeout} s") from None

    async def evaluate(self, expression: str, timeout: float = 30.0):
        """Evaluate JavaScript in the page, await a promise, return the value (JSON-able).

        Raises:
            PageError: the expression threw (the JS exception's text is in the message).
        """
        result = await self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                      "returnByValue": True}, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise PageError(f"the page threw: {text}")
        return result.get("result", {}).get("value")

    async def call(self, function: str, *args, timeout: float = 30.0):
        """``function(*args)`` in the page, the arguments passed as JSON."""
        return await self.evaluate(f"({function})(...{json.dumps(list(args))})", timeout)

    async def screenshot(self) -> bytes:
        """A PNG of the page as it is rendered now."""
        result = await self.send("Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(result["data"])

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()


class Chromium:
    """A headless Chromium process with a fresh profile; ``async with Chromium() as browser``.

    Args:
        binary: the browser executable (default :func:`find_chromium`).
        extra_flags: more command-line switches.

    Raises:
        BrowserNotFound: no Chromium is installed.  BrowserStartFailed: it did not start.
    """

    def __init__(self, binary: str | None = None, extra_flags: tuple[str, ...] = ()) -> None:
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise BrowserNotFound("no Chromium binary found (apt-get install chromium, or set E2EE_LAB_CHROMIUM)")
        self.flags = FLAGS + tuple(extra_flags)
        self.process: subprocess.Popen | None = None
        self.profile: str | None = None
        self.port: int | None = None
        self.page: CDPSession | None = None

    async def __aenter__(self) -> Chromium:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> CDPSession:
        """Launch the browser and connect to its blank page; returns the page's :class:`CDPSession`."""
        self.profile = str(scratch_dir("e2ee-lab-chromium-"))
        args = [self.binary, *self.flags, f"--user-data-dir={self.profile}", "about:blank"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = await self._devtools_port()
        url = await asyncio.to_thread(self._page_url)
        ws = await websockets.connect(url, max_size=None)
        self.page = CDPSession(ws)
        await self.page.send("Runtime.enable")
        await self.page.send("Page.enable")
        return self.page

    async def _devtools_port(self) -> int:
        path = Path(self.profile) / "DevToolsActivePort"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            if self.process.poll() is not None:
                raise BrowserStartFailed(f"{self.binary} exited with status {self.process.returncode}")
            lines = path.read_text().splitlines() if path.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            await asyncio.sleep(0.05)
        raise BrowserStartFailed(f"no DevTools port within {START_TIMEOUT} s")

    def _page_url(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        page = next((t for t in targets if t.get("type") == "page"), None)
        if page is None:
            raise BrowserStartFailed("the browser has no page target")
        return page["webSocketDebuggerUrl"]

    async def navigate(self, url: str) -> None:
        """Open ``url`` in the page and wait until its scripts have run (``window.lab`` exists)."""
        await self.page.send("Page.navigate", {"url": url})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while loop.time() < deadline:
            try:
                if await self.page.evaluate("typeof window.lab === 'object' && document.readyState === 'complete'"):
                    return
            except PageError:
                pass
            await asyncio.sleep(0.05)
        raise PageError(f"{url} did not load: {self.page.exceptions[-3:]}")

    async def close(self) -> None:
        """Close the DevTools connection, stop this browser (by its PID) and delete the profile."""
        if self.page is not None:
            await self.page.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait, 5)
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
