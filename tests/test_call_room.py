"""Rooms with mostly listeners and endpoints that scale: ``publishers`` (cameras off), the SFU's
loudest-speaker audio, pre-encoded clips (``encode="clip"``) and receivers that verify every frame
but decode only their views (``views``).

One short lab call (ci size, 4 participants of whom 2 publish, 1.5 s) with the room threshold
lowered to 2 so that the selection runs without a big room; the selection itself is tested in
tests/test_sfu_loudest.py, the clip and the verification in tests/test_call_clip.py.
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
        return run_call("e2ee", PEOPLE, SECONDS, seed=5, size="ci", publishers=2, loudest=1,
                        encode="clip", views=1)


def test_only_the_publishers_send_video_and_everyone_receives_it(room):
    rows = {p["name"]: p for p in room.summary["participants"]}
    sent = room.sent
    assert room.summary["publishers"] == 2 and set(sent[sent.kind == "video"].participant) == {"alice", "bob"}
    video = {name: p["video_frames_sent"] for name, p in rows.items()}
    assert video["alice"] > 0 and video["bob"] > 0 and video["carol"] == video["dave"] == 0
    assert all(p["audio_frames_sent"] > 0 for p in rows.values())
    for name, p in rows.items():
        assert p["video_frames_expected"] == sum(n for who, n in video.items() if who != name)
    assert set(room.received[room.received.kind == "video"].publisher) == {"alice", "bob"}


def test_each_receiver_decodes_one_view_and_verifies_every_frame(room):
    received = room.received
    video = received[received.kind == "video"]
    assert room.summary["encode"] == "clip" and room.summary["views"] == 1
    for name, mine in video.groupby("receiver"):
        decoded = set(mine[mine.decoded].publisher)
        assert len(decoded) <= 1 and set(mine[mine.reason == "not_decoded"].publisher).isdisjoint(decoded)
    carol, dave = (set(video[(video.receiver == n) & video.decoded].publisher) for n in ("carol", "dave"))
    assert carol and dave and carol != dave  # the listeners' views spread over the two publishers
    assert (received.decoded <= received.verified).all()  # nothing is decoded that was not verified
    assert (video[video.reason == "not_decoded"].verified).all()
    for p in room.summary["participants"]:
        mine = received[received.receiver == p["name"]]
        assert p["video_frames_verified"] == int((mine.verified & (mine.kind == "video")).sum())
        assert p["video_frames_verified"] >= p["video_frames_decoded"]


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
    with pytest.raises(ValueError, match="encode"):
        run_call("e2ee", 3, 1.0, size="ci", encode="cached")
    for views in (-1, "all"):
        with pytest.raises(ValueError, match="views"):
            run_call("e2ee", 3, 1.0, size="ci", views=views)
    with pytest.raises(ValueError, match="does not take"):
        run_call("e2ee", 3, 1.0, size="ci", stack="webrtc", publishers=1)


def test_the_command_passes_the_room_options_to_the_lab_stack():
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--participants", "12", "--publishers", "4", "--loudest", "2",
                              "--encode", "clip", "--views", "sample"])
    lab = registered()["lab"]
    assert {keyword: getattr(args, dest) for dest, keyword in lab.arguments.items()
            if getattr(args, dest, None)} == {"publishers": 4, "loudest": 2, "encode": "clip", "views": "sample"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--views", "0"])  # 0 would read as unset: the command takes >= 1 or sample


def test_a_sample_view_has_each_publishers_video_decoded_by_one_receiver():
    from e2ee_lab.call.run import _views

    class P:
        def __init__(self, name, publishes):
            self.name, self.publishes_video = name, publishes

    people = [P("alice", True), P("bob", True), P("carol", False), P("dave", False)]
    assert _views(people, "sample") == {"alice": [], "bob": ["alice"], "carol": ["bob"], "dave": []}
    assert _views(people, 1) == {"alice": ["bob"], "bob": ["alice"], "carol": ["alice"], "dave": ["bob"]}
    assert _views(people, None) == dict.fromkeys(["alice", "bob", "carol", "dave"])


def test_a_sample_view_has_each_participants_audio_decoded_by_one_receiver_and_others_hear_all():
    from e2ee_lab.call.run import _audio_views

    class P:
        def __init__(self, name):
            self.name = name

    people = [P(n) for n in ("alice", "bob", "carol")]
    assert _audio_views(people, "sample") == {"alice": ["carol"], "bob": ["alice"], "carol": ["bob"]}
    for views in (None, 1, 0):  # a listener decodes every speaker the SFU forwards
        assert _audio_views(people, views) == dict.fromkeys(["alice", "bob", "carol"])
