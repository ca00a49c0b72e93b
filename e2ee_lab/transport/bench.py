"""Benchmarks of the transport layer: DTLS-SRTP handshake time over loopback UDP and SRTP cost.

Run ``python -m e2ee_lab.transport.bench`` (``--handshakes N --packets N``). It prints, per SRTP
profile, the median wall time of a full DTLS 1.2 handshake between two loopback UDP legs (a
participant and the SFU, certificates made beforehand) and the median per-packet time of
``protect``/``unprotect`` (and the RTCP variants) on a 1200-byte RTP packet. Figures only; no
test asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import pylibsrtp
from aiortc.rtp import RtpPacket

from .certificate import Certificate
from .srtp import SRTPMasterKey, SRTPProfile, SRTPSession
from .udp import open_leg_pair

PACKET_SIZE = 1200  # bytes of RTP, header included
BATCH = 1000  # packets per timed batch


def rtp_packets(count: int, size: int = PACKET_SIZE, ssrc: int = 0x1234) -> list[bytes]:
    """``count`` RTP packets of ``size`` bytes with consecutive sequence numbers."""
    payload = os.urandom(size - 12)
    return [
        RtpPacket(
            payload_type=96, sequence_number=i & 0xFFFF, timestamp=i * 3000, ssrc=ssrc,
            payload=payload,
        ).serialize()
        for i in range(count)
    ]


def rtcp_packets(count: int, size: int = PACKET_SIZE, ssrc: int = 0x1234) -> list[bytes]:
    """``count`` RTCP APP-like packets (PT 204) of ``size`` bytes, for timing only."""
    words = size // 4 - 1
    header = bytes([0x80, 204]) + words.to_bytes(2, "big") + ssrc.to_bytes(4, "big")
    return [header + os.urandom(size - 8) for _ in range(count)]


def _per_packet_us(func, packets: list[bytes]) -> float:
    start = time.perf_counter()
    for packet in packets:
        func(packet)
    return (time.perf_counter() - start) / len(packets) * 1e6


def _sessions(profile: SRTPProfile, key: SRTPMasterKey, direct: bool):
    """(tx, rx) as SRTPSession wrappers, or as bare pylibsrtp sessions when ``direct``."""
    if not direct:
        return (SRTPSession(profile=profile, key=key, direction="outbound"),
                SRTPSession(profile=profile, key=key, direction="inbound"))
    policy = pylibsrtp.Policy
    return tuple(
        pylibsrtp.Session(policy(key=bytes(key), ssrc_type=kind, srtp_profile=profile.libsrtp_id))
        for kind in (policy.SSRC_ANY_OUTBOUND, policy.SSRC_ANY_INBOUND)
    )


def srtp_costs(profile: SRTPProfile, packets: int, *, direct: bool = False) -> dict[str, float]:
    """Median µs per packet for protect/unprotect of RTP and RTCP with ``profile``.

    ``direct`` times bare ``pylibsrtp.Session`` calls instead of :class:`SRTPSession`.
    """
    names = ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp")
    results: dict[str, list[float]] = {name: [] for name in names}
    key = SRTPMasterKey(os.urandom(profile.key_length), os.urandom(profile.salt_length))
    for _ in range(max(1, packets // BATCH)):
        tx, rx = _sessions(profile, key, direct)
        plain, plain_rtcp = rtp_packets(BATCH), rtcp_packets(BATCH)
        srtp = [tx.protect(p) for p in plain]
        srtcp = [tx.protect_rtcp(p) for p in plain_rtcp]
        results["unprotect"].append(_per_packet_us(rx.unprotect, srtp))
        results["unprotect_rtcp"].append(_per_packet_us(rx.unprotect_rtcp, srtcp))
        fresh_tx, _ = _sessions(profile, key, direct)
        results["protect"].append(_per_packet_us(fresh_tx.protect, plain))
        results["protect_rtcp"].append(_per_packet_us(fresh_tx.protect_rtcp, plain_rtcp))
    return {name: statistics.median(values) for name, values in results.items()}


async def handshake_ms(profile: SRTPProfile, count: int) -> list[float]:
    """Wall times (ms) of ``count`` loopback handshakes that negotiate ``profile``."""
    times = []
    for _ in range(count):
        client_cert, server_cert = Certificate.generate(), Certificate.generate()
        start = time.perf_counter()
        client, server = await open_leg_pair(
            client_certificate=client_cert, server_certificate=server_cert,
            server_profiles=[profile],
        )
        times.append((time.perf_counter() - start) * 1e3)
        assert client.keys is not None and client.keys.profile is profile
        for leg in (client, server):
            leg.close()
            await leg.wait_closed()
    return times


def main(argv: list[str] | None = None) -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handshakes", type=int, default=50)
    parser.add_argument("--packets", type=int, default=20000)
    args = parser.parse_args(argv)
    profiles = [SRTPProfile.AEAD_AES_128_GCM, SRTPProfile.AES_CM_128_HMAC_SHA1_80]
    print(f"DTLS 1.2 handshake over loopback UDP, {args.handshakes} runs per profile")
    print(f"{'profile':26} {'median ms':>10} {'p90 ms':>8}")
    for profile in profiles:
        times = asyncio.run(handshake_ms(profile, args.handshakes))
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
        print(f"{profile.value:26} {statistics.median(times):10.2f} {p90:8.2f}")
    print(f"\nSRTP per packet, RTP/RTCP of {PACKET_SIZE} B, median of batches of {BATCH} (µs)")
    print(f"{'profile':26} {'via':11} {'protect':>8} {'unprotect':>10} {'protect_rtcp':>13} "
          f"{'unprotect_rtcp':>15}")
    for profile in profiles:
        for via, direct in (("SRTPSession", False), ("pylibsrtp", True)):
            c = srtp_costs(profile, args.packets, direct=direct)
            print(f"{profile.value:26} {via:11} {c['protect']:8.2f} {c['unprotect']:10.2f} "
                  f"{c['protect_rtcp']:13.2f} {c['unprotect_rtcp']:15.2f}")


if __name__ == "__main__":
    main()
