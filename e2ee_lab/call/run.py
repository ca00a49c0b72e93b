"""The lab's stack: an SFU and N participants in one event loop, real media in real time, on loopback.

:func:`run_call_async` starts the SFU (:class:`~e2ee_lab.sfu.server.SFUServer`) and the participants
(:class:`~e2ee_lab.call.participant.Participant`), lets each connect (offer/answer with certificate
fingerprints, a real DTLS 1.2 handshake with use_srtp per leg, RFC 5764), runs the group key
agreement in the e2ee modes (key messages through the SFU's signalling relay), sends pictures at
the frame rate and speech every 20 ms for ``seconds``, waits for the packets in flight (until no
participant has received one for :data:`DRAIN` s), and closes everything. :func:`run_lab_call`
does the same from synchronous code, and from a notebook (a running loop: it runs the call on a
worker thread with a loop of its own); it is what ``run_call(..., stack="lab")`` runs
(:mod:`e2ee_lab.call.stacks`, registered by :mod:`e2ee_lab.call.stack`).

The result (:class:`~e2ee_lab.call.common.CallResult`) holds the SFU's per-packet view, per-frame
sender and receiver records, the SFU's own decoding attempt (:mod:`e2ee_lab.analysis.sfu_view`),
an eavesdropper's attempt on the first SRTP packets of each participant, the SFU's key log, the
relayed key messages and a JSON-ready ``summary`` (also written to ``out/summary.json``, with the
key log in ``out/sfu-keys.json``, and, in the ``e2ee`` and ``clear-prefix`` modes, the members'
frame keys, labelled as their secret, in ``out/frame-keys.json``); with ``capture=`` the call is
also recorded to ``out/capture.pcap`` (:mod:`e2ee_lab.call.capture`).

Real time. Every participant lives in this one process, so on a busy or small machine the call
can fall behind: the summary says whether it kept real time (``"real_time"``,
``"real_time_reason"``: every receiver got >= 95 % of each kind decrypted by its playout
deadline, capture time + ``"playout_budget_s"``; see
:func:`~e2ee_lab.call.common.real_time_verdict`), counts each receiver's ``*_frames_late`` and
``*_frames_on_time``, and gives the process's CPU seconds over the call (``"cpu"``); the printed
table ends with that verdict.

Keys. Identity keys, sessions and frame keys come from the OS in every call; the seed keeps
pictures, SSRCs and schedules reproducible. ``reproducible_keys=True`` (``e2ee-lab call
--reproducible-keys``) derives the keys from the seed too, for recordings and tests: anyone who
knows the seed, the SFU included, then recomputes them; the summary (``"reproducible_keys"``) and
the printed table say so. ``key_policy="naive"`` (``--key-policy naive``) runs members with the four
checks of :class:`~e2ee_lab.crypto.keys.KeyChecks` off (:meth:`~e2ee_lab.crypto.keys.RekeyPolicy.naive`),
the counter-example the attacks of :mod:`e2ee_lab.attacks` beat; the summary's ``"key_policy"``
says which ran.

Over 500 lines: the call's orchestration (setup, media in one process or in workers, drain) and
the assembly of its result (summary, key holders, handshakes, sockets) both read the participants'
and the SFU's internals; the result assembly is the part that could move out.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd

from e2ee_lab.analysis.sfu_view import analyze_packets, sent_speech, view_packets, wire_packets
from e2ee_lab.call.capture import CallCapture, call_frame_keys
from e2ee_lab.call.clip import ENCODINGS, encoded_clip, speech_clip
from e2ee_lab.call.workers import check_workers, run_media_in_workers
from e2ee_lab.call.common import (
    CALL_KEY_POLICY,
    DEFAULT_PROFILE,
    START_DELAY,
    CallConfig,
    CallResult,
    CPUMeter,
    cpu_summary,
    real_time_verdict,
    records_table,
    resolve_key_policy,
    run_blocking,
    wait_for_group_keys,
    write_outputs,
)
from e2ee_lab.call.frame_keys import MODES
from e2ee_lab.call.garbage import GarbageInjector
from e2ee_lab.call.participant import Participant, participant_name
from e2ee_lab.call.pipeline import PLAYOUT_BUDGET, ReceivedFrame, SenderOptions, SentFrame
from e2ee_lab.config import LOUDEST_ROOM_SIZE, Size, lab_size
from e2ee_lab.crypto.keys import IdentityKeyPair, KeyAgreementError, PublicIdentity, RekeyPolicy
from e2ee_lab.media.scene import video_size
from e2ee_lab.media.speech import FRAME_MS
from e2ee_lab.rtp import RTPSFrameMode
from e2ee_lab.sfu.core import SFUCore
from e2ee_lab.sfu.loudest import DEFAULT_LOUDEST
from e2ee_lab.sfu.policy import Policy
from e2ee_lab.sfu.server import SFUServer
from e2ee_lab.transport import SRTPProfile

DRAIN = 0.2  # seconds without a new packet at any participant that end the call
MAX_DRAIN = 5.0  # seconds the call waits at most for packets in flight after the last frame
# Worker threads for rendering and VP8 encoding. One: the scenes share Pillow's FreeType fonts,
# which must not be used from two threads at once, and one core is left for the event loop.
ENCODER_THREADS = 1
LOOPS = ("asyncio", "uvloop")  # run_lab_call(loop=...)
VIEW_SAMPLE = "sample"  # views=: each publisher's video decoded by one receiver, the rest verified only
WORKER_START_DELAY = 0.5  # seconds between "media go" and the first frame when workers must fork first


# --- the call -------------------------------------------------------------------------------------


async def run_call_async(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 5.0,
                         seed: int = 0, size: Size | None = None, out: str | Path | None = None, *,
                         srtp_profile: str = DEFAULT_PROFILE, garbage: float = 0.0,
                         capture: str = "off", policy: Policy | None = None,
                         key_policy: RekeyPolicy | str = CALL_KEY_POLICY,
                         sfu_setup: Callable[[SFUServer], None] | None = None,
                         sender_options: SenderOptions | None = None,
                         rtp_sframe: str | None = None,
                         reproducible_keys: bool = False,
                         identities: Mapping[str, IdentityKeyPair] | None = None,
                         publishers: int | None = None,
                         loudest: int = DEFAULT_LOUDEST,
                         encode: str = "live", views: int | str | None = None,
                         workers: int = 0, worker_loop: str = "asyncio") -> CallResult:
    """Run one call in the running event loop (see :func:`run_lab_call` for the arguments;
    ``worker_loop`` is its ``loop`` for the workers)."""
    started = time.perf_counter()
    meter = CPUMeter("call: the SFU and every participant")
    key_policy = resolve_key_policy(key_policy)
    config = replace(_config(mode, participants, seconds, seed, size, srtp_profile, garbage),
                     reproducible_keys=bool(reproducible_keys), key_policy=key_policy.name)
    config = replace(config, **_room(participants, publishers, loudest, encode, views))
    check_workers(workers)
    if workers and (encode != "clip" or capture != "off" or garbage):
        raise ValueError("workers need encode='clip' (receivers judge other processes' frames by the clips), "
                         "capture='off' and no garbage")
    if sender_options is not None:
        config = replace(config, sender_options=sender_options)
    if rtp_sframe is not None:
        if mode != "e2ee":
            raise ValueError(f"--rtp-sframe needs --mode e2ee, not {mode}")
        config = replace(config, rtp_sframe=RTPSFrameMode(rtp_sframe).value)
    recorder = CallCapture(out, capture)  # type: ignore[arg-type]  # ValueError for a bad mode
    worker_reports: list[dict] = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> float:
        return loop.time() - t0

    profile = SRTPProfile(config.srtp_profile)
    core = SFUCore(learn_ssrcs=False, packet_events=False, loudest=config.loudest,
                   loudest_above=LOUDEST_ROOM_SIZE)
    sfu = SFUServer(core=core, profiles=(profile,), key_policy=key_policy)
    if policy is not None:
        sfu.core.policy = policy
    if sfu_setup is not None:
        sfu_setup(sfu)
    dims = video_size(config.size)
    people = [Participant(i, mode=mode, size=dims, seed=seed, profile=profile, clock=clock,
                          key_policy=key_policy, options=config.sender_options,
                          rtp_sframe=config.rtp_sframe, reproducible_keys=config.reproducible_keys,
                          identity=(identities or {}).get(participant_name(i)),
                          publishes_video=config.publishers is None or i < config.publishers)
              for i in range(participants)]
    injector = GarbageInjector(sfu, people, seed=seed, rate=garbage) if garbage else None
    frames = int(round(config.seconds * dims.fps))
    clips = {p.name: encoded_clip(p.scene, frames) for p in people
             if config.encode == "clip" and p.publishes_video}  # before the call: not real time
    chunks = int(round(config.seconds * 1000 / FRAME_MS))
    speech = {p.name: speech_clip(p.speech, chunks, cbr=config.sender_options.opus_cbr) for p in people
              if config.encode == "clip"}
    await recorder.start()  # before the first leg opens: the handshakes are in the capture
    try:
        await _connect(sfu, people)
        truth, sent_data, decode = _truth(people), _sent_data(people), _views(people, config.views)
        listen = _audio_views(people, config.views)
        for p in people:
            p.prepare(truth, sent_data=sent_data, decode_video=decode[p.name], decode_audio=listen[p.name],
                      clip=clips.get(p.name), speech_clip=speech.get(p.name))
        if injector is not None:
            await injector.open()
        media_meter = CPUMeter("media")
        if workers:
            sfu.announce_streams()  # the workers' receivers must know every SSRC before they leave
            start = loop.time() + WORKER_START_DELAY
            for p in people:  # what receivers in other processes judge frames by
                p.sender.plan(clock() + (start - loop.time()), frames if p.publishes_video else 0, chunks)
            worker_reports = await run_media_in_workers(people, start, config.seconds, workers, _drain,
                                                        loop=worker_loop)
        else:
            start = loop.time() + START_DELAY
            with ThreadPoolExecutor(max_workers=ENCODER_THREADS, thread_name_prefix="e2ee-lab-encode") as pool:
                jobs = [p.run(start, config.seconds, pool) for p in people]
                if injector is not None:
                    jobs.append(injector.run(config.seconds))
                await asyncio.gather(*jobs)
            await _drain(people)
            for p in people:
                p.finish()
        media_load = media_meter.stop()
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
    load = {**meter.stop(), "media_cpu_s": media_load["cpu_s"], "media_wall_s": media_load["wall_s"]}
    if workers:
        load["role"] = "call: the SFU (and the setup)"
    workers_cpu = [r["cpu"] for r in worker_reports if r["cpu"] is not None]
    result.summary["cpu"] = cpu_summary([load, *workers_cpu], config.participants, config.seconds)
    if workers:
        result.summary["workers"] = [{k: v for k, v in r.items() if k != "cpu"} for r in worker_reports]
        died = [r["reason"] for r in worker_reports if r["died"]]
        if died:
            result.summary.update(real_time=False, real_time_reason="; ".join(died))
    if out is not None:
        write_outputs(result, out)
    return result


def run_lab_call(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 5.0, seed: int = 0,
                 size: Size | None = None, out: str | Path | None = None, *,
                 srtp_profile: str = DEFAULT_PROFILE, garbage: float = 0.0,
                 capture: str = "off", policy: Policy | None = None,
                 key_policy: RekeyPolicy | str = CALL_KEY_POLICY,
                 sfu_setup: Callable[[SFUServer], None] | None = None,
                 sender_options: SenderOptions | None = None,
                 rtp_sframe: str | None = None,
                 reproducible_keys: bool = False,
                 identities: Mapping[str, IdentityKeyPair] | None = None,
                 publishers: int | None = None,
                 loudest: int = DEFAULT_LOUDEST,
                 encode: str = "live", views: int | str | None = None,
                 workers: int = 0, loop: str = "asyncio") -> CallResult:
    """Run the lab's call and return its :class:`CallResult` (from a script, or from a notebook).

    Args:
        mode: "dtls-srtp" (SRTP per hop only), "e2ee" (SFrame) or "clear-prefix".
        participants: how many (2..255).
        seconds: how long media flows (real time).
        seed: reproducible pictures, SSRCs and schedules (keys only with ``reproducible_keys``;
            DTLS keys are always fresh).
        size: "ci" (320x240, 15 fps) or "full" (640x480, 30 fps); default :func:`lab_size`.
        out: a directory for ``summary.json``, ``sfu-keys.json`` and (e2ee modes) ``frame-keys.json``, or None.
        srtp_profile: "AEAD_AES_128_GCM" (default) or "AES_CM_128_HMAC_SHA1_80".
        garbage: datagrams per second of garbage sent to the SFU's ports during the call.
        capture: "off" (default), "auto", "sniff" or "tap": record the call's datagrams, DTLS
            handshakes included, to ``out/capture.pcap`` (:mod:`e2ee_lab.call.capture`);
            ``result.capture`` says where and how.
        policy: the SFU core's forwarding policy (default honest; :mod:`e2ee_lab.attacks.sfu`).
        key_policy: rekey policy of the signalling roster and of every member (e2ee modes), or
            "fixed" (:data:`~e2ee_lab.call.common.CALL_KEY_POLICY`) or "naive" (the same with every
            check of :class:`~e2ee_lab.crypto.keys.KeyChecks` off: the attacks' counter-example).
        sfu_setup: called with the :class:`SFUServer` before anyone connects (a malicious
            operator's changes to its signalling: answers, key directory, relay).
        sender_options: how every participant sends (:class:`~e2ee_lab.call.pipeline.SenderOptions`:
            Opus CBR, the RFC 6464 audio level on or off, audio padding); default a browser's.
        rtp_sframe: "per-frame" or "per-packet": offer the SFrame RTP payload format
            (draft-ietf-avtcore-rtp-sframe-02, ``e2ee`` mode, lab and webrtc stacks); None (default)
            keeps the codec's packetization. ``summary["participants"][i]["packetization"]``
            says what each participant sent.
        reproducible_keys: derive identity keys, sessions and frame keys from ``seed`` (recordings,
            tests; anyone with the seed recomputes them); default False: drawn from the OS.
        identities: long-term identity key pairs by participant name ("alice", ...), reused across
            calls as a device reuses its keys (the cross-call replay of :mod:`e2ee_lab.attacks`
            needs it); sessions and frame keys are still drawn per call. Default: new ones per call.
        publishers: the first ``publishers`` participants send video, the others are listeners with
            their camera off (everyone sends audio, everyone receives every publisher's video);
            None (default): everyone publishes.
        loudest: in rooms of more than :data:`~e2ee_lab.config.LOUDEST_ROOM_SIZE` participants the
            SFU forwards the audio of the ``loudest`` loudest speakers only, chosen from the RFC 6464
            levels (:mod:`e2ee_lab.sfu.loudest`); each receiver's ``audio_frames_expected`` then
            counts the audio the SFU forwarded to it. Default 3.
        encode: "live" (default): every sender renders and encodes its camera and microphone
            during the call; "clip": each scene and speech track is encoded once before the call and shared
            (:mod:`e2ee_lab.call.clip`; every sender still encrypts and packetizes with its keys).
        views: how many publishers' video each receiver decodes (its views, spread over the
            publishers); it verifies every frame either way (``*_frames_verified``: decrypted to
            exactly what was sent). None (default): it decodes every publisher's video;
            ``"sample"``: each publisher's video is decoded by one receiver (the next participant).
        workers: run the participants' media in this many forked worker processes
            (:mod:`e2ee_lab.call.workers`; the SFU stays in this process); needs ``encode="clip"``,
            ``capture="off"``, no garbage, and a script's main thread. 0 (default): one process.
        loop: "asyncio" (default) or "uvloop" (``pip install 'e2ee-lab[fast]'``): the event loop
            the participants run on: the call's one process, or with ``workers`` each worker's (the
            SFU's process then stays on asyncio). uvloop's transports cannot be tapped: use it with
            ``capture="off"`` or ``"sniff"``.

    Raises:
        ValueError: a bad mode, count, duration, profile, size, capture mode, key policy or loop name.
        DTLSError: a handshake failed.  CaptureNotPermitted: ``capture="sniff"`` without rights.
        ImportError: ``loop="uvloop"`` without uvloop.
    """

    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(LOOPS)}, not {loop!r}")
    if loop == "uvloop":
        import uvloop  # ImportError without it: pip install 'e2ee-lab[fast]'

    def job() -> CallResult:
        runner = uvloop.run if loop == "uvloop" and not workers else asyncio.run
        return runner(run_call_async(mode, participants, seconds, seed, size, out,
                                          srtp_profile=srtp_profile, garbage=garbage,
                                          capture=capture, policy=policy, key_policy=key_policy,
                                          sfu_setup=sfu_setup, sender_options=sender_options,
                                          rtp_sframe=rtp_sframe, reproducible_keys=reproducible_keys,
                                          identities=identities, publishers=publishers, loudest=loudest,
                                          encode=encode, views=views, workers=workers,
                                          worker_loop=loop))

    return run_blocking(job, "e2ee-lab-call")


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


def _room(participants: int, publishers: int | None, loudest: int, encode: str, views: int | None) -> dict:
    """The room's shape as :class:`CallConfig` fields; ValueError for a bad count or name."""
    if publishers is not None and not 1 <= publishers <= participants:
        raise ValueError(f"publishers must be 1..{participants} (the participants), not {publishers}")
    if loudest < 1:
        raise ValueError(f"loudest must be >= 1, not {loudest}")
    if encode not in ENCODINGS:
        raise ValueError(f"encode must be one of {', '.join(ENCODINGS)}, not {encode!r}")
    if views is not None and views != VIEW_SAMPLE and (not isinstance(views, int) or views < 0):
        raise ValueError(f"views must be None, an int >= 0 or {VIEW_SAMPLE!r}, not {views!r}")
    return {"publishers": publishers, "loudest": int(loudest), "encode": encode, "views": views}


def _views(people: list[Participant], views: int | str | None) -> dict[str, list[str] | None]:
    """Per receiver: the publishers whose video it decodes, ``views`` of them, rotated by its
    position so the decoding spreads over the publishers (None everywhere: all of them). With
    :data:`VIEW_SAMPLE` each publisher's video is decoded by one receiver, the next participant."""
    if views is None:
        return {p.name: None for p in people}
    if views == VIEW_SAMPLE:
        sample: dict[str, list[str] | None] = {p.name: [] for p in people}
        for i, q in enumerate(people):
            if q.publishes_video:
                sample[people[(i + 1) % len(people)].name].append(q.name)  # type: ignore[union-attr]
        return sample
    out: dict[str, list[str] | None] = {}
    for i, p in enumerate(people):
        others = [q.name for q in people if q.publishes_video and q is not p]
        start = i % len(others) if others else 0
        out[p.name] = [others[(start + k) % len(others)] for k in range(min(views, len(others)))]
    return out


def _audio_views(people: list[Participant], views: int | str | None) -> dict[str, list[str] | None]:
    """Per receiver: the publishers whose audio it decodes. A listener decodes every speaker the
    SFU forwards (None), except with :data:`VIEW_SAMPLE`: then each participant's audio is decoded
    by one receiver, the next participant (when the SFU forwards it there), as its video is."""
    if views != VIEW_SAMPLE:
        return {p.name: None for p in people}
    return {p.name: [people[i - 1].name] for i, p in enumerate(people)}


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


def _sent_data(people: list[Participant]):
    by_name = {p.name: p for p in people}

    def sent_data(publisher: str, kind: str, timestamp: int) -> bytes | None:
        p = by_name.get(publisher)
        return None if p is None or p.sender is None else p.sender.sent_data(kind, timestamp)

    return sent_data


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
    sent = records_table((r for p in people for r in p.sender.records), SentFrame)
    received = records_table((r for p in people for r in p.receiver.records), ReceivedFrame)
    scenes = {p.name: p.scene for p in people}
    audio = sent[sent.kind == "audio"].groupby("participant").frame_index.max()
    speech = {p.name: sent_speech(p.speech, int(audio.get(p.name, -1)) + 1) for p in people}
    sframe = [p.name for p in people if p.rtp_sframe_agreed]
    sfu_view = analyze_packets(view_packets(view), sent, scenes=scenes, speech=speech,
                               sframe_publishers=sframe)
    ssrcs = {ssrc: p.name for p in people for ssrc in p.ssrcs.values()}
    wire = analyze_packets(wire_packets([d for p in people for d in p.wire], ssrcs), sent,
                           scenes=scenes, speech=speech, sframe_publishers=sframe)
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
    # each distinct payload once: the SFU forwards one packet's payload to every subscriber
    carried = b"".join(relay["data"]) + b"".join(dict.fromkeys(x for x in view["payload"] if x))
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
        arrived = received[received.receiver == p.name]
        got = arrived[arrived.decoded.astype(bool)]  # astype: an empty object column would select columns
        on_time = arrived[(arrived.decrypted & ~arrived.late).astype(bool)]
        row = {"name": p.name}
        for kind in ("video", "audio"):
            row[f"{kind}_frames_sent"] = int((mine.kind == kind).sum())
            row[f"{kind}_frames_expected"] = int((others.kind == kind).sum())
            if kind == "audio" and sfu.core.selecting_speakers:  # what the SFU chose to forward to it
                row["audio_frames_expected"] = sfu.core.audio_forwarded[p.name]
            row[f"{kind}_frames_decoded"] = int((got.kind == kind).sum())
            row[f"{kind}_frames_verified"] = int((arrived.verified & (arrived.kind == kind)).sum())
            row[f"{kind}_frames_late"] = int((arrived.late & (arrived.kind == kind)).sum())
            row[f"{kind}_frames_on_time"] = int((on_time.kind == kind).sum())
        row.update(plis_sent=p.receiver.plis_sent, plis_received=p.sender.plis_received,
                   packetization=p.packetization, dropped=dict(sorted(p.counters().items())))
        rows.append(row)
    sfu_summary = {"packets_in": sfu.core.packets_in, "packets_forwarded": sfu.core.packets_forwarded,
                   **result.sfu.summary(), "plis_sent": sfu.core.plis_sent,
                   "key_messages_relayed": len(result.relay),
                   "dropped": dict(sorted(sfu.all_dropped().items()))}
    wire = result.wire.summary()
    return {
        "mode": config.mode, "participant_count": config.participants, "seconds": config.seconds,
        "seed": config.seed, "size": config.size, "srtp_profile": config.srtp_profile,
        "rtp_sframe": config.rtp_sframe,  # the payload format offered; each row says what ran
        "reproducible_keys": config.reproducible_keys, "key_policy": config.key_policy,
        "participants": rows, "sfu": sfu_summary,
        "wire": {"srtp_packets": sum(len(p.wire) for p in people),
                 **{k: wire[k] for k in ("video_frames_seen", "video_frames_decodable",
                                         "audio_frames_seen", "audio_frames_intelligible")}},
        "garbage_sent": dict(sorted(Counter(injector.sent).items())) if injector else {},
        "playout_budget_s": PLAYOUT_BUDGET,
        **real_time_verdict(rows),
        "publishers": sum(p.publishes_video for p in people),
        "encode": config.encode, "views": config.views,
        "loudest": {"n": config.loudest, "room_above": sfu.core.loudest_above,
                    "active": sfu.core.selecting_speakers,
                    "selection_changes": sfu.core.speakers.selection_changes if sfu.core.speakers else 0,
                    "audio_withheld": sfu.core.audio_withheld},
    }
