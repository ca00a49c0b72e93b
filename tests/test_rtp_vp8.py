"""The RFC 7741 VP8 payload descriptor, frame splitting, and interop with aiortc's VP8 code."""

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor, vp8_depayload
from hypothesis import given
from hypothesis import strategies as st

from e2ee_lab.rtp import EmptyPayload, MalformedPayload, TruncatedDescriptor, VP8PayloadDescriptor
from e2ee_lab.rtp.vp8 import split_sizes, vp8_frame_type, vp8_payloads


def test_chrome_style_descriptor_bytes():
    first = VP8PayloadDescriptor(True, 0, picture_id=0x1234)
    rest = VP8PayloadDescriptor(False, 0, picture_id=0x1234)
    # X=1 S=1 PID=0 | I=1 | M=1 + 15-bit PictureID
    assert bytes(first) == bytes([0x90, 0x80, 0x92, 0x34])
    assert bytes(rest) == bytes([0x80, 0x80, 0x92, 0x34])


def test_n_bit_and_minimal_descriptor():
    assert bytes(VP8PayloadDescriptor(True, 0, non_reference=True, picture_id=1))[0] == 0xB0
    assert bytes(VP8PayloadDescriptor(True, 0)) == b"\x10"
    assert bytes(VP8PayloadDescriptor(False, 5, non_reference=True)) == b"\x25"


descriptors = st.builds(
    VP8PayloadDescriptor,
    start_of_partition=st.booleans(),
    partition_index=st.integers(0, 7),
    non_reference=st.booleans(),
    picture_id=st.none() | st.integers(0, 32767),
    tl0picidx=st.none() | st.integers(0, 255),
    tid=st.none() | st.tuples(st.integers(0, 3), st.integers(0, 1)),
    keyidx=st.none() | st.integers(0, 31),
)


@given(descriptors, st.binary(min_size=1, max_size=20))
def test_descriptor_round_trip(descriptor, data):
    parsed, rest = VP8PayloadDescriptor.parse(bytes(descriptor) + data)
    assert rest == data
    assert parsed == descriptor


def test_parse_seven_bit_picture_id_and_reserved_bits():
    parsed, rest = VP8PayloadDescriptor.parse(bytes([0x90, 0x80, 0x05]) + b"vp8")
    assert parsed.picture_id == 5 and parsed.starts_frame and rest == b"vp8"
    parsed, _ = VP8PayloadDescriptor.parse(bytes([0x5F]) + b"x")  # R bits set: ignored
    assert parsed.partition_index == 7 and parsed.start_of_partition and not parsed.starts_frame


@pytest.mark.parametrize(
    "payload",
    [b"\x90", b"\x90\x80", b"\x90\x80\x92", b"\x90\x40", b"\x90\x20", b"\x90\xc0\x12"],
    ids=["no-x-byte", "no-picture-id", "short-long-picture-id", "no-tl0", "no-tk", "no-tl0-2"],
)
def test_truncated_descriptors(payload):
    with pytest.raises(TruncatedDescriptor) as info:
        VP8PayloadDescriptor.parse(payload)
    assert info.value.reason == "truncated_descriptor"


@pytest.mark.parametrize("payload", [b"", b"\x10", b"\x90\x80\x92\x34"], ids=["empty", "s", "x"])
def test_descriptor_without_data_is_empty_payload(payload):
    with pytest.raises(EmptyPayload) as info:
        VP8PayloadDescriptor.parse(payload)
    assert info.value.reason == "empty_payload"


@given(st.binary(max_size=12))
def test_arbitrary_payloads_raise_only_malformed_payload(payload):
    try:
        descriptor, rest = VP8PayloadDescriptor.parse(payload)
    except MalformedPayload:
        return
    assert rest and payload.endswith(rest) and len(rest) < len(payload)
    assert descriptor.partition_index == payload[0] & 0x07


chrome_heads = st.tuples(st.integers(0, 255), st.just(0x80), st.integers(0x80, 0xFF), st.integers(0, 255)).map(bytes)


@given(chrome_heads | st.binary(max_size=5), st.binary(max_size=6))
def test_the_chrome_shortcut_answers_as_the_general_parser(head, data):
    """Chrome's shape (X=1, I alone, 15-bit PictureID) skips aiortc's parser: same descriptor, same
    rest, same error as the general path, whatever the first octet says."""
    payload = head + data
    try:
        expected = VP8PayloadDescriptor._parse_any(payload)
    except MalformedPayload as err:
        with pytest.raises(type(err)):
            VP8PayloadDescriptor.parse(payload)
        return
    assert VP8PayloadDescriptor.parse(payload) == expected
    assert VP8PayloadDescriptor.parse(bytearray(payload)) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"partition_index": 8}, {"picture_id": 32768}, {"picture_id": -1}, {"tl0picidx": 256},
     {"keyidx": 32}, {"tid": (4, 0)}],
)
def test_invalid_descriptor_fields(kwargs):
    with pytest.raises(ValueError):
        VP8PayloadDescriptor(True, **kwargs)


@given(st.integers(1, 200_000), st.integers(1, 2000))
def test_split_sizes_are_minimal_and_even(total, capacity):
    sizes = split_sizes(total, capacity)
    assert sum(sizes) == total
    assert max(sizes) <= capacity and max(sizes) - min(sizes) <= 1
    assert len(sizes) == -(-total // capacity)


@pytest.mark.parametrize(("total", "capacity"), [(0, 10), (10, 0)])
def test_split_sizes_rejects_nothing_to_split(total, capacity):
    with pytest.raises(ValueError):
        split_sizes(total, capacity)


def test_payloads_interoperate_with_aiortc_depacketizer():
    frame = bytes(range(256)) * 20
    payloads = vp8_payloads(frame, picture_id=321, max_payload=1000)
    assert b"".join(vp8_depayload(p) for p in payloads) == frame
    parsed = [VpxPayloadDescriptor.parse(p)[0] for p in payloads]
    assert [d.partition_start for d in parsed] == [1] + [0] * (len(payloads) - 1)
    assert {d.picture_id for d in parsed} == {321}
    assert max(len(p) for p in payloads) <= 1000


def test_frame_type_reads_p_bit():
    assert vp8_frame_type(b"\x50\x01\x00\x9d\x01\x2a") == "key"
    assert vp8_frame_type(b"\x31\x02\x00") == "delta"
    with pytest.raises(EmptyPayload):
        vp8_frame_type(b"")
