"""Attacks on the SFU's signalling: a downgrade by SDP rewriting, and identity-key substitution.

The SFU is every member's SDP peer and relays the key messages of the group key agreement, so it
can attack E2EE without touching a frame (the two signalling rows of :mod:`e2ee_lab.attacks.runner`):

- *downgrade-signalling*: media-level SDP ``a=sframe`` (RTP-SFrame draft) says "I expect SFrame for
  this m-section". :func:`strip_sframe` is an ``SFUServer.answer_hook`` that drops it from the answer
  to some members (:func:`downgrade_answers` installs it); an ``e2ee`` participant then sends its own
  frames without SFrame, as a client honouring the negotiation would, and the SFU reads them. The
  receivers still insist on SFrame (they fail closed), so nobody sees the victim's frames.
- *key-substitution*: RFC 9605 §5.1 leaves key distribution to the application, here a relay the
  SFU runs. :func:`substitute_keys` puts a :class:`~e2ee_lab.crypto.keys.MITM` on the call's
  signalling relay: it serves its own identity keys to two members and re-seals their key messages,
  so it holds their sender keys. :func:`mitm_reads` counts the frames it then decrypts and decodes;
  :func:`safety_numbers` is the comparison that reveals it (the victims' numbers differ; RFC 7748
  X25519 identity keys).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import pandas as pd

from e2ee_lab.analysis.sfu_view import reassemble, view_packets
from e2ee_lab.call import CallResult
from e2ee_lab.crypto.keys import MITM, Curve, SafetyNumberMismatch, safety_number
from e2ee_lab.crypto.keys.sender_keys import DEFAULT_SUITE
from e2ee_lab.crypto.sframe import SFrameError
from e2ee_lab.media.codecs import DecodeError, VP8Decoder, picture_matches
from e2ee_lab.media.scene import to_rgb
from e2ee_lab.sfu.server import Answer, Offer, SFUServer

AnswerHook = Callable[[Offer, Answer], Answer]


# --- downgrade: SDP a=sframe dropped -----------------------------------------------------------------


def strip_sframe(victims: Iterable[str]) -> AnswerHook:
    """An ``SFUServer.answer_hook`` that drops ``a=sframe`` from its answers to the members ``victims``
    (by participant name) and passes every other answer unchanged."""
    names = set(victims)
    return lambda offer, answer: dataclasses.replace(answer, sframe=False) if offer.name in names else answer


def downgrade_answers(sfu: SFUServer, victims: Iterable[str]) -> None:
    """Install :func:`strip_sframe` on ``sfu`` for ``victims`` (before anyone connects); no-op if none."""
    names = set(victims)
    if names:
        sfu.answer_hook = strip_sframe(names)


# --- key substitution: a MITM on the signalling relay ------------------------------------------------


class _RelayAsGroup:
    """What :class:`~e2ee_lab.crypto.keys.MITM` needs of a group, backed by the call's signalling relay."""

    curve, suite = Curve.X25519, DEFAULT_SUITE  # what the call's participants use

    def __init__(self, relay) -> None:
        self.relay, self.directory = relay, relay.directory

    @property
    def interceptor(self):
        return self.relay.interceptor

    @interceptor.setter
    def interceptor(self, hook) -> None:
        self.relay.interceptor = hook


def substitute_keys(sfu: SFUServer, victims: Iterable[int], *, seed: int = 0) -> MITM:
    """Put a :class:`~e2ee_lab.crypto.keys.MITM` between the members ``victims`` (member indices, i.e.
    join order) on ``sfu``'s signalling relay (before anyone connects); returns it (it holds the keys)."""
    return MITM(_RelayAsGroup(sfu.signalling), set(victims), seed=seed)


def frames_read(result: CallResult, unprotect: Callable[[bytes], bytes], publishers: Iterable[str]) -> int:
    """Video frames of ``publishers`` (as the SFU received them) that ``unprotect`` decrypted and that
    decoded to the picture the publisher sent: what an attacker holding some frame keys reads."""
    packets = view_packets(result.view)
    packets = packets[(packets.kind == "video") & packets.publisher.isin(set(publishers))]
    sent = result.sent[result.sent.kind == "video"]
    index = {(p, int(t)): int(i) for p, t, i in zip(sent.participant, sent.timestamp, sent.frame_index)}
    decoders: dict[str, VP8Decoder] = {}
    read = 0
    for publisher, frame in reassemble(packets)[0]:
        try:
            rgb = to_rgb(decoders.setdefault(publisher, VP8Decoder()).decode(unprotect(frame.data)))
        except (SFrameError, DecodeError):
            continue
        i = index.get((publisher, frame.timestamp), -1)
        read += i >= 0 and picture_matches(rgb, result.scenes[publisher].rgb(i))
    return read


def mitm_reads(result: CallResult, mitm: MITM, publishers: Iterable[str]) -> int:
    """Video frames of ``publishers`` the key-substituting SFU decrypted and decoded to the sent picture."""
    return frames_read(result, mitm.unprotect, publishers)


def safety_numbers(result: CallResult) -> pd.DataFrame:
    """Per pair of members: the safety number each computes from the user id and key it pinned
    (``result.identities``: each participant's name is its user id), and if they match."""
    ids, rows = result.identities, []
    names = sorted(ids)
    for i, a in enumerate(names):
        for b in (b for b in names[i + 1:] if b in ids[a] and a in ids[b]):
            first = safety_number((a, ids[a][a]), (b, ids[a][b]))
            second = safety_number((b, ids[b][b]), (a, ids[b][a]))
            try:
                first.verify(second)
                match = True
            except SafetyNumberMismatch:
                match = False
            rows.append((a, b, str(first), str(second), match))
    return pd.DataFrame(rows, columns=["first", "second", "first's number", "second's number", "match"])
