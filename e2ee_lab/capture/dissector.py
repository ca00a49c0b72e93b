"""The SFrame Wireshark dissector shipped with the package, and the tshark command that loads it.

``sframe.lua`` (package data beside this module) dissects the SFrame payload descriptor of
draft-ietf-avtcore-rtp-sframe-02 §4 (S, E, T, reserved bits) and the SFrame header it carries
(RFC 9605 §4.3: config byte, KID, CTR, header length), marks the tag of the last fragment, and
flags empty fragments, truncated headers and non-minimal KID/CTR encodings with expert info. It
reads plaintext RTP: a capture of what the SFU sees (the decrypted pcap of
:mod:`e2ee_lab.analysis.offline`), or any RTP whose SRTP has been removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path


def sframe_dissector() -> Path:
    """Path of the installed ``sframe.lua``."""
    return Path(str(resources.files("e2ee_lab.capture") / "sframe.lua"))


def tshark_sframe_args(
    pcap: str | Path, *, rtp_ports: Iterable[int], payload_types: Iterable[int], tag_length: int = 16
) -> list[str]:
    """tshark arguments that read ``pcap`` with the dissector on the given UDP ports and PTs."""
    args = ["-X", f"lua_script:{sframe_dissector()}", "-r", str(pcap),
            "-o", f"sframe.tag_length:{tag_length}"]
    for port in rtp_ports:
        args += ["-d", f"udp.port=={port},rtp"]
    for pt in payload_types:
        args += ["-d", f"rtp.pt=={pt},sframe"]
    return args
