"""Tests of e2ee_lab.analysis.offline: a captured call analysed with and without the SFU's keys.

Each fixture call is real: two DTLS-SRTP legs over loopback (alice -> SFU -> bob, the SFU
unprotecting and re-protecting every packet), 20 VP8 frames of a scene and 10 Opus frames of
speech, plaintext (``dtls-srtp``) or SFrame-encrypted (``e2ee``), one PLI back to alice, captured
with the socket tap (and with the sniffer where permitted). tshark checks skip where it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aiortc.rtp import RtcpPsfbPacket

from e2ee_lab.analysis import plots
from e2ee_lab.analysis.command import add_analyze_arguments, cli_analyze
from e2ee_lab.analysis.offline import FRAME_COLUMNS, PACKET_COLUMNS, analyze, audio_matches, entropy
from e2ee_lab.capture import Capture, KeyLogMissing, PcapFormatError, read_pcap, sniff_problem
from e2ee_lab.capture.pcap import write_datagrams
from e2ee_lab.crypto.transforms import make_transform
from e2ee_lab.media.codecs import OpusEncoder, VP8Encoder
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource
from e2ee_lab.analysis.reader import RECOGNITION_PACKETS, recognise_payload_format
from e2ee_lab.crypto.sframe import SFrameContext, decode_header
from e2ee_lab.rtp import Codec, RTPPacketizer, RTPSFrameMode, SFramePacketizer
from e2ee_lab.transport import KeyLogError, open_leg_pair, read_keylog, write_keylog
from e2ee_lab.transport.srtp import SRTPMasterKey

VIDEO_SSRC, AUDIO_SSRC = 0x1111, 0x2222
VIDEO_FRAMES, AUDIO_FRAMES = 20, 10
SFRAME_KID = 3
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


@dataclasses.dataclass
class Call:
    """A captured call: its directory (capture.pcap, sfu-keys.json) and what was sent."""

    directory: Path
    references: dict
    sent_packets: int  # RTP packets alice sent (the SFU forwarded each to bob)
    backend: str

    @property
    def pcap(self) -> Path:
        return self.directory / "capture.pcap"

    @property
    def keys(self) -> Path:
        return self.directory / "sfu-keys.json"


class _PayloadFormat:
    """Frames in the SFrame RTP payload format (``rtp_sframe``): the packetizer encrypts, the
    frame passes through unchanged first (the transform slot's identity)."""

    def __init__(self, mode: str, codec: Codec, ssrc: int, payload_type: int, kid: int) -> None:
        self.context = SFrameContext(4)
        self.context.add_send_key(kid, bytes(range(16)))
        self.kid = kid
        self.packetizer = SFramePacketizer(codec, mode=RTPSFrameMode(mode), ssrc=ssrc,
                                           payload_type=payload_type, seed=1)

    def transform(self, frame):
        return frame

    def serialize(self, frame) -> list[bytes]:
        return self.packetizer.serialize(frame, protect=lambda data: self.context.protect(self.kid, data))


async def _run_call(directory: Path, mode: str, capture_mode: str, rtp_sframe: str | None = None) -> Call:
    scene, speech = Scene(0, width=320, height=240, fps=15), SpeechSource(offset_s=1.0)
    vp8, opus = VP8Encoder(ssrc=VIDEO_SSRC, fps=15), OpusEncoder(ssrc=AUDIO_SSRC)
    video = make_transform(mode, kid=SFRAME_KID, seed=1).sender
    audio = make_transform(mode, kid=SFRAME_KID + 1, seed=2).sender
    packetizers = {
        "video": RTPPacketizer(Codec.VP8, ssrc=VIDEO_SSRC, payload_type=96, seed=1),
        "audio": RTPPacketizer(Codec.OPUS, ssrc=AUDIO_SSRC, payload_type=111, seed=1),
    }
    if rtp_sframe is not None:  # the payload format: the packetizer is the transform
        video = _PayloadFormat(rtp_sframe, Codec.VP8, VIDEO_SSRC, 96, SFRAME_KID)
        audio = _PayloadFormat(rtp_sframe, Codec.OPUS, AUDIO_SSRC, 111, SFRAME_KID + 1)
        packetizers = {"video": video, "audio": audio}
    capture = Capture(directory / "capture.pcap", mode=capture_mode).start()
    alice, sfu_alice = await open_leg_pair("alice")
    bob, sfu_bob = await open_leg_pair("bob")
    sfu_alice._on_media = lambda leg, event: sfu_bob.send_rtp(event.data)  # the SFU forwards
    references, sent = {}, 0
    frames = [(vp8.encode(scene.rgb(i)), scene.rgb(i), video) for i in range(VIDEO_FRAMES)]
    frames += [(opus.encode(c), c.pcm, audio) for c in speech.chunks(AUDIO_FRAMES)]
    for frame, media, transform in frames:
        references[(frame.metadata.synchronizationSource, frame.timestamp)] = media
        for packet in packetizers[frame.kind].serialize(transform.transform(frame)):
            alice.send_rtp(packet)
            sent += 1
        await asyncio.sleep(0.001)
    sfu_alice.send_rtcp(bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=VIDEO_SSRC)))
    await asyncio.sleep(0.05)
    write_keylog(directory / "sfu-keys.json", [sfu_alice.keylog_entry(), sfu_bob.keylog_entry()])
    for leg in (alice, sfu_alice, bob, sfu_bob):
        leg.close()
    for leg in (alice, sfu_alice, bob, sfu_bob):
        await leg.wait_closed()
    await asyncio.to_thread(capture.stop)
    return Call(directory, references, sent, capture.backend)


def make_call(tmp_path_factory, mode: str, capture_mode: str = "tap", rtp_sframe: str | None = None) -> Call:
    directory = tmp_path_factory.mktemp(f"{mode}-{capture_mode}")
    return asyncio.run(_run_call(directory, mode, capture_mode, rtp_sframe))


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Call:
    return make_call(tmp_path_factory, "dtls-srtp")


@pytest.fixture(scope="module")
def e2ee(tmp_path_factory) -> Call:
    return make_call(tmp_path_factory, "e2ee")


@pytest.fixture(scope="module")
def plain_result(plain):
    return analyze(plain.pcap, plain.keys, references=plain.references, keep_media="all")


@pytest.fixture(scope="module")
def e2ee_result(e2ee):
    return analyze(e2ee.pcap, e2ee.keys, references=e2ee.references)


def counts(result) -> dict:
    """Frames per (leg, direction, kind)."""
    f = result.frames
    return {k: int(v) for k, v in f.groupby(["leg", "direction", "kind"]).size().items()}


EXPECTED_FRAMES = {
    ("alice", "to_sfu", "audio"): AUDIO_FRAMES, ("alice", "to_sfu", "video"): VIDEO_FRAMES,
    ("bob", "from_sfu", "audio"): AUDIO_FRAMES, ("bob", "from_sfu", "video"): VIDEO_FRAMES,
}


# --- the SFU's view with keys -------------------------------------------------------------------


def test_plaintext_call_frames_all_reassemble_decode_and_match(plain, plain_result):
    r = plain_result
    assert list(r.packets.columns) == list(PACKET_COLUMNS)
    assert list(r.frames.columns) == list(FRAME_COLUMNS)
    assert counts(r) == EXPECTED_FRAMES
    assert not r.dropped and not r.skipped
    video, audio = r.frames[r.frames.kind == "video"], r.frames[r.frames.kind == "audio"]
    assert video.decoded.all() and video.matches.all() and video.decodable.all()
    assert set(zip(video.width, video.height)) == {(320, 240)}
    streams = video.groupby(["leg", "direction", "ssrc"])
    assert streams.ngroups >= 2
    for _, stream in streams:  # each stream opens with its key frame (the streams' frames may interleave)
        assert list(stream.frame_type) == ["key"] + ["delta"] * (len(stream) - 1)
    assert audio.decoded.all() and audio.matches.sum() >= 0.8 * len(audio)
    assert not r.frames.sframe_plausible.any()
    summary = r.summary()
    assert summary["all_loopback"] and summary["video_frames_decodable"] == 2 * VIDEO_FRAMES
    for index, row in video.iterrows():  # the pictures are kept and are the sent ones
        assert r.media[index].shape == (240, 320, 3)


def test_plaintext_packet_rows(plain, plain_result):
    p = plain_result.packets
    rtp = p[p.kind == "rtp"]
    assert len(rtp) == 2 * plain.sent_packets and rtp.decrypted.all()
    assert set(rtp.direction) == {"to_sfu", "from_sfu"}
    assert (rtp[rtp.direction == "to_sfu"].leg == "alice").all()
    assert set(rtp.ssrc) == {VIDEO_SSRC, AUDIO_SSRC}
    audio = rtp[rtp.payload_type == 111]
    assert audio.audio_level.notna().all() and audio.voice_activity.notna().all()
    assert rtp[rtp.payload_type == 96].audio_level.isna().all()
    rtcp = p[p.kind == "rtcp"]
    assert len(rtcp) == 1 and rtcp.decrypted.all() and rtcp.detail.iloc[0] == "PSFB"
    assert rtcp.direction.iloc[0] == "from_sfu"
    hellos = p[p.detail.str.startswith("ClientHello")]
    assert set(hellos.leg) == {"alice", "bob"} and (hellos.direction == "to_sfu").all()
    assert hellos.detail.str.contains("use_srtp=0x0007").all()
    assert (p.time >= 0).all() and p.time.is_monotonic_increasing


def test_e2ee_call_sfu_decodes_nothing_and_sees_sframe_headers(e2ee, e2ee_result):
    r = e2ee_result
    assert counts(r) == EXPECTED_FRAMES and not r.dropped
    assert r.frames.decodable.sum() == 0
    assert r.frames[r.frames.kind == "video"].decoded.sum() == 0
    assert r.payload_entropy(kind="video") >= 7.9
    assert r.frames.sframe_plausible.all()
    video = r.frames[(r.frames.kind == "video") & (r.frames.leg == "alice")]
    assert set(video.sframe_kid) == {SFRAME_KID}
    assert list(video.sframe_ctr) == sorted(video.sframe_ctr) and video.sframe_ctr.is_unique
    starts = r.packets[r.packets.sframe_kid.notna()]
    assert len(starts) == 2 * (VIDEO_FRAMES + AUDIO_FRAMES) and starts.sframe_plausible.all()


def test_a_capture_read_once_analyses_like_its_file_in_both_views(plain, plain_result):
    contents = read_pcap(plain.pcap)
    again = analyze(contents, plain.keys, references=plain.references, keep_media="all")
    pd.testing.assert_frame_equal(again.frames, plain_result.frames)
    pd.testing.assert_frame_equal(again.packets, plain_result.packets)
    assert again.dropped == plain_result.dropped and again.skipped == plain_result.skipped
    wire, wire_file = analyze(contents, None), analyze(plain.pcap, None)  # the same contents, the other view
    pd.testing.assert_frame_equal(wire.frames, wire_file.frames)
    assert wire.skipped is not again.skipped  # each analysis counts into its own Counter


def test_wire_view_without_keys_decodes_nothing(plain):
    r = analyze(plain.pcap, None, references=plain.references)
    assert not r.keyed and r.packets.decrypted.sum() == 0
    assert r.frames.decodable.sum() == 0 and r.frames[r.frames.kind == "video"].decoded.sum() == 0
    rtp = r.packets[r.packets.kind == "rtp"]
    assert set(rtp.leg) == {"leg1", "leg2"}  # learned from the ClientHellos
    assert set(rtp[rtp.leg == "leg1"].direction) == {"to_sfu"}
    assert rtp[rtp.payload_type == 111].audio_level.notna().all()  # RFC 6464 leaks on the wire
    assert rtp.sframe_kid.isna().all()
    assert r.payload_entropy() >= 7.9


# --- failures are typed or counted --------------------------------------------------------------


def test_wrong_keys_count_authentication_failures(plain):
    def spoil(key: SRTPMasterKey) -> SRTPMasterKey:
        return SRTPMasterKey(bytes(b ^ 1 for b in key.key), key.salt)

    wrong = [
        dataclasses.replace(
            e, client_write=spoil(e.client_write), server_write=spoil(e.server_write)
        )
        for e in read_keylog(plain.keys)
    ]
    r = analyze(plain.pcap, wrong)
    assert r.dropped == {"srtp_auth_failed": 2 * plain.sent_packets + 1}
    assert len(r.frames) == 0 and r.packets.decrypted.sum() == 0


def test_a_leg_missing_from_the_key_log_is_counted(plain):
    alice_only = [e for e in read_keylog(plain.keys) if e.leg == "alice"]
    r = analyze(plain.pcap, alice_only)
    assert r.dropped == {"srtp_no_key": plain.sent_packets}
    assert counts(r) == {k: v for k, v in EXPECTED_FRAMES.items() if k[0] == "alice"}
    assert r.frames[r.frames.kind == "video"].decodable.all()


def test_missing_and_malformed_key_logs_are_typed_errors(plain, tmp_path):
    with pytest.raises(KeyLogMissing) as info:
        analyze(plain.pcap, tmp_path / "absent.json")
    assert info.value.reason == "keylog_missing"
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(KeyLogError):
        analyze(plain.pcap, tmp_path / "bad.json")


def test_garbage_and_truncated_pcaps(plain, tmp_path):
    (tmp_path / "garbage.pcap").write_bytes(b"\x00not a capture" * 10)
    with pytest.raises(PcapFormatError):
        analyze(tmp_path / "garbage.pcap", plain.keys)
    raw = plain.pcap.read_bytes()
    (tmp_path / "cut.pcap").write_bytes(raw[: len(raw) // 2 + 7])
    r = analyze(tmp_path / "cut.pcap", plain.keys)
    assert r.skipped == {"pcap_truncated": 1}
    assert 0 < len(r.frames) < 2 * (VIDEO_FRAMES + AUDIO_FRAMES)


def test_duplicated_packets_are_replays(plain, tmp_path):
    datagrams = read_pcap(plain.pcap).datagrams
    write_datagrams(tmp_path / "dup.pcap", [d for d in datagrams for _ in range(2)])
    r = analyze(tmp_path / "dup.pcap", plain.keys)
    assert r.dropped == {"srtp_replay": 2 * plain.sent_packets + 1}
    assert counts(r) == EXPECTED_FRAMES


def test_unknown_keep_media_is_a_value_error(plain):
    with pytest.raises(ValueError, match="keep_media"):
        analyze(plain.pcap, plain.keys, keep_media="some")


# --- outputs ------------------------------------------------------------------------------------


def test_write_csvs_and_decrypted_pcap(plain_result, plain, tmp_path):
    paths = plain_result.write(tmp_path / "out")
    assert set(paths) == {"packets", "frames", "decrypted"}
    import pandas as pd

    assert len(pd.read_csv(paths["packets"])) == len(plain_result.packets)
    assert list(pd.read_csv(paths["frames"]).columns) == list(FRAME_COLUMNS)
    decrypted = read_pcap(paths["decrypted"]).datagrams
    assert len(decrypted) == 2 * plain.sent_packets + 1
    assert all(d.data[1] & 0x7F in (96, 111) or d.data[1] == 206 for d in decrypted)
    wire = analyze(plain.pcap, None).write(tmp_path / "out")
    assert set(wire) == {"packets", "frames"}
    assert {p.name for p in wire.values()} == {"wire-view.csv", "wire-frames.csv"}  # beside, not over, the SFU view
    assert len(pd.read_csv(paths["packets"])) == len(plain_result.packets)


def test_cli_analyze_writes_and_prints(plain, capsys):
    parser = argparse.ArgumentParser()
    add_analyze_arguments(parser)
    args = parser.parse_args([str(plain.directory)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "bob" in out and "dropped: none" in out
    assert "note: without the sent audio" in out  # the CLI has no reference media
    assert (plain.directory / "frames.csv").exists()
    assert (plain.directory / "decrypted.pcap").exists()
    assert (plain.directory / "sfu-view.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_analyze_bad_inputs_print_one_line_and_exit_2(plain, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_analyze_arguments(parser)
    for extra in (["--no-keys", "--pcap", str(tmp_path)], ["--keys", str(tmp_path)],
                  ["--pcap", str(tmp_path / "missing.pcap")], ["--keys", str(plain.pcap)]):
        args = parser.parse_args([str(plain.directory), "--out", str(tmp_path / "out"), *extra])
        assert args.func(args) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("analyze: ") and len(err.strip().splitlines()) == 1, (extra, err)
    args = parser.parse_args([str(plain.directory), "--no-keys", "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    assert (tmp_path / "out" / "wire-view.png").exists() and not (tmp_path / "out" / "sfu-view.csv").exists()


def test_the_capture_figure_shows_pictures_only_to_a_reader_that_decodes(plain):
    keyed = plots.capture_analysis(analyze(plain.pcap, plain.keys, keep_media="last"))
    wire = plots.capture_analysis(analyze(plain.pcap, None, keep_media="last"))
    assert any(ax.images for ax in keyed.axes)  # the SFU's key log opens the VP8 frames
    assert not any(ax.images for ax in wire.axes)
    assert "not decodable" in " ".join(t.get_text() for ax in wire.axes for t in ax.texts)


def test_cli_analyze_reports_bad_input_in_one_line(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_analyze_arguments(parser)
    assert cli_analyze(parser.parse_args([str(tmp_path)])) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("analyze:") and "\n" not in err


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, bits", [(b"", 0.0), (b"a" * 50, 0.0), (bytes(range(256)) * 4, 8.0), (b"ab" * 8, 1.0)],
    ids=["empty", "constant", "uniform", "two-values"],
)
def test_entropy(data, bits):
    assert entropy(data) == pytest.approx(bits)


def test_audio_matches_finds_the_codec_delay():
    rng = np.random.default_rng(7)
    speech = (rng.standard_normal(3 * 960) * 3000).astype(np.int16)
    previous, sent = speech[960:1920], speech[1920:]
    decoded = speech[1920 - 312 : 2880 - 312]  # the sent chunk, 312 samples late
    assert audio_matches(decoded, sent, previous) is True
    noise = (rng.standard_normal(960) * 3000).astype(np.int16)
    assert audio_matches(noise, sent, previous) is False
    assert audio_matches(np.zeros(960), np.zeros(960)) is None
    assert audio_matches(np.zeros(960), sent, previous) is False
    assert audio_matches(decoded[:480], sent, previous) is False


@pytest.mark.parametrize("n", [2000, 4096, 4097, 5000])  # around a power of two: the FFT's length
def test_the_codec_delay_is_the_lag_of_the_best_pearson_correlation(n):
    from e2ee_lab.analysis.sfu_view import MAX_CODEC_DELAY, _codec_delay

    rng = np.random.default_rng(n)
    sent = rng.standard_normal(n)
    got = np.concatenate([rng.standard_normal(123), sent])[:n] + 0.5 * rng.standard_normal(n)
    m = n - MAX_CODEC_DELAY
    direct = [np.corrcoef(sent[:m], got[k:k + m])[0, 1] for k in range(MAX_CODEC_DELAY + 1)]
    delay, corr = _codec_delay(sent, got)
    assert delay == int(np.argmax(direct)) == 123
    assert corr == pytest.approx(max(direct), abs=1e-9)


# --- tshark, and a sniffed call -----------------------------------------------------------------


def tshark(*args: str) -> list[str]:
    out = subprocess.run(["tshark", *args], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def sfu_ports(call: Call) -> list[str]:
    decode = []
    for entry in read_keylog(call.keys):
        decode += ["-d", f"udp.port=={entry.server[1]},rtp"]
    return decode


@needs_tshark
def test_tshark_sees_use_srtp_on_every_leg_and_the_same_rtp_packets(plain, plain_result):
    hellos = tshark("-r", str(plain.pcap), "-Y", "dtls.handshake.type == 1", "-T", "fields",
                    "-e", "udp.dstport", "-e", "dtls.use_srtp.protection_profile")
    servers = {str(e.server[1]) for e in read_keylog(plain.keys)}
    assert {line.split("\t")[0] for line in hellos} == servers
    assert all("0x0007" in line for line in hellos)
    rtp = tshark("-r", str(plain.pcap), *sfu_ports(plain), "-Y", "rtp.version == 2 && !rtcp",
                 "-T", "fields", "-e", "rtp.seq")
    assert len(rtp) == (plain_result.packets.kind == "rtp").sum() == 2 * plain.sent_packets


@needs_tshark
def test_tshark_vp8_dissector_reads_the_decrypted_key_frames(plain, plain_result, tmp_path):
    decrypted = plain_result.write(tmp_path)["decrypted"]
    keyframes = tshark("-r", str(decrypted), *sfu_ports(plain), "-d", "rtp.pt==96,vp8",
                       "-Y", "vp8.pld.s == 1 && vp8.hdr.frametype == 0", "-T", "fields",
                       "-e", "vp8.keyframe.start_code", "-e", "vp8.keyframe.width",
                       "-e", "vp8.keyframe.height")
    assert keyframes == ["0x9d012a\t320\t240"] * 2  # alice's key frame, and bob's copy


@pytest.mark.skipif(sniff_problem() is not None, reason=f"cannot sniff: {sniff_problem()}")
def test_a_sniffed_call_analyses_like_a_tapped_one(tmp_path_factory):
    call = make_call(tmp_path_factory, "dtls-srtp", "sniff")
    assert call.backend == "sniff"
    r = analyze(call.pcap, call.keys, references=call.references)
    assert counts(r) == EXPECTED_FRAMES  # the legs' frames; other processes' UDP has no leg
    assert set(r.dropped) <= {"srtp_no_key"}
    assert r.frames[r.frames.leg.notna() & (r.frames.kind == "video")].decodable.all()


# --- the SFrame RTP payload format (draft-ietf-avtcore-rtp-sframe-02) ------------------------------


@pytest.fixture(scope="module", params=["per-frame", "per-packet"])
def sframe_format(tmp_path_factory, request) -> Call:
    return make_call(tmp_path_factory, "dtls-srtp", rtp_sframe=request.param)


def test_the_payload_format_is_recognised_and_reassembled_from_its_descriptors(sframe_format):
    result = analyze(sframe_format.pcap, sframe_format.keys)
    frames, rtp = result.frames, result.packets[result.packets.kind == "rtp"]
    assert set(frames.payload_format) == {"sframe"} and set(rtp.payload_format.dropna()) == {"sframe"}
    assert not any(k.startswith("frame_") for k in result.dropped), result.dropped
    per_flow = frames.groupby(["direction", "kind"]).size()
    if frames.packets.max() > 1:  # per-frame: one run per frame
        assert per_flow.to_dict() == {("from_sfu", "audio"): AUDIO_FRAMES, ("from_sfu", "video"): VIDEO_FRAMES,
                                      ("to_sfu", "audio"): AUDIO_FRAMES, ("to_sfu", "video"): VIDEO_FRAMES}
    else:  # per-packet: one run per packet, every frame's packets, each its own SFrame ciphertext
        assert per_flow[("to_sfu", "video")] >= VIDEO_FRAMES and per_flow[("to_sfu", "audio")] == AUDIO_FRAMES
    for data in result.frame_data.values():  # the ciphertext, descriptors gone: it starts with the header
        assert decode_header(data)[0] in (SFRAME_KID, SFRAME_KID + 1)
    assert frames.sframe_plausible.all() and frames.frame_type.isna().all()
    assert not frames.decodable[frames.kind == "video"].any()  # ciphertext: the SFU decodes none


def test_the_payload_format_read_as_the_codecs_breaks_every_video_frame(sframe_format):
    """What ``e2ee-lab analyze`` did before it knew the format: frames lost or garbage, descriptors inside."""
    codec = analyze(sframe_format.pcap, sframe_format.keys, payload_format="codec")
    sframe = analyze(sframe_format.pcap, sframe_format.keys, payload_format="sframe")
    assert set(codec.frames.payload_format) == {"codec"}
    recognised = analyze(sframe_format.pcap, sframe_format.keys).frames
    columns = ["direction", "ssrc", "first_seq", "size", "sframe_kid", "sframe_ctr", "decoded"]
    assert sorted(map(tuple, sframe.frames[columns].values)) == sorted(map(tuple, recognised[columns].values))
    assert codec.dropped["frame_incomplete"] > 0 and not (codec.frames.kind == "video").any()
    audio = codec.frames[codec.frames.kind == "audio"]
    assert all(codec.frame_data[i][0] & 0xE0 for i in audio.index)  # a descriptor byte (S, E) in front


def test_the_command_reads_the_format_summary_json_announces(sframe_format, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_analyze_arguments(parser)
    directory = tmp_path / "call"
    shutil.copytree(sframe_format.directory, directory)
    (directory / "summary.json").write_text(json.dumps({"rtp_sframe": None}))
    assert cli_analyze(parser.parse_args([str(directory)])) == 0
    announced_codec = capsys.readouterr().out
    (directory / "summary.json").write_text(json.dumps({"rtp_sframe": "per-frame"}))
    assert cli_analyze(parser.parse_args([str(directory)])) == 0
    recognised = capsys.readouterr().out
    assert "frame_incomplete" in announced_codec.split("dropped:")[1]  # every video frame lost
    assert recognised.split("dropped:")[1].startswith(" none") and "video" in recognised


def test_recognition_of_the_payload_format_stream_by_stream():
    descriptor = bytes([0xC0])  # S = E = 1, T = 0, reserved bits 0
    ctx = SFrameContext(4)
    ctx.add_send_key(7, bytes(16))
    sframe = [descriptor + ctx.protect(7, b"frame %d" % i) for i in range(RECOGNITION_PACKETS)]
    assert recognise_payload_format(sframe) == "sframe"
    assert recognise_payload_format(sframe[:2]) is None
    assert recognise_payload_format(sframe[:2], final=True) == "sframe"
    middle = [bytes([0x00]) + b"fragment"] * RECOGNITION_PACKETS  # no S = 1 in sight
    assert recognise_payload_format(middle) == "codec"
    vp8 = [bytes([0x90, 0x80, 0x01]) + b"vp8"]  # X and S: a reserved bit of the descriptor
    assert recognise_payload_format(vp8) == "codec"
    sframe_over_opus = [ctx.protect(7, b"opus %d" % i) for i in range(RECOGNITION_PACKETS)]
    assert recognise_payload_format(sframe_over_opus) == "codec"  # KID 7, CTR 1: 0x71 has reserved bits
    assert recognise_payload_format([descriptor + b"\xff"]) == "codec"  # S = 1 but no SFrame header
    assert recognise_payload_format([b"\xc0"]) == "codec"  # a descriptor with nothing after it
    with pytest.raises(ValueError, match="payload_format"):
        analyze(Path("nothing.pcap"), None, payload_format="guess")
