"""The static web client, served over HTTP on 127.0.0.1 (no build step, no network).

The page (``static/index.html``, ``client.js``), the crypto library (``e2ee.js``, shared by the page
and the worker) and the Encoded Transform worker (``worker.js``) ship inside the package.
:class:`StaticServer` serves that directory from a ``ThreadingHTTPServer`` bound to 127.0.0.1 on a
free port; a Worker needs an http(s) origin, which ``file://`` is not.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

STATIC = Path(str(resources.files("e2ee_lab.browser") / "static"))


def static_file(name: str) -> str:
    """The text of one shipped client file (``client.js``, ``worker.js``, ``e2ee.js``, ``index.html``)."""
    return (STATIC / name).read_text(encoding="utf-8")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class StaticServer:
    """``with StaticServer() as server: server.url`` serves :data:`STATIC` on 127.0.0.1."""

    def __init__(self, directory: Path = STATIC) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/index.html"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
