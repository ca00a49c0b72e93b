"""Tests of e2ee_lab.webrtc: the lab's call on aiortc peer connections through an aiortc SFU.

Unit tests (no network): SDP candidate checks and the payload-type rewrite, the scoped loopback
patch, the existence of every private aiortc attribute the hooks use, the transforming encoder,
and the W3C-shaped transforms with real frame crypto. One component test runs two aiortc peer
connections on loopback with a receiver that first holds the wrong frame key: frames are dropped
before the decoder, key frames are requested at a throttled rate, and once the right key is set
the same decoder thread decodes again.

Integration: one call per mode (module fixture; 3 participants, ci size, 3 s of measured media),
captured by sniffing ``lo`` where permitted. "Frames sent after the connection was up" are the
frames of the measured window: media starts only once every peer connection is connected and
every member holds every key (``summary["window"]``). Receivers must decode at least 95 % of them,
the SFU at least 95 % of what it saw in dtls-srtp mode and nothing in e2ee mode, PLIs stay few,
every SDP candidate and every captured datagram is loopback, and the offline analysis of the
capture (the SFU's exported key log, the members' frame keys) gives the same verdicts. The
summary carries every field of the lab call's summary (compared, recursively, with the recorded
lab calls of ``data/captures`` and with one short live lab call).

Short calls (2 participants, ci size, 1.5 s): the ``e2ee-lab call --stack webrtc`` entry point,
and a subscriber's key-frame request (PLI) that must reach the publisher through the SFU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import threading

import aioice.ice
import numpy as np
import pandas as pd
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.mediastreams import MediaStreamError

from e2ee_lab.analysis.offline import analyze
from e2ee_lab.analysis.views import CapturedCall, analyze_views, recording
from e2ee_lab.call import add_call_arguments, run_call
from e2ee_lab.call.frame_keys import SFrameCrypto
from e2ee_lab.call.participant import WIRE_SAMPLE
from e2ee_lab.call.pipeline import PLI_INTERVAL
from e2ee_lab.call.common import CALL_KEY_POLICY, START_DELAY, format_summary
from e2ee_lab.capture import sniff_problem
from e2ee_lab.crypto.keys import Group
from e2ee_lab.media.codecs import VP8_PAYLOAD_TYPE
from e2ee_lab.media.scene import Scene, to_video_frame
from e2ee_lab.media.speech import SpeechSource
from e2ee_lab.webrtc import (
    PRIVATE_ATTRIBUTES,
    CaptureImpossible,
    NotLoopback,
    annotate,
    candidates,
    check_loopback,
    dtls_setup,
    has_sdes,
    loopback_configuration,
    loopback_ice,
    missing_attributes,
    remap_offer,
    run_webrtc_call,
    run_webrtc_call_async,
)
from e2ee_lab.webrtc import aiortc_hooks
from e2ee_lab.webrtc.aiortc_hooks import TransformingEncoder
from e2ee_lab.transport import read_keylog, receive_session
from e2ee_lab.webrtc.call import mark_late, widen_receive_buffers
from e2ee_lab.webrtc.media import SceneTrack, parse_track_label, prefer
from e2ee_lab.webrtc.transform import ReceiverTransform, SenderTransform, attach_receiver, attach_sender

MODES = ["dtls-srtp", "e2ee"]
PEOPLE, SECONDS = 3, 3.0
DELIVERY = 0.95
MAX_PLIS_PER_STREAM = 3
LOOPBACK = {"127.0.0.1", "::1"}
CAPTURE = "sniff" if sniff_problem() is None else "off"
needs_capture = pytest.mark.skipif(CAPTURE == "off", reason=f"no live capture here: {sniff_problem()}")


def _candidate(address: str, port: int = 5000, typ: str = "host") -> str:
    return f"a=candidate:1 1 udp 2130706431 {address} {port} typ {typ}"


SDP = "\r\n".join(["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=video 5000 UDP/TLS/RTP/SAVPF 97",
                   "c=IN IP4 127.0.0.1", "a=mid:0", _candidate("127.0.0.1"), "a=setup:actpass"]) + "\r\n"


# --- SDP -------------------------------------------------------------------------------------------


def test_candidates_are_parsed_with_their_mid():
    (c,) = candidates(SDP)
    assert (c.mid, c.address, c.port, c.type, c.component, c.transport) == ("0", "127.0.0.1", 5000, "host", 1, "udp")


def test_check_loopback_accepts_loopback_host_candidates():
    assert [c.address for c in check_loopback(SDP)] == ["127.0.0.1"]


@pytest.mark.parametrize("line", [
    _candidate("192.0.2.2"), _candidate("127.0.0.1", typ="srflx"), _candidate("abcd.local"),
], ids=["external-host", "srflx", "mdns-name"])
def test_check_loopback_rejects_what_could_leave_the_machine(line):
    with pytest.raises(NotLoopback, match="leaves loopback"):
        check_loopback(SDP + line + "\r\n")


def test_check_loopback_rejects_a_remote_connection_address_and_no_candidates():
    with pytest.raises(NotLoopback, match="c=IN IP4 192.0.2.9"):
        check_loopback(SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 192.0.2.9"))
    with pytest.raises(NotLoopback, match="no ICE candidate"):
        check_loopback(SDP.replace(_candidate("127.0.0.1"), "a=rtcp-mux"))
    with pytest.raises(ValueError, match="malformed candidate"):
        candidates(SDP + "a=candidate:1 1 udp 5 127.0.0.1\r\n")


async def _offer_sdp() -> str:
    pc = RTCPeerConnection(loopback_configuration())
    try:
        for kind in ("audio", "video"):
            prefer(pc.addTransceiver(kind, direction="recvonly"), kind)
        return (await pc.createOffer()).sdp  # no gathering: createOffer opens no socket
    finally:
        await pc.close()


def test_remap_offer_gives_the_lab_payload_types_and_extension_ids():
    raw = asyncio.run(_offer_sdp())
    assert "a=rtpmap:97 VP8/90000" in raw and "a=rtpmap:96 opus/48000/2" in raw  # aiortc's own
    sdp = remap_offer(raw)
    assert "a=rtpmap:96 VP8/90000" in sdp and "a=rtpmap:111 opus/48000/2" in sdp
    assert "m=video 9 UDP/TLS/RTP/SAVPF 96" in sdp and "m=audio 9 UDP/TLS/RTP/SAVPF 111" in sdp
    assert "a=rtcp-fb:96 nack pli" in sdp and "a=rtcp-fb:97" not in sdp
    assert "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid" in sdp
    assert "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level" in sdp
    assert remap_offer(sdp) == sdp  # idempotent
    assert dtls_setup(sdp) == ["actpass", "actpass"] and not has_sdes(sdp)


def test_remap_offer_refuses_a_payload_type_collision():
    sdp = SDP.replace("97", "97 96") + "a=rtpmap:97 VP8/90000\r\na=rtpmap:96 H264/90000\r\n"
    with pytest.raises(ValueError, match="taken"):
        remap_offer(sdp)


def test_annotate_explains_fingerprint_setup_and_candidates():
    table = annotate(SDP + "a=fingerprint:sha-256 AB:CD\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n",
                     side="offer")
    meanings = dict(zip(table.line, table.meaning))
    assert "either DTLS role" in meanings["a=setup:actpass"]
    assert "certificate" in meanings["a=fingerprint:sha-256 AB:CD"]
    assert "(loopback)" in meanings[_candidate("127.0.0.1")]
    assert any("SDES" in m for m in table.meaning) and set(table.side) == {"offer"}


# --- the loopback patch and the private attributes --------------------------------------------------


def test_loopback_ice_is_scoped_nested_and_restored_after_errors():
    original = aioice.ice.get_host_addresses
    with pytest.raises(RuntimeError):
        with loopback_ice():
            with loopback_ice():
                assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
            assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
            raise RuntimeError("boom")
    assert aioice.ice.get_host_addresses is original


def test_loopback_configuration_has_no_ice_servers():
    config = loopback_configuration()
    assert isinstance(config, RTCConfiguration) and config.iceServers == []


def test_every_private_aiortc_attribute_the_hooks_use_still_exists():
    assert len(PRIVATE_ATTRIBUTES) == 13
    names = [(c, a) for c, a, _ in PRIVATE_ATTRIBUTES]
    assert ("RTCIceTransport", "_send") in names and ("RTCIceGatherer", "_connection") in names
    assert ("Connection", "_protocols") in names
    assert missing_attributes() == []


# --- encoder and transforms ------------------------------------------------------------------------


def test_transforming_encoder_sees_whole_vp8_frames_with_aiortc_timestamps():
    seen: list[tuple[bytes, int]] = []

    def hook(data: bytes, timestamp: int) -> bytes:
        seen.append((data, timestamp))
        return b"\xee" + data

    encoder, scene = TransformingEncoder(Vp8Encoder(), hook), Scene(0)
    for i in range(3):
        payloads, timestamp = encoder.encode(to_video_frame(scene.rgb(i), pts=i, fps=15), False)
        assert b"".join(vp8_depayload(p) for p in payloads) == b"\xee" + seen[-1][0]
        assert timestamp == seen[-1][1]  # PyAV rounds frame 2 to 11999: the hook sees that too
    assert len(payloads) >= 1 and [t for _, t in seen] == [0, 6000, 11999]
    assert len(TransformingEncoder(Vp8Encoder(), lambda d, t: None).encode(to_video_frame(scene.rgb(0)), False)[0]) == 0


def test_transforming_encoder_transforms_each_opus_frame():
    encoder = TransformingEncoder(OpusEncoder(), lambda data, ts: data[::-1])
    plain = OpusEncoder()
    chunk = SpeechSource().chunk(0).to_av_frame()
    got, _ = encoder.encode(chunk)
    want, _ = plain.encode(SpeechSource().chunk(0).to_av_frame())
    assert len(got) == 1 and got[0] == want[0][::-1]


class _Clock:
    def __init__(self, now: float = 1.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _members(seed: int):
    group = Group(policy=CALL_KEY_POLICY, seed=seed)
    group.join(0.0)
    group.join(0.0)
    group.tick(1.0)
    return group.members[0], group.members[1]


def test_sender_and_receiver_transforms_round_trip_and_fail_closed():
    alice, bob = _members(1)
    clock, lock = _Clock(), threading.Lock()
    sender = SenderTransform(None, kind="video", ssrc=5, payload_type=VP8_PAYLOAD_TYPE,
                             ticks_per_frame=6000, lock=lock, clock=clock)
    frame = Vp8Encoder().encode(to_video_frame(Scene(0).rgb(0)), False)[0]
    data = b"".join(vp8_depayload(p) for p in frame)
    assert sender(data, 12000) is None and sender.dropped == {"no_frame_crypto": 1}
    sender.crypto = SFrameCrypto(alice)
    protected = sender(data, 12000)
    assert protected != data and sender.records[-1].frame_index == 2 and sender.records[-1].frame_type == "key"
    receiver = ReceiverTransform(SFrameCrypto(bob), kind="video", sender_member=0, lock=lock, clock=clock)
    assert receiver(9, protected, 777) == (data, False)
    assert receiver.first_timestamp == 777 and receiver.wire_timestamp(2**32 - 700) == 77
    assert receiver.opened(777).size == len(protected) and receiver.opened(777).frame_type == "key"


def test_receiver_transform_drops_refused_frames_and_throttles_key_frame_requests():
    alice, _ = _members(1)
    _, stranger = _members(2)  # same KIDs, other keys
    clock, lock = _Clock(), threading.Lock()
    protected = SFrameCrypto(alice).protect(_video_frame(), clock.now).data
    video = ReceiverTransform(SFrameCrypto(stranger), kind="video", sender_member=0, lock=lock, clock=clock)
    assert video(9, protected, 1) == (None, True)
    clock.now += PLI_INTERVAL / 2
    assert video(9, protected, 2) == (None, False)  # within the interval: no second request
    clock.now += PLI_INTERVAL
    assert video(9, protected, 3) == (None, True)
    assert video.dropped == {"auth": 3} and video.key_frame_requests == 2 and video.first_timestamp is None
    audio = ReceiverTransform(SFrameCrypto(stranger), kind="audio", sender_member=0, lock=lock, clock=clock)
    assert audio(8, b"\x00\x01garbage", 1) == (None, False) and sum(audio.dropped.values()) == 1


@pytest.mark.parametrize("naive", [False, True], ids=["fixed", "naive"])
def test_receiver_transform_checks_the_kid_against_the_streams_publisher_and_kind(naive):
    # Finding 5 on the aiortc stack: the SFU forwards Bob's video on Alice's track, or on his own
    # audio track. The fixed receive transform drops it (kid_stream_mismatch) before decryption.
    group = Group(policy=CALL_KEY_POLICY.naive() if naive else CALL_KEY_POLICY, seed=1)
    for _ in range(3):
        group.join(0.0)
    group.tick(1.0)
    bob, carol = group.members[1], group.members[2]
    clock, lock = _Clock(), threading.Lock()
    frames = [SFrameCrypto(bob).protect(_video_frame(), clock.now).data for _ in range(3)]
    on_alice = ReceiverTransform(SFrameCrypto(carol), kind="video", sender_member=0, lock=lock, clock=clock)
    on_audio = ReceiverTransform(SFrameCrypto(carol), kind="audio", sender_member=1, lock=lock, clock=clock)
    on_bob = ReceiverTransform(SFrameCrypto(carol), kind="video", sender_member=1, lock=lock, clock=clock)
    if naive:
        assert on_alice(9, frames[0], 1)[0] is not None and on_audio(8, frames[1], 1)[0] is not None
        assert not on_alice.dropped and not on_audio.dropped
        return
    assert on_alice(9, frames[0], 1) == (None, True) and on_audio(8, frames[1], 1) == (None, False)
    assert on_alice.dropped == on_audio.dropped == {"kid_stream_mismatch": 1}
    assert all(on_bob(7, f, i)[0] is not None for i, f in enumerate(frames))  # windows untouched


def test_the_webrtc_stack_takes_the_key_options_and_refuses_a_bad_policy_name():
    from e2ee_lab.call.stacks import registered

    assert {"key_policy", "reproducible_keys"} <= registered()["webrtc"].accepts
    with pytest.raises(ValueError, match="naive"):
        run_call("e2ee", 2, 0.5, size="ci", stack="webrtc", key_policy="lenient")


def _video_frame():
    from e2ee_lab.media.frame import EncodedFrame, FrameMetadata

    return EncodedFrame(b"\x10\x02\x00\x9d\x01\x2a" + bytes(50), 0, FrameMetadata(5, 96, "video"), "key")


# --- a decryption failure on a real receiver ------------------------------------------------------


async def _wrong_key_then_right(seconds: float = 2.0, switch_at: float = 0.8):
    """Two aiortc peer connections: alice sends SFrame video, bob holds a wrong key until ``switch_at``."""
    alice, bob = _members(1)
    _, stranger = _members(2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    clock, lock = (lambda: 1.0 + loop.time() - t0), threading.Lock()
    start = loop.create_future()
    with loopback_ice():
        pub, sub = RTCPeerConnection(loopback_configuration()), RTCPeerConnection(loopback_configuration())
        sender = pub.addTrack(SceneTrack(Scene(0), start=start, frames=int(seconds * 15)))
        prefer(pub.getTransceivers()[0], "video")
        attach_sender(sender, SenderTransform(SFrameCrypto(alice), kind="video", ssrc=aiortc_hooks.sender_ssrc(sender),
                                              payload_type=VP8_PAYLOAD_TYPE, ticks_per_frame=6000, lock=lock,
                                              clock=clock))
        await pub.setLocalDescription(await pub.createOffer())
        await sub.setRemoteDescription(pub.localDescription)
        receiver = sub.getTransceivers()[0].receiver
        transform = ReceiverTransform(SFrameCrypto(stranger), kind="video", sender_member=0, lock=lock, clock=clock)
        attach_receiver(receiver, transform)
        plis: list[int] = []
        aiortc_hooks.count_plis(receiver, plis.append)
        await sub.setLocalDescription(await sub.createAnswer())
        await pub.setRemoteDescription(sub.localDescription)
    decoded: list[float] = []

    async def consume():
        while True:
            try:
                await receiver.track.recv()
            except MediaStreamError:
                return
            decoded.append(clock() - 1.0)

    consumer = asyncio.ensure_future(consume())
    while not (pub.connectionState == sub.connectionState == "connected"):
        await asyncio.sleep(0.01)
    start.set_result(loop.time())
    await asyncio.sleep(switch_at)
    transform.crypto = SFrameCrypto(bob)
    switched = clock() - 1.0
    await asyncio.sleep(seconds - switch_at + 0.3)
    await pub.close()
    await sub.close()
    await asyncio.wait_for(consumer, 2.0)
    return transform, plis, decoded, switched


def test_a_wrong_frame_key_drops_frames_asks_for_key_frames_and_the_decoder_recovers():
    transform, plis, decoded, switched = asyncio.run(_wrong_key_then_right())
    assert transform.dropped["auth"] >= 8  # about 12 frames in 0.8 s, all refused
    assert all(t > switched for t in decoded)  # nothing before the switch reached the decoder
    assert len(decoded) >= 10  # the same decoder thread decodes again once the key is right
    assert 1 <= transform.key_frame_requests <= math.ceil(0.8 / PLI_INTERVAL) + 1
    assert len(plis) <= transform.key_frame_requests + 4  # + aiortc's own until the key frame arrives


# --- the call, once per mode -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def call(request, tmp_path_factory):
    mode = request.param
    original = aioice.ice.get_host_addresses
    result = run_webrtc_call(mode, PEOPLE, SECONDS, seed=3, size="ci", out=tmp_path_factory.mktemp(mode),
                             capture=CAPTURE)
    assert aioice.ice.get_host_addresses is original  # the loopback patch is gone after the call
    return result


@pytest.fixture(scope="module")
def views(call):
    if call.capture is None:
        pytest.skip(f"no live capture here: {sniff_problem()}")
    return analyze_views(CapturedCall.from_result(call))


def test_every_receiver_decodes_the_frames_sent_after_connection(call):
    window = call.summary["window"]
    assert window["video_frames"] == 45 and window["audio_frames"] == 150
    assert call.summary["timing"]["media_start_s"] > call.summary["timing"]["connected_s"]
    for p in call.summary["participants"]:
        for kind in ("video", "audio"):
            expected = (PEOPLE - 1) * window[f"{kind}_frames"]
            assert p[f"{kind}_frames_expected"] == expected, (p["name"], kind)
            assert p[f"{kind}_frames_decoded"] >= DELIVERY * expected, (p["name"], kind, p)
        assert p["video_frames_sent"] == window["video_frames"]


def test_the_sfu_decodes_plain_media_and_nothing_of_e2ee_media(call):
    s = call.summary["sfu"]
    assert s["video_frames_seen"] >= PEOPLE * call.summary["window"]["video_frames"]
    if call.config.mode == "dtls-srtp":
        assert s["video_frames_decodable"] >= DELIVERY * s["video_frames_seen"]
        assert s["audio_frames_intelligible"] >= DELIVERY * s["audio_frames_seen"]
        assert set(call.pictures["bob"]) == {"alice", "carol"}
    else:
        assert s["video_frames_decoded"] == 0 and s["video_frames_decodable"] == 0
        assert s["audio_frames_intelligible"] == 0
        assert s["key_messages_relayed"] == PEOPLE * (PEOPLE - 1)
    # frame stealing: the SFU's jitter buffers completed (nearly) every frame, none was decoded by aiortc
    assert s["frames_stolen"]["video"] >= s["video_frames_seen"] - PEOPLE
    # every packet in goes to every other member, or is counted; only legs closing at the end may drop
    closing = {"closed_while_forwarding", "leg_not_connected", "send_failed"}
    assert s["packets_forwarded"] + sum(s["dropped"].values()) == (PEOPLE - 1) * s["packets_in"], s["dropped"]
    assert set(s["dropped"]) <= closing and sum(s["dropped"].values()) <= 2 * PEOPLE, s["dropped"]


def test_plis_stay_few(call):
    plis = call.summary["plis"]
    assert plis["max_per_stream"] <= MAX_PLIS_PER_STREAM
    assert plis["received_by_publishers"] <= MAX_PLIS_PER_STREAM * PEOPLE
    assert plis["forwarded_by_sfu"] <= plis["sent_by_receivers"]
    assert plis["sent_by_sfu"] == plis["forwarded_by_sfu"]  # stolen frames never make the SFU ask


def test_the_legs_negotiate_dtls_srtp_with_the_sfu_as_server(call):
    assert call.config.srtp_profile == "AEAD_AES_256_GCM"
    hs = call.handshakes
    assert set(hs[hs.side == "sfu"].setup) == {"actpass"} and set(hs[hs.side == "sfu"].dtls_role) == {"server"}
    assert set(hs[hs.side == "participant"].setup) == {"active"}
    assert all(not has_sdes(text) for pair in call.sdp.values() for text in pair.values())
    assert {e.leg for e in call.keylog} == set(call.names)


def test_nothing_leaves_loopback(call):
    loop = call.summary["loopback"]
    assert loop["candidates_loopback"] and loop["sockets_loopback"]
    assert len(call.candidates) == loop["sdp_candidates"] > 0
    assert set(call.candidates.address) == {"127.0.0.1"} and set(call.candidates.type) == {"host"}
    for pair in call.sdp.values():
        for text in pair.values():
            check_loopback(text)


@needs_capture
def test_every_captured_datagram_is_loopback_and_on_a_leg(call):
    info = call.capture
    assert info.backend == "sniff" and info.all_loopback and info.datagrams > 1000
    result = analyze(info.path, call.keylog, keep_media="none")
    summary = result.summary()
    assert summary["all_loopback"] and not summary["dropped"]
    assert set(result.packets.leg.dropna()) == set(call.names)
    rtp = summary["packets_by_kind"]["rtp"] + summary["packets_by_kind"]["rtcp"]
    assert summary["srtp_decrypted"] == rtp  # the exported key log opens every SRTP/SRTCP packet
    assert summary["packets_by_kind"]["dtls"] >= 2 * PEOPLE  # the handshakes are in the capture


@needs_capture
def test_the_offline_analysis_gives_the_same_verdicts(call, views):
    counts = views.counts().set_index(["view", "kind"])
    share = counts["decodable"] / counts["frames"]
    assert counts.loc[("wire", "video"), "decodable"] == 0
    assert share[("receiver", "video")] >= DELIVERY
    # every frame the SFU sent out is named, even the last of each stream that no receiver released
    assert (views.receiver.frames.publisher != "?").all()
    if call.config.mode == "dtls-srtp":
        assert share[("sfu", "video")] >= DELIVERY
        assert views.panel("receiver").picture is not None and views.panel("sfu").picture is not None
    else:
        assert counts.loc[("sfu", "video"), "decodable"] == 0
        assert views.summary()["sfu_min_stream_entropy"] > 7.5


# --- the summary has the lab's fields ---------------------------------------------------------------

#: dicts whose keys are data (drop reasons, participant names), not fields: compared as one field
DATA_KEYED = {"dropped", "speech_correlation", "garbage_sent"}


def _schema(value, path: str = "") -> dict[str, str]:
    """Every field of a summary, recursively (``a.b``; list rows as ``a[].b``) -> its value's type."""
    fields: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else key
            fields[name] = type(item).__name__
            if key not in DATA_KEYED:
                fields |= _schema(item, name)
    elif isinstance(value, list):
        for row in value:
            fields |= _schema(row, f"{path}[]")
    return fields


def _missing_or_retyped(lab: dict, webrtc: dict) -> dict[str, tuple[str, str | None]]:
    """Fields of ``lab`` that ``webrtc`` lacks or holds with another type (None fits any type)."""
    mine = _schema(webrtc)
    return {name: (kind, mine.get(name)) for name, kind in _schema(lab).items()
            if name not in mine or "NoneType" not in (kind, mine[name]) and kind != mine[name]}


def test_schema_sees_nested_and_row_fields():
    lab = {"a": 1, "sfu": {"b": 2, "dropped": {"x": 1}}, "participants": [{"name": "a", "c": 1.0}]}
    assert _missing_or_retyped(lab, lab) == {}
    webrtc = {"a": 1, "sfu": {"dropped": {}}, "participants": [{"name": "a", "c": 1}], "extra": 0}
    assert _missing_or_retyped(lab, webrtc) == {"sfu.b": ("int", None), "participants[].c": ("float", "int")}


@pytest.fixture(scope="module")
def lab_summary():
    """A live lab-stack call's summary (e2ee, 2 participants, 1 s): the lab's current fields."""
    return run_call("e2ee", 2, 1.0, seed=3, size="ci").summary


def test_the_recorded_lab_calls_have_the_live_lab_calls_fields(lab_summary):
    for mode in MODES:  # so comparing with the recordings compares with the lab's current summary
        assert _missing_or_retyped(lab_summary, recording(mode).summary) == {}, mode


def test_the_summary_has_every_field_of_the_lab_calls_summary(call):
    lab = recording(call.config.mode).summary  # a captured lab call of the same mode
    if call.capture is None:  # the lab's summary has "capture" only for a captured call
        lab = {k: v for k, v in lab.items() if k != "capture"}
    assert _missing_or_retyped(lab, call.summary) == {}
    wire = call.summary["wire"]  # an eavesdropper on lo, no keys: sees packets, decodes nothing
    assert 0 < wire["srtp_packets"] <= min(PEOPLE * WIRE_SAMPLE, call.summary["sfu"]["packets_in"])
    assert wire["audio_frames_seen"] > 0
    assert wire["video_frames_decodable"] == wire["audio_frames_intelligible"] == 0
    assert call.wire.summary()["video_frames_decodable"] == 0 and call.summary["garbage_sent"] == {}


def test_frames_are_late_against_the_tracks_capture_schedule():
    rows = pd.DataFrame({"kind": ["video", "video", "audio", "audio", "video"],
                         "frame_index": [0, 30, 0, 50, -1],
                         "arrival": [1.1, 2.0 + 0.25, 1.19, 2.0 + 0.1, 5.0]})
    mark_late(rows, media_start=1.0, fps=30)  # video frame 30 and audio chunk 50 are captured at 2.0 s
    assert np.allclose(rows.delay[:4], [0.1, 0.25, 0.19, 0.1]) and math.isnan(rows.delay[4])
    assert list(rows.late) == [False, True, False, False, False]


def test_the_summary_counts_late_frames_in_the_window(call):
    received = call.received
    for p in call.summary["participants"]:
        mine = received[(received.receiver == p["name"]) & (received.frame_index >= 0)]
        for kind in ("video", "audio"):
            window = mine[(mine.kind == kind) & (mine.frame_index < call.summary["window"][f"{kind}_frames"])]
            assert p[f"{kind}_frames_late"] == int(window.late.sum())
            assert p[f"{kind}_frames_on_time"] == int((window.decrypted & ~window.late).sum())
    assert isinstance(call.summary["real_time"], bool) and call.summary["cpu"]["cpu_s"] > 0


# --- entry points ----------------------------------------------------------------------------------


def test_run_call_and_the_cli_dispatch_to_the_webrtc_stack():
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    assert parser.parse_args(["--stack", "webrtc"]).stack == "webrtc"
    assert parser.parse_args([]).stack == "lab"
    with pytest.raises(ValueError, match="garbage"):
        run_call("e2ee", 2, 1.0, stack="webrtc", garbage=5.0)
    with pytest.raises(ValueError, match="unknown stack"):
        run_call("e2ee", 2, 1.0, stack="quic")
    with pytest.raises(CaptureImpossible, match="socket tap"):
        run_webrtc_call("e2ee", 2, 1.0, capture="tap")
    with pytest.raises(ValueError, match="unknown mode"):
        run_webrtc_call("sframe-only", 2, 1.0)


def test_track_frames_are_paced_and_end():
    async def pull():
        loop = asyncio.get_running_loop()
        start = loop.create_future()
        track = SceneTrack(Scene(0), start=start, frames=3)
        start.set_result(loop.time())
        frames = [await track.recv() for _ in range(3)]
        with pytest.raises(MediaStreamError):
            await track.recv()
        return frames, loop.time() - start.result(), track

    frames, elapsed, track = asyncio.run(pull())
    assert [f.pts for f in frames] == [0, 1, 2] and elapsed >= 2 / 15 - 0.01
    assert set(track.thumbnails) == {0, 1, 2} and isinstance(track.thumbnails[0], np.ndarray)


def test_the_cli_runs_a_call_on_the_webrtc_stack(tmp_path, capsys, lab_summary):
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--stack", "webrtc", "--mode", "e2ee", "--participants", "2", "--seconds", "1.5",
                              "--size", "ci", "--seed", "3", "--out", str(tmp_path), "--capture", "off"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["stack"], summary["mode"], summary["participant_count"]) == ("webrtc", "e2ee", 2)
    assert out.startswith("mode e2ee, 2 participants, 1.5 s, size ci, AEAD_AES_256_GCM\n")
    assert format_summary(summary) in out  # the table printed is the summary written
    assert out.splitlines()[1] == "keys from the OS; key checks: fixed" and summary["reproducible_keys"] is False
    assert (f"wrote {tmp_path / 'summary.json'}, {tmp_path / 'sfu-keys.json'}, "
            f"{tmp_path / 'frame-keys.json'} (the members' secret)") in out
    for p, line in zip(summary["participants"], out.splitlines()[3:5]):
        assert line.split()[:2] == [p["name"], str(p["video_frames_sent"])]
        assert p["video_frames_expected"] == p["video_frames_sent"] == summary["window"]["video_frames"] == 22
        assert p["video_frames_decoded"] >= DELIVERY * p["video_frames_expected"]
    assert "video decodable 0/" in out.splitlines()[5]  # the SFU holds ciphertext
    assert _missing_or_retyped(lab_summary, summary) == {}  # same mode, same participants
    keylog = read_keylog(tmp_path / "sfu-keys.json")
    assert [e.leg for e in keylog] == ["alice", "bob"]
    assert {e.profile.value for e in keylog} == {"AEAD_AES_256_GCM"}
    assert {e.client[0] for e in keylog} | {e.server[0] for e in keylog} == {"127.0.0.1"}


def test_a_subscribers_pli_reaches_the_publisher_through_the_sfu():
    seen: dict = {}

    async def bob_asks_for_a_key_frame(sfu, people):
        alice, bob = people
        await asyncio.sleep(START_DELAY + 0.6)
        (transceiver,) = [t for t in bob.pc.getTransceivers() if t.receiver.track is not None
                          and parse_track_label(t.receiver.track.id) == ("alice", "video")]
        (source,) = transceiver.receiver.getSynchronizationSources()  # the SSRC the SFU sends alice on
        seen["before"] = (bob.plis_sent, sfu.plis_forwarded, alice.plis_received)
        seen["frames_before"] = len(alice.senders["video"].records)
        await aiortc_hooks.request_key_frame(transceiver.receiver, source.source)
        for _ in range(50):
            if alice.plis_received > seen["before"][2]:
                break
            await asyncio.sleep(0.01)
        seen["after"] = (bob.plis_sent, sfu.plis_forwarded, alice.plis_received)
        seen["people"] = people

    result = asyncio.run(run_webrtc_call_async("dtls-srtp", 2, 1.5, seed=4, size="ci",
                                               during=bob_asks_for_a_key_frame))
    bob_sent, forwarded, alice_got = (a - b for a, b in zip(seen["after"], seen["before"]))
    assert bob_sent >= 1 and forwarded >= 1 and alice_got >= 1  # subscriber -> SFU -> publisher
    alice, bob = seen["people"]
    later = alice.senders["video"].records[seen["frames_before"]:]
    answered = {r.frame_index for r in later if r.frame_type == "key"}
    assert answered  # the publisher's encoder answered with a key frame
    got = result.received
    keys = got[(got.receiver == "bob") & (got.publisher == "alice") & (got.frame_type == "key") & got.decoded]
    assert answered & set(keys.frame_index)  # and bob decoded it
    # the wire sample is what went on the leg: the SFU's exported key opens it, with alice's SSRCs
    entry = next(e for e in result.keylog if e.leg == "alice")
    session = receive_session(entry, sender=entry.client)
    opened = [session.unprotect(d) for d in alice.wire[:20]]
    assert {int.from_bytes(o[8:12], "big") for o in opened} <= {t.ssrc for t in alice.senders.values()}
    assert all(len(d) == len(o) + entry.profile.rtp_overhead for d, o in zip(alice.wire, opened))


# --- pre-encoded clips and the ICE sockets' receive buffers -----------------------------------------


def test_a_call_with_clips_sends_them_through_aiortcs_pre_encoded_path_and_every_frame_decodes():
    result = run_webrtc_call("e2ee", 2, 2.0, seed=6, size="ci", encode="clip")
    assert result.summary["encode"] == "clip"
    sent = result.sent[result.sent.kind == "video"]
    keys = sorted(sent[(sent.frame_type == "key") & (sent.participant == "alice")].frame_index)
    assert keys[:2] == [0, 15]  # the clip's key frame every second (15 fps), not aiortc's encoder's
    window = result.summary["window"]["video_frames"]
    for p in result.summary["participants"]:
        assert p["video_frames_decoded"] >= DELIVERY * p["video_frames_expected"] > 0, p
    with pytest.raises(ValueError, match="encode"):
        run_webrtc_call("e2ee", 2, 1.0, size="ci", encode="mpeg")
    assert window == 30


def test_widened_ice_sockets_are_the_gathered_loopback_ones_and_never_shrink():
    async def gathered() -> tuple[list, list[int], list[int]]:
        pc = RTCPeerConnection(loopback_configuration())
        try:
            prefer(pc.addTransceiver("video"), "video")
            with loopback_ice():
                await pc.setLocalDescription(await pc.createOffer())  # gathers: opens the sockets
            sockets = aiortc_hooks.ice_sockets(pc)
            before = [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) for s in sockets]
            return [s.getsockname()[0] for s in sockets], before, widen_receive_buffers([pc])
        finally:
            await pc.close()

    addresses, before, after = asyncio.run(gathered())
    assert addresses and set(addresses) <= LOOPBACK
    assert len(after) == len(before) and all(a >= b for a, b in zip(after, before))
