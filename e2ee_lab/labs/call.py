"""Notebook 01 (the call): tables and players built from call results, and the checks of its tasks.

Everything here reads a :class:`~e2ee_lab.call.CallResult`: the summary, the SFU's view tap and its
decoding attempt (:mod:`e2ee_lab.analysis.sfu_view`), the eavesdropper's attempt on the SRTP
datagrams, and which party holds which key. The checks recompute their answers from the same
results, so they hold for whatever the student's run produced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from e2ee_lab.call import CallResult
from e2ee_lab.config import lab_size
from e2ee_lab.crypto.keys import frame_origin
from e2ee_lab.crypto.sframe import MalformedHeader
from e2ee_lab.labs import Feedback, check, correct, not_yet, unanswered
from e2ee_lab.media.speech import AUDIO_RATE
from e2ee_lab.rtp import RTPError, VP8PayloadDescriptor

VIEW_COLUMNS = ["time", "leg", "kind", "ssrc", "seq", "timestamp", "marker", "audio_level",
                "voice_activity", "payload_size", "first_bytes"]


def call_seconds() -> float:
    """How long the notebook's calls last: 2.5 s at ci size, 5 s at full size."""
    return 2.5 if lab_size() == "ci" else 5.0


# --- tables ------------------------------------------------------------------------------------------


def summary_table(result: CallResult) -> pd.DataFrame:
    """One row per participant and one for the SFU: frames sent, decoded (of those expected), drops."""
    rows = {}
    for p in result.summary["participants"]:
        rows[p["name"]] = {
            "video sent": p["video_frames_sent"],
            "video decoded": f"{p['video_frames_decoded']} of {p['video_frames_expected']}",
            "audio sent": p["audio_frames_sent"],
            "audio decoded": f"{p['audio_frames_decoded']} of {p['audio_frames_expected']}",
            "dropped": sum(p["dropped"].values()),
        }
    s = result.summary["sfu"]
    rows["SFU"] = {"video sent": "", "video decoded": f"{s['video_frames_decodable']} of {s['video_frames_seen']}",
                   "audio sent": "",
                   "audio decoded": f"{s['audio_frames_intelligible']} of {s['audio_frames_seen']} (speech)",
                   "dropped": sum(s["dropped"].values())}
    return pd.DataFrame.from_dict(rows, orient="index")


def view_sample(result: CallResult, kind: str = "video", rows: int = 8) -> pd.DataFrame:
    """The first packets of ``kind`` the SFU received, as its view tap recorded them (payload cut)."""
    view = result.view[(result.view.direction == "in") & (result.view.kind == kind)].head(rows).copy()
    view["first_bytes"] = [p[:12].hex(" ") if p else "" for p in view.payload]
    view["time"] = view["time"].round(3)
    return view[VIEW_COLUMNS].reset_index(drop=True)


def sframe_origins(result: CallResult, rows: int = 6) -> pd.DataFrame:
    """For the first video frames the SFU saw: the SFrame header bytes and the (epoch, sender, kind)
    its KID names (RFC 9605 §4.3 leaves the header in the clear, §7.1: so the SFU can read them)."""
    out = []
    view = result.view[(result.view.direction == "in") & (result.view.kind == "video")]
    for payload in view.payload:
        try:
            descriptor, body = VP8PayloadDescriptor.parse(payload)
            if not descriptor.starts_frame:
                continue
            epoch, sender, kind = frame_origin(body)
        except (RTPError, MalformedHeader, ValueError):
            continue
        out.append({"publisher": "", "first bytes after the VP8 descriptor": body[:6].hex(" "),
                    "epoch": epoch, "sender (member index)": sender, "kind": kind})
        if len(out) == rows:
            break
    table = pd.DataFrame(out)
    if not table.empty:
        names = {index: name for name, index in result.members.items()}
        table["publisher"] = [names.get(i, "?") for i in table["sender (member index)"]]
    return table


def hop_table(results: Mapping[str, CallResult]) -> pd.DataFrame:
    """Who can read the video at each hop (rows) in each mode (columns), filled from the runs."""
    table: dict[str, dict[str, str]] = {}
    for mode, r in results.items():
        people, sfu, wire = r.summary["participants"], r.summary["sfu"], r.summary["wire"]
        decoded = sum(p["video_frames_decoded"] for p in people)
        expected = sum(p["video_frames_expected"] for p in people)
        table[mode] = {
            "publisher's app (before the frame transform)": _verdict(len(r.sent[r.sent.kind == "video"]),
                                                                       len(r.sent[r.sent.kind == "video"])),
            "on the wire (SRTP; an eavesdropper without keys)": (
                f"{'readable' if wire['video_frames_decodable'] else 'not readable'} "
                f"({wire['video_frames_decodable']} frames from {wire['srtp_packets']} SRTP packets)"),
            "SFU (after SRTP unprotect, before forwarding)": _verdict(sfu["video_frames_decodable"],
                                                                      sfu["video_frames_seen"]),
            "subscribers' apps (after the frame transform)": _verdict(decoded, expected),
        }
    return pd.DataFrame(table)


def _verdict(readable: int, total: int) -> str:
    if total == 0:
        return "no frames"
    return f"{'readable' if readable else 'not readable'} ({readable} of {total} frames)"


def sfu_audio(result: CallResult, publisher: str | None = None):
    """An ``IPython.display.Audio`` player of the speech the SFU decoded from ``publisher``'s packets."""
    from IPython.display import Audio

    publisher = publisher or result.names[0]
    pcm = result.sfu.audio.get(publisher)
    if pcm is None or not len(pcm):
        pcm = [0.0] * (AUDIO_RATE // 10)
    return Audio(data=pcm, rate=AUDIO_RATE)


# --- checks ------------------------------------------------------------------------------------------


@check
def check_sfu_decodable(answer: Mapping[str, int] | None, plain: CallResult, e2ee: CallResult) -> Feedback:
    """Task 1: ``{"dtls-srtp": n, "e2ee": m}``, the video frames the SFU could decode in each run."""
    if answer is None:
        return unanswered("Task 1")
    truth = {"dtls-srtp": _decodable(plain), "e2ee": _decodable(e2ee)}
    if not isinstance(answer, Mapping) or set(answer) != set(truth):
        return not_yet('the answer is a dict with two keys, "dtls-srtp" and "e2ee", each a number of frames.')
    for mode, n in truth.items():
        if answer[mode] != n:
            seen = len(_video(plain if mode == "dtls-srtp" else e2ee))
            return not_yet(f"in {mode} mode you counted {answer[mode]}, but the SFU view lists {seen} video "
                           f"frames of which {n} match what was sent: count the rows of sfu.frames with "
                           "kind == 'video' whose 'matches' column is True (a picture that does not match "
                           "the sent one does not count).")
    return correct(f"the SFU decoded {truth['dtls-srtp']} video frames when only SRTP protected each hop, "
                   f"and {truth['e2ee']} with SFrame: it holds every leg's SRTP keys, but not one frame key.")


def _video(result: CallResult) -> pd.DataFrame:
    return result.sfu.frames[result.sfu.frames.kind == "video"]


def _decodable(result: CallResult) -> int:
    return int(_video(result).matches.sum())


@check
def check_key_holders(answer: Mapping[str, set[str] | None] | None, e2ee: CallResult,
                      publisher: str | None = None) -> Feedback:
    """Task 2: who holds the SRTP key of ``publisher``'s leg and ``publisher``'s frame key (e2ee run)."""
    if answer is None:
        return unanswered("Task 2")
    publisher = publisher or e2ee.names[0]
    labels = [f"SRTP key of {publisher}'s leg", f"{publisher}'s frame key"]
    if not isinstance(answer, Mapping) or set(answer) != set(labels):
        return not_yet(f"keep the two keys of the template: {labels[0]!r} and {labels[1]!r}.")
    for label in labels:
        given, truth = answer[label], e2ee.key_holders[label]
        if given is None:
            return not_yet(f"{label!r} is still None: write a set of names, e.g. {{'bob', 'dave'}}.")
        if not isinstance(given, (set, list, tuple)) or not all(isinstance(n, str) for n in given):
            return not_yet(f"{label!r} should be a set of names, e.g. {{'bob', 'dave'}}.")
        given = {name.strip().lower() for name in given}
        if given != truth:
            return not_yet(_holder_hint(label, given, truth))
    return correct(f"{publisher}'s SRTP key is shared by {publisher} and the SFU (the DTLS peer of the leg); "
                   f"the frame key is held by every member and by nobody else: the SFU relayed it sealed "
                   "to each member and cannot open it.")


def _holder_hint(label: str, given: set[str], truth: set[str]) -> str:
    if "frame key" in label and "sfu" in given:
        return (f"the SFU does not hold {label}: it relayed the key inside key messages sealed with "
                "pairwise keys of the members (e2ee.relay), and the bytes of the key appear nowhere in "
                "what it carried.")
    if "SRTP" in label and "sfu" not in given:
        return f"who is the DTLS peer of that leg? Whoever runs the other end of a handshake holds {label}."
    missing, extra = sorted(truth - given), sorted(given - truth)
    return f"for {label!r}: missing {missing or 'nobody'}, should not be there {extra or 'nobody'}."


def _normalise(text: str) -> str:
    text = re.sub(r"^\s*confidential\s*:?", "", text.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


@check
def check_confidential(answer: str | None, plain: CallResult, publisher: str | None = None) -> Feedback:
    """Task 3: the CONFIDENTIAL line read off the SFU's decoded picture of ``publisher`` (dtls-srtp run)."""
    if answer is None:
        return unanswered("Task 3")
    publisher = publisher or plain.names[0]
    if publisher not in plain.sfu.pictures:
        return not_yet("this run left the SFU no decoded picture of that publisher; run the dtls-srtp call again.")
    secret = plain.scenes[publisher].secret
    if not isinstance(answer, str):
        return not_yet("give the line as text (a str).")
    if _normalise(answer) == _normalise(secret):
        return correct(f"the SFU read {publisher}'s line \"{secret}\" off a frame it only had to forward. "
                       "In e2ee mode the same frames reach it, and the same picture stays dark.")
    words = set(_normalise(secret).split())
    hits = len(words & set(_normalise(str(answer)).split()))
    return not_yet(f"{hits} of the {len(words)} words match. Read the white text in the red band of the "
                   "SFU's picture (plots.sfu_picture), the line under \"CONFIDENTIAL:\".")
