"""The static web client and its signalling, served over HTTP on 127.0.0.1 (no build step, no network).

The page (``static/index.html``, ``client.js``), the frame crypto (``e2ee.js``, shared by the page
and the worker), the key agreement (``keys.js``, the page's) and the Encoded Transform worker
(``worker.js``) ship inside the package.
:class:`StaticServer` serves that directory from a ``ThreadingHTTPServer`` bound to 127.0.0.1 on a
free port (a Worker needs an http(s) origin, which ``file://`` is not), and the page's signalling
channel at ``/signal`` (:mod:`e2ee_lab.browser.signalling`).
"""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .signalling import MAX_BODY, PATH, POLL_TIMEOUT, PageChannel

STATIC = Path(str(resources.files("e2ee_lab.browser") / "static"))


def static_file(name: str) -> str:
    """The text of one shipped client file (``client.js``, ``worker.js``, ``e2ee.js``, ``keys.js``, ``index.html``)."""
    return (STATIC / name).read_text(encoding="utf-8")


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, channel: PageChannel, poll_timeout: float, **kw) -> None:
        self.channel, self.poll_timeout = channel, poll_timeout
        super().__init__(*args, **kw)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != PATH:
            return super().do_GET()
        try:
            after = int(parse_qs(url.query).get("after", ["0"])[0])
        except ValueError:
            return self.send_error(400, "after must be an integer")
        body = json.dumps(self.channel.poll(max(after, 0), self.poll_timeout)).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:  # the page went away during the long-poll (browser closed)
            pass

    def do_POST(self) -> None:
        if urlsplit(self.path).path != PATH:
            return self.send_error(404)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self.send_error(413 if length > MAX_BODY else 400, "one JSON object, at most 256 KB")
        if not self.channel.from_page(self.rfile.read(length)):
            return self.send_error(400, "not a JSON object, or no call is listening")
        self.send_response(204)
        self.end_headers()


class StaticServer:
    """``with StaticServer() as server: server.url`` serves :data:`STATIC` and ``server.channel`` on 127.0.0.1."""

    def __init__(self, directory: Path = STATIC, *, poll_timeout: float = POLL_TIMEOUT) -> None:
        self.channel = PageChannel()
        handler = functools.partial(_Handler, directory=str(directory), channel=self.channel,
                                    poll_timeout=poll_timeout)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/index.html"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.channel.close()
        self.httpd.shutdown()
        self.httpd.server_close()
