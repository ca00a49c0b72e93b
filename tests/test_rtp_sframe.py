"""The SFrame RTP payload format (draft-ietf-avtcore-rtp-sframe-02): descriptor, both modes,
per-SSRC keys, reassembly under loss/reorder/duplication, and typed drops for bad input."""

import hmac
import os
import random
from hashlib import sha256, sha512

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, SFrameError, UnknownKeyId
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.rtp import (
    Codec,
    EmptyFrame,
    FrameAssembled,
    MalformedSFrameDescriptor,
    PacketDropped,
    RTPPacketizer,
    RTPSFrameMode,
    SFrameAssembled,
    SFrameDepacketizer,
    SFramePacketizer,
    SFramePayloadDescriptor,
    SFrameReceiver,
    SSRCKeyring,
    parse_rtp,
    serialize_rtp,
    ssrc_base_key,
)
from e2ee_lab.rtp.sframe_format import MAX_SFRAME_OVERHEAD

VIDEO_SSRC, AUDIO_SSRC, KID = 0x1111, 0x2222, 3
PTS = {96: Codec.VP8, 111: Codec.OPUS}
MODES = list(RTPSFrameMode)


def contexts(suite=CipherSuite.AES_128_GCM_SHA256_128, window=128):
    key = os.urandom(16)
    send, recv = SFrameContext(suite), SFrameContext(suite, window=window)
    send.add_send_key(KID, key)
    recv.add_receive_key(KID, key)
    return send, recv


def video_frame(data, index):
    return EncodedFrame(data, 3000 * index, FrameMetadata(VIDEO_SSRC, 96, "video"), "delta")


def audio_frame(data, index, vad=True):
    meta = FrameMetadata(AUDIO_SSRC, 111, "audio", audioLevel=30, voiceActivity=vad)
    return EncodedFrame(data, 960 * index, meta)


def pair(mode, codec=Codec.VP8, mtu=1200, seed=1, window=128, **receiver_kwargs):
    send, recv = contexts(window=window)
    ssrc, pt = (VIDEO_SSRC, 96) if codec is Codec.VP8 else (AUDIO_SSRC, 111)
    packetizer = SFramePacketizer(
        codec, mode=mode, protect=lambda pt_: send.protect(KID, pt_), ssrc=ssrc,
        payload_type=pt, seed=seed, mtu=mtu,
    )
    receiver = SFrameReceiver(PTS, lambda ct, _ssrc: recv.unprotect(ct),
                              extensions_map=packetizer.extensions_map, **receiver_kwargs)
    return packetizer, receiver


def frames_of(events):
    return [e for e in events if isinstance(e, FrameAssembled)]


def feed(receiver, packets):
    events = []
    for p in packets:
        events += receiver.receive(p)
    return events


# --- the descriptor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "byte,fields",
    [(0xC0, (True, True, False, 0)), (0xE0, (True, True, True, 0)), (0x80, (True, False, False, 0)),
     (0x40, (False, True, False, 0)), (0x00, (False, False, False, 0)),
     (0x3F, (False, False, True, 0x1F))],
    ids=["SE-raw", "SE-packetized", "S-only", "E-only", "middle", "reserved-kept"],
)
def test_descriptor_bits_follow_draft_02_section_4(byte, fields):
    descriptor, rest = SFramePayloadDescriptor.parse(bytes((byte,)) + b"\x99")
    assert (descriptor.start, descriptor.end, descriptor.packetized, descriptor.reserved) == fields
    assert rest == b"\x99"
    assert bytes(descriptor) == bytes((byte,))


@pytest.mark.parametrize("payload", [b"", b"\xc0"], ids=["empty", "descriptor-only"])
def test_descriptor_without_fragment_is_a_typed_error(payload):
    with pytest.raises(MalformedSFrameDescriptor, match="bytes"):
        SFramePayloadDescriptor.parse(payload)
    assert MalformedSFrameDescriptor.reason == "sframe_descriptor"


def test_descriptor_rejects_reserved_values_that_do_not_fit():
    with pytest.raises(ValueError):
        SFramePayloadDescriptor(True, True, False, reserved=0x20)


# --- packetization ----------------------------------------------------------------------------


def test_per_frame_fragments_one_ciphertext_with_s_on_first_and_e_plus_marker_on_last():
    packetizer, _ = pair(RTPSFrameMode.PER_FRAME, mtu=300)
    packets = packetizer.packetize(video_frame(os.urandom(1000), 0))
    descriptors = [SFramePayloadDescriptor.parse(p.payload)[0] for p in packets]
    assert len(packets) == 4
    assert [d.start for d in descriptors] == [True, False, False, False]
    assert [d.end for d in descriptors] == [False, False, False, True]
    assert not any(d.packetized for d in descriptors)
    assert [p.marker for p in packets] == [0, 0, 0, 1]
    assert len({p.timestamp for p in packets}) == 1 and len({p.payload_type for p in packets}) == 1
    ciphertext = b"".join(p.payload[1:] for p in packets)
    assert ciphertext[0] == 0x30 | 0  # SFrame header: KID 3, CTR 0 (RFC 9605 §4.3)
    assert len(ciphertext) == 1000 + 1 + 16  # header + GCM tag: no VP8 descriptor anywhere
    assert all(len(serialize_rtp(p, packetizer.extensions_map)) <= 300 - 16 for p in packets)


def test_per_packet_encrypts_each_codec_payload_and_sets_s_e_t():
    packetizer, _ = pair(RTPSFrameMode.PER_PACKET, mtu=300)
    plain = RTPPacketizer(Codec.VP8, ssrc=VIDEO_SSRC, payload_type=96, seed=1, mtu=300)
    plain.max_payload_size -= 1 + MAX_SFRAME_OVERHEAD
    frame = video_frame(os.urandom(1000), 0)
    packets, reference = packetizer.packetize(frame), plain.packetize(frame)
    assert len(packets) == len(reference) > 1
    for p, ref in zip(packets, reference):
        assert p.payload[0] == 0xE0  # S=E=T=1
        assert (p.sequence_number, p.marker, p.timestamp) == (
            ref.sequence_number, ref.marker, ref.timestamp)
        assert len(p.payload) == 1 + 1 + len(ref.payload) + 16 + (p.payload[1] & 0x08 and 1)
        assert len(serialize_rtp(p, packetizer.extensions_map)) <= 300 - 16


def test_per_frame_audio_keeps_the_zero_marker_and_audio_level():
    packetizer, receiver = pair(RTPSFrameMode.PER_FRAME, Codec.OPUS)
    packets = [packetizer.packetize(audio_frame(os.urandom(80), i))[0] for i in range(3)]
    assert [p.marker for p in packets] == [0, 0, 0]  # no silence suppression: RFC 3551 §4.1
    assert packets[0].extensions.audio_level == (True, 30)
    frames = frames_of(feed(receiver, [serialize_rtp(p, packetizer.extensions_map)
                                       for p in packets]))
    assert [f.audio_level.level for f in frames] == [30, 30, 30]


def test_empty_frame_and_failed_protect_consume_no_sequence_number():
    def failing(_):
        raise UnknownKeyId("no key")

    for mode in MODES:
        packetizer = SFramePacketizer(Codec.VP8, mode=mode, protect=failing, ssrc=1,
                                      payload_type=96, seed=3)
        first = packetizer.sequence_number
        with pytest.raises(EmptyFrame):
            packetizer.packetize(video_frame(b"", 0))
        with pytest.raises(UnknownKeyId):
            packetizer.packetize(video_frame(b"x" * 3000, 0))
        assert packetizer.sequence_number == first and packetizer.packets_sent == 0


def test_mtu_too_small_for_per_packet_overhead_is_refused():
    with pytest.raises(ValueError, match="MTU"):
        SFramePacketizer(Codec.VP8, mode=RTPSFrameMode.PER_PACKET, protect=bytes, ssrc=1,
                         payload_type=96, mtu=60)


# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(MODES),
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=8),
    mtu=st.integers(120, 1500),
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0, 0.3),
    duplicate=st.floats(0, 0.3),
)
def test_round_trip_under_loss_reorder_duplication(mode, sizes, mtu, seed, loss, duplicate):
    rng = random.Random(seed)
    # Per-packet content goes through the codec reassembly, which (like aiortc's and libwebrtc's
    # buffers) releases the first complete frame at once; hold it until every packet is in so a
    # shuffled stream is judged on reassembly, not on the jitter buffer's start-up policy; the
    # horizons (tested on their own below) and the SFrame replay window are opened to the whole
    # shuffled stream (per-packet mode spends one CTR a packet: 8 frames at MTU 120 are ~800).
    big = 10**6
    packetizer, receiver = pair(mode, mtu=mtu, seed=seed, window=4096, startup_packets=big,
                                horizon_packets=big, horizon=big)
    datas = [bytes([0x10 | (i & 1)]) + rng.randbytes(n - 1) for i, n in enumerate(sizes)]
    per_frame = [packetizer.serialize(video_frame(d, i)) for i, d in enumerate(datas)]
    lost = {(i, j) for i, pkts in enumerate(per_frame) for j in range(len(pkts))
            if rng.random() < loss}
    wire = [p for i, pkts in enumerate(per_frame) for j, p in enumerate(pkts) if (i, j) not in lost]
    wire += [p for p in wire if rng.random() < duplicate]
    rng.shuffle(wire)
    frames = frames_of(feed(receiver, wire) + receiver.flush())
    complete = {i for i, pkts in enumerate(per_frame)
                if all((i, j) not in lost for j in range(len(pkts)))}
    got = sorted((f.timestamp // 3000, f.data) for f in frames)
    assert got == sorted((i, datas[i]) for i in complete)  # every complete frame, exactly once
    assert receiver.dropped["auth"] == 0
    assert receiver.depacketizer.dropped["duplicate"] == len(wire) - len(set(wire))


def test_per_packet_round_trip_in_order_delivers_frames_through_the_codec_assembler():
    packetizer, receiver = pair(RTPSFrameMode.PER_PACKET, mtu=400)
    datas = [os.urandom(n) for n in (50, 900, 2500)]
    events = feed(receiver, [p for i, d in enumerate(datas)
                             for p in packetizer.serialize(video_frame(d, i))])
    assert [f.data for f in frames_of(events)] == datas
    assert [f.packet_count for f in frames_of(events)] == [1, 3, 8]


def test_a_lost_packet_costs_one_frame_and_the_next_decrypts():
    for mode in MODES:
        packetizer, receiver = pair(mode, mtu=400)
        datas = [os.urandom(1000) for _ in range(4)]
        per_frame = [packetizer.serialize(video_frame(d, i)) for i, d in enumerate(datas)]
        per_frame[1] = per_frame[1][:1] + per_frame[1][2:]
        frames = frames_of(feed(receiver, [p for pkts in per_frame for p in pkts])
                           + receiver.flush())
        assert [f.data for f in frames] == [datas[0], datas[2], datas[3]], mode


# --- the SFU's view and adversarial input -----------------------------------------------------


def test_depacketizer_exposes_descriptor_and_ciphertext_only():
    packetizer, _ = pair(RTPSFrameMode.PER_FRAME, mtu=500)
    data = os.urandom(1200)
    view = SFrameDepacketizer(extensions_map=packetizer.extensions_map)
    events = feed(view, packetizer.serialize(video_frame(data, 0)))
    (run,) = [e for e in events if isinstance(e, SFrameAssembled)]
    assert not run.packetized and run.packet_count == 3 and run.marker
    assert run.ciphertext[0] == 0x30 and data not in run.ciphertext


def test_mixed_t_bits_in_a_run_are_dropped_and_counted():
    packetizer, receiver = pair(RTPSFrameMode.PER_FRAME, mtu=400)
    packets = [parse_rtp(b, packetizer.extensions_map)
               for b in packetizer.serialize(video_frame(os.urandom(1000), 0))]
    packets[1].payload = bytes((packets[1].payload[0] | 0x20,)) + packets[1].payload[1:]
    events = feed(receiver, packets)
    assert receiver.dropped["sframe_inconsistent"] == 1 and not frames_of(events)


def test_mixed_payload_types_in_a_run_are_dropped():
    packetizer, receiver = pair(RTPSFrameMode.PER_FRAME, mtu=400)
    packets = packetizer.packetize(video_frame(os.urandom(1000), 0))
    packets[2].payload_type = 111
    events = feed(receiver, packets)
    assert receiver.dropped["sframe_inconsistent"] == 1 and not frames_of(events)


def test_tampered_fragment_fails_authentication_and_is_counted():
    packetizer, receiver = pair(RTPSFrameMode.PER_FRAME, mtu=400)
    packets = packetizer.packetize(video_frame(os.urandom(1000), 0))
    packets[1].payload = packets[1].payload[:5] + bytes((packets[1].payload[5] ^ 1,)) + \
        packets[1].payload[6:]
    assert not frames_of(feed(receiver, packets))
    assert receiver.dropped["auth"] == 1


@settings(max_examples=200, deadline=None)
@given(junk=st.lists(st.binary(max_size=60), max_size=30), seq0=st.integers(0, 65535))
def test_junk_never_raises_and_every_packet_is_accounted(junk, seq0):
    # Half the inputs are valid RTP headers with random payloads, so the descriptor path runs.
    packets = [bytes((0x80, 96)) + ((seq0 + i) % 65536).to_bytes(2, "big") + bytes(8) + j
               if i % 2 else j for i, j in enumerate(junk)]
    view = SFrameDepacketizer(horizon=8)
    events = feed(view, packets)
    runs = [e for e in events if isinstance(e, SFrameAssembled)]
    single = [e for e in events if isinstance(e, PacketDropped) and e.reason != "expired"]
    accounted = (len(single) + sum(r.packet_count for r in runs) + view.dropped["expired"]
                 + view.pending_packets())
    assert accounted == len(packets)
    _, receiver = pair(RTPSFrameMode.PER_FRAME)
    assert not frames_of(feed(receiver, packets))  # no key matches junk: nothing decrypts


def test_fragments_that_never_complete_expire_and_are_counted():
    packetizer, _ = pair(RTPSFrameMode.PER_FRAME, mtu=200)
    view = SFrameDepacketizer(extensions_map=packetizer.extensions_map, horizon=16)
    stuck = packetizer.serialize(video_frame(os.urandom(2000), 0))[1:]  # S fragment lost
    feed(view, stuck)
    for i in range(1, 20):
        feed(view, packetizer.serialize(video_frame(os.urandom(10), i)))
    assert view.pending_packets(VIDEO_SSRC) == 0
    assert view.dropped["expired"] == len(stuck) == view.stats["fragments_expired"]


def test_packetized_run_over_several_packets_is_refused_not_misread():
    send, recv = contexts()
    packetizer = SFramePacketizer(Codec.VP8, mode=RTPSFrameMode.PER_FRAME, mtu=200, ssrc=VIDEO_SSRC,
                                  payload_type=96, seed=1, protect=lambda p: send.protect(KID, p))
    packets = packetizer.packetize(video_frame(os.urandom(600), 0))
    for p in packets:
        p.payload = bytes((p.payload[0] | 0x20,)) + p.payload[1:]
    receiver = SFrameReceiver(PTS, lambda ct, _s: recv.unprotect(ct))
    assert not frames_of(feed(receiver, packets))
    assert receiver.dropped["sframe_packetized_fragmented"] == 1


class _StreamMismatch(Exception):
    reason = "kid_stream_mismatch"


def test_the_caller_names_the_errors_its_unprotect_may_raise():
    # A caller whose unprotect also checks the KID against the stream (the call's receivers) adds
    # its own error family: counted under its reason, like the SFrame errors. Anything else is a bug
    # in the caller and propagates.
    send, _ = contexts()
    packets = SFramePacketizer(Codec.VP8, mode=RTPSFrameMode.PER_FRAME, ssrc=VIDEO_SSRC, payload_type=96,
                               seed=1, protect=lambda p: send.protect(KID, p)).packetize(video_frame(b"x" * 50, 0))

    def refuse(_ct, _ssrc):
        raise _StreamMismatch("KID names another stream")

    receiver = SFrameReceiver(PTS, refuse, errors=(SFrameError, _StreamMismatch))
    drops = feed(receiver, packets)
    assert [d.reason for d in drops] == ["kid_stream_mismatch"] and not frames_of(drops)
    assert receiver.dropped == {"kid_stream_mismatch": 1}
    with pytest.raises(_StreamMismatch):
        feed(SFrameReceiver(PTS, refuse), packets)


# --- per-SSRC keys (-02 §7) -------------------------------------------------------------------


def _hkdf_by_hand(hash_fn, salt, ikm, info, length):
    """RFC 5869 §2.2-2.3 written out with the standard library's HMAC, as an independent check."""
    prk = hmac.new(salt, ikm, hash_fn).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes((i,)), hash_fn).digest()
        out, i = out + block, i + 1
    return out[:length]


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_ssrc_key_is_hkdf_with_the_ssrc_as_salt_and_the_draft_label(suite):
    base = bytes(range(16))
    hash_fn = sha512 if suite.nh == 64 else sha256
    expected = _hkdf_by_hand(hash_fn, (0x01020304).to_bytes(4, "big"), base,
                             b"SFrame 1.0 RTP Stream", suite.nh)
    assert ssrc_base_key(suite, base, 0x01020304) == expected
    assert len(expected) == suite.nh
    assert ssrc_base_key(suite, base, 0x01020305) != expected


def test_ssrc_key_refuses_out_of_range_ssrc():
    with pytest.raises(ValueError):
        ssrc_base_key(CipherSuite.AES_128_GCM_SHA256_128, bytes(16), 1 << 32)


def test_per_ssrc_keys_share_a_kid_but_not_keys_and_bind_frames_to_their_stream():
    base = os.urandom(16)
    sender = SSRCKeyring(CipherSuite.AES_128_GCM_SHA256_128, base, kid=KID)
    receiver = SSRCKeyring(CipherSuite.AES_128_GCM_SHA256_128, base, kid=KID)
    for ssrc in (VIDEO_SSRC, AUDIO_SSRC):
        sender.add_send_stream(ssrc)
        receiver.add_receive_stream(ssrc)
    video, audio = sender.protect(b"frame", VIDEO_SSRC), sender.protect(b"frame", AUDIO_SSRC)
    assert video[0] == audio[0] == 0x30  # same KID and CTR in both headers...
    assert video != audio  # ...distinct keys, so no nonce is shared
    with pytest.raises(SFrameError) as moved:
        receiver.unprotect(audio, VIDEO_SSRC)  # a frame moved to another SSRC
    assert moved.value.reason == "auth"
    assert receiver.unprotect(video, VIDEO_SSRC) == b"frame"
    assert receiver.unprotect(audio, AUDIO_SSRC) == b"frame"
    with pytest.raises(UnknownKeyId):
        receiver.unprotect(video, 0x9999)


def test_per_ssrc_per_packet_round_trip():
    base = os.urandom(16)
    sender = SSRCKeyring(CipherSuite.AES_128_CTR_HMAC_SHA256_80, base, kid=7)
    receiver = SSRCKeyring(CipherSuite.AES_128_CTR_HMAC_SHA256_80, base, kid=7)
    sender.add_send_stream(VIDEO_SSRC)
    receiver.add_receive_stream(VIDEO_SSRC)
    packetizer = SFramePacketizer(Codec.VP8, mode=RTPSFrameMode.PER_PACKET, ssrc=VIDEO_SSRC,
                                  payload_type=96, protect=lambda p: sender.protect(p, VIDEO_SSRC))
    rx = SFrameReceiver(PTS, receiver.unprotect)
    datas = [os.urandom(3000), os.urandom(10)]
    frames = frames_of(feed(rx, [p for i, d in enumerate(datas)
                                 for p in packetizer.serialize(video_frame(d, i))]))
    assert [f.data for f in frames] == datas
