"""Pre-encoded clips and frame verification, in memory: no sockets, no clocks."""

from __future__ import annotations

import pytest
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

from e2ee_lab.call.clip import EncodedClip, encoded_clip, speech_clip
from e2ee_lab.call.frame_keys import make_frame_crypto
from e2ee_lab.call.pipeline import MediaReceiver, MediaSender, SenderOptions
from e2ee_lab.media.codecs import VP8Decoder, picture_matches
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource

FPS = 15


def _scene(index: int = 0) -> Scene:
    return Scene(index, width=160, height=120, fps=FPS)


def test_a_clip_has_a_key_frame_every_second_and_decodes_to_the_scene():
    clip = EncodedClip(_scene(), 2 * FPS)
    assert [f.type for f in clip.frames if f.data][:1] == ["key"]
    assert {i for i, f in enumerate(clip.frames) if f.type == "key"} == {0, FPS}
    decoder = VP8Decoder()
    for i, f in enumerate(clip.frames[:5]):
        assert picture_matches(decoder.decode(f.data), _scene().rgb(i))
    frame = clip.frame(3, ssrc=77, payload_type=96, timestamp_offset=1000)
    assert frame.metadata.synchronizationSource == 77 and frame.timestamp == 1000 + 3 * 90000 // FPS
    with pytest.raises(ValueError):
        EncodedClip(_scene(), 0)


def test_the_cache_encodes_a_scene_once_and_grows_when_a_longer_clip_is_asked():
    first = encoded_clip(_scene(5), 4)
    assert encoded_clip(_scene(5), 3) is first and encoded_clip(_scene(5), 4) is first
    longer = encoded_clip(_scene(5), 6)
    assert longer is not first and len(longer) == 6 and encoded_clip(_scene(5), 2) is longer
    assert encoded_clip(_scene(6), 4) is not longer  # another scene, another clip


def _pair(*, clip=None, sent_data=True, decode_video=None, decode_audio=None):
    sender = MediaSender("alice", scene=_scene(), speech=SpeechSource(), crypto=make_frame_crypto("dtls-srtp", None),
                         ssrcs={"video": 11, "audio": 22}, seed=0, srtp_overhead=16, clip=clip)
    receiver = MediaReceiver("bob", crypto=make_frame_crypto("dtls-srtp", None), rtcp_ssrc=9,
                             truth=lambda pub, kind, ts: sender.sent(kind, ts), decode_video=decode_video,
                             decode_audio=decode_audio,
                             sent_data=(lambda pub, kind, ts: sender.sent_data(kind, ts)) if sent_data else None)
    receiver.announce(11, "alice", 0, "video")
    receiver.announce(22, "alice", 0, "audio")
    return sender, receiver


def _run(sender, receiver, frames: int = 6):
    for i in range(frames):
        for packet in sender.video_frame(i, i / FPS) + sender.audio_frame(i, i / FPS):
            receiver.receive_rtp(packet, i / FPS)
    receiver.flush(10.0)
    return receiver.records


@pytest.mark.parametrize("clip", [False, True], ids=["live", "clip"])
def test_every_frame_is_verified_against_what_was_sent(clip):
    sender, receiver = _pair(clip=EncodedClip(_scene(), 8) if clip else None)
    records = _run(sender, receiver)
    assert len(records) == 12 and all(r.verified and r.decoded for r in records)


def test_a_receiver_without_the_sent_bytes_verifies_nothing_and_still_decodes():
    records = _run(*_pair(sent_data=False))
    assert all(r.decoded and not r.verified for r in records)


def test_a_frame_that_differs_from_what_was_sent_is_not_verified_and_still_goes_to_the_decoder():
    sender, receiver = _pair()
    receiver._sent_data = lambda pub, kind, ts: b"not what was sent"
    records = _run(sender, receiver, frames=3)
    assert all(not r.verified and r.decoded for r in records)  # a measurement, not a receiver's check
    assert receiver.mismatched == 6 and not receiver.counters() and receiver.plis_sent == 0


def test_audio_outside_the_receivers_views_is_verified_not_decoded():
    records = _run(*_pair(decode_audio=[]))
    audio = [r for r in records if r.kind == "audio"]
    assert len(audio) == 6 and all(r.verified and not r.decoded and r.reason == "not_decoded" for r in audio)
    assert all(r.decoded for r in records if r.kind == "video")  # video follows decode_video (all)


def test_video_outside_the_receivers_views_is_verified_not_decoded():
    records = _run(*_pair(decode_video=[]))
    video = [r for r in records if r.kind == "video"]
    audio = [r for r in records if r.kind == "audio"]
    assert all(r.verified and not r.decoded and r.reason == "not_decoded" for r in video)
    assert all(r.verified and r.decoded for r in audio)


def test_a_pli_with_a_clip_is_answered_by_the_clips_next_key_frame():
    sender, _ = _pair(clip=EncodedClip(_scene(), 2 * FPS))
    sender.video_frame(0, 0.0)
    sender.handle_rtcp(bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=9, media_ssrc=11)))
    for i in range(1, 2 * FPS):
        sender.video_frame(i, i / FPS)
    types = [r.frame_type for r in sender.records]
    assert types[0] == types[FPS] == "key" and set(types[1:FPS]) == {"delta"}
    assert not sender.take_key_frame_request()  # the key frame at FPS closed the request


@pytest.mark.parametrize("cbr", [False, True], ids=["vbr", "cbr"])
def test_a_speech_clip_holds_exactly_what_a_live_encoder_emits(cbr):
    live = MediaSender("alice", scene=_scene(), speech=SpeechSource(offset_s=1.0),
                       crypto=make_frame_crypto("dtls-srtp", None), ssrcs={"video": 11, "audio": 22}, seed=0,
                       srtp_overhead=16, options=SenderOptions(opus_cbr=cbr))
    clipped = MediaSender("alice", scene=_scene(), speech=SpeechSource(offset_s=1.0),
                          crypto=make_frame_crypto("dtls-srtp", None), ssrcs={"video": 11, "audio": 22}, seed=0,
                          srtp_overhead=16, options=SenderOptions(opus_cbr=cbr),
                          speech_clip=speech_clip(SpeechSource(offset_s=1.0), 20, cbr=cbr))
    for i in range(20):
        assert live.audio_frame(i, i * 0.02) == clipped.audio_frame(i, i * 0.02)  # the same RTP packets
    assert [(r.timestamp, r.speaking, r.encoded_size) for r in live.records] == \
        [(r.timestamp, r.speaking, r.encoded_size) for r in clipped.records]
    assert speech_clip(SpeechSource(offset_s=1.0), 10, cbr=cbr) is speech_clip(SpeechSource(offset_s=1.0), 20, cbr=cbr)


def test_a_sender_with_clips_plans_its_ground_truth_and_sending_replaces_it():
    clipped, _ = _pair(clip=EncodedClip(_scene(), 4))
    clipped.speech_clip = speech_clip(SpeechSource(), 5)
    clipped.plan(origin=10.0, video_frames=4, audio_frames=5)
    live, _ = _pair()
    timestamp = (clipped._vp8.timestamp_offset + 2 * 90000 // FPS) % (1 << 32)  # picture 2's RTP timestamp
    planned, thumb = clipped.sent("video", timestamp)
    assert planned.frame_index == 2 and planned.captured_at == pytest.approx(10.0 + 2 / FPS)
    assert planned.sent_at != planned.sent_at and thumb is clipped.clip.frames[2].thumbnail  # NaN: not sent yet
    assert clipped.sent_data("video", timestamp) == clipped.clip.frames[2].data
    audio = [clipped.sent("audio", ts) for (kind, ts) in list(clipped._truth) if kind == "audio"]
    assert sorted(r.frame_index for r, _ in audio) == [0, 1, 2, 3, 4]
    clipped.video_frame(2, 11.0, captured_at=10.5)
    assert clipped.sent("video", timestamp)[0].sent_at == 11.0  # the real record replaced the plan
    with pytest.raises(ValueError, match="clips"):
        live.plan(origin=0.0, video_frames=1, audio_frames=1)
