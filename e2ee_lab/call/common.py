"""What every stack's call shares: its configuration, its result, its outputs, and two helpers.

Every stack that runs the lab's call (the lab's own, :mod:`e2ee_lab.call.run`; aiortc,
:mod:`e2ee_lab.webrtc`; a browser page, :mod:`e2ee_lab.browser`; the next ones) speaks this
vocabulary, and it lives below them all: :class:`CallConfig` (what was run), :class:`CallResult`
(what the lab's call produced; the other stacks' results keep its summary fields and their
meaning), :func:`write_outputs` (``summary.json``, the SFU's key log ``sfu-keys.json`` and the
members' ``frame-keys.json``),
:func:`format_summary` (the table ``e2ee-lab call`` prints), :func:`run_blocking` (an entry point
that works from a script and from a notebook's running loop), :func:`wait_for_group_keys` (until
every member holds every current key), and the call's rekey policy :data:`CALL_KEY_POLICY`: since
all members join before media flows, send keys switch 0.1 s after an epoch starts instead of the
2 s a call with late joiners needs; :func:`resolve_key_policy` turns the names "fixed" and "naive"
(every check of :class:`~e2ee_lab.crypto.keys.KeyChecks` off, the attacks' counter-example) into
that policy. Nothing here imports a stack.
"""

from __future__ import annotations

import asyncio
import json
import operator
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from e2ee_lab.analysis.sfu_view import SFUView
from e2ee_lab.call.capture import FRAME_KEYS_FILE, CaptureInfo, FrameKeys, write_frame_keys
from e2ee_lab.call.pipeline import SenderOptions
from e2ee_lab.config import Size
from e2ee_lab.crypto.keys import PublicIdentity, RekeyPolicy
from e2ee_lab.media.scene import Scene
from e2ee_lab.sfu.loudest import DEFAULT_LOUDEST
from e2ee_lab.transport import KeyLogEntry, SRTPProfile, write_keylog

T = TypeVar("T")
CALL_KEY_POLICY = RekeyPolicy(switch_delay=0.1, grace=10.0, rekey_interval=None)
KEY_POLICIES = ("fixed", "naive")  # the names a call's key_policy also accepts
KEY_AGREEMENT_TIMEOUT = 5.0  # seconds until every member holds every current key
START_DELAY = 0.05  # seconds between "media go" and the first frame
DEFAULT_PROFILE = SRTPProfile.AEAD_AES_128_GCM.value


REAL_TIME_SHARE = 0.95  # a call keeps real time when every receiver gets this share of each kind on time


def real_time_verdict(rows: list[dict], share: float = REAL_TIME_SHARE) -> dict:
    """Did the call keep real time? ``{"real_time": bool, "real_time_reason": str}`` from the
    summary's participant rows.

    A call keeps real time when every receiver got, of each kind, at least ``share`` of the frames
    sent to it (``*_frames_expected``) decrypted and by their playout deadline
    (``*_frames_on_time``: capture time + the playout budget,
    :data:`~e2ee_lab.call.pipeline.PLAYOUT_BUDGET`). Frames that came late and frames that never
    came both count against it: on an overloaded machine the simulated endpoints fall behind, their
    sockets overflow, and lower counts are that, not the call's result. The reason names the
    receiver and kind furthest from the mark (or says how close the worst one came when it held).
    """
    worst: tuple[float, str] | None = None
    for row in rows:
        for kind in ("video", "audio"):
            expected = row.get(f"{kind}_frames_expected", 0)
            if not expected or f"{kind}_frames_on_time" not in row:
                continue
            on_time, late = row[f"{kind}_frames_on_time"], row.get(f"{kind}_frames_late", 0)
            ratio = on_time / expected
            text = (f"{row['name']} got {on_time} of {expected} {kind} frames in time "
                    f"({ratio:.0%}; {late} late, {max(0, expected - on_time - late)} missing or undecryptable)")
            if worst is None or ratio < worst[0]:
                worst = (ratio, text)
    if worst is None:
        return {"real_time": False, "real_time_reason": "no frames were expected by any receiver"}
    if worst[0] >= share:
        return {"real_time": True, "real_time_reason": f"every receiver >= {share:.0%} in time; worst: {worst[1]}"}
    return {"real_time": False, "real_time_reason": f"below {share:.0%} in time: {worst[1]}"}


class CPUMeter:
    """CPU seconds one process spends from construction to :meth:`stop` (``time.process_time``:
    every thread of the process, user and system), next to the wall-clock seconds."""

    def __init__(self, role: str, *, whole_process: bool = False) -> None:
        """``whole_process``: count the CPU time from the process's start (its imports included)."""
        self.role = role
        self._cpu, self._wall = 0.0 if whole_process else time.process_time(), time.perf_counter()

    def stop(self) -> dict:
        """``{"role", "pid", "cpu_s", "wall_s", "cpu_per_wall"}`` for this process so far."""
        cpu, wall = time.process_time() - self._cpu, time.perf_counter() - self._wall
        return {"role": self.role, "pid": os.getpid(), "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                "cpu_per_wall": round(cpu / wall, 3) if wall > 0 else None}


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its live descendants so far, with the
    children each has reaped, from ``/proc`` (Linux; 0.0 elsewhere or once ``pid`` is gone): what a
    browser's many processes spent."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parents, used = {}, {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        child = int(entry.parent.name)
        parents[child] = int(fields[1])
        used[child] = sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
    total = 0.0
    for child in used:
        node = child
        while node in parents and node != pid:
            node = parents[node]
        if node == pid:
            total += used[child]
    return total


def cpu_summary(processes: list[dict], participants: int, seconds: float) -> dict:
    """The ``"cpu"`` entry of a summary: each process's :meth:`CPUMeter.stop` row, their total, and
    CPU-seconds per participant-second of media: the processes' ``media_cpu_s`` (the CPU spent
    while media flowed and drained, set by the caller) where given, else their whole ``cpu_s``
    (setup, handshakes and pre-encoding included), divided by ``participants * seconds``."""
    total = sum(p["cpu_s"] for p in processes)
    media = sum(p.get("media_cpu_s", p["cpu_s"]) for p in processes)
    return {"processes": processes, "cpu_s": round(total, 3),
            "cpu_s_per_participant_s": round(media / (participants * seconds), 4) if participants and seconds else None}


class CallSetupError(RuntimeError):
    """The call could not start (key agreement did not settle in time)."""

    reason = "call_setup"


@dataclass(frozen=True)
class CallConfig:
    """What was run."""

    mode: str  # "dtls-srtp", "e2ee" or "clear-prefix"
    participants: int  # how many
    seconds: float  # media duration
    seed: int
    size: Size  # "ci" or "full"
    srtp_profile: str  # SRTP protection profile name
    garbage: float  # garbage datagrams per second sent to the SFU (0: none)
    sender_options: SenderOptions = field(default_factory=SenderOptions)  # Opus CBR, audio level, padding
    rtp_sframe: str | None = None  # SFrame RTP payload format offered ("per-frame"/"per-packet"), None: codec's
    reproducible_keys: bool = False  # keys derived from the seed (recordings, tests), not drawn from the OS
    key_policy: str = "fixed"  # "fixed", "naive" or "custom" (RekeyPolicy.name)
    publishers: int | None = None  # the first K participants send video (None: all); all send audio
    loudest: int = DEFAULT_LOUDEST  # audio of the N loudest forwarded in rooms > LOUDEST_ROOM_SIZE
    encode: str = "live"  # "live": an encoder per sender; "clip": each scene pre-encoded once, shared
    views: int | str | None = None  # publishers whose video each receiver decodes (None: all, "sample": one receiver per publisher); all verified


@dataclass
class CallResult:
    """Everything a call produced; DataFrame columns are those of the record classes.

    ``view``: the SFU's view tap (:mod:`e2ee_lab.sfu.view`), ``time`` in seconds since the call
    started. ``sent`` / ``received``: :class:`~e2ee_lab.call.pipeline.SentFrame` and
    :class:`~e2ee_lab.call.pipeline.ReceivedFrame` rows. ``sfu`` / ``wire``: what the SFU and an
    eavesdropper could decode. ``pictures[receiver][publisher]``: the latest picture a receiver
    decoded, ``(frame index, RGB)``. ``scenes`` / ``speech``: each participant's camera and the
    speech PCM it sent (48 kHz int16). ``relay``: key messages the SFU carried. ``sockets``: every
    socket's local and remote address. ``key_holders``: key name -> parties whose key material
    (or, for the SFU, anything it carried) contains that key, found by searching the bytes.
    ``handshakes``: one row per leg end (``leg, side, version, cipher, profile, peer_fingerprint,
    expected_fingerprint``): the peer's certificate as verified against what signalling announced.
    ``members``: participant name -> key-agreement member index (empty in dtls-srtp mode).
    """

    config: CallConfig
    summary: dict
    view: pd.DataFrame
    sent: pd.DataFrame
    received: pd.DataFrame
    sfu: SFUView
    wire: SFUView
    keylog: list[KeyLogEntry]
    participant_keys: dict[str, KeyLogEntry]
    relay: pd.DataFrame
    pictures: dict[str, dict[str, tuple[int, np.ndarray]]]
    scenes: dict[str, Scene]
    speech: dict[str, np.ndarray]
    sockets: list[dict]
    key_holders: dict[str, set[str]]
    handshakes: pd.DataFrame
    names: list[str] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)
    out: Path | None = None
    capture: CaptureInfo | None = None  # the call's pcap (run with capture=...), else None
    frame_keys: FrameKeys | None = None  # the members' SFrame keys (e2ee, clear-prefix), the receivers' secret
    # e2ee modes: participant -> {its own name: its identity key, peer: the key it pinned for that peer}
    identities: dict[str, dict[str, PublicIdentity]] = field(default_factory=dict)

    def delivery(self, kind: str = "video") -> pd.Series:
        """Per receiver: frames decoded / frames the others sent, for ``kind``."""
        return pd.Series({p["name"]: p[f"{kind}_frames_decoded"] / max(1, p[f"{kind}_frames_expected"])
                          for p in self.summary["participants"]}, name=f"{kind} delivery")


# --- helpers every stack's entry point uses -----------------------------------------------------


def records_table(records: Iterable, record_type: type) -> pd.DataFrame:
    """One row per record (instances of the flat dataclass ``record_type``: SentFrame, ReceivedFrame),
    its fields as columns. Read shallowly: pandas' own conversion of dataclasses goes through
    ``dataclasses.asdict``, which deep-copies every field (about 12 times slower here, seconds for
    the 100,000 records of a room of 50)."""
    columns = list(record_type.__dataclass_fields__)
    row = operator.attrgetter(*columns)
    return pd.DataFrame([row(r) for r in records], columns=columns)


def resolve_key_policy(key_policy: RekeyPolicy | str) -> RekeyPolicy:
    """A call's rekey policy: a :class:`RekeyPolicy` as given, "fixed" (:data:`CALL_KEY_POLICY`) or
    "naive" (the same with every check off). ValueError for another name, TypeError for another type."""
    if isinstance(key_policy, RekeyPolicy):
        return key_policy
    if key_policy == "fixed":
        return CALL_KEY_POLICY
    if key_policy == "naive":
        return CALL_KEY_POLICY.naive()
    if isinstance(key_policy, str):
        raise ValueError(f"key_policy must be a RekeyPolicy or one of {', '.join(KEY_POLICIES)}, not {key_policy!r}")
    raise TypeError(f"key_policy must be a RekeyPolicy or a str, not {type(key_policy).__name__}")


def run_blocking(job: Callable[[], T], thread_name: str) -> T:
    """Run ``job`` (which calls ``asyncio.run``) here, or in a worker thread named ``thread_name``
    when this thread already runs an event loop (a notebook): the calls' entry points work in both."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return job()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        return pool.submit(job).result()


async def wait_for_group_keys(signalling, people, also=None) -> None:
    """Until every participant holds every member's keys of the roster's current epoch (the lab's,
    the aiortc and the browser calls: ``people`` have ``keys_ready(epoch, members)``; ``also``, if
    given, is an async ``keys_ready`` of one more member, the browser page).

    Raises:
        CallSetupError: not within :data:`KEY_AGREEMENT_TIMEOUT` seconds.
    """
    epoch = signalling.roster.epoch
    members = list(signalling.members.values())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KEY_AGREEMENT_TIMEOUT
    while not (all(p.keys_ready(epoch, members) for p in people)
               and (also is None or await also(epoch, members))):
        if loop.time() > deadline:
            raise CallSetupError(f"members did not all hold the epoch-{epoch} keys within "
                                 f"{KEY_AGREEMENT_TIMEOUT} s")
        await asyncio.sleep(0.02)


# --- outputs ------------------------------------------------------------------------------------


def write_outputs(result, out: str | Path) -> None:
    """Write ``summary.json``, ``sfu-keys.json`` (the SFU's key log) and, when the call had frame
    keys (``e2ee``, ``clear-prefix``), ``frame-keys.json`` (the members' secret) into directory ``out``.

    ``result``: a :class:`CallResult` or any call result with ``summary``, ``keylog`` and ``out``
    (the aiortc and browser calls' results; ``frame_keys`` if it has them).
    """
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
    write_keylog(path / "sfu-keys.json", result.keylog)
    frame_keys = getattr(result, "frame_keys", None)
    if frame_keys is not None:
        write_frame_keys(path / FRAME_KEYS_FILE, frame_keys)
    result.out = path


def format_summary(summary: dict) -> str:
    """The short table ``cli_call`` prints: one line per participant, one for the SFU, and in the
    modes with frame keys where those keys came from and which key checks the members made."""
    lines = [f"mode {summary['mode']}, {summary['participant_count']} participants, "
             f"{summary['seconds']:g} s, size {summary['size']}, {summary['srtp_profile']}"]
    if summary["mode"] != "dtls-srtp":
        keys = ("keys REPRODUCIBLE from the seed (anyone with it recomputes them)"
                if summary.get("reproducible_keys") else "keys from the OS")
        lines.append(f"{keys}; key checks: {summary.get('key_policy', 'fixed')}")
    lines.append(f"{'':10} {'video sent':>10} {'decoded':>12} {'audio sent':>10} {'decoded':>12} {'dropped':>8}")
    for p in summary["participants"]:
        lines.append(f"{p['name']:10} {p['video_frames_sent']:>10} "
                     f"{p['video_frames_decoded']:>5}/{p['video_frames_expected']:<6} "
                     f"{p['audio_frames_sent']:>10} {p['audio_frames_decoded']:>5}/{p['audio_frames_expected']:<6} "
                     f"{sum(p['dropped'].values()):>8}")
    s = summary["sfu"]
    lines.append(f"{'SFU':10} packets in {s['packets_in']}, forwarded {s['packets_forwarded']}; video "
                 f"decodable {s['video_frames_decodable']}/{s['video_frames_seen']}, audio intelligible "
                 f"{s['audio_frames_intelligible']}/{s['audio_frames_seen']}; dropped {sum(s['dropped'].values())}")
    if "real_time" in summary:
        lines.append(real_time_line(summary))
    return "\n".join(lines)


def real_time_line(summary: dict) -> str:
    """One line: did the call keep real time (and why not), and the CPU its processes used."""
    verdict = "real time: yes" if summary["real_time"] else "real time: NO (the counts above are not the call's result)"
    line = f"{verdict}; {summary.get('real_time_reason', '')}"
    cpu = summary.get("cpu")
    if cpu:
        n = len(cpu["processes"])
        line += (f"; CPU {cpu['cpu_s']:.1f} s in {n} process{'es' if n != 1 else ''}, "
                 f"{cpu['cpu_s_per_participant_s']} s per participant-second")
    return line
