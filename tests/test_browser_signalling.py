"""Tests for e2ee_lab.browser.signalling and the page's server: the HTTP signalling channel.

No browser needed: these speak HTTP to the server on 127.0.0.1 the way the page's ``fetch`` does.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request

from hypothesis import given
from hypothesis import strategies as st

from e2ee_lab.browser.server import StaticServer
from e2ee_lab.browser.signalling import MAX_BODY, PageChannel


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _post(url: str, body: bytes) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def _post_too_large(port: int) -> int:
    """Announce a body over MAX_BODY and send none: the server must refuse from the header alone."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /signal HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
        return int(sock.recv(100).split()[1])


def test_poll_returns_the_messages_after_a_sequence_number_in_order():
    channel = PageChannel()
    for i in range(3):
        channel.to_page({"type": "key", "data": f"{i:02x}"})
    assert channel.poll(0, timeout=0) == {"messages": [{"seq": i + 1, "message": {"type": "key", "data": f"{i:02x}"}}
                                                       for i in range(3)], "closed": False}
    assert [m["seq"] for m in channel.poll(2, timeout=0)["messages"]] == [3]
    assert channel.sent == 3


def test_a_waiting_poll_wakes_on_a_message_and_returns_empty_on_timeout():
    channel = PageChannel()
    started = time.monotonic()
    assert channel.poll(0, timeout=0.05)["messages"] == []
    assert time.monotonic() - started >= 0.04
    got = []
    waiter = threading.Thread(target=lambda: got.append(channel.poll(0, timeout=10)))
    waiter.start()
    time.sleep(0.05)
    channel.to_page({"type": "offer", "sdp": "v=0"})
    waiter.join(5)
    assert got and got[0]["messages"][0]["message"]["type"] == "offer"


def test_close_answers_every_poll_at_once():
    channel = PageChannel()
    channel.close()
    started = time.monotonic()
    assert channel.poll(0, timeout=10) == {"messages": [], "closed": True}
    assert time.monotonic() - started < 1


def test_posts_reach_the_event_loop_and_bad_ones_are_refused_and_counted():
    async def run():
        loop, got = asyncio.get_running_loop(), []
        with StaticServer(poll_timeout=0.05) as server:
            server.channel.receive_with(got.append, loop)
            signal = f"http://127.0.0.1:{server.port}/signal"
            statuses = await asyncio.to_thread(lambda: [
                _post(signal, json.dumps({"type": "answer", "raw": "v=0", "sdp": "v=0"}).encode()),
                _post(signal, b"not json"), _post(signal, b"[1, 2]"), _post(signal, b"\xff\xfe"),
                _post_too_large(server.port), _post(f"http://127.0.0.1:{server.port}/other", b"{}")])
            await asyncio.sleep(0.05)
            return statuses, got, server.channel.refused
    statuses, got, refused = asyncio.run(run())
    assert statuses == [204, 400, 400, 400, 413, 404]
    assert got == [{"type": "answer", "raw": "v=0", "sdp": "v=0"}]
    assert refused == 3  # the three bodies that reached the channel; 413 and 404 never did


def test_long_poll_over_http_and_the_page_is_still_served():
    with StaticServer(poll_timeout=0.05) as server:
        base = f"http://127.0.0.1:{server.port}"
        server.channel.to_page({"type": "join", "index": 2, "switchDelay": 0.1})
        status, body = _get(f"{base}/signal?after=0")
        assert status == 200 and json.loads(body)["messages"][0]["message"]["index"] == 2
        status, body = _get(f"{base}/signal?after=1")
        assert status == 200 and json.loads(body) == {"messages": [], "closed": False}
        assert _get(f"{base}/signal?after=one")[0] == 400
        status, body = _get(server.url)
        assert status == 200 and b"client.js" in body
    assert server.channel.poll(0, timeout=10)["closed"]  # leaving the server closed the channel


def test_a_post_with_nobody_listening_is_refused():
    channel = PageChannel()
    assert not channel.from_page(b'{"type": "key"}') and channel.refused == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=8)


@given(st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_any_body_is_delivered_as_an_object_or_refused_never_raises(body):
    loop = asyncio.new_event_loop()
    try:
        got = []
        channel = PageChannel()
        channel.receive_with(got.append, loop)
        delivered = channel.from_page(body)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert delivered == (len(got) == 1) and delivered != bool(channel.refused)
        if delivered:
            assert isinstance(got[0], dict) and got[0] == json.loads(body)
    finally:
        loop.close()
