"""The SFrame Wireshark dissector (e2ee_lab/capture/sframe.lua) read by tshark on a pcap written
with the project's capture code: descriptor bits, KID, CTR, lengths, tag and malformed input."""

import json
import os
import shutil
import subprocess

import pytest

from e2ee_lab.capture import PcapSink
from e2ee_lab.capture.dissector import sframe_dissector, tshark_sframe_args
from e2ee_lab.crypto.sframe import CipherSuite, SFrameContext, encode_header
from e2ee_lab.media.frame import EncodedFrame, FrameMetadata
from e2ee_lab.rtp import Codec, RTPSFrameMode, SFramePacketizer, serialize_rtp

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

SRC, DST = ("127.0.0.1", 40000), ("127.0.0.1", 40002)
FIELDS = ["sframe.descriptor.s", "sframe.descriptor.e", "sframe.descriptor.t", "sframe.kid",
          "sframe.ctr", "sframe.header_len", "sframe.fragment_len", "sframe.tag"]
CASES = [(0, 0), (7, 7), (8, 8), (0x123, 0x4567), (1, 256), (2**64 - 1, 2**40)]


def tshark_rows(pcap, *extra, tag_length=16):
    args = tshark_sframe_args(pcap, rtp_ports=[DST[1]], payload_types=[96], tag_length=tag_length)
    out = subprocess.run(["tshark", *args, *extra], capture_output=True, text=True, check=True)
    return [line.split("\t") for line in out.stdout.splitlines()]


def packets_for(kid, ctr, mode, size=900):
    ctx = SFrameContext(CipherSuite.AES_128_CTR_HMAC_SHA256_80)
    ctx.add_send_key(kid, os.urandom(16))
    packetizer = SFramePacketizer(Codec.VP8, mode=mode, mtu=400, ssrc=5, payload_type=96, seed=1,
                                  protect=lambda b: ctx.protect(kid, b, ctr=max(
                                      ctr, ctx.next_counter(kid))))
    frame = EncodedFrame(os.urandom(size), 0, FrameMetadata(5, 96, "video"), "key")
    return [serialize_rtp(p, packetizer.extensions_map) for p in packetizer.packetize(frame)]


def write(pcap, packets):
    with PcapSink(pcap) as sink:
        for i, packet in enumerate(packets):
            sink.write_datagram(packet, SRC, DST, 1.0 + i / 100)


def test_dissector_is_package_data():
    assert sframe_dissector().is_file() and sframe_dissector().suffix == ".lua"


def test_tshark_shows_kid_ctr_and_fragments_of_per_frame_sframe(tmp_path):
    packets, expected = [], []
    for kid, ctr in CASES:
        frame = packets_for(kid, ctr, RTPSFrameMode.PER_FRAME)
        packets += frame
        hlen = len(encode_header(kid, ctr))
        for i, packet in enumerate(frame):
            first, last = i == 0, i == len(frame) - 1
            expected.append([
                "1" if first else "0", "1" if last else "0", "0",
                str(kid) if first else "", str(ctr) if first else "",
                str(hlen) if first else "", str(len(packet) - 12 - 1),
                packet[-10:].hex() if last else "",
            ])
    write(tmp_path / "sframe.pcap", packets)
    rows = tshark_rows(tmp_path / "sframe.pcap", "-T", "fields", *sum([["-e", f] for f in FIELDS], []),
                       tag_length=10)
    assert rows == expected


def test_tshark_shows_per_packet_sframe_with_s_e_t_on_every_packet(tmp_path):
    packets = packets_for(3, 1000, RTPSFrameMode.PER_PACKET, size=1500)
    write(tmp_path / "pp.pcap", packets)
    rows = tshark_rows(tmp_path / "pp.pcap", "-T", "fields", "-e", "sframe.descriptor.s",
                       "-e", "sframe.descriptor.e", "-e", "sframe.descriptor.t", "-e", "sframe.kid",
                       "-e", "sframe.ctr")
    assert len(rows) == len(packets) > 1
    assert rows == [["1", "1", "1", "3", str(1000 + i)] for i in range(len(packets))]


def test_tshark_flags_malformed_sframe_payloads(tmp_path):
    header = bytes((0x80, 96, 0, 1)) + bytes(4) + (5).to_bytes(4, "big")
    malformed = [
        header + b"\xc0",  # a descriptor with no fragment
        header[:3] + b"\x02" + header[4:] + b"\xc0\x9f\x01\x02",  # 1 + 2 KID + 8 CTR bytes wanted
        header[:3] + b"\x03" + header[4:] + b"\xc0\x80\x05" + bytes(20),  # KID 5 sent in an extension byte
    ]
    write(tmp_path / "bad.pcap", malformed)
    rows = tshark_rows(tmp_path / "bad.pcap", "-T", "fields", "-e", "_ws.expert.message")
    assert [r[0] for r in rows] == [
        "Descriptor without fragment bytes",
        "SFrame header needs 11 bytes, 3 present",
        "KID/CTR not minimally encoded (RFC 9605 4.3)",
    ]


# --- a real call in the payload format, captured, decrypted with the SFU's key log, dissected ------


@pytest.fixture(scope="module")
def payload_format_call(tmp_path_factory):
    from e2ee_lab.analysis.offline import analyze
    from e2ee_lab import run_call

    out = tmp_path_factory.mktemp("rtp-sframe-call")
    result = run_call("e2ee", 2, 1.5, seed=5, size="ci", out=out, capture="tap", rtp_sframe="per-frame")
    decrypted = analyze(out / "capture.pcap", out / "sfu-keys.json").write(out)["decrypted"]
    return result, decrypted


def test_the_call_ran_the_payload_format_and_the_sfu_decoded_nothing(payload_format_call):
    result, _ = payload_format_call
    summary = result.summary
    assert summary["rtp_sframe"] == "per-frame"
    assert {p["packetization"] for p in summary["participants"]} == {"sframe per-frame"}
    for p in summary["participants"]:
        assert p["video_frames_decoded"] >= 0.9 * p["video_frames_expected"] > 0
    assert summary["sfu"]["video_frames_seen"] > 0 and summary["sfu"]["video_frames_decodable"] == 0


def test_tshark_reads_kid_and_ctr_from_the_calls_decrypted_capture(payload_format_call):
    result, decrypted = payload_format_call
    ports = [leg["server"]["port"] if isinstance(leg["server"], dict) else leg["server"][1]
             for leg in json.loads((result.out / "sfu-keys.json").read_text())["legs"]]
    args = tshark_sframe_args(decrypted, rtp_ports=ports, payload_types=[96, 111])
    out = subprocess.run(["tshark", *args, "-Y", "sframe.descriptor.s == 1", "-T", "fields",
                          "-e", "rtp.ssrc", "-e", "rtp.p_type", "-e", "sframe.kid", "-e", "sframe.ctr"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [line.split("\t") for line in out]
    assert len(rows) > 50
    kids = {int(k) for _, _, k, _ in rows}
    assert kids and all(k & 0xFF in (0, 1) for k in kids)  # KID = epoch << 8 | member, members 0 and 1
    by_ssrc = {}
    for ssrc, _, kid, ctr in rows:
        by_ssrc.setdefault((ssrc, kid), []).append(int(ctr))
    # no (KID, CTR) repeats within a stream: each frame encrypted under its own nonce
    assert all(len(set(c)) == len(c) for c in by_ssrc.values())
