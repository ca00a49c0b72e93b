"""One call: an SFU and N participants in one event loop, real media in real time, on loopback.

:func:`run_call_async` starts the SFU (:class:`~e2ee_lab.sfu.server.SFUServer`) and the participants
(:class:`~e2ee_lab.call.participant.Participant`), lets each connect (offer/answer with certificate
fingerprints, a real DTLS 1.2 handshake with use_srtp per leg, RFC 5764), runs the group key
agreement in the e2ee modes (key messages through the SFU's signalling relay), sends pictures at
the frame rate and speech every 20 ms for ``seconds``, waits for the packets in flight (until no
participant has received one for :data:`DRAIN` s), and closes everything. :func:`run_call` does the same from synchronous code, and from a
notebook (a running loop: it runs the call on a worker thread with a loop of its own).

The result (:class:`CallResult`) holds the SFU's per-packet view, per-frame sender and receiver
records, the SFU's own decoding attempt (:mod:`e2ee_lab.analysis.sfu_view`), an eavesdropper's
attempt on the first SRTP packets of each participant, the SFU's key log, the relayed key messages
and a JSON-ready ``summary`` (also written to ``out/summary.json``, with the key log in
``out/sfu-keys.json``); with ``capture=`` the call is also recorded to ``out/capture.pcap``
(:mod:`e2ee_lab.call.capture`). :func:`add_call_arguments` and :func:`cli_call` make it the ``e2ee-lab call``
command (``--mode --participants --seconds --seed --out [--size ci|full] [--capture ...]``), which prints a short
table (:func:`format_summary`). Since all members join before media flows, the call's rekey policy
(:data:`CALL_KEY_POLICY`) switches send keys 0.1 s after an epoch starts instead of the 2 s a
call with late joiners needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from e2ee_lab.analysis.sfu_view import (
    SFUView,
    analyze_packets,
    sent_speech,
    view_packets,
    wire_packets,
)
from e2ee_lab.call.capture import CallCapture, CaptureInfo, FrameKeys, call_frame_keys
from e2ee_lab.call.frame_keys import MODES
from e2ee_lab.call.garbage import GarbageInjector
from e2ee_lab.call.participant import Participant
from e2ee_lab.call.pipeline import ReceivedFrame, SenderOptions, SentFrame
from e2ee_lab.config import SIZES, Size, lab_size
from e2ee_lab.crypto.keys import KeyAgreementError, PublicIdentity, RekeyPolicy
from e2ee_lab.media.scene import Scene, video_size
from e2ee_lab.sfu.policy import Policy
from e2ee_lab.sfu.server import SFUServer
from e2ee_lab.capture.pcap import CaptureError
from e2ee_lab.transport import KeyLogEntry, SRTPProfile, write_keylog
from e2ee_lab.transport.errors import TransportError

T = TypeVar("T")
CALL_KEY_POLICY = RekeyPolicy(switch_delay=0.1, grace=10.0, rekey_interval=None)
DRAIN = 0.2  # seconds without a new packet at any participant that end the call
MAX_DRAIN = 5.0  # seconds the call waits at most for packets in flight after the last frame
KEY_AGREEMENT_TIMEOUT = 5.0  # seconds until every member holds every current key
START_DELAY = 0.05  # seconds between "media go" and the first frame
# Worker threads for rendering and VP8 encoding. One: the scenes share Pillow's FreeType fonts,
# which must not be used from two threads at once, and one core is left for the event loop.
ENCODER_THREADS = 1
DEFAULT_PROFILE = SRTPProfile.AEAD_AES_128_GCM.value


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
    frame_keys: FrameKeys | None = None  # the members' SFrame keys (e2ee), the receivers' secret
    # e2ee modes: participant -> {its own name: its identity key, peer: the key it pinned for that peer}
    identities: dict[str, dict[str, PublicIdentity]] = field(default_factory=dict)

    def delivery(self, kind: str = "video") -> pd.Series:
        """Per receiver: frames decoded / frames the others sent, for ``kind``."""
        return pd.Series({p["name"]: p[f"{kind}_frames_decoded"] / max(1, p[f"{kind}_frames_expected"])
                          for p in self.summary["participants"]}, name=f"{kind} delivery")


# --- the call -------------------------------------------------------------------------------------


async def run_call_async(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 5.0,
                         seed: int = 0, size: Size | None = None, out: str | Path | None = None, *,
                         srtp_profile: str = DEFAULT_PROFILE, garbage: float = 0.0,
                         capture: str = "off", policy: Policy | None = None,
                         key_policy: RekeyPolicy = CALL_KEY_POLICY,
                         sfu_setup: Callable[[SFUServer], None] | None = None,
                         sender_options: SenderOptions | None = None) -> CallResult:
    """Run one call in the running event loop (see :func:`run_call` for the arguments)."""
    started = time.perf_counter()
    config = _config(mode, participants, seconds, seed, size, srtp_profile, garbage)
    if sender_options is not None:
        config = replace(config, sender_options=sender_options)
    recorder = CallCapture(out, capture)  # type: ignore[arg-type]  # ValueError for a bad mode
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> float:
        return loop.time() - t0

    profile = SRTPProfile(config.srtp_profile)
    sfu = SFUServer(profiles=(profile,), key_policy=key_policy)
    if policy is not None:
        sfu.core.policy = policy
    if sfu_setup is not None:
        sfu_setup(sfu)
    dims = video_size(config.size)
    people = [Participant(i, mode=mode, size=dims, seed=seed, profile=profile, clock=clock,
                          key_policy=key_policy, options=config.sender_options)
              for i in range(participants)]
    injector = GarbageInjector(sfu, people, seed=seed, rate=garbage) if garbage else None
    await recorder.start()  # before the first leg opens: the handshakes are in the capture
    try:
        await _connect(sfu, people)
        truth = _truth(people)
        for p in people:
            p.prepare(truth)
        if injector is not None:
            await injector.open()
        start = loop.time() + START_DELAY
        with ThreadPoolExecutor(max_workers=ENCODER_THREADS, thread_name_prefix="e2ee-lab-encode") as pool:
            jobs = [p.run(start, config.seconds, pool) for p in people]
            if injector is not None:
                jobs.append(injector.run(config.seconds))
            await asyncio.gather(*jobs)
        await _drain(people)
        for p in people:
            p.finish()
        result = _collect(config, sfu, people, injector, t0)
        result.frame_keys = call_frame_keys(people)
    finally:
        if injector is not None:
            injector.close()
        await asyncio.gather(*(p.close() for p in people))
        await sfu.close()
        await recorder.stop()  # after the last close_notify
    result.capture = await recorder.finish(result.sockets)
    if result.capture is not None:
        result.summary["capture"] = result.capture.summary()
    result.summary["elapsed_s"] = round(time.perf_counter() - started, 2)
    if out is not None:
        write_outputs(result, out)
    return result


def run_call(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 5.0, seed: int = 0,
             size: Size | None = None, out: str | Path | None = None, *,
             srtp_profile: str = DEFAULT_PROFILE, garbage: float = 0.0,
             capture: str = "off", policy: Policy | None = None,
             key_policy: RekeyPolicy = CALL_KEY_POLICY,
             sfu_setup: Callable[[SFUServer], None] | None = None,
             sender_options: SenderOptions | None = None, stack: str = "lab",
             browser_participants: int = 0) -> CallResult:
    """Run a call and return its :class:`CallResult` (from a script, or from a notebook).

    ``stack="webrtc"`` runs the same call on aiortc peer connections through an aiortc SFU
    (:func:`e2ee_lab.webrtc.run_webrtc_call`; a ``WebRTCCallResult`` with the same summary fields).
    ``browser_participants=1`` (``stack="webrtc"`` only) adds a headless Chromium page to that call
    (:func:`e2ee_lab.browser.call.run_for_call`; a ``BrowserCallResult``, the page one more row of
    the summary); ``participants`` then counts the Python members (1..8).

    Args:
        mode: "dtls-srtp" (SRTP per hop only), "e2ee" (SFrame) or "clear-prefix".
        participants: how many (2..255).
        seconds: how long media flows (real time).
        seed: reproducible pictures, SSRCs and frame keys (DTLS keys are always fresh).
        size: "ci" (320x240, 15 fps) or "full" (640x480, 30 fps); default :func:`lab_size`.
        out: a directory for ``summary.json`` and ``sfu-keys.json``, or None.
        srtp_profile: "AEAD_AES_128_GCM" (default) or "AES_CM_128_HMAC_SHA1_80".
        garbage: datagrams per second of garbage sent to the SFU's ports during the call.
        capture: "off" (default), "auto", "sniff" or "tap": record the call's datagrams, DTLS
            handshakes included, to ``out/capture.pcap`` (:mod:`e2ee_lab.call.capture`);
            ``result.capture`` says where and how.
        policy: the SFU core's forwarding policy (default honest; :mod:`e2ee_lab.attacks.sfu`).
        key_policy: rekey policy of the signalling roster and of every member (e2ee modes).
        sfu_setup: called with the :class:`SFUServer` before anyone connects (a malicious
            operator's changes to its signalling: answers, key directory, relay).
        sender_options: how every participant sends (:class:`~e2ee_lab.call.pipeline.SenderOptions`:
            Opus CBR, the RFC 6464 audio level on or off, audio padding); default a browser's.

    Raises:
        ValueError: a bad mode, count, duration, profile, size or capture mode; a browser
            participant on a stack other than "webrtc".
        DTLSError: a handshake failed.  CaptureNotPermitted: ``capture="sniff"`` without rights.
    """
    if browser_participants:  # headless Chromium in the aiortc call (e2ee_lab.browser)
        if stack != "webrtc":
            raise ValueError(f"a browser participant needs stack='webrtc', not {stack!r}")
        from e2ee_lab.browser.call import run_for_call

        return run_for_call(stack, browser_participants, mode, participants, seconds, seed, size, out,  # type: ignore[return-value]
                            capture=capture, srtp_profile=srtp_profile, garbage=garbage, policy=policy,
                            key_policy=key_policy, sfu_setup=sfu_setup, sender_options=sender_options)
    if stack != "lab":  # aiortc (e2ee_lab.webrtc); it rejects the lab-only options
        from e2ee_lab.webrtc.call import run_for_stack

        return run_for_stack(stack, mode, participants, seconds, seed, size, out,  # type: ignore[return-value]
                             srtp_profile=srtp_profile, garbage=garbage, capture=capture, policy=policy,
                             key_policy=key_policy, sfu_setup=sfu_setup, sender_options=sender_options)

    def job() -> CallResult:
        return asyncio.run(run_call_async(mode, participants, seconds, seed, size, out,
                                          srtp_profile=srtp_profile, garbage=garbage,
                                          capture=capture, policy=policy, key_policy=key_policy,
                                          sfu_setup=sfu_setup, sender_options=sender_options))

    return run_blocking(job, "e2ee-lab-call")


def run_blocking(job: Callable[[], T], thread_name: str) -> T:
    """Run ``job`` (which calls ``asyncio.run``) here, or in a worker thread named ``thread_name``
    when this thread already runs an event loop (a notebook): the calls' entry points work in both."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return job()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        return pool.submit(job).result()


def _config(mode, participants, seconds, seed, size, srtp_profile, garbage) -> CallConfig:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if not 2 <= participants <= 255:
        raise ValueError(f"a call needs 2..255 participants, not {participants}")
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    if garbage < 0:
        raise ValueError(f"garbage rate must be >= 0, not {garbage}")
    profile = SRTPProfile(srtp_profile).value  # ValueError for an unknown name
    return CallConfig(mode, participants, float(seconds), seed, size or lab_size(), profile, float(garbage))


async def _connect(sfu: SFUServer, people: list[Participant]) -> None:
    """Offer/answer and DTLS for every participant, then the key agreement in the e2ee modes."""
    for p in people:
        await p.connect(sfu)
    await sfu.wait_ready()
    if people[0].mode == "dtls-srtp":
        return
    for p in people:
        p.join_keys()
        await asyncio.sleep(0.01)  # let the roster update and key messages cross the relay
    await wait_for_group_keys(sfu.signalling, people)


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


async def _drain(people: list[Participant]) -> None:
    """Wait until no participant has received a packet for :data:`DRAIN` s (at most :data:`MAX_DRAIN` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MAX_DRAIN
    seen = -1
    while loop.time() < deadline:
        now_seen = sum(p.receiver.assembler.stats["packets_received"] for p in people if p.receiver)
        if now_seen == seen:
            return
        seen = now_seen
        await asyncio.sleep(DRAIN)


def _truth(people: list[Participant]):
    by_name = {p.name: p for p in people}

    def truth(publisher: str, kind: str, timestamp: int):
        p = by_name.get(publisher)
        return None if p is None or p.sender is None else p.sender.sent(kind, timestamp)

    return truth


# --- results --------------------------------------------------------------------------------------


def _collect(config: CallConfig, sfu: SFUServer, people: list[Participant],
             injector: GarbageInjector | None, t0: float) -> CallResult:
    view = sfu.core.view.to_dataframe()
    view["time"] = view["time"] - t0
    sent = pd.DataFrame([r for p in people for r in p.sender.records], columns=_columns(SentFrame))
    received = pd.DataFrame([r for p in people for r in p.receiver.records], columns=_columns(ReceivedFrame))
    scenes = {p.name: p.scene for p in people}
    audio = sent[sent.kind == "audio"].groupby("participant").frame_index.max()
    speech = {p.name: sent_speech(p.speech, int(audio.get(p.name, -1)) + 1) for p in people}
    sfu_view = analyze_packets(view_packets(view), sent, scenes=scenes, speech=speech)
    ssrcs = {ssrc: p.name for p in people for ssrc in p.ssrcs.values()}
    wire = analyze_packets(wire_packets([d for p in people for d in p.wire], ssrcs), sent,
                           scenes=scenes, speech=speech)
    relay = pd.DataFrame([(m.time, m.sender, m.recipient, len(m.data), m.data)
                          for m in sfu.signalling.relayed],
                         columns=["time", "sender", "recipient", "size", "data"])
    result = CallResult(
        config=config, summary={}, view=view, sent=sent, received=received, sfu=sfu_view, wire=wire,
        keylog=sfu.keylog(), participant_keys={p.name: p.leg.keylog_entry() for p in people},
        relay=relay, pictures={p.name: dict(p.receiver.pictures) for p in people}, scenes=scenes,
        speech=speech,
        sockets=_sockets(sfu, people, injector), key_holders=_key_holders(sfu, people, view, relay),
        handshakes=_handshakes(sfu, people), names=[p.name for p in people],
        members=dict(sfu.signalling.members), identities=_identities(people),
    )
    result.summary = _summary(config, sfu, people, result, injector)
    return result


def _identities(people: list[Participant]) -> dict[str, dict[str, PublicIdentity]]:
    """Per member: its own identity key and the one it pinned for each peer (as signalling served it)."""
    out: dict[str, dict[str, PublicIdentity]] = {}
    for p in (p for p in people if p.member is not None):
        out[p.name] = {p.name: p.identity.public}
        for q in (q for q in people if q is not p and q.member is not None):
            try:
                out[p.name][q.name] = p.member.peer_identity(q.member.index)  # type: ignore[union-attr]
            except KeyAgreementError:
                pass
    return out


def _columns(record: type) -> list[str]:
    return list(record.__dataclass_fields__)


def _handshakes(sfu: SFUServer, people: list[Participant]) -> pd.DataFrame:
    rows = []
    for p in people:
        for side, leg, expected in (("participant", p.leg, sfu.fingerprint),
                                    ("sfu", sfu.legs[p.name], p.certificate.fingerprint())):
            keys = leg.keys
            rows.append({"leg": p.name, "side": side, "version": keys.version, "cipher": keys.cipher,
                         "profile": keys.profile.value, "peer_fingerprint": str(keys.peer_fingerprint),
                         "expected_fingerprint": str(expected)})
    return pd.DataFrame(rows)


def _sockets(sfu: SFUServer, people: list[Participant], injector: GarbageInjector | None) -> list[dict]:
    rows = [{"owner": f"sfu:{name}", "local": leg.local_addr, "remote": leg.remote_addr}
            for name, leg in sfu.legs.items()]
    rows += [{"owner": p.name, "local": p.leg.local_addr, "remote": p.leg.remote_addr} for p in people]
    if injector is not None:
        rows.append({"owner": "garbage", "local": injector.local_addr, "remote": None})
    return rows


def _key_holders(sfu: SFUServer, people: list[Participant], view: pd.DataFrame,
                 relay: pd.DataFrame) -> dict[str, set[str]]:
    """Which party holds which key, found by searching each party's key material for the key bytes.

    A participant's material: its leg's SRTP keys and the SFrame base keys its member holds. The
    SFU's: every leg's SRTP keys (its key log), plus everything it carried (relayed key messages,
    RTP payloads), in which a frame key would show up if it ever crossed the SFU in the clear.
    """
    material = {p.name: _participant_material(p) for p in people}
    sfu_keys = {bytes(k) for e in sfu.keylog() for k in (e.client_write, e.server_write)}
    carried = b"".join(relay["data"]) + b"".join(x for x in view["payload"] if x)
    holders: dict[str, set[str]] = {}
    for p in people:
        entry = p.leg.keylog_entry()
        srtp = bytes(entry.client_write)
        holders[f"SRTP key of {p.name}'s leg"] = ({n for n, m in material.items() if srtp in m}
                                                  | ({"sfu"} if srtp in sfu_keys else set()))
        if p.member is not None:
            frame_key = p.member.base_keys()[p.member.index, p.member.send_epoch]
            holders[f"{p.name}'s frame key"] = ({n for n, m in material.items() if frame_key in m}
                                                | ({"sfu"} if frame_key in carried else set()))
    return holders


def _participant_material(p: Participant) -> set[bytes]:
    entry = p.leg.keylog_entry()
    keys = {bytes(entry.client_write), bytes(entry.server_write)}
    if p.member is not None:
        keys |= set(p.member.base_keys().values())
    return keys


def _summary(config: CallConfig, sfu: SFUServer, people: list[Participant], result: CallResult,
             injector: GarbageInjector | None) -> dict:
    sent, received = result.sent, result.received
    rows = []
    for p in people:
        mine, others = sent[sent.participant == p.name], sent[sent.participant != p.name]
        got = received[(received.receiver == p.name) & received.decoded]
        row = {"name": p.name}
        for kind in ("video", "audio"):
            row[f"{kind}_frames_sent"] = int((mine.kind == kind).sum())
            row[f"{kind}_frames_expected"] = int((others.kind == kind).sum())
            row[f"{kind}_frames_decoded"] = int((got.kind == kind).sum())
        row.update(plis_sent=p.receiver.plis_sent, plis_received=p.sender.plis_received,
                   dropped=dict(sorted(p.counters().items())))
        rows.append(row)
    sfu_summary = {"packets_in": sfu.core.packets_in, "packets_forwarded": sfu.core.packets_forwarded,
                   **result.sfu.summary(), "plis_sent": sfu.core.plis_sent,
                   "key_messages_relayed": len(result.relay),
                   "dropped": dict(sorted(sfu.all_dropped().items()))}
    wire = result.wire.summary()
    return {
        "mode": config.mode, "participant_count": config.participants, "seconds": config.seconds,
        "seed": config.seed, "size": config.size, "srtp_profile": config.srtp_profile,
        "participants": rows, "sfu": sfu_summary,
        "wire": {"srtp_packets": sum(len(p.wire) for p in people),
                 **{k: wire[k] for k in ("video_frames_seen", "video_frames_decodable",
                                         "audio_frames_seen", "audio_frames_intelligible")}},
        "garbage_sent": dict(sorted(Counter(injector.sent).items())) if injector else {},
    }


def write_outputs(result, out: str | Path) -> None:
    """Write ``summary.json`` and ``sfu-keys.json`` (the SFU's key log) into directory ``out``.

    ``result``: a :class:`CallResult` or any call result with ``summary``, ``keylog`` and ``out``
    (the aiortc and browser calls' results).
    """
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
    write_keylog(path / "sfu-keys.json", result.keylog)
    result.out = path


# --- the e2ee-lab call command -----------------------------------------------------------------


PROFILES = (SRTPProfile.AEAD_AES_128_GCM.value, SRTPProfile.AES_CM_128_HMAC_SHA1_80.value)
CAPTURE_CHOICES = ("auto", "sniff", "tap", "off")


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``call`` options to ``parser`` and set ``func=cli_call``."""
    parser.add_argument("--mode", choices=MODES, default="e2ee", help="frame protection (default e2ee)")
    parser.add_argument("--participants", type=int, default=3, help="how many (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="media duration (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="reproducible pictures and frame keys")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for summary.json and sfu-keys.json (default reports/call-MODE)")
    parser.add_argument("--size", choices=SIZES, default=None, help="ci or full (default E2EE_LAB_SIZE)")
    parser.add_argument("--srtp-profile", choices=PROFILES, default=PROFILES[0], help="SRTP profile")
    parser.add_argument("--garbage", type=float, default=0.0, metavar="RATE",
                        help="garbage datagrams per second sent to the SFU's ports during the call")
    parser.add_argument("--capture", choices=CAPTURE_CHOICES, default="auto",
                        help="record the call to OUT/capture.pcap: sniff lo (needs root or "
                             "CAP_NET_RAW), the socket tap, auto (sniff, else tap) or off (default auto)")
    parser.add_argument("--stack", choices=("lab", "webrtc"), default="lab",
                        help="lab (default) or webrtc: aiortc peer connections and an aiortc SFU "
                             "(aiortc picks the SRTP profile; no socket tap, no --garbage)")
    parser.add_argument("--browser", type=int, default=0, metavar="N",
                        help="headless Chromium participants joining the webrtc stack's call (0 or 1; "
                             "--participants then counts the Python ones)")
    parser.set_defaults(func=cli_call)


def format_summary(summary: dict) -> str:
    """The short table ``cli_call`` prints: one line per participant, one for the SFU."""
    lines = [f"mode {summary['mode']}, {summary['participant_count']} participants, "
             f"{summary['seconds']:g} s, size {summary['size']}, {summary['srtp_profile']}",
             f"{'':10} {'video sent':>10} {'decoded':>12} {'audio sent':>10} {'decoded':>12} {'dropped':>8}"]
    for p in summary["participants"]:
        lines.append(f"{p['name']:10} {p['video_frames_sent']:>10} "
                     f"{p['video_frames_decoded']:>5}/{p['video_frames_expected']:<6} "
                     f"{p['audio_frames_sent']:>10} {p['audio_frames_decoded']:>5}/{p['audio_frames_expected']:<6} "
                     f"{sum(p['dropped'].values()):>8}")
    s = summary["sfu"]
    lines.append(f"{'SFU':10} packets in {s['packets_in']}, forwarded {s['packets_forwarded']}; video "
                 f"decodable {s['video_frames_decodable']}/{s['video_frames_seen']}, audio intelligible "
                 f"{s['audio_frames_intelligible']}/{s['audio_frames_seen']}; dropped {sum(s['dropped'].values())}")
    return "\n".join(lines)


def cli_call(args: argparse.Namespace) -> int:
    """Run the call ``args`` describe, print the table and where the JSON went; returns 0.

    A call that cannot run here (live capture not permitted, no Chromium, a bad option, a failed
    handshake or connection) prints one line to stderr and returns 2.
    """
    from e2ee_lab.webrtc.errors import WebRTCError  # here: e2ee_lab.webrtc imports this module

    out = args.out if args.out is not None else Path("reports") / f"call-{args.mode}"
    try:
        result = run_call(args.mode, args.participants, args.seconds, args.seed, args.size, out,
                          srtp_profile=args.srtp_profile, garbage=args.garbage,
                          capture=getattr(args, "capture", "off"), stack=getattr(args, "stack", "lab"),
                          browser_participants=getattr(args, "browser", 0))
    except (CaptureError, TransportError, WebRTCError, KeyAgreementError, ValueError) as exc:
        hint = " (--capture auto falls back to the socket tap)" if isinstance(exc, CaptureError) else ""
        print(f"call: {exc}{hint}", file=sys.stderr)
        return 2
    print(format_summary(result.summary))
    print(f"wrote {out / 'summary.json'} and {out / 'sfu-keys.json'}")
    if result.capture is not None:
        c = result.capture
        print(f"captured {c.datagrams} datagrams ({c.backend}) to {c.path}; "
              f"analyse with: e2ee-lab analyze {out}")
    return 0
