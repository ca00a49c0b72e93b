"""A minimal HTTP/1.1 JSON client for Janus's APIs on 127.0.0.1 (asyncio streams, no dependency).

One request per connection (``Connection: close``), a JSON body out, a JSON body back. Janus's
answers are untrusted input: a non-200 status, a body over :data:`MAX_BODY` bytes, a broken
chunked encoding or invalid JSON raise :class:`~e2ee_lab.janus.errors.JanusProtocolError`; a
URL that does not name 127.0.0.1 raises ``ValueError`` before any socket is opened.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from .errors import JanusProtocolError, JanusTimeout

MAX_BODY = 4 << 20  # bytes: larger answers are refused
LOOPBACK_HOSTS = ("127.0.0.1",)


def _target(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"only http://127.0.0.1 URLs are allowed, not {url!r}")
    path = parts.path or "/"
    return parts.hostname, parts.port or 80, path + (f"?{parts.query}" if parts.query else "")


def _dechunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise JanusProtocolError(f"bad chunk size {size_line[:20]!r}") from None
        if not sep or len(rest) < size:
            raise JanusProtocolError("truncated chunked body")
        if size == 0:
            return bytes(out)
        out += rest[:size]
        rest = rest[size + 2:]


def parse_response(raw: bytes) -> object:
    """The JSON value of a complete HTTP response ``raw`` (status line, headers, body).

    Raises:
        JanusProtocolError: not HTTP, a status other than 200, a bad body or invalid JSON.
    """
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if not sep or len(status) < 2 or not status[0].startswith("HTTP/") or not status[1].isdigit():
        raise JanusProtocolError(f"not an HTTP response: {raw[:40]!r}")
    if status[1] != "200":
        raise JanusProtocolError(f"HTTP {' '.join(status[1:])}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        length = int(headers["content-length"]) if headers["content-length"].isdigit() else -1
        if length < 0 or len(body) < length:
            raise JanusProtocolError(f"body shorter than Content-Length {headers['content-length']}")
        body = body[:length]
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise JanusProtocolError(f"not JSON: {err}") from None


async def request_json(url: str, payload: dict | None, *, timeout: float) -> object:
    """POST ``payload`` as JSON to ``url`` (GET when None) and return the answer's JSON value.

    Raises:
        ValueError: ``url`` is not ``http://127.0.0.1...``.
        OSError: the connection failed.  JanusTimeout: no complete answer within ``timeout`` s.
        JanusProtocolError: see :func:`parse_response`; or an answer over :data:`MAX_BODY` bytes.
    """
    host, port, path = _target(url)
    body = json.dumps(payload).encode() if payload is not None else b""
    method = "POST" if payload is not None else "GET"
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(host, port, head.encode() + body)
    except TimeoutError:
        raise JanusTimeout(f"{method} {path}: no answer within {timeout} s") from None


async def _exchange(host: str, port: int, request: bytes) -> object:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await reader.read(MAX_BODY + 1)
        while raw and len(raw) <= MAX_BODY:
            more = await reader.read(MAX_BODY + 1 - len(raw))
            if not more:
                break
            raw += more
    finally:
        writer.close()  # the socket closes now; nothing is awaited on the way out
    if len(raw) > MAX_BODY:
        raise JanusProtocolError(f"answer larger than {MAX_BODY} bytes")
    return parse_response(raw)
