"""Garbage for the SFU's ports during a call: every datagram must be counted and dropped, never crash.

Two attackers on loopback. A **stranger** sends from an extra socket of its own
(:func:`~e2ee_lab.transport.udp.open_udp`): random bytes, RTP-looking and DTLS-looking datagrams;
the SFU's legs accept datagrams only from their peer's address and drop these as
``unexpected_source``. A **spoofer** sends from a participant's own address (on one machine it can
use the participant's socket; on a network it would forge the source): RTP-looking random bytes and
truncated RTP (libsrtp refuses them: ``srtp_auth_failed``/``srtp_malformed``), genuine SRTP with a
flipped tag bit (``srtp_auth_failed``, RFC 3711 §3.4), and, to get past SRTP, packets it protects
with the participant's own outbound session: an SSRC the participant never signalled (the core's
``unknown_ssrc``, since the SFU forwards only SSRCs from the offer) and the same SRTP packet again
(libsrtp's replay window: ``srtp_replay``, RFC 3711 §3.3.2). ``sent`` counts what went out per kind.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence

from aiortc.rtp import RtpPacket

from e2ee_lab.call.participant import Participant
from e2ee_lab.media.codecs import VP8_PAYLOAD_TYPE
from e2ee_lab.sfu.server import SFUServer
from e2ee_lab.transport import check_loopback, open_udp

STRANGER_KINDS = ("stranger_random", "stranger_rtp", "stranger_dtls")
SPOOFED_KINDS = ("spoofed_random_rtp", "truncated_rtp", "bad_tag", "unknown_ssrc", "replay")
KINDS = STRANGER_KINDS + SPOOFED_KINDS
DEFAULT_RATE = 40.0  # garbage datagrams per second


class GarbageInjector:
    """Sends garbage to every SFU leg of a call at ``rate`` datagrams per second.

    Args:
        sfu: the call's SFU (its legs' addresses are the targets).
        participants: whose addresses the spoofer borrows.
        seed: makes the garbage reproducible.
        rate: datagrams per second, cycling through :data:`KINDS`.
    """

    def __init__(self, sfu: SFUServer, participants: Sequence[Participant], *, seed: int = 0,
                 rate: float = DEFAULT_RATE) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.sfu, self.participants, self.rate = sfu, list(participants), rate
        self.sent: Counter[str] = Counter()
        self.local_addr: tuple[str, int] | None = None
        self._rng = random.Random(f"garbage:{seed}")
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> None:
        """Open the stranger's loopback socket."""
        self._transport, _ = await open_udp(asyncio.DatagramProtocol)
        sockname = self._transport.get_extra_info("sockname")
        self.local_addr = (sockname[0], sockname[1])

    async def run(self, seconds: float) -> None:
        """Send garbage for ``seconds``, one datagram every ``1/rate`` seconds."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(int(seconds * self.rate)):
            await asyncio.sleep(max(0.0, start + i / self.rate - loop.time()))
            self.send_one(KINDS[i % len(KINDS)], self.participants[i % len(self.participants)])

    def send_one(self, kind: str, victim: Participant) -> None:
        """Send one datagram of ``kind`` to the SFU leg of ``victim``."""
        leg = victim.leg
        target = self.sfu.legs[victim.name].local_addr
        if leg is None or leg.transport is None or self._transport is None:
            raise RuntimeError("open() the injector and connect the participants first")
        if kind in STRANGER_KINDS:
            self._transport.sendto(self._stranger(kind), check_loopback(target))
            self.sent[kind] += 1
            return
        for datagram in self._spoofed(kind, victim):
            leg.transport.sendto(datagram, check_loopback(target))
            self.sent[kind] += 1

    def close(self) -> None:
        """Close the stranger's socket."""
        if self._transport is not None:
            self._transport.close()

    def _stranger(self, kind: str) -> bytes:
        body = self._rng.randbytes(self._rng.randrange(1, 200))
        if kind == "stranger_rtp":
            return bytes([0x80, VP8_PAYLOAD_TYPE]) + body
        if kind == "stranger_dtls":
            return bytes([22, 0xFE, 0xFD]) + body  # a DTLS 1.2 handshake record header
        return body

    def _spoofed(self, kind: str, victim: Participant) -> list[bytes]:
        rng = self._rng
        if kind == "spoofed_random_rtp":
            return [bytes([0x80 | rng.randrange(0x40), rng.randrange(0x60, 0x80)]) + rng.randbytes(60)]
        if kind == "truncated_rtp":
            return [bytes([0x80, VP8_PAYLOAD_TYPE]) + rng.randbytes(rng.randrange(0, 9))]
        protected = self._protected_stranger_ssrc(victim)
        if kind == "bad_tag":
            return [protected[:-1] + bytes([protected[-1] ^ 0x01])]
        if kind == "replay":
            return [protected, protected]
        return [protected]

    def _protected_stranger_ssrc(self, victim: Participant) -> bytes:
        """An RTP packet of an SSRC nobody signalled, SRTP-protected with the victim's own key."""
        rng = self._rng
        packet = RtpPacket(payload_type=VP8_PAYLOAD_TYPE, sequence_number=rng.randrange(1 << 16),
                           timestamp=rng.randrange(1 << 32), ssrc=rng.randrange(1, 1 << 32),
                           payload=bytes([0x90, 0x80, 0x00, 0x01]) + rng.randbytes(100))
        assert victim.leg is not None and victim.leg.srtp is not None
        return victim.leg.srtp.tx.protect(packet.serialize())
