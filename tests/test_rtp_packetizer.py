"""RTPPacketizer: VP8 (RFC 7741) and Opus (RFC 7587) packets, sizes, sequence numbers, marker."""

import os

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.rtp import (
    Codec,
    EmptyFrame,
    FrameTooLarge,
    InvalidFrame,
    RTPPacketizer,
    VP8PayloadDescriptor,
    parse_rtp,
)

VIDEO = FrameMetadata(0xCAFE, 96, "video")


def video(data: bytes, timestamp: int = 0) -> EncodedFrame:
    return EncodedFrame(data, timestamp, VIDEO, "delta")


def audio(data: bytes = b"\xfc\x00", timestamp: int = 0, level=None, vad=None) -> EncodedFrame:
    meta = FrameMetadata(0xA0D10, 111, "audio", audioLevel=level, voiceActivity=vad)
    return EncodedFrame(data, timestamp, meta)


def vp8_packetizer(**kwargs) -> RTPPacketizer:
    return RTPPacketizer(Codec.VP8, ssrc=0xCAFE, payload_type=96, seed=7, **kwargs)


def opus_packetizer(**kwargs) -> RTPPacketizer:
    return RTPPacketizer(Codec.OPUS, ssrc=0xA0D10, payload_type=111, seed=7, **kwargs)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 100_000), mid=st.sampled_from([None, "0", "video-mid-16byte"]))
def test_every_packet_fits_the_mtu_after_real_srtp(size, mid):
    packetizer = vp8_packetizer(mid=mid)
    policy = pylibsrtp.Policy(
        key=bytes(28),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    )
    session = pylibsrtp.Session(policy)
    packets = packetizer.serialize(video(os.urandom(size)))
    assert all(len(p) <= 1184 for p in packets)
    assert all(len(session.protect(p)) <= 1200 for p in packets)
    assert len(packets) == -(-size // (packetizer.max_payload_size - 4))  # fewest packets


def test_payload_budget_is_exact():
    packetizer = vp8_packetizer()
    assert packetizer.max_packet_size == 1200 - 16
    room = packetizer.max_payload_size - 4  # minus the 4-byte descriptor
    one = packetizer.serialize(video(b"x" * room))
    assert [len(p) for p in one] == [1184]
    two = packetizer.serialize(video(b"x" * (room + 1)))
    assert len(two) == 2 and max(len(p) for p in two) <= 1184


def test_hmac_profile_overhead_and_custom_mtu():
    assert vp8_packetizer(srtp_overhead=10).max_packet_size == 1190
    assert vp8_packetizer(mtu=500).max_packet_size == 484


def test_vp8_frame_layout():
    packetizer = vp8_packetizer(first_sequence_number=100, first_picture_id=32767)
    frames = [packetizer.packetize(video(os.urandom(3000), timestamp=3000 * i)) for i in range(3)]
    for index, packets in enumerate(frames):
        descriptors = [VP8PayloadDescriptor.parse(p.payload)[0] for p in packets]
        assert [d.starts_frame for d in descriptors] == [True] + [False] * (len(packets) - 1)
        assert [p.marker for p in packets] == [0] * (len(packets) - 1) + [1]
        assert {p.timestamp for p in packets} == {3000 * index}
        assert {d.picture_id for d in descriptors} == {(32767 + index) % 32768}
    seqs = [p.sequence_number for packets in frames for p in packets]
    assert seqs == list(range(100, 100 + len(seqs)))
    assert packetizer.frames_sent == 3 and packetizer.packets_sent == len(seqs)


def test_sequence_numbers_wrap_across_65535():
    packetizer = vp8_packetizer(first_sequence_number=65533)
    seqs = [p.sequence_number for _ in range(3) for p in packetizer.packetize(video(b"v" * 2000))]
    assert seqs == [65533, 65534, 65535, 0, 1, 2]
    assert packetizer.sequence_number == 3


def test_seed_makes_stream_start_deterministic():
    a, b = vp8_packetizer(), vp8_packetizer()
    assert (a.sequence_number, a.picture_id) == (b.sequence_number, b.picture_id)
    starts = {RTPPacketizer(Codec.VP8, ssrc=1, payload_type=96, seed=s).sequence_number
              for s in range(20)}
    assert len(starts) > 15
    other_ssrc = RTPPacketizer(Codec.VP8, ssrc=1, payload_type=96, seed=7)
    assert other_ssrc.sequence_number != a.sequence_number


def test_timestamp_offset_wraps_modulo_2_32():
    packetizer = vp8_packetizer(timestamp_offset=2**32 - 10)
    packets = packetizer.packetize(video(b"v", timestamp=30))
    assert packets[0].timestamp == 20


@given(st.binary(min_size=1, max_size=5000), st.binary(min_size=1, max_size=5000))
def test_headers_do_not_depend_on_frame_content(a, b):
    b = (b * (len(a) // len(b) + 1))[: len(a)]
    pa, pb = vp8_packetizer().packetize(video(a)), vp8_packetizer().packetize(video(b))
    assert [(p.sequence_number, p.marker, len(p.payload), p.payload[:4]) for p in pa] == [
        (p.sequence_number, p.marker, len(p.payload), p.payload[:4]) for p in pb
    ]


def test_opus_one_packet_per_frame_with_level_and_no_marker():
    packetizer = opus_packetizer()
    vads = [False, True, True, False, True]
    packets = [packetizer.packetize(audio(timestamp=960 * i, level=10 + i, vad=v))
               for i, v in enumerate(vads)]
    assert all(len(p) == 1 for p in packets)
    # every frame is sent (no silence suppression): RFC 3551 §4.1 says M MUST be 0, whatever the VAD
    assert [p[0].marker for p in packets] == [0, 0, 0, 0, 0]
    assert [p[0].extensions.audio_level for p in packets] == [
        (v, 10 + i) for i, v in enumerate(vads)
    ]
    assert [p[0].timestamp for p in packets] == [0, 960, 1920, 2880, 3840]


def test_opus_without_level_is_sent_as_silence():
    packet = opus_packetizer().packetize(audio())[0]
    assert packet.extensions.audio_level == (False, 127)
    data = opus_packetizer().serialize(audio())[0]
    assert parse_rtp(data, opus_packetizer().extensions_map).extensions.audio_level == (False, 127)


def test_opus_frame_size_limit():
    packetizer = opus_packetizer()
    assert packetizer.max_payload_size == 1184 - 12 - 8
    assert len(packetizer.serialize(audio(b"o" * packetizer.max_payload_size))[0]) == 1184
    before = packetizer.sequence_number
    with pytest.raises(FrameTooLarge) as info:
        packetizer.packetize(audio(b"o" * (packetizer.max_payload_size + 1)))
    assert info.value.reason == "frame_too_large"
    assert packetizer.sequence_number == before


@pytest.mark.parametrize("make", [vp8_packetizer, opus_packetizer], ids=["vp8", "opus"])
def test_empty_frames_are_refused_without_state_change(make):
    packetizer = make()
    frame = video(b"") if packetizer.codec is Codec.VP8 else audio(b"")
    before = (packetizer.sequence_number, packetizer.picture_id, packetizer.packets_sent)
    with pytest.raises(EmptyFrame) as info:
        packetizer.packetize(frame)
    assert info.value.reason == "empty_frame"
    assert (packetizer.sequence_number, packetizer.picture_id, packetizer.packets_sent) == before


def test_wrong_kind_and_bad_level_are_invalid_frames():
    with pytest.raises(InvalidFrame):
        vp8_packetizer().packetize(audio())
    with pytest.raises(InvalidFrame):
        opus_packetizer().packetize(video(b"v"))
    with pytest.raises(InvalidFrame):
        opus_packetizer().packetize(audio(level=128))


def test_non_reference_sets_n_bit_on_every_packet():
    packets = vp8_packetizer().packetize(video(b"n" * 3000), non_reference=True)
    assert all(VP8PayloadDescriptor.parse(p.payload)[0].non_reference for p in packets)


@pytest.mark.parametrize(
    "kwargs",
    [{"ssrc": 2**32}, {"payload_type": 128}, {"mtu": 20}, {"mid": "x" * 17}, {"mid": ""},
     {"first_sequence_number": 65536}, {"first_picture_id": 32768}],
)
def test_bad_configuration_is_a_value_error(kwargs):
    config = {"ssrc": 1, "payload_type": 96, **kwargs}
    with pytest.raises(ValueError):
        RTPPacketizer(Codec.VP8, **config)
