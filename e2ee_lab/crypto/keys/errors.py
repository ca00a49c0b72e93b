"""Errors of the group key agreement (RFC 9605 §5.1 key management): one family, one ``reason`` each.

Every class is a :class:`KeyAgreementError` whose fixed ``reason`` names the recipient's drop
counter (:class:`~e2ee_lab.crypto.keys.Group` counts ``dropped[reason]``). A member that raises one
is left unchanged. :class:`MessageTampered` deliberately says nothing about why the AES-GCM tag
failed.
"""

from __future__ import annotations


class KeyAgreementError(Exception):
    """Base class of every key-agreement failure; the member's state is unchanged."""

    reason = "key_agreement"


class MalformedMessage(KeyAgreementError):
    """A key message is truncated, has an unknown version or carries a key of the wrong length."""

    reason = "malformed"


class WrongRecipient(KeyAgreementError):
    """A key message addressed to another member."""

    reason = "wrong_recipient"


class UnknownMember(KeyAgreementError):
    """A message from, or a question about, a member this one has no channel with."""

    reason = "unknown_member"


class MessageTampered(KeyAgreementError):
    """The AES-GCM tag did not verify; deliberately says nothing about why."""

    reason = "auth"


class ReplayedMessage(KeyAgreementError):
    """A key message whose sequence number is not above the last one accepted from its sender."""

    reason = "replay"


class StaleEpoch(KeyAgreementError):
    """A key or roster update for an epoch already held, retired, or before the member joined."""

    reason = "stale_epoch"


class FutureEpoch(KeyAgreementError):
    """A key or roster update for an epoch beyond the next one this member expects."""

    reason = "future_epoch"


class IllegalTransition(KeyAgreementError):
    """An event the member's current state does not allow (e.g. a key message after leaving)."""

    reason = "illegal_transition"


class IdentityChanged(KeyAgreementError):
    """The roster gives a known member a different identity key than the one pinned at first sight."""

    reason = "identity_changed"


class InvalidIdentityKey(KeyAgreementError):
    """A public key that does not parse, is on the other curve, or gives no shared secret."""

    reason = "invalid_identity"


class SafetyNumberMismatch(KeyAgreementError):
    """The safety numbers two members see differ: their identity keys were substituted."""

    reason = "safety_number_mismatch"


class UnexpectedRoster(KeyAgreementError):
    """A roster update whose member set is not exactly what its change implies (a ghost, or a missing
    member), or that lists this member wrongly; the member applies none of it."""

    reason = "roster_mismatch"


class GroupCodeMismatch(KeyAgreementError):
    """The group codes two members see differ: their views of the roster or its history differ."""

    reason = "group_code_mismatch"


class WrongCall(KeyAgreementError):
    """A key message sealed for another session of its recipient (another call): refused unopened."""

    reason = "wrong_call"


class KIDStreamMismatch(KeyAgreementError):
    """A frame whose KID names another member or another media kind than the stream it arrived on."""

    reason = "kid_stream_mismatch"
