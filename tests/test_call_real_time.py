"""Real-time honesty of a call: playout deadlines, late frames, the verdict, the CPU meter.

Unit tests, no sockets and no clocks: frames are fed to the sans-I/O pipeline with chosen ``now``
values, and the verdict is computed from summary rows written by hand. That the calls' summaries
carry these fields is checked on the calls tests/test_call.py already runs.
"""

from __future__ import annotations

import math
import time

import pytest

from e2ee_lab.call.common import (
    CPUMeter, cpu_summary, format_summary, process_tree_cpu, real_time_line, real_time_verdict,
)
from e2ee_lab.call.frame_keys import make_frame_crypto
from e2ee_lab.call.pipeline import PLAYOUT_BUDGET, MediaReceiver, MediaSender
from e2ee_lab.media.scene import Scene
from e2ee_lab.media.speech import SpeechSource

FPS = 15


def _pair(budget: float = PLAYOUT_BUDGET):
    sender = MediaSender("alice", scene=Scene(0, width=160, height=120, fps=FPS), speech=SpeechSource(),
                         crypto=make_frame_crypto("dtls-srtp", None), ssrcs={"video": 11, "audio": 22},
                         seed=0, srtp_overhead=16)
    receiver = MediaReceiver("bob", crypto=make_frame_crypto("dtls-srtp", None), rtcp_ssrc=9,
                             truth=lambda pub, kind, ts: sender.sent(kind, ts), playout_budget=budget)
    receiver.announce(11, "alice", 0, "video")
    receiver.announce(22, "alice", 0, "audio")
    return sender, receiver


@pytest.mark.parametrize("transit", [0.0, 0.05, PLAYOUT_BUDGET - 0.01, PLAYOUT_BUDGET + 0.01, 1.0],
                         ids=["none", "50ms", "just-in-time", "just-late", "1s"])
def test_a_frame_is_late_when_it_arrives_after_capture_time_plus_the_budget(transit):
    sender, receiver = _pair()
    for i in range(6):
        captured = i / FPS
        # encoding and sending took 30 ms after the camera's slot; the frame then travels ``transit`` s
        packets = sender.video_frame(i, captured + 0.03, captured_at=captured)
        packets += sender.audio_frame(i, captured + 0.03, captured_at=captured)
        for packet in packets:
            receiver.receive_rtp(packet, captured + 0.03 + transit)
    receiver.flush(10.0)
    assert len(receiver.records) == 12 and all(r.decoded for r in receiver.records)
    for r in receiver.records:
        assert math.isclose(r.delay, 0.03 + transit, abs_tol=1e-9)
        assert math.isclose(r.latency, transit, abs_tol=1e-9)
        assert r.late is (0.03 + transit > PLAYOUT_BUDGET)


def test_without_a_capture_time_the_send_time_is_the_capture_time():
    sender, receiver = _pair(budget=0.1)
    for packet in sender.video_frame(0, 2.0) + sender.video_frame(1, 2.0):
        receiver.receive_rtp(packet, 2.15)
    receiver.flush(3.0)
    assert [r.late for r in receiver.records] == [True, True]
    assert [record.captured_at for record in sender.records] == [2.0, 2.0]


def _row(name, video=(100, 100, 0), audio=(250, 250, 0)):
    (ve, vo, vl), (ae, ao, al) = video, audio
    return {"name": name, "video_frames_expected": ve, "video_frames_on_time": vo, "video_frames_late": vl,
            "audio_frames_expected": ae, "audio_frames_on_time": ao, "audio_frames_late": al}


def test_the_verdict_holds_when_every_receiver_gets_95_percent_in_time():
    verdict = real_time_verdict([_row("alice"), _row("bob", video=(100, 95, 5))])
    assert verdict["real_time"] is True
    assert "bob got 95 of 100 video frames" in verdict["real_time_reason"]


@pytest.mark.parametrize("rows, who", [
    ([_row("alice"), _row("bob", video=(100, 94, 6))], "bob got 94 of 100 video frames in time (94%; 6 late, 0 missing"),
    ([_row("alice", audio=(250, 100, 0)), _row("bob", video=(100, 50, 50))],
     "alice got 100 of 250 audio frames in time (40%; 0 late, 150 missing"),
], ids=["late-video", "missing-audio"])
def test_the_verdict_fails_and_names_the_receiver_furthest_from_real_time(rows, who):
    verdict = real_time_verdict(rows)
    assert verdict["real_time"] is False and who in verdict["real_time_reason"]


def test_a_call_where_nobody_expected_anything_did_not_show_real_time():
    verdict = real_time_verdict([_row("alice", video=(0, 0, 0), audio=(0, 0, 0))])
    assert verdict == {"real_time": False, "real_time_reason": "no frames were expected by any receiver"}


def test_the_cpu_meter_counts_this_process_and_the_summary_divides_per_participant_second():
    meter = CPUMeter("test")
    sum(i * i for i in range(200_000))  # some CPU work, whatever it costs here
    row = meter.stop()
    assert row["role"] == "test" and row["cpu_s"] > 0 and row["wall_s"] > 0
    cpu = cpu_summary([row, {**row, "cpu_s": 1.0}], participants=4, seconds=2.0)
    assert cpu["cpu_s"] == pytest.approx(row["cpu_s"] + 1.0, abs=1e-3)
    assert cpu["cpu_s_per_participant_s"] == pytest.approx(cpu["cpu_s"] / 8, abs=1e-4)
    media = cpu_summary([{**row, "cpu_s": 5.0, "media_cpu_s": 0.8}, {**row, "cpu_s": 1.0}], participants=4, seconds=2.0)
    assert media["cpu_s"] == 6.0 and media["cpu_s_per_participant_s"] == pytest.approx(1.8 / 8)  # media phase only


def test_the_printed_table_ends_with_the_verdict():
    summary = {"real_time": False, "real_time_reason": "below 95% in time: dana got 1 of 2",
               "cpu": cpu_summary([{"role": "call", "pid": 1, "cpu_s": 3.0, "wall_s": 2.0, "cpu_per_wall": 1.5}],
                                  participants=3, seconds=2.0)}
    line = real_time_line(summary)
    assert line.startswith("real time: NO") and "dana got 1 of 2" in line and "CPU 3.0 s in 1 process," in line
    assert real_time_line({**summary, "real_time": True}).startswith("real time: yes")
    table = {"mode": "dtls-srtp", "participant_count": 2, "seconds": 2.0, "size": "ci", "srtp_profile": "x",
             "participants": [], "sfu": {"packets_in": 0, "packets_forwarded": 0, "video_frames_decodable": 0,
                                         "video_frames_seen": 0, "audio_frames_intelligible": 0,
                                         "audio_frames_seen": 0, "dropped": {}}, **summary}
    assert format_summary(table).splitlines()[-1] == line


def test_a_process_trees_cpu_counts_its_children():
    import os
    import subprocess
    import sys

    mine = process_tree_cpu(os.getpid())
    assert mine >= 0.0 and process_tree_cpu(2**22 + 12345) == 0.0  # no such process: nothing
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\ninput()"], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while process_tree_cpu(child.pid) < 0.3 and time.monotonic() < deadline:  # the child's own spin
            time.sleep(0.05)
        spun = process_tree_cpu(child.pid)
        assert spun >= 0.3
        assert process_tree_cpu(os.getpid()) >= mine + spun  # the busy child is in this process's tree
    finally:
        child.communicate(b"\n", timeout=10)


def test_a_browser_calls_page_frames_are_dated_by_their_rtp_pace_and_python_frames_by_capture():
    import pandas as pd

    from e2ee_lab.browser.tally import mark_late

    base = 2**32 - 3000  # the page's RTP timestamps wrap in the middle
    rows = pd.DataFrame({
        "receiver": ["alice"] * 5, "publisher": ["chromium"] * 3 + ["bob"] * 2, "kind": ["video"] * 5,
        "frame_index": [0, 1, 2, 0, 30], "timestamp": [base, (base + 3000) % 2**32, (base + 6000) % 2**32, 7, 9],
        "arrival": [5.0, 5.0 + 1 / 30, 5.0 + 2 / 30 + 0.3, 1.05, 2.5]})
    mark_late(rows, media_start=1.0, fps=30, browser="chromium")
    assert rows.delay[:3].round(6).tolist() == [0.0, 0.0, 0.3]  # from the first page frame's pace
    assert rows.delay[3:].round(6).tolist() == [0.05, 0.5]  # bob's: from his capture schedule
    assert rows.late.tolist() == [False, False, True, False, True]


def test_a_browser_call_keeps_real_time_only_if_the_page_decoded_enough_too():
    from e2ee_lab.browser.tally import real_time

    python = {"name": "alice", "video_frames_expected": 100, "video_frames_on_time": 99,
              "audio_frames_expected": 100, "audio_frames_on_time": 100}
    page = {"name": "chromium", "video_frames_expected": 100, "video_frames_decoded": 96,
            "audio_frames_expected": 100, "audio_frames_decoded": 100}
    assert real_time([python, page], "chromium")["real_time"] is True
    verdict = real_time([python, {**page, "video_frames_decoded": 80}], "chromium")
    assert verdict["real_time"] is False and "chromium decoded 80 of 100 video" in verdict["real_time_reason"]
    late = real_time([{**python, "video_frames_on_time": 50}, page], "chromium")
    assert late["real_time"] is False and "alice got 50 of 100 video" in late["real_time_reason"]
