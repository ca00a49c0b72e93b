"""Notebook 11 (a production SFU): the lab's call through Janus, its own recording, its admin API,
its cost next to the lab's SFU, and the task checks.

The helpers run the call through Janus's VideoRoom (:func:`janus_calls`: one ``dtls-srtp`` and one
``e2ee`` call, :mod:`e2ee_lab.janus`) and shape the results for the notebook: how Janus is fenced
in (a private network namespace, a configuration generated per run, the loopback shim); what Janus's
own recording plays back in each mode (the picture and the speech in ``dtls-srtp``, nothing in
``e2ee``: ``janus-pp-rec`` finds no VP8 key frame, libvpx refuses every frame, Opus gives noise);
what its admin API keeps about every stream; and Janus's CPU per forwarded packet next to the lab
SFU's on the same room (:mod:`e2ee_lab.janus.capacity`). Where a Janus call cannot run (no root, no
Janus) :func:`status` says so in one line and every helper uses the results ``data/make_janus.py``
recorded (:data:`RECORDED`), so the notebook still runs top to bottom and every check still works.

The tasks: Task 1 compares a prediction stored before the calls (:func:`predict`) with what the
converted recordings gave back; Task 2 runs the student's ``is_loopback_pair`` on the call's pairs
and on hostile ones, some drawn per student (:func:`drawn_pair_cases`); Task 3 letters its
statements per student (:func:`statement_letters`) and recomputes what the call shows, the rest
sealed. Task 4 is written and graded by hand.

Over 500 lines: one module per notebook, as every lab has; the Janus calls, their recorded
stand-ins and the tasks share one set of results.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from e2ee_lab.call.common import format_summary
from e2ee_lab.config import lab_size
from e2ee_lab.janus import JanusError, janus_problem, run_janus_call
from e2ee_lab.janus.admin import STREAM_COLUMNS
from e2ee_lab.janus.config import JanusConfig, find_lib_dir, render_config
from e2ee_lab.janus.shim import SOURCE as SHIM_SOURCE
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import Sealed
from e2ee_lab.labs.plain import call_safely
from e2ee_lab.labs.session import note_source
from e2ee_lab.media.scene import Scene, video_size
from e2ee_lab.webrtc.errors import WebRTCError

PARTICIPANTS = 3
SEED = 0
MODES = ("dtls-srtp", "e2ee")
PUBLISHER = "alice"
RECORDED = Path(__file__).resolve().parents[2] / "data" / "janus"


#: the helpers that ran (or loaded) the calls in this kernel (Task 1's prediction says whether it came first)
_calls_run: list[str] = []


def call_seconds() -> float:
    """How long the notebook's calls last: 2 s at ci size, 3 s at full size."""
    return 2.0 if lab_size() == "ci" else 3.0


def status() -> None:
    """Print one line: the Janus calls run here (and how they are fenced in), or why not."""
    problem = janus_problem()
    if problem is None:
        print("Janus runs here, in a private network namespace with only lo, loaded with the loopback shim.")
    else:
        print(f"No Janus call here ({problem}): the tables and figures below are the ones "
              f"data/make_janus.py recorded ({RECORDED.relative_to(RECORDED.parents[1])}/).")
    note_source("janus", "live" if problem is None else "recorded")


# --- the calls: live, or recorded ----------------------------------------------------------------------


@dataclass
class RecordedCall:
    """A Janus call as ``data/make_janus.py`` recorded it: the fields the notebook reads."""

    summary: dict
    recording: pd.DataFrame
    streams: pd.DataFrame
    picture: tuple[int, np.ndarray] | None = None  # (frame index, RGB) the recording gave back of PUBLISHER
    recorded: bool = field(default=True)

    @classmethod
    def load(cls, mode: str, folder: Path = RECORDED) -> RecordedCall:
        """Read ``folder/<mode>/``: ``summary.json``, ``recording.csv`` and, if present, ``picture.png``."""
        base = folder / mode
        summary = json.loads((base / "summary.json").read_text())
        picture = None
        if (base / "picture.png").exists():
            from PIL import Image

            picture = (int(json.loads((base / "picture.json").read_text())["frame_index"]),
                       np.asarray(Image.open(base / "picture.png").convert("RGB")))
        streams = pd.DataFrame(summary["janus"]["streams"], columns=list(STREAM_COLUMNS))
        return cls(summary, pd.read_csv(base / "recording.csv"), streams, picture)


def _picture(call) -> tuple[int, np.ndarray] | None:
    """(frame index, RGB) of PUBLISHER's frame the recording gave back, if it matched the sent one."""
    if isinstance(call, RecordedCall):
        return call.picture
    found = call.sfu.pictures.get(PUBLISHER)
    return (found[0], found[1]) if found and found[2] else None


def janus_calls(seed: int = SEED) -> dict:
    """One Janus call per mode (3 participants); the recorded calls where none can run here.

    Prints one line per call: its time, or why the recorded one is shown.
    """
    _calls_run.append("janus_calls")
    if janus_problem() is not None:
        print("no Janus call here: showing the recorded dtls-srtp and e2ee calls")
        return {mode: RecordedCall.load(mode) for mode in MODES}
    calls = {}
    for mode in MODES:
        try:
            calls[mode] = run_janus_call(mode, PARTICIPANTS, call_seconds(), seed=seed, size=lab_size())
            print(f"{mode}: {calls[mode].summary['elapsed_s']} s (Janus, setup and conversion included)")
        except (JanusError, WebRTCError) as err:  # a call that did not happen: say so, show the record
            print(f"the {mode} call through Janus did not run ({err.reason}: {str(err).splitlines()[0]}); "
                  "showing the recorded one")
            calls[mode] = RecordedCall.load(mode)
    return calls


def call_table(calls: Mapping) -> None:
    """Print the ``e2ee-lab call --sfu janus`` table of each call."""
    for mode, call in calls.items():
        tag = " (recorded)" if isinstance(call, RecordedCall) else ""
        print(f"--- {mode}{tag}\n{format_summary(call.summary)}\n")


# --- where Janus runs ----------------------------------------------------------------------------------


def fences() -> pd.DataFrame:
    """What keeps Janus's traffic on 127.0.0.1, from the outermost fence in."""
    rows = [
        ("network namespace (unshare -n)", "the call's child process and everything it starts",
         "no interface but lo exists: there is nowhere else to send to", "e2ee_lab/janus/isolated.py"),
        ("start refused outside", "JanusServer.start()", "Janus is not started where another interface exists",
         "e2ee_lab/janus/server.py"),
        ("generated configuration", "janus.jcfg, janus.transport.http.jcfg",
         "VideoRoom and HTTP only; HTTP and admin API on 127.0.0.1; ICE on lo; no STUN/TURN",
         "e2ee_lab/janus/config.py"),
        ("loopback shim (LD_PRELOAD)", "the Janus process only", "makes Janus gather 127.0.0.1 at all "
         "(it skips loopback interfaces)", "e2ee_lab/janus/loopback_shim.c"),
        ("SDP check", "every offer and answer", "the call stops if a candidate is not a loopback host candidate",
         "e2ee_lab/webrtc/sdp.py"),
    ]
    return pd.DataFrame(rows, columns=["fence", "applies to", "what it guarantees", "code"])


def _markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def shim_source():
    """The shim's C function (the part after the includes), as a Markdown code block."""
    text = SHIM_SOURCE.read_text()
    return _markdown("```c\n" + text[text.index("typedef"):].strip() + "\n```")


def config_excerpt():
    """The lines of a generated configuration that fence Janus in, as a Markdown code block (the
    admin secret and key shown are placeholders: each run draws its own)."""
    config = JanusConfig(run_dir=Path("/tmp/e2ee-lab-janus/run"), lib_dir=find_lib_dir() or Path("/usr/lib/janus"),
                         admin_secret="random-per-run", admin_key="random-per-run")
    files = render_config(config)
    keep = ("nat:", "ice_enforce_list", "ignore_mdns", "plugins:", "transports:", "disable", "ip =",
            "admin_ip", "port =", "admin_port", "admin_key", "}")
    parts = []
    for name in ("janus.jcfg", "janus.transport.http.jcfg", "janus.plugin.videoroom.jcfg"):
        lines = [line for line in files[name].splitlines() if line.strip().startswith(keep)]
        parts.append(f"# {name}\n" + "\n".join(lines))
    return _markdown("```\n" + "\n\n".join(parts) + "\n```")


# --- the recording -------------------------------------------------------------------------------------


def recording_table(calls: Mapping) -> pd.DataFrame:
    """Per mode and recorded stream: packets and frames Janus wrote, frames janus-pp-rec converted,
    and whether the file's header marks the stream end-to-end encrypted."""
    frames = []
    for mode, call in calls.items():
        table = call.recording[["publisher", "kind", "marked_e2ee", "packets_recorded", "frames_recorded",
                                "frames_converted", "janus_pp_rec"]].copy()
        table.insert(0, "mode", mode)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True).sort_values(["mode", "publisher", "kind"])
    return out.fillna({"janus_pp_rec": ""}).reset_index(drop=True)


def what_the_recording_gives(calls: Mapping) -> pd.DataFrame:
    """Per mode: frames Janus recorded, and what decoding its converted recording gives back."""
    rows = {}
    for mode, call in calls.items():
        s = call.summary["sfu"]
        rows[mode] = {"video frames recorded": s["video_frames_seen"],
                      "video frames janus-pp-rec wrote": s["video_frames_converted"],
                      "video frames libvpx decodes": s["video_frames_decoded"],
                      "… into the picture that was sent": s["video_frames_decodable"],
                      "audio frames recorded": s["audio_frames_seen"],
                      "audio frames libopus decodes": s["audio_frames_decoded"],
                      "… into the speech that was said": s["audio_frames_intelligible"],
                      "speech correlation (per publisher)": ", ".join(f"{k} {v:.2f}" for k, v in
                                                                      s["speech_correlation"].items()),
                      "janus-pp-rec said": ", ".join(f"{k!r} ×{v}" for k, v in s.get("janus_pp_rec", {}).items()
                                                     if v) or "nothing unusual"}
    return pd.DataFrame(rows)


def playback_figure(calls: Mapping):
    """The headline figure: PUBLISHER's picture as sent and as each mode's recording plays it
    back, and the recorded speech's correlation with what was said."""
    from e2ee_lab.analysis import plots

    found = {mode: _picture(call) for mode, call in calls.items()}
    index = next((f[0] for f in found.values() if f is not None), 0)
    s = next(iter(calls.values())).summary
    dims = video_size(s["size"])
    sent = Scene(0, seed=s["seed"], width=dims.width, height=dims.height, fps=dims.fps).rgb(index)
    notes = {mode: "no picture: libvpx refuses\nevery recorded frame" for mode, f in found.items() if f is None}
    correlation = {mode: call.summary["sfu"]["speech_correlation"] for mode, call in calls.items()}
    return plots.recording_playback(sent, {m: f[1] if f else None for m, f in found.items()}, notes,
                                    correlation, PUBLISHER)


# --- the admin API -------------------------------------------------------------------------------------

ADMIN_VIEW = ["participant", "role", "kind", "selected_pair", "srtp_profile", "packets_in", "packets_out",
              "bytes_in", "bytes_out", "nacks_out", "lost", "jitter_local", "rtt", "audio_level_dbov",
              "talking", "recording"]


def admin_streams(call) -> pd.DataFrame:
    """What Janus's admin API says about each stream of ``call`` (one row per stream)."""
    return call.streams[ADMIN_VIEW].reset_index(drop=True)


def metadata_in_both_modes(calls: Mapping) -> pd.DataFrame:
    """Per mode, the metadata Janus kept: pairs, profiles, packets, bytes, talking announcements."""
    rows = {}
    for mode, call in calls.items():
        st, j = call.streams, call.summary["janus"]
        talk = j.get("talking_events", {})
        rows[mode] = {"selected pairs (one per PeerConnection)": st.drop_duplicates(["participant", "role"]).shape[0],
                      "all pairs 127.0.0.1 <-> 127.0.0.1": all(_both_loopback(p) for p in st.selected_pair.dropna()),
                      "SRTP profile": ", ".join(j["srtp_profiles"]),
                      "packets Janus received": int(st.packets_in.fillna(0).sum()),
                      "bytes Janus received": int(st.bytes_in.fillna(0).sum()),
                      "packets Janus sent": int(st.packets_out.fillna(0).sum()),
                      "'talking' announcements": sum(v.get("talking", 0) for v in talk.values()),
                      "publishers flagged e2ee": int(st[st.role == "publisher"].drop_duplicates("participant").e2ee.sum()),
                      "recording files": int(st.recording.notna().sum())}
    return pd.DataFrame(rows)


def _both_loopback(pair: str) -> bool:
    """The reference parser of Task 2 (Janus's "ADDR:PORT [type,proto] <-> ADDR:PORT [type,proto]")."""
    sides = str(pair).split(" <-> ")
    if len(sides) != 2:
        return False
    for side in sides:
        address = side.split(" ")[0].rpartition(":")[0]
        try:
            if not ipaddress.ip_address(address).is_loopback:
                return False
        except ValueError:
            return False
    return True


# --- side by side with the lab's SFU --------------------------------------------------------------------


def capacity(calls: Mapping) -> pd.DataFrame:
    """Janus (the dtls-srtp call) and the lab's SFU on the same room, packets and rate: µs of CPU
    per forwarded packet and packets per second per core (:mod:`e2ee_lab.janus.capacity`; the lab
    SFU's rows are medians of 3 runs at full size, one run at ci size); the recorded table where
    the call was recorded."""
    call = calls["dtls-srtp"]
    if isinstance(call, RecordedCall):
        table = pd.read_csv(RECORDED / "capacity.csv")
    else:
        from e2ee_lab.janus.capacity import capacity_table

        table = capacity_table(call, repeat=1 if lab_size() == "ci" else 3)  # ci: one run of each load
    return table


def capacity_figure(table: pd.DataFrame):
    from e2ee_lab.analysis import plots

    return plots.sfu_cpu(table)


# --- Task 2 (build): is a selected pair loopback? --------------------------------------------------------------

PAIR_CASES: tuple[tuple[str, bool, str], ...] = (
    ("127.0.0.1:40000 [host,udp] <-> 10.0.0.7:51000 [host,udp]", False, "a pair to another machine's address"),
    ("127.0.0.1.example.net:40000 [host,udp] <-> 127.0.0.1:51000 [host,udp]", False,
     "a host name that starts like 127.0.0.1 (only an address can be proven loopback)"),
    ("0.0.0.0:40000 [host,udp] <-> 127.0.0.1:51000 [host,udp]", False, "0.0.0.0, the any-address"),
    ("::1:40000 [host,udp] <-> ::1:51000 [host,udp]", True, "IPv6 loopback (::1) on both sides"),
    ("127.0.0.1:40000 [host,udp]", False, "one side only"),
    ("", False, "an empty answer"),
    ("n/a", False, "no pair at all"),
)


def drawn_pair_cases() -> list[tuple[str, bool, str]]:
    """Task 2's cases drawn for this student (``labs.params("11")``), so no table of answers to the
    fixed cases passes: a pair of other 127/8 addresses, a pair with a private address on one side, a
    host name that starts like a loopback address, and ``localhost``, each with ports of its own."""
    rng = params("11").rng("task1 pairs")

    def port() -> int:
        return rng.randrange(1024, 65536)

    def side(address: str) -> str:
        return f"{address}:{port()} [host,udp]"

    loop = [f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(2)]
    private = rng.choice([f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                          f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                          f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"])
    name = f"127.0.0.{rng.randrange(1, 255)}.{rng.choice(['cdn', 'edge', 'relay', 'turn'])}{rng.randrange(100)}.example.net"
    pairs = [(f"{side(loop[0])} <-> {side(loop[1])}", True, "another pair of 127/8 addresses (all of 127/8 is loopback)"),
             (f"{side(loop[0])} <-> {side(private)}", False, "a private address of another machine on one side"),
             (f"{side(name)} <-> {side(loop[1])}", False, "a host name that starts like a loopback address"),
             (f"{side('localhost')} <-> {side(loop[0])}", False,
              "the name localhost (a name is resolved by whoever reads it: only an address is proof)")]
    rng.shuffle(pairs)
    return pairs


def _pair_cases(call) -> list[tuple[str, bool, str]]:
    pairs = [str(p) for p in call.streams.selected_pair.dropna().unique()]
    return [(p, True, "a pair of this call") for p in pairs] + list(PAIR_CASES) + drawn_pair_cases()


def probe_pair_parser(func: Callable[[str], bool], call) -> dict:
    """Task 2's probe: the student's parser on the call's own selected pairs, on :data:`PAIR_CASES`
    and on this student's :func:`drawn_pair_cases`."""
    return {text: call_safely(func, text) for text, _, _ in _pair_cases(call)}


@check(probe=probe_pair_parser)
def check_pair_parser(func: Callable[[str], bool] | None, call) -> Feedback:
    """Task 2 (build): the student's ``is_loopback_pair(pair)`` on the call's own selected pairs and on
    strings an untrusted SFU could answer (:data:`PAIR_CASES`); a build task: the check sees what
    :func:`probe_pair_parser` recorded."""
    if func is None:
        return unanswered("Task 2")
    if not isinstance(func, Probed) or not isinstance(func.outputs, dict):
        return not_yet("is_loopback_pair must be a function taking one string")
    pairs = [str(p) for p in call.streams.selected_pair.dropna().unique()]
    cases = _pair_cases(call)
    for text, want, what in cases:
        out = func.outputs.get(text)
        if not isinstance(out, dict) or ("value" not in out and "raised" not in out):
            return not_yet("is_loopback_pair must be a function taking one string")
        if "raised" in out:
            return not_yet(f"your function raised {out['raised']} on {text!r} ({what}); Janus's "
                           "answers are untrusted input: return False for anything you cannot parse")
        got = out["value"]
        if got is not want:
            hint = " (return True or False, not a truthy value)" if isinstance(got, (int, str)) and bool(got) is want else ""
            return not_yet(f"is_loopback_pair({text!r}) gave {got!r}, expected {want}: {what}{hint}")
    refused = sum(1 for _, want, _ in cases if not want)
    return correct(f"all {len(pairs)} pairs of this call are 127.0.0.1 <-> 127.0.0.1, and your parser refuses "
                   f"the {refused} crafted answers that are not loopback. That is how the tests prove a "
                   "call stayed on loopback: by address, since traffic to the machine's own address also travels on lo")


# --- Task 1 (predict): what Janus's recording gives back ------------------------------------------------

#: Task 1's keys and the answers each allows.
RECORDING_PREDICTION = {
    "e2ee: janus-pp-rec writes the video file": ("yes", "no"),
    "e2ee: the video file shows the picture": ("yes", "no"),
    "e2ee: the audio file plays": ("speech", "noise", "nothing"),
    "dtls-srtp: the video file shows the picture": ("yes", "no"),
}


def predict(prediction: dict | None) -> dict | None:
    """Take Task 1's ``prediction`` and say whether the Janus calls ran before it; returns it (the
    note is printed, so the saved notebook shows whether the prediction came first)."""
    if prediction is None or isinstance(prediction, dict) and all(v is None for v in prediction.values()):
        print("no prediction stored yet: fill in the dict, then run this cell before section 2.")
    elif _calls_run:
        print("prediction stored AFTER the Janus calls ran: for a real prediction, restart the kernel and run "
              "this cell before section 2.")
    else:
        print("prediction stored before the Janus calls ran.")
    return prediction


def recording_outcome(calls: Mapping, key: str) -> str:
    """What Janus's converted recording gave back for ``key`` of :data:`RECORDING_PREDICTION`, from
    the call's own counts (``summary["sfu"]``)."""
    mode, what = key.split(": ", 1)
    s = calls[mode].summary["sfu"]
    if what == "janus-pp-rec writes the video file":
        return "yes" if s["video_frames_converted"] > 0 else "no"
    if what == "the video file shows the picture":
        return "yes" if s["video_frames_decodable"] > 0 else "no"
    seen = max(int(s["audio_frames_seen"]), 1)
    if s["audio_frames_intelligible"] / seen > 0.5:
        return "speech"
    return "noise" if s["audio_frames_decoded"] / seen > 0.5 else "nothing"


_RECORDING_HINTS = {
    "e2ee: janus-pp-rec writes the video file": "janus-pp-rec repackages the recorded RTP payloads into a container; "
                                                "it does not decode them, so ciphertext does not stop it (it only "
                                                "complains)",
    "e2ee: the video file shows the picture": "Janus holds every leg's SRTP keys but no frame key: what it recorded "
                                              "after SRTP is SFrame ciphertext, which libvpx refuses",
    "e2ee: the audio file plays": "Opus has no integrity check: its decoder makes sound out of almost any bytes, "
                                  "which is not the speech that was said (Lab 01)",
    "dtls-srtp: the video file shows the picture": "without frame encryption Janus records each frame as the "
                                                   "encoder made it, after removing SRTP",
}


@check
def check_recording_prediction(answer, calls) -> Feedback:
    """Task 1 (predict): what Janus's recording gives back (:data:`RECORDING_PREDICTION`), compared
    with the two calls (:func:`recording_outcome`)."""
    if answer is None or isinstance(answer, dict) and all(v is None for v in answer.values()):
        return unanswered("Task 1")
    if not isinstance(answer, dict) or set(answer) != set(RECORDING_PREDICTION):
        return not_yet("the prediction is a dict with the keys "
                       f"{', '.join(map(repr, RECORDING_PREDICTION))}.")
    for key, allowed in RECORDING_PREDICTION.items():
        if answer[key] not in allowed:
            return not_yet(f"{key!r} is one of {', '.join(map(repr, allowed))}.")
    for key in RECORDING_PREDICTION:
        if answer[key] != recording_outcome(calls, key):
            return not_yet(f"the calls differ from your prediction for {key!r}: {_RECORDING_HINTS[key]}. Keep your "
                           "prediction as it was stored; this check only compares it with the calls.")
    return correct("you predicted all four: the operator's own tool turns the e2ee recording into a file of the "
                   "right length that shows no picture and plays noise, while the dtls-srtp recording is the call.")


# --- Task 3: what Janus's operator knows about the e2ee call --------------------------------------

#: Task 3's statements by id. The first six are recomputed from the student's own e2ee call
#: (:func:`kept_in_e2ee`); the last three follow from how the call is built and are sealed (``11/T3/<id>``).
METADATA_STATEMENTS = {
    "addresses": "which participants are connected, and from which address and port",
    "counters": "how many packets and bytes each stream carried",
    "talking": "who is talking, announced to the room",
    "pictures": "the pictures each participant sends",
    "srtp-profile": "the SRTP profile protecting each leg",
    "words": "the words each participant says",
    "kid": "whose frame key encrypted each recorded frame, and its counter",
    "srtp-keys": "the SRTP keys of every leg, to decrypt what it captures",
    "frame-keys": "the frame keys the members agreed for the call",
}
#: the statements whose truth the e2ee call's own data shows (the others are sealed)
FROM_THE_CALL = ("addresses", "counters", "talking", "pictures", "srtp-profile", "words")
HELD = "held"


def statement_letters() -> dict[str, str]:
    """``{letter: statement id}`` in this student's order (``labs.params("11")``)."""
    order = params("11").shuffled("task3 order", list(METADATA_STATEMENTS))
    return {chr(ord("A") + i): sid for i, sid in enumerate(order)}


def metadata_statements() -> str:
    """The statements of Task 3 in this student's order, one per line (``print`` it)."""
    return "\n".join(f"{letter}: {METADATA_STATEMENTS[sid]}" for letter, sid in statement_letters().items())


def kept_in_e2ee(call) -> set[str]:
    """The statement ids of :data:`FROM_THE_CALL` that the e2ee call's own data shows Janus holding."""
    st, s = call.streams, call.summary
    kept = set()
    if st.selected_pair.notna().any():
        kept.add("addresses")
    if (st.packets_in.fillna(0) > 0).any() and (st.bytes_in.fillna(0) > 0).any():
        kept.add("counters")
    if any(v.get("talking", 0) for v in s["janus"].get("talking_events", {}).values()):
        kept.add("talking")
    if s["sfu"]["video_frames_decodable"] > 0:
        kept.add("pictures")
    if st.srtp_profile.notna().any():
        kept.add("srtp-profile")
    if s["sfu"]["audio_frames_intelligible"] > 0:
        kept.add("words")
    return kept


def _held(sid: str, call) -> bool:
    if sid in FROM_THE_CALL:
        return sid in kept_in_e2ee(call)
    return Sealed(f"11/T3/{sid}").opens(HELD) is not None


_METADATA_HINTS = {
    "pictures": "the e2ee recording gives back no picture and no speech: see what_the_recording_gives",
    "words": "the e2ee recording gives back no picture and no speech: see what_the_recording_gives",
    "talking": "look at the 'talking' announcements: VideoRoom reads the RFC 6464 audio level, which SFrame "
               "leaves in the clear RTP header extension",
    "frame-keys": "which path did the key messages take in this call (section 2), and could Janus have read them?",
    "kid": "Janus recorded every frame as it forwarded it: which part of an SFrame frame travels in the clear "
           "(Lab 03), and what does it name in the lab's KID layout?",
    "srtp-keys": "who is the DTLS peer of every leg, and what does DTLS-SRTP give both ends of a leg?",
}


@check
def check_metadata(answer, call) -> Feedback:
    """Task 3: the letters of everything Janus's operator held about the e2ee call, in this student's
    lettering (:func:`statement_letters`); recomputed from the call where its data shows it, sealed
    where it follows from how the call is built."""
    if answer is None:
        return unanswered("Task 3")
    if not isinstance(answer, (set, list, tuple, frozenset)) or not all(isinstance(a, str) for a in answer):
        return not_yet("answer with a set of letters, e.g. {'A', 'B'}")
    letters = statement_letters()
    given = {a.strip().upper() for a in answer}
    if not given <= set(letters):
        return not_yet(f"use letters from {', '.join(letters)}")
    chosen = {letters[g] for g in given}
    wrong = {sid for sid in METADATA_STATEMENTS if (sid in chosen) != _held(sid, call)}
    if not wrong:
        return correct("Janus held everything but the pictures, the words and the frame keys. SFrame encrypts "
                       "frames and its keys never pass through the SFU; its own header stays readable (RFC 9605 §7.1), Janus is the DTLS peer of every "
                       "leg, and the addresses, the counters and the audio level in the RTP header extension were "
                       "never SFrame's to hide")
    for sid in ("pictures", "words", "talking", "frame-keys", "kid", "srtp-keys"):
        if sid in wrong:
            return not_yet(_METADATA_HINTS[sid])
    return not_yet("check each statement against the admin table of the e2ee call (section 5) and Janus's "
                   "recording (section 3)")
