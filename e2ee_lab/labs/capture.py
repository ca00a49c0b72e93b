"""Notebook 02 (what the SFU sees): a captured call, one packet layer by layer, the checks of its tasks.

:func:`captured_call` runs a short call and sniffs it with scapy where live capture is permitted;
elsewhere it says why in one line and loads the recording in ``data/captures/`` instead. The
dissection helpers read one pcap record with scapy (Ether / IP / UDP / Raw, RFC 894, 791, 768),
then the RTP header (RFC 3550 §5.1, clear in SRTP), and after SRTP unprotect with the SFU's key
log (RFC 3711) the VP8 payload descriptor (RFC 7741 §4.2) and either the VP8 key-frame header
(RFC 6386 §9.1) or the SFrame header (RFC 9605 §4.3). The checks recompute their answers from the
student's own capture.
"""

from __future__ import annotations

import pandas as pd

from e2ee_lab.analysis.views import CapturedCall, ThreeViews, analyze_views, recording
from e2ee_lab.capture import CaptureError, sniff_problem
from e2ee_lab.capture.pcap import LegMap
from e2ee_lab.config import lab_size, scratch_dir
from e2ee_lab.crypto.keys import parse_kid
from e2ee_lab.crypto.sframe import MalformedHeader, decode_header
from e2ee_lab.labs import Feedback, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import Choice, Choices, whole_number
from e2ee_lab.labs.session import note_source
from e2ee_lab.media.codecs import vp8_key_frame_size
from e2ee_lab.rtp import RTPError, VP8PayloadDescriptor, parse_rtp

PARTICIPANTS = 2
SEED = 0


def call_seconds() -> float:
    """How long the notebook's calls last: 2 s at ci size, 4 s at full size."""
    return 2.0 if lab_size() == "ci" else 4.0


def captured_call(mode: str, *, seed: int = SEED) -> CapturedCall:
    """A two-person ``mode`` call sniffed live on ``lo``, or the recording where that is not
    permitted (one line says which). The pcap goes to a new temporary directory."""
    from e2ee_lab.call import run_call

    problem = sniff_problem()
    if problem is None:
        out = scratch_dir(f"e2ee-lab-02-{mode}-")
        try:
            result = run_call(mode, PARTICIPANTS, call_seconds(), seed=seed, size=lab_size(),
                              out=out, capture="sniff")
        except CaptureError as exc:
            problem = exc
        else:
            print(f"{mode}: captured live with scapy on lo, {result.capture.datagrams} datagrams "
                  f"in {result.capture.path}")
            note_source(f"capture {mode}", "live")
            return CapturedCall.from_result(result)
    print(f"{mode}: live capture is not permitted here ({problem}); "
          f"using the recorded capture in data/captures/{mode}")
    note_source(f"capture {mode}", "recording")
    return recording(mode)


def views(call: CapturedCall) -> ThreeViews:
    """The wire, SFU and receiver views of ``call`` (:func:`~e2ee_lab.analysis.views.analyze_views`)."""
    return analyze_views(call)


# --- tables ---------------------------------------------------------------------------------------


def overview(v: ThreeViews) -> pd.DataFrame:
    """What the capture holds: datagrams per kind, and how many of them the SFU's keys open."""
    wire, sfu = v.wire.packets, v.sfu.packets
    table = pd.DataFrame({"datagrams": wire.kind.value_counts(),
                          "opened with the SFU's key log": sfu[sfu.decrypted].kind.value_counts()})
    return table.fillna(0).astype(int).rename_axis("kind")


def handshakes(v: ThreeViews) -> pd.DataFrame:
    """The DTLS datagrams on the wire: record number, direction, leg, what a passive observer reads."""
    p = v.wire.packets
    dtls = p[p.kind == "dtls"]
    return dtls[["no", "time", "leg", "direction", "size", "detail"]].reset_index(drop=True)


def first_media_packet(v: ThreeViews, kind: str = "video", publisher: str | None = None) -> int:
    """Record number of ``publisher``'s first ``kind`` RTP packet to the SFU (its first frame)."""
    publisher = publisher or v.call.names[0]
    p = v.wire.packets
    rows = p[(p.kind == "rtp") & (p.ssrc == v.call.truth.ssrc_of(publisher, kind))]
    return int(rows.no.iloc[0])


def wire_packet(call: CapturedCall, number: int):
    """Record ``number`` of the capture (1-based, as tshark counts) dissected by scapy."""
    from scapy.layers.l2 import Ether
    from scapy.utils import RawPcapReader

    reader = RawPcapReader(str(call.pcap))
    try:
        for no, (data, _meta) in enumerate(reader, start=1):
            if no == number:
                return Ether(data)
    finally:
        reader.close()
    raise IndexError(f"the capture has no record {number}")


def layer_table(packet, *, max_bytes: int = 12) -> pd.DataFrame:
    """Every layer scapy dissected in ``packet`` and each of its fields, one row per field; raw
    bytes are cut to their length and first ``max_bytes`` bytes in hex."""
    rows = []
    layer = packet
    while layer is not None and layer.name != "NoPayload":
        for spec in layer.fields_desc:
            value = layer.getfieldval(spec.name)
            if isinstance(value, bytes):
                value = f"{len(value)} bytes: {value[:max_bytes].hex(' ')} ..."
            rows.append((layer.name, spec.name, value if isinstance(value, (int, str)) else str(value)))
        layer = layer.payload if layer.payload else None
    return pd.DataFrame(rows, columns=["layer", "field", "value"])


def rtp_header(packet):
    """The UDP payload of a scapy packet read as RTP by scapy (its header is clear in SRTP)."""
    from scapy.layers.inet import UDP
    from scapy.layers.rtp import RTP

    return RTP(bytes(packet[UDP].payload))


def decrypt(call: CapturedCall, packet) -> bytes:
    """The plaintext RTP packet inside one SRTP datagram, unprotected with the SFU's key log.

    Raises NoKeyForLeg (a datagram of no leg) or the SRTPError family (wrong key, not SRTP).
    """
    from scapy.layers.inet import IP, UDP

    src, dst = (packet[IP].src, packet[UDP].sport), (packet[IP].dst, packet[UDP].dport)
    return LegMap(call.keylog).unprotect(bytes(packet[UDP].payload), src, dst)


def media_headers(plain: bytes) -> pd.DataFrame:
    """Layer by layer, what the SFU reads in a plaintext RTP packet beyond the RTP header: the
    VP8 payload descriptor, then the VP8 key-frame header or the SFrame header (frame starts)."""
    rows = []
    try:
        rtp = parse_rtp(plain)
        rows += [("RTP", "payload type", rtp.payload_type), ("RTP", "payload bytes", len(rtp.payload))]
        descriptor, body = VP8PayloadDescriptor.parse(rtp.payload)
    except RTPError as err:
        return pd.DataFrame(rows + [("RTP", "error", str(err))], columns=["layer", "field", "value"])
    rows += [("VP8 payload descriptor", "S (start of frame)", descriptor.start_of_partition),
             ("VP8 payload descriptor", "picture id", descriptor.picture_id)]
    if descriptor.starts_frame:
        rows += _frame_start(body)
    return pd.DataFrame(rows, columns=["layer", "field", "value"])


def _frame_start(body: bytes) -> list[tuple[str, str, object]]:
    size = vp8_key_frame_size(body)
    if size is not None:
        return [("VP8 key frame", "start code", body[3:6].hex(" ")), ("VP8 key frame", "width", size[0]),
                ("VP8 key frame", "height", size[1])]
    try:
        kid, ctr, length = decode_header(body)
    except MalformedHeader:
        return [("frame", "first bytes", body[:8].hex(" "))]
    try:
        epoch, member, kind = parse_kid(kid)
    except ValueError:  # not the lab's KID layout
        epoch, member, kind = None, None, None
    return [("SFrame header", "bytes", body[:length].hex(" ")), ("SFrame header", "KID", kid),
            ("SFrame header", "CTR", ctr), ("SFrame header", "epoch (KID >> 12)", epoch),
            ("SFrame header", "kind (KID >> 8 & 0xf)", kind),
            ("SFrame header", "member (KID & 0xff)", member),
            ("SFrame ciphertext", "bytes (incl. 16-byte tag)", len(body) - length)]


def entropy_table(all_views: dict[str, ThreeViews]) -> pd.DataFrame:
    """Per mode and view: the entropy of all video / audio payload bytes taken together."""
    rows = []
    for mode, v in all_views.items():
        for view in ("wire", "sfu"):
            e = v.stream_entropy(view)
            for kind in ("video", "audio"):
                part = e[e.kind == kind]
                rows.append({"mode": mode, "view": view, "kind": kind,
                             "bytes": int(part["bytes"].sum()),
                             "lowest stream entropy (bits/byte)": round(float(part.entropy.min()), 3)})
    return pd.DataFrame(rows)


# --- checks ---------------------------------------------------------------------------------------


def _record(v: ThreeViews, ssrc: int, seq: int) -> int:
    p = v.sfu.packets
    return int(p[(p.kind == "rtp") & (p.ssrc == ssrc) & (p.seq == seq)].no.iloc[0])


def first_badge_packet(v: ThreeViews, publisher: str | None = None) -> int | None:
    """Record number of the packet that completes the first frame of ``publisher``'s video the SFU
    decodes into the sent picture: from that packet on it can read the badge (None: never)."""
    publisher = publisher or v.call.names[0]
    ssrc = v.call.truth.ssrc_of(publisher)
    f = v.sfu.frames
    good = f[(f.ssrc == ssrc) & f.decodable.astype(bool)]
    if not len(good):
        return None
    return _record(v, ssrc, int(good.last_seq.iloc[0]))


@check
def check_first_badge_packet(answer: int | None, v: ThreeViews) -> Feedback:
    """Task 1: the record number from which on the SFU can read the first participant's badge."""
    if answer is None:
        return unanswered("Task 1")
    expected = first_badge_packet(v)
    if expected is None:
        return not_yet("in this call the SFU decodes none of the video: use the dtls-srtp views")
    if not isinstance(answer, int) or isinstance(answer, bool):
        return not_yet(f"answer with a record number (an int, like tshark's frame.number), not {answer!r}")
    if answer == expected:
        return correct(f"record {expected} completes the first frame the SFU decodes into the badge; "
                       "before it, the SFU held at most parts of Alice's first key frame")
    ssrc = v.call.truth.ssrc_of(v.call.names[0])
    f = v.sfu.frames
    frame = f[(f.ssrc == ssrc) & f.decodable.astype(bool)].iloc[0]
    if answer == _record(v, ssrc, int(frame.first_seq)) and frame.packets > 1:
        return not_yet(f"record {answer} starts that key frame, but the frame spans {frame.packets} "
                       "packets and the decoder needs all of them: take its last_seq")
    p = v.wire.packets
    row = p[p.no == answer]
    if not len(row):
        return not_yet(f"the capture has no record {answer}")
    if row.kind.iloc[0] != "rtp":
        return not_yet(f"record {answer} is {row.kind.iloc[0].upper()} ({row.detail.iloc[0] or 'no media'}): "
                       "look for the first RTP packet of a frame with decodable == True")
    if answer > expected:
        return not_yet(f"by record {answer} the SFU could already read the badge: take the first "
                       "frame of Alice's video with decodable == True")
    return not_yet(f"record {answer} is media, but it does not complete a frame the SFU decodes "
                   "into Alice's badge (check the SSRC and the frame's last_seq)")


#: Task 2's statements, lettered in each student's own order.
ENTROPY_STATEMENTS = Choices("02/T2", {
    "proves-encryption": Choice(
        "Entropy near 8 bits/byte proves the frames are encrypted, so an SFU that sees only such bytes "
        "learns nothing about the call.",
        "the plaintext VP8 in the dtls-srtp call scores about 7.98 bits/byte too, and the SFU decodes all of "
        "it: entropy cannot tell compressed from encrypted"),
    "payload-only": Choice(
        "Entropy describes only the payload bytes; sizes, timing, SSRCs, the KID and the audio level travel "
        "outside them.",
        "compare the entropy table with frame_metadata: which bytes does each one describe?"),
    "lower-in-dtls": Choice(
        "In dtls-srtp mode the payload entropy is lower, and that lower entropy is what lets the SFU read "
        "frame sizes and timing.",
        "look at frame_metadata: sizes and times are the same in both modes, whatever the entropy"),
    "sframe-pads": Choice(
        "SFrame pads every frame to a fixed size before encrypting, so high entropy also means the frame "
        "sizes are hidden.",
        "SFrame adds a header and a 16-byte tag and pads nothing: the frame sizes on the wire follow the "
        "encoder's in both modes"),
})


def entropy_statements() -> str:
    """The statements of Task 2, one per line (``print`` it)."""
    return str(ENTROPY_STATEMENTS)


@check
def check_entropy_statement(choice: str | None) -> Feedback:
    """Task 2: which statement explains why high entropy says nothing about metadata (sealed: ``02/T2``)."""
    return ENTROPY_STATEMENTS.verdict(choice, "Task 2")


def rtp_per_leg(v: ThreeViews) -> dict[str, int]:
    """RTP packets per leg as the wire view names legs (``leg1``, ``leg2``: by their ClientHellos)."""
    p = v.wire.packets
    return {str(k): int(n) for k, n in p[p.kind == "rtp"].groupby("leg").size().items()}


@check
def check_rtp_per_leg(answer: dict | None, v: ThreeViews) -> Feedback:
    """Task 3: how many RTP packets the wire shows on each leg (both directions)."""
    if answer is None:
        return unanswered("Task 3")
    expected = rtp_per_leg(v)
    if not isinstance(answer, dict):
        return not_yet("answer with a dict such as {'leg1': 123, 'leg2': 456}")
    if set(answer) != set(expected):
        return not_yet(f"the wire knows no names, only legs: use the keys {sorted(expected)} "
                       "(the leg column of the wire view's packets)")
    counts = {k: whole_number(n) for k, n in answer.items()}
    if None in counts.values():
        return not_yet("give each leg a whole number of packets")
    if counts == expected:
        return correct(f"{expected}: the wire counts every packet in both directions without any key")
    p = v.wire.packets
    one_way = {str(k): int(n) for k, n in
               p[(p.kind == "rtp") & (p.direction == "to_sfu")].groupby("leg").size().items()}
    every = {str(k): int(n) for k, n in p.groupby("leg").size().items()}
    if counts == one_way:
        return not_yet("that is one direction only: a leg carries packets to and from the SFU")
    if counts == every:
        return not_yet("that counts DTLS and RTCP too: keep the rows whose kind is 'rtp'")
    return not_yet("filter the wire view's packets on kind == 'rtp' and count per leg")
