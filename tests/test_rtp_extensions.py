"""RFC 6464 audio level in RFC 8285 one-byte form, and RTP parsing errors mapped to RTPError."""

import struct

import pytest
from aiortc.rtp import RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.rtp import (
    AudioLevel,
    BadExtension,
    Codec,
    MalformedPacket,
    RTPError,
    RTPPacketizer,
    make_extensions_map,
    parse_rtp,
    serialize_rtp,
)


def opus_packet_bytes(level, vad, **kwargs):
    packetizer = RTPPacketizer(Codec.OPUS, ssrc=0x11223344, payload_type=111, seed=0, **kwargs)
    meta = FrameMetadata(0x11223344, 111, "audio", audioLevel=level, voiceActivity=vad)
    return packetizer.serialize(EncodedFrame(b"\xfc\x01\x02", 960, meta))[0]


@pytest.mark.parametrize(
    ("level", "vad", "element"),
    [(0, False, 0x00), (127, False, 0x7F), (42, True, 0xAA), (127, True, 0xFF), (0, True, 0x80)],
    ids=["loudest", "silence", "voiced-42", "voiced-silence", "voiced-loudest"],
)
def test_audio_level_bytes_match_chrome_wire_format(level, vad, element):
    data = opus_packet_bytes(level, vad)
    assert data[0] & 0x10, "X bit must be set (RFC 3550 §5.1)"
    # RFC 8285 §4.2: profile 0xBEDE, length 1 word; element ID=1 L=0 (one byte), then
    # RFC 6464 §3: V<<7 | level; padded with zeros to 32 bits.
    assert data[12:20] == bytes([0xBE, 0xDE, 0x00, 0x01, 0x10, element, 0x00, 0x00])
    assert data[20:] == b"\xfc\x01\x02"


def test_audio_level_survives_parse_with_same_map():
    data = opus_packet_bytes(17, True)
    packet = parse_rtp(data, make_extensions_map())
    assert AudioLevel.from_aiortc(packet.extensions.audio_level) == AudioLevel(17, True)


def test_receiver_with_other_extmap_does_not_see_the_level():
    data = opus_packet_bytes(17, True)
    packet = parse_rtp(data, make_extensions_map(audio_level_id=5))
    assert packet.extensions.audio_level is None


def test_mid_and_audio_level_share_one_byte_block():
    data = opus_packet_bytes(9, False, mid="0")
    assert data[12:16] == bytes([0xBE, 0xDE, 0x00, 0x01])
    assert data[16:20] == bytes([0x40, ord("0"), 0x10, 0x09])  # id 4 mid "0", id 1 level 9
    packet = parse_rtp(data, make_extensions_map(mid_id=4))
    assert packet.extensions.mid == "0"
    assert packet.extensions.audio_level == (False, 9)


@pytest.mark.parametrize("byte", range(256))
def test_audio_level_element_round_trips_every_byte(byte):
    level = AudioLevel.parse(bytes([byte]))
    assert level.voice_activity == bool(byte & 0x80)
    assert level.level == byte & 0x7F
    assert bytes(level) == bytes([byte])


@pytest.mark.parametrize("bad", [-1, 128, 255])
def test_audio_level_rejects_out_of_range(bad):
    with pytest.raises(ValueError):
        AudioLevel(bad)


@pytest.mark.parametrize("data", [b"", b"\x01\x02"], ids=["empty", "two-bytes"])
def test_audio_level_parse_rejects_wrong_length(data):
    with pytest.raises(BadExtension):
        AudioLevel.parse(data)


@pytest.mark.parametrize(
    "kwargs", [{"audio_level_id": 0}, {"audio_level_id": 15}, {"mid_id": 15}, {"mid_id": 1}]
)
def test_make_extensions_map_rejects_bad_ids(kwargs):
    with pytest.raises(ValueError):
        make_extensions_map(**kwargs)


def rtp_with_extension(block: bytes, profile: int = 0xBEDE, words: int | None = None) -> bytes:
    header = struct.pack("!BBHLL", 0x90, 111, 1, 2, 3)
    words = len(block) // 4 if words is None else words
    return header + struct.pack("!HH", profile, words) + block + b"payload"


@pytest.mark.parametrize(
    "data",
    [
        rtp_with_extension(b"\x11\xaa\x00\x00"),  # audio level element of 2 bytes
        rtp_with_extension(b"\x1f" + b"\x00" * 3),  # element says 16 bytes, block has 3
        rtp_with_extension(b"\x10\x80\x00\x00", words=3),  # block longer than the packet
        struct.pack("!BBHLL", 0x90, 111, 1, 2, 3) + b"\xbe\xde",  # truncated profile/length
        rtp_with_extension(b"\x01\x09\x00\x00", profile=0x1000),  # two-byte: value truncated
    ],
    ids=["level-2-bytes", "element-truncated", "block-truncated", "no-length", "two-byte"],
)
def test_bad_extensions_raise_bad_extension(data):
    with pytest.raises(BadExtension):
        parse_rtp(data, make_extensions_map())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x60\x00",
        struct.pack("!BBHLL", 0x40, 96, 1, 2, 3) + b"x",  # version 1
        struct.pack("!BBHLL", 0x82, 96, 1, 2, 3) + b"\x00" * 4,  # CC=2, one CSRC present
        struct.pack("!BBHLL", 0xA0, 96, 1, 2, 3) + b"ab\x09",  # padding longer than payload
        struct.pack("!BBHLL", 0xA0, 96, 1, 2, 3) + b"ab\x00",  # padding length 0
    ],
    ids=["empty", "short", "version-1", "csrc-truncated", "padding-long", "padding-zero"],
)
def test_malformed_headers_raise_malformed_packet(data):
    with pytest.raises(MalformedPacket) as info:
        parse_rtp(data)
    assert not isinstance(info.value, BadExtension)
    assert info.value.reason == "malformed_packet"


def test_serialize_parse_round_trip_keeps_header_fields():
    packet = RtpPacket(payload_type=96, marker=1, sequence_number=65535, timestamp=2**32 - 1,
                       ssrc=0xDEADBEEF, payload=b"abc")
    packet.csrc = [1, 2]
    parsed = parse_rtp(serialize_rtp(packet))
    fields = ("payload_type", "marker", "sequence_number", "timestamp", "ssrc", "csrc", "payload")
    assert all(getattr(parsed, f) == getattr(packet, f) for f in fields)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_rtp_errors(data):
    try:
        packet = parse_rtp(data, make_extensions_map(mid_id=4))
    except RTPError as err:
        assert err.reason in ("malformed_packet", "bad_extension")
    else:
        assert packet.version == 2


@given(st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0x9F]), st.binary(min_size=11, max_size=60))
def test_header_like_bytes_raise_only_rtp_errors(first, rest):
    try:
        parse_rtp(bytes([first]) + rest, make_extensions_map(mid_id=4))
    except RTPError as err:
        assert err.reason in ("malformed_packet", "bad_extension")
