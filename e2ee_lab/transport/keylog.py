"""The SRTP key log: every leg's DTLS-SRTP keys as JSON, in the spirit of SSLKEYLOGFILE.

Wireshark can decrypt TLS when the client writes its secrets to ``SSLKEYLOGFILE``; it cannot
decrypt DTLS-SRTP that way, so the lab's SFU (the DTLS peer of every leg, hence the holder of
every leg's keys) writes the keys RFC 5764 §4.2 exported, and the offline analysis unprotects a
capture with them. One entry per leg names both UDP endpoints, the SRTP protection profile and
the master key and salt each side writes with (``client_write``/``server_write``, RFC 5764 §4.2
names), hex-encoded. The file looks like this::

    {"format": "e2ee-lab-srtp-keylog", "version": 1, "legs": [
      {"leg": "alice", "profile": "AEAD_AES_128_GCM",
       "client": {"ip": "127.0.0.1", "port": 40001}, "server": {"ip": "127.0.0.1", "port": 40002},
       "client_write": {"master_key": "<32 hex>", "master_salt": "<24 hex>"},
       "server_write": {"master_key": "<32 hex>", "master_salt": "<24 hex>"}}]}

A packet's sender decides its key: packets from the client endpoint were protected with
``client_write``. :func:`receive_session` builds the inbound session that unprotects one sender's
packets (libsrtp keys are direction-agnostic, so both directions of a capture use inbound
sessions); :func:`sessions_for` builds a live endpoint's (tx, rx) pair. Malformed files raise
:class:`~e2ee_lab.transport.errors.KeyLogError`.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import KeyLogError
from .events import HandshakeCompleted
from .srtp import SRTPMasterKey, SRTPProfile, SRTPSession, SRTPSessionPair, session_pair

FORMAT = "e2ee-lab-srtp-keylog"
VERSION = 1
Address = tuple[str, int]


@dataclass(frozen=True)
class KeyLogEntry:
    """The keys of one leg: who is the DTLS client and server, and what each writes with."""

    leg: str  # a label for the leg (participant name)
    profile: SRTPProfile  # negotiated protection profile
    client: Address  # DTLS client's (ip, port)
    server: Address  # DTLS server's (ip, port)
    client_write: SRTPMasterKey  # key and salt protecting client -> server packets
    server_write: SRTPMasterKey  # key and salt protecting server -> client packets

    def __post_init__(self) -> None:
        try:
            self.client_write.check(self.profile)
            self.server_write.check(self.profile)
        except ValueError as exc:
            raise KeyLogError(f"leg {self.leg!r}: {exc}") from exc

    @classmethod
    def from_handshake(
        cls, leg: str, keys: HandshakeCompleted, *, local_addr: Address, remote_addr: Address
    ) -> KeyLogEntry:
        """The entry one endpoint can write after its handshake (addresses as it saw them)."""
        if keys.role == "client":
            client, server = local_addr, remote_addr
        else:
            client, server = remote_addr, local_addr
        return cls(
            leg=leg,
            profile=keys.profile,
            client=_address(client),
            server=_address(server),
            client_write=keys.client_write_key,
            server_write=keys.server_write_key,
        )

    def write_key_of(self, sender: Address) -> SRTPMasterKey:
        """The key ``sender`` protects with; KeyLogError if it is neither endpoint of the leg."""
        sender = _address(sender)
        if sender == self.client:
            return self.client_write
        if sender == self.server:
            return self.server_write
        raise KeyLogError(f"{sender} is not an endpoint of leg {self.leg!r}")

    def matches(self, src: Address, dst: Address) -> bool:
        """True if a datagram ``src -> dst`` travelled on this leg (either direction)."""
        pair = {_address(src), _address(dst)}
        return pair == {self.client, self.server}

    def to_json(self) -> dict:
        """The JSON object of this entry (hex keys)."""
        return {
            "leg": self.leg,
            "profile": self.profile.value,
            "client": {"ip": self.client[0], "port": self.client[1]},
            "server": {"ip": self.server[0], "port": self.server[1]},
            "client_write": _key_json(self.client_write),
            "server_write": _key_json(self.server_write),
        }

    @classmethod
    def from_json(cls, obj: object) -> KeyLogEntry:
        """Parse one entry; KeyLogError naming the missing or bad field."""
        try:
            return cls(
                leg=str(obj["leg"]),
                profile=SRTPProfile(obj["profile"]),
                client=_address((obj["client"]["ip"], obj["client"]["port"])),
                server=_address((obj["server"]["ip"], obj["server"]["port"])),
                client_write=_key_from_json(obj["client_write"]),
                server_write=_key_from_json(obj["server_write"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, KeyLogError):
                raise
            raise KeyLogError(f"bad key log entry: {type(exc).__name__}: {exc}") from exc


def receive_session(entry: KeyLogEntry, *, sender: Address, window_size: int = 1024) -> SRTPSession:
    """An inbound session that unprotects the packets ``sender`` sent on this leg (offline use)."""
    return SRTPSession(
        profile=entry.profile,
        key=entry.write_key_of(sender),
        direction="inbound",
        window_size=window_size,
    )


def sessions_for(
    entry: KeyLogEntry, *, local: Address, allow_repeat_tx: bool = False
) -> SRTPSessionPair:
    """The (tx, rx) sessions of the endpoint at ``local``: protect with its key, read the peer's."""
    local = _address(local)
    if local not in (entry.client, entry.server):
        raise KeyLogError(f"{local} is not an endpoint of leg {entry.leg!r}")
    remote = entry.server if local == entry.client else entry.client
    return session_pair(
        entry.profile,
        local_key=entry.write_key_of(local),
        remote_key=entry.write_key_of(remote),
        allow_repeat_tx=allow_repeat_tx,
    )


def find_entry(entries: Iterable[KeyLogEntry], src: Address, dst: Address) -> KeyLogEntry | None:
    """The entry of the leg a datagram ``src -> dst`` travelled on, or None."""
    return next((entry for entry in entries if entry.matches(src, dst)), None)


def dumps(entries: Iterable[KeyLogEntry]) -> str:
    """The key log as a JSON string."""
    body = {"format": FORMAT, "version": VERSION, "legs": [e.to_json() for e in entries]}
    return json.dumps(body, indent=2)


def loads(text: str) -> list[KeyLogEntry]:
    """Parse a key log JSON string; KeyLogError if it is not one."""
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyLogError(f"key log is not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise KeyLogError(f"not an {FORMAT} file")
    if body.get("version") != VERSION:
        raise KeyLogError(f"key log version {body.get('version')!r}, this reader knows {VERSION}")
    legs = body.get("legs")
    if not isinstance(legs, list):
        raise KeyLogError("key log has no 'legs' list")
    return [KeyLogEntry.from_json(leg) for leg in legs]


def write_keylog(path: str | os.PathLike, entries: Iterable[KeyLogEntry]) -> None:
    """Write the key log to ``path`` (created or replaced, readable by the owner only)."""
    text = dumps(entries) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_keylog(path: str | os.PathLike) -> list[KeyLogEntry]:
    """Read a key log written by :func:`write_keylog`.

    Raises:
        KeyLogError: not UTF-8 text or not a key log.  OSError: the file cannot be read.
    """
    with open(path, encoding="utf-8") as handle:
        try:
            text = handle.read()
        except UnicodeDecodeError as exc:
            raise KeyLogError(f"{os.fspath(path)} is not a key log: not UTF-8 text ({exc.reason})") from None
    return loads(text)


def _address(addr: object) -> Address:
    if not isinstance(addr, (tuple, list)) or len(addr) != 2:
        raise KeyLogError(f"an address is (ip, port), got {addr!r}")
    ip, port = addr
    if not isinstance(ip, str):
        raise KeyLogError(f"ip must be a string, got {ip!r}")
    try:
        ipaddress.ip_address(ip)
    except ValueError as exc:
        raise KeyLogError(f"{ip!r} is not an IP address") from exc
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise KeyLogError(f"port {port!r} is not 1..65535")
    return (str(ip), port)


def _key_json(key: SRTPMasterKey) -> dict[str, str]:
    return {"master_key": key.key.hex(), "master_salt": key.salt.hex()}


def _key_from_json(obj: dict) -> SRTPMasterKey:
    return SRTPMasterKey.from_hex(obj["master_key"], obj["master_salt"])
