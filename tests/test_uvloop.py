"""uvloop as the SFU benchmark's event loop: the lab's sockets work on it, and the socket tap,
which cannot wrap uvloop's C transports, refuses loudly instead of missing datagrams."""

from __future__ import annotations

import argparse

import pytest
import uvloop

from e2ee_lab.cli import build_parser
from e2ee_lab.transport.udp import add_tap, open_udp, remove_tap


class _Echo:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.got.append(data)

    def error_received(self, exc) -> None:
        pass

    def connection_lost(self, exc) -> None:
        pass


async def _round_trip() -> list[bytes]:
    import asyncio

    a, pa = await open_udp(_Echo)
    b, pb = await open_udp(_Echo)
    a.sendto(b"hello", b.get_extra_info("sockname"))
    for _ in range(100):
        if pb.got:
            break
        await asyncio.sleep(0.01)
    a.close()
    b.close()
    return pb.got


def test_open_udp_works_on_uvloop():
    assert uvloop.run(_round_trip()) == [b"hello"]


def test_the_socket_tap_refuses_uvloop_transports():
    def tap(data, src, dst) -> None:
        pass

    add_tap(tap)
    try:
        with pytest.raises(RuntimeError, match="socket tap"):
            uvloop.run(_round_trip())
    finally:
        remove_tap(tap)


def test_bench_sfu_takes_loop_and_rooms():
    args = build_parser().parse_args(["bench", "sfu", "--loop", "uvloop", "--rooms", "2", "4"])
    assert isinstance(args, argparse.Namespace) and args.loop == "uvloop" and args.rooms == [2, 4]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "sfu", "--loop", "trio"])
