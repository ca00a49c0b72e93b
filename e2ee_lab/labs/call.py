"""Notebook 01 (the call): the calls, tables and players built from call results, and the checks of its tasks.

Everything here reads a :class:`~e2ee_lab.call.CallResult`: the summary, the SFU's view tap and its
decoding attempt (:mod:`e2ee_lab.analysis.sfu_view`), the eavesdropper's attempt on the SRTP
datagrams, and which party holds which key. :func:`run` runs the notebook's calls with this
student's seed (``labs.params("01")``), so each student's camera shows a confidential line of their
own (:func:`e2ee_lab.media.scene.secret_line`). The checks recompute their answers from the same
results, so they hold for whatever the student's run produced; the prediction of Task 1 is stored
before the first call (:func:`predict`) and compared with the runs after them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from e2ee_lab.call import CallResult
from e2ee_lab.config import lab_size
from e2ee_lab.crypto.keys import frame_origin
from e2ee_lab.crypto.sframe import MalformedHeader
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.media.speech import AUDIO_RATE
from e2ee_lab.rtp import RTPError, VP8PayloadDescriptor

VIEW_COLUMNS = ["time", "leg", "kind", "ssrc", "seq", "timestamp", "marker", "audio_level",
                "voice_activity", "payload_size", "first_bytes"]


PARTICIPANTS = 3
_calls_run: list[str] = []  # the modes run() ran in this kernel, in order (for predict's note)


def call_seconds() -> float:
    """How long the notebook's calls last: 2.5 s at ci size, 5 s at full size."""
    return 2.5 if lab_size() == "ci" else 5.0


def call_seed() -> int:
    """This student's seed for the calls (0, the recordings' seed, for the shipped notebook)."""
    return params("01").seed("call", default=0)


def run(mode: str) -> CallResult:
    """The notebook's call in ``mode``: three participants, :func:`call_seconds`, this student's seed."""
    from e2ee_lab.call import run_call

    result = run_call(mode, participants=PARTICIPANTS, seconds=call_seconds(), seed=call_seed())
    _calls_run.append(mode)
    return result


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


# --- Task 1: predict what the SFU gets (stored before the calls, compared after) -------------------------

#: What the SFU may make of a publisher's frames: every one decoded to the sent picture, some, none;
#: and of her speech: the speech itself, noise (its decoder produced sound that matches nothing said), or
#: nothing (its decoder refused the frames).
VIDEO_OUTCOMES = ("every frame", "some frames", "no frame")
AUDIO_OUTCOMES = ("speech", "noise", "nothing")
PREDICTION_KEYS = ("dtls-srtp video", "dtls-srtp audio", "e2ee video", "e2ee audio")


def predict(prediction: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """Take ``prediction`` (Task 1) and say whether any of this notebook's calls ran before it; returns it.

    The note is printed, so the saved notebook shows whether the prediction came first; the check
    compares the prediction with the runs whatever the order.
    """
    if prediction is None:
        print("no prediction stored yet: fill in the dict, then run this cell before the calls.")
    elif _calls_run:
        print(f"prediction stored AFTER {len(_calls_run)} call(s) of this notebook ran ({', '.join(_calls_run)}): "
              "for a real prediction, restart the kernel and run this cell before section 1.")
    else:
        print("prediction stored before any call of this notebook ran.")
    return prediction


def sfu_outcome(result: CallResult, kind: str) -> str:
    """What the SFU made of the run's ``kind`` frames, in the words of :data:`VIDEO_OUTCOMES` /
    :data:`AUDIO_OUTCOMES`, from its own decoding attempt (the summary's counts)."""
    s = result.summary["sfu"]
    if kind == "video":
        seen, good = s["video_frames_seen"], s["video_frames_decodable"]
        return VIDEO_OUTCOMES[0] if seen and good == seen else VIDEO_OUTCOMES[2] if good == 0 else VIDEO_OUTCOMES[1]
    seen = max(s["audio_frames_seen"], 1)
    if s["audio_frames_intelligible"] / seen > 0.5:
        return AUDIO_OUTCOMES[0]
    return AUDIO_OUTCOMES[1] if s["audio_frames_decoded"] / seen > 0.5 else AUDIO_OUTCOMES[2]


_PREDICT_HINTS = {
    ("e2ee", "video"): "with SFrame the SFU still holds every leg's SRTP key, but not one frame key: what its VP8 "
                       "decoder gets after SRTP unprotect is SFrame ciphertext",
    ("e2ee", "audio"): "Opus has no integrity check: its decoder makes sound out of almost any bytes, which is not "
                       "the same as the speech that was said (section 5)",
    ("dtls-srtp", "video"): "the SFU is the DTLS peer of every leg: after SRTP unprotect it holds each frame as the "
                            "encoder made it",
    ("dtls-srtp", "audio"): "after SRTP unprotect the SFU holds the Opus frames as the encoder made them, and feeds "
                            "them to the same decoder the participants use",
}


@check
def check_prediction(answer: Mapping[str, str] | None, plain: CallResult, e2ee: CallResult) -> Feedback:
    """Task 1 (predict): for each mode, what the SFU makes of the publishers' video and audio
    (:data:`PREDICTION_KEYS`), compared with what it made of them in the two runs (:func:`sfu_outcome`)."""
    if answer is None or isinstance(answer, Mapping) and all(v is None for v in answer.values()):
        return unanswered("Task 1")
    if not isinstance(answer, Mapping) or set(answer) != set(PREDICTION_KEYS):
        return not_yet(f"the prediction is a dict with the keys {', '.join(PREDICTION_KEYS)}.")
    for key in PREDICTION_KEYS:
        allowed = VIDEO_OUTCOMES if key.endswith("video") else AUDIO_OUTCOMES
        if answer[key] not in allowed:
            return not_yet(f"{key!r} is one of {', '.join(map(repr, allowed))}.")
    runs = {"dtls-srtp": plain, "e2ee": e2ee}
    for key in PREDICTION_KEYS:
        mode, kind = key.split()
        if answer[key] != sfu_outcome(runs[mode], kind):
            return not_yet(f"the runs differ from your prediction for {key}: {_PREDICT_HINTS[mode, kind]}. Keep your "
                           "prediction as it was stored; this check only compares it with the runs.")
    return correct("you predicted all four: the SFU reads every frame when only SRTP protects the hops, and with "
                   "SFrame it decodes no picture and hears only noise.")


# --- Task 2: who holds which key -------------------------------------------------------------------------


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
    if "SRTP" in label:
        return (f"{label!r} comes from one DTLS handshake, between the two ends of that leg; every other leg "
                "has a handshake and a key of its own.")
    return (f"{label!r} is the sender's SFrame key: she uses it to encrypt, and whoever must decrypt her "
            "frames received it from her in a sealed key message.")


# --- Task 3: the confidential line -----------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = re.sub(r"^\s*confidential\s*:?", "", text.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


@check
def check_confidential(answer: str | None, plain: CallResult, publisher: str | None = None) -> Feedback:
    """Task 3: the CONFIDENTIAL line read off the SFU's decoded picture of ``publisher`` (dtls-srtp run;
    the line depends on the run's seed, so on the student)."""
    if answer is None:
        return unanswered("Task 3")
    publisher = publisher or plain.names[0]
    if publisher not in plain.sfu.pictures:
        return not_yet("this run left the SFU no decoded picture of that publisher; run the dtls-srtp call again.")
    if not isinstance(answer, str):
        return not_yet("give the line as text (a str).")
    secret = plain.scenes[publisher].secret
    if _normalise(answer) == _normalise(secret):
        return correct(f"the SFU read {publisher}'s line \"{secret}\" off a frame it only had to forward. "
                       "In e2ee mode the same frames reach it, and the same picture stays dark.")
    others = {_normalise(scene.secret) for name, scene in plain.scenes.items() if name != publisher}
    if _normalise(answer) in others:
        return not_yet(f"that is another participant's line: read the one in {publisher}'s picture, the SFU's "
                       "decode of her camera shown above.")
    return not_yet(f"type the white line under \"CONFIDENTIAL:\" in the SFU's picture of {publisher} as it reads, "
                   "word for word and digit for digit (case and punctuation do not matter).")


# --- Task 4: did the SFU understand the speech? (build) ----------------------------------------------------


def speech_pair(result: CallResult, publisher: str | None = None):
    """(sent, heard): ``publisher``'s speech as sent and as the SFU decoded it, 48 kHz float arrays of one
    length, the decoder's delay (:data:`~e2ee_lab.analysis.offline.OPUS_DELAY` samples) removed."""
    import numpy as np

    from e2ee_lab.analysis.offline import OPUS_DELAY

    publisher = publisher or result.names[0]
    sent = np.asarray(result.speech[publisher], dtype=float)
    heard = np.asarray(result.sfu.audio.get(publisher, np.zeros(0)), dtype=float)[OPUS_DELAY:]
    n = min(len(sent), len(heard))
    return sent[:n], heard[:n]


def _understood_by_sfu(result: CallResult, publisher: str) -> bool:
    """The lab's own verdict: the SFU's decode correlates with the sent speech (at the codec's delay)."""
    from e2ee_lab.analysis.sfu_view import SPEECH_STREAM_CORRELATION

    return result.summary["sfu"]["speech_correlation"].get(publisher, 0.0) >= SPEECH_STREAM_CORRELATION


def _understood_cases(plain: CallResult, e2ee: CallResult) -> list[tuple[str, bool, object, object]]:
    """Task 4's cases: (what, the SFU understood it, sent, heard); the synthetic ones drawn per student."""
    import numpy as np

    cases = [(f"the SFU's decode of {p} in {r.config.mode}", _understood_by_sfu(r, p), *speech_pair(r, p))
             for r in (plain, e2ee) for p in r.names]
    rng = np.random.default_rng(params("01").seed("task4 noise", default=1))
    sent, heard = speech_pair(plain)
    rms = float(np.sqrt(np.mean(heard**2))) or 1.0
    cases += [
        ("the same decode, much quieter", True, sent, heard * rng.uniform(0.05, 0.3)),
        ("the same decode under background noise", True, sent, heard + rng.normal(0, rms / 4, len(heard))),
        ("noise as loud as the speech", False, sent, rng.normal(0, rms, len(heard))),
        ("the speech played backwards", False, sent, heard[::-1].copy()),
        ("silence", False, sent, np.zeros(len(heard))),
    ]
    return cases


def probe_understood(func, plain: CallResult, e2ee: CallResult) -> list[dict]:
    """Task 4's probe: the student's ``understood(sent, heard)`` on every case (value or exception name)."""
    from e2ee_lab.labs.plain import call_safely

    return [call_safely(func, sent, heard) for _, _, sent, heard in _understood_cases(plain, e2ee)]


_UNDERSTOOD_HINTS = {
    "e2ee": "the SFU's decoder produced sound from SFrame ciphertext: producing sound is not hearing the call; "
            "compare what was heard with what was said",
    "quieter": "a listener who hears the speech at a fifth of its volume still understands it: make the test "
               "independent of loudness",
    "background": "speech under some noise is still the same speech: the test should not demand a perfect copy",
    "noise": "noise as loud as the speech has the same energy: loudness says nothing about content",
    "backwards": "speech played backwards has the same loudness and the same spectrum, but not the same words: "
                 "compare the samples in their order",
    "silence": "silence should give False, not an error (a correlation with silence divides by zero)",
}


@check(probe=probe_understood)
def check_understood(answer, plain: CallResult, e2ee: CallResult) -> Feedback:
    """Task 4 (build): the student's ``understood(sent, heard) -> bool`` on the SFU's decodes of both runs
    and on synthetic cases (quieter, noisy, noise, backwards, silence)."""
    if answer is None:
        return unanswered("Task 4")
    if not isinstance(answer, Probed):
        return not_yet("define understood(sent, heard) as a function and pass the function itself to the check.")
    cases = _understood_cases(plain, e2ee)
    if not isinstance(answer.outputs, list) or len(answer.outputs) != len(cases):
        return not_yet("the check could not run understood() on its cases; pass the function itself.")
    for (what, truth, _, _), got in zip(cases, answer.outputs):
        if not isinstance(got, dict):
            return not_yet("the check could not read what understood() did; pass the function itself.")
        if "raised" in got:
            return not_yet(f"understood() raised {got['raised']} on {what}. " + (
                _UNDERSTOOD_HINTS["silence"] if what == "silence" else "It must answer True or False for any input."))
        if got.get("value") is not truth:
            if not isinstance(got.get("value"), bool):
                return not_yet("understood() must return True or False (a bool).")
            key = next((k for k in _UNDERSTOOD_HINTS if k in what), None)
            return not_yet(f"on {what} understood() said {got['value']}: " + (_UNDERSTOOD_HINTS[key] if key else
                           "by the lab's own measure the SFU understood that publisher") + ".")
    return correct("your test says the SFU understood every publisher in dtls-srtp and nobody in e2ee, and neither "
                   "loudness, noise, silence nor backwards speech fools it: this is why the lab measures the "
                   "correlation with what was said instead of asking whether the decoder produced sound.")
