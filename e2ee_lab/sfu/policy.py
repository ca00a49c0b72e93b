"""Forwarding policies: the one place where an SFU decides what each subscriber gets.

The core parses and accepts a packet, then asks its :class:`Policy` what to do with it, once per
packet, with the subscriber legs it would normally go to. The policy answers with a list of
decisions: :class:`Forward` (to one leg, possibly with a replacement packet and possibly in a fresh
sequence slot) or :class:`Drop` (one delivery, with a reason that names its counter). A policy may
also answer later: whatever it returns from :meth:`Policy.on_timer` is applied exactly like an
answer to :meth:`Policy.on_rtp`, and :meth:`Policy.next_timer` tells the edge when to call. The
core, not the policy, rewrites SSRCs and sequence numbers (RFC 3550 §5.1, §8.2), so every kind of
misbehaviour is expressed in the same few terms:

- **honest** (:class:`HonestPolicy`): ``Forward(dest, inbound)`` for every destination.
- **drop**: ``Drop(dest, inbound, reason="drop")``; the core closes the sequence gap so the
  subscriber sees no loss (the drop is invisible at the RTP layer, as with a real SFU).
- **tamper**: ``Forward(dest, inbound, packet=inbound.copy_packet(payload=flipped))`` where
  ``flipped`` is the payload with one bit changed, e.g. ``p[:i] + bytes([p[i] ^ 1]) + p[i+1:]``.
  Hop-by-hop SRTP is re-applied by the edge, so only the end-to-end layer (SFrame) can notice.
- **reorder / delay**: return nothing for the packet now, keep it, and return
  ``Forward(dest, kept)`` from ``on_timer``; the packet keeps its own sequence slot, so the
  subscriber sees it out of order (return ``Drop`` for it instead if it is never sent).
- **replay**: keep old ``InboundRTP`` objects and later return
  ``Forward(dest, old, fresh_seq=True)``: the core gives the old packet the next sequence number
  of that outgoing stream, so the subscriber's SRTP replay check (RFC 3711 §3.3.2) accepts it;
  only a frame-level check (SFrame CTR window) can reject it.
- **inject**: ``Forward(dest, some_inbound_of_that_stream, packet=RtpPacket(...), fresh_seq=True)``
  puts a packet of the policy's own making (e.g. Opus silence ``F8 FF FE``) into that stream.

A policy receives parsed packets; it must not mutate ``inbound.packet`` (other deliveries and the
view share it): :meth:`InboundRTP.copy_packet` returns a changed copy. Exceptions raised by a
policy are programming errors and propagate to the caller.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from aiortc.rtp import RtpPacket

from e2ee_lab.media.frame import Kind
from e2ee_lab.sfu.events import LegId


@dataclass(frozen=True)
class InboundRTP:
    """One RTP packet the core accepted from a publisher leg (after SRTP unprotect and parse)."""

    time: float  # arrival time (the ``now`` given to ``receive_rtp``)
    leg: LegId  # publishing leg
    kind: Kind  # "audio" or "video" (payload type map)
    ext_seq: int  # extended sequence number in the publisher's stream (wrap-aware)
    packet: RtpPacket  # the parsed packet; read-only for policies
    size: int  # bytes of plaintext RTP as received

    @property
    def ssrc(self) -> int:
        """The publisher's SSRC."""
        return self.packet.ssrc

    @property
    def seq(self) -> int:
        """The publisher's 16-bit sequence number."""
        return self.packet.sequence_number

    def copy_packet(self, **changes: object) -> RtpPacket:
        """A copy of the packet with attributes replaced (``payload=...``, ``marker=...``).

        Raises:
            AttributeError: when a name is not an :class:`aiortc.rtp.RtpPacket` attribute.
        """
        packet = copy.copy(self.packet)
        for name, value in changes.items():
            if not hasattr(packet, name):
                raise AttributeError(f"RtpPacket has no attribute {name!r}")
            setattr(packet, name, value)
        return packet


@dataclass(frozen=True)
class Forward:
    """Send ``source`` (or ``packet`` in its stream) to ``dest``."""

    dest: LegId  # subscriber leg
    source: InboundRTP  # the packet, or a packet of the stream an injected one joins
    packet: RtpPacket | None = None  # replacement (tamper, inject); None sends the original
    fresh_seq: bool = False  # True: take the next sequence slot instead of the source's own


@dataclass(frozen=True)
class Drop:
    """Do not send ``source`` to ``dest``; counted in ``SFUCore.dropped_deliveries[reason]``."""

    dest: LegId  # subscriber leg
    source: InboundRTP  # the packet not delivered
    reason: str = "policy"  # counter name


Decision: TypeAlias = Forward | Drop


class Policy:
    """Base class of forwarding policies (the hook the core calls per accepted packet).

    Subclasses override :meth:`on_rtp`; a policy that holds packets also overrides
    :meth:`on_timer` and :meth:`next_timer`.
    """

    name = "base"

    def on_rtp(self, inbound: InboundRTP, dests: Sequence[LegId]) -> list[Decision]:
        """Decide what to do with ``inbound``; ``dests`` are the legs an honest SFU serves.

        Returns:
            Decisions to apply now. A destination left out is neither sent nor counted as
            dropped (the policy holds it and answers from :meth:`on_timer`).
        """
        raise NotImplementedError

    def on_timer(self, now: float) -> list[Decision]:
        """Decisions that became due at ``now`` (held, delayed or replayed packets)."""
        return []

    def next_timer(self) -> float | None:
        """When :meth:`on_timer` next has something to release, or None."""
        return None


class HonestPolicy(Policy):
    """Forwards every packet, unchanged, to every other leg: what an SFU is trusted to do."""

    name = "honest"

    def on_rtp(self, inbound: InboundRTP, dests: Sequence[LegId]) -> list[Decision]:
        """One :class:`Forward` per destination, no replacement, own sequence slot."""
        return [Forward(dest, inbound) for dest in dests]
