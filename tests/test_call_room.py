"""Rooms with mostly listeners: ``publishers`` (cameras off) and the SFU's loudest-speaker audio.

One short lab call (ci size, 4 participants, 1.5 s) with the room threshold lowered to 2 so that
the selection runs without a big room; the selection itself is tested in tests/test_sfu_loudest.py.
"""

from __future__ import annotations

import argparse

import pytest

from e2ee_lab.call import add_call_arguments, run_call
from e2ee_lab.call import run as call_run
from e2ee_lab.call.stacks import registered

PEOPLE, SECONDS = 4, 1.5


@pytest.fixture(scope="module")
def room():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(call_run, "LOUDEST_ROOM_SIZE", 2)
        return run_call("e2ee", PEOPLE, SECONDS, seed=5, size="ci", publishers=1, loudest=1)


def test_only_the_publishers_send_video_and_everyone_receives_it(room):
    rows = {p["name"]: p for p in room.summary["participants"]}
    sent = room.sent
    assert room.summary["publishers"] == 1 and set(sent[sent.kind == "video"].participant) == {"alice"}
    alice_video = rows["alice"]["video_frames_sent"]
    assert alice_video > 0 and all(p["audio_frames_sent"] > 0 for p in rows.values())
    for name, p in rows.items():
        assert p["video_frames_sent"] == (alice_video if name == "alice" else 0)
        assert p["video_frames_expected"] == (0 if name == "alice" else alice_video)
    assert set(room.received[room.received.kind == "video"].publisher) == {"alice"}


def test_the_sfu_forwards_the_loudest_audio_and_receivers_expect_what_it_forwarded(room):
    summary, received = room.summary, room.received
    assert summary["loudest"]["active"] and summary["loudest"]["n"] == 1 and summary["loudest"]["audio_withheld"] > 0
    sent = room.sent[room.sent.kind == "audio"]
    for p in summary["participants"]:
        others = int((sent.participant != p["name"]).sum())
        got = received[(received.receiver == p["name"]) & (received.kind == "audio")]
        assert p["audio_frames_expected"] < others  # one speaker at a time of three
        assert len(got) <= p["audio_frames_expected"]
    # forwarded + withheld: every audio packet that reached the SFU, once per other participant
    total = sum(p["audio_frames_expected"] for p in summary["participants"])
    assert total + summary["loudest"]["audio_withheld"] <= (PEOPLE - 1) * len(sent)


def test_bad_room_shapes_are_refused():
    with pytest.raises(ValueError, match="publishers"):
        run_call("e2ee", 3, 1.0, size="ci", publishers=4)
    with pytest.raises(ValueError, match="publishers"):
        run_call("e2ee", 3, 1.0, size="ci", publishers=0)
    with pytest.raises(ValueError, match="loudest"):
        run_call("e2ee", 3, 1.0, size="ci", loudest=0)
    with pytest.raises(ValueError, match="does not take"):
        run_call("e2ee", 3, 1.0, size="ci", stack="webrtc", publishers=1)


def test_the_command_passes_publishers_and_loudest_to_the_lab_stack():
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--participants", "12", "--publishers", "4", "--loudest", "2"])
    lab = registered()["lab"]
    assert {keyword: getattr(args, dest) for dest, keyword in lab.arguments.items()
            if getattr(args, dest, None)} == {"publishers": 4, "loudest": 2}
