"""Tests for e2ee_lab.media: scenes, the speech sample, VP8/Opus encode and decode, ciphertext decoding."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from e2ee_lab.crypto.transforms import make_transform
from e2ee_lab.media.codecs import (
    AUDIO_CLOCK,
    OPUS_PAYLOAD_TYPE,
    VIDEO_CLOCK,
    VP8_PAYLOAD_TYPE,
    DecodeError,
    OpusDecoder,
    OpusEncoder,
    VP8Decoder,
    VP8Encoder,
    mean_abs_error,
    picture_matches,
    vp8_frame_type,
    vp8_key_frame_size,
)
from e2ee_lab.media.scene import PARTICIPANTS, SECRETS, Scene, secret_line, to_rgb, to_video_frame, video_size
from e2ee_lab.media.speech import (
    AUDIO_RATE,
    FRAME_SAMPLES,
    SILENCE_LEVEL,
    SpeechSource,
    audio_level,
    chunk_count,
    load_speech,
)

W, H, FPS = 160, 120, 15
N_VIDEO = 24


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene(0, seed=7, width=W, height=H, fps=FPS)


@pytest.fixture(scope="module")
def video(scene):
    """24 encoded frames with a key frame requested at frame 12."""
    enc = VP8Encoder(ssrc=0x1234, fps=FPS, timestamp_offset=1000)
    return [enc.encode(scene.video_frame(i), force_keyframe=(i == 12)) for i in range(N_VIDEO)]


@pytest.fixture(scope="module")
def speech():
    return load_speech()


# --- scenes ------------------------------------------------------------------------------------------


def test_scene_is_deterministic_per_seed():
    a, b = Scene(1, seed=3, width=W, height=H), Scene(1, seed=3, width=W, height=H)
    assert all(np.array_equal(a.rgb(i), b.rgb(i)) for i in (0, 5, 40))
    assert not np.array_equal(a.rgb(5), Scene(1, seed=4, width=W, height=H).rgb(5))


def test_participants_differ_and_badges_are_fictional_placeholders():
    alice, bob = Scene(0, width=W, height=H), Scene(1, width=W, height=H)
    assert alice.badge == "ALICE / Finance" and bob.badge.startswith("BOB")
    assert alice.secret.startswith("CONFIDENTIAL: ") and alice.secret != bob.secret
    band = slice(int(H * 0.40), int(H * 0.65))
    assert not np.array_equal(alice.rgb(0)[band], Scene(1, seed=0, width=W, height=H).rgb(0)[band])
    assert Scene(len(PARTICIPANTS), width=W, height=H).badge == alice.badge  # wraps around


def test_the_confidential_line_is_drawn_per_seed_and_seed_0_keeps_the_recordings_line():
    for participant, (template, blanks) in enumerate(SECRETS):
        assert secret_line(participant, 0) == template.format(*(choices[0] for choices in blanks))
        assert Scene(participant, width=W, height=H).secret == "CONFIDENTIAL: " + secret_line(participant, 0)
        lines = {secret_line(participant, seed) for seed in range(1, 300)}
        assert len(lines) >= (100 if participant == 0 else 8)  # Lab 01 reads participant 0's line
        assert secret_line(participant, 5) == secret_line(participant, 5)
    assert Scene(0, seed=9, width=W, height=H).secret == "CONFIDENTIAL: " + secret_line(0, 9)
    band = slice(int(H * 0.40), int(H * 0.65))
    assert not np.array_equal(Scene(0, seed=1, width=W, height=H).rgb(0)[band],
                              Scene(0, seed=2, width=W, height=H).rgb(0)[band])


def test_scene_moves_but_badge_and_text_stay(scene):
    first, later = scene.rgb(0), scene.rgb(10)
    assert not np.array_equal(first[int(H * 0.7) :], later[int(H * 0.7) :])  # the ball moved
    band = slice(int(H * 0.40), int(H * 0.62))
    assert np.array_equal(first[band], later[band])  # the confidential line is static


def test_video_frame_format_and_sizes(scene):
    frame = scene.video_frame(3)
    assert (frame.format.name, frame.width, frame.height, frame.pts) == ("yuv420p", W, H, 3)
    assert frame.time_base == Fraction(1, FPS)
    assert video_size("ci") == (320, 240, 15) and video_size("full") == (640, 480, 30)
    assert mean_abs_error(to_rgb(to_video_frame(scene.rgb(3))), scene.rgb(3)) < 6  # yuv420p rounding


@pytest.mark.parametrize("size", [(63, 48), (64, 47), (65, 48)], ids=["narrow", "short", "odd"])
def test_scene_rejects_bad_sizes(size):
    with pytest.raises(ValueError):
        Scene(0, width=size[0], height=size[1])


def test_to_video_frame_rejects_non_rgb():
    with pytest.raises(ValueError):
        to_video_frame(np.zeros((8, 8), dtype=np.uint8))


# --- VP8 -----------------------------------------------------------------------------------------------


def test_vp8_key_frame_first_and_on_request(video):
    types = [f.type for f in video]
    assert types[0] == "key" and types[12] == "key"
    assert types.count("key") == 2
    assert vp8_key_frame_size(video[0].data) == (W, H)
    assert vp8_key_frame_size(video[1].data) is None
    assert len(video[0].data) > 3 * np.median([len(f.data) for f in video if f.type == "delta"])


def test_vp8_timestamps_and_metadata(video):
    step = VIDEO_CLOCK // FPS
    assert [f.timestamp for f in video[:3]] == [1000, 1000 + step, 1000 + 2 * step]
    md = video[5].metadata
    assert (md.synchronizationSource, md.payloadType, md.kind) == (0x1234, VP8_PAYLOAD_TYPE, "video")
    assert (md.width, md.height) == (W, H)
    assert (md.frameId, md.captureTime) == (5, pytest.approx(5 / FPS))


def test_vp8_round_trip_is_close(scene, video):
    dec = VP8Decoder()
    errors = [mean_abs_error(dec.decode_rgb(f.data), scene.rgb(i)) for i, f in enumerate(video)]
    assert max(errors) < 10
    assert picture_matches(dec.decode(video[12].data), scene.rgb(12))
    assert not picture_matches(scene.rgb(12), Scene(3, seed=1, width=W, height=H).rgb(12))


def test_vp8_encoder_is_deterministic(scene, video):
    enc = VP8Encoder(ssrc=0x1234, fps=FPS, timestamp_offset=1000)
    again = [enc.encode(scene.rgb(i), force_keyframe=(i == 12)) for i in range(6)]  # numpy input too
    assert [f.data for f in again] == [f.data for f in video[:6]]


def test_native_vp8_decoder_also_decodes(scene, video):
    dec = VP8Decoder("vp8")
    assert mean_abs_error(dec.decode_rgb(video[0].data), scene.rgb(0)) < 10


def test_delta_frames_need_their_key_frame(video):
    dec = VP8Decoder()
    with pytest.raises(DecodeError):
        dec.decode(video[3].data)  # no reference yet
    assert dec.decode(video[12].data).width == W  # the next key frame recovers


def test_vp8_frame_type_of_empty_frame():
    with pytest.raises(DecodeError):
        vp8_frame_type(b"")


# --- VP8 on ciphertext: "decodable" means "produced the sent picture" -----------------------------------


@pytest.mark.parametrize("codec", ["libvpx", "vp8"])
def test_sframe_ciphertext_never_decodes(video, codec):
    pair, dec = make_transform("e2ee", seed=1), VP8Decoder(codec)
    for frame in video:
        with pytest.raises(DecodeError):
            dec.decode(pair.sender.transform(frame).data)


@pytest.mark.parametrize("codec", ["libvpx", "vp8"])
def test_clear_prefix_ciphertext_never_shows_the_picture(scene, video, codec):
    """The clear VP8 header lets a decoder try; it may emit garbage pictures but never the sent one."""
    outcomes = {"refused": 0, "garbage": 0, "match": 0}
    for seed in range(3):
        pair, dec = make_transform("clear-prefix", seed=seed), VP8Decoder(codec)
        for i, frame in enumerate(video):
            try:
                picture = dec.decode(pair.sender.transform(frame).data)
            except DecodeError:
                outcomes["refused"] += 1
                continue
            outcomes["match" if picture_matches(picture, scene.rgb(i)) else "garbage"] += 1
    assert outcomes["match"] == 0
    assert outcomes["refused"] > outcomes["garbage"]


def test_plain_aes_gcm_of_a_key_frame_is_refused(video):
    body = AESGCM(bytes(16)).encrypt(bytes(12), video[0].data, b"")
    with pytest.raises(DecodeError):
        VP8Decoder().decode(body)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=0, max_size=400))
def test_vp8_garbage_raises_decode_error_or_gives_a_picture(data):
    dec = VP8Decoder()
    try:
        picture = dec.decode(data)
    except DecodeError:
        return
    assert isinstance(picture, av.VideoFrame)


def test_vp8_garbage_with_a_valid_key_header_does_not_crash(video):
    dec, rng = VP8Decoder(), np.random.default_rng(5)
    for size in (0, 1, 64, 500, 3000):
        data = video[0].data[:10] + rng.bytes(size)
        try:
            dec.decode(data)
        except DecodeError:
            pass
    assert dec.decode(video[0].data).width == W  # still usable afterwards


# --- speech -----------------------------------------------------------------------------------------------


def test_speech_sample_and_ground_truth(speech):
    assert speech.sample_rate == AUDIO_RATE and speech.pcm.dtype == np.int16
    assert 15 <= speech.duration <= 20.5
    assert len(speech.segments) == len(speech.phrases) >= 4
    starts, ends = zip(*speech.segments)
    assert all(0 <= s < e <= speech.duration for s, e in speech.segments)
    pauses = [b - a for a, b in zip(ends, starts[1:])]
    assert min(pauses) >= 0.79 and max(pauses) <= 2.01
    def level(a: float, b: float) -> int:
        return audio_level(speech.pcm[int(a * AUDIO_RATE) : int(b * AUDIO_RATE)])

    loud = [level(s, e) for s, e in speech.segments]
    quiet = [level(a, b) for a, b in zip(ends, starts[1:])]
    assert max(loud) < 35 and min(quiet) > 55


@pytest.mark.parametrize(
    "samples, level",
    [
        (np.zeros(960, np.int16), SILENCE_LEVEL),
        (np.array([], np.int16), SILENCE_LEVEL),
        (np.full(960, 32767, np.int16), 0),
        (np.full(960, 3277, np.int16), 20),
        (np.full(960, 33, np.int16), 60),
        (np.ones(960, np.int16), 90),
    ],
    ids=["silence", "empty", "full-scale", "-20dBov", "-60dBov", "one-lsb"],
)
def test_rfc6464_audio_level(samples, level):
    assert audio_level(samples) == level


def test_chunks_carry_ground_truth_level_and_vad(speech):
    src = SpeechSource(speech)
    chunks = list(src.chunks(chunk_count(speech.duration)))
    assert len(chunks) == round(speech.duration / 0.02)
    truth = np.array([c.speaking for c in chunks])
    vad = np.array([c.voice_activity for c in chunks])
    assert 0.5 < truth.mean() < 0.9
    assert (truth == vad).mean() > 0.9
    assert all(len(c.pcm) == FRAME_SAMPLES and 0 <= c.audio_level <= 127 for c in chunks)
    assert chunks[3].capture_time == pytest.approx(0.06)


def test_speech_loops_and_offsets(speech):
    src = SpeechSource(speech)
    loop = chunk_count(speech.duration)
    assert np.array_equal(src.chunk(loop).pcm, src.chunk(0).pcm)
    shifted = SpeechSource(speech, offset_s=0.2)
    assert np.array_equal(shifted.chunk(0).pcm, src.chunk(10).pcm)
    assert shifted.chunk(0).speaking == src.chunk(10).speaking


def test_chunks_in_a_row_equal_chunks_one_by_one_and_pcm_their_samples(speech):
    # chunks() carries each level forward for the V bit; pcm() takes the samples in one go
    loop = chunk_count(speech.duration)
    for offset_s, start, count in [(0.0, 0, 40), (0.2, loop - 30, 60), (1.3, 7, 25)]:  # silence before 0; the loop
        src = SpeechSource(speech, offset_s=offset_s)
        one_by_one = [src.chunk(i) for i in range(start, start + count)]
        in_a_row = list(src.chunks(count, start=start))
        assert [(c.index, c.audio_level, c.voice_activity, c.speaking, c.capture_time) for c in in_a_row] == [
            (c.index, c.audio_level, c.voice_activity, c.speaking, c.capture_time) for c in one_by_one]
        assert all(np.array_equal(a.pcm, b.pcm) for a, b in zip(in_a_row, one_by_one))
        samples = src.pcm(count, start=start)
        assert samples.dtype == one_by_one[0].pcm.dtype
        assert np.array_equal(samples, np.concatenate([c.pcm for c in one_by_one]))
    assert any(c.voice_activity != (c.audio_level <= 50) for c in SpeechSource(speech).chunks(loop))  # hangover seen
    assert len(SpeechSource(speech).pcm(0)) == 0


# --- Opus --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opus_frames(speech):
    src, enc = SpeechSource(speech), OpusEncoder(ssrc=0xA0, timestamp_offset=5)
    chunks = list(src.chunks(100, start=25))  # 0.5 s .. 2.5 s: inside the first phrase
    return chunks, [enc.encode(c) for c in chunks]


def test_opus_frames_and_metadata(opus_frames):
    chunks, frames = opus_frames
    assert all(f is not None and f.type is None and f.kind == "audio" for f in frames)
    assert frames[1].timestamp - frames[0].timestamp == FRAME_SAMPLES == AUDIO_CLOCK // 50
    assert frames[0].timestamp == 5 + 25 * FRAME_SAMPLES
    md = frames[10].metadata
    assert (md.synchronizationSource, md.payloadType, md.kind) == (0xA0, OPUS_PAYLOAD_TYPE, "audio")
    assert (md.audioLevel, md.voiceActivity) == (chunks[10].audio_level, chunks[10].voice_activity)
    assert md.frameId == 35


def test_opus_round_trip(opus_frames):
    chunks, frames = opus_frames
    dec = OpusDecoder()
    out = np.concatenate([dec.decode(f.data) for f in frames]).astype(np.float64)
    sent = np.concatenate([c.pcm for c in chunks]).astype(np.float64)
    assert len(out) == len(sent)
    delay = max(range(0, 1000, 8), key=lambda k: np.dot(sent[: len(sent) - k], out[k:]))
    assert np.corrcoef(sent[: len(sent) - delay], out[delay:])[0, 1] > 0.8


def test_opus_decode_count_decodes_like_decode_without_the_samples(opus_frames):
    _, frames = opus_frames
    full, counting = OpusDecoder(), OpusDecoder()
    for f in frames:
        assert counting.decode_count(f.data) == len(full.decode(f.data)) == 960
    for bad in (b"", b"\xff" * 3):
        with pytest.raises(DecodeError):
            OpusDecoder().decode_count(bad)


def test_opus_rejects_wrong_chunk_size(speech):
    chunk = SpeechSource(speech).chunk(0)
    bad = type(chunk)(0, chunk.pcm[:480], AUDIO_RATE, 0.0, False, 127, False)
    with pytest.raises(ValueError):
        OpusEncoder(ssrc=1).encode(bad)


def test_opus_decodes_ciphertext_as_noise_or_error(opus_frames):
    """Opus has no integrity check: ciphertext mostly decodes (to noise). Only the AEAD tag catches it."""
    _, frames = opus_frames
    pair, dec = make_transform("e2ee", seed=2), OpusDecoder()
    results = {"noise": 0, "error": 0}
    for frame in frames:
        try:
            dec.decode(pair.sender.transform(frame).data)
            results["noise"] += 1
        except DecodeError:
            results["error"] += 1
    assert results["noise"] + results["error"] == len(frames)
    assert results["noise"] > 0


@settings(max_examples=150, deadline=None)
@given(data=st.binary(min_size=0, max_size=300))
def test_opus_garbage_raises_decode_error_or_gives_samples(data):
    try:
        pcm = OpusDecoder().decode(data)
    except DecodeError:
        return
    assert pcm.dtype == np.int16 and len(pcm) > 0
