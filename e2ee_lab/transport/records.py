"""DTLS 1.2 wire records: RFC 6347 §4.1 (record layer) and §4.2.2 (handshake header),
RFC 5246 §7.4.1.2 (ClientHello), RFC 5764 §4.1.1 (use_srtp extension).

OpenSSL does the protocol; this module only reads the framing so that the endpoint can refuse
datagrams that are not whole DTLS records before they reach OpenSSL, pack a flight into datagrams
of at most one MTU at record boundaries, and let tests and the capture analysis see which SRTP
profiles a ClientHello offers. Everything raises :class:`MalformedRecord` (naming the field and
the byte counts) on bad input and never anything else.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import MalformedRecord

RECORD_HEADER_SIZE = 13  # RFC 6347 §4.1: type, version, epoch, sequence_number(48), length
HANDSHAKE_HEADER_SIZE = 12  # RFC 6347 §4.2.2: type, length, message_seq, offset, fragment_length
DTLS_1_0 = 0xFEFF  # RFC 6347 §4.1: {254, 255}
DTLS_1_2 = 0xFEFD  # RFC 6347 §4.1: {254, 253}
MAX_RECORD_FRAGMENT = 2**14 + 2048  # RFC 5246 §6.2.3: TLSCiphertext.length bound
HANDSHAKE_CLIENT_HELLO = 1  # RFC 5246 §7.4
EXTENSION_USE_SRTP = 0x000E  # RFC 5764 §9


class ContentType(enum.IntEnum):
    """Record content types (RFC 5246 §6.2.1, RFC 6347 §4.1)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


@dataclass(frozen=True)
class DTLSRecord:
    """One DTLS record (RFC 6347 §4.1); ``fragment`` is ciphertext once the epoch is > 0."""

    content_type: ContentType
    version: int  # 0xFEFD for DTLS 1.2 (0xFEFF allowed in a first ClientHello)
    epoch: int
    sequence_number: int  # 48-bit
    fragment: bytes

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> tuple[DTLSRecord, int]:
        """Parse the record at ``offset``; return it and the offset just after it."""
        if len(data) - offset < RECORD_HEADER_SIZE:
            raise MalformedRecord(
                f"record header needs {RECORD_HEADER_SIZE} bytes, {len(data) - offset} left"
            )
        ctype, version, epoch, seq_hi, seq_lo, length = struct.unpack_from(
            "!BHHHIH", data, offset
        )
        if ctype not in ContentType._value2member_map_:
            raise MalformedRecord(f"record content type {ctype} is not 20-23")
        if version not in (DTLS_1_0, DTLS_1_2):
            raise MalformedRecord(f"record version 0x{version:04x} is not DTLS 1.0/1.2")
        if length > MAX_RECORD_FRAGMENT:
            raise MalformedRecord(f"record length {length} exceeds {MAX_RECORD_FRAGMENT}")
        start = offset + RECORD_HEADER_SIZE
        if len(data) - start < length:
            raise MalformedRecord(f"record length {length}, only {len(data) - start} bytes left")
        fragment = bytes(data[start : start + length])
        record = cls(ContentType(ctype), version, epoch, (seq_hi << 32) | seq_lo, fragment)
        return record, start + length

    def __bytes__(self) -> bytes:
        seq_hi, seq_lo = self.sequence_number >> 32, self.sequence_number & 0xFFFFFFFF
        header = struct.pack(
            "!BHHHIH", self.content_type, self.version, self.epoch, seq_hi, seq_lo,
            len(self.fragment),
        )
        return header + self.fragment


def parse_records(datagram: bytes | bytearray | memoryview) -> list[DTLSRecord]:
    """Every record of one datagram (RFC 6347 §4.1.1: several records may share a datagram).

    Raises MalformedRecord for an empty datagram, a truncated record or trailing garbage.
    """
    data = bytes(datagram)
    if not data:
        raise MalformedRecord("empty datagram")
    records, offset = [], 0
    while offset < len(data):
        record, offset = DTLSRecord.parse(data, offset)
        records.append(record)
    return records


def pack_datagrams(records: list[DTLSRecord], mtu: int) -> list[bytes]:
    """Group whole records into datagrams of at most ``mtu`` bytes (a record is never split)."""
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        raw = bytes(record)
        if current and len(current) + len(raw) > mtu:
            datagrams.append(current)
            current = b""
        current += raw
    if current:
        datagrams.append(current)
    return datagrams


@dataclass(frozen=True)
class ClientHello:
    """The fields of a DTLS ClientHello the lab inspects (RFC 6347 §4.2.1, RFC 5246 §7.4.1.2)."""

    client_version: int
    cookie: bytes
    cipher_suites: tuple[int, ...]
    extensions: dict[int, bytes]  # extension type -> extension_data

    @classmethod
    def from_record(cls, record: DTLSRecord) -> ClientHello:
        """Parse the ClientHello carried, unfragmented, in a plaintext handshake record."""
        if record.content_type != ContentType.HANDSHAKE or record.epoch != 0:
            raise MalformedRecord("a ClientHello travels in an epoch-0 handshake record")
        body = _handshake_body(record.fragment, HANDSHAKE_CLIENT_HELLO)
        return cls.parse(body)

    @classmethod
    def parse(cls, body: bytes) -> ClientHello:
        """Parse a ClientHello body (after the 12-byte handshake header)."""
        reader = _Reader(body, "ClientHello")
        version = reader.uint(2, "client_version")
        reader.take(32, "random")
        reader.vector(1, "session_id")
        cookie = reader.vector(1, "cookie")
        suites = reader.vector(2, "cipher_suites")
        reader.vector(1, "compression_methods")
        extensions = _parse_extensions(reader.vector(2, "extensions")) if reader.left else {}
        ids = tuple(struct.unpack(f"!{len(suites) // 2}H", suites[: len(suites) // 2 * 2]))
        return cls(version, cookie, ids, extensions)

    def srtp_profile_ids(self) -> tuple[int, ...]:
        """The SRTPProtectionProfile ids of the use_srtp extension, in the client's order.

        Raises MalformedRecord if the extension is missing or malformed (RFC 5764 §4.1.1).
        """
        if EXTENSION_USE_SRTP not in self.extensions:
            raise MalformedRecord("ClientHello has no use_srtp extension (type 0x000e)")
        reader = _Reader(self.extensions[EXTENSION_USE_SRTP], "use_srtp")
        profiles = reader.vector(2, "SRTPProtectionProfiles")
        reader.vector(1, "srtp_mki")
        if len(profiles) % 2 or not profiles:
            raise MalformedRecord(f"SRTPProtectionProfiles has {len(profiles)} bytes")
        return struct.unpack(f"!{len(profiles) // 2}H", profiles)


def find_client_hello(datagram: bytes | bytearray | memoryview) -> ClientHello | None:
    """The ClientHello in a datagram, or None if it holds none (raises for malformed records)."""
    for record in parse_records(datagram):
        if record.content_type == ContentType.HANDSHAKE and record.epoch == 0:
            if record.fragment[:1] == bytes([HANDSHAKE_CLIENT_HELLO]):
                return ClientHello.from_record(record)
    return None


def _handshake_body(fragment: bytes, msg_type: int) -> bytes:
    reader = _Reader(fragment, "handshake")
    if reader.uint(1, "msg_type") != msg_type:
        raise MalformedRecord(f"handshake type is not {msg_type}")
    length = reader.uint(3, "length")
    reader.uint(2, "message_seq")
    offset, frag_length = reader.uint(3, "fragment_offset"), reader.uint(3, "fragment_length")
    if offset != 0 or frag_length != length:
        raise MalformedRecord(f"fragmented handshake message ({frag_length} of {length} bytes)")
    return reader.take(frag_length, "body")


def _parse_extensions(data: bytes) -> dict[int, bytes]:
    reader = _Reader(data, "extensions")
    extensions: dict[int, bytes] = {}
    while reader.left:
        ext_type = reader.uint(2, "extension_type")
        extensions[ext_type] = reader.vector(2, f"extension 0x{ext_type:04x}")
    return extensions


class _Reader:
    """Bounds-checked reading of TLS presentation-language fields."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data, self._pos, self._what = data, 0, what

    @property
    def left(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int, field: str) -> bytes:
        if n > self.left:
            raise MalformedRecord(f"{self._what}.{field} needs {n} bytes, {self.left} left")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def vector(self, length_size: int, field: str) -> bytes:
        return self.take(self.uint(length_size, field), field)
