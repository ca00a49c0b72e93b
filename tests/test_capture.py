"""Tests of e2ee_lab.capture: the udp tap hook, the socket tap, live sniffing, pcap read/write.

Traffic is real: DTLS-SRTP legs over loopback (``open_leg_pair``). Sniffing runs for real where
this process may (root or CAP_NET_RAW, libpcap installed) and skips with the reason elsewhere; the
"not permitted" fallback is forced with ``E2EE_LAB_NO_SNIFF``, not by mocking scapy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, PcapWriter

from e2ee_lab.capture import (
    Capture,
    CaptureNotPermitted,
    PcapFormatError,
    PcapSink,
    SocketTap,
    bpf_filter,
    read_pcap,
    sniff_problem,
    udp_frame,
    write_datagrams,
)
from e2ee_lab.capture.live import DENY_ENV
from e2ee_lab.capture.pcap import Datagram
from e2ee_lab.transport import open_leg_pair, open_udp
from e2ee_lab.transport.udp import add_tap, remove_tap

A, B = ("127.0.0.1", 40001), ("127.0.0.1", 40002)
SNIFF_PROBLEM = sniff_problem()
needs_sniff = pytest.mark.skipif(SNIFF_PROBLEM is not None, reason=f"cannot sniff: {SNIFF_PROBLEM}")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


def rtp(seq: int, size: int = 100) -> bytes:
    """A plain RTP packet (version 2, PT 96) with a recognisable payload."""
    return bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(8) + bytes([seq % 256]) * size


async def leg_traffic(packets: int = 20) -> tuple[list[tuple[bytes, tuple, tuple]], list]:
    """Two DTLS-SRTP legs carrying ``packets`` RTP packets each way; returns what was sent."""
    sent: list[tuple[bytes, tuple, tuple]] = []

    def note(data, src, dst):
        sent.append((data, src, dst))

    add_tap(note)
    try:
        legs = [*await open_leg_pair("alice"), *await open_leg_pair("bob")]
        for i in range(packets):
            legs[0].send_rtp(rtp(i))
            legs[1].send_rtp(rtp(1000 + i))
            legs[2].send_rtp(rtp(2000 + i))
        await asyncio.sleep(0.05)
        for leg in legs:
            leg.close()
        for leg in legs:
            await leg.wait_closed()
    finally:
        remove_tap(note)
    return sent, legs


def captured(path, legs=None) -> Counter:
    """The multiset of (payload, src, dst) in a pcap (only the legs' own, when ``legs`` given:
    a sniffer on ``lo`` also sees other processes' UDP)."""
    ports = {leg.local_addr[1] for leg in legs} if legs else None
    return Counter(
        (d.data, d.src, d.dst) for d in read_pcap(path).datagrams
        if ports is None or d.src[1] in ports or d.dst[1] in ports
    )


# --- the udp tap hook --------------------------------------------------------------------------


def test_udp_tap_sees_each_sent_datagram_once_with_addresses():
    async def main():
        seen = []

        def note(*args):
            seen.append(args)

        receiver, _ = await open_udp(asyncio.DatagramProtocol)
        sender, _ = await open_udp(asyncio.DatagramProtocol)  # opened before the tap
        dst = receiver.get_extra_info("sockname")[:2]
        add_tap(note)
        add_tap(note)  # registering twice changes nothing
        sender.sendto(b"one", dst)
        sender.sendto(bytearray(b"two"), dst)
        src = sender.get_extra_info("sockname")[:2]
        sender.close()
        sender.sendto(b"after close", dst)  # asyncio drops it: not on the wire, not tapped
        remove_tap(note)
        other, _ = await open_udp(asyncio.DatagramProtocol)
        other.sendto(b"untapped", dst)
        other.close()
        receiver.close()
        return seen, src, dst

    seen, src, dst = asyncio.run(main())
    assert seen == [(b"one", src, dst), (b"two", src, dst)]
    assert all(type(s[0]) is bytes for s in seen)


def test_remove_tap_of_unknown_tap_is_harmless():
    remove_tap(lambda *a: None)


def test_udp_tap_sees_a_whole_leg_handshake_and_media():
    sent, legs = asyncio.run(leg_traffic(5))
    kinds = Counter(data[0] >> 6 == 2 for data, _, _ in sent)
    assert kinds[True] == 15  # the RTP packets, protected
    assert kinds[False] >= 8  # DTLS flights (and close_notify) of two legs
    assert all(src[0] == dst[0] == "127.0.0.1" for _, src, dst in sent)


# --- filters and modes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ports, expected",
    [(None, "udp"), ([5000], "udp and (port 5000)"), ({7, 5}, "udp and (port 5 or port 7)")],
    ids=["all", "one", "sorted"],
)
def test_bpf_filter(ports, expected):
    assert bpf_filter(ports) == expected


@pytest.mark.parametrize("ports", [[], [0], [70000], ["80"]], ids=["empty", "zero", "big", "str"])
def test_bpf_filter_rejects_bad_ports(ports):
    with pytest.raises(ValueError):
        bpf_filter(ports)


def test_unknown_mode_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="capture mode"):
        Capture(tmp_path / "c.pcap", mode="tcpdump")


def test_mode_off_writes_nothing(tmp_path):
    async def main():
        with Capture(tmp_path / "c.pcap", mode="off") as cap:
            await leg_traffic(3)
        return cap

    cap = asyncio.run(main())
    assert cap.backend == "off" and cap.packets == 0 and cap.note is None
    assert not (tmp_path / "c.pcap").exists()


def run_capture(path, mode, **kwargs):
    async def main():
        cap = Capture(path, mode=mode, **kwargs).start()
        sent, legs = await leg_traffic()
        await asyncio.to_thread(cap.stop)
        return cap, sent, legs

    return asyncio.run(main())


def test_tap_capture_holds_exactly_what_was_sent(tmp_path):
    cap, sent, _ = run_capture(tmp_path / "c.pcap", "tap")
    assert cap.backend == "tap" and cap.note is None
    assert cap.packets == len(sent)
    assert captured(tmp_path / "c.pcap") == Counter(sent)


def test_async_context_manager_captures_a_leg(tmp_path):
    async def main():
        async with Capture(tmp_path / "c.pcap", mode="tap") as cap:
            sent, _ = await leg_traffic(4)
        return cap, sent

    cap, sent = asyncio.run(main())
    assert cap.backend == "tap" and captured(tmp_path / "c.pcap") == Counter(sent)


def test_a_capture_into_a_missing_directory_raises_os_error(tmp_path):
    with pytest.raises(OSError):
        Capture(tmp_path / "no" / "such" / "dir.pcap", mode="tap").start()


def test_tap_capture_with_ports_keeps_one_leg(tmp_path):
    async def main():
        sent, legs = [], None
        alice, sfu = await open_leg_pair("alice")
        bob, sfu_b = await open_leg_pair("bob")
        with Capture(tmp_path / "c.pcap", mode="tap", ports=[sfu.local_addr[1]]) as cap:
            for i in range(4):
                alice.send_rtp(rtp(i))
                bob.send_rtp(rtp(100 + i))
            await asyncio.sleep(0.02)
        for leg in (alice, sfu, bob, sfu_b):
            leg.close()
        return cap, sfu.local_addr

    cap, sfu_addr = asyncio.run(main())
    datagrams = read_pcap(tmp_path / "c.pcap").datagrams
    assert len(datagrams) == 4 == cap.packets
    assert all(d.dst == sfu_addr for d in datagrams)


def test_socket_tap_writes_batches_in_a_worker_thread(tmp_path):
    tap = SocketTap(tmp_path / "t.pcap", batch=3)
    tap.start()
    for i in range(10):
        tap(rtp(i), A, B)
    assert tap.stop() == 10
    assert [d.data for d in read_pcap(tmp_path / "t.pcap").datagrams] == [rtp(i) for i in range(10)]
    with pytest.raises(ValueError):
        SocketTap(tmp_path / "x.pcap", batch=0)


def test_auto_falls_back_to_the_tap_with_one_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(DENY_ENV, "1")
    with caplog.at_level(logging.WARNING, logger="e2ee_lab.capture"):
        cap, sent, _ = run_capture(tmp_path / "c.pcap", "auto")
    assert cap.backend == "tap"
    assert cap.note is not None and "\n" not in cap.note and DENY_ENV in cap.note
    assert [r.getMessage() for r in caplog.records] == [cap.note]
    assert captured(tmp_path / "c.pcap") == Counter(sent)


def test_sniff_when_not_permitted_raises_a_typed_error(tmp_path, monkeypatch):
    monkeypatch.setenv(DENY_ENV, "1")
    assert isinstance(sniff_problem(), CaptureNotPermitted)
    with pytest.raises(CaptureNotPermitted, match="switched off"):
        Capture(tmp_path / "c.pcap", mode="sniff").start()
    assert CaptureNotPermitted.reason == "capture_not_permitted"


@needs_sniff
def test_sniff_capture_sees_each_datagram_once(tmp_path):
    cap, sent, legs = run_capture(tmp_path / "c.pcap", "sniff")
    assert cap.backend == "sniff" and cap.note is None
    assert captured(tmp_path / "c.pcap", legs) == Counter(sent)  # no loopback duplicates


@needs_sniff
def test_sniff_filter_by_ports_and_auto_prefers_sniffing(tmp_path):
    async def main():
        alice, sfu = await open_leg_pair("alice")
        bob, sfu_b = await open_leg_pair("bob")
        cap = Capture(tmp_path / "c.pcap", mode="auto", ports=[sfu_b.local_addr[1]]).start()
        for i in range(5):
            alice.send_rtp(rtp(i))
            bob.send_rtp(rtp(100 + i))
        await asyncio.sleep(0.02)
        await asyncio.to_thread(cap.stop)
        for leg in (alice, sfu, bob, sfu_b):
            leg.close()
        return cap, sfu_b.local_addr

    cap, sfu_addr = asyncio.run(main())
    datagrams = read_pcap(tmp_path / "c.pcap").datagrams
    assert cap.backend == "sniff" and len(datagrams) == 5 == cap.packets
    assert all(d.dst == sfu_addr for d in datagrams)


@needs_sniff
@needs_tshark
def test_tshark_reads_sniffed_and_tapped_pcaps_alike(tmp_path):
    for mode in ("sniff", "tap"):
        cap, sent, legs = run_capture(tmp_path / f"{mode}.pcap", mode)
        ports = " or ".join(f"udp.port == {leg.local_addr[1]}" for leg in legs)
        out = subprocess.run(
            ["tshark", "-r", str(tmp_path / f"{mode}.pcap"), "-Y", ports, "-T", "fields",
             "-e", "udp.length"], capture_output=True, text=True, check=True,
        ).stdout.split()
        assert sorted(int(n) - 8 for n in out) == sorted(len(d) for d, _, _ in sent)


# --- pcap files --------------------------------------------------------------------------------


def test_sink_round_trip_keeps_times_and_bytes(tmp_path):
    datagrams = [Datagram(i + 1, 1_700_000_000.123456 + i, A, B, rtp(i, i)) for i in range(5)]
    assert write_datagrams(tmp_path / "w.pcap", datagrams) == 5
    back = read_pcap(tmp_path / "w.pcap")
    assert back.linktype == 1 and back.records == 5 and not back.skipped
    for sent, got in zip(datagrams, back.datagrams):
        assert (got.no, got.src, got.dst, got.data) == (sent.no, sent.src, sent.dst, sent.data)
        assert got.time == pytest.approx(sent.time, abs=1e-6)


@pytest.mark.parametrize("size", [0, 1, 161, 1200, 1472], ids=lambda n: f"{n}B")
def test_udp_frame_equals_a_whole_scapy_build(size):
    data = os.urandom(size)
    src, dst = ("127.0.0.1", 40000 + size), ("127.0.0.1", 5004)
    built = (Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00") / IP(src=src[0], dst=dst[0])
             / UDP(sport=src[1], dport=dst[1], chksum=0) / Raw(data))
    assert udp_frame(data, src, dst) == bytes(built)
    parsed = Ether(udp_frame(data, src, dst))
    assert parsed[IP].len == 28 + size and parsed[UDP].len == 8 + size


def test_udp_frame_of_ipv6_addresses():
    parsed = Ether(udp_frame(b"hello", ("::1", 1000), ("::1", 2000)))
    assert parsed[UDP].dport == 2000 and parsed[UDP].load == b"hello"


def test_empty_capture_is_a_valid_pcap(tmp_path):
    PcapSink(tmp_path / "e.pcap").close()
    contents = read_pcap(tmp_path / "e.pcap")
    assert contents.records == 0 and contents.datagrams == []


@pytest.mark.parametrize(
    "content", [b"", os.urandom(100), b"\xd4\xc3\xb2\xa1"], ids=["empty", "garbage", "magic-only"]
)
def test_not_a_pcap_is_a_typed_error(tmp_path, content):
    (tmp_path / "bad.pcap").write_bytes(content)
    with pytest.raises(PcapFormatError) as info:
        read_pcap(tmp_path / "bad.pcap")
    assert info.value.reason == "pcap_malformed"


def test_missing_pcap_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_pcap(tmp_path / "nope.pcap")


@pytest.mark.parametrize("cut", [1, 100, 1000, 1210], ids=["1B", "100B", "1000B", "header"])
def test_truncated_pcap_keeps_whole_records_and_counts_the_cut(tmp_path, cut):
    datagrams = [Datagram(i + 1, 1000.0 + i, A, B, rtp(i, 1150)) for i in range(3)]
    write_datagrams(tmp_path / "w.pcap", datagrams)
    raw = (tmp_path / "w.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(raw[:-cut])
    contents = read_pcap(tmp_path / "cut.pcap")
    assert contents.skipped["pcap_truncated"] == 1
    assert [d.data for d in contents.datagrams] == [d.data for d in datagrams[:2]]


def test_records_that_are_not_udp_datagrams_are_counted(tmp_path):
    frames = [
        Ether() / ARP(),
        Ether() / IP(src="127.0.0.1", dst="127.0.0.1") / TCP(sport=1, dport=2) / Raw(b"x"),
        Ether() / IP(src="127.0.0.1", dst="127.0.0.1", flags="MF") / UDP(sport=1, dport=2)
        / Raw(b"x"),
        Ether() / IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=1, dport=2) / Raw(b"ok"),
    ]
    writer = PcapWriter(str(tmp_path / "mixed.pcap"), linktype=1)
    for frame in frames:
        writer.write(frame)
    # a datagram cut by the snapshot length: caplen < wirelen, UDP length says more
    writer.write_packet(udp_frame(b"y" * 100, A, B)[:60], sec=1, usec=0, wirelen=142)
    writer.close()
    contents = read_pcap(tmp_path / "mixed.pcap")
    assert contents.records == 5
    assert [d.data for d in contents.datagrams] == [b"ok"]
    assert contents.skipped == Counter(not_ip=1, not_udp=1, ip_fragment=1, truncated_record=1)


def test_pcapng_files_are_read_too(tmp_path):
    writer = PcapNgWriter(str(tmp_path / "c.pcapng"))
    for i in range(3):
        frame = Ether(udp_frame(rtp(i), A, B))
        frame.time = 2000 + i / 4
        writer.write(frame)
    writer.close()
    contents = read_pcap(tmp_path / "c.pcapng")
    assert [d.data for d in contents.datagrams] == [rtp(i) for i in range(3)]
    assert [d.time for d in contents.datagrams] == pytest.approx([2000, 2000.25, 2000.5])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=0, max_value=700), junk=st.binary(max_size=40))
def test_damaged_pcaps_never_crash(tmp_path, cut, junk):
    datagrams = [Datagram(i + 1, 1000.0 + i, A, B, rtp(i, 150)) for i in range(3)]
    write_datagrams(tmp_path / "w.pcap", datagrams)
    raw = (tmp_path / "w.pcap").read_bytes()
    kept = max(len(raw) - cut, 0)
    (tmp_path / "d.pcap").write_bytes(raw[:kept] + junk)
    try:
        contents = read_pcap(tmp_path / "d.pcap")
    except PcapFormatError:
        return
    record = (len(raw) - 24) // 3
    intact = max(kept - 24, 0) // record  # records wholly before the damage
    assert len(contents.datagrams) <= 3 + len(junk) // record
    assert [d.data for d in contents.datagrams[:intact]] == [d.data for d in datagrams[:intact]]
