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
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import pandas as pd
from aiortc.rtp import RtpPacket

from e2ee_lab.sfu.events import LegId

Direction = Literal["in", "out"]


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
    """Collects :class:`ViewRecord` rows; the core calls :meth:`record` for every packet.

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
        self.records: list[ViewRecord] = []

    def __len__(self) -> int:
        return len(self.records)

    def clear(self) -> None:
        """Forget every record."""
        self.records.clear()

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
        """Append one row for ``packet`` as seen on ``leg`` (``publisher`` = (leg, SSRC))."""
        if direction == "out" and not self.record_out:
            return
        vad, level = _audio_level(packet)
        self.records.append(
            ViewRecord(
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
        )

    def to_dataframe(self, direction: Direction | None = None) -> pd.DataFrame:
        """The records as a DataFrame with :data:`COLUMNS` (all, or one ``direction``)."""
        rows = [
            tuple(getattr(r, name) for name in COLUMNS)
            for r in self.records
            if direction in (None, r.direction)
        ]
        return pd.DataFrame.from_records(rows, columns=list(COLUMNS))

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
