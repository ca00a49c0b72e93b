"""Shared test helpers: test vectors live as JSON in ``tests/data/`` and are read through here; the
interfaces besides ``lo``; the command line as a terminal starts it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"

#: ``e2ee-lab`` as a terminal starts it, Ctrl-C raising KeyboardInterrupt: a command started from a
#: background job of a script inherits SIGINT ignored (POSIX shells ignore it in asynchronous lists
#: without job control), and then no Ctrl-C could reach it, whatever the call does
AS_FROM_A_TERMINAL = [sys.executable, "-c", "import runpy, signal, sys; signal.signal(signal.SIGINT, "
                      "signal.default_int_handler); sys.argv[0] = 'e2ee-lab'; runpy.run_module('e2ee_lab.cli', "
                      "run_name='__main__')"]


def load_vectors(name: str) -> Any:
    """Load ``tests/data/<name>`` (``.json`` may be omitted) and return the parsed JSON."""
    path = DATA / (name if name.endswith(".json") else f"{name}.json")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def other_interfaces() -> dict[str, list[str]]:
    """Every network device besides ``lo`` that is not down, with its IPv4 and non-link-local IPv6
    addresses (the kernel's devices, not libpcap's pseudo-devices such as any or nflog)."""
    from scapy.arch import get_if_addr, in6_getifaddr

    def up(iface: str) -> bool:
        state = Path(f"/sys/class/net/{iface}/operstate")
        return not state.exists() or state.read_text().strip() != "down"

    v6 = [(addr, iface) for addr, scope, iface in in6_getifaddr() if not addr.startswith("fe80")]
    return {i: [a for a in [get_if_addr(i)] if a != "0.0.0.0"] + [a for a, at in v6 if at == i]
            for i in sorted(os.listdir("/sys/class/net")) if i != "lo" and up(i)}
