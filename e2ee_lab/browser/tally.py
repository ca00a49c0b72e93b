"""A browser call in the shape of ``e2ee-lab call``'s summary, and its three views of the browser's video.

:func:`call_rows` turns what :func:`~e2ee_lab.browser.call.run_browser_call` measured into the fields
:func:`e2ee_lab.call.common.format_summary` prints (``participants``: one row per member, the page
included; ``sfu``: packets and the frames the SFU could decode), so ``run_call(...,
browser_participants=1)`` and ``e2ee-lab call --stack webrtc --browser 1`` print the same table as
any other call. The page's row counts what its Encoded Transform worker encrypted (sent), and what
Chrome decoded (video: ``framesDecoded`` of ``getStats()``) or its worker passed on (audio; Chrome
reports no decoded-frame count for audio). The SFU's counts come from its decoding attempt on the
packets it forwarded (:func:`~e2ee_lab.analysis.sfu_view.analyze_packets` for the Python
publishers, :func:`~e2ee_lab.browser.call.sfu_judges_browser` for the page's video); the page's
audio is counted as seen, never as intelligible (there is no ground truth for Chrome's fake
microphone).

:func:`judge_wire` is the eavesdropper's attempt on the page's video: SRTP datagrams captured on
``lo`` (RFC 3711: the RTP header is clear, the payload encrypted), reassembled and fed to libvpx
without any key. :func:`three_views` puts the wire, the SFU and the receivers side by side.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from e2ee_lab.analysis.sfu_view import analyze_packets, reassemble, sent_speech, wire_packets
from e2ee_lab.call.common import REAL_TIME_SHARE, real_time_verdict
from e2ee_lab.call.pipeline import PLAYOUT_BUDGET, SentFrame
from e2ee_lab.media.codecs import VIDEO_CLOCK
from e2ee_lab.media.speech import AUDIO_RATE
from e2ee_lab.webrtc.call import mark_late as mark_webrtc_late
from e2ee_lab.webrtc.call import sent_rows

WIRE_COLUMNS = ["timestamp", "size", "decoded", "matches", "reason"]


def _python_sfu_view(sfu, people) -> dict:
    sent = pd.DataFrame(sent_rows(people), columns=list(SentFrame.__dataclass_fields__))
    packets = sfu.view_packets()
    packets = packets[packets.publisher.isin([p.name for p in people])]
    audio = sent[sent.kind == "audio"].groupby("participant").frame_index.max()
    speech = {p.name: sent_speech(p.speech, int(audio.get(p.name, -1)) + 1) for p in people}
    return analyze_packets(packets, sent, scenes={p.name: p.scene for p in people}, speech=speech).summary()


def mark_late(received: pd.DataFrame, media_start: float, fps: float, browser: str) -> None:
    """Fill ``delay`` and ``late`` of the Python receivers' rows (in place). A Python publisher's
    frame is dated by its track's capture schedule (:func:`e2ee_lab.webrtc.call.mark_late`). The
    page's frames have no capture time the lab knows: each is dated by its RTP timestamp from the
    first of its stream to arrive, so its ``delay`` is how far it fell behind that first frame's
    pace (a lower bound: the first frame's own delay is not in it)."""
    mark_webrtc_late(received, media_start, fps)
    page = received.index[received.publisher == browser]
    received.loc[page, ["delay", "late"]] = [math.nan, False]
    for (_, kind), rows in received.loc[page].groupby(["receiver", "kind"]):
        rows = rows.sort_values("arrival")
        steps = rows.timestamp.astype("int64").diff().fillna(0).astype("int64") % 2**32
        steps[steps >= 2**31] -= 2**32  # a reordered frame steps back
        paced = rows.arrival.iloc[0] + steps.cumsum() / (VIDEO_CLOCK if kind == "video" else AUDIO_RATE)
        received.loc[rows.index, "delay"] = rows.arrival - paced
        received.loc[rows.index, "late"] = rows.arrival - paced > PLAYOUT_BUDGET


def real_time(rows: list[dict], browser: str, share: float = REAL_TIME_SHARE) -> dict:
    """``{"real_time", "real_time_reason"}`` of a browser call: the Python receivers by their frames
    in time (:func:`~e2ee_lab.call.common.real_time_verdict`), the page by its counts (Chrome's
    decoded video, the audio its worker passed on), which must reach ``share`` too."""
    verdict = real_time_verdict(rows)
    page = next((r for r in rows if r["name"] == browser), None)
    for kind in ("video", "audio"):
        expected = page[f"{kind}_frames_expected"] if page else 0
        if expected and page[f"{kind}_frames_decoded"] / expected < share and verdict["real_time"]:
            return {"real_time": False, "real_time_reason": (
                f"below {share:.0%}: {browser} decoded {page[f'{kind}_frames_decoded']} of {expected} {kind} "
                "frames (Chrome reports counts, not arrival times: the page is counted, not timed)")}
    return verdict


def call_rows(summary: dict, sfu, people, received: pd.DataFrame, sfu_frames: pd.DataFrame,
              browser: str) -> dict:
    """The ``participant_count``, ``participants`` and ``sfu`` fields of ``run_call``'s summary for a
    browser call (module docstring); ``summary`` is the browser call's own summary. Python rows
    count ``*_frames_late`` and ``*_frames_on_time`` (:func:`mark_late`); Chrome reports counts,
    not arrival times, so the page's row has neither."""
    worker = summary["browser"]["worker"]
    page_sent = {k: worker.get(f"enc:{k}:self", {}).get("ok", 0) for k in ("video", "audio")}
    py_sent = {p.name: {k: sum(1 for r in p.senders[k].records if not r.reason) for k in ("video", "audio")}
               for p in people}
    rows = []
    for p in people:
        got = received[(received.receiver == p.name) & received.decoded]
        row = {"name": p.name}
        for kind in ("video", "audio"):
            others = page_sent[kind] + sum(s[kind] for n, s in py_sent.items() if n != p.name)
            arrived = received[(received.receiver == p.name) & (received.kind == kind)]
            row.update({f"{kind}_frames_sent": py_sent[p.name][kind], f"{kind}_frames_expected": others,
                        f"{kind}_frames_decoded": int((got.kind == kind).sum()),
                        f"{kind}_frames_late": int(arrived.late.sum()),
                        f"{kind}_frames_on_time": int((arrived.decrypted & ~arrived.late.astype(bool)).sum())})
        row.update(plis_sent=p.plis_sent, plis_received=p.plis_received, dropped=dict(sorted(p.counters().items())))
        rows.append(row)
    legs = summary["python_to_browser"]
    rows.append({"name": browser,
                 "video_frames_sent": page_sent["video"],
                 "video_frames_expected": sum(s["video"] for s in py_sent.values()),
                 "video_frames_decoded": sum(leg["decoded"] for leg in legs.values()),
                 "video_frames_rendered": sum(leg["rendered"] for leg in legs.values()),
                 "audio_frames_sent": page_sent["audio"],
                 "audio_frames_expected": sum(s["audio"] for s in py_sent.values()),
                 "audio_frames_decoded": sum(n for tag, n in summary["browser"]["credited"].items()
                                             if tag.endswith(":audio")),
                 "dropped": page_drops(summary["browser"])})
    python = _python_sfu_view(sfu, people)
    view = sfu.view_packets()
    page_audio = len(reassemble(view[(view.publisher == browser) & (view.kind == "audio")])[0])
    sfu_summary = {"packets_in": sfu.packets_in, "packets_forwarded": sfu.packets_forwarded,
                   "video_frames_seen": python["video_frames_seen"] + len(sfu_frames),
                   "video_frames_decodable": python["video_frames_decodable"] + int(sfu_frames.matches.sum()),
                   "audio_frames_seen": python["audio_frames_seen"] + page_audio,
                   "audio_frames_intelligible": python["audio_frames_intelligible"],
                   "python_publishers": python, "dropped": dict(sorted(sfu.dropped.items()))}
    return {"participant_count": len(people) + 1, "participants": rows, "sfu": sfu_summary}


def page_drops(browser: dict) -> dict[str, int]:
    """Every drop of the page, named as a Python participant's: its receive transforms' reasons
    (``kid_stream_mismatch``, ``auth``, ``replay``, ...; summed over streams), its send transforms'
    as ``send_<reason>``, its key agreement's as ``keys_<reason>`` (``keys_roster_mismatch``, ...),
    and what the harness refused from it. ``browser``: the summary's ``browser`` record."""
    total: Counter[str] = Counter()
    for name, c in browser["worker"].items():
        prefix = "" if name.startswith("dec:") else "send_"
        total.update({prefix + reason: n for reason, n in c.get("dropped", {}).items()})
    total.update({k: n for k, n in browser["errors"].items() if k.startswith("keys_")})
    total.update(browser["dropped"])
    return dict(sorted(total.items()))


def judge_wire(datagrams: list[bytes], ssrc: int | None, judge) -> tuple[int, pd.DataFrame]:
    """The eavesdropper's view of the page's video: ``datagrams`` (UDP payloads seen on ``lo``)
    parsed as RTP with the page's video ``ssrc``. Returns the frames it can tell apart (distinct
    RTP timestamps: the header is clear) and ``judge``'s rows for what it could reassemble (packets
    -> one row per frame, :func:`~e2ee_lab.browser.call.sfu_judges_browser`'s columns; the VP8
    payload descriptor is encrypted, so few frames even reassemble)."""
    if ssrc is None or not datagrams:
        return 0, pd.DataFrame(columns=WIRE_COLUMNS)
    packets = wire_packets(datagrams, {ssrc: "page"})
    packets = packets[packets.ssrc == ssrc] if len(packets) else packets
    if not len(packets):
        return 0, pd.DataFrame(columns=WIRE_COLUMNS)
    return int(packets.timestamp.nunique()), judge(packets)


def three_views(result) -> pd.DataFrame:
    """Who could decode the page's video in ``result`` (a :class:`BrowserCallResult`): the wire
    without keys (needs ``sniff_lo=True``), the SFU with its leg keys, each Python receiver."""
    s = result.summary
    rows = [{"view": "wire (no keys)", "frames seen": s["wire"]["browser_frames"] if s["loopback"]["lo_datagrams"] else None,
             "decoded into the picture": s["wire"]["browser_frames_matching"]},
            {"view": "SFU (leg keys)", "frames seen": s["sfu"]["browser_frames"],
             "decoded into the picture": s["sfu"]["browser_frames_matching"]}]
    for name, leg in s["browser_to_python"].items():
        rows.append({"view": f"receiver {name} (frame keys)", "frames seen": leg["sent"],
                     "decoded into the picture": leg["decoded"]})
    return pd.DataFrame(rows).set_index("view")
