"""The messages between an aiortc call's process and its participant workers, and their checks.

A worker (:mod:`e2ee_lab.webrtc.worker`) talks to the call's process (:mod:`e2ee_lab.webrtc.workers`)
over one ``AF_UNIX`` stream socket. Every message is a frame: one kind byte, a 4-byte big-endian
length, the body. Kind ``J`` is a JSON object with an ``op`` and that op's fields; kind ``P`` is a
pickle and flows one way only, from a worker to the call (its participants' records at the end:
the call's harness reads its own workers' results, as :mod:`e2ee_lab.call.workers` does).

Everything a worker reads comes from the SFU's side of the call and is treated as adversarial:
:meth:`Link.receive` never raises on what it reads. A frame of another kind, too long, not JSON,
of an unknown op, with a missing or mistyped field is read to its end, dropped and counted by
reason in ``Link.dropped`` (``signal_pickle_refused``, ``signal_oversize``, ``signal_not_json``,
``signal_unknown_op``, ``signal_bad_field``); the stream stays in step because every frame carries
its length. A frame whose kind byte is neither means the stream is out of step (it is not a
header, so its length is not one either): it is counted (``signal_broken_stream``) and the link
ends there, as if the other end had closed. Roster updates (:class:`~e2ee_lab.crypto.keys.RosterUpdate`) travel as JSON and are
rebuilt through the key layer's own constructors, which validate every entry
(:func:`decode_roster` turns their errors into :class:`~e2ee_lab.webrtc.errors.MalformedMessage`);
key-distribution messages stay opaque bytes (hex), for the member to authenticate.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import struct
from collections import Counter
from typing import Any

from e2ee_lab.crypto.keys import KeyAgreementError, RosterUpdate
from e2ee_lab.crypto.keys.group_code import RosterEntry
from e2ee_lab.crypto.keys.identity import Curve, PublicIdentity
from e2ee_lab.crypto.keys.roster import Change

from .errors import MalformedMessage

HEADER = struct.Struct(">cI")  # kind, body length
JSON, PICKLE = b"J", b"P"
MAX_JSON = 1 << 20  # bytes: an SDP of a big room is tens of kB
CHUNK = 1 << 16
Number = (int, float)

#: the ops a worker accepts from the call, with each field's type(s); ``None`` allows null
TO_WORKER: dict[str, dict[str, Any]] = {
    "setup": {"indices": list, "mode": str, "width": int, "height": int, "fps": int, "frames": dict,
              "seed": int, "key_policy": dict, "rtp_sframe": (str, type(None)), "reproducible_keys": bool,
              "encode": str, "t0": Number, "curve": str},
    "offer": {"name": str, "sdp": str},
    "joined": {"name": str, "index": int},
    "roster": {"name": str, "update": dict},
    "key_message": {"name": str, "data": str},
    "keys?": {"name": str, "epoch": int, "members": list},
    "arm": {"name": str, "members": dict},
    "start": {"at": Number},
    "finish": {},
}
#: the ops the call accepts from a worker
TO_CALL: dict[str, dict[str, Any]] = {
    "ready": {"names": list, "monotonic": Number, "loop_time": Number},
    "answer": {"name": str, "sdp": str, "curve": str, "identity": str, "session": str},
    "state": {"name": str, "state": str},
    "relay": {"name": str, "recipient": int, "data": str},
    "keys": {"name": str, "epoch": int, "members": list, "ready": bool},
    "error": {"reason": str},
}


def encode_json(op: str, **fields: Any) -> bytes:
    """One ``J`` frame."""
    body = json.dumps({"op": op, **fields}, separators=(",", ":")).encode()
    return HEADER.pack(JSON, len(body)) + body


def encode_pickle(value: Any) -> bytes:
    """One ``P`` frame (a worker's results)."""
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(PICKLE, len(body)) + body


def parse_json(body: bytes, ops: dict[str, dict[str, Any]]) -> tuple[str, dict]:
    """``(op, fields)`` of a ``J`` body whose op is in ``ops`` with every field of its type.

    Raises:
        MalformedMessage: not JSON (``signal_not_json``), not an object with a known op
            (``signal_unknown_op``), a field missing or of another type (``signal_bad_field``).
    """
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedMessage(f"a {len(body)}-byte message is not JSON", "signal_not_json") from None
    if not isinstance(message, dict) or message.get("op") not in ops:
        op = message.get("op") if isinstance(message, dict) else None
        raise MalformedMessage(f"unknown op {str(op)[:40]!r}", "signal_unknown_op")
    op = message.pop("op")
    for name, kind in ops[op].items():
        value = message.get(name)
        if name not in message or not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, Number)):
            raise MalformedMessage(f"{op}: field {name!r} missing or not {kind}", "signal_bad_field")
    return op, message


class Link:
    """One end of the socket: frames out (:meth:`send`, :meth:`send_result`) and in (:meth:`receive`).

    Args:
        reader, writer: the asyncio stream pair of the socket.
        accepts: the ops this end reads (:data:`TO_WORKER` or :data:`TO_CALL`).
        pickles: read ``P`` frames too (the call's end only).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 accepts: dict[str, dict[str, Any]], pickles: bool = False) -> None:
        self.reader, self.writer, self.accepts, self.pickles = reader, writer, accepts, pickles
        self.dropped: Counter[str] = Counter()

    def send(self, op: str, **fields: Any) -> None:
        """Queue one JSON message (written as the loop gets to it)."""
        self.writer.write(encode_json(op, **fields))

    async def send_result(self, value: Any) -> None:
        """Write one pickled message and wait until it is handed to the kernel."""
        self.writer.write(encode_pickle(value))
        await self.writer.drain()

    async def receive(self) -> tuple[str, Any] | None:
        """The next valid message: ``(op, fields)``, or ``("result", value)`` for a pickle (when
        ``pickles``); None when the other end closed or the stream broke. Invalid frames are
        dropped and counted."""
        while True:
            try:
                kind, length = HEADER.unpack(await self.reader.readexactly(HEADER.size))
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if kind not in (JSON, PICKLE):  # not a header: the lengths can no longer be trusted
                self.dropped["signal_broken_stream"] += 1
                return None
            if (kind == PICKLE and not self.pickles) or (kind == JSON and length > MAX_JSON):
                self.dropped["signal_pickle_refused" if kind == PICKLE else "signal_oversize"] += 1
                if not await self._skip(length):
                    return None
                continue
            try:
                body = await self.reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if kind == PICKLE:
                return "result", pickle.loads(body)
            try:
                return parse_json(body, self.accepts)
            except MalformedMessage as err:
                self.dropped[err.reason] += 1

    async def _skip(self, length: int) -> bool:
        while length > 0:
            try:
                chunk = await self.reader.read(min(CHUNK, length))
            except ConnectionError:
                return False
            if not chunk:
                return False
            length -= len(chunk)
        return True

    async def linger(self, timeout: float) -> None:
        """After this end's last message: half-close, then read and drop whatever still arrives
        until the other end closes (or ``timeout`` s), so that the loop lives until the peer has it all.

        Closing at once can lose the message's end: ``drain()`` waits only down to asyncio's
        low-water mark, and bytes still buffered when the loop ends are never sent; a Unix stream
        socket closed with unread data also resets its peer, whose StreamReader raises the reset
        before it hands over what it had buffered. Under load the call lost a worker's results so
        (1 call in 4, then 1 in 10, with busy loops on both cores; none in 12 since)."""
        if self.writer.can_write_eof():
            self.writer.write_eof()

        async def until_closed() -> None:
            while await self.reader.read(CHUNK):
                pass

        try:
            await asyncio.wait_for(until_closed(), timeout)
        except (asyncio.TimeoutError, ConnectionError):
            pass

    def close(self) -> None:
        self.writer.close()


# --- roster updates as JSON ------------------------------------------------------------------------


def encode_roster(update: RosterUpdate) -> dict:
    """A roster update as JSON fields (bytes as hex)."""
    return {"epoch": update.epoch, "change": update.change.value, "subject": update.subject,
            "members": [{"index": e.index, "user": e.user, "curve": e.identity.curve.value,
                         "identity": bytes(e.identity).hex(), "session": e.session.hex()} for e in update.members],
            "previous_code": update.previous_code.hex() if update.previous_code is not None else None}


def decode_roster(fields: dict) -> RosterUpdate:
    """The :class:`RosterUpdate` of :func:`encode_roster`'s fields, every entry validated by the key
    layer's constructors (index range, user id, identity key on its curve, session length).

    Raises:
        MalformedMessage: any field missing, mistyped or refused (``signal_bad_roster``).
    """
    try:
        epoch, subject, previous = fields["epoch"], fields["subject"], fields["previous_code"]
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not (subject is None or isinstance(subject, int)):
            raise TypeError("epoch and subject must be integers")
        if not isinstance(fields["members"], list):
            raise TypeError("members must be a list")
        members = tuple(RosterEntry(e["index"], e["user"], PublicIdentity(Curve(e["curve"]), bytes.fromhex(e["identity"])),
                                    bytes.fromhex(e["session"])) for e in fields["members"])
        return RosterUpdate(epoch, Change(fields["change"]), subject, members,
                            None if previous is None else bytes.fromhex(previous))
    except (TypeError, ValueError, KeyError, AttributeError, KeyAgreementError) as err:
        raise MalformedMessage(f"roster update refused: {type(err).__name__}: {err}"[:200], "signal_bad_roster") from None


def decode_hex(text: str, what: str) -> bytes:
    """``bytes.fromhex(text)``; MalformedMessage (``signal_bad_field``) for anything else."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise MalformedMessage(f"{what} is not hex", "signal_bad_field") from None
