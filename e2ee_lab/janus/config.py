"""Janus's configuration for the lab: generated per run into a private directory, loopback only.

:func:`render_config` returns the text of the three files Janus reads (libconfig ``.jcfg``) and
:func:`write_config` writes them into a run directory; nothing under ``/etc/janus`` is read.
What the files say, and why:

- ``janus.jcfg``: ``configs_folder`` is the run directory; every plugin but VideoRoom, every
  transport but HTTP, every logger and every event handler is disabled (by file name, from the
  library folders as installed); no STUN or TURN server, ``ignore_mdns`` and ``ice_enforce_list``
  naming only the loopback interface (Janus and libnice skip ``IFF_LOOPBACK`` interfaces before
  that list is read, unless :mod:`e2ee_lab.janus.shim` clears the flag); a fresh random
  ``admin_secret``.
- ``janus.transport.http.jcfg``: the Janus API on 127.0.0.1 (``ip``) and the admin API on
  127.0.0.1 (``admin_ip``), plain HTTP, no HTTPS.
- ``janus.plugin.videoroom.jcfg``: no static room; an ``admin_key`` (random) so rooms are created
  over the API only by whoever holds it.

Janus runs only inside a private network namespace that has nothing but ``lo``
(:mod:`e2ee_lab.janus.server`); the addresses above are a second fence, not the first.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PLUGIN = "libjanus_videoroom.so"
TRANSPORT = "libjanus_http.so"
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu/janus", "/usr/lib/aarch64-linux-gnu/janus", "/usr/lib/janus",
            "/opt/janus/lib/janus")
MAIN_FILE = "janus.jcfg"
HTTP_FILE = "janus.transport.http.jcfg"
VIDEOROOM_FILE = "janus.plugin.videoroom.jcfg"
#: folders VideoRoom may never record into (Janus's ``protected_folders``)
PROTECTED = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr")
_SAFE = re.compile(r"^[A-Za-z0-9_./,:+ -]*$")  # no quote, backslash, newline or other control


@dataclass(frozen=True)
class JanusConfig:
    """What one Janus run is configured with.

    ``run_dir``: where the configuration (and the log) go. ``lib_dir``: the folder holding Janus's
    ``plugins/``, ``transports/``, ``events/`` and ``loggers/``. ``interfaces``: the
    ``ice_enforce_list`` (the interfaces Janus may gather candidates on). ``admin_secret`` and
    ``admin_key``: random per run unless given.
    """

    run_dir: Path
    lib_dir: Path
    http_port: int = 8088
    admin_port: int = 7088
    interfaces: str = "lo"
    debug_level: int = 4
    admin_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    admin_key: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def main_file(self) -> Path:
        return Path(self.run_dir) / MAIN_FILE

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/janus"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}/admin"


def find_lib_dir() -> Path | None:
    """The installed Janus library folder (the one whose ``plugins/`` holds VideoRoom), or None."""
    for candidate in LIB_DIRS:
        if (Path(candidate) / "plugins" / PLUGIN).exists():
            return Path(candidate)
    return None


def _quote(value: str | Path) -> str:
    """A libconfig string literal; only plain path/name characters are allowed (no escaping games)."""
    text = str(value)
    if not _SAFE.match(text):
        raise ValueError(f"refusing a configuration value with unusual characters: {text!r}")
    return f'"{text}"'


def _libraries(folder: Path) -> list[str]:
    """The loadable module file names in ``folder`` (``*.so``; the versioned links are not loaded)."""
    return sorted(p.name for p in folder.glob("*.so")) if folder.is_dir() else []


def _disabled(folder: Path, keep: str | None) -> str:
    return _quote(",".join(name for name in _libraries(folder) if name != keep))


def render_config(config: JanusConfig) -> dict[str, str]:
    """The text of each configuration file, by file name (pure apart from listing ``lib_dir``).

    Raises:
        ValueError: a value with characters outside ``[A-Za-z0-9_./,:+ -]``, or a port out of range.
    """
    for port in (config.http_port, config.admin_port):
        if not 1 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
    lib = Path(config.lib_dir)
    protected = ", ".join(_quote(p) for p in PROTECTED)
    main = f"""general: {{
\tconfigs_folder = {_quote(config.run_dir)}
\tplugins_folder = {_quote(lib / "plugins")}
\ttransports_folder = {_quote(lib / "transports")}
\tevents_folder = {_quote(lib / "events")}
\tloggers_folder = {_quote(lib / "loggers")}
\tdebug_level = {int(config.debug_level)}
\tadmin_secret = {_quote(config.admin_secret)}
\tserver_name = "e2ee-lab"
\tsession_timeout = 60
\tprotected_folders = [ {protected} ]
}}
certificates: {{
}}
media: {{
}}
nat: {{
\tnice_debug = false
\tignore_mdns = true
\tice_enforce_list = {_quote(config.interfaces)}
}}
plugins: {{
\tdisable = {_disabled(lib / "plugins", PLUGIN)}
}}
transports: {{
\tdisable = {_disabled(lib / "transports", TRANSPORT)}
}}
loggers: {{
\tdisable = {_disabled(lib / "loggers", None)}
}}
events: {{
\tbroadcast = false
\tdisable = {_disabled(lib / "events", None)}
}}
"""
    http = f"""general: {{
\tjson = "compact"
\tbase_path = "/janus"
\thttp = true
\tport = {int(config.http_port)}
\tip = "127.0.0.1"
\thttps = false
}}
admin: {{
\tadmin_base_path = "/admin"
\tadmin_http = true
\tadmin_port = {int(config.admin_port)}
\tadmin_ip = "127.0.0.1"
\tadmin_https = false
}}
cors: {{
}}
"""
    videoroom = f"""general: {{
\tadmin_key = {_quote(config.admin_key)}
\tlock_rtp_forward = true
}}
"""
    return {MAIN_FILE: main, HTTP_FILE: http, VIDEOROOM_FILE: videoroom}


def write_config(config: JanusConfig) -> Path:
    """Write the files of :func:`render_config` into ``config.run_dir`` (created, mode 0700);
    returns the path of ``janus.jcfg``."""
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir.chmod(0o700)
    for name, text in render_config(config).items():
        (run_dir / name).write_text(text, encoding="utf-8")
    return config.main_file
