"""The lab stack's pipeline with the SFrame RTP payload format (draft-ietf-avtcore-rtp-sframe-02):
e2ee frames from real key-agreement members, in memory, per-frame and per-packet."""

import pytest

from e2ee_lab.call.frame_keys import make_frame_crypto
from e2ee_lab.call.pipeline import MediaReceiver, MediaSender
from e2ee_lab.crypto.keys import parse_kid
from e2ee_lab.crypto.keys.simulation import Group
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource
from e2ee_lab.rtp import RTPSFrameMode, SFramePayloadDescriptor, parse_rtp

MODES = list(RTPSFrameMode)


def _pair(mode, *, announce_format=True, announced=None):
    """Alice sends to Bob; ``announced``: SSRC -> (member, kind) the SFU claims (default the truth)."""
    group = Group(seed=3)
    alice, bob = group.join(0.0), group.join(0.0)
    group.tick(10.0)
    scene = Scene(0, width=160, height=120, fps=15)
    sender = MediaSender("alice", scene=scene, speech=SpeechSource(), ssrcs={"video": 1111, "audio": 2222},
                         crypto=make_frame_crypto("e2ee", group.members[alice]), seed=0,
                         srtp_overhead=16, rtp_sframe=mode)
    receiver = MediaReceiver("bob", crypto=make_frame_crypto("e2ee", group.members[bob]), rtcp_ssrc=9,
                             truth=lambda pub, kind, ts: sender.sent(kind, ts))
    for ssrc, kind in ((1111, "video"), (2222, "audio")):
        member, kind = (announced or {}).get(ssrc, (alice, kind))
        receiver.announce(ssrc, "alice", member, kind, mode.value if announce_format else None)
    return sender, receiver


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_payload_format_round_trip_decodes_every_frame(mode):
    sender, receiver = _pair(mode)
    packets = []
    for i in range(8):
        now = 10 + i / 15
        batch = sender.video_frame(i, now) + sender.audio_frame(i, now)
        packets += batch
        for packet in batch:
            assert receiver.receive_rtp(packet, now) == []
    receiver.flush(11.0)
    assert len(receiver.records) == 16 and all(r.decoded for r in receiver.records)
    descriptors = [SFramePayloadDescriptor.parse(parse_rtp(p).payload)[0] for p in packets]
    assert {d.packetized for d in descriptors} == {mode is RTPSFrameMode.PER_PACKET}
    assert sum(receiver.counters().values()) == 0


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize("announced", [{1111: (1, "video"), 2222: (1, "audio")}, {2222: (0, "video")}],
                         ids=["alice-as-bob", "audio-as-video"])
def test_the_payload_format_receiver_checks_the_kid_against_the_stream(mode, announced):
    # The SFU announces Alice's streams as another member's, or her audio as video: as on the codec
    # path, every ciphertext whose KID names another member or kind is refused before decryption.
    sender, receiver = _pair(mode, announced=announced)
    packets = 0
    for i in range(4):
        now = 10 + i / 15
        for packet in sender.video_frame(i, now) + sender.audio_frame(i, now):
            packets += parse_rtp(packet).ssrc in announced
            receiver.receive_rtp(packet, now)
    receiver.flush(11.0)
    refused = 4 * len(announced) if mode is RTPSFrameMode.PER_FRAME else packets
    assert receiver.counters()["kid_stream_mismatch"] == refused > 0
    assert not [r for r in receiver.records if r.ssrc in announced]
    assert len(receiver.records) == 4 * (2 - len(announced))  # the honestly announced stream plays
    assert all(r.decoded for r in receiver.records)


def test_a_receiver_not_told_of_the_payload_format_drops_it_visibly():
    sender, receiver = _pair(RTPSFrameMode.PER_FRAME, announce_format=False)
    for i in range(3):
        for packet in sender.video_frame(i, 10 + i / 15):
            receiver.receive_rtp(packet, 10 + i / 15)
    receiver.flush(11.0)
    assert not any(r.decoded for r in receiver.records)
    assert sum(receiver.counters().values()) > 0


def test_payload_format_needs_e2ee():
    with pytest.raises(ValueError, match="e2ee"):
        MediaSender("alice", scene=Scene(0, width=160, height=120), speech=SpeechSource(),
                    crypto=make_frame_crypto("dtls-srtp", None), ssrcs={"video": 1, "audio": 2},
                    seed=0, srtp_overhead=16, rtp_sframe=RTPSFrameMode.PER_FRAME)


@pytest.mark.parametrize("kwargs", [{"mode": "dtls-srtp"}, {"mode": "dtls-srtp", "stack": "webrtc"},
                                    {"mode": "e2ee", "stack": "webrtc", "browser_participants": 1}],
                         ids=["not-e2ee", "not-e2ee-webrtc", "browser"])
def test_rtp_sframe_is_refused_where_it_cannot_run(kwargs):
    from e2ee_lab import run_call

    mode = kwargs.pop("mode")
    with pytest.raises(ValueError, match="rtp.sframe"):
        run_call(mode, 2, 0.5, rtp_sframe="per-frame", **kwargs)


# --- the aiortc stack: a=sframe in the SDP, the payload format through aiortc's hooks -------------


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_webrtc_stack_call_in_the_payload_format(mode):
    from e2ee_lab.webrtc.call import run_webrtc_call

    result = run_webrtc_call("e2ee", 2, 1.5, seed=2, size="ci", rtp_sframe=mode.value)
    summary = result.summary
    assert summary["rtp_sframe"] == mode.value
    for p in summary["participants"]:
        assert p["packetization"] == f"sframe {mode.value}"
        assert p["video_frames_decoded"] >= 0.9 * p["video_frames_expected"] > 0
        assert p["audio_frames_decoded"] > 0
    assert summary["sfu"]["video_frames_decodable"] == 0 < summary["sfu"]["video_frames_seen"]
    descriptors = {SFramePayloadDescriptor.parse(payload)[0].packetized
                   for payload in result.view.payload if payload}
    assert descriptors == {mode is RTPSFrameMode.PER_PACKET}  # every packet the SFU saw: T bit


def test_the_sfu_view_shows_the_descriptor_and_the_sframe_header_only():
    from e2ee_lab.analysis.sfu_view import descriptor_view, view_packets
    from e2ee_lab import run_call

    result = run_call("e2ee", 2, 1.0, seed=4, size="ci", rtp_sframe="per-frame")
    table = descriptor_view(view_packets(result.view[result.view.direction == "in"]), ["alice", "bob"])
    assert len(table) > 0 and not table["T"].any()
    starts = table[table["S"]]
    assert starts["kid"].notna().all() and table[~table["S"]]["kid"].isna().all()
    fields = starts["kid"].map(lambda k: parse_kid(int(k)))  # KID = epoch << 12 | kind << 8 | member
    assert {f.member for f in fields} == {0, 1}
    assert [f.kind for f in fields] == list(starts["kind"])  # each kind under its own KID
    video = table[table["kind"] == "video"]
    assert (video[video["marker"]]["E"]).all()  # the marker rides on the E = 1 fragment


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_ciphertext_entropy_leaves_out_the_descriptors_and_the_sframe_headers(mode):
    import pandas as pd

    from e2ee_lab.analysis.sfu_view import byte_entropy, ciphertext_entropy
    from e2ee_lab.crypto.sframe import decode_header

    sender, _ = _pair(mode)
    packets = [parse_rtp(p) for i in range(6) for p in sender.video_frame(i, 10 + i / 15)]
    rows = pd.DataFrame([(float(i), "alice", "video", p.ssrc, p.payload_type, p.sequence_number, p.timestamp,
                          p.marker, bytes(p.payload), None, None) for i, p in enumerate(packets)],
                        columns=["time", "publisher", "kind", "ssrc", "payload_type", "seq", "timestamp", "marker",
                                 "payload", "audio_level", "voice_activity"])
    ciphertexts, current = [], b""  # each S..E run: its fragments after their descriptor byte
    for p in packets:
        descriptor, fragment = SFramePayloadDescriptor.parse(p.payload)
        current = fragment if descriptor.start else current + fragment
        if descriptor.end:
            ciphertexts.append(current)
    body = b"".join(c[decode_header(c)[2]:] for c in ciphertexts)
    assert ciphertext_entropy(rows, "e2ee", "video", sframe_publishers=["alice"]) == {"alice": byte_entropy(body)}
    assert ciphertext_entropy(rows, "e2ee", "video") != {"alice": byte_entropy(body)}  # read as VP8: wrong bytes
