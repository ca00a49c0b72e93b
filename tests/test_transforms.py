"""Tests for e2ee_lab.crypto.transforms: none, SFrame and clear-prefix frame transforms."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e2ee_lab.crypto.sframe import (
    AuthenticationFailed,
    CipherSuite,
    ReplayedFrame,
    SFrameContext,
    SFrameError,
    UnknownKeyId,
)
from e2ee_lab.crypto.transforms import (
    MAX_SEND_COUNT,
    TRAILER_LENGTH,
    TRANSFORM_ERRORS,
    ClearPrefixReceiver,
    ClearPrefixSender,
    FrameAuthenticationFailed,
    IVExhausted,
    MalformedFrame,
    PassThrough,
    SFrameReceiver,
    SFrameSender,
    TransformError,
    TransformMode,
    UnknownKeyIndex,
    clear_prefix_length,
    make_transform,
    overhead,
    transform_mode,
    visible_bytes,
)
from e2ee_lab.media.codecs import OpusEncoder, VP8Encoder
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource

KEY = bytes(range(16))


@pytest.fixture(scope="module")
def frames() -> dict[str, EncodedFrame]:
    """Real encoded frames: a VP8 key frame, a VP8 delta frame and an Opus frame."""
    scene, enc = Scene(2, seed=1, width=160, height=120, fps=15), VP8Encoder(ssrc=0x11223344, fps=15)
    video = [enc.encode(scene.rgb(i)) for i in range(3)]
    audio = OpusEncoder(ssrc=0x55667788).encode(SpeechSource().chunk(40))
    return {"key": video[0], "delta": video[2], "audio": audio}


KINDS = ["key", "delta", "audio"]


def flip(frame: EncodedFrame, pos: int, bit: int = 0x01) -> EncodedFrame:
    data = bytearray(frame.data)
    data[pos] ^= bit
    return frame.replace(data=bytes(data))


# --- modes and round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, mode",
    [("dtls-srtp", "none"), ("none", "none"), ("e2ee", "sframe"), ("sframe", "sframe"), ("clear-prefix",) * 2],
)
def test_mode_names(name, mode):
    assert transform_mode(name) is TransformMode(mode)


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode"):
        make_transform("rot13")


@pytest.mark.parametrize("kind", KINDS)
def test_none_passes_frames_unchanged(frames, kind):
    pair = make_transform("dtls-srtp")
    assert isinstance(pair.sender, PassThrough) and pair.key is None
    assert pair.receiver.transform(pair.sender.transform(frames[kind])) == frames[kind]


@pytest.mark.parametrize("suite", list(CipherSuite), ids=[s.name for s in CipherSuite])
@pytest.mark.parametrize("kind", KINDS)
def test_sframe_round_trip(frames, kind, suite):
    pair = make_transform("e2ee", suite=suite, kid=3, seed=9)
    frame = frames[kind]
    protected = pair.sender.transform(frame)
    assert protected.data != frame.data and frame.data not in protected.data
    assert len(protected.data) - len(frame.data) == overhead("e2ee", suite=suite, kid=3, ctr=0)
    assert protected.replace(data=frame.data) == frame  # timestamp, metadata and type unchanged
    assert pair.receiver.transform(protected) == frame


@pytest.mark.parametrize("key_len", [16, 32])
@pytest.mark.parametrize("kind", KINDS)
def test_clear_prefix_round_trip_and_clear_bytes(frames, kind, key_len):
    frame = frames[kind]
    pair = make_transform("clear-prefix", key=bytes(key_len), key_index=7, seed=1)
    protected = pair.sender.transform(frame)
    n = clear_prefix_length(frame.kind, frame.type)
    assert n == {"key": 10, "delta": 3, "audio": 1}[kind]
    assert protected.data[:n] == frame.data[:n]  # the prefix stays clear
    assert protected.data[n : len(frame.data)] != frame.data[n:]  # the rest does not
    assert protected.data[-2:] == bytes((12, 7))  # IV length, key index
    assert len(protected.data) - len(frame.data) == overhead("clear-prefix") == 30
    assert pair.receiver.transform(protected) == frame


def test_clear_prefix_iv_is_ssrc_timestamp_counter(frames):
    frame = frames["delta"]
    sender = ClearPrefixSender(KEY, initial_count=41)
    iv = sender.transform(frame).data[-TRAILER_LENGTH:-2]
    assert iv == struct.pack("!III", 0x11223344, frame.timestamp, 41)


def test_clear_prefix_ivs_never_repeat(frames):
    sender = ClearPrefixSender(KEY)
    ivs = {sender.transform(frames["audio"]).data[-TRAILER_LENGTH:-2] for _ in range(2000)}
    assert len(ivs) == 2000  # same SSRC and timestamp every time: the counter alone differs


def test_clear_prefix_counter_exhausts_instead_of_wrapping(frames):
    sender = ClearPrefixSender(KEY, initial_count=MAX_SEND_COUNT)
    sender.transform(frames["audio"])
    with pytest.raises(IVExhausted) as err:
        sender.transform(frames["audio"])
    assert err.value.reason == "iv_exhausted"


def test_seeded_transforms_are_reproducible(frames):
    for mode in ("e2ee", "clear-prefix"):
        a, b = make_transform(mode, seed=5), make_transform(mode, seed=5)
        assert a.key == b.key and a.sender.transform(frames["key"]) == b.sender.transform(frames["key"])
    assert make_transform("e2ee", seed=5).key != make_transform("e2ee", seed=6).key


def test_sframe_receiver_rereads_vp8_type(frames):
    pair = make_transform("e2ee", seed=1)
    protected = pair.sender.transform(frames["key"]).replace(type=None)  # type unknown to the depacketizer
    assert pair.receiver.transform(protected).type == "key"


def test_clear_prefix_receiver_reads_type_from_clear_tag(frames):
    pair = make_transform("clear-prefix", seed=1)
    for kind in ("key", "delta"):
        protected = pair.sender.transform(frames[kind]).replace(type=None)
        assert pair.receiver.transform(protected).data == frames[kind].data


# --- tampering and wrong keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["delta", "audio"])
def test_sframe_any_tampered_byte_is_rejected(frames, kind):
    pair = make_transform("e2ee", seed=2)
    protected = pair.sender.transform(frames[kind])
    for pos in range(len(protected.data)):
        with pytest.raises(SFrameError):
            pair.receiver.transform(flip(protected, pos))
    assert pair.receiver.transform(protected) == frames[kind]  # forgeries did not move the window


def test_sframe_tampered_key_frame_sampled_bytes(frames):
    pair = make_transform("e2ee", seed=2)
    protected = pair.sender.transform(frames["key"])
    size = len(protected.data)
    for pos in sorted({0, 1, 2, size // 2, size - 17, size - 1}):
        for bit in (0x01, 0x80):
            with pytest.raises(SFrameError):
                pair.receiver.transform(flip(protected, pos, bit))


def test_sframe_replay_is_rejected(frames):
    pair = make_transform("e2ee", seed=3)
    protected = pair.sender.transform(frames["audio"])
    pair.receiver.transform(protected)
    with pytest.raises(ReplayedFrame):
        pair.receiver.transform(protected)


def test_sframe_wrong_key_and_unknown_kid(frames):
    sender = make_transform("e2ee", key=b"k" * 16, kid=1).sender
    wrong = make_transform("e2ee", key=b"x" * 16, kid=1).receiver
    with pytest.raises(AuthenticationFailed) as err:
        wrong.transform(sender.transform(frames["delta"]))
    assert err.value.reason == "auth"
    other_kid = make_transform("e2ee", key=b"k" * 16, kid=2).receiver
    with pytest.raises(UnknownKeyId):
        other_kid.transform(sender.transform(frames["delta"]))


def test_sframe_transforms_share_a_context(frames):
    """A receiver context holding several senders' keys decrypts each (the group-call shape)."""
    recv = SFrameContext(CipherSuite.AES_256_GCM_SHA512_128)
    senders = []
    for kid in (1, 2):
        ctx = SFrameContext(CipherSuite.AES_256_GCM_SHA512_128)
        ctx.add_send_key(kid, bytes([kid]) * 32)
        recv.add_receive_key(kid, bytes([kid]) * 32)
        senders.append(SFrameSender(ctx, kid))
    receiver = SFrameReceiver(recv)
    for sender in senders:
        assert receiver.transform(sender.transform(frames["audio"])) == frames["audio"]


@pytest.mark.parametrize("kind", KINDS)
def test_clear_prefix_tampered_prefix_is_rejected(frames, kind):
    pair = make_transform("clear-prefix", seed=4)
    protected = pair.sender.transform(frames[kind])
    for pos in range(clear_prefix_length(frames[kind].kind, frames[kind].type)):
        for bit in (0x01, 0x40):
            with pytest.raises(FrameAuthenticationFailed):
                pair.receiver.transform(flip(protected, pos, bit))


@pytest.mark.parametrize("kind", ["delta", "audio"])
def test_clear_prefix_any_tampered_byte_is_rejected(frames, kind):
    pair = make_transform("clear-prefix", seed=4)
    protected = pair.sender.transform(frames[kind])
    size = len(protected.data)
    expected = {size - 2: MalformedFrame, size - 1: UnknownKeyIndex}
    for pos in range(size):
        with pytest.raises(expected.get(pos, FrameAuthenticationFailed)):
            pair.receiver.transform(flip(protected, pos))


def test_clear_prefix_wrong_key_and_key_ring(frames):
    sender = ClearPrefixSender(KEY, key_index=3)
    protected = sender.transform(frames["delta"])
    with pytest.raises(FrameAuthenticationFailed) as err:
        ClearPrefixReceiver({3: bytes(16)}).transform(protected)
    assert err.value.reason == "auth"
    with pytest.raises(UnknownKeyIndex) as err:
        ClearPrefixReceiver({0: KEY}).transform(protected)
    assert err.value.reason == "unknown_key"
    ring = ClearPrefixReceiver({0: bytes(16)})
    ring.set_key(3, KEY)
    assert ring.transform(protected) == frames["delta"]
    ring.remove_key(3)
    with pytest.raises(UnknownKeyIndex):
        ring.transform(protected)
    with pytest.raises(UnknownKeyIndex):
        ring.remove_key(3)


@pytest.mark.parametrize("size", [0, 1, 10, 10 + 16 + 13], ids=["empty", "1B", "prefix-only", "one-short"])
def test_clear_prefix_short_frames_are_malformed(frames, size):
    receiver = ClearPrefixReceiver({0: KEY})
    with pytest.raises(MalformedFrame) as err:
        receiver.transform(frames["key"].replace(data=bytes(size)))
    assert err.value.reason == "malformed"


def test_clear_prefix_sender_refuses_frames_shorter_than_prefix(frames):
    with pytest.raises(MalformedFrame):
        ClearPrefixSender(KEY).transform(frames["key"].replace(data=b"\x00" * 5))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClearPrefixSender(bytes(15)),
        lambda: ClearPrefixSender(bytes(24)),
        lambda: ClearPrefixSender(KEY, key_index=256),
        lambda: ClearPrefixSender(KEY, initial_count=-1),
        lambda: ClearPrefixReceiver({0: bytes(8)}),
        lambda: ClearPrefixReceiver({300: KEY}),
        lambda: make_transform("e2ee", key=bytes(8)),
    ],
    ids=["key15", "key24", "index256", "count-1", "recv-key8", "recv-index300", "sframe-key8"],
)
def test_bad_parameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


# --- sizes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite, expected", [(1, 11), (2, 9), (3, 5), (4, 17), (5, 17)])
def test_sframe_overhead_by_suite(suite, expected):
    assert overhead("e2ee", suite=suite) == expected


def test_sframe_overhead_grows_with_counter(frames):
    pair = make_transform("e2ee", seed=8)
    sizes = [len(pair.sender.transform(frames["audio"]).data) - len(frames["audio"].data) for _ in range(300)]
    assert sizes[0] == sizes[7] == overhead("e2ee", ctr=7) == 17
    assert sizes[8] == sizes[255] == overhead("e2ee", ctr=8) == 18
    assert sizes[256] == overhead("e2ee", ctr=256) == 19
    assert overhead("dtls-srtp") == 0 and overhead("e2ee", kid=8) == 18


@pytest.mark.parametrize(
    "mode, kind, ftype, expected",
    [("dtls-srtp", "video", "key", 5000), ("e2ee", "video", "key", 0), ("clear-prefix", "video", "key", 10),
     ("clear-prefix", "video", "delta", 3), ("clear-prefix", "audio", None, 1)],
)
def test_visible_bytes(mode, kind, ftype, expected):
    assert visible_bytes(mode, 5000, kind, ftype) == expected
    assert visible_bytes(mode, 2, kind, ftype) == min(2, expected)


# --- arbitrary input: typed errors only ------------------------------------------------------------------

_meta = st.sampled_from(
    [FrameMetadata(1, 96, "video"), FrameMetadata(2, 111, "audio")]
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), meta=_meta, ftype=st.sampled_from(["key", "delta", None]))
def test_receivers_raise_only_typed_errors(data, meta, ftype):
    frame = EncodedFrame(data=data, timestamp=0, metadata=meta, type=ftype if meta.kind == "video" else None)
    for mode in ("e2ee", "clear-prefix"):
        receiver = make_transform(mode, key=KEY, kid=0).receiver
        with pytest.raises(TRANSFORM_ERRORS):
            receiver.transform(frame)


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(min_size=10, max_size=300),
    kid=st.integers(0, 2**64 - 1),
    suite=st.sampled_from(list(CipherSuite)),
)
def test_sframe_round_trip_arbitrary_frames(data, kid, suite):
    pair = make_transform("e2ee", key=KEY, kid=kid, suite=suite)
    frame = EncodedFrame(data=data, timestamp=7, metadata=FrameMetadata(1, 111, "audio"))
    assert pair.receiver.transform(pair.sender.transform(frame)) == frame


def test_error_families():
    assert issubclass(MalformedFrame, TransformError) and issubclass(UnknownKeyIndex, TransformError)
    assert TRANSFORM_ERRORS == (TransformError, SFrameError)
