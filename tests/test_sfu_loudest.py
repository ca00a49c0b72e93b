"""The SFU's loudest-speaker audio selection: the selector alone, then in the core (no sockets)."""

from __future__ import annotations

import pytest
from aiortc.rtp import RtpPacket

from e2ee_lab.sfu import SFUCore
from e2ee_lab.sfu.loudest import RESELECT_INTERVAL, LoudestSpeakers
from tests.test_sfu_core import AUDIO, EXTMAP, VIDEO, rtp

STEP = 0.02  # one Opus packet per 20 ms


def _feed(selector: LoudestSpeakers, levels: dict[int, int | None], seconds: float, start: float = 0.0) -> dict:
    """Every stream sends a packet each 20 ms at its level; returns packets forwarded per stream."""
    forwarded = dict.fromkeys(levels, 0)
    for i in range(int(round(seconds / STEP))):
        for ssrc, level in levels.items():
            forwarded[ssrc] += selector.heard(ssrc, level, start + i * STEP)
    return forwarded


def test_the_n_loudest_streams_are_forwarded_and_the_rest_withheld():
    selector = LoudestSpeakers(2)
    levels = {1: 127, 2: 30, 3: 90, 4: 10, 5: 127}  # 0 loudest, 127 silence (RFC 6464)
    forwarded = _feed(selector, levels, 1.0)
    assert selector.selected == {4, 2}
    assert forwarded[4] == forwarded[2] == 50  # a new stream is a candidate from its first packet
    assert forwarded[3] + forwarded[1] + forwarded[5] <= 2
    assert selector.packets_forwarded + selector.packets_withheld == 5 * 50


def test_a_new_loud_speaker_replaces_the_quietest_within_a_few_choices():
    selector = LoudestSpeakers(1)
    _feed(selector, {1: 20, 2: 100}, 1.0)
    assert selector.selected == {1} and selector.selection_changes == 0
    _feed(selector, {1: 100, 2: 5}, 1.0, start=1.0)  # they swap: 2 now speaks, 1 is quiet
    assert selector.selected == {2} and selector.selection_changes == 1


def test_a_packet_without_the_level_counts_as_silence_and_ties_go_to_the_first_heard():
    selector = LoudestSpeakers(1)
    _feed(selector, {7: None, 8: None}, 0.5)
    assert selector.selected == {7}
    _feed(selector, {7: None, 8: 60}, 0.5, start=0.5)
    assert selector.selected == {8}


def test_a_stream_that_stops_or_leaves_is_no_longer_a_candidate():
    selector = LoudestSpeakers(1)
    _feed(selector, {1: 10, 2: 80}, 0.5)
    assert selector.selected == {1}
    _feed(selector, {2: 80}, 1.5, start=0.5)  # 1 went quiet on the wire (no packets for > 1 s)
    assert selector.selected == {2}
    selector.forget(2)
    assert selector.selected == frozenset() and 2 not in selector.loudness()


def test_n_must_be_positive():
    with pytest.raises(ValueError, match="n >= 1"):
        LoudestSpeakers(0)


# --- in the core -------------------------------------------------------------------------------


def _room(size: int, loudest: int | None, above: int = 3) -> SFUCore:
    core = SFUCore(loudest=loudest, loudest_above=above, packet_events=False, seed=1)
    for leg in range(size):
        core.add_leg(f"p{leg}")
        core.add_stream(f"p{leg}", 0x100 + leg, "audio")
        core.add_stream(f"p{leg}", 0x200 + leg, "video")
    return core


def _talk(core: SFUCore, levels: list[int], packets: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(packets):
        for leg, level in enumerate(levels):
            out += core.receive_rtp(f"p{leg}", rtp(0x100 + leg, i, pt=AUDIO, ts=960 * i, level=(True, level)),
                                    i * STEP)
    return out


def test_a_big_room_forwards_only_the_loudest_audio_and_every_video():
    core = _room(5, loudest=2)  # 5 legs > 3: the selection is on
    assert core.selecting_speakers
    out = _talk(core, [100, 20, 127, 40, 127], 50)
    publishers = [core.stream_of(dest, RtpPacket.parse(data, EXTMAP).ssrc).leg for dest, data in out]
    # p0 is heard first, alone, so its first packet goes out; from then on p1 and p3 are the loudest
    assert publishers.count("p0") == 4 and publishers.count("p1") == publishers.count("p3") == 50 * 4
    assert len(out) == 4 + 2 * 50 * 4 and sum(core.audio_forwarded.values()) == len(out)
    assert core.audio_forwarded["p1"] == 50 + 1 and core.audio_forwarded["p2"] == 2 * 50 + 1
    assert core.audio_withheld == 5 * 50 * 4 - len(out)
    assert core.packets_in == core.packets_routed == 250 and not core.dropped and not core.dropped_deliveries
    video = core.receive_rtp("p0", rtp(0x200, 0, pt=VIDEO, marker=1), 1.0)
    assert sorted(dest for dest, _ in video) == ["p1", "p2", "p3", "p4"]


def test_a_small_room_or_no_selection_forwards_every_microphone():
    for core in (_room(3, loudest=1), _room(5, loudest=None)):
        assert not core.selecting_speakers
        legs = len(core.legs)
        out = _talk(core, [100, 20, 127, 40, 127][:legs], 10)
        assert len(out) == 10 * legs * (legs - 1) and core.audio_withheld == 0


def test_a_withheld_packet_leaves_no_gap_in_the_subscribers_sequence():
    core = _room(4, loudest=1, above=2)
    seqs = []
    for i, level in enumerate([10] * 20 + [127] * 40 + [10] * 40):  # p0 speaks, pauses, speaks again
        for leg, lvl in enumerate([level, 60, 127, 127]):
            for dest, data in core.receive_rtp(f"p{leg}", rtp(0x100 + leg, i, pt=AUDIO, level=(True, lvl)),
                                               i * STEP):
                if dest == "p3" and core.stream_of("p3", RtpPacket.parse(data, EXTMAP).ssrc).leg == "p0":
                    seqs.append(RtpPacket.parse(data, EXTMAP).sequence_number)
    assert core.speakers.selection_changes >= 2  # p0 lost the floor to p1 and took it back
    assert len(seqs) < 100 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert RESELECT_INTERVAL < 0.4  # p0's pause (0.8 s) is long enough to be noticed


def test_open_streams_announces_every_stream_to_every_other_leg_before_its_first_packet():
    core = SFUCore(seed=2)
    for leg in range(3):
        core.add_leg(f"p{leg}")
        core.add_stream(f"p{leg}", 0x100 + leg, "audio")
    while core.next_event() is not None:
        pass
    core.open_streams(1.0)
    created = []
    while (event := core.next_event()) is not None:
        created.append((event.source_ssrc, event.dest_leg, event.ssrc))
    assert sorted((s, d) for s, d, _ in created) == [(0x100, "p1"), (0x100, "p2"), (0x101, "p0"), (0x101, "p2"),
                                                     (0x102, "p0"), (0x102, "p1")]
    core.open_streams(2.0)
    assert core.next_event() is None  # nothing left to create
    out = core.receive_rtp("p0", rtp(0x100, 7, pt=AUDIO, level=(True, 10)), 3.0)
    mapped = {(s, d): o for s, d, o in created}
    assert sorted((d, RtpPacket.parse(data, EXTMAP).ssrc) for d, data in out) == \
        [("p1", mapped[0x100, "p1"]), ("p2", mapped[0x100, "p2"])]
