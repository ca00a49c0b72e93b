"""Capture: scapy live capture of a call on loopback, the socket-tap fallback, pcap files.

:class:`Capture` (in :mod:`.live`) records a call's UDP datagrams to a pcap, sniffing ``lo``
with scapy where permitted and falling back to the socket tap (:mod:`.tap`) with a one-line
note where not. :mod:`.pcap` reads and writes the files and holds the layer's errors
(:class:`CaptureError` family). The offline analysis of a capture with the SFU's key log is
:mod:`e2ee_lab.analysis.offline`.
"""

from .live import MODES, Capture, CaptureMode, Sniffer, bpf_filter, sniff_problem
from .pcap import (
    LINKTYPE_ETHERNET,
    CaptureError,
    CaptureNotPermitted,
    CaptureUnavailable,
    Datagram,
    KeyLogMissing,
    PcapContents,
    PcapFormatError,
    PcapSink,
    read_pcap,
    udp_frame,
    write_datagrams,
)
from .tap import SocketTap

__all__ = [
    "LINKTYPE_ETHERNET",
    "MODES",
    "Capture",
    "CaptureError",
    "CaptureMode",
    "CaptureNotPermitted",
    "CaptureUnavailable",
    "Datagram",
    "KeyLogMissing",
    "PcapContents",
    "PcapFormatError",
    "PcapSink",
    "SocketTap",
    "Sniffer",
    "bpf_filter",
    "read_pcap",
    "sniff_problem",
    "udp_frame",
    "write_datagrams",
]
