"""FrameAssembler: packetize -> reorder/duplicate/lose -> reassemble, and robustness to junk."""

import os
import random
import struct
from fractions import Fraction

import pytest
from aiortc.rtp import RtpPacket
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.rtp import (
    AudioLevel,
    Codec,
    EmptyFrame,
    FrameAssembled,
    FrameAssembler,
    FrameLost,
    PacketDropped,
    PacketsMissing,
    RTPPacketizer,
    serialize_rtp,
)

VIDEO_SSRC, AUDIO_SSRC = 0x1111, 0x2222
PTS = {96: Codec.VP8, 111: Codec.OPUS}


def video_stream(seed=1, **kwargs):
    return RTPPacketizer(Codec.VP8, ssrc=VIDEO_SSRC, payload_type=96, seed=seed, **kwargs)


def audio_stream(seed=1, **kwargs):
    return RTPPacketizer(Codec.OPUS, ssrc=AUDIO_SSRC, payload_type=111, seed=seed, **kwargs)


def video_frame(data, index):
    return EncodedFrame(data, 3000 * index, FrameMetadata(VIDEO_SSRC, 96, "video"), "delta")


def audio_frame(data, index, level=None, vad=None):
    meta = FrameMetadata(AUDIO_SSRC, 111, "audio", audioLevel=level, voiceActivity=vad)
    return EncodedFrame(data, 960 * index, meta)


def send_video(packetizer, datas):
    """Packetize frames; returns (list of per-frame packet bytes lists)."""
    return [packetizer.serialize(video_frame(d, i)) for i, d in enumerate(datas)]


def feed(assembler, packets, now=None):
    events = []
    for packet in packets:
        events += assembler.receive(packet, now)
    return events


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def assembler_for(packetizer, **kwargs):
    return FrameAssembler(PTS, extensions_map=packetizer.extensions_map, **kwargs)


# --- round trips -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 100_000), min_size=1, max_size=4),
    seed=st.integers(0, 2**32),
)
def test_round_trip_survives_shuffle_and_duplicates(sizes, seed):
    # One seeded generator for payloads, duplicates and order: drawing them from hypothesis
    # (st.randoms) exhausts its entropy budget on 100 KB frames and fails the health check.
    rnd = random.Random(seed)
    packetizer = video_stream(seed)
    datas = [rnd.randbytes(n) for n in sizes]
    packets = [p for frame in send_video(packetizer, datas) for p in frame]
    dups = rnd.sample(packets, k=rnd.randint(0, len(packets)))
    arrivals = packets + dups
    rnd.shuffle(arrivals)
    assembler = assembler_for(packetizer, startup_packets=len(packets),
                              horizon_packets=len(arrivals) + 1)
    events = feed(assembler, arrivals)
    assert assembler.flush() == []
    frames = of(events, FrameAssembled)
    assert [f.data for f in frames] == datas
    assert [f.timestamp for f in frames] == [3000 * i for i in range(len(datas))]
    assert not of(events, FrameLost) and not of(events, PacketsMissing)
    assert assembler.dropped["duplicate"] == len(dups)
    assert sum(f.packet_count for f in frames) == len(packets)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 6000), min_size=2, max_size=12), seed=st.integers(0, 2**32))
def test_bounded_reordering_is_released_live_in_order(sizes, seed):
    rnd = random.Random(seed)
    packetizer = video_stream(first_sequence_number=65530)  # crosses the wrap
    datas = [bytes([i]) * n for i, n in enumerate(sizes)]
    packets = [p for frame in send_video(packetizer, datas) for p in frame]
    keyed = sorted(enumerate(packets), key=lambda ip: ip[0] + rnd.uniform(0, 3))  # moves <= 3
    assembler = assembler_for(packetizer, startup_packets=min(4, len(packets)))
    events = feed(assembler, [p for _, p in keyed])
    assert assembler.flush() == []
    assert [f.data for f in of(events, FrameAssembled)] == datas
    assert assembler.stats["frames_lost"] == 0 and not assembler.dropped


def test_empty_frame_cannot_be_sent():
    with pytest.raises(EmptyFrame):
        video_stream().serialize(video_frame(b"", 0))


def test_record_carries_rtp_fields():
    packetizer = video_stream(first_sequence_number=65534, first_picture_id=77, mid="1")
    data = os.urandom(2500)
    packets = packetizer.serialize(video_frame(data, 5))
    (frame,) = of(feed(assembler_for(packetizer), packets, now=12.5), FrameAssembled)
    assert (frame.ssrc, frame.payload_type, frame.codec, frame.timestamp) == (
        VIDEO_SSRC, 96, Codec.VP8, 15000)
    assert (frame.first_sequence_number, frame.last_sequence_number) == (65534, 0)
    assert frame.packet_count == 3 and frame.marker and frame.picture_id == 77
    assert frame.mid == "1" and frame.audio_level is None and frame.arrival == 12.5
    assert sum(frame.payload_sizes) == len(data) + 4 * 3


def test_audio_record_and_encoded_frame():
    packetizer = audio_stream()
    packets = [packetizer.serialize(audio_frame(b"\xfc" + bytes([i]), i, level=20 + i, vad=i % 2))
               for i in range(4)]
    events = feed(assembler_for(packetizer), [p for ps in packets for p in ps])
    frames = of(events, FrameAssembled)
    assert [f.audio_level for f in frames] == [AudioLevel(20 + i, bool(i % 2)) for i in range(4)]
    encoded = frames[3].to_encoded_frame()
    assert encoded.data == b"\xfc\x03" and encoded.timestamp == 2880 and encoded.type is None
    assert encoded.metadata.audioLevel == 23 and encoded.metadata.voiceActivity is True
    assert encoded.metadata.synchronizationSource == AUDIO_SSRC and encoded.kind == "audio"


# --- loss --------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", [0, 1, 2], ids=["first", "middle", "marker"])
@pytest.mark.parametrize("resolve", ["horizon", "flush"])
def test_one_lost_packet_loses_exactly_its_frame(which, resolve):
    packetizer = video_stream(first_sequence_number=1000)
    datas = [bytes([i]) * 3000 for i in range(8)]  # 3 packets per frame
    frames = send_video(packetizer, datas)
    lost_packet = frames[2].pop(which)
    horizon = 6 if resolve == "horizon" else 1000
    assembler = assembler_for(packetizer, horizon_packets=horizon)
    events = feed(assembler, [p for f in frames for p in f])
    if resolve == "flush":
        assert [f.data for f in of(events, FrameAssembled)] == datas[:2]
        events += assembler.flush()
    assert [f.data for f in of(events, FrameAssembled)] == datas[:2] + datas[3:]
    (lost,) = of(events, FrameLost)
    assert lost.timestamp == 6000 and lost.packets_received == 2
    (missing,) = of(events, PacketsMissing)
    assert missing.count == 1
    assert missing.first_sequence_number == struct.unpack("!H", lost_packet[2:4])[0]
    assert assembler.stats["frames_lost"] == 1 and assembler.stats["packets_missing"] == 1
    order = [type(e).__name__ for e in events]
    assert order.index("FrameLost") < order.index("FrameAssembled", 2)


def test_lost_audio_packet_is_reported_as_missing_sequence():
    packetizer = audio_stream(first_sequence_number=65535)
    packets = [packetizer.serialize(audio_frame(b"\xfc\x00", i))[0] for i in range(10)]
    del packets[4]
    assembler = assembler_for(packetizer, horizon_packets=3)
    events = feed(assembler, packets)
    timestamps = [f.timestamp for f in of(events, FrameAssembled)]
    assert timestamps == [960 * i for i in range(10) if i != 4]
    assert of(events, PacketsMissing) == [PacketsMissing(AUDIO_SSRC, 3, 1)]


def test_max_wait_resolves_with_now_and_poll():
    packetizer = video_stream()
    frames = send_video(packetizer, [b"a" * 3000, b"b" * 3000, b"c" * 100])
    del frames[0][1]
    assembler = assembler_for(packetizer, horizon_packets=1000, max_wait=0.2)
    events = feed(assembler, frames[0], now=1.0) + feed(assembler, frames[1] + frames[2], now=1.1)
    assert not of(events, FrameAssembled) and assembler.pending_frames(VIDEO_SSRC) == 3
    assert assembler.poll(1.15) == []
    events = assembler.poll(1.25)
    assert len(of(events, FrameLost)) == 1
    assert [f.data for f in of(events, FrameAssembled)] == [b"b" * 3000, b"c" * 100]
    assert assembler.pending_frames(VIDEO_SSRC) == 0


def test_duplicates_and_late_packets_are_counted_and_dropped():
    packetizer = video_stream()
    frames = send_video(packetizer, [b"x" * 3000 for _ in range(4)])
    straggler = frames[1].pop(1)
    assembler = assembler_for(packetizer, horizon_packets=4)
    events = feed(assembler, frames[0] + frames[0][:1] + frames[1] + frames[2] + frames[3])
    events += feed(assembler, [straggler, frames[3][0]])
    assert assembler.dropped == {"duplicate": 2, "late": 1}
    dropped = of(events, PacketDropped)
    assert [d.reason for d in dropped] == ["duplicate", "late", "duplicate"]
    assert len(of(events, FrameAssembled)) == 3 and len(of(events, FrameLost)) == 1


def test_padding_only_packets_leave_no_gap():
    packetizer = video_stream(first_sequence_number=10)
    first = packetizer.serialize(video_frame(b"a" * 100, 0))
    probe = RtpPacket(payload_type=96, sequence_number=11, timestamp=0, ssrc=VIDEO_SSRC)
    probe.padding_size = 200
    packetizer.sequence_number = 12
    second = packetizer.serialize(video_frame(b"b" * 100, 1))
    assembler = assembler_for(packetizer)
    events = feed(assembler, first + [serialize_rtp(probe)] + second)
    assert [f.data for f in of(events, FrameAssembled)] == [b"a" * 100, b"b" * 100]
    assert assembler.stats["padding_only"] == 1 and not of(events, PacketsMissing)


# --- several streams, real codecs, opaque payloads ---------------------------------------------


def test_interleaved_audio_and_video_streams():
    vp, ap = video_stream(mid="v"), audio_stream(mid="v")
    packets = []
    for i in range(5):
        packets += vp.serialize(video_frame(bytes([i]) * 2000, i))
        packets += ap.serialize(audio_frame(b"\xfc" + bytes([i]), i, level=i, vad=True))
    random.Random(3).shuffle(packets)
    assembler = FrameAssembler(PTS, extensions_map=vp.extensions_map, startup_packets=len(packets))
    frames = of(feed(assembler, packets) + assembler.flush(), FrameAssembled)
    video = [f for f in frames if f.ssrc == VIDEO_SSRC]
    audio = [f for f in frames if f.ssrc == AUDIO_SSRC]
    assert [f.data for f in video] == [bytes([i]) * 2000 for i in range(5)]
    assert [f.data for f in audio] == [b"\xfc" + bytes([i]) for i in range(5)]


def _vp8_frames(count):
    av = pytest.importorskip("av")
    import numpy as np
    from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload

    encoder, frames = Vp8Encoder(), []
    for i in range(count):
        pixels = np.full((120, 160, 3), (i * 20) % 255, dtype=np.uint8)
        pixels[:, : 8 * i] = 255
        image = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        image.pts, image.time_base = i * 3000, Fraction(1, 90000)
        payloads, _ = encoder.encode(image, force_keyframe=(i == 0))
        frames.append(b"".join(vp8_depayload(p) for p in payloads))
    return frames


def test_real_vp8_frames_round_trip_and_decode():
    from aiortc.codecs.vpx import Vp8Decoder
    from aiortc.jitterbuffer import JitterFrame

    datas = _vp8_frames(8)
    packetizer = video_stream(mtu=300)  # small MTU: several packets per frame
    packets = [p for f in send_video(packetizer, datas) for p in f]
    frames = of(feed(assembler_for(packetizer), packets), FrameAssembled)
    assert [f.data for f in frames] == datas
    assert [f.guess_frame_type() for f in frames] == ["key"] + ["delta"] * 7
    decoder = Vp8Decoder()
    decoded = [decoder.decode(JitterFrame(f.data, f.timestamp)) for f in frames]
    assert all(len(d) == 1 and d[0].width == 160 for d in decoded)


def test_ciphertext_frames_reassemble_without_reading_them():
    key = AESGCM(bytes(range(16)))
    datas = _vp8_frames(4)
    sealed = [key.encrypt(i.to_bytes(12, "big"), d, None) for i, d in enumerate(datas)]
    packetizer = video_stream(mtu=300)
    packets = [p for f in send_video(packetizer, sealed) for p in f]
    random.Random(1).shuffle(packets)
    assembler = assembler_for(packetizer, startup_packets=len(packets))
    frames = of(feed(assembler, packets), FrameAssembled)
    assert [key.decrypt(i.to_bytes(12, "big"), f.data, None) for i, f in enumerate(frames)] == datas


def test_real_opus_frames_round_trip_and_decode():
    av = pytest.importorskip("av")
    import numpy as np
    from aiortc.codecs.opus import OpusDecoder, OpusEncoder
    from aiortc.jitterbuffer import JitterFrame

    encoder, packetizer = OpusEncoder(), audio_stream()
    tone = (np.sin(np.arange(960 * 5) * 2 * np.pi * 440 / 48000) * 8000).astype(np.int16)
    packets = []
    for i in range(5):
        samples = np.repeat(tone[960 * i: 960 * (i + 1)], 2).reshape(1, -1)
        chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        chunk.sample_rate, chunk.pts, chunk.time_base = 48000, 960 * i, Fraction(1, 48000)
        payloads, timestamp = encoder.encode(chunk)
        for payload in payloads:
            meta = FrameMetadata(AUDIO_SSRC, 111, "audio", audioLevel=30, voiceActivity=True)
            packets += packetizer.serialize(EncodedFrame(payload, timestamp, meta))
    frames = of(feed(assembler_for(packetizer), packets), FrameAssembled)
    assert len(frames) == 5 and all(f.audio_level == AudioLevel(30, True) for f in frames)
    decoder = OpusDecoder()
    assert all(decoder.decode(JitterFrame(f.data, f.timestamp)) for f in frames)


# --- robustness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload_type", "payload", "reason"),
    [(100, b"x", "unknown_payload_type"), (111, b"", "empty_payload"),
     (96, b"\x90\x80\x92\x34", "empty_payload"), (96, b"\x90\x80\x92", "truncated_descriptor")],
)
def test_bad_payloads_are_dropped_with_reason(payload_type, payload, reason):
    packet = RtpPacket(payload_type=payload_type, sequence_number=5, ssrc=9, payload=payload)
    assembler = FrameAssembler(PTS)
    (event,) = assembler.receive(serialize_rtp(packet))
    assert event == PacketDropped(reason, 9, 5, event.detail) and event.detail
    assert assembler.dropped == {reason: 1}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.builds(
    lambda b, rest: bytes([b]) + rest, st.sampled_from([0x80, 0x90, 0xA0]),
    st.binary(min_size=11, max_size=40)), max_size=30))
def test_arbitrary_bytes_never_crash_the_assembler(inputs):
    assembler = FrameAssembler({i: Codec.VP8 if i % 2 else Codec.OPUS for i in range(128)},
                               horizon_packets=4)
    events = []
    for data in inputs:
        events += assembler.receive(data)
    events += assembler.flush()
    parse_drops = sum(assembler.dropped[r] for r in ("malformed_packet", "bad_extension"))
    assert assembler.stats["packets_received"] + parse_drops == len(inputs)
    assert all(assembler.pending_frames(ssrc) == 0 for ssrc in range(5))
    assert len(of(events, PacketDropped)) == sum(assembler.dropped.values())


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=10), seed=st.integers(0, 2**32),
       horizon=st.sampled_from([1, 2, 4, 32]), max_wait=st.sampled_from([None, 0.0, 0.05]),
       startup=st.sampled_from([0, 3]), timed=st.booleans())
def test_the_in_order_shortcut_changes_no_event(sizes, seed, horizon, max_wait, startup, timed):
    """A video packet that leaves its stream's only frame still waiting for its marker skips the
    release scan (``_quick_wait``): under loss, duplicates, reordering, padding, polls and any
    horizon or wait, the events and counters are those of the full scan every time."""
    rnd = random.Random(seed)
    vp, ap = video_stream(seed, mtu=640), audio_stream(seed)
    arrivals = []
    for i, n in enumerate(sizes):
        arrivals += vp.serialize(video_frame(rnd.randbytes(n), i))
        arrivals += ap.serialize(audio_frame(b"\xfc" + bytes([i]), i))
        if rnd.random() < 0.2:
            probe = RtpPacket(payload_type=96, sequence_number=vp.sequence_number, timestamp=0, ssrc=VIDEO_SSRC)
            probe.padding_size = 100
            vp.sequence_number = (vp.sequence_number + 1) % 65536
            arrivals.append(serialize_rtp(probe))
    arrivals = [p for p in arrivals if rnd.random() > 0.1]  # loss
    arrivals += rnd.sample(arrivals, k=rnd.randint(0, len(arrivals) // 4))  # duplicates, at the end
    arrivals = [p for _, p in sorted(enumerate(arrivals), key=lambda ip: ip[0] + rnd.uniform(0, 2.5))]
    shortcut, full = (FrameAssembler(PTS, extensions_map=vp.extensions_map, horizon_packets=horizon,
                                     max_wait=max_wait, startup_packets=startup) for _ in range(2))
    full._quick_wait = False
    assert shortcut._quick_wait == (horizon > 1 and max_wait != 0.0)
    now, got, expected = 0.0, [], []
    for packet in arrivals:
        now += rnd.choice([0.0, 0.01, 0.04])
        got += shortcut.receive(packet, now if timed else None)
        expected += full.receive(packet, now if timed else None)
        if rnd.random() < 0.1:
            got, expected = got + shortcut.poll(now), expected + full.poll(now)
    assert got + shortcut.flush() == expected + full.flush()
    assert (shortcut.stats, shortcut.dropped) == (full.stats, full.dropped)


@pytest.mark.parametrize(
    "kwargs", [{"horizon_packets": 0}, {"history": 0}, {"startup_packets": -1}, {"max_wait": -1}]
)
def test_bad_assembler_configuration(kwargs):
    with pytest.raises(ValueError):
        FrameAssembler(PTS, **kwargs)
