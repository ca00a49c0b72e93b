"""What a participant worker sends back at the end of an aiortc call, and the sinks judged from it.

A worker (:mod:`e2ee_lab.webrtc.worker`) turns each of its
:class:`~e2ee_lab.webrtc.participant.WebRTCParticipant` objects into a
:class:`ParticipantResult` (:func:`participant_result`): plain records that pickle, holding exactly
what :mod:`e2ee_lab.webrtc.call` reads of a participant to build its result and summary (its
senders' and receivers' transform records, RTP timestamp origins, packets per frame, the wire
sample, PLI counts, drop counters, SDPs, its member's frame keys) plus what its receivers
decoded but could not judge there: per frame the RTP timestamp, the arrival time and the decoded
picture's thumbnail, and the last few decoded pictures. The call's stand-in for the participant
(:class:`~e2ee_lab.webrtc.workers.RemoteParticipant`) adopts it; its :class:`ReplayedSink` objects
judge every recorded frame with the same code a live receiver uses
(:meth:`~e2ee_lab.webrtc.media.TrackSink.judge`), against every publisher's records, once all
workers have reported.

The thumbnails are the price of judging after the call: every 4th pixel each way, 57.6 kB per
640x480 picture (14.4 kB at 320x240), about 1.7 MB per received video stream and second at full
size, held by the worker and sent once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from e2ee_lab.crypto.keys import KeyAgreementError, StaleEpoch, UnknownMember
from e2ee_lab.media.scene import to_rgb

from .media import TrackSink
from .transform import OpenedFrame, TransformedFrame


@dataclass
class SenderRecords:
    """A sender transform's records (what :class:`~e2ee_lab.webrtc.transform.SenderTransform` kept)."""

    kind: str
    ssrc: int
    records: list[TransformedFrame]
    dropped: Counter
    _by_timestamp: dict[int, TransformedFrame] = field(default_factory=dict, repr=False)

    def record(self, media_timestamp: int) -> TransformedFrame | None:
        """The record of the frame with this media timestamp, or None (as the transform's)."""
        if not self._by_timestamp and self.records:
            self._by_timestamp = {r.media_timestamp: r for r in self.records}
        return self._by_timestamp.get(media_timestamp)


@dataclass
class ReceiverRecords:
    """A receiver transform's records (what :class:`~e2ee_lab.webrtc.transform.ReceiverTransform` kept)."""

    kind: str
    records: list[OpenedFrame]
    dropped: Counter
    _by_timestamp: dict[int, OpenedFrame] = field(default_factory=dict, repr=False)

    def opened(self, timestamp: int) -> OpenedFrame | None:
        """The record of the frame with RTP ``timestamp`` (the latest one), or None."""
        if not self._by_timestamp and self.records:
            self._by_timestamp = {r.timestamp: r for r in self.records}
        return self._by_timestamp.get(timestamp)


@dataclass
class SinkRecords:
    """What one receiver of one stream decoded, not yet judged."""

    receiver: str
    publisher: str
    kind: str
    transform: ReceiverRecords
    unjudged: list[tuple[int | None, float, np.ndarray | None]]  # (RTP timestamp, arrival, thumbnail)
    pictures: list[tuple[int | None, np.ndarray]]  # the last decoded pictures: (RTP timestamp, RGB)


@dataclass
class MemberRecord:
    """The key-agreement member's index, suite and the SFrame base keys it held (for
    ``frame-keys.json``), and the digits it computed for the call: safety numbers with a peer
    (``safety``: peer index -> digits) and group codes (``codes``: epoch -> digits)."""

    index: int
    suite: object
    keys: dict[tuple[int, int], bytes]
    safety: dict[int, str] = field(default_factory=dict)
    codes: dict[int, str] = field(default_factory=dict)

    def base_keys(self) -> dict[tuple[int, int], bytes]:
        return dict(self.keys)

    def safety_number(self, peer: int) -> SimpleNamespace:
        """As :meth:`Member.safety_number` (``.digits``); UnknownMember for a peer not computed."""
        if peer not in self.safety:
            raise UnknownMember(f"member {self.index} computed no safety number with {peer}")
        return SimpleNamespace(digits=self.safety[peer])

    def group_code(self, epoch: int | None = None) -> SimpleNamespace:
        """As :meth:`Member.group_code` (``.digits``); StaleEpoch for an epoch not computed."""
        if epoch not in self.codes:
            raise StaleEpoch(f"member {self.index} computed no group code for epoch {epoch}")
        return SimpleNamespace(digits=self.codes[epoch])


@dataclass
class ParticipantResult:
    """Everything the call reads of one participant after the call (module docstring)."""

    name: str
    offer: str | None
    answer_sdp: str | None
    rtp_sframe: object
    rtp_sframe_agreed: object
    encode: str
    reproducible_keys: bool
    senders: dict[str, SenderRecords]
    origins: dict[int, int]
    packets: Counter
    wire: list[bytes]
    plis_sent: int
    plis_by_ssrc: Counter
    plis_received: int
    counters: Counter
    packetization: str
    thumbnails: dict[int, np.ndarray]
    sinks: list[SinkRecords]
    member: MemberRecord | None


def member_record(member, peer: int | None = None, epoch: int | None = None) -> MemberRecord:
    """A :class:`~e2ee_lab.crypto.keys.Member` as a record, with its safety number with ``peer``
    and its group code of ``epoch`` where given (and known to it)."""
    record = MemberRecord(member.index, member.suite, member.base_keys())
    try:
        if peer is not None:
            record.safety[peer] = member.safety_number(peer).digits
        if epoch is not None:
            record.codes[epoch] = member.group_code(epoch).digits
    except KeyAgreementError:  # that peer or epoch is unknown to it: the caller sees the gap
        pass
    return record


def participant_result(p, peer: int | None = None, epoch: int | None = None) -> ParticipantResult:
    """``p`` (a closed :class:`~e2ee_lab.webrtc.participant.WebRTCParticipant` whose sinks had no
    ground truth) as plain records; ``peer`` and ``epoch`` go to :func:`member_record`."""
    senders = {k: SenderRecords(k, t.ssrc, list(t.records), Counter(t.dropped)) for k, t in p.senders.items()}
    sinks = [SinkRecords(s.receiver, s.publisher, s.kind,
                         ReceiverRecords(s.kind, list(s.transform.records), Counter(s.transform.dropped)),
                         s.unjudged, [(ts, to_rgb(frame)) for ts, frame in s.recent]) for s in p.sinks]
    member = member_record(p.member, peer, epoch) if p.member is not None else None
    return ParticipantResult(
        name=p.name, offer=p.offer, answer_sdp=p.answer_sdp, rtp_sframe=p.rtp_sframe,
        rtp_sframe_agreed=p.rtp_sframe_agreed, encode=p.encode, reproducible_keys=p.reproducible_keys,
        senders=senders, origins=dict(p.origins), packets=Counter(p.packets), wire=list(p.wire),
        plis_sent=p.plis_sent, plis_by_ssrc=Counter(p.plis_by_ssrc), plis_received=p.plis_received,
        counters=Counter(p.counters()), packetization=p.packetization, thumbnails=dict(p.video.thumbnails),
        sinks=sinks, member=member)


class ReplayedSink(TrackSink):
    """A receiver's sink rebuilt in the call's process from :class:`SinkRecords`: :meth:`replay`
    judges each recorded frame against ``truth`` (a :class:`~e2ee_lab.webrtc.call.SentIndex` over
    every publisher), filling ``records`` exactly as a live sink does; ``latest_picture`` is the
    latest of the kept pictures that matched."""

    def __init__(self, data: SinkRecords, truth) -> None:
        super().__init__(None, receiver=data.receiver, publisher=data.publisher, kind=data.kind,
                         transform=data.transform, truth=truth, clock=None)  # type: ignore[arg-type]
        self._data = data
        self._picture: tuple[int, np.ndarray] | None = None

    def replay(self) -> None:
        """Judge every recorded frame (once)."""
        if self.records:
            return
        matched: dict[int | None, int] = {}
        for timestamp, arrival, thumb in self._data.unjudged:
            record, ok = self.judge(timestamp, arrival, thumb)
            self.records.append(record)
            if ok:
                matched[timestamp] = record.frame_index
        for timestamp, rgb in reversed(self._data.pictures):
            if timestamp in matched:
                self._picture = (matched[timestamp], rgb)
                break

    @property
    def latest_picture(self) -> tuple[int, np.ndarray] | None:
        return self._picture
