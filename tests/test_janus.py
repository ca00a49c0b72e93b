"""Tests for e2ee_lab.janus: the lab's call through the Janus SFU, its recording as the SFU's view.

Marked ``janus``. The calls need Janus, janus-pp-rec and root (a private network namespace):
they skip, naming the reason, without them (``.ci/run`` installs Janus, so CI runs them). The
configuration generator, the HTTP client, the ``.mjr`` reader and Janus's refusal to start
outside a namespace run wherever they can.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from utils import other_interfaces

from e2ee_lab.browser.errors import IsolationFailed
from e2ee_lab.call.common import format_summary
from e2ee_lab.call.stacks import add_call_arguments, run_call
from e2ee_lab.capture import sniff_problem
from e2ee_lab.janus import (
    JanusAPIError,
    JanusProtocolError,
    JanusServer,
    JanusSession,
    JanusTimeout,
    JanusUnavailable,
    NotIsolated,
    VideoRoom,
    janus_problem,
    render_config,
    run_janus_call,
)
from e2ee_lab.janus.config import JanusConfig
from e2ee_lab.janus.http import parse_response
from e2ee_lab.janus.recording import MAGIC, RecordingError, read_mjr
from e2ee_lab.janus.server import janus_binary

pytestmark = pytest.mark.janus
PROBLEM = janus_problem()
needs_janus = pytest.mark.skipif(PROBLEM is not None, reason=f"no Janus call here: {PROBLEM}")
LAB_SUMMARY_KEYS = {"mode", "participant_count", "seconds", "seed", "size", "srtp_profile", "participants",
                    "sfu", "wire", "garbage_sent"}
LAB_PARTICIPANT_KEYS = {"name", "video_frames_sent", "video_frames_expected", "video_frames_decoded",
                        "audio_frames_sent", "audio_frames_expected", "audio_frames_decoded", "dropped"}
LAB_SFU_KEYS = {"packets_in", "packets_forwarded", "video_frames_seen", "video_frames_decodable",
                "audio_frames_seen", "audio_frames_intelligible", "dropped"}


def janus_pids(marker: str) -> list[int]:
    """Live (not zombie) processes running the janus binary whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and os.path.basename(cmdline.split(" ")[0]) == "janus" and state != "Z":
            found.append(int(entry))
    return found


def wait_gone(marker: str, seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while janus_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return janus_pids(marker)


# --- calls ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srtp_call(tmp_path_factory):
    out = tmp_path_factory.mktemp("janus-dtls-srtp")
    return run_janus_call("dtls-srtp", 3, 2.0, seed=1, size="ci", out=out)


@pytest.fixture(scope="module")
def e2ee_call(tmp_path_factory):
    """The e2ee call, with a sniffer on every interface but lo while it runs (where permitted)."""
    out = tmp_path_factory.mktemp("janus-e2ee")
    sniffer, others = None, {}
    if sniff_problem() is None:
        from scapy.all import AsyncSniffer

        others = other_interfaces()
        if others:
            sniffer = AsyncSniffer(iface=list(others), filter="udp", store=True)
            sniffer.start()
    try:
        result = run_call("e2ee", 3, 2.0, seed=2, size="ci", out=out, sfu="janus")  # through the registry
    finally:
        packets = (sniffer.stop() or []) if sniffer is not None else None
    result.sniffed = {"interfaces": others, "packets": packets}
    return result


@needs_janus
@pytest.mark.parametrize("name", ["srtp_call", "e2ee_call"])
def test_receivers_decode_95_percent_and_the_summary_has_the_lab_contract(name, request):
    summary = request.getfixturevalue(name).summary
    assert LAB_SUMMARY_KEYS <= set(summary) and summary["stack"] == "janus"
    assert LAB_SFU_KEYS <= set(summary["sfu"])
    assert len(summary["participants"]) == 3
    for row in summary["participants"]:
        assert LAB_PARTICIPANT_KEYS <= set(row)
        for kind in ("video", "audio"):
            assert row[f"{kind}_frames_expected"] == 2 * summary["window"][f"{kind}_frames"]
            assert row[f"{kind}_frames_decoded"] >= 0.95 * row[f"{kind}_frames_expected"], row
    assert "SFU " in format_summary(summary)


@needs_janus
def test_janus_recording_decodes_in_dtls_srtp(srtp_call):
    sfu, rec = srtp_call.summary["sfu"], srtp_call.recording
    assert set(rec.publisher) == {"alice", "bob", "carol"} and set(rec.kind) == {"audio", "video"}
    assert sfu["video_frames_seen"] >= 3 * 0.95 * srtp_call.summary["window"]["video_frames"]
    assert sfu["video_frames_decodable"] >= 0.95 * sfu["video_frames_seen"]
    assert sfu["audio_frames_intelligible"] >= 0.95 * sfu["audio_frames_seen"] > 0
    assert min(sfu["speech_correlation"].values()) > 0.9
    assert all(matches for _, _, matches in srtp_call.sfu.pictures.values())


@needs_janus
def test_janus_recording_decodes_nothing_in_e2ee(e2ee_call):
    sfu = e2ee_call.summary["sfu"]
    assert sfu["video_frames_seen"] >= 3 * 0.95 * e2ee_call.summary["window"]["video_frames"]
    assert sfu["audio_frames_seen"] > 0
    assert sfu["video_frames_decoded"] == sfu["video_frames_decodable"] == 0
    assert sfu["audio_frames_intelligible"] == 0
    assert max(sfu["speech_correlation"].values()) < 0.2
    assert sfu["janus_pp_rec"].get("No key frame", 0) > 0  # janus-pp-rec itself sees no VP8 key frame


@needs_janus
@pytest.mark.parametrize("name", ["srtp_call", "e2ee_call"])
def test_admin_api_shows_loopback_pairs_srtp_and_counters(name, request):
    result = request.getfixturevalue(name)
    streams, e2ee = result.streams, name == "e2ee_call"
    assert len(streams) == 3 * 2 + 3 * 4  # each publishes 2 streams, receives 2 of each other member
    for pair in streams.selected_pair:
        local, remote = pair.split(" <-> ")
        assert local.startswith("127.0.0.1:") and remote.startswith("127.0.0.1:"), pair
    assert set(streams.srtp_profile) == {result.summary["janus"]["srtp_profiles"][0]}
    assert (streams[streams.role == "publisher"].packets_in > 0).all()
    assert (streams[streams.role == "subscriber"].packets_out > 0).all()
    assert set(streams[streams.role == "publisher"].e2ee) == {e2ee}  # Janus flags the publishers' handles
    assert result.summary["sfu"]["packets_forwarded"] == 2 * result.summary["sfu"]["packets_in"]
    assert result.summary["loopback"]["candidates_loopback"]


@needs_janus
def test_outputs_and_recordings_stay_under_out(srtp_call):
    out = srtp_call.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sfu"]["video_frames_decodable"] == srtp_call.summary["sfu"]["video_frames_decodable"]
    assert len(list((out / "janus" / "recordings").glob("*.mjr"))) == 6
    assert len(list((out / "janus" / "converted").glob("*.webm"))) == 3
    assert (out / "sfu-keys.json").exists() and (out / "janus" / "admin.json").exists()


@needs_janus
@pytest.mark.skipif(sniff_problem() is not None, reason=f"cannot sniff: {sniff_problem()}")
def test_nothing_on_other_interfaces_during_a_janus_call(e2ee_call):
    sniffed = e2ee_call.sniffed
    if not sniffed["interfaces"]:
        pytest.skip("this machine has no interface besides lo")
    from scapy.layers.inet import IP, UDP

    ports = {int(c) for c in e2ee_call.candidates.port}
    for pair in e2ee_call.streams.selected_pair:
        ports |= {int(side.split(" ")[0].rsplit(":", 1)[1]) for side in pair.split(" <-> ")}
    ports |= {8088, 7088}
    ours = [p for p in sniffed["packets"] if UDP in p
            and ({p[UDP].sport, p[UDP].dport} & ports or (IP in p and p[IP].src.startswith("127.")))]
    print(f"on {list(sniffed['interfaces'])}: {len(sniffed['packets'])} UDP datagrams during the call, "
          f"{len(ours)} from or to the call's {len(ports)} ports or 127/8")
    assert len(ports) > 10
    assert ours == [], [p.summary() for p in ours]


# --- no process left behind ----------------------------------------------------------------------


@needs_janus
def test_no_janus_process_survives_the_calls(srtp_call, e2ee_call):
    for result in (srtp_call, e2ee_call):  # Janus's command line names its configuration under OUT
        assert result.summary["janus"]["pid"] > 0 and wait_gone(str(result.out)) == []


CHILD = """
import asyncio, os, sys, time
from e2ee_lab.janus import JanusServer
async def main():
    async with JanusServer(sys.argv[1]) as janus:
        print(janus.pid, flush=True)
        if sys.argv[2] == "raise":
            raise RuntimeError("an experiment failed")
        time.sleep(60)
asyncio.run(main())
"""


def _child_in_netns(run_dir: Path, what: str) -> subprocess.Popen:
    script = 'ip link set lo up && exec "$@"'
    return subprocess.Popen(["unshare", "-n", "sh", "-c", script, "sh", sys.executable, "-c", CHILD,
                             str(run_dir), what], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@needs_janus
def test_no_janus_process_survives_an_exception(tmp_path):
    child = _child_in_netns(tmp_path, "raise")
    out, err = child.communicate(timeout=60)
    assert child.returncode != 0 and b"an experiment failed" in err
    pid = int(out.split()[0])
    assert wait_gone(str(tmp_path)) == [] and pid > 0


@needs_janus
def test_no_janus_process_survives_its_parent_killed(tmp_path):
    child = _child_in_netns(tmp_path, "sleep")
    try:
        pid = int(child.stdout.readline())
        assert janus_pids(str(tmp_path)) == [pid]
    finally:
        child.send_signal(signal.SIGKILL)  # no finally, no atexit in the child: the kernel's turn
        child.wait()
    assert wait_gone(str(tmp_path)) == []


@needs_janus
def test_no_janus_process_survives_a_call_timeout(tmp_path):
    # a 60 s call given 7 s: Janus is up (its log says so) when the namespace's process group is killed
    with pytest.raises(IsolationFailed, match="took more than"):
        run_janus_call("dtls-srtp", 2, 60.0, size="ci", out=tmp_path, timeout=7.0)
    assert "VideoRoom plugin initialized" in (tmp_path / "janus" / "run" / "janus.log").read_text()
    assert wait_gone(str(tmp_path)) == []


@pytest.mark.skipif(janus_binary() is None, reason="Janus is not installed")
def test_janus_refuses_to_start_outside_a_private_namespace(tmp_path):
    with pytest.raises(NotIsolated, match="interfaces besides lo"):
        asyncio.run(JanusServer(tmp_path).start())
    assert not (tmp_path / "janus.log").exists() and janus_pids(str(tmp_path)) == []


def test_without_janus_the_call_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E2EE_LAB_JANUS", str(tmp_path / "no-such-janus"))
    with pytest.raises(JanusUnavailable, match="Janus is not installed"):
        run_janus_call("e2ee", 2, 1.0, size="ci")
    with pytest.raises(ValueError, match="unknown mode"):
        run_janus_call("rot13", 2, 1.0, size="ci")
    parser = argparse.ArgumentParser()
    add_call_arguments(parser)
    args = parser.parse_args(["--sfu", "janus", "--mode", "e2ee", "--size", "ci", "--out", str(tmp_path)])
    assert args.func(args) == 2
    assert capsys.readouterr().err == "call: Janus is not installed (apt-get install janus janus-tools)\n"


@pytest.mark.parametrize("options,match", [
    ({"stack": "webrtc"}, "its own aiortc participants"), ({"garbage": 5.0}, "garbage"),
    ({"capture": "sniff"}, "capture"), ({"srtp_profile": "AES_CM_128_HMAC_SHA1_80"}, "srtp_profile"),
    ({"browser_participants": 1}, "cannot be combined"),
], ids=["stack", "garbage", "capture", "profile", "browser"])
def test_the_janus_stack_refuses_what_it_cannot_do(options, match):
    with pytest.raises(ValueError, match=match):
        run_call("e2ee", 2, 1.0, size="ci", sfu="janus", **options)


# --- configuration ---------------------------------------------------------------------------------


def _fake_lib(tmp_path: Path) -> Path:
    for folder, names in {"plugins": ["libjanus_videoroom.so", "libjanus_echotest.so", "libjanus_sip.so"],
                          "transports": ["libjanus_http.so", "libjanus_websockets.so"],
                          "events": ["libjanus_sampleevh.so"], "loggers": ["libjanus_jsonlog.so"]}.items():
        (tmp_path / "lib" / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / "lib" / folder / name).write_bytes(b"")
            (tmp_path / "lib" / folder / f"{name}.1").write_bytes(b"")
    return tmp_path / "lib"


def test_config_loads_only_videoroom_and_http_on_loopback(tmp_path):
    config = JanusConfig(run_dir=tmp_path / "run", lib_dir=_fake_lib(tmp_path))
    files = render_config(config)
    main, http, room = files["janus.jcfg"], files["janus.transport.http.jcfg"], files["janus.plugin.videoroom.jcfg"]
    assert 'disable = "libjanus_echotest.so,libjanus_sip.so"' in main
    assert 'disable = "libjanus_websockets.so"' in main
    assert 'disable = "libjanus_jsonlog.so"' in main and "broadcast = false" in main
    assert 'ice_enforce_list = "lo"' in main and "ignore_mdns = true" in main
    assert "stun" not in main.lower() and "turn" not in main.lower().replace("return", "")
    assert f'admin_secret = "{config.admin_secret}"' in main and len(config.admin_secret) == 32
    assert 'ip = "127.0.0.1"' in http and 'admin_ip = "127.0.0.1"' in http and "https = false" in http
    assert f'admin_key = "{config.admin_key}"' in room
    assert JanusConfig(run_dir=tmp_path, lib_dir=tmp_path).admin_key != config.admin_key  # random per run


def test_config_takes_a_path_with_spaces(tmp_path):
    config = JanusConfig(run_dir=tmp_path / "my labs" / "run", lib_dir=_fake_lib(tmp_path))
    assert f'configs_folder = "{tmp_path}/my labs/run"' in render_config(config)["janus.jcfg"]


@pytest.mark.parametrize("field,value", [("run_dir", 'x"; plugins_folder = "/tmp'), ("interfaces", "lo\neth0"),
                                         ("http_port", 0), ("admin_port", 70000)])
def test_config_refuses_odd_values(tmp_path, field, value):
    kwargs = {"run_dir": tmp_path, "lib_dir": _fake_lib(tmp_path), field: value}
    with pytest.raises(ValueError):
        render_config(JanusConfig(**kwargs))


# --- the HTTP client and its errors ---------------------------------------------------------------


class FakeJanus:
    """A real HTTP server on 127.0.0.1 answering each request with ``handler(body)``: a dict (sent
    as JSON), raw bytes (a whole HTTP response) or ``"hang"``. ``body`` is None for a long-poll GET."""

    def __init__(self, handler) -> None:
        self.handler = handler

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/janus"
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), b"0"))
        body = json.loads(await reader.readexactly(length)) if length else None
        answer = self.handler(body)
        if body is None and answer is None:  # an idle long-poll
            await asyncio.sleep(0.05)
            answer = {"janus": "keepalive"}
        if answer == "hang":
            await asyncio.sleep(30)
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        writer.write(data if data.startswith(b"HTTP/") else
                     b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
        await writer.drain()
        writer.close()


def janus_like(message_answer):
    """A handler that creates session 11 and handle 22, and answers ``message`` with ``message_answer(body)``."""
    def handler(body):
        if body is None:
            return None
        ids = {"create": 11, "attach": 22}
        if body["janus"] in ids:
            return {"janus": "success", "transaction": body["transaction"], "data": {"id": ids[body["janus"]]}}
        if body["janus"] == "message":
            return message_answer(body)
        return {"janus": "ack", "transaction": body["transaction"]}
    return handler


async def _with_session(handler, job):
    async with FakeJanus(handler) as fake:
        session = JanusSession(fake.url)
        try:
            return await job(session)
        finally:
            await session.destroy()


def test_a_janus_error_answer_is_a_typed_error():
    def handler(body):
        return body and {"janus": "error", "transaction": body["transaction"],
                         "error": {"code": 458, "reason": "No such session"}}

    with pytest.raises(JanusAPIError) as info:
        asyncio.run(_with_session(handler, lambda session: session.create()))
    assert (info.value.code, info.value.text, info.value.reason) == (458, "No such session", "janus_api_error")


def test_a_plugin_error_is_a_typed_error_with_its_code():
    def plugin_error(body):
        return {"janus": "success", "transaction": body["transaction"],
                "plugindata": {"plugin": "janus.plugin.videoroom",
                               "data": {"videoroom": "event", "error_code": 427, "error": "Room 5 already exists"}}}

    async def job(session):
        await session.create()
        room = await VideoRoom.attach(session)
        await room.create_room(5, admin_key="k", publishers=2)

    with pytest.raises(JanusAPIError) as info:
        asyncio.run(_with_session(janus_like(plugin_error), job))
    assert (info.value.code, info.value.request) == (427, "create") and "already exists" in str(info.value)


@pytest.mark.parametrize("answer,match", [
    (lambda body: {"janus": "success", "transaction": "someone-else", "data": {"id": 11}}, "another transaction"),
    (lambda body: {"janus": "success", "transaction": body["transaction"], "data": {"id": "11"}}, "not an integer"),
    (lambda body: {"janus": "success", "transaction": body["transaction"], "data": {"id": True}}, "not an integer"),
    (lambda body: [1, 2], "not a JSON object"),
], ids=["transaction", "string-id", "bool-id", "list"])
def test_a_wrong_answer_is_a_protocol_error(answer, match):
    with pytest.raises(JanusProtocolError, match=match):
        asyncio.run(_with_session(lambda body: body and answer(body), lambda session: session.create()))


def test_a_session_reads_answers_and_events_by_transaction():
    """create, attach, an asynchronous request answered by an event on the long-poll, webrtcup."""
    state: dict = {}

    def message(body):
        state["join"] = body["transaction"]
        return {"janus": "ack", "transaction": body["transaction"]}

    inner = janus_like(message)

    def handler(body):
        if body is None and "join" in state:
            return [{"janus": "event", "sender": 22, "transaction": state.pop("join"),
                     "plugindata": {"plugin": "janus.plugin.videoroom", "data": {"videoroom": "joined", "id": 99}}},
                    {"janus": "webrtcup", "session_id": 11, "sender": 22},
                    {"janus": "event", "sender": 22, "transaction": "nobody-asked"}, "not an object"]
        return inner(body)

    async def job(session):
        assert await session.create() == 11
        room = await VideoRoom.attach(session)
        joined = await room.join_publisher(5, "alice")
        return joined, await room.wait_webrtcup(2.0), dict(session.dropped)

    joined, up, dropped = asyncio.run(_with_session(handler, job))
    assert joined == {"videoroom": "joined", "id": 99} and up["janus"] == "webrtcup"
    assert dropped == {"not_an_object": 1}  # the unasked event is kept for its handle, not matched


def test_a_silent_janus_times_out_and_non_loopback_urls_are_refused():
    from e2ee_lab.janus import http

    async def go():
        async with FakeJanus(lambda body: "hang") as fake:
            with pytest.raises(JanusTimeout):
                await http.request_json(fake.url, {"janus": "create"}, timeout=0.3)

    asyncio.run(go())
    for url in ("http://10.0.0.1:8088/janus", "https://127.0.0.1/janus", "http://localhost:8088/janus"):
        with pytest.raises(ValueError, match="only http://127.0.0.1"):
            asyncio.run(http.request_json(url, {}, timeout=1.0))


@pytest.mark.parametrize("raw,match", [
    (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", "HTTP 500"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{not json", "not JSON"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{}", "shorter than Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "bad chunk size"),
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP response"),
], ids=["status", "json", "short", "chunk", "not-http"])
def test_a_broken_answer_is_a_protocol_error(raw, match):
    with pytest.raises(JanusProtocolError, match=match):
        parse_response(raw)


def test_chunked_answers_are_read():
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n"
    assert parse_response(raw) == {"a": 1}


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_a_protocol_error(raw):
    try:
        parse_response(b"HTTP/1.1 200 OK\r\n\r\n" + raw)
    except JanusProtocolError:
        pass


# --- recordings ------------------------------------------------------------------------------------


def _mjr(tmp_path: Path, body: bytes, name: str = "videoroom-5-user-42-1700000000-video-0.mjr") -> Path:
    path = tmp_path / name
    path.write_bytes(body)
    return path


def test_mjr_reader_reads_header_and_packets(tmp_path):
    header = json.dumps({"t": "v", "c": "vp8", "e": True}).encode()
    rtp = bytes([0x80, 96]) + (1).to_bytes(2, "big") + (0).to_bytes(4, "big") + (7).to_bytes(4, "big") + b"xy"
    body = MAGIC + len(header).to_bytes(2, "big") + header + b"MEET" + (5).to_bytes(4, "big") \
        + len(rtp).to_bytes(2, "big") + rtp
    rec = read_mjr(_mjr(tmp_path, body))
    assert (rec.feed, rec.kind, rec.marked_e2ee, rec.packets, rec.frames_recorded()) == (42, "video", True, [rtp], 1)


@pytest.mark.parametrize("body,match", [
    (b"MJR00001\x00\x02{}", "magic"),
    (MAGIC + b"\x00\x05{}", "truncated header"),
    (MAGIC + b"\x00\x02{x", "not JSON"),
    (MAGIC + b"\x00\x02[]", "not a JSON object"),
    (MAGIC + b"\x00\x02{}MEET\x00\x00\x00\x01\x00\x10abc", "truncated packet"),
    (MAGIC + b"\x00\x02{}JUNK\x00\x00\x00\x01\x00\x01a", "bad or truncated"),
], ids=["magic", "short-header", "json", "object", "truncated", "marker"])
def test_mjr_reader_refuses_damaged_files(tmp_path, body, match):
    with pytest.raises(RecordingError, match=match):
        read_mjr(_mjr(tmp_path, body))
    with pytest.raises(RecordingError, match="not a VideoRoom recording"):
        read_mjr(_mjr(tmp_path, MAGIC, name="other.mjr"))


@given(st.binary(max_size=200))
def test_mjr_reader_raises_only_recording_errors(tmp_path_factory, junk):
    path = _mjr(tmp_path_factory.mktemp("mjr"), MAGIC + junk)
    try:
        read_mjr(path)
    except RecordingError:
        pass
