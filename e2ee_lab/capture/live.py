"""Live capture of a call on the loopback interface: scapy's sniffer, or the socket tap.

:class:`Capture` writes a call's UDP datagrams to one pcap (linktype 1) in one of four modes:

- ``"sniff"``: scapy's ``AsyncSniffer`` on ``lo`` with a BPF filter (``udp``, narrowed to the
  call's ports when given), through libpcap (``conf.use_pcap = True``). libpcap is required: it
  compiles the filter, and scapy's native ``AF_PACKET`` socket reports every loopback packet twice
  (once outgoing, once incoming). Frames are stored as the kernel delivered them, undissected.
  Needs root or CAP_NET_RAW; otherwise :class:`~.pcap.CaptureNotPermitted` (or
  :class:`~.pcap.CaptureUnavailable` without libpcap) is raised.
- ``"tap"``: :class:`~.tap.SocketTap`, no privileges needed (the lab's sockets report what they
  send).
- ``"auto"``: sniff where permitted, else say why in one line (logged as a warning and kept in
  :attr:`Capture.note`) and use the tap. Never a traceback.
- ``"off"``: nothing is captured and no file is written.

Setting the environment variable ``E2EE_LAB_NO_SNIFF=1`` makes the permission check fail, as on
a laptop without root (the notebooks' "no capture rights" path, and the tests of the fallback).

In a call: enter ``async with Capture(dir / "capture.pcap", mode=mode):`` before the first leg
opens (so the DTLS handshakes are in the file), leave it after the last leg closed, then write the
SFU's key log next to it for :func:`e2ee_lab.analysis.offline.analyze`. ``ports=None`` suits the
tap (it only sees the lab's sockets); for sniffing, the SFU's listening ports narrow the filter to
the call, if they are known before the first ClientHello.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Literal

from .pcap import CaptureError, CaptureNotPermitted, CaptureUnavailable, PcapSink
from .tap import SocketTap

CaptureMode = Literal["auto", "sniff", "tap", "off"]
MODES = ("auto", "sniff", "tap", "off")
LOOPBACK_IFACE = "lo"
DENY_ENV = "E2EE_LAB_NO_SNIFF"  # set to 1 to make the sniff permission check fail
CAP_NET_RAW = 13  # linux/capability.h
DEFAULT_LINGER = 0.1  # seconds to let the kernel hand over the last packets before stopping
START_TIMEOUT = 5.0  # seconds to wait for the sniffer thread to start

log = logging.getLogger(__name__)


def _has_cap_net_raw() -> bool:
    """True if this process is root or has CAP_NET_RAW in its effective set (Linux)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except OSError:
        pass
    return False


def _libpcap_ready() -> bool:
    """Switch scapy to its libpcap backend; False if libpcap cannot be loaded.

    ``conf.use_pcap`` is process-wide: scapy's sockets become libpcap sockets everywhere.
    """
    from scapy.config import conf

    if conf.use_pcap:
        return True
    if ctypes.util.find_library("pcap") is None:
        return False
    conf.use_pcap = True  # scapy reverts it (with a warning) if libpcap fails to load
    return bool(conf.use_pcap)


def sniff_problem(iface: str = LOOPBACK_IFACE) -> CaptureError | None:
    """Why live sniffing on ``iface`` cannot work here, as the error to raise; None if it can."""
    if os.environ.get(DENY_ENV, "").strip() not in ("", "0"):
        return CaptureNotPermitted(f"live capture is switched off here ({DENY_ENV} is set)")
    if not _has_cap_net_raw():
        return CaptureNotPermitted("live capture needs root or CAP_NET_RAW")
    if not os.path.exists(f"/sys/class/net/{iface}"):
        return CaptureUnavailable(f"no network interface {iface!r} to capture on")
    if not _libpcap_ready():
        return CaptureUnavailable("libpcap is not installed (apt-get install libpcap0.8)")
    return None


def bpf_filter(ports: Iterable[int] | None) -> str:
    """The BPF filter for a call: every UDP datagram, or those from or to one of ``ports``."""
    if ports is None:
        return "udp"
    ports = sorted(set(ports))
    if not ports or not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise ValueError(f"ports must be a non-empty set of UDP ports 1..65535, got {ports}")
    return "udp and (" + " or ".join(f"port {p}" for p in ports) + ")"


class Sniffer:
    """scapy's ``AsyncSniffer`` on a libpcap socket with a BPF filter, writing raw frames.

    Raises :class:`CaptureNotPermitted` / :class:`CaptureUnavailable` from :meth:`start` when
    sniffing cannot work (see :func:`sniff_problem`). ``packets`` counts the frames written.
    """

    def __init__(
        self, path: str | os.PathLike, *, ports: Iterable[int] | None = None,
        iface: str = LOOPBACK_IFACE, linger: float = DEFAULT_LINGER,
    ) -> None:
        self.path = os.fspath(path)
        self.iface = iface
        self.filter = bpf_filter(ports)
        self.linger = linger
        self.packets = 0
        self._sniffer = None
        self._socket = None
        self._sink: PcapSink | None = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._sniffer is not None

    def start(self) -> None:
        """Open the libpcap socket, start the sniffer thread, return once it listens."""
        problem = sniff_problem(self.iface)
        if problem is not None:
            raise problem
        from scapy.config import conf
        from scapy.sendrecv import AsyncSniffer

        self._socket = self._open_socket(conf)
        self._socket.LL = conf.raw_layer  # hand frames over undissected (scapy reads .LL)
        try:
            self._sink = PcapSink(self.path)
        except OSError:
            self._socket.close()
            raise
        started = threading.Event()
        self._sniffer = AsyncSniffer(
            opened_socket=self._socket, prn=self._write, store=False,
            started_callback=started.set,
        )
        self._sniffer.start()
        if not started.wait(START_TIMEOUT):
            self.stop()
            raise CaptureUnavailable(f"the sniffer on {self.iface!r} did not start")

    def _open_socket(self, conf):
        try:
            return conf.L2listen(iface=self.iface, filter=self.filter)
        except PermissionError as exc:
            raise CaptureNotPermitted(f"opening {self.iface!r} was refused: {exc}") from None
        except Exception as exc:  # scapy/libpcap report open failures with assorted types
            message = str(exc)
            if "ermission" in message or "not permitted" in message:
                raise CaptureNotPermitted(f"opening {self.iface!r}: {message}") from None
            raise CaptureUnavailable(f"cannot sniff on {self.iface!r}: {message}") from None

    def _write(self, packet) -> None:
        self._sink.write_frame(bytes(packet), float(packet.time))
        self.packets += 1

    def stop(self) -> int:
        """Let ``linger`` seconds of packets arrive, stop the thread, close the file."""
        if self._sniffer is None:
            return self.packets
        time.sleep(self.linger)
        if self._sniffer.running:
            self._sniffer.stop(join=True)
        self._socket.close()
        self._sink.close()
        self._sniffer, self._socket, self._sink = None, None, None
        return self.packets


class Capture:
    """One call's capture to ``path``: a context manager (also ``async with``), or start/stop.

    Args:
        path: the pcap file to write.
        mode: ``"auto"``, ``"sniff"``, ``"tap"`` or ``"off"`` (module docstring).
        ports: capture only datagrams from or to these UDP ports (the SFU's ports are enough:
            every leg has one end there); None captures every UDP datagram on ``lo`` (sniff) or
            every datagram the lab's sockets send (tap). Sniff filters are fixed at start.
        iface: the interface to sniff (``lo``).
        linger: seconds the sniffer keeps reading after :meth:`stop` is called.

    After :meth:`start`, :attr:`backend` is ``"sniff"``, ``"tap"`` or ``"off"`` and :attr:`note`
    says why ``auto`` fell back (None otherwise). :attr:`packets` counts what was written.

    Raises:
        ValueError: unknown mode or bad ports (at construction).
        CaptureNotPermitted, CaptureUnavailable: ``mode="sniff"`` where it cannot work (start).
    """

    def __init__(
        self, path: str | os.PathLike, *, mode: CaptureMode = "auto",
        ports: Iterable[int] | None = None, iface: str = LOOPBACK_IFACE,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"capture mode must be one of {MODES}, not {mode!r}")
        self.path = os.fspath(path)
        self.mode = mode
        self.ports = None if ports is None else frozenset(ports)
        self.filter = bpf_filter(self.ports)
        self.iface = iface
        self.linger = linger
        self.backend: str | None = None
        self.note: str | None = None
        self._worker: Sniffer | SocketTap | None = None

    def __repr__(self) -> str:
        return f"Capture({self.path!r}, mode={self.mode!r}, backend={self.backend!r})"

    @property
    def packets(self) -> int:
        """Datagrams written so far (the tap counts them as they are sent)."""
        return self._worker.packets if self._worker is not None else 0

    def start(self) -> Capture:
        """Start capturing; returns self. Idempotent while running."""
        if self.mode == "off":
            self.backend = "off"
            return self
        if self._worker is not None:
            return self
        if self.mode in ("auto", "sniff"):
            sniffer = Sniffer(self.path, ports=self.ports, iface=self.iface, linger=self.linger)
            try:
                sniffer.start()
            except CaptureError as exc:
                if self.mode == "sniff":
                    raise
                self.note = f"capture: {exc}; using the socket tap instead"
                log.warning(self.note)
            else:
                self._worker, self.backend = sniffer, "sniff"
                return self
        tap = SocketTap(self.path, ports=self.ports)
        tap.start()
        self._worker, self.backend = tap, "tap"
        return self

    def stop(self) -> int:
        """Stop capturing and close the file; returns the packet count. Idempotent."""
        if self._worker is None:
            return 0
        return self._worker.stop()

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def __aenter__(self) -> Capture:
        """``async with Capture(...)``: start in a worker thread (the sniffer waits to listen)."""
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info) -> None:
        """Stop in a worker thread (the sniffer lingers), so the event loop keeps running."""
        await asyncio.to_thread(self.stop)
