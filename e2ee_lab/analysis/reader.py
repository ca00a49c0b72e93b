"""The capture reader under the offline analysis: datagrams in, packet rows and frames out.

:class:`CaptureReader` takes a capture's datagrams one by one (:mod:`e2ee_lab.analysis.offline`
drives it): it tells STUN, DTLS and SRTP/SRTCP apart by their first byte (RFC 7983 §7, RFC 5761
§4), names the DTLS handshake messages and the offered use_srtp profiles a passive observer sees,
finds each datagram's leg and direction in the SFU's key log (RFC 5764 §4.2 keys, one entry per
leg), unprotects SRTP/SRTCP with pylibsrtp as the SFU did (RFC 3711 §3.3, §3.4; RFC 7714), reads
the RTP header and extensions (RFC 3550 §5.1, RFC 8285, the RFC 6464 audio level), reads the bytes
where a frame begins as an SFrame header (RFC 9605 §4.3), and reassembles frames per SSRC
(:class:`~e2ee_lab.rtp.FrameAssembler`, RFC 7741 / RFC 7587). A stream in the SFrame RTP payload
format (draft-ietf-avtcore-rtp-sframe-02, the lab's ``--rtp-sframe``) is reassembled from its
descriptors' S..E runs instead (:class:`~e2ee_lab.rtp.SFrameDepacketizer`, -02 §5.2; a frame is
then the SFrame ciphertext, all an SFU has): announced (``payload_format="sframe"``) or, by
default, recognised per stream from its first packets (:func:`recognise_payload_format`). Without
keys (the wire) it groups the packets of each SSRC by RTP timestamp, as an eavesdropper can
(:class:`WireFramer`; the descriptors are encrypted there). Packets that fail count in
``dropped`` by reason; nothing raises.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from aiortc.rtp import HeaderExtensionsMap, RtcpPacket, RtpPacket

from e2ee_lab.capture.pcap import Address, CaptureError, Datagram, LegMap
from e2ee_lab.crypto.sframe import MalformedHeader, decode_header
from e2ee_lab.rtp import (
    Codec,
    FrameAssembled,
    FrameAssembler,
    RTPError,
    SFrameAssembled,
    SFrameDepacketizer,
    VP8PayloadDescriptor,
    parse_rtp,
)
from e2ee_lab.rtp.sframe_format import RESERVED_MASK, S_BIT
from e2ee_lab.transport import KeyLogEntry, PacketKind, SRTPError, classify
from e2ee_lab.transport.errors import MalformedRecord
from e2ee_lab.transport.records import ClientHello, ContentType, parse_records

PACKET_COLUMNS = (
    "no", "time", "src_ip", "src_port", "dst_ip", "dst_port", "leg", "direction", "kind", "size",
    "detail", "decrypted", "drop_reason", "ssrc", "payload_type", "seq", "timestamp", "marker",
    "audio_level", "voice_activity", "mid", "payload_size", "payload_entropy", "payload_format",
    "sframe_kid", "sframe_ctr", "sframe_plausible",
)
PAYLOAD_FORMATS = ("auto", "sframe", "codec")  # recognise per stream, or every stream announced as one
RECOGNITION_PACKETS = 6  # a stream's packets read before it is taken for the SFrame payload format
_HANDSHAKE_NAMES = {
    1: "ClientHello", 2: "ServerHello", 3: "HelloVerifyRequest", 11: "Certificate",
    12: "ServerKeyExchange", 13: "CertificateRequest", 14: "ServerHelloDone",
    15: "CertificateVerify", 16: "ClientKeyExchange", 20: "Finished",
}
_RTCP_NAMES = {200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 204: "APP", 205: "RTPFB", 206: "PSFB"}


Flow = tuple[Address, Address]


def entropy(data: bytes | bytearray | memoryview) -> float:
    """Shannon entropy of the byte values, in bits per byte (0 for no data; at most 8)."""
    if len(data) == 0:
        return 0.0
    counts = np.bincount(np.frombuffer(bytes(data), dtype=np.uint8), minlength=256)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


def _dtls_detail(data: bytes) -> str:
    """What a DTLS datagram shows a passive observer: record and handshake types, use_srtp."""
    try:
        records = parse_records(data)
    except MalformedRecord:
        return "malformed"
    names = []
    for record in records:
        if record.content_type == ContentType.HANDSHAKE and record.epoch == 0:
            name = _HANDSHAKE_NAMES.get(record.fragment[:1] and record.fragment[0], "Handshake")
            if name == "ClientHello":
                try:
                    ids = ClientHello.from_record(record).srtp_profile_ids()
                    name += " use_srtp=" + ",".join(f"0x{i:04x}" for i in ids)
                except MalformedRecord:
                    name += " (no use_srtp)"
            names.append(name)
        else:
            names.append(record.content_type.name.title().replace("_", ""))
    return ", ".join(names)


def _rtcp_detail(data: bytes, decrypted: bool) -> tuple[str, int | None]:
    """RTCP packet types (all of a decrypted compound, the first on the wire) and sender SSRC."""
    ssrc = int.from_bytes(data[4:8], "big") if len(data) >= 8 else None
    if not decrypted:
        return _RTCP_NAMES.get(data[1], str(data[1])), ssrc
    try:
        packets = RtcpPacket.parse(data)
    except (ValueError, struct.error):
        return "malformed", ssrc
    names = (type(p).__name__.removeprefix("Rtcp").removesuffix("Packet").upper() for p in packets)
    return ",".join(names), ssrc


def sframe_header(data: bytes) -> tuple[int | None, int | None]:
    """(KID, CTR) if ``data`` begins with a well-formed SFrame header (RFC 9605 §4.3), else (None, None)."""
    try:
        kid, ctr, _ = decode_header(data)
    except MalformedHeader:
        return None, None
    return kid, ctr


def recognise_payload_format(payloads: Sequence[bytes], *, final: bool = False) -> str | None:
    """Is a stream in the SFrame RTP payload format? ``"sframe"``, ``"codec"``, or None (read more).

    ``payloads`` are the stream's first RTP payloads in plaintext (after SRTP). A stream is taken
    for the payload format when every payload is a descriptor (one byte whose five reserved bits
    are 0, as every sender the lab knows sends them; -02 §4) followed by fragment bytes, and every
    S=1 fragment starts with a well-formed SFrame header (RFC 9605 §4.3), with at least one S=1
    among :data:`RECOGNITION_PACKETS` packets (or all there are, when ``final``). One payload that
    breaks this makes it ``"codec"``: a VP8 frame's first byte (X and S, ``0x90``) has a reserved bit
    set, an Opus TOC byte or an SFrame header byte under codec packetization soon does too.
    """
    for payload in payloads:
        if len(payload) < 2 or payload[0] & RESERVED_MASK:
            return "codec"
        if payload[0] & S_BIT and sframe_header(payload[1:]) == (None, None):
            return "codec"
    if len(payloads) < RECOGNITION_PACKETS and not final:
        return None
    return "sframe" if any(p[0] & S_BIT for p in payloads) else "codec"


class WireFramer:
    """Groups SRTP packets into frames by (SSRC, RTP timestamp), as an eavesdropper can."""

    def __init__(self, payload_types: Mapping[int, Codec]) -> None:
        self.payload_types = payload_types
        self._open: dict[int, list[tuple[RtpPacket, float]]] = {}

    def receive(self, rtp: RtpPacket, now: float) -> list[FrameAssembled]:
        current = self._open.get(rtp.ssrc)
        done = []
        if current and current[0][0].timestamp != rtp.timestamp:
            done.append(self._frame(current))
            current = None
        self._open[rtp.ssrc] = (current or []) + [(rtp, now)]
        return [f for f in done if f is not None]

    def flush(self) -> list[FrameAssembled]:
        frames = [self._frame(packets) for packets in self._open.values() if packets]
        self._open.clear()
        return [f for f in frames if f is not None]

    def _frame(self, packets: list[tuple[RtpPacket, float]]) -> FrameAssembled | None:
        first, last = packets[0][0], packets[-1][0]
        codec = self.payload_types.get(first.payload_type)
        if codec is None:
            return None
        return FrameAssembled(
            ssrc=first.ssrc, payload_type=first.payload_type, codec=codec,
            timestamp=first.timestamp, first_sequence_number=first.sequence_number,
            last_sequence_number=last.sequence_number, packet_count=len(packets),
            data=b"".join(p.payload for p, _ in packets), marker=bool(last.marker),
            payload_sizes=tuple(len(p.payload) for p, _ in packets), arrival=packets[-1][1],
        )


class CaptureReader:
    """Turns datagrams into packet rows (:data:`PACKET_COLUMNS`) and frames; one per analysis.

    ``entries``: the SFU's key log (the SFU's view), or None (the wire's). :meth:`feed` takes each
    datagram in capture order, :meth:`finish` flushes the assemblers; then ``rows``, ``frames``
    (``(flow, leg, direction, FrameAssembled)``), ``decrypted`` and ``dropped`` hold the result.
    """

    def __init__(
        self, entries: list[KeyLogEntry] | None, payload_types: Mapping[int, Codec],
        extensions_map: HeaderExtensionsMap, payload_format: str = "auto",
    ) -> None:
        if payload_format not in PAYLOAD_FORMATS:
            raise ValueError(f"payload_format must be one of {', '.join(PAYLOAD_FORMATS)}, not {payload_format!r}")
        self.payload_format = payload_format
        self.keyed = entries is not None
        self.legs = LegMap(entries)
        self.payload_types = dict(payload_types)
        self.extensions_map = extensions_map
        self.dropped: Counter[str] = Counter()
        self.rows: list[dict] = []
        self.frames: list[tuple[Flow, str | None, str | None, FrameAssembled]] = []
        self.decrypted: list[Datagram] = []
        # flow -> (its assembler, (leg, direction)); with keys also its SFrame payload format depacketizer
        self._assemblers: dict[Flow, tuple[FrameAssembler | WireFramer, tuple]] = {}
        self._depacketizers: dict[Flow, SFrameDepacketizer] = {}
        self.formats: dict[tuple[Flow, int], str] = {}  # (flow, SSRC) -> "sframe" or "codec"
        self._held: dict[tuple[Flow, int], list[tuple[RtpPacket, float, dict]]] = {}  # not yet recognised
        self._t0: float | None = None

    def feed(self, d: Datagram) -> None:
        self._t0 = d.time if self._t0 is None else self._t0
        kind = classify(d.data)
        detail = _dtls_detail(d.data) if kind is PacketKind.DTLS else ""
        if not self.keyed and detail.startswith("ClientHello"):
            self.legs.note_client_hello(d.src, d.dst)
        leg, direction = self.legs.lookup(d.src, d.dst)[1:]
        row = dict.fromkeys(PACKET_COLUMNS)
        row.update(no=d.no, time=d.time - self._t0, src_ip=d.src[0], src_port=d.src[1],
                   dst_ip=d.dst[0], dst_port=d.dst[1], leg=leg, direction=direction,
                   kind=kind.value, size=len(d.data), detail=detail, decrypted=False,
                   drop_reason="")
        plain = None
        if kind in (PacketKind.RTP, PacketKind.RTCP):
            plain = self._unprotect(d, kind, row)
            if kind is PacketKind.RTP:
                self._read_rtp(d, plain, row, (leg, direction))
            else:
                row["detail"], row["ssrc"] = _rtcp_detail(plain or d.data, plain is not None)
        self.rows.append(row)
        if plain is not None:
            self.decrypted.append(replace(d, data=plain))

    def _drop(self, row: dict, reason: str) -> None:
        self.dropped[reason] += 1
        row["drop_reason"] = reason

    def _unprotect(self, d: Datagram, kind: PacketKind, row: dict) -> bytes | None:
        if not self.keyed:
            return None
        try:
            plain = self.legs.unprotect(d.data, d.src, d.dst, rtcp=kind is PacketKind.RTCP)
        except (CaptureError, SRTPError) as err:
            self._drop(row, err.reason)
            return None
        row["decrypted"] = True
        return plain

    def _read_rtp(self, d: Datagram, plain: bytes | None, row: dict, where: tuple) -> None:
        if self.keyed and plain is None:
            return  # the SFU could not unprotect it: it never reads the header
        try:
            rtp = parse_rtp(plain or d.data, self.extensions_map)
        except RTPError as err:
            self._drop(row, err.reason)
            return
        level = rtp.extensions.audio_level
        row.update(ssrc=rtp.ssrc, payload_type=rtp.payload_type, seq=rtp.sequence_number,
                   timestamp=rtp.timestamp, marker=bool(rtp.marker), mid=rtp.extensions.mid,
                   audio_level=None if level is None else level[1],
                   voice_activity=None if level is None else bool(level[0]),
                   payload_size=len(rtp.payload), payload_entropy=entropy(rtp.payload))
        if plain is None:
            self._assemble((d.src, d.dst), rtp, d.time - self._t0, where)
        else:
            self._route((d.src, d.dst), rtp, d.time - self._t0, row, where)

    def _route(self, flow: Flow, rtp: RtpPacket, now: float, row: dict, where: tuple) -> None:
        """Hold a stream's packets until its payload format is known, then pass them on in order."""
        key = (flow, rtp.ssrc)
        if key in self.formats:
            self._deliver(flow, rtp, now, row, where)
            return
        held = self._held.setdefault(key, [])
        held.append((rtp, now, row))
        found = self.payload_format if self.payload_format != "auto" else \
            recognise_payload_format([p.payload for p, _, _ in held])
        if found is not None:
            self._decide(key, found, where)

    def _decide(self, key: tuple[Flow, int], found: str, where: tuple) -> None:
        self.formats[key] = found
        for rtp, now, row in self._held.pop(key, []):
            self._deliver(key[0], rtp, now, row, where)

    def _deliver(self, flow: Flow, rtp: RtpPacket, now: float, row: dict, where: tuple) -> None:
        sframe = self.formats[flow, rtp.ssrc] == "sframe"
        row["payload_format"] = self.formats[flow, rtp.ssrc]
        row["sframe_kid"], row["sframe_ctr"] = self._frame_start_header(rtp, sframe)
        if not sframe:
            self._assemble(flow, rtp, now, where)
            return
        self._assemblers.setdefault(flow, (FrameAssembler(self.payload_types, extensions_map=self.extensions_map), where))
        depacketizer = self._depacketizers.setdefault(flow, SFrameDepacketizer(extensions_map=self.extensions_map))
        self._collect(flow, depacketizer.receive(rtp, now))

    def _frame_start_header(self, rtp: RtpPacket, sframe: bool = False) -> tuple[int | None, int | None]:
        if sframe:  # the payload format: an S=1 descriptor, then the SFrame header
            payload = rtp.payload
            return sframe_header(payload[1:]) if payload and payload[0] & S_BIT else (None, None)
        codec = self.payload_types.get(rtp.payload_type)
        if codec is Codec.OPUS:
            return sframe_header(rtp.payload)
        if codec is Codec.VP8:
            try:
                descriptor, data = VP8PayloadDescriptor.parse(rtp.payload)
            except RTPError:
                return None, None
            if descriptor.starts_frame:
                return sframe_header(data)
        return None, None

    def _assemble(self, flow: Flow, rtp: RtpPacket, now: float, where: tuple) -> None:
        if flow not in self._assemblers:
            self._assemblers[flow] = (
                FrameAssembler(self.payload_types, extensions_map=self.extensions_map)
                if self.keyed else WireFramer(self.payload_types), where)
        self._collect(flow, self._assemblers[flow][0].receive(rtp, now))

    def _collect(self, flow: Flow, events: list) -> None:
        leg, direction = self._assemblers[flow][1]
        for event in events:
            if isinstance(event, SFrameAssembled):
                codec = self.payload_types.get(event.payload_type)
                if codec is None:
                    self.dropped["sframe_unknown_payload_type"] += 1
                    continue
                event = event.as_frame(codec)
            if isinstance(event, FrameAssembled):
                self.frames.append((flow, leg, direction, event))

    def finish(self) -> None:
        """Decide the streams still held (on what they showed), flush every assembler; add the
        assemblers' drop counters (duplicate, late, ...; the payload format's prefixed ``sframe_``)."""
        for key, held in list(self._held.items()):
            where = self.legs.lookup(*key[0])[1:]
            found = self.payload_format if self.payload_format != "auto" else \
                recognise_payload_format([p.payload for p, _, _ in held], final=True)
            self._decide(key, found or "codec", where)
        for depacketizer in self._depacketizers.values():
            self.dropped.update({f"sframe_{k}": v for k, v in depacketizer.dropped.items()})
        for flow, (assembler, _) in self._assemblers.items():
            self._collect(flow, assembler.flush())
            if isinstance(assembler, FrameAssembler):
                self.dropped.update(assembler.dropped)
                if assembler.stats["frames_lost"]:
                    self.dropped["frame_incomplete"] += assembler.stats["frames_lost"]
