"""The native participant's frame keys: the lab's group key agreement feeding libwebrtc's SFrame.

The native participant is a member like any other (:class:`~e2ee_lab.crypto.keys.Member`, run in
Python): it joins the roster, seals and opens key messages through the SFU's signalling relay, and
holds its own base key and every other member's per epoch. libwebrtc only gets base keys and KIDs
(RFC 9605 §4.4.2 derives the key and salt of each KID inside it): :func:`plan_keys` compares what
the member holds with what was installed and returns the changes, which the participant applies to
its ``RTCRtpSFrameEncryptor`` (one per sender) and ``RTCRtpSFrameDecryptor`` (one per received
stream, holding only that stream's publisher's keys: the SFU names the streams (``a=msid``, which
it controls), and a frame it moves into another member's stream fails there with libwebrtc's
key-id error).

**One KID per media kind.** libwebrtc keeps one CTR per encryptor, and an application that gives
its audio and video encryptors one base key under one KID reuses every (key, nonce) pair
(:mod:`e2ee_lab.attacks.native`; RFC 9605 §4.3 and §9.1). The lab's own senders share one counter
across both kinds, so the roster's KID layout (``epoch << 8 | member``) has one KID per sender and
epoch. The native participant sends video under that KID and audio under the same KID with
:data:`AUDIO_KID_BIT` set (:func:`send_kids`): the same base key, a different KID, so a different
key and salt. The Python members accept that audio KID because :func:`accept_native_audio` installs
the native member's base keys under it as well (a receive key of their SFrame context, deleted with
the context, not retired with its epoch: this call has no rekey). The other way, the lab's members
send both kinds under their one KID and the native participant's decryptors accept it. Once the
roster's KIDs name the media kind (issue 13: ``(epoch << 12) | (kind << 8) | member``),
:func:`send_kids` and :func:`receive_kid` are that layout's KIDs and :func:`accept_native_audio`
and :data:`AUDIO_KID_BIT` go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from e2ee_lab.crypto.keys import Member, kid_for

KINDS = ("audio", "video")
AUDIO_KID_BIT = 1 << 40  # set in the native participant's audio KID (its video KID is the roster's)
Stream = tuple[str, str]  # (publisher name, kind) of a stream the native participant receives


def send_kids(epoch: int, member: int) -> dict[str, int]:
    """The native participant's KIDs in ``epoch``: the roster's KID for video, with :data:`AUDIO_KID_BIT` for audio."""
    kid = kid_for(epoch, member)
    return {"video": kid, "audio": kid | AUDIO_KID_BIT}


def receive_kid(epoch: int, member: int, kind: str) -> int:
    """The KID of a lab member's ``kind`` stream in ``epoch`` (one KID for both kinds)."""
    return kid_for(epoch, member)


def accept_native_audio(member: Member, native: int) -> int:
    """Install, in a lab member's SFrame context, every base key it holds of member ``native``
    under the native participant's audio KID too; returns how many were new."""
    added = 0
    for (sender, epoch), base_key in member.base_keys().items():
        kid = send_kids(epoch, sender)["audio"]
        if sender == native and kid not in member.context.receive_kids:
            member.context.add_receive_key(kid, base_key)
            added += 1
    return added


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
    keys = member.base_keys()
    epoch = member.send_epoch
    if epoch is not None and (member.index, epoch) in keys:
        for kind, kid in send_kids(epoch, member.index).items():
            if installed.send.get(kind) != kid:
                changes.send[kind] = (kid, keys[member.index, epoch])
    for publisher, kind in streams:
        index = members.get(publisher)
        wanted = {receive_kid(e, s, kind): key for (s, e), key in keys.items() if s == index}
        have = installed.receive.get((publisher, kind), set())
        if new := {kid: key for kid, key in wanted.items() if kid not in have}:
            changes.add[publisher, kind] = new
        if stale := have - set(wanted):
            changes.remove[publisher, kind] = stale
    return changes
