"""pcap files of a call: the capture layer's errors, reading UDP datagrams, writing them back.

A capture of the lab is a classic libpcap file (linktype 1, ``DLT_EN10MB``, as scapy and tcpdump
write for Linux ``lo``) of IPv4/UDP datagrams on 127.0.0.1 (RFC 768, RFC 791). Both capture
backends produce the same file: the sniffer stores the frames the kernel showed it, the socket
tap wraps each datagram in the headers scapy builds (``Ether()/IP(src, dst)/UDP(sport, dport)``,
all-zero MAC addresses as on ``lo``; :func:`udp_frame`), so tshark, capinfos and
:func:`read_pcap` read both alike. :func:`read_pcap` parses any linktype scapy knows (Ethernet,
raw IP, Linux cooked) in pcap or pcapng form and returns the UDP payloads with their 5-tuples;
records that are not whole IPv4/IPv6 UDP datagrams are counted in ``skipped`` by reason, never
raised. A file that is not a capture at all raises :class:`PcapFormatError`; a file cut short in
the middle of a record keeps every whole record and counts ``skipped["pcap_truncated"]``.
:class:`LegMap` is the SFU's key log at work offline (RFC 5764 §4.2 keys per leg): it names each
datagram's leg and direction and unprotects SRTP/SRTCP (RFC 3711 §3.3, §3.4) with an inbound
libsrtp session per sender, exactly as the SFU could. Every error of the capture layer derives
from :class:`CaptureError` and carries a fixed ``reason``.
"""

from __future__ import annotations

import functools
import os
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scapy.config import conf
from scapy.error import Scapy_Exception
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter, RawPcapReader, checksum

from e2ee_lab.transport import KeyLogEntry, SRTPSession, find_entry, read_keylog, receive_session

LINKTYPE_ETHERNET = 1  # DLT_EN10MB: what Linux reports for lo, and what the tap writes
LOOPBACK_MAC = "00:00:00:00:00:00"  # lo's (absent) hardware address
Address = tuple[str, int]


# --- errors (one family; ``reason`` names the counter or the failure) --------------------------


class CaptureError(Exception):
    """Base class of every capture-layer failure."""

    reason = "capture"


class CaptureNotPermitted(CaptureError):
    """Live sniffing needs root or CAP_NET_RAW (or was denied on purpose; the message says)."""

    reason = "capture_not_permitted"


class CaptureUnavailable(CaptureError):
    """Live sniffing cannot filter here (libpcap missing, no loopback interface)."""

    reason = "capture_unavailable"


class PcapFormatError(CaptureError, ValueError):
    """The file is not a pcap/pcapng capture (bad magic, empty, unreadable header)."""

    reason = "pcap_malformed"


class KeyLogMissing(CaptureError, FileNotFoundError):
    """The SRTP key log the analysis was told to use does not exist."""

    reason = "keylog_missing"


class NoKeyForLeg(CaptureError):
    """An SRTP/SRTCP datagram travelled on no leg of the key log: nobody's key can open it."""

    reason = "srtp_no_key"


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Datagram:
    """One UDP datagram of a capture."""

    no: int  # 1-based record number in the file (tshark's frame.number)
    time: float  # capture time, seconds since the epoch
    src: Address  # (ip, port) of the sender
    dst: Address  # (ip, port) of the receiver
    data: bytes  # the UDP payload


@dataclass
class PcapContents:
    """What :func:`read_pcap` found: the datagrams, the record count, skips by reason."""

    linktype: int  # the file's (first interface's) link type
    datagrams: list[Datagram] = field(default_factory=list)
    records: int = 0  # records read, whole or not
    skipped: Counter = field(default_factory=Counter)  # reason -> records not turned into datagrams


def _record_time(reader, meta) -> float:
    if hasattr(meta, "tsresol"):  # pcapng
        return ((meta.tshigh << 32) + meta.tslow) / meta.tsresol
    return meta.sec + meta.usec / (1e9 if getattr(reader, "nano", False) else 1e6)


def _udp_datagram(frame: Packet) -> tuple[Address, Address, bytes] | str:
    """(src, dst, payload) of a dissected frame, or the skip reason."""
    ip = frame.getlayer(IP) or frame.getlayer(IPv6)
    if ip is None:
        return "not_ip"
    if isinstance(ip, IP) and (ip.flags.MF or ip.frag):
        return "ip_fragment"
    udp = ip.getlayer(UDP)
    if udp is None or udp.underlayer is not ip:
        return "not_udp"
    payload = udp.payload.load if isinstance(udp.payload, Raw) else bytes(udp.payload)
    if udp.len is not None and len(payload) < udp.len - 8:
        return "truncated_record"  # snaplen cut the datagram
    return (ip.src, udp.sport), (ip.dst, udp.dport), payload


def _records(reader) -> Iterator[tuple[bytes, object, bool]]:
    """(data, meta, whole) per record; ``whole`` is False for a record cut by the file's end."""
    for data, meta in reader:
        caplen = getattr(meta, "caplen", None)
        yield data, meta, caplen is None or len(data) >= caplen


def read_pcap(path: str | os.PathLike) -> PcapContents:
    """Read every UDP datagram of a pcap or pcapng file.

    Returns a :class:`PcapContents`; records that are not UDP over IPv4/IPv6 (``not_ip``,
    ``not_udp``), fragments (``ip_fragment``), datagrams cut by the snapshot length
    (``truncated_record``) and a record cut by the end of the file (``pcap_truncated``) are
    counted in ``skipped``; a block scapy cannot read ends the file with ``pcap_corrupt``.

    Raises:
        PcapFormatError: the file is empty or not a capture.
        FileNotFoundError: there is no such file.
    """
    size = os.path.getsize(path)
    try:
        reader = RawPcapReader(os.fspath(path))
    except Scapy_Exception as exc:
        raise PcapFormatError(f"{os.fspath(path)} is not a pcap/pcapng file ({exc})") from None
    contents = PcapContents(linktype=getattr(reader, "linktype", LINKTYPE_ETHERNET))
    end = reader.f.tell()  # where the last whole record (or the file header) ends
    try:
        for data, meta, whole in _records(reader):
            contents.records += 1
            if not whole:
                break
            _add_record(contents, data, meta, reader)
            end = reader.f.tell()
        if end < size:
            contents.skipped["pcap_truncated"] += 1  # a record (or its header) cut short
    except Scapy_Exception:
        contents.skipped["pcap_corrupt"] += 1  # a block or record scapy cannot read; stop there
    finally:
        reader.close()
    return contents


def _add_record(contents: PcapContents, data: bytes, meta, reader) -> None:
    linktype = getattr(meta, "linktype", None) or contents.linktype
    layer = conf.l2types.num2layer.get(linktype)
    if layer is None:
        contents.skipped[f"linktype_{linktype}"] += 1
        return
    found = _udp_datagram(layer(data, stop_dissection_after=UDP))  # the payload stays Raw
    if isinstance(found, str):
        contents.skipped[found] += 1
        return
    src, dst, payload = found
    contents.datagrams.append(
        Datagram(contents.records, _record_time(reader, meta), src, dst, payload)
    )


# --- writing ---------------------------------------------------------------------------------


ETHER_HEADER = 14  # RFC 894 Ethernet header: dst MAC, src MAC, EtherType
IPV4_HEADER = 20  # RFC 791 header without options
UDP_HEADER = 8  # RFC 768


@functools.lru_cache(maxsize=4096)
def _ipv4_template(src: Address, dst: Address) -> bytes:
    """Ether/IPv4/UDP headers of one flow, built by scapy (UDP checksum 0: none, RFC 768)."""
    packet = (
        Ether(src=LOOPBACK_MAC, dst=LOOPBACK_MAC)
        / IP(src=src[0], dst=dst[0])
        / UDP(sport=src[1], dport=dst[1], chksum=0)
    )
    return bytes(packet)


def udp_frame(data: bytes, src: Address, dst: Address) -> bytes:
    """The Ethernet frame of one UDP datagram (as on Linux ``lo``: zero MACs).

    scapy builds each flow's headers once; per datagram only the two length fields and the IPv4
    header checksum (scapy's ``checksum``, RFC 1071) change, which is about 50 times faster than a
    scapy build per packet. The UDP checksum is 0, "not computed" (RFC 768). IPv6 addresses take
    the plain scapy path.
    """
    data = bytes(data)
    if ":" in src[0] or ":" in dst[0]:
        packet = Ether(src=LOOPBACK_MAC, dst=LOOPBACK_MAC) / IPv6(src=src[0], dst=dst[0])
        return bytes(packet / UDP(sport=src[1], dport=dst[1]) / Raw(data))
    head = bytearray(_ipv4_template(src, dst))
    ip = ETHER_HEADER
    struct.pack_into("!H", head, ip + 2, IPV4_HEADER + UDP_HEADER + len(data))  # total length
    struct.pack_into("!H", head, ip + 10, 0)
    struct.pack_into("!H", head, ip + 10, checksum(bytes(head[ip : ip + IPV4_HEADER])))
    struct.pack_into("!H", head, ip + IPV4_HEADER + 4, UDP_HEADER + len(data))  # UDP length
    return bytes(head) + data


class PcapSink:
    """A pcap file (linktype 1) being written: :meth:`write_frame` or :meth:`write_datagram`.

    The header is written at once, so a capture with no packet is still a valid, empty pcap.
    Not thread-safe: one writer thread at a time.
    """

    def __init__(self, path: str | os.PathLike, *, linktype: int = LINKTYPE_ETHERNET) -> None:
        self.path = os.fspath(path)
        self.packets = 0
        self._writer = PcapWriter(self.path, linktype=linktype, sync=False)
        self._writer.write_header(None)

    def write_frame(self, frame: bytes, time: float) -> None:
        """Append one link-layer frame captured at ``time`` (seconds since the epoch)."""
        sec = int(time)
        usec = min(int(round((time - sec) * 1e6)), 999_999)
        self._writer.write_packet(frame, sec=sec, usec=usec)
        self.packets += 1

    def write_datagram(self, data: bytes, src: Address, dst: Address, time: float) -> None:
        """Append one UDP datagram, wrapped in Ether/IP/UDP by :func:`udp_frame`."""
        self.write_frame(udp_frame(data, src, dst), time)

    def flush(self) -> None:
        """Push buffered records to the file."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if not self._writer.f.closed:
            self._writer.flush()
            self._writer.close()

    def __enter__(self) -> PcapSink:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def write_datagrams(path: str | os.PathLike, datagrams: Iterable[Datagram]) -> int:
    """Write datagrams (``time``, ``src``, ``dst``, ``data``) to a new pcap; returns the count."""
    with PcapSink(path) as sink:
        for d in datagrams:
            sink.write_datagram(d.data, d.src, d.dst, d.time)
        return sink.packets


# --- the key log at work offline ---------------------------------------------------------------


def load_keys(keys: str | os.PathLike | Iterable[KeyLogEntry] | None) -> list[KeyLogEntry] | None:
    """Key log entries from a path or an iterable of entries; None stays None (no keys).

    Raises KeyLogMissing for a path that does not exist, KeyLogError for a malformed log.
    """
    if keys is None:
        return None
    if isinstance(keys, (str, os.PathLike)):
        try:
            return read_keylog(keys)
        except FileNotFoundError:
            raise KeyLogMissing(f"no SRTP key log at {os.fspath(keys)}") from None
    return list(keys)


Flow = tuple[Address, Address]
LegInfo = tuple[KeyLogEntry | None, str | None, str | None]  # (entry, leg name, direction)


class LegMap:
    """Which leg a datagram travelled on, which way, and (with keys) its plaintext.

    With key log ``entries`` a leg is the entry whose two endpoints the datagram joins; the SFU is
    the DTLS server, so a datagram to ``entry.server`` goes ``"to_sfu"``. Without keys the caller
    reports ClientHellos (:meth:`note_client_hello`): their receiver is the SFU, legs are named
    ``leg1``, ``leg2``... in order of appearance.
    """

    def __init__(self, entries: list[KeyLogEntry] | None) -> None:
        self.entries = entries
        self._cache: dict[Flow, LegInfo] = {}
        self._wire: dict[Flow, str] = {}
        self._sessions: dict[tuple[str, Address], SRTPSession] = {}

    @property
    def keyed(self) -> bool:
        """True when a key log was given."""
        return self.entries is not None

    def note_client_hello(self, src: Address, dst: Address) -> None:
        """Record a ClientHello ``src -> dst`` (wire view): ``dst`` is the SFU end of a leg."""
        if (src, dst) not in self._wire:
            self._wire[(src, dst)] = f"leg{len(self._wire) + 1}"
            self._cache.clear()

    def lookup(self, src: Address, dst: Address) -> LegInfo:
        """(key log entry or None, leg name or None, ``"to_sfu"``/``"from_sfu"``/None)."""
        flow = (src, dst)
        if flow not in self._cache:
            self._cache[flow] = self._resolve(src, dst)
        return self._cache[flow]

    def _resolve(self, src: Address, dst: Address) -> LegInfo:
        if self.entries is not None:
            entry = find_entry(self.entries, src, dst)
            if entry is None:
                return None, None, None
            return entry, entry.leg, "to_sfu" if dst == entry.server else "from_sfu"
        if (src, dst) in self._wire:
            return None, self._wire[(src, dst)], "to_sfu"
        if (dst, src) in self._wire:
            return None, self._wire[(dst, src)], "from_sfu"
        return None, None, None

    def unprotect(self, data: bytes, src: Address, dst: Address, *, rtcp: bool = False) -> bytes:
        """The plaintext RTP (or RTCP) packet of an SRTP (SRTCP) datagram ``src -> dst``.

        Raises NoKeyForLeg when no entry covers the datagram (or there are no keys), and the
        transport's SRTPError family (``AuthenticationFailed`` for a wrong key or a tampered
        packet, ``ReplayDetected`` for a packet seen twice, ``MalformedPacket``).
        """
        entry = self.lookup(src, dst)[0]
        if entry is None:
            raise NoKeyForLeg(f"no key log entry for {src} -> {dst}")
        session = self._sessions.get((entry.leg, src))
        if session is None:
            session = self._sessions[(entry.leg, src)] = receive_session(entry, sender=src)
        return session.unprotect_rtcp(data) if rtcp else session.unprotect(data)
