"""The SFU's view tap: a record of everything the SFU can read of each RTP packet.

After SRTP unprotect (RFC 3711) the SFU holds the plaintext RTP packet: the fixed header and CSRCs
(RFC 3550 §5.1), the header extensions (RFC 8285), among them the client-to-mixer audio level
(RFC 6464 §3: V bit and level in -dBov, 127 = silence), and the payload. In ``dtls-srtp`` mode the
payload is the codec payload (RFC 7741 VP8 descriptor + frame, RFC 7587 Opus); in ``e2ee`` mode it
is an SFrame header (RFC 9605 §4.3: KID, CTR) and ciphertext behind the clear VP8 descriptor or at
the start of the Opus payload. The tap does not decode anything; it keeps the bytes (switchable, to
save memory) for the analysis that later reassembles frames and tries to decode them.

Columns of :meth:`ViewTap.to_dataframe` (one row per packet and direction):

==================  =====================================================================
time                seconds, the ``now`` of the call that carried the packet
direction           "in" (publisher -> SFU) or "out" (SFU -> subscriber)
leg                 the leg the packet arrived on ("in") or was sent to ("out")
ssrc                SSRC on that leg (publisher's for "in", SFU-chosen for "out")
payload_type        RTP payload type (7 bits)
kind                "audio" or "video"
seq                 RTP sequence number on that leg
timestamp           RTP timestamp
marker              RTP marker bit (0/1): last packet of a video frame
csrc_count          number of CSRCs
audio_level         RFC 6464 level 0..127 (-dBov), or None when absent
voice_activity      RFC 6464 V bit, or None when absent
size                bytes of plaintext RTP (header + payload + padding)
payload_size        bytes of payload (without padding)
padding_size        bytes of RTP padding
payload             the payload bytes (``None`` when not kept; truncated to ``payload_limit``)
publisher_leg       the leg that published the stream
publisher_ssrc      the publisher's SSRC of the stream
==================  =====================================================================

Recording is lazy on the SFU's hot path: :meth:`ViewTap.record_raw` keeps the packet's bytes and
the call's facts as one tuple, and the header is parsed (aiortc ``RtpPacket.parse``) only when
:attr:`ViewTap.records` or :meth:`ViewTap.to_dataframe` is first read, so a forwarded packet costs
the tap one list append. Raw entries hold the whole packet until then, even with
``keep_payload=False``; reading ``records`` turns them into rows and frees them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Literal

import pandas as pd
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from e2ee_lab.sfu.events import LegId

Direction = Literal["in", "out"]
_RAW, _DELIVERIES = 0, 1  # tags of the pending entries: one packet, or one packet's deliveries


@dataclass(frozen=True)
class ViewRecord:
    """What the SFU read of one packet; fields are the DataFrame columns (module docstring)."""

    time: float
    direction: Direction
    leg: LegId
    ssrc: int
    payload_type: int
    kind: str
    seq: int
    timestamp: int
    marker: int
    csrc_count: int
    audio_level: int | None
    voice_activity: bool | None
    size: int
    payload_size: int
    padding_size: int
    payload: bytes | None
    publisher_leg: LegId
    publisher_ssrc: int


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ViewRecord))


class ViewTap:
    """Collects :class:`ViewRecord` rows; the core calls :meth:`record_raw` (or :meth:`record`).

    Args:
        keep_payload: keep the payload bytes (False stores ``None`` and saves memory).
        payload_limit: keep at most this many leading payload bytes (None keeps all); 64 bytes
            hold a VP8 descriptor and any SFrame header.
        record_out: also record the packets the SFU sends (direction "out").
    """

    def __init__(
        self,
        *,
        keep_payload: bool = True,
        payload_limit: int | None = None,
        record_out: bool = True,
    ) -> None:
        if payload_limit is not None and payload_limit < 0:
            raise ValueError(f"payload_limit must be >= 0, got {payload_limit}")
        self.keep_payload = keep_payload
        self.payload_limit = payload_limit
        self.record_out = record_out
        self._records: list[ViewRecord] = []
        self._pending: list[ViewRecord | tuple] = []  # in order after _records; tuples are raw

    @property
    def records(self) -> list[ViewRecord]:
        """Every record so far, in order (raw entries are parsed into rows on first read)."""
        if self._pending:
            pending, self._pending = self._pending, []
            for entry in pending:
                if isinstance(entry, ViewRecord):
                    self._records.append(entry)
                elif entry[0] == _DELIVERIES:
                    _, time, deliveries, kind, pub_leg, pub_ssrc, ext = entry
                    self._records += [self._from_raw(time, "out", leg, data, kind, pub_leg, pub_ssrc, ext)
                                      for leg, data in deliveries]
                else:
                    self._records.append(self._from_raw(*entry[1:]))
        return self._records

    def __len__(self) -> int:
        return len(self._records) + len(self._pending)

    def clear(self) -> None:
        """Forget every record."""
        self._records.clear()
        self._pending.clear()

    def record_raw(
        self,
        time: float,
        direction: Direction,
        leg: LegId,
        data: bytes,
        kind: str,
        publisher_leg: LegId,
        publisher_ssrc: int,
        extensions_map: HeaderExtensionsMap,
    ) -> None:
        """Append one row for the RTP packet ``data`` as seen on ``leg``, parsed when first read.

        ``data`` must be a packet the core has already validated (it parses without error with
        ``extensions_map``); positional arguments, as this runs once per packet and direction.
        """
        if direction == "out" and not self.record_out:
            return
        self._pending.append(
            (_RAW, time, direction, leg, data, kind, publisher_leg, publisher_ssrc, extensions_map)
        )

    def record_deliveries(
        self,
        time: float,
        deliveries: tuple[tuple[LegId, bytes], ...],
        kind: str,
        publisher_leg: LegId,
        publisher_ssrc: int,
        extensions_map: HeaderExtensionsMap,
    ) -> None:
        """Append one "out" row per ``(leg, rtp_bytes)`` of one packet's deliveries, parsed when read.

        One append for all subscribers of a packet (the core's fan-out); same contract as
        :meth:`record_raw`.
        """
        if self.record_out and deliveries:
            self._pending.append(
                (_DELIVERIES, time, deliveries, kind, publisher_leg, publisher_ssrc, extensions_map)
            )

    def record(
        self,
        *,
        time: float,
        direction: Direction,
        leg: LegId,
        packet: RtpPacket,
        size: int,
        kind: str,
        publisher: tuple[LegId, int],
    ) -> None:
        """Append one row for the parsed ``packet`` as seen on ``leg`` (``publisher`` = (leg, SSRC))."""
        if direction == "out" and not self.record_out:
            return
        self._pending.append(self._row(time, direction, leg, packet, size, kind, publisher))

    def to_dataframe(self, direction: Direction | None = None) -> pd.DataFrame:
        """The records as a DataFrame with :data:`COLUMNS` (all, or one ``direction``)."""
        row = operator.attrgetter(*COLUMNS)
        rows = [row(r) for r in self.records if direction in (None, r.direction)]
        return pd.DataFrame.from_records(rows, columns=list(COLUMNS))

    def _from_raw(self, time: float, direction: Direction, leg: LegId, data: bytes, kind: str,
                  publisher_leg: LegId, publisher_ssrc: int,
                  extensions_map: HeaderExtensionsMap) -> ViewRecord:
        packet = RtpPacket.parse(data, extensions_map)
        return self._row(time, direction, leg, packet, len(data), kind, (publisher_leg, publisher_ssrc))

    def _row(self, time: float, direction: Direction, leg: LegId, packet: RtpPacket, size: int,
             kind: str, publisher: tuple[LegId, int]) -> ViewRecord:
        vad, level = _audio_level(packet)
        return ViewRecord(
            time=time,
            direction=direction,
            leg=leg,
            ssrc=packet.ssrc,
            payload_type=packet.payload_type,
            kind=kind,
            seq=packet.sequence_number,
            timestamp=packet.timestamp,
            marker=packet.marker,
            csrc_count=len(packet.csrc),
            audio_level=level,
            voice_activity=vad,
            size=size,
            payload_size=len(packet.payload),
            padding_size=packet.padding_size,
            payload=self._kept(packet.payload),
            publisher_leg=publisher[0],
            publisher_ssrc=publisher[1],
        )

    def _kept(self, payload: bytes) -> bytes | None:
        if not self.keep_payload:
            return None
        if self.payload_limit is None:
            return bytes(payload)
        return bytes(payload[: self.payload_limit])


def _audio_level(packet: RtpPacket) -> tuple[bool | None, int | None]:
    """(V bit, level) from aiortc's parsed RFC 6464 extension, or (None, None)."""
    value = packet.extensions.audio_level
    if value is None:
        return None, None
    vad, level = value
    return bool(vad), int(level)
