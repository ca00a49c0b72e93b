"""One receiver of a big room, per frame: what the call's receive path spends on each frame it verifies.

``e2ee-lab bench receiver`` builds the receive side of a lab call in memory, without sockets: an
in-memory group (:class:`~e2ee_lab.crypto.keys.Group`, keys from the OS, the call's rekey policy)
whose first ``publishers`` members send full-size video from pre-encoded clips
(:mod:`e2ee_lab.call.clip`) and whose first :data:`SPEAKERS` send speech, as a listener of a big
room gets them (the SFU forwards the three loudest). Their RTP packets, as the receiver's leg hands
them on after SRTP, go in arrival order into a fresh :class:`~e2ee_lab.call.pipeline.MediaReceiver`
per run with a fresh member of the group: it reassembles, checks and decrypts every frame (RFC 9605
with the lab's KID checks and replay window) and verifies it against what its publisher encrypted,
and decodes none (a listener of ``views="sample"``). Per kind, one row: the whole receive path in
µs per frame (median and IQR over runs), and, timed apart on the same packets:

- the two dependencies' calls every frame needs: aiortc's RTP parse (all the frame's packets,
  ``parse_us``) and the member's SFrame unprotect (one call per frame, ``unprotect_us``);
  ``rest_us`` is the lab's own code around them;
- the path's stages: the jitter buffer alone (:class:`~e2ee_lab.rtp.reassembly.FrameAssembler` fed
  the packets, parse included, ``reassembly_us``), the frame transform alone on the frames it
  assembled (the event's frame object and the e2ee ``unprotect``, ``transform_us``), and
  ``glue_us``, the whole minus both: the receiver's own work per frame (ground truth, verification,
  the record, dispatch) plus what running the stages interleaved costs over running each alone.

SRTP, sockets and the event loop are not in it (``bench sfu`` and ``bench call`` cover those). The
cycle collector is off while a part is timed (as ``timeit`` does), so a collection the previous
part's garbage triggers does not land on the next.

Why it exists: a room of 50 with 4 publishers asks every receiver for about 120 video and 150
audio frames a second; ``bench call`` says whether the whole room keeps up, this says where one
receiver's time goes, in one process, without the scheduling of a call's three processes on two
cores (it still moves with the machine's speed: compare runs made one after another) (issue 15).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd
from aiortc.rtp import RtpPacket

from e2ee_lab.bench.common import machine_info, median_iqr
from e2ee_lab.crypto.keys import Group
from e2ee_lab.rtp import make_extensions_map

if TYPE_CHECKING:
    from e2ee_lab.call.pipeline import MediaSender

KINDS = ("audio", "video")
SPEAKERS = 3  # the loudest speakers a big room's SFU forwards (issue 15)
START = 30.0  # group time of the first frame: every member sends under the current keys by then
COLUMNS = ["kind", "frames", "packets_per_frame", "us_per_frame", "iqr_us", "parse_us", "unprotect_us", "rest_us",
           "reassembly_us", "transform_us", "glue_us"]
PARTS = ("whole", "parse", "unprotect", "reassembly", "transform")
MEMBERS_PER_RUN = 3  # the receiver's, and one each for the unprotect and transform timings (replay windows)


def bench_receiver(*, publishers: int = 4, seconds: float = 4.0, repeat: int = 7,
                   progress: bool = True) -> pd.DataFrame:
    """One row per kind (module docstring); runs of the kinds and parts interleaved.

    Raises:
        ValueError: ``publishers`` or ``repeat`` below 1, ``seconds`` not positive.
    """
    if publishers < 1 or repeat < 1 or not seconds > 0:
        raise ValueError(f"publishers and repeat must be at least 1 and seconds positive, "
                         f"not {publishers}, {repeat}, {seconds}")
    if progress:
        print(f"bench receiver: {publishers} publishers, {min(SPEAKERS, publishers)} speakers, {seconds:g} s "
              f"of media, {repeat} runs...", flush=True)
    from e2ee_lab.call.common import CALL_KEY_POLICY  # the call stack is heavy: imported when this runs

    speakers = min(SPEAKERS, publishers)
    group = Group(policy=CALL_KEY_POLICY)
    for _ in range(publishers + MEMBERS_PER_RUN * (repeat + 1)):  # publishers, then the runs' members
        group.join(0.0)
    group.tick(START)
    senders = _senders(group, publishers, seconds)
    packets = {kind: _packets(senders, kind, speakers, seconds) for kind in KINDS}
    extensions = make_extensions_map()
    samples: dict[str, dict[str, list[float]]] = {k: {part: [] for part in PARTS} for k in KINDS}
    verified: dict[str, int] = {}  # frames per kind, every one verified (else _receive raises)
    for run in range(repeat + 1):  # run 0 warms up
        first = publishers + MEMBERS_PER_RUN * run
        receiver_member, spare, transform_member = (group.members[first + k] for k in range(MEMBERS_PER_RUN))
        for kind in KINDS:
            whole, frames = _receive(receiver_member, senders, packets[kind], f"r{run}")
            times = {"whole": whole,
                     "parse": _time(lambda: [RtpPacket.parse(data, extensions) for _, data in packets[kind]]),
                     **_part_times(spare, transform_member, senders, packets[kind], kind)}
            if run:
                for part, us in times.items():
                    samples[kind][part].append(us / frames)
            verified[kind] = frames
    rows = []
    for kind in KINDS:
        whole, iqr = median_iqr(samples[kind]["whole"])
        m = {part: median_iqr(samples[kind][part])[0] for part in PARTS}
        frames = verified[kind]
        rows.append({"kind": kind, "frames": frames, "packets_per_frame": round(len(packets[kind]) / frames, 2),
                     "us_per_frame": round(whole, 1), "iqr_us": round(iqr, 1), "parse_us": round(m["parse"], 1),
                     "unprotect_us": round(m["unprotect"], 1), "rest_us": round(whole - m["parse"] - m["unprotect"], 1),
                     "reassembly_us": round(m["reassembly"], 1), "transform_us": round(m["transform"], 1),
                     "glue_us": round(whole - m["reassembly"] - m["transform"], 1)})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["machine"] = machine_info()
    df.attrs["options"] = {"publishers": publishers, "speakers": speakers, "seconds": seconds, "repeat": repeat}
    return df


def format_receiver(df: pd.DataFrame) -> str:
    """The rows as a table, with what they cover."""
    o = df.attrs.get("options", {})
    lines = [f"one receiver's path per frame, sans sockets and SRTP ({o.get('publishers')} publishers' video, "
             f"{o.get('speakers')} speakers' audio, every frame verified, none decoded); µs per frame",
             f"{'kind':6} {'frames':>6} {'pkts/frame':>10} {'whole':>7} {'iqr':>5} {'aiortc parse':>12} "
             f"{'SFrame unprotect':>16} {'the lab around them':>19}   {'reassembly':>10} {'transform':>9} "
             f"{'glue':>6}"]
    for r in df.to_dict("records"):
        lines.append(f"{r['kind']:6} {r['frames']:>6} {r['packets_per_frame']:>10} {r['us_per_frame']:>7} "
                     f"{r['iqr_us']:>5} {r['parse_us']:>12} {r['unprotect_us']:>16} {r['rest_us']:>19}   "
                     f"{r['reassembly_us']:>10} {r['transform_us']:>9} {r['glue_us']:>6}")
    return "\n".join(lines)


def _senders(group: Group, publishers: int, seconds: float) -> list[MediaSender]:
    from e2ee_lab.call.clip import encoded_clip, speech_clip
    from e2ee_lab.call.frame_keys import make_frame_crypto
    from e2ee_lab.call.participant import SPEECH_STAGGER
    from e2ee_lab.call.pipeline import MediaSender
    from e2ee_lab.media.scene import Scene, video_size
    from e2ee_lab.media.speech import FRAME_MS, SpeechSource

    size = video_size("full")
    frames = int(round(seconds * size.fps))
    chunks = int(round(seconds * 1000 / FRAME_MS))
    senders = []
    for i in range(publishers):
        scene = Scene(i, width=size.width, height=size.height, fps=size.fps)
        speech = SpeechSource(offset_s=i * SPEECH_STAGGER)  # as the call staggers its speakers
        senders.append(MediaSender(f"publisher{i}", scene=scene, speech=speech,
                                   crypto=make_frame_crypto("e2ee", group.members[i]),
                                   ssrcs={"video": 1000 + i, "audio": 2000 + i}, seed=0, srtp_overhead=16,
                                   clip=encoded_clip(scene, frames), speech_clip=speech_clip(speech, chunks)))
    return senders


def _packets(senders: list[MediaSender], kind: str, speakers: int, seconds: float) -> list[tuple[float, bytes]]:
    """(arrival, RTP packet) of every frame of ``kind`` the senders send, in arrival order."""
    from e2ee_lab.media.speech import FRAME_MS

    out = []
    for i, sender in enumerate(senders):
        if kind == "video":
            fps = sender.clip.fps  # type: ignore[union-attr]
            for f in range(int(round(seconds * fps))):
                now = START + f / fps
                encoded, picture = sender.encode_video(f, False)
                sent = sender.send_video(f, encoded, picture, now, was_forced=False, captured_at=now)
                out += [(now, p) for p in sent]
        elif i < speakers:
            for c in range(int(round(seconds * 1000 / FRAME_MS))):
                now = START + c * FRAME_MS / 1000
                out += [(now, p) for p in sender.audio_frame(c, now, captured_at=now)]
    out.sort(key=lambda item: item[0])
    return out


def _receive(member, senders: list[MediaSender], packets: list[tuple[float, bytes]], name: str) -> tuple[float, int]:
    """µs for the whole receive path of ``packets`` and the frames verified (every frame must be)."""
    from e2ee_lab.call.frame_keys import make_frame_crypto
    from e2ee_lab.call.pipeline import MediaReceiver

    by_name = {s.name: s for s in senders}
    receiver = MediaReceiver(name, crypto=make_frame_crypto("e2ee", member), rtcp_ssrc=9,
                             truth=lambda p, kind, ts: by_name[p].sent(kind, ts) if p in by_name else None,
                             sent_data=lambda p, kind, ts: by_name[p].sent_data(kind, ts) if p in by_name else None,
                             decode_video=(), decode_audio=())
    for i, sender in enumerate(senders):
        receiver.announce(sender.ssrcs["video"], sender.name, i, "video")
        receiver.announce(sender.ssrcs["audio"], sender.name, i, "audio")
    with _no_gc():
        start = time.perf_counter()
        for now, data in packets:
            receiver.receive_rtp(data, now + 0.01)
        receiver.flush(packets[-1][0] + 1.0)
        elapsed = (time.perf_counter() - start) * 1e6
    frames = len(receiver.records)
    if not frames or any(not r.verified for r in receiver.records) or receiver.counters():
        raise RuntimeError(f"the receiver did not verify every frame: {dict(receiver.counters())}")
    return elapsed, frames


def _part_times(spare, transform_member, senders: list[MediaSender], packets: list[tuple[float, bytes]],
                kind: str) -> dict[str, float]:
    """µs for the jitter buffer alone on ``packets``; then, on the frames it assembled, for
    ``transform_member``'s frame transform alone (the frame object and the e2ee ``unprotect``, as
    the call's receiver builds them) and for ``spare``'s bare ``Member.unprotect`` (two members
    that have not seen the frames, so their replay windows pass each)."""
    from e2ee_lab.call.frame_keys import make_frame_crypto
    from e2ee_lab.call.pipeline import PAYLOAD_TYPES, REASSEMBLY_WAIT
    from e2ee_lab.rtp import FrameAssembled, FrameAssembler

    assembler = FrameAssembler(PAYLOAD_TYPES, extensions_map=make_extensions_map(), max_wait=REASSEMBLY_WAIT)
    events: list = []
    with _no_gc():
        start = time.perf_counter()
        for now, data in packets:
            events += assembler.receive(data, now + 0.01)
        events += assembler.flush()
        reassembly = (time.perf_counter() - start) * 1e6
    owner = {s.ssrcs[kind]: i for i, s in enumerate(senders)}  # publisher i is member i
    frames = [(e, owner[e.ssrc]) for e in events if isinstance(e, FrameAssembled)]
    crypto = make_frame_crypto("e2ee", transform_member)
    transform = _time(lambda: [crypto.unprotect(f.to_encoded_frame(), sender, START + 1.0, kind)
                               for f, sender in frames])
    unprotect = _time(lambda: [spare.unprotect(f.data, START + 1.0, sender=sender, kind=kind) for f, sender in frames])
    return {"reassembly": reassembly, "transform": transform, "unprotect": unprotect}


@contextmanager
def _no_gc():
    """Time without the cycle collector (module docstring)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _time(job: Callable[[], object]) -> float:
    with _no_gc():
        start = time.perf_counter()
        job()
        return (time.perf_counter() - start) * 1e6
