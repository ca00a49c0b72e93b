"""Tests for e2ee_lab.sfu: the sans-I/O SFU core, its policy hook and its view tap (no sockets)."""

from __future__ import annotations

import random

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtpPacket,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2ee_lab.sfu import (
    AUDIO_LEVEL_URI,
    COLUMNS,
    Drop,
    FeedbackIgnored,
    Forward,
    HonestPolicy,
    InboundRTP,
    KeyFrameRequested,
    LegExists,
    OutgoingStreamCreated,
    PacketDropped,
    PacketForwarded,
    Policy,
    SFUCore,
    StreamAdded,
    SubscriberJoined,
    SubscriberLeft,
    UnknownLeg,
    UnknownSSRC,
    ViewTap,
)

VIDEO, AUDIO = 96, 111
A_VIDEO, A_AUDIO, B_VIDEO, B_AUDIO, C_VIDEO = 0xA0000001, 0xA0000002, 0xB0000001, 0xB0000002, 0xC1


def _extmap() -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    ext = RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL_URI)
    m.configure(RTCRtpParameters(headerExtensions=[ext]))
    return m


EXTMAP = _extmap()


def rtp(ssrc: int, seq: int, *, pt: int = VIDEO, ts: int = 1000, marker: int = 0,
        payload: bytes = b"\x10payload", level: tuple[bool, int] | None = None) -> bytes:
    """A plaintext RTP packet built with aiortc."""
    packet = RtpPacket(payload_type=pt, marker=marker, sequence_number=seq % 65536,
                       timestamp=ts, ssrc=ssrc, payload=payload)
    packet.extensions.audio_level = level
    return packet.serialize(EXTMAP)


def pli(sender: int, media: int) -> bytes:
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender, media_ssrc=media))


def parse(data: bytes) -> RtpPacket:
    return RtpPacket.parse(data, EXTMAP)


def events(core: SFUCore) -> list:
    out = []
    while (event := core.next_event()) is not None:
        out.append(event)
    return out


def by_dest(out: list[tuple[str, bytes]]) -> dict[str, list[RtpPacket]]:
    result: dict[str, list[RtpPacket]] = {}
    for leg, data in out:
        result.setdefault(leg, []).append(parse(data))
    return result


def invariant(core: SFUCore) -> None:
    assert core.packets_in == core.packets_routed + sum(core.dropped.values())


@pytest.fixture
def core() -> SFUCore:
    sfu = SFUCore(seed=7)
    for leg in "ABC":
        sfu.add_leg(leg, now=0.0)
    return sfu


# --- forwarding, SSRC mapping, sequence continuity -----------------------------------------------


def test_packet_from_a_reaches_b_and_c_not_a(core):
    out = core.receive_rtp("A", rtp(A_VIDEO, 10, ts=3000, marker=1, payload=b"\x90vp8"), now=1.0)
    assert sorted(leg for leg, _ in out) == ["B", "C"]
    for leg, data in out:
        p = parse(data)
        assert (p.payload_type, p.timestamp, p.marker, p.payload) == (VIDEO, 3000, 1, b"\x90vp8")
        assert p.ssrc == core.ssrc_map()[(A_VIDEO, leg)]
        assert p.ssrc != A_VIDEO
    assert core.packets_forwarded == 2 and core.packets_routed == 1
    invariant(core)


def test_ssrc_mapping_is_per_stream_and_subscriber_and_stable(core):
    sent = []
    for i in range(5):
        for leg, ssrc, pt in (("A", A_VIDEO, VIDEO), ("A", A_AUDIO, AUDIO), ("B", B_VIDEO, VIDEO)):
            sent += core.receive_rtp(leg, rtp(ssrc, 100 + i, pt=pt), now=i / 10)
    mapping = core.ssrc_map()
    assert set(mapping) == {(A_VIDEO, "B"), (A_VIDEO, "C"), (A_AUDIO, "B"), (A_AUDIO, "C"),
                            (B_VIDEO, "A"), (B_VIDEO, "C")}
    assert len(set(mapping.values())) == 6
    assert not set(mapping.values()) & {A_VIDEO, A_AUDIO, B_VIDEO}
    for leg, packets in by_dest(sent).items():
        for p in packets:
            info = core.stream_of(leg, p.ssrc)
            assert info is not None and mapping[(info.ssrc, leg)] == p.ssrc
    assert core.stream_of("A", mapping[(A_VIDEO, "B")]) is None  # B's SSRC means nothing on A
    created = [e for e in events(core) if isinstance(e, OutgoingStreamCreated)]
    assert {(e.source_ssrc, e.dest_leg): e.ssrc for e in created} == mapping


def test_sequence_numbers_continue_across_wrap(core):
    out = []
    for seq in range(65530, 65540):
        out += core.receive_rtp("A", rtp(A_VIDEO, seq), now=0.0)
    for packets in by_dest(out).values():
        seqs = [p.sequence_number for p in packets]
        assert [(b - a) % 65536 for a, b in zip(seqs, seqs[1:])] == [1] * 9


def test_upstream_loss_stays_visible_and_reordering_keeps_its_slot(core):
    out = []
    for seq in (1, 2, 4, 3, 5):  # 3 arrives late
        out += core.receive_rtp("A", rtp(A_VIDEO, seq, payload=bytes([seq])), now=0.0)
    b = by_dest(out)["B"]
    base = b[0].sequence_number
    assert [((p.sequence_number - base) % 65536, p.payload[0]) for p in b] == [
        (0, 1), (1, 2), (3, 4), (2, 3), (4, 5)]

    out = core.receive_rtp("A", rtp(A_VIDEO, 8), now=0.0)  # 6 and 7 lost upstream
    assert (by_dest(out)["B"][0].sequence_number - base) % 65536 == 7


def test_every_participant_gets_every_other_stream(core):
    out = []
    for leg, ssrc in (("A", A_VIDEO), ("B", B_VIDEO), ("C", C_VIDEO)):
        out += core.receive_rtp(leg, rtp(ssrc, 1), now=0.0)
    got = {leg: sorted(core.stream_of(leg, p.ssrc).leg for p in packets)
           for leg, packets in by_dest(out).items()}
    assert got == {"A": ["B", "C"], "B": ["A", "C"], "C": ["A", "B"]}


def test_header_fields_csrc_padding_and_audio_level_pass_through(core):
    packet = RtpPacket(payload_type=AUDIO, sequence_number=9, timestamp=960, ssrc=A_AUDIO,
                       payload=b"\xf8\xff\xfe")
    packet.csrc = [0x1234]
    packet.padding_size = 4
    packet.extensions.audio_level = (True, 42)
    for _, data in core.receive_rtp("A", packet.serialize(EXTMAP), now=0.0):
        p = parse(data)
        assert (p.csrc, p.padding_size, p.payload, p.extensions.audio_level) == (
            [0x1234], 4, b"\xf8\xff\xfe", (True, 42))


def test_same_seed_same_choices():
    outs = []
    for _ in range(2):
        sfu = SFUCore(seed=3)
        for leg in "AB":
            sfu.add_leg(leg)
        outs.append(sfu.receive_rtp("A", rtp(A_VIDEO, 1), now=0.0))
    assert outs[0] == outs[1]


# --- policies ------------------------------------------------------------------------------------


class DropForB(Policy):
    """Drops every third packet towards B only."""

    def on_rtp(self, inbound, dests):
        return [Drop(d, inbound, reason="test_drop") if d == "B" and inbound.seq % 3 == 0
                else Forward(d, inbound) for d in dests]


class HoldThenReplay(Policy):
    """Holds packet 2 for B until t=1 (reorder); at t=2 replays packet 1 to B with a fresh seq."""

    def __init__(self) -> None:
        self.held: list[Forward] = []
        self.first: InboundRTP | None = None

    def on_rtp(self, inbound, dests):
        self.first = self.first or inbound
        if inbound.seq == 2:
            self.held.append(Forward("B", inbound))
            return [Forward(d, inbound) for d in dests if d != "B"]
        return [Forward(d, inbound) for d in dests]

    def next_timer(self):
        return 1.0 if self.held else 2.0

    def on_timer(self, now):
        if now >= 2.0:
            return [Forward("B", self.first, fresh_seq=True)]
        released, self.held = self.held, []
        return released


class FlipBitForB(Policy):
    def on_rtp(self, inbound, dests):
        p = inbound.packet.payload
        flipped = inbound.copy_packet(payload=bytes([p[0] ^ 1]) + p[1:])
        return [Forward(d, inbound, packet=flipped if d == "B" else None) for d in dests]


def test_policy_drop_closes_the_gap_for_that_subscriber_only():
    sfu = SFUCore(policy=DropForB(), seed=1)
    for leg in "ABC":
        sfu.add_leg(leg)
    out = []
    for seq in range(1, 10):
        out += sfu.receive_rtp("A", rtp(A_VIDEO, seq, payload=bytes([seq])), now=0.0)
    got = by_dest(out)
    b, c = got["B"], got["C"]
    assert [p.payload[0] for p in b] == [1, 2, 4, 5, 7, 8]
    assert [(p.sequence_number - b[0].sequence_number) % 65536 for p in b] == [0, 1, 2, 3, 4, 5]
    assert [(p.sequence_number - c[0].sequence_number) % 65536 for p in c] == list(range(9))
    assert sfu.dropped_deliveries == {"test_drop": 3}
    assert sfu.counters() == {"packets_in": 9, "packets_routed": 9, "packets_forwarded": 15,
                              "plis_sent": 0, "dropped_deliveries.test_drop": 3}
    assert sfu.packets_forwarded == 15 and sum(sfu.dropped.values()) == 0
    drops = [e for e in events(sfu) if isinstance(e, PacketDropped)]
    assert [(e.dest_leg, e.reason) for e in drops] == [("B", "test_drop")] * 3


def test_policy_hold_reorders_and_replay_takes_a_fresh_slot():
    sfu = SFUCore(policy=HoldThenReplay(), seed=1)
    for leg in "AB":
        sfu.add_leg(leg)
    out = []
    for seq in (1, 2, 3):
        out += sfu.receive_rtp("A", rtp(A_VIDEO, seq, payload=bytes([seq])), now=0.5)
    assert sfu.get_timer() == 1.0
    out += sfu.handle_timer(1.0)  # packet 2, late, in its own slot
    out += sfu.handle_timer(2.0)  # replay of packet 1 in a new slot
    out += sfu.receive_rtp("A", rtp(A_VIDEO, 4, payload=b"\x04"), now=2.5)
    b = by_dest(out)["B"]
    base = b[0].sequence_number
    assert [((p.sequence_number - base) % 65536, p.payload[0]) for p in b] == [
        (0, 1), (2, 3), (1, 2), (3, 1), (4, 4)]
    forwarded = [e for e in events(sfu) if isinstance(e, PacketForwarded)]
    assert [e.fresh_seq for e in forwarded] == [False, False, False, True, False]


def test_tamper_policy_changes_only_bs_copy():
    sfu = SFUCore(policy=FlipBitForB(), seed=1)
    for leg in "ABC":
        sfu.add_leg(leg)
    got = by_dest(sfu.receive_rtp("A", rtp(A_VIDEO, 1, payload=b"\x10abc"), now=0.0))
    assert got["B"][0].payload == b"\x11abc" and got["C"][0].payload == b"\x10abc"
    mods = {e.dest_leg: e.modified for e in events(sfu) if isinstance(e, PacketForwarded)}
    assert mods == {"B": True, "C": False}
    view = sfu.view.to_dataframe()
    assert view[view.direction == "in"].payload.tolist() == [b"\x10abc"]


def test_policy_returning_nonsense_is_a_programming_error():
    class Broken(Policy):
        def on_rtp(self, inbound, dests):
            return ["not a decision"]

    sfu = SFUCore(policy=Broken())
    sfu.add_leg("A")
    with pytest.raises(TypeError, match="not Forward or Drop"):
        sfu.receive_rtp("A", rtp(A_VIDEO, 1), now=0.0)


def test_forward_to_a_removed_leg_is_counted_not_sent():
    policy = HoldThenReplay()
    sfu = SFUCore(policy=policy)
    for leg in "AB":
        sfu.add_leg(leg)
    sfu.receive_rtp("A", rtp(A_VIDEO, 2), now=0.0)
    sfu.remove_leg("B")
    assert sfu.handle_timer(1.0) == []
    assert sfu.dropped_deliveries == {"unknown_dest": 1}


# --- RTCP: PLI forwarding and PLI on join --------------------------------------------------------


def test_subscriber_pli_is_mapped_back_to_the_publisher(core):
    core.receive_rtp("A", rtp(A_VIDEO, 1), now=0.0)
    events(core)
    b_ssrc = core.ssrc_map()[(A_VIDEO, "B")]
    rr = bytes(RtcpRrPacket(ssrc=0xBB, reports=[RtcpReceiverInfo(b_ssrc, 0, 0, 1, 0, 0, 0)]))
    out = core.receive_rtcp("B", rr + pli(0xBB, b_ssrc), now=1.0)
    assert [leg for leg, _ in out] == ["A"]
    [fb] = RtcpPacket.parse(out[0][1])
    assert isinstance(fb, RtcpPsfbPacket)
    assert (fb.fmt, fb.ssrc, fb.media_ssrc) == (RTCP_PSFB_PLI, core.rtcp_ssrc, A_VIDEO)
    assert events(core) == [KeyFrameRequested(1.0, "A", A_VIDEO, "subscriber", "B")]
    assert core.rtcp_seen == {"RtcpRrPacket": 1, "RtcpPsfbPacket": 1}


def test_pli_throttle_unknown_ssrc_and_audio(core):
    core.receive_rtp("A", rtp(A_VIDEO, 1), now=0.0)
    core.receive_rtp("A", rtp(A_AUDIO, 1, pt=AUDIO), now=0.0)
    b_video = core.ssrc_map()[(A_VIDEO, "B")]
    c_video = core.ssrc_map()[(A_VIDEO, "C")]
    assert len(core.receive_rtcp("B", pli(1, b_video), now=1.0)) == 1
    assert core.receive_rtcp("C", pli(1, c_video), now=1.2) == []  # within pli_interval
    assert core.receive_rtcp("B", pli(1, b_video), now=1.0 + core.pli_interval) != []
    assert core.receive_rtcp("B", pli(1, core.ssrc_map()[(A_AUDIO, "B")]), now=5.0) == []
    assert core.receive_rtcp("B", pli(1, c_video), now=5.0) == []  # C's SSRC is not B's
    assert core.feedback_ignored == {"pli_throttled": 1, "not_video": 1, "unknown_media_ssrc": 1}
    assert core.plis_sent == 2
    ignored = [e for e in events(core) if isinstance(e, FeedbackIgnored)]
    assert [(e.leg, e.reason) for e in ignored] == [
        ("C", "pli_throttled"), ("B", "not_video"), ("B", "unknown_media_ssrc")]


def test_join_asks_every_video_publisher_for_a_key_frame(core):
    for leg, ssrc, pt in (("A", A_VIDEO, VIDEO), ("A", A_AUDIO, AUDIO), ("B", B_VIDEO, VIDEO)):
        core.receive_rtp(leg, rtp(ssrc, 1, pt=pt), now=0.0)
    core.receive_rtcp("C", pli(1, core.ssrc_map()[(A_VIDEO, "C")]), now=0.9)
    events(core)
    out = core.add_leg("D", now=1.0)  # not throttled by C's PLI a moment ago
    got = {leg: RtcpPacket.parse(data)[0].media_ssrc for leg, data in out}
    assert got == {"A": A_VIDEO, "B": B_VIDEO}
    assert events(core) == [
        SubscriberJoined(1.0, "D"),
        KeyFrameRequested(1.0, "A", A_VIDEO, "join", "D"),
        KeyFrameRequested(1.0, "B", B_VIDEO, "join", "D"),
    ]
    assert len(by_dest(core.receive_rtp("A", rtp(A_VIDEO, 2), now=1.1))) == 3


def test_sfu_can_request_a_key_frame_itself(core):
    core.receive_rtp("A", rtp(A_VIDEO, 1), now=0.0)
    [(leg, data)] = core.request_key_frame("A", A_VIDEO, now=1.0)
    assert leg == "A" and RtcpPacket.parse(data)[0].media_ssrc == A_VIDEO
    with pytest.raises(UnknownSSRC):
        core.request_key_frame("B", A_VIDEO, now=1.0)


# --- the view tap --------------------------------------------------------------------------------


def test_view_records_what_the_sfu_read(core):
    core.receive_rtp("A", rtp(A_AUDIO, 5, pt=AUDIO, ts=480, payload=b"\x78opus",
                              level=(True, 30)), now=0.25)
    df = core.view.to_dataframe()
    assert list(df.columns) == list(COLUMNS)
    inbound = df[df.direction == "in"].iloc[0].to_dict()
    assert inbound == {
        "time": 0.25, "direction": "in", "leg": "A", "ssrc": A_AUDIO, "payload_type": AUDIO,
        "kind": "audio", "seq": 5, "timestamp": 480, "marker": 0, "csrc_count": 0,
        "audio_level": 30, "voice_activity": True, "size": 12 + 8 + 5, "payload_size": 5,
        "padding_size": 0, "payload": b"\x78opus", "publisher_leg": "A", "publisher_ssrc": A_AUDIO,
    }
    out = df[df.direction == "out"].set_index("leg")
    assert sorted(out.index) == ["B", "C"]
    for leg in "BC":
        assert out.loc[leg, "ssrc"] == core.ssrc_map()[(A_AUDIO, leg)]
        assert out.loc[leg, "publisher_ssrc"] == A_AUDIO
        assert out.loc[leg, "audio_level"] == 30
    assert len(core.view.to_dataframe("in")) == 1


@pytest.mark.parametrize(
    "tap, payloads, rows",
    [(ViewTap(keep_payload=False), [None, None, None], 3),
     (ViewTap(payload_limit=2), [b"\x10a"] * 3, 3),
     (ViewTap(record_out=False), [b"\x10abc"], 1)],
    ids=["no-payload", "limit-2", "in-only"],
)
def test_view_tap_options(tap, payloads, rows):
    sfu = SFUCore(view=tap)
    for leg in "ABC":
        sfu.add_leg(leg)
    sfu.receive_rtp("A", rtp(A_VIDEO, 1, payload=b"\x10abc"), now=0.0)
    df = sfu.view.to_dataframe()
    assert len(df) == rows and df.payload.tolist() == payloads
    assert (df.payload_size == 4).all()


def test_view_tap_rejects_negative_limit():
    with pytest.raises(ValueError, match="payload_limit"):
        ViewTap(payload_limit=-1)


# --- garbage: counted by reason, never raised ----------------------------------------------------


GARBAGE = [
    ("A", b"", "malformed_rtp"),
    ("A", rtp(A_VIDEO, 1)[:8], "malformed_rtp"),  # truncated header
    ("A", b"\x40" + rtp(A_VIDEO, 1)[1:], "malformed_rtp"),  # version 1
    ("A", b"\x81" + rtp(A_VIDEO, 1)[1:12], "malformed_rtp"),  # CSRC count 1, no CSRC
    ("A", b"\xa0" + rtp(A_VIDEO, 1)[1:12] + b"\x00", "malformed_rtp"),  # padding length 0
    ("A", rtp(A_VIDEO, 1, pt=97), "unknown_payload_type"),
    ("A", rtp(A_VIDEO, 1, pt=72), "unknown_payload_type"),  # RTCP sent as RTP
    ("X", rtp(A_VIDEO, 1), "unknown_leg"),
    ("B", rtp(A_VIDEO, 1), "ssrc_collision"),  # B claims A's SSRC
    ("A", rtp(A_VIDEO, 1, pt=AUDIO), "kind_mismatch"),
]


@pytest.mark.parametrize(
    "leg, data, reason", GARBAGE, ids=[f"{g[2]}-{i}" for i, g in enumerate(GARBAGE)]
)
def test_bad_rtp_is_counted_by_reason(core, leg, data, reason):
    core.receive_rtp("A", rtp(A_VIDEO, 0), now=0.0)
    events(core)
    assert core.receive_rtp(leg, data, now=1.0) == []
    assert core.dropped == {reason: 1}
    [event] = events(core)
    assert isinstance(event, PacketDropped) and (event.leg, event.reason) == (leg, reason)
    invariant(core)


def test_audio_level_with_wrong_length_is_malformed(core):
    # id 1 (audio level) with 2 bytes: aiortc's struct unpack fails; the core counts it
    data = bytearray(rtp(A_AUDIO, 1, pt=AUDIO, level=(False, 1)))
    data[12:20] = b"\xbe\xde\x00\x01\x11\x00\x00\x00"
    assert core.receive_rtp("A", bytes(data), now=0.0) == []
    assert core.dropped == {"malformed_rtp": 1}


@pytest.mark.parametrize(
    "leg, data, reason",
    [("A", b"", "malformed_rtcp"), ("A", b"\x80\xc9\x00\x05", "malformed_rtcp"),
     ("A", rtp(A_VIDEO, 1), "malformed_rtcp"), ("A", b"\x80\xcc\x00\x00", "malformed_rtcp"),
     ("Z", pli(1, 2), "unknown_leg")],
    ids=["empty", "truncated", "rtp-as-rtcp", "only-unknown-type", "unknown-leg"],
)
def test_bad_rtcp_is_counted_by_reason(core, leg, data, reason):
    assert core.receive_rtcp(leg, data, now=0.0) == []
    assert core.dropped == {reason: 1}
    invariant(core)


def test_declared_streams_only():
    sfu = SFUCore(learn_ssrcs=False)
    for leg in "AB":
        sfu.add_leg(leg)
    assert sfu.receive_rtp("A", rtp(A_VIDEO, 1), now=0.0) == []
    assert sfu.dropped == {"unknown_ssrc": 1}
    sfu.add_stream("A", A_VIDEO, "video", now=0.5)
    assert len(sfu.receive_rtp("A", rtp(A_VIDEO, 2), now=1.0)) == 1
    assert [e for e in events(sfu) if isinstance(e, StreamAdded)] == [
        StreamAdded(0.5, "A", A_VIDEO, "video", 0)]


def test_control_plane_misuse_raises():
    sfu = SFUCore()
    sfu.add_leg("A")
    with pytest.raises(LegExists):
        sfu.add_leg("A")
    with pytest.raises(UnknownLeg):
        sfu.remove_leg("B")
    with pytest.raises(UnknownLeg):
        sfu.add_stream("B", 1, "video")
    with pytest.raises(ValueError):
        sfu.add_stream("A", 1, "text")
    with pytest.raises(ValueError, match="payload_kinds"):
        SFUCore(payload_kinds={96: "subtitles"})


LEGS = st.sampled_from(["A", "B", "C", "X"])


def _mutate(draw, data: bytes) -> bytes:
    """Maybe overwrite a few bytes, maybe truncate."""
    data = bytearray(data)
    for pos, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                                    max_size=2)):
        data[pos] = value
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@st.composite
def near_rtp(draw) -> tuple[str, bool, bytes]:
    """RTP with the legs' SSRCs and PTs (right leg or not), possibly damaged."""
    ssrc = draw(st.sampled_from([A_VIDEO, A_AUDIO, B_VIDEO, 0xDEAD]))
    data = rtp(ssrc, draw(st.integers(0, 65535)), pt=draw(st.sampled_from([VIDEO, AUDIO, 97])),
               payload=draw(st.binary(max_size=20)),
               level=draw(st.none() | st.tuples(st.booleans(), st.integers(0, 127))))
    return draw(LEGS), False, _mutate(draw, data)


@st.composite
def near_rtcp(draw) -> tuple[str, bool, bytes]:
    """A PLI (media SSRC resolved against the core's map by the test) + RR, possibly damaged."""
    rr = bytes(RtcpRrPacket(ssrc=1, reports=[RtcpReceiverInfo(2, 0, 0, 1, 0, 0, 0)]))
    aim = draw(st.integers(0, 7))
    return draw(LEGS), True, _mutate(draw, draw(st.sampled_from([b"", rr])) + pli(1, aim))


def _aim(sfu: SFUCore, leg: str, as_rtcp: bool, data: bytes) -> bytes:
    """Point a PLI built by near_rtcp at one of the SSRCs the core sends to ``leg``."""
    targets = sorted(v for (_, dest), v in sfu.ssrc_map().items() if dest == leg)
    if not as_rtcp or len(data) < 12 or not targets:
        return data
    return data[:-4] + (targets[data[-1] % len(targets)]).to_bytes(4, "big")


RAW = st.tuples(LEGS, st.booleans(), st.binary(max_size=80))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(near_rtp() | near_rtcp() | RAW, max_size=30))
def test_arbitrary_bytes_never_raise_and_counters_add_up(datagrams):
    sfu = SFUCore(seed=0)
    for leg in "ABC":
        sfu.add_leg(leg)
    rtp_out = rtcp_out = 0
    for now, (leg, as_rtcp, data) in enumerate(datagrams):
        data = _aim(sfu, leg, as_rtcp, data)
        out = (sfu.receive_rtcp if as_rtcp else sfu.receive_rtp)(leg, data, float(now))
        assert all(dest in "ABC" and dest != leg for dest, _ in out)
        rtcp_out += len(out) if as_rtcp else 0
        rtp_out += 0 if as_rtcp else len(out)
    invariant(sfu)
    assert sfu.packets_in == len(datagrams)
    assert (rtp_out, rtcp_out) == (sfu.packets_forwarded, sfu.plis_sent)
    assert sfu.packets_forwarded == 2 * sum(1 for e in sfu.view.records if e.direction == "in")


# --- leaving -------------------------------------------------------------------------------------


def test_removed_leg_stops_forwarding_and_gets_a_bye(core):
    core.receive_rtp("C", rtp(C_VIDEO, 1), now=0.0)
    core.receive_rtp("A", rtp(A_VIDEO, 1), now=0.0)
    mapping = core.ssrc_map()
    events(core)
    byes = {leg: RtcpPacket.parse(data) for leg, data in core.remove_leg("C", now=1.0)}
    assert byes == {leg: [RtcpByePacket(sources=[mapping[(C_VIDEO, leg)]])] for leg in "AB"}
    assert events(core) == [SubscriberLeft(1.0, "C", (C_VIDEO,))]
    assert [leg for leg, _ in core.receive_rtp("A", rtp(A_VIDEO, 2), now=1.1)] == ["B"]
    assert core.receive_rtp("C", rtp(C_VIDEO, 2), now=1.1) == []
    assert core.dropped == {"unknown_leg": 1}
    assert all(C_VIDEO != key[0] and key[1] != "C" for key in core.ssrc_map())
    core.add_leg("C", now=2.0)  # rejoining starts fresh
    assert sorted(leg for leg, _ in core.receive_rtp("A", rtp(A_VIDEO, 3), now=2.1)) == ["B", "C"]


def test_honest_policy_forwards_everything_unchanged():
    inbound = InboundRTP(0.0, "A", "video", 1, parse(rtp(A_VIDEO, 1)), 20)
    decisions = HonestPolicy().on_rtp(inbound, ["B", "C"])
    assert decisions == [Forward("B", inbound), Forward("C", inbound)]
    assert HonestPolicy().on_timer(1.0) == [] and HonestPolicy().next_timer() is None


def test_random_call_keeps_per_subscriber_sequences_gapless():
    """Three publishers, interleaved audio and video: every outgoing stream counts up by one."""
    sfu = SFUCore(seed=11)
    for leg in "ABC":
        sfu.add_leg(leg)
    rng = random.Random(5)
    streams = [("A", A_VIDEO, VIDEO), ("A", A_AUDIO, AUDIO), ("B", B_VIDEO, VIDEO),
               ("B", B_AUDIO, AUDIO), ("C", C_VIDEO, VIDEO)]
    next_seq = {ssrc: rng.randrange(65536) for _, ssrc, _ in streams}
    out = []
    for step in range(400):
        leg, ssrc, pt = rng.choice(streams)
        out += sfu.receive_rtp(leg, rtp(ssrc, next_seq[ssrc], pt=pt), now=step / 100)
        next_seq[ssrc] += 1
    per_stream: dict[tuple[str, int], list[int]] = {}
    for leg, packets in by_dest(out).items():
        for p in packets:
            per_stream.setdefault((leg, p.ssrc), []).append(p.sequence_number)
    assert len(per_stream) == 10
    for seqs in per_stream.values():
        assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["forward", "drop", "insert"]), st.integers(0, 40)), min_size=1, max_size=30))
def test_an_outgoing_stream_hands_out_consecutive_numbers_whatever_is_dropped_or_inserted(ops):
    # An inserted packet may copy one far older than the stream's head (a replay towards a subscriber
    # that has had nothing yet): the numbers the subscriber sees still follow one another, no gap.
    from e2ee_lab.sfu.streams import OutStream

    out, ext, sent = OutStream(ssrc=1, base=65530), 1000, []
    for op, back in ops:
        if op == "forward":
            sent.append(out.seq_for(ext))
            ext += 1
        elif op == "drop":
            out.drop(ext)
            ext += 1
        else:
            sent.append(out.fresh(ext - back))
    assert sent == [(65530 + i) % 65536 for i in range(len(sent))]


class _ListOutStream:
    """The numbering rule with every dropped number kept in a list: the oracle for OutStream's runs."""

    def __init__(self, base):
        self.base, self.first, self.highest, self.drops, self.inserts = base, None, 0, [], []

    def _anchor(self, ext):
        if self.first is None:
            self.first, self.highest = ext, ext - 1

    def _slot(self, ext):
        from bisect import bisect_left
        return (self.base + ext - self.first + bisect_left(self.inserts, ext) - bisect_left(self.drops, ext)) % 65536

    def seq_for(self, ext):
        self._anchor(ext)
        self.highest = max(self.highest, ext)
        return self._slot(ext)

    def fresh(self, ext):
        seq = self._slot(self.highest + 1)
        self.inserts.append(self.highest)
        return seq

    def drop(self, ext):
        self._anchor(ext)
        if ext > self.highest:
            self.drops.append(ext)
            self.highest = ext


@settings(max_examples=300)
@given(st.integers(0, 65535), st.lists(st.tuples(st.sampled_from(["forward", "drop", "insert", "old", "drop old"]),
                                                st.integers(0, 5)), min_size=1, max_size=60))
def test_dropped_numbers_kept_as_runs_give_every_slot_a_list_would(base, ops):
    """Runs of withheld packets (a silent speaker's audio) are stored as runs, not one entry each:
    every number handed out, for packets in order, late, duplicated, dropped or inserted, is the one
    the list form gives."""
    from e2ee_lab.sfu.streams import OutStream

    runs, oracle, ext = OutStream(ssrc=1, base=base), _ListOutStream(base), 5000
    runs.seq_for(ext - 1), oracle.seq_for(ext - 1)  # anchored: inserts before the first are another rule
    for op, n in ops:
        for _ in range(n + 1):
            if op == "forward":
                assert runs.seq_for(ext) == oracle.seq_for(ext)
            elif op == "drop":
                runs.drop(ext), oracle.drop(ext)
            elif op == "insert":
                assert runs.fresh(ext) == oracle.fresh(ext)
            elif op == "old":  # a late or duplicated packet keeps its slot
                assert runs.seq_for(ext - 1 - n) == oracle.seq_for(ext - 1 - n)
            else:  # a drop behind the head changes nothing
                runs.drop(ext - 1 - n), oracle.drop(ext - 1 - n)
            ext += op in ("forward", "drop")
    assert runs.dropped == len(oracle.drops)
    assert len(runs.drop_starts) <= sum(1 for op, _ in ops if op == "drop")
