"""The loopback shim: a 20-line ``LD_PRELOAD`` library that lets Janus gather candidates on ``lo``.

Janus and libnice skip every interface flagged ``IFF_LOOPBACK`` when they gather ICE host
candidates (Janus 1.1.2 ``src/ice.c``, ``janus_ice_setup_local``; libnice
``nice_interfaces_get_local_ips(FALSE)``), and no setting changes it: ``ice_enforce_list = "lo"``
is applied after that check. Inside a private network namespace ``lo`` is the only interface, so
Janus would offer no candidate and ``configure`` would fail with 490 "Error setting ICE locally".
``loopback_shim.c`` wraps the C library's ``getifaddrs()`` and clears ``IFF_LOOPBACK`` in its
result; set in ``LD_PRELOAD`` of the Janus process only (never of this Python process), every
candidate Janus offers becomes ``127.0.0.1 typ host``.

The alternative, an extra interface carrying a 127.x address inside the namespace, was tried and
rejected: the ``dummy`` link type is missing from kernels built without it ("Unknown device
type"); with a bridge or a veth pair holding 127.0.0.2/8 instead, Janus does offer
``127.0.0.2 typ host``, but the aiortc side's connectivity checks to it go unanswered and no
check ever leaves Janus, so ICE never completes (also with ``route_localnet=1``). With the shim
Janus reports the PeerConnection up about 40 ms after the offer (ICE about 21 ms).

:func:`build_shim` compiles the C file with the system C compiler (``cc``, or ``$CC``) at first use
into a cache directory (``$XDG_CACHE_HOME/e2ee-lab`` or ``~/.cache/e2ee-lab``), named by the
SHA-256 of the source so an edited source is rebuilt; the binary is never part of the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import JanusUnavailable, ShimBuildFailed

SOURCE = Path(__file__).with_name("loopback_shim.c")
BUILD_TIMEOUT = 60.0  # seconds the compiler may take


def cache_dir() -> Path:
    """Where built shims are kept: ``$XDG_CACHE_HOME/e2ee-lab`` or ``~/.cache/e2ee-lab``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "e2ee-lab"


def compiler() -> str | None:
    """The C compiler to use (``$CC``, else ``cc``, ``gcc`` or ``clang`` on the PATH), or None."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    return next((found for name in names if (found := shutil.which(name))), None)


def shim_path(cache: Path | None = None) -> Path:
    """The path the shim built from the current source has (built or not)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    return (cache or cache_dir()) / f"janus-loopback-{digest}.so"


def build_shim(cache: Path | None = None) -> Path:
    """The shim's path, compiling it first if this source was never built here.

    Raises:
        JanusUnavailable: no C compiler is installed.
        ShimBuildFailed: the compiler failed (its output is in the message).
    """
    target = shim_path(cache)
    if target.exists():
        return target
    cc = compiler()
    if cc is None:
        raise JanusUnavailable("no C compiler to build the loopback shim (apt-get install gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        cmd = [cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(built), str(SOURCE), "-ldl"]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ShimBuildFailed(f"{cc} took more than {BUILD_TIMEOUT} s") from None
        if done.returncode != 0:
            raise ShimBuildFailed(f"{cc} failed: {done.stderr.decode(errors='replace').strip()}")
        os.replace(built, target)  # atomic: a concurrent build leaves one complete file
    return target
