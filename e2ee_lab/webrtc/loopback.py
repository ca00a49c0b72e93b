"""Loopback-only ICE for aiortc: host candidates on 127.0.0.1, no STUN or TURN server.

Two defaults of aiortc would take a call off loopback, and neither can be changed per connection
through a public API:

- aioice gathers host candidates from ``aioice.ice.get_host_addresses()``, which deliberately skips
  127.0.0.1 and ::1 (a real client never wants them), so on loopback alone it gathers nothing and
  otherwise it offers the machine's external addresses. ``Connection.gather_candidates()`` calls
  that module-level function; neither aioice's ``Connection`` nor aiortc's ``RTCConfiguration``
  can choose an interface. :func:`loopback_ice` therefore replaces that one attribute,
  ``aioice.ice.get_host_addresses`` (a public module function, no private name), with
  :func:`loopback_host_addresses`, which returns ``["127.0.0.1"]``. The replacement is a module
  attribute, so while it is in place it holds for the whole process (every thread's aioice
  gathering); it is in place only from the first entry into a ``with loopback_ice():`` block to the
  last exit (reference-counted under a lock, so nested and concurrent blocks share one patch), and
  the original function is put back on that exit, also when the block raises. The calls of this
  package open the block around the offer/answer exchange only (where aiortc gathers), not for the
  whole call. Nothing else in aioice or aiortc is patched here; the per-object hooks on private
  aiortc attributes are in :mod:`e2ee_lab.webrtc.aiortc_hooks`.
- ``RTCConfiguration(iceServers=None)`` (the default) makes aiortc ask ``stun.l.google.com`` for a
  server-reflexive candidate (RFC 8445 §5.1.1.2): a packet to the Internet.
  :func:`loopback_configuration` passes ``iceServers=[]`` and max-bundle (RFC 9143: one transport,
  so one DTLS handshake and one SRTP key pair per peer connection).

Candidates are gathered inside ``setLocalDescription``, so the patch must cover those calls;
:func:`~e2ee_lab.webrtc.sdp.check_loopback` then proves the result by address, for every offer and
answer of a call (traffic to the machine's own external address would also travel over ``lo``,
so "nothing on eth0" proves little).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration

LOOPBACK_ADDRESS = "127.0.0.1"

_lock = threading.Lock()
_depth = 0
_original = None


def loopback_host_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    """The replacement of ``aioice.ice.get_host_addresses``: only 127.0.0.1 (IPv4 loopback)."""
    return [LOOPBACK_ADDRESS] if use_ipv4 else []


@contextmanager
def loopback_ice() -> Iterator[None]:
    """Within the block, aioice gathers host candidates on 127.0.0.1 only, in every thread of the
    process (``aioice.ice.get_host_addresses`` is replaced; module docstring).

    Reference-counted under a lock: the first entry installs the replacement, the last exit
    restores the original function, whatever happened inside.
    """
    global _depth, _original
    with _lock:
        if _depth == 0:
            _original = aioice.ice.get_host_addresses
            aioice.ice.get_host_addresses = loopback_host_addresses
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                aioice.ice.get_host_addresses = _original
                _original = None


def loopback_active() -> bool:
    """True while some :func:`loopback_ice` block is open."""
    return aioice.ice.get_host_addresses is loopback_host_addresses


def loopback_configuration() -> RTCConfiguration:
    """An ``RTCConfiguration`` with no ICE servers (no STUN/TURN traffic) and max-bundle."""
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
