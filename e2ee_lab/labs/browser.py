"""Notebook 10 (a browser participant): headless Chromium in the aiortc call, and the task checks.

The helpers show three pieces of code that do one job (the classic Insertable Streams sample's
sender, the lab's Encoded Transform worker and page, the Python transform on aiortc), run the
browser calls the notebook discusses (:func:`browser_calls`: one e2ee and one dtls-srtp call;
:func:`late_transform`: pitfall 1; :func:`loss_comparison`: pitfall 2) and shape their results:
the ``e2ee-lab call`` table, the page's screenshot, the three views of the browser's video (wire
without keys, SFU with leg keys, receivers with frame keys), and which bit of RFC 9605's header
Chrome's VP8 depacketizer (RFC 7741 §4.2-4.3) takes for the key-frame flag after a loss: bit 0 of
the SFrame config byte (RFC 9605 §4.3; bit 0 is the least significant here, where the RFCs' figures
number bits from the left and draw it last), read as the VP8 frame tag's P bit (RFC 6386 §9.1); and the
fix measured beside it: the SFrame RTP payload format (:func:`payload_format_loss`). Where Chromium
is not installed every helper prints one line saying so and returns the figures recorded by
``data/make_browser.py`` (:data:`RECORDED`, from ``data/browser/lab10.json``), so the notebook
still runs top to bottom.

The tasks: Task 1 compares a prediction stored before the calls (:func:`predict`) with the views
table; Task 2 runs the student's ``looks_like_key_frame(ctr)`` on counters of every length drawn
per student (:func:`key_frame_ctrs`); Task 3 asks what the receiver does after a lost frame in six
scenarios drawn per student (:func:`loss_scenarios`), recomputed with :func:`recovery_after_loss`.
Task 4 is written and graded by hand.

Over 500 lines: one module per notebook, as every lab has; its four calls, their recorded stand-ins
and the four tasks share one set of results.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from e2ee_lab.analysis import loss_recovery
from e2ee_lab.browser import BrowserError, chromium_version, find_chromium, netns_problem, run_browser_call
from e2ee_lab.browser.server import static_file
from e2ee_lab.browser.tally import three_views
from e2ee_lab.call.common import format_summary
from e2ee_lab.config import lab_size
from e2ee_lab.crypto.keys import kid_for
from e2ee_lab.crypto.sframe import encode_header
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import call_safely
from e2ee_lab.labs.session import note_source
from e2ee_lab.webrtc.errors import WebRTCError

SEED = 0
SIZE = "ci"  # the page and Alice share two cores with Chromium: the small picture at any lab size
CALL_SECONDS = 2.5
#: the loss runs: name -> (call mode, media seconds, drop at (s), Alice's video CTR jump, 0: none).
#: Alice's video has its own KID and counter (15 frames/s): about 15 at the drop without a jump;
#: the jumps (``run_browser_call(video_ctr_jump=...)``, half a second in) put it where 20 s or 73
#: minutes of video would, to reach a 2- or 3-byte CTR.
LOSS = {
    "clear-prefix": ("clear-prefix", 3.5, 1.0, 0),
    "e2ee, 1-byte CTR": ("e2ee", 3.5, 1.0, 0),
    "e2ee, 2-byte CTR": ("e2ee", 3.5, 1.0, 300),
    "e2ee, 3-byte CTR": ("e2ee", 3.5, 1.0, 65_530),
}
NEVER = "never"
#: the two rows of the pitfall-1 table: where the receive transform was attached
ATTACH_POINTS = ("before the answer", "in ontrack, after negotiation")
#: Alice's video KID in the lab's browser call: epoch 1 (the page's join), video, member 0 = 0x1100
ALICE_VIDEO_KID = kid_for(1, 0, "video")
RECORDING = Path(__file__).resolve().parents[2] / "data" / "browser" / "lab10.json"
#: what the calls measured when data/make_browser.py last ran (shown where Chromium is absent)
RECORDED = json.loads(RECORDING.read_text(encoding="utf-8"))


#: the helpers that ran a call (or showed a recorded one) in this kernel, in order (Task 1's
#: prediction says whether it came before them)
_calls_run: list[str] = []


def available() -> bool:
    """True where Chromium is installed (the browser calls run)."""
    return find_chromium() is not None


def status() -> None:
    """Print one line: which Chromium runs the calls and how they are kept on loopback, or why not."""
    if not available():
        print("Chromium is not installed here (apt-get install chromium): the browser calls are skipped "
              "and the figures below are the ones recorded on the reference machine.")
        note_source("browser", "recorded")
        return
    note_source("browser", "live")
    problem = netns_problem()
    where = ("in a network namespace with only lo" if problem is None
             else f"in this namespace ({problem}); the page strips non-loopback candidates")
    print(f"{chromium_version()}: the calls run {where}.")


# --- three pieces of code ----------------------------------------------------------------------------

SEED_SNIPPET = """\
// main thread: one sender's encoded frames go to a worker (Chrome's createEncodedStreams)
const senderStreams = sender.createEncodedStreams();
const { readable, writable } = senderStreams;
worker.postMessage({ operation: 'encode', readable, writable }, [readable, writable]);

// worker: every frame passes through a TransformStream on its way to the packetizer
onmessage = ({ data }) => {
  if (data.operation === 'encode') {
    const transformer = new TransformStream({ transform: encodeFunction });
    data.readable.pipeThrough(transformer).pipeTo(data.writable);
  }
};
// encodeFunction(encodedFrame, controller): rewrite encodedFrame.data, then controller.enqueue(encodedFrame)
"""


def _markdown(text: str):
    from IPython.display import Markdown

    return Markdown(text)


def _code(text: str, language: str) -> str:
    return f"```{language}\n{text.rstrip()}\n```"


def seed_snippet():
    """The sender side of the classic Insertable Streams sample (the WebRTC samples' end-to-end
    encryption demo), shortened."""
    return _markdown(_code(SEED_SNIPPET, "javascript"))


def js_excerpt(name: str, start: str, end: str | None = None) -> str:
    """Lines of the package's ``static/name`` from the first line containing ``start`` up to (not
    including) the first later line containing ``end`` (None: to the end of the file)."""
    lines = static_file(name).splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next((i for i in range(first + 1, len(lines)) if end and end in lines[i]), len(lines))
    return "\n".join(lines[first:last])


def our_worker():
    """The page's ``attach`` (client.js) and the worker's ``pipe`` and entry points (worker.js)."""
    page = js_excerpt("client.js", "function attach(", "// The SFU's offer")
    worker = js_excerpt("worker.js", "function pipe(")
    return _markdown("**client.js** (main thread)\n\n" + _code(page, "javascript")
                     + "\n\n**worker.js**\n\n" + _code(worker, "javascript"))


def python_transform():
    """The Python side: the sender transform on aiortc and the hook that puts it before the packetizer."""
    from e2ee_lab.crypto.transforms import SFrameSender
    from e2ee_lab.webrtc.transform import SenderTransform, attach_sender

    parts = [inspect.getsource(f) for f in (SenderTransform.__call__, attach_sender, SFrameSender.transform)]
    return _markdown(_code("\n".join(inspect.cleandoc("\n" + p) if p.startswith(" ") else p for p in parts),
                           "python"))


# --- the calls ----------------------------------------------------------------------------------------


def _run(mode: str, seconds: float, **kwargs):
    try:
        return run_browser_call(mode, seconds=seconds, seed=SEED, size=SIZE, **kwargs)
    except (BrowserError, WebRTCError) as err:  # a call that did not happen: say so, show the record
        print(f"the {mode} browser call did not run ({err.reason}: {str(err).splitlines()[0]}); "
              "showing the recorded figures")
        return None


def browser_calls(seconds: float = CALL_SECONDS) -> dict | None:
    """One e2ee and one dtls-srtp call with Alice and the page (``lo`` sniffed where permitted);
    None where Chromium is not installed (one line printed)."""
    _calls_run.append("browser_calls")
    if not available():
        print("no Chromium: no browser call; the tables below are the recorded ones")
        return None
    calls = {mode: _run(mode, seconds, sniff_lo=True) for mode in ("e2ee", "dtls-srtp")}
    return calls if all(calls.values()) else None


def call_table(calls: dict | None) -> None:
    """Print the e2ee call's ``e2ee-lab call`` table (the page is the ``chromium`` row)."""
    print(format_summary(calls["e2ee"].summary) if calls else "(recorded) " + RECORDED["table"])


def screenshot(calls: dict | None, mode: str = "e2ee"):
    """The PNG the page rendered at the end of the ``mode`` call (an IPython Image), or one line."""
    if not calls:
        return _markdown("*No screenshot: Chromium is not installed here.*")
    from IPython.display import Image

    return Image(data=calls[mode].screenshot, format="png")


def views_table(calls: dict | None) -> pd.DataFrame:
    """Who decoded the browser's video, per mode: "decoded into the picture / frames seen"."""
    if not calls:
        return pd.DataFrame(RECORDED["views"])
    out = {}
    for mode, result in calls.items():
        t = three_views(result)
        out[mode] = {view: "not captured" if pd.isna(row["frames seen"])
                     else f"{int(row['decoded into the picture'])}/{int(row['frames seen'])}"
                     for view, row in t.iterrows()}
    return pd.DataFrame(out)


def late_transform(calls: dict | None) -> pd.DataFrame:
    """Pitfall 1: the receive transform set before the answer (the e2ee call) and set once
    negotiation is over (a call with ``transform_in_ontrack=True``), RTCRtpScriptTransform both."""
    late = _run("e2ee", 1.5, api="script", transform_in_ontrack=True) if calls else None
    if late is None:
        return pd.DataFrame(RECORDED["late"]).set_index("receive transform attached")
    rows = []
    for where, result in zip(ATTACH_POINTS, (calls["e2ee"], late)):
        leg = next(iter(result.summary["python_to_browser"].values()))
        rows.append({"receive transform attached": where, "frames through the worker": leg["transform_frames"],
                     "frames Chrome decoded": leg["decoded"], "PLIs sent": leg["plis"]})
    return pd.DataFrame(rows).set_index("receive transform attached")


@dataclass
class LossComparison:
    """Pitfall 2: one frame dropped toward the page, clear-prefix and SFrame with Alice's video
    counter at three lengths (``table``, one row per :data:`LOSS` run); the page's render times in
    seconds relative to the drop (``timeline``; empty when recorded)."""

    table: pd.DataFrame
    timeline: dict[str, list[float]] = field(default_factory=dict)

    def figure(self):
        """Rendered frames over time for each framing, the drop at 0 (matplotlib Figure)."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 2.6))
        for y, (mode, times) in enumerate(self.timeline.items()):
            ax.plot(times, [y] * len(times), "|", markersize=14, label=mode)
        ax.axvline(0, color="red", linestyle="--", label="frame dropped by the SFU")
        ax.set_yticks(range(len(self.timeline)), list(self.timeline))
        ax.set_xlabel("seconds after the dropped frame")
        ax.set_title("frames Chrome rendered from Alice" if self.timeline else "recorded run: no timeline")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        return fig


def loss_comparison(live: bool | None = None) -> LossComparison:
    """Drop one of Alice's video frames toward the page, 1 s into each :data:`LOSS` run: what the
    worker decrypted, what Chrome decoded, the lost frame's SFrame CTR and what Chrome's VP8
    depacketizer reads its first byte as, and when the page rendered again. ``live``: run the calls
    (default: where Chromium is installed and the lab size is full; tests measure them at ci size)."""
    recorded = LossComparison(loss_table(RECORDED["loss"]))
    if live is None:
        live = available() and lab_size() != "ci"
        if available() and not live:
            print("lab size ci: the loss runs (4 calls of 3.5 s) are the recorded ones; "
                  "run at full size (E2EE_LAB_SIZE=full, make run) to measure them here")
    if not live:
        return recorded
    rows, timeline = [], {}
    for name, (mode, seconds, drop_at, jump) in LOSS.items():
        result = _run(mode, seconds, drop_at=drop_at, video_ctr_jump=jump)
        if result is None:
            return recorded
        rows.append(loss_row(name, result))
        remote = next(r for r in result.stats["remote"] if r["kind"] == "video")
        drop_ms = _drop_ms(result)
        timeline[name] = [(t - drop_ms) / 1000 for t in remote["renderTimes"]] if drop_ms else []
    return LossComparison(loss_table(rows), timeline)


def loss_row(name: str, result) -> dict:
    """One row of the loss table from a browser call with ``drop_at``."""
    leg = next(iter(result.summary["python_to_browser"].values()))
    back, sframe = leg["loss"]["recovered_after_s"], leg["loss"].get("sframe") or {}
    return {"run": name, "frames sent": leg["sent"], "decrypted by the worker": leg["decrypted"],
            "decoded by Chrome": leg["decoded"], "key frames decoded": leg["key_frames_decoded"],
            "PLIs": leg["plis"], "lost frame's KID": sframe.get("kid_hex", "none (no KID)"),
            "lost frame's CTR": sframe.get("ctr", "none (IV trailer)"),
            "Chrome reads it as": sframe.get("reads_as", "its real frame type"),
            "recovered after (s)": NEVER if back is None else back}


def loss_table(rows: list[dict]) -> pd.DataFrame:
    """The loss rows as the notebook shows them, one per run."""
    return pd.DataFrame(rows).set_index("run")


def _drop_ms(result) -> float | None:
    leg = next(iter(result.summary["python_to_browser"].values()))
    return leg["loss"].get("drop_wall_ms")


# --- the fix: the SFrame RTP payload format ------------------------------------------------------


def payload_format_loss() -> pd.DataFrame:
    """The same loss (one video frame, a 2-byte CTR: 300, where Chrome stayed stuck) with the SFrame
    RTP payload format (draft-ietf-avtcore-rtp-sframe-02, per-frame and per-packet) against SFrame
    inside the VP8 payload format, on the lab's packetizers and a libwebrtc-like receiver
    (:func:`e2ee_lab.analysis.loss_recovery.loss_comparison`, Alice's video KID; simulated time,
    real VP8 and SFrame)."""
    frames = 150 if lab_size() == "full" else 60
    return loss_recovery.loss_comparison(frames=frames, drop_frame=20, start_ctr=300)


def loss_side_by_side(loss: LossComparison, fix: pd.DataFrame) -> pd.DataFrame:
    """Chrome's measured recovery (pitfall 2, one row per :data:`LOSS` run) beside the lab model's
    (:func:`payload_format_loss`), indexed by (packetization, receiver), with the lost frame's CTR."""
    rows = [{"packetization": f"VP8 payload format, {run}", "receiver": "Chromium 156 (measured)",
             "lost frame's CTR": row.get("lost frame's CTR", ""), "recovered after (s)": row["recovered after (s)"]}
            for run, row in loss.table.iterrows()]
    for mode, run in fix.iterrows():
        ctr = int(run["drop_ctr"])
        name = f"VP8 payload format, e2ee, {_ctr_bytes(ctr)}-byte CTR" if mode == "vp8" \
            else f"SFrame payload format, {mode}"
        back = run["recovered_after_s"]
        rows.append({"packetization": name, "receiver": "libwebrtc-like model (lab)", "lost frame's CTR": ctr,
                     "recovered after (s)": NEVER if pd.isna(back) else round(float(back), 2)})
    return pd.DataFrame(rows).set_index(["packetization", "receiver"])


def _ctr_bytes(ctr: int) -> int:
    """The CTR's length in bytes as :data:`LOSS` names runs (RFC 9605 §4.3's minimal encoding from
    CTR 8 on; a CTR below 8, held in the config byte, counts as 1)."""
    return max(1, (ctr.bit_length() + 7) // 8)


# --- the header byte Chrome misreads --------------------------------------------------------------


def sframe_header(kid: int, ctr: int) -> bytes:
    """The RFC 9605 §4.3 header for (KID, CTR), minimal encoding (the lab's codec)."""
    return encode_header(kid, ctr)


def vp8_reading(kid: int = ALICE_VIDEO_KID,
                ctrs: tuple[int, ...] = (0, 1, 2, 7, 8, 75, 255, 256, 300, 65535, 65536, 2**24 - 1, 2**24)) -> pd.DataFrame:
    """What a VP8 depacketizer reading the SFrame header's first byte as the VP8 frame tag's first
    byte (RFC 6386 §9.1: bit 0 is the P bit, 0 = key frame) concludes, per counter value."""
    rows = []
    for ctr in ctrs:
        first = sframe_header(kid, ctr)[0]
        rows.append({"CTR": ctr, "header": sframe_header(kid, ctr).hex(), "first byte": f"{first:08b}",
                     "bit 0, the least significant (VP8 P bit)": first & 1, "Chrome reads": "key frame" if first & 1 == 0 else "delta frame"})
    return pd.DataFrame(rows).set_index("CTR")


# --- Task 1 (predict): who decodes the browser's video -------------------------------------------------

#: Task 1's keys: (who, mode); the view rows of :func:`views_table` they are compared with.
PREDICTION_KEYS = ("SFU, e2ee", "SFU, dtls-srtp", "Alice, e2ee", "Alice, dtls-srtp")
OUTCOMES = ("the picture", "nothing")


def predict(prediction: dict | None) -> dict | None:
    """Take Task 1's ``prediction`` and say whether the browser calls ran before it; returns it.

    The note is printed, so the saved notebook shows whether the prediction came first; the check
    compares the prediction with the calls whatever the order."""
    if prediction is None or isinstance(prediction, dict) and all(v is None for v in prediction.values()):
        print("no prediction stored yet: fill in the dict, then run this cell before section 2.")
    elif _calls_run:
        print("prediction stored AFTER the browser calls ran: for a real prediction, restart the kernel and "
              "run this cell before section 2.")
    else:
        print("prediction stored before the browser calls ran.")
    return prediction


def _view_row(views: pd.DataFrame, who: str) -> str:
    if who == "SFU":
        return "SFU (leg keys)"
    receivers = [r for r in views.index if str(r).startswith("receiver ")]
    return next((r for r in receivers if "alice" in str(r)), receivers[0])


def view_outcome(views: pd.DataFrame, key: str) -> str:
    """What ``key``'s view (``"SFU, e2ee"``) made of the browser's video: :data:`OUTCOMES`, from
    the "decoded into the picture / frames seen" cell of :func:`views_table`."""
    who, mode = key.split(", ")
    decoded = int(str(views.loc[_view_row(views, who), mode]).split("/")[0])
    return OUTCOMES[1] if decoded == 0 else OUTCOMES[0]


_PREDICT_HINTS = {
    "SFU, e2ee": "in e2ee mode the SFU still removes SRTP on every leg, but the page's Worker encrypted each frame "
                 "with a frame key the SFU never received: its VP8 decoder gets SFrame ciphertext",
    "SFU, dtls-srtp": "the SFU is the DTLS peer of the page's leg (Lab 09): after SRTP unprotect it holds each frame "
                      "as Chrome's encoder made it",
    "Alice, e2ee": "the page ran the key agreement with Alice in WebCrypto: she holds its frame key, and the "
                   "Worker's SFrame is the same RFC 9605 as the Python code's",
    "Alice, dtls-srtp": "without frame encryption a member decodes what the SFU forwarded to her, as any receiver does",
}


@check
def check_prediction(answer, views: pd.DataFrame) -> Feedback:
    """Task 1 (predict): for the SFU and Alice in each mode, whether they decode the browser's video
    into the picture (:data:`PREDICTION_KEYS`), compared with :func:`views_table` of the calls."""
    if answer is None or isinstance(answer, dict) and all(v is None for v in answer.values()):
        return unanswered("Task 1")
    if not isinstance(answer, dict) or set(answer) != set(PREDICTION_KEYS):
        return not_yet(f"the prediction is a dict with the keys {', '.join(map(repr, PREDICTION_KEYS))}.")
    for key in PREDICTION_KEYS:
        if answer[key] not in OUTCOMES:
            return not_yet(f"{key!r} is one of {', '.join(map(repr, OUTCOMES))}.")
    for key in PREDICTION_KEYS:
        if answer[key] != view_outcome(views, key):
            return not_yet(f"the calls differ from your prediction for {key!r}: {_PREDICT_HINTS[key]}. Keep your "
                           "prediction as it was stored; this check only compares it with the calls.")
    return correct("you predicted all four: a browser sender changes nothing. The SFU decodes the page's video when "
                   "only SRTP protects the legs and none of it with SFrame, while Alice, who holds the page's frame "
                   "key, decodes it in both modes.")


# --- Task 2 (build): what Chrome's VP8 depacketizer reads in the SFrame header ------------------------

#: the counters every student's function is tried on: both sides of every change of the C field
KEY_FRAME_EDGES = (0, 1, 2, 3, 6, 7, 8, 255, 256, 65535, 65536, 2**24 - 1, 2**24, 2**32 - 1, 2**32, 2**64 - 1)


def key_frame_ctrs() -> tuple[int, ...]:
    """Task 2's counters for this student: :data:`KEY_FRAME_EDGES` and two drawn counters of every
    length from 1 to 8 bytes (``labs.params("10")``), so no table of outputs passes."""
    rng = params("10").rng("task2 counters")
    drawn = {rng.randrange(max(9, 1 << 8 * (n - 1)), 1 << 8 * n) for n in range(1, 9) for _ in range(2)}
    return tuple(sorted(set(KEY_FRAME_EDGES) | drawn))


def probe_key_frame_bit(func, *lab_objects) -> dict:
    """Task 2's probe: the student's function on every counter of :func:`key_frame_ctrs`, as plain data."""
    return {ctr: call_safely(func, ctr) for ctr in key_frame_ctrs()}


def reads_as_key_frame(ctr: int, kid: int = ALICE_VIDEO_KID) -> bool:
    """True when bit 0 (the least significant) of the (KID, CTR) header's first byte is 0: what a VP8
    depacketizer takes for the P bit of a key frame (RFC 6386 §9.1)."""
    return sframe_header(kid, ctr)[0] & 1 == 0


@check(probe=probe_key_frame_bit)
def check_key_frame_bit(func) -> Feedback:
    """Task 2 (build): ``func(ctr) -> bool``, True when Chrome would read the SFrame header of Alice's
    video (KID :data:`ALICE_VIDEO_KID`) as the first byte of a VP8 key frame; run on this student's
    counters (:func:`key_frame_ctrs`; the check sees what :func:`probe_key_frame_bit` recorded)."""
    if func is None:
        return unanswered("Task 2")
    if not isinstance(func, Probed) or not isinstance(func.outputs, dict):
        return not_yet("write a function of one argument, ctr, returning True or False")
    values = [out.get("value") for out in func.outputs.values() if isinstance(out, dict)]
    if len(values) == len(key_frame_ctrs()) and all(v is False for v in values):
        return not_yet("your function never says key frame. Which bit did you read? Bit 0 here is the least "
                       "significant (byte & 1); RFC 9605's figure numbers bits from the left, and its bit 0 is X")
    for ctr in key_frame_ctrs():
        out = func.outputs.get(ctr)
        if not isinstance(out, dict) or ("value" not in out and "raised" not in out):
            return not_yet(f"no result for ctr={ctr}: write a function of one argument, ctr")
        if "raised" in out:
            return not_yet(f"your function raised {out['raised']} for ctr={ctr}: every counter from 0 to 2**64 - 1 "
                           "is a valid SFrame CTR")
        if not isinstance(out["value"], bool):
            return not_yet(f"for ctr={ctr} your function returned {out['value']!r}: return True or False")
        if out["value"] != reads_as_key_frame(ctr):
            hint = ("below 8 the counter is the C field itself" if ctr < 8 else
                    "from 8 on the C field no longer holds the counter: it holds the length of the counter's "
                    "bytes minus one (§4.3); count how many bytes this counter needs")
            return not_yet(f"your function is wrong for ctr={ctr}: {hint}")
    return correct("bit 0 of the config byte is the low bit of C: from CTR 8 on, the counter's length in bytes "
                   "minus one. A 1-byte counter always looks like a key frame, a 2-byte one never does, real key "
                   "frames included; 3 bytes look like key frames again, 4 bytes never, and so on. The KID only "
                   "sets the high nibble.")


# --- Task 3 (reasoning): after one lost frame -------------------------------------------------------------

#: what Chrome does after a lost frame: takes the very next frame as a key frame and plays on; waits
#: for the next real key frame (periodic, or the answer to its PLI); never renders again (no frame
#: it receives, real key frames included, reads as a key frame).
RECOVERY = ("at once", "next key frame", "never")
#: Task 3's scenarios: id -> (framing, packetization, counter range of the lost frame or None).
SCENARIOS = {
    "clear-prefix": ("clear-prefix (VP8 frame tag in the clear)", "VP8 payload format", None),
    "sframe-1": ("SFrame", "VP8 payload format", (8, 200)),
    "sframe-2": ("SFrame", "VP8 payload format", (256, 60_000)),
    "sframe-3": ("SFrame", "VP8 payload format", (65_536, 16_000_000)),
    "sframe-4": ("SFrame", "VP8 payload format", (2**24, 2**32 - 2**20)),
    "payload-format": ("SFrame", "SFrame RTP payload format (draft-02)", (256, 60_000)),
}


def _scenario_cases() -> dict[str, tuple[str, int | None]]:
    """This student's Task 3: letter -> (scenario id, lost frame's CTR or None), order and counters
    drawn with ``labs.params("10")``."""
    p = params("10")
    rng = p.rng("task3 counters")
    ctrs = {sid: rng.randrange(*span) if span else None for sid, (_, _, span) in SCENARIOS.items()}
    order = p.shuffled("task3 order", list(SCENARIOS))
    return {chr(ord("a") + i): (sid, ctrs[sid]) for i, sid in enumerate(order)}


def loss_scenarios() -> pd.DataFrame:
    """Task 3's scenarios for this student, one row per letter (the answer's keys)."""
    rows = []
    for letter, (sid, ctr) in _scenario_cases().items():
        framing, packetization, _ = SCENARIOS[sid]
        receiver = "libwebrtc-like model (section 5)" if sid == "payload-format" else "Chromium 156"
        rows.append({"scenario": letter, "frame encryption": framing, "packetization": packetization,
                     "receiver": receiver,
                     "lost frame's KID": "none (no KID)" if ctr is None else f"0x{ALICE_VIDEO_KID:04x}",
                     "lost frame's CTR": "none (IV trailer)" if ctr is None else ctr})
    return pd.DataFrame(rows).set_index("scenario")


def recovery_after_loss(sid: str, ctr: int | None) -> str:
    """What the receiver does after losing the frame (:data:`RECOVERY`): with the VP8 frame tag in
    the clear, or SFrame in its own payload format (decrypted before the frame type is read), it
    waits for a real key frame; with SFrame inside the VP8 payload format it reads bit 0 of the
    next frame's config byte (the counter one higher, the same length for every drawn counter)."""
    if ctr is None or SCENARIOS[sid][1].startswith("SFrame RTP"):
        return RECOVERY[1]
    return RECOVERY[0] if reads_as_key_frame(ctr + 1) else RECOVERY[2]


def _parity_guess(sid: str, ctr: int | None) -> str:
    """The known mistake: the counter's own low bit taken as bit 0 of the config byte."""
    if ctr is None or SCENARIOS[sid][1].startswith("SFrame RTP"):
        return RECOVERY[1]
    return RECOVERY[0] if (ctr + 1) % 2 == 0 else RECOVERY[2]


@check
def check_loss_reasoning(answer) -> Feedback:
    """Task 3 (reasoning): ``{letter: one of RECOVERY}`` for this student's :func:`loss_scenarios`,
    against :func:`recovery_after_loss` (recomputed from the student's counters)."""
    if answer is None or isinstance(answer, dict) and all(v is None for v in answer.values()):
        return unanswered("Task 3")
    cases = _scenario_cases()
    if not isinstance(answer, dict) or set(answer) != set(cases):
        return not_yet(f"answer with a dict with one entry per scenario: {', '.join(map(repr, cases))}")
    if not all(v in RECOVERY for v in answer.values()):
        return not_yet(f"each value is one of {', '.join(map(repr, RECOVERY))}")
    truth = {letter: recovery_after_loss(sid, ctr) for letter, (sid, ctr) in cases.items()}
    if answer == truth:
        return correct("clear-prefix leaves the VP8 frame tag readable and the SFrame payload format decrypts before "
                       "reading the frame type: both wait for the next real key frame. Inside the VP8 payload "
                       "format Chrome reads the low bit of C, the counter's length minus one: odd lengths (1, 3 "
                       "bytes) make every frame claim to be a key frame, so it plays on at once; even lengths (2, 4) "
                       "make every frame a delta frame, real key frames included, so it never recovers.")
    vp8 = [letter for letter, (sid, ctr) in cases.items() if ctr is not None and sid != "payload-format"]
    wrong = {letter for letter in cases if answer[letter] != truth[letter]}
    guess = {letter: _parity_guess(sid, ctr) for letter, (sid, ctr) in cases.items()}
    if all(answer[letter] == guess[letter] for letter in vp8) and wrong & set(vp8):
        return not_yet("that follows the counter's own low bit. From CTR 8 on the counter is not in the config "
                       "byte at all: C holds the length of its bytes minus one (§4.3).")
    if all(answer[letter] == RECOVERY[2] for letter in vp8):
        return not_yet("not every SFrame counter leaves Chrome stuck: what does bit 0 of the config byte say for a "
                       "counter of each length, and what does Chrome do with a frame that claims to be a key frame?")
    for letter, (sid, _) in cases.items():
        if letter in wrong and sid == "clear-prefix":
            return not_yet("with clear-prefix framing the VP8 frame tag travels in the clear: Chrome reads every "
                           "frame's real type, as it would without encryption.")
        if letter in wrong and sid == "payload-format":
            return not_yet("with the SFrame payload format the receiver decrypts the frame before it makes the "
                           "media frame, so it reads the real VP8 frame tag (section 5, the fix).")
    return not_yet("for each SFrame scenario inside the VP8 payload format, write the config byte of the frame "
                   "after the loss (its counter is one higher) and read bit 0 as Chrome does; then ask whether "
                   "any frame Alice sends afterwards, a real key frame included, could read as a key frame.")
