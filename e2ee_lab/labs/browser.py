"""Notebook 10 (a browser participant): headless Chromium in the aiortc call, and the task checks.

The helpers show three pieces of code that do one job (the classic Insertable Streams sample's
sender, the lab's Encoded Transform worker and page, the Python transform on aiortc), run the
browser calls the notebook discusses (:func:`browser_calls`: one e2ee and one dtls-srtp call;
:func:`late_transform`: pitfall 1; :func:`loss_comparison`: pitfall 2) and shape their results:
the ``e2ee-lab call`` table, the page's screenshot, the three views of the browser's video (wire
without keys, SFU with leg keys, receivers with frame keys), and why RFC 9605's header byte stops
Chrome's VP8 depacketizer (RFC 7741 §4.2-4.3) from finding a key frame after a loss, and the fix
measured beside it: the SFrame RTP payload format (:func:`payload_format_loss`). Where Chromium
is not installed every helper prints one line saying so and returns the figures recorded on the
reference machine (:data:`RECORDED`), so the notebook still runs top to bottom.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import pandas as pd

from e2ee_lab.analysis import loss_recovery
from e2ee_lab.browser import BrowserError, chromium_version, find_chromium, netns_problem, run_browser_call
from e2ee_lab.browser.server import static_file
from e2ee_lab.browser.tally import three_views
from e2ee_lab.call.common import format_summary
from e2ee_lab.config import lab_size
from e2ee_lab.crypto.sframe import encode_header
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import Sealed, call_safely
from e2ee_lab.labs.session import note_source
from e2ee_lab.webrtc.errors import WebRTCError

SEED = 0
SIZE = "ci"  # the page and Alice share two cores with Chromium: the small picture at any lab size
CALL_SECONDS = 2.5
LOSS = {"clear-prefix": (3.5, 1.0), "e2ee": (6.5, 5.0)}  # framing -> (media seconds, drop at)
NEVER = "never"
ATTACH_CHOICES = ("before the answer", "in ontrack, after negotiation", "either")
#: figures measured on the reference machine (Chromium 156, 2 cores, ci size), shown without Chromium
RECORDED = {
    "table": """(recorded) mode e2ee, 2 participants, 2.5 s, size 320x240@15, AEAD_AES_256_GCM
           video sent      decoded audio sent      decoded  dropped
alice              42    47/48            140   154/158           0
chromium           48    39/42            158   140/140           0
SFU        packets in 432, forwarded 432; video decodable 0/90, audio intelligible 0/298; dropped 0""",
    "views": {"e2ee": {"wire (no keys)": "0/48", "SFU (leg keys)": "0/48", "receiver alice (frame keys)": "47/48"},
              "dtls-srtp": {"wire (no keys)": "0/44", "SFU (leg keys)": "44/44", "receiver alice (frame keys)": "43/44"}},
    "late": [{"receive transform attached": ATTACH_CHOICES[0], "frames through the worker": 42,
              "frames Chrome decoded": 39, "PLIs sent": 2},
             {"receive transform attached": ATTACH_CHOICES[1], "frames through the worker": 0,
              "frames Chrome decoded": 0, "PLIs sent": 30}],
    "loss": [{"framing": "clear-prefix", "frames sent": 57, "decrypted by the worker": 56,
              "decoded by Chrome": 25, "key frames decoded": 2, "PLIs": 0, "recovered after (s)": 2.158},
             {"framing": "e2ee", "frames sent": 102, "decrypted by the worker": 101,
              "decoded by Chrome": 75, "key frames decoded": 58, "PLIs": 0, "recovered after (s)": NEVER}],
}


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
    """The sender side of the classic Insertable Streams sample, as the course's seed quotes it."""
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
    if not available():
        print("no Chromium: no browser call; the tables below are the recorded ones")
        return None
    calls = {mode: _run(mode, seconds, sniff_lo=True) for mode in ("e2ee", "dtls-srtp")}
    return calls if all(calls.values()) else None


def call_table(calls: dict | None) -> None:
    """Print the e2ee call's ``e2ee-lab call`` table (the page is the ``chromium`` row)."""
    print(format_summary(calls["e2ee"].summary) if calls else RECORDED["table"])


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
    for where, result in zip(ATTACH_CHOICES, (calls["e2ee"], late)):
        leg = next(iter(result.summary["python_to_browser"].values()))
        rows.append({"receive transform attached": where, "frames through the worker": leg["transform_frames"],
                     "frames Chrome decoded": leg["decoded"], "PLIs sent": leg["plis"]})
    return pd.DataFrame(rows).set_index("receive transform attached")


@dataclass
class LossComparison:
    """Pitfall 2: one frame dropped toward the page, clear-prefix against SFrame (``table``); the
    page's render times in seconds relative to the drop (``timeline``; empty when recorded)."""

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


def loss_comparison() -> LossComparison:
    """Drop one of Alice's video frames toward the page: at 1 s with clear-prefix, at 5 s (SFrame
    counter past 255) with SFrame; what the worker decrypted, what Chrome decoded, and when it
    rendered again."""
    recorded = LossComparison(pd.DataFrame(RECORDED["loss"]).set_index("framing"))
    if available() and lab_size() == "ci":  # the test suite's size: tests/test_browser.py measures it live
        print("lab size ci: the loss runs (10 s of media) are the recorded ones; "
              "run at full size (E2EE_LAB_SIZE=full, make run) to measure them here")
        return recorded
    rows, timeline = [], {}
    for framing, (seconds, drop_at) in LOSS.items():
        result = _run(framing, seconds, drop_at=drop_at) if available() else None
        if result is None:
            return recorded
        leg = next(iter(result.summary["python_to_browser"].values()))
        back = leg["loss"]["recovered_after_s"]
        rows.append({"framing": framing, "frames sent": leg["sent"], "decrypted by the worker": leg["decrypted"],
                     "decoded by Chrome": leg["decoded"], "key frames decoded": leg["key_frames_decoded"],
                     "PLIs": leg["plis"], "recovered after (s)": NEVER if back is None else back})
        remote = next(r for r in result.stats["remote"] if r["kind"] == "video")
        drop_ms = _drop_ms(result)
        timeline[framing] = [(t - drop_ms) / 1000 for t in remote["renderTimes"]] if drop_ms else []
    return LossComparison(pd.DataFrame(rows).set_index("framing"), timeline)


def _drop_ms(result) -> float | None:
    leg = next(iter(result.summary["python_to_browser"].values()))
    return leg["loss"].get("drop_wall_ms")


# --- the fix: the SFrame RTP payload format ------------------------------------------------------


def payload_format_loss() -> pd.DataFrame:
    """The same loss (one video frame, CTR past 255) with the SFrame RTP payload format
    (draft-ietf-avtcore-rtp-sframe-02, per-frame and per-packet) against SFrame inside the VP8
    payload format, on the lab's packetizers and a libwebrtc-like receiver
    (:func:`e2ee_lab.analysis.loss_recovery.loss_comparison`; simulated time, real VP8 and SFrame)."""
    frames = 150 if lab_size() == "full" else 60
    return loss_recovery.loss_comparison(frames=frames, drop_frame=20, start_ctr=300)


def loss_side_by_side(loss: LossComparison, fix: pd.DataFrame) -> pd.DataFrame:
    """Chrome's measured recovery (pitfall 2) beside the payload format's (:func:`payload_format_loss`)."""
    rows = [{"packetization": f"VP8 payload format, {framing}", "receiver": "Chromium 156 (measured)",
             "recovered after (s)": seconds}
            for framing, seconds in loss.table["recovered after (s)"].items()]
    for mode, run in fix.iterrows():
        name = "VP8 payload format, e2ee" if mode == "vp8" else f"SFrame payload format, {mode}"
        back = run["recovered_after_s"]
        rows.append({"packetization": name, "receiver": "libwebrtc-like model (lab)",
                     "recovered after (s)": NEVER if pd.isna(back) else round(float(back), 2)})
    return pd.DataFrame(rows).set_index("packetization")


# --- the header byte Chrome misreads --------------------------------------------------------------


def sframe_header(kid: int, ctr: int) -> bytes:
    """The RFC 9605 §4.3 header for (KID, CTR), minimal encoding (the lab's codec)."""
    return encode_header(kid, ctr)


def vp8_reading(kid: int = 1, ctrs: tuple[int, ...] = (0, 1, 2, 7, 8, 200, 255, 256, 300, 65535, 65536)) -> pd.DataFrame:
    """What a VP8 depacketizer reading the SFrame header's first byte as the VP8 frame tag's first
    byte (RFC 6386 §9.1: bit 0 is the P bit, 0 = key frame) concludes, per counter value."""
    rows = []
    for ctr in ctrs:
        first = sframe_header(kid, ctr)[0]
        rows.append({"CTR": ctr, "header": sframe_header(kid, ctr).hex(), "first byte": f"{first:08b}",
                     "bit 0 (VP8 P bit)": first & 1, "Chrome reads": "key frame" if first & 1 == 0 else "delta frame"})
    return pd.DataFrame(rows).set_index("CTR")


# --- checks ----------------------------------------------------------------------------------------


def _decoded(views: pd.DataFrame, mode: str) -> int:
    return int(str(views.loc["SFU (leg keys)", mode]).split("/")[0])


@check
def check_sfu_decodable(answer, views: pd.DataFrame) -> Feedback:
    """Task 1: ``{"e2ee": n, "dtls-srtp": m}``, the browser's frames the SFU decoded into the picture."""
    if answer is None:
        return unanswered("Task 1")
    if not isinstance(answer, dict) or set(answer) != {"e2ee", "dtls-srtp"}:
        return not_yet('answer with a dict {"e2ee": ..., "dtls-srtp": ...} of frame counts')
    want = {m: _decoded(views, m) for m in ("e2ee", "dtls-srtp")}
    if answer == {"e2ee": want["dtls-srtp"], "dtls-srtp": want["e2ee"]}:
        return not_yet("the two counts are swapped: in e2ee mode the SFU holds no frame key")
    for mode in want:
        if answer[mode] != want[mode]:
            seen = str(views.loc["SFU (leg keys)", mode]).split("/")[-1]
            return not_yet(f"{mode}: {answer[mode]} is not what the SFU decoded; read the 'SFU (leg keys)' "
                           f"row (decoded/seen), not the receiver's. It saw {seen} frames")
    return correct(f"the SFU decoded {want['dtls-srtp']} of the browser's frames in dtls-srtp mode and "
                   f"{want['e2ee']} in e2ee mode: the page's worker encrypted them before the packetizer.")


KEY_FRAME_CTRS = (0, 1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 1000, 65535, 65536, 2**24, 2**32)


def probe_key_frame_bit(func, *lab_objects) -> dict:
    """Task 2's probe: the student's function on every counter of :data:`KEY_FRAME_CTRS`, as plain data."""
    return {ctr: call_safely(func, ctr) for ctr in KEY_FRAME_CTRS}


@check(probe=probe_key_frame_bit)
def check_key_frame_bit(func) -> Feedback:
    """Task 2: ``func(ctr) -> bool``, True when Chrome would read the SFrame header (KID 1) as the
    first byte of a VP8 key frame (a build task: the check sees what :func:`probe_key_frame_bit`
    recorded)."""
    if func is None:
        return unanswered("Task 2")
    if not isinstance(func, Probed) or not isinstance(func.outputs, dict):
        return not_yet("write a function of one argument, ctr, returning True or False")
    for ctr in KEY_FRAME_CTRS:
        want = sframe_header(1, ctr)[0] & 1 == 0
        out = func.outputs.get(ctr)
        if not isinstance(out, dict) or ("value" not in out and "raised" not in out):
            return not_yet(f"no result for ctr={ctr}: write a function of one argument, ctr")
        if "raised" in out:
            return not_yet(f"your function raised {out['raised']} for ctr={ctr}")
        if bool(out["value"]) != want:
            hint = ("below 8 the counter sits in the low 3 bits of the config byte"
                    if ctr < 8 else "from 8 on the low 3 bits hold the counter's length in bytes minus one")
            return not_yet(f"for ctr={ctr} the first byte is {sframe_header(1, ctr)[0]:08b}, so Chrome reads a "
                           f"{'key' if want else 'delta'} frame; {hint}")
    return correct("bit 0 of the config byte is the low bit of C: CTR 8-255 (one byte) always looks like a key "
                   "frame, 256-65535 (two bytes) never does, real key frames included.")


@check
def check_recovery(answer, loss: LossComparison) -> Feedback:
    """Task 3: ``{"clear-prefix": seconds, "e2ee": seconds or "never"}`` as the loss table measured."""
    if answer is None:
        return unanswered("Task 3")
    if not isinstance(answer, dict) or set(answer) != set(LOSS):
        return not_yet('answer with a dict {"clear-prefix": ..., "e2ee": ...}')
    want = loss.table["recovered after (s)"].to_dict()
    if answer["e2ee"] != NEVER:
        return not_yet(f"e2ee: the table says {want['e2ee']!r}; after the loss Chrome never found a key "
                       "frame (answer the string \"never\")" if want["e2ee"] == NEVER else
                       f"e2ee: the table says {want['e2ee']!r}")
    if want["e2ee"] != NEVER:
        return not_yet(f"e2ee: this run recovered after {want['e2ee']} s; answer that number")
    try:
        close = abs(float(answer["clear-prefix"]) - float(want["clear-prefix"])) <= 0.5
    except (TypeError, ValueError):
        return not_yet("clear-prefix: answer a number of seconds")
    if not close:
        return not_yet(f"clear-prefix: the table says {want['clear-prefix']} s (read 'recovered after (s)')")
    return correct("clear-prefix leaves the VP8 header readable, so Chrome sees the next key frame and plays "
                   "again; with SFrame the header Chrome reads is ciphertext metadata, and it waits forever.")


@check
def check_attach_point(answer) -> Feedback:
    """Task 4: where a receive RTCRtpScriptTransform must be set in Chromium 156 (sealed: ``10/T4``)."""
    if answer is None:
        return unanswered("Task 4")
    if not isinstance(answer, str) or answer not in ATTACH_CHOICES:
        return not_yet(f"choose one of {', '.join(repr(c) for c in ATTACH_CHOICES)}")
    if (message := Sealed("10/T4").opens(answer)) is not None:
        return correct(message)
    return not_yet("look at the pitfall table again: how many frames went through the worker, and how many "
                   "PLIs did Chrome send, in each row?")

