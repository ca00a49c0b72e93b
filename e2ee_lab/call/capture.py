"""Capturing a call: its pcap from the first ClientHello to the last close_notify, and the frame keys.

:func:`~e2ee_lab.call.run.run_call_async` with ``capture="auto"|"sniff"|"tap"`` wraps the whole call in a
:class:`CallCapture`: it starts a :class:`~e2ee_lab.capture.Capture` before the first leg opens,
so every DTLS handshake (RFC 6347, with the RFC 5764 ``use_srtp`` extension) is in the file, and
stops it after the last leg has sent its close_notify alert (RFC 5246 §7.2.1). Where the sniffer
ran it saw every UDP datagram on ``lo``, other programs' too; :meth:`CallCapture.finish` keeps
those whose source or destination port belongs to one of the call's sockets (the SFU's legs, the
participants', the garbage injector's) and counts the rest as ``foreign``. It filters by port
only, so a datagram of the call between non-loopback addresses would stay in the file and make
``all_loopback`` false. The file is ``capture.pcap`` in the call's output directory (a fresh
temporary directory when the call has none).

:class:`FrameKeys` is the other half of what an analysis of the capture needs for the receivers'
view: the SFrame base keys (RFC 9605 §4.4, §5.1 sender keys; each serves two KIDs, ``kid = epoch
<< 12 | kind << 8 | member``, :mod:`e2ee_lab.crypto.keys`) that the members of an ``e2ee`` or
``clear-prefix`` call held at its end. They are the members' secret: no key message carried them
in the clear and the SFU never held them (the call checks it,
:attr:`~e2ee_lab.call.common.CallResult.key_holders`), unless the call was made with reproducible
keys: then they follow from the call's seed, and anyone who knows the seed, the SFU included,
recomputes them (``reproducible_keys`` in the file says which). ``e2ee-lab call`` writes them with
:func:`write_frame_keys` into ``OUT/frame-keys.json``, whose first field says what it is, the file
a lab uses to decrypt as a member. Malformed files raise :class:`FrameKeysError`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from e2ee_lab.capture import MODES as CAPTURE_MODES
from e2ee_lab.capture import Capture, CaptureMode, PcapSink, read_pcap
from e2ee_lab.config import scratch_dir
from e2ee_lab.crypto.keys import MEDIA_KINDS, kid_for
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext
from e2ee_lab.transport.errors import KeyLogError

CAPTURE_FILE = "capture.pcap"
FRAME_KEYS_FILE = "frame-keys.json"
FRAME_KEYS_FORMAT = "e2ee-lab-frame-keys"
FRAME_KEYS_VERSION = 2
FRAME_KEYS_NOTE = ("SECRET of the call's members: their SFrame base keys, drawn from the OS. No key message "
                   "carried them in the clear and the SFU never had them; keep them apart from the SFU's key log.")
FRAME_KEYS_NOTE_REPRODUCIBLE = ("The call's members' SFrame base keys, made with reproducible keys: they follow "
                                "from the call's seed, so anyone who knows the seed (the SFU included) "
                                "recomputes them. Fine for recordings and tests, never for a real call.")
LOOPBACK_IPS = ("127.0.0.1", "::1")


class FrameKeysError(KeyLogError):
    """A frame-key file or entry is malformed."""

    reason = "frame_keys_malformed"


# --- the members' frame keys ----------------------------------------------------------------------


@dataclass(frozen=True)
class FrameKey:
    """One member's SFrame base key for one epoch (it serves that member's audio and video KIDs)."""

    epoch: int  # key-agreement epoch
    member: int  # member index of the sender
    participant: str  # the sender's name
    base_key: bytes  # RFC 9605 §4.4.2 base key (the secret)

    @property
    def kids(self) -> dict[str, int]:
        """The SFrame KIDs its frames carry, per media kind."""
        return {kind: kid_for(self.epoch, self.member, kind) for kind in MEDIA_KINDS}


@dataclass(frozen=True)
class FrameKeys:
    """Every SFrame base key the members of a call held, their cipher suite, and whether the keys
    were reproducible (derived from the call's seed) rather than drawn from the OS.

    ``from_os`` names the members whose keys came from a random source even in a reproducible call
    (a browser page draws its keys with WebCrypto whatever the Python members do)."""

    suite: CipherSuite
    keys: tuple[FrameKey, ...]
    reproducible: bool = False
    from_os: tuple[int, ...] = ()

    def context(self) -> SFrameContext:
        """A receive-only SFrame context holding every key under both its KIDs (one per receiver:
        replay windows)."""
        context = SFrameContext(self.suite)
        for key in self.keys:
            for kid in key.kids.values():
                context.add_receive_key(kid, key.base_key)
        return context

    def to_json(self) -> dict:
        """The JSON object of :func:`write_frame_keys` (hex keys)."""
        note = FRAME_KEYS_NOTE_REPRODUCIBLE if self.reproducible else FRAME_KEYS_NOTE
        if self.reproducible and self.from_os:
            note += (f" Except member(s) {', '.join(map(str, self.from_os))}: their keys came from a random source "
                     "(WebCrypto), not from the seed.")
        return {"format": FRAME_KEYS_FORMAT, "version": FRAME_KEYS_VERSION, "note": note,
                "reproducible_keys": self.reproducible, "keys_from_os": list(self.from_os),
                "suite": self.suite.name,
                "keys": [{"epoch": k.epoch, "member": k.member, "participant": k.participant,
                          "kids": k.kids, "base_key": k.base_key.hex()} for k in self.keys]}

    @classmethod
    def from_json(cls, body: object) -> FrameKeys:
        """Parse :meth:`to_json` output; FrameKeysError naming what is wrong."""
        if not isinstance(body, dict) or body.get("format") != FRAME_KEYS_FORMAT:
            raise FrameKeysError(f"not an {FRAME_KEYS_FORMAT} file")
        if body.get("version") != FRAME_KEYS_VERSION:
            raise FrameKeysError(f"frame-key file version {body.get('version')!r}, "
                                 f"this reader knows {FRAME_KEYS_VERSION}")
        try:
            suite = CipherSuite[body["suite"]]
            keys = tuple(FrameKey(int(k["epoch"]), int(k["member"]), str(k["participant"]),
                                  bytes.fromhex(k["base_key"])) for k in body["keys"])
            kids = [{str(kind): int(kid) for kind, kid in k["kids"].items()} for k in body["keys"]]
            reproducible = body["reproducible_keys"]
            from_os = tuple(int(m) for m in body.get("keys_from_os", ()))
            for key in keys:
                key.kids  # noqa: B018  (ValueError for an epoch or member out of range)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FrameKeysError(f"bad frame-key file: {type(exc).__name__}: {exc}") from None
        if not isinstance(reproducible, bool):
            raise FrameKeysError(f"reproducible_keys must be true or false, not {reproducible!r}")
        for key, listed in zip(keys, kids):
            if listed != key.kids or len(key.base_key) != suite.nh:
                raise FrameKeysError(f"epoch {key.epoch} / member {key.member}: KIDs {listed} are not "
                                     f"{key.kids}, or a base key of {len(key.base_key)} bytes ({suite.name})")
        return cls(suite, keys, reproducible, from_os)


def call_frame_keys(people: Iterable) -> FrameKeys | None:
    """The frame keys the members among ``people`` (call participants) hold; None without members."""
    members = [p for p in people if getattr(p, "member", None) is not None]
    if not members:
        return None
    names = {p.member.index: p.name for p in members}
    held: dict[tuple[int, int], bytes] = {}
    for p in members:
        held.update(p.member.base_keys())
    keys = tuple(FrameKey(epoch, sender, names.get(sender, "?"), key) for (sender, epoch), key in sorted(held.items()))
    reproducible = any(getattr(p, "reproducible_keys", False) for p in members)
    return FrameKeys(members[0].member.suite, keys, reproducible)


def write_frame_keys(path: str | os.PathLike, keys: FrameKeys) -> None:
    """Write ``keys`` to ``path`` (created or replaced, readable by the owner only)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(keys.to_json(), indent=2) + "\n")


def read_frame_keys(path: str | os.PathLike) -> FrameKeys:
    """Read a file of :func:`write_frame_keys`; FileNotFoundError, or FrameKeysError if malformed."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FrameKeysError(f"frame-key file is not JSON: {exc}") from None
    return FrameKeys.from_json(body)


# --- the capture around a call --------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureInfo:
    """What the capture of a call holds (``CallResult.capture``, ``summary["capture"]``)."""

    path: Path  # the pcap
    backend: str  # "sniff" or "tap"
    note: str | None  # why "auto" fell back to the tap (None otherwise)
    datagrams: int  # UDP datagrams of the call in the file
    foreign: int  # datagrams of other programs the sniffer also saw, left out
    all_loopback: bool  # every datagram in the file between loopback addresses

    def summary(self) -> dict:
        """JSON-ready fields (the path as given)."""
        return {"file": self.path.name, "backend": self.backend, "note": self.note,
                "datagrams": self.datagrams, "foreign_left_out": self.foreign,
                "all_loopback": self.all_loopback, "bytes": self.path.stat().st_size}


def call_ports(sockets: Iterable[Mapping]) -> set[int]:
    """Every UDP port of a call's sockets (``CallResult.sockets`` rows: ``local``, ``remote``)."""
    ports = set()
    for row in sockets:
        for addr in (row.get("local"), row.get("remote")):
            if addr:
                ports.add(int(addr[1]))
    return ports


def keep_call_datagrams(path: str | os.PathLike, ports: set[int]) -> tuple[int, int, bool]:
    """Rewrite the pcap at ``path`` with only the datagrams from or to ``ports``, frames unchanged.

    Returns (datagrams kept, datagrams left out, every kept one between loopback addresses).
    """
    contents = read_pcap(path)
    kept = [d for d in contents.datagrams if d.src[1] in ports or d.dst[1] in ports]
    loopback = all(d.src[0] in LOOPBACK_IPS and d.dst[0] in LOOPBACK_IPS for d in kept)
    left_out = contents.records - len(kept)
    if left_out:
        _rewrite(Path(path), {d.no: d.time for d in kept}, contents.linktype)
    return len(kept), left_out, loopback


def _rewrite(path: Path, keep: dict[int, float], linktype: int) -> None:
    from scapy.utils import RawPcapReader

    partial = path.with_name(path.name + ".part")
    with PcapSink(partial, linktype=linktype) as sink:
        reader = RawPcapReader(os.fspath(path))
        try:
            for no, (data, _meta) in enumerate(reader, start=1):
                if no in keep:
                    sink.write_frame(data, keep[no])
        finally:
            reader.close()
    os.replace(partial, path)


class CallCapture:
    """The capture around one call (see the module docstring); ``mode="off"`` does nothing.

    Args:
        out: the call's output directory (None: a new temporary directory).
        mode: ``"auto"``, ``"sniff"``, ``"tap"`` or ``"off"`` (:class:`~e2ee_lab.capture.Capture`).

    Raises:
        ValueError: an unknown mode (at construction).
        CaptureNotPermitted, CaptureUnavailable: ``mode="sniff"`` where it cannot work (start).
    """

    def __init__(self, out: str | os.PathLike | None, mode: CaptureMode = "off") -> None:
        if mode not in CAPTURE_MODES:
            raise ValueError(f"capture must be one of {', '.join(CAPTURE_MODES)}, not {mode!r}")
        self.out = None if out is None else Path(out)
        self.mode = mode
        self._capture: Capture | None = None

    async def start(self) -> None:
        """Start capturing (before the first leg opens)."""
        if self.mode == "off":
            return
        directory = self.out or scratch_dir("e2ee-lab-capture-")
        directory.mkdir(parents=True, exist_ok=True)
        capture = Capture(directory / CAPTURE_FILE, mode=self.mode)
        await capture.__aenter__()
        self._capture = capture

    async def stop(self) -> None:
        """Stop capturing (after the last leg closed); idempotent."""
        if self._capture is not None:
            await asyncio.to_thread(self._capture.stop)

    async def finish(self, sockets: Iterable[Mapping]) -> CaptureInfo | None:
        """Keep the call's datagrams (:func:`keep_call_datagrams`); None when nothing was captured."""
        capture = self._capture
        if capture is None:
            return None
        await self.stop()
        kept, foreign, loopback = await asyncio.to_thread(
            keep_call_datagrams, capture.path, call_ports(sockets))
        return CaptureInfo(Path(capture.path), str(capture.backend), capture.note, kept, foreign,
                           loopback)
