"""Events of the crypto layer: frozen records of what a key-agreement member did, in the past tense.

:class:`e2ee_lab.crypto.keys.Member` queues these as it applies roster changes (epochs, RFC 9605
§5.1 sender-key rotation), installs, switches and retires keys; the in-memory ``Group`` adds
:class:`KeyMessageRejected` and :class:`RosterRejected` where it catches a bad key message or roster update. No event carries key
bytes: keys are named by their SFrame KID only, so an event log can be shown or stored safely.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpochStarted:
    """A member applied a roster change and entered a new group epoch."""

    member: int  # index of the member that applied the change
    epoch: int  # the new epoch number
    change: str  # "join", "leave" or "rekey"
    subject: int | None  # the member who joined or left; None for a periodic rekey
    time: float  # when the member applied it, in seconds


@dataclass(frozen=True)
class KeyRotated:
    """A sender key for one (sender, epoch) became available to a member."""

    member: int  # index of the member that now holds the key
    sender: int  # index of the member whose frames the key protects (RFC 9605 §5.1: one sender)
    epoch: int  # epoch the key belongs to
    kids: tuple[int, ...]  # the SFrame KIDs it serves, audio then video (one base key, two KIDs)
    how: str  # "generated" (own fresh key), "ratcheted" (HKDF ratchet) or "received" (key message)
    time: float  # when it was installed, in seconds


@dataclass(frozen=True)
class SendKeySwitched:
    """A member started encrypting its frames with a newer send key (after the switch-over delay)."""

    member: int  # index of the sender
    epoch: int  # epoch of the key now in use
    kids: tuple[int, ...]  # its SFrame KIDs, audio then video
    time: float  # when the switch happened, in seconds


@dataclass(frozen=True)
class KeyRetired:
    """A member deleted a receive key (its grace period ended, or its sender spoke under a newer epoch)
    or, on leaving, any key; frames under that KID no longer decrypt."""

    member: int  # index of the member that deleted the key
    sender: int  # whose key it was
    epoch: int  # epoch the key belonged to
    kid: int  # the SFrame KID deleted (one media kind)
    time: float  # when it was deleted, in seconds


@dataclass(frozen=True)
class KeyMessageRejected:
    """A key-distribution message was dropped by its recipient; the recipient's state is unchanged."""

    member: int  # index of the member the relay delivered it to
    reason: str  # the error's ``reason`` (the drop counter), e.g. "auth" or "replay"
    detail: str  # the error message
    time: float  # when it was rejected, in seconds


@dataclass(frozen=True)
class RosterRejected:
    """A roster update was refused by a member (a ghost or missing member, a changed key, a wrong
    epoch); the member's state is unchanged."""

    member: int  # index of the member the update was for
    epoch: int  # the epoch the update claimed to start
    reason: str  # the error's ``reason`` (the drop counter), e.g. "roster_mismatch"
    detail: str  # the error message
    time: float  # when it was rejected, in seconds
