"""The native participant's frame keys: the lab's group key agreement feeding libwebrtc's SFrame.

The native participant is a member like any other (:class:`~e2ee_lab.crypto.keys.Member`, run in
Python): it joins the roster with its user name, identity key and a session drawn for the call,
seals and opens key messages through the SFU's signalling relay, and holds its own base key and
every other member's per epoch (drawn from the OS unless the call asked for reproducible keys).
libwebrtc only gets base keys and KIDs (RFC 9605 §4.4.2 derives each KID's key and salt inside
it): :func:`plan_keys` compares what the member holds with what libwebrtc holds and returns the
changes, which the participant applies. The KIDs are the roster's,
``kid_for(epoch, member, kind)`` (:mod:`e2ee_lab.crypto.keys`).

Sending: one ``RTCRtpSFrameEncryptor`` per sender (libwebrtc refuses one encryptor on two
senders), each set to its kind's KID, so audio and video have their own key, salt and counter,
each counting from 0 (a new key does not reset libwebrtc's counter; the KID, hence the key,
changes with the epoch).

Receiving: one ``RTCRtpSFrameDecryptor`` per received stream, holding only the keys of the stream's
announced publisher for the stream's kind (:meth:`Member.receive_keys
<e2ee_lab.crypto.keys.Member.receive_keys>`). A frame under any other KID (another member's, or
the publisher's other kind: the SFU moving a frame into another stream) fails in libwebrtc with a
key-id error before decryption, so libwebrtc credits a frame to the member and kind its KID names,
as the lab's receivers do (attribution by KID; :func:`refusal_reason` counts such a frame as
``kid_stream_mismatch``). The same under either key policy: the naive one (the member's checks
off) keeps this participant's earlier behaviour, which already held one publisher's keys per stream.

Retirement. The member deletes an old epoch's keys ``switch_delay + grace`` after the epoch that
replaced it started; the participant removes them from libwebrtc's decryptors at its first key
synchronisation after that moment (one every :data:`~e2ee_lab.native.participant.KEY_SYNC` s), so
libwebrtc accepts a key at most that long past its deletion time. Retirement at a new-epoch frame
does NOT happen on libwebrtc's side: its decryptor, as a receiver's transform, reports frames it
refused (error events) but never which KID authenticated a frame, so the member never learns that
a sender switched. There a sender's older keys of a kind stay accepted until ``switch_delay +
grace`` after the epoch that replaced them started (10.1 s with the call's policy) plus at most one
synchronisation: in that window whoever holds them (a member who left) can inject frames as that
sender to libwebrtc, which the lab's members refuse once the sender's first new-epoch frame
authenticated. A call without rekey (the native call: everyone joins before media, the native
member last, so it holds only the current epoch's keys) leaves nothing old to accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from e2ee_lab.crypto.keys import KIDStreamMismatch, Member, kid_for, parse_kid
from e2ee_lab.crypto.sframe import AuthenticationFailed, MalformedHeader, UnknownKeyId

KINDS = ("audio", "video")
Stream = tuple[str, str]  # (publisher name, kind) of a stream the native participant receives
#: libwebrtc's decryptor error types -> the lab's drop counters (the same failures' reasons)
DECRYPT_ERRORS = {"authentication": AuthenticationFailed.reason, "keyID": UnknownKeyId.reason,
                  "syntax": MalformedHeader.reason}


def refusal_reason(error_type: str, kid: int | None, publisher: int | None, kind: str) -> str:
    """The lab's drop counter for a frame libwebrtc refused on the stream of member ``publisher``'s
    ``kind`` (None: not a member): a key-id error for a KID of the lab's layout naming another
    member or kind counts as ``kid_stream_mismatch`` (what a lab member counts for it), any other as
    its type's counter (a KID of the stream's own member and kind, not or no longer held: ``unknown_kid``)."""
    if error_type == "keyID" and kid is not None:
        try:
            origin = parse_kid(kid)
        except ValueError:
            return UnknownKeyId.reason
        if publisher is not None and (origin.member, origin.kind) != (publisher, kind):
            return KIDStreamMismatch.reason
    return DECRYPT_ERRORS.get(error_type, f"sframe_{error_type}")


@dataclass
class KeyChanges:
    """What :func:`plan_keys` found: send keys to set, receive keys to add and to remove."""

    send: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # kind -> (KID, base key)
    add: dict[Stream, dict[int, bytes]] = field(default_factory=dict)  # stream -> KID -> base key
    remove: dict[Stream, set[int]] = field(default_factory=dict)  # stream -> KIDs

    def __bool__(self) -> bool:
        return bool(self.send or self.add or self.remove)


@dataclass
class InstalledKeys:
    """What libwebrtc holds: the send KID per kind, the receive KIDs per stream."""

    send: dict[str, int] = field(default_factory=dict)
    receive: dict[Stream, set[int]] = field(default_factory=dict)

    def apply(self, changes: KeyChanges) -> None:
        """Record ``changes`` as done."""
        self.send.update({kind: kid for kind, (kid, _) in changes.send.items()})
        for stream, keys in changes.add.items():
            self.receive.setdefault(stream, set()).update(keys)
        for stream, kids in changes.remove.items():
            self.receive.get(stream, set()).difference_update(kids)


def plan_keys(member: Member, streams: Iterable[Stream], members: Mapping[str, int],
              installed: InstalledKeys) -> KeyChanges:
    """The changes that bring libwebrtc to what ``member`` holds now (call after ``member.tick``).

    ``streams``: the (publisher, kind) streams received; ``members``: publisher name -> member
    index (the roster's). A stream whose publisher is not a member gets no key.
    """
    changes = KeyChanges()
    epoch = member.send_epoch
    own = member.base_keys().get((member.index, epoch)) if epoch is not None else None
    for kind in KINDS:
        kid = kid_for(epoch, member.index, kind) if own is not None else None
        if kid is not None and installed.send.get(kind) != kid:
            changes.send[kind] = (kid, own)
    for publisher, kind in streams:
        index = members.get(publisher)
        held = member.receive_keys(index, kind) if index is not None and index != member.index else {}
        wanted = {kid_for(e, index, kind): key for e, key in held.items()}
        have = installed.receive.get((publisher, kind), set())
        if new := {kid: key for kid, key in wanted.items() if kid not in have}:
            changes.add[publisher, kind] = new
        if stale := have - set(wanted):
            changes.remove[publisher, kind] = stale
    return changes
