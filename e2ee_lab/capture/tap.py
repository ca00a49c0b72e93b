"""The socket tap: capture without privileges by recording what the lab's own sockets send.

Live sniffing (:mod:`.live`) needs root or CAP_NET_RAW. Every socket of the lab comes from
:func:`e2ee_lab.transport.udp.open_udp`, whose ``sendto`` reports each datagram to the taps
registered with :func:`~e2ee_lab.transport.udp.add_tap`; :class:`SocketTap` is such a tap. It
writes the same pcap as the sniffer: each datagram wrapped by scapy in Ether/IP/UDP (RFC 791,
RFC 768; linktype 1, all-zero MACs as on Linux ``lo``) with the time it was sent. What it cannot
see: datagrams from sockets the lab did not open (aiortc's, another process's), and the kernel's
own view (a datagram the kernel drops is still recorded, as it was sent).

On the event loop a datagram costs one list append (about 2 µs measured); the frames are built
(:func:`~.pcap.udp_frame`) and written in a worker thread, in batches of ``batch`` datagrams and
at :meth:`SocketTap.stop` (about 10 µs a datagram), so a short call pays almost nothing while it
runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from e2ee_lab.transport import udp

from .pcap import Address, PcapSink

DEFAULT_BATCH = 4096  # datagrams buffered before a worker thread writes them


class SocketTap:
    """Records every datagram the lab's sockets send into a pcap file.

    Args:
        path: the pcap to create (replaced if it exists).
        ports: keep only datagrams from or to one of these UDP ports (None: every datagram).
        batch: how many datagrams to buffer before handing them to the writer thread.

    Counters: ``packets`` (datagrams recorded), ``filtered`` (left out by ``ports``).
    """

    def __init__(
        self, path: str | os.PathLike, *, ports: Iterable[int] | None = None,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        self.path = os.fspath(path)
        self.ports = frozenset(ports) if ports is not None else None
        self.batch = batch
        self.packets = 0
        self.filtered = 0
        self._buffer: list[tuple[float, bytes, Address, Address]] = []
        self._lock = threading.Lock()
        self._sink: PcapSink | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._sink is not None

    def start(self) -> None:
        """Create the pcap and register with :func:`~e2ee_lab.transport.udp.add_tap`."""
        if self.running:
            return
        self._sink = PcapSink(self.path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e2ee-lab-tap")
        udp.add_tap(self)

    def __call__(self, data: bytes, src: Address, dst: Address) -> None:
        """The tap callback: note one sent datagram (called by ``open_udp`` sockets)."""
        if self.ports is not None and src[1] not in self.ports and dst[1] not in self.ports:
            self.filtered += 1
            return
        with self._lock:
            self._buffer.append((time.time(), data, src, dst))
            self.packets += 1
            full = len(self._buffer) >= self.batch
        if full:
            self._hand_over()

    def _hand_over(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch and self._executor is not None:
            self._pending.append(self._executor.submit(self._write, batch))

    def _write(self, batch: list[tuple[float, bytes, Address, Address]]) -> None:
        sink = self._sink
        if sink is None:
            return
        for sent_at, data, src, dst in batch:
            sink.write_datagram(data, src, dst, sent_at)

    def stop(self) -> int:
        """Unregister, write what is buffered, close the file; returns ``packets``.

        Re-raises an error the writer thread met (e.g. the disk filled up).
        """
        if not self.running:
            return self.packets
        udp.remove_tap(self)
        self._hand_over()
        assert self._executor is not None and self._sink is not None
        self._executor.shutdown(wait=True)
        errors = [f.exception() for f in self._pending if f.exception() is not None]
        self._sink.close()
        self._sink, self._executor, self._pending = None, None, []
        if errors:
            raise errors[0]
        return self.packets
