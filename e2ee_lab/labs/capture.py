"""Notebook 02 (what the SFU sees): a captured call, one packet layer by layer, the checks of its tasks.

:func:`captured_call` runs a short call and sniffs it with scapy where live capture is permitted;
elsewhere it says why in one line and loads the recording in ``data/captures/`` instead. The
dissection helpers read one pcap record with scapy (Ether / IP / UDP / Raw, RFC 894, 791, 768),
then the RTP header (RFC 3550 §5.1, clear in SRTP), and after SRTP unprotect with the SFU's key
log (RFC 3711) the VP8 payload descriptor (RFC 7741 §4.2) and either the VP8 key-frame header
(RFC 6386 §9.1) or the SFrame header (RFC 9605 §4.3). The checks recompute their answers from the
student's own capture. Every student reads the same recording when live capture is not permitted,
so the questions differ instead: whose video and which frame (Task 1) and the hostile datagrams
the eavesdropper's parser of Task 3 (a build task, RFC 7983 §7, RFC 5761 §4) must refuse are
drawn per student (``labs.params("02")``).
"""

from __future__ import annotations

import pandas as pd

from e2ee_lab.analysis.views import CapturedCall, ThreeViews, analyze_views, recording
from e2ee_lab.capture import CaptureError, sniff_problem
from e2ee_lab.capture.pcap import LegMap
from e2ee_lab.config import lab_size, scratch_dir
from e2ee_lab.crypto.keys import parse_kid
from e2ee_lab.crypto.sframe import MalformedHeader, decode_header
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
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


def task1_frame(v: ThreeViews) -> tuple[str, int]:
    """(publisher, n) of Task 1 for this student: whose video, and which of the frames the SFU decodes
    into that publisher's picture (n = 1: the first, when it can first read the badge)."""
    p = params("02")
    return p.choice("publisher", v.call.names, v.call.names[0]), p.integer("frame", 1, 12, 1)


def _decodable_frames(v: ThreeViews, publisher: str) -> pd.DataFrame:
    f = v.sfu.frames
    return f[(f.ssrc == v.call.truth.ssrc_of(publisher)) & f.decodable.astype(bool)]


def badge_packet(v: ThreeViews, publisher: str | None = None, n: int = 1) -> int | None:
    """Record number of the packet that completes the ``n``-th frame of ``publisher``'s video the SFU
    decodes into the sent picture (n = 1: from that packet on it can read the badge; None: no such frame)."""
    publisher = publisher or v.call.names[0]
    good = _decodable_frames(v, publisher)
    if len(good) < n or n < 1:
        return None
    return _record(v, v.call.truth.ssrc_of(publisher), int(good.last_seq.iloc[n - 1]))


@check
def check_badge_packet(answer: int | None, v: ThreeViews, publisher: str | None = None, n: int = 1) -> Feedback:
    """Task 1: the record number of the packet completing the ``n``-th frame of ``publisher``'s video that the
    SFU decodes (recomputed from the capture)."""
    if answer is None:
        return unanswered("Task 1")
    publisher = publisher or v.call.names[0]
    expected = badge_packet(v, publisher, n)
    if expected is None:
        return not_yet("in this call the SFU decodes too little of that video: use the dtls-srtp views")
    answer = whole_number(answer)
    if answer is None:
        return not_yet("answer with a record number (an int, like tshark's frame.number)")
    if answer == expected:
        return correct(f"record {expected} completes that frame: only with its last packet can the SFU decode "
                       "it, and from there on it reads the badge and the confidential line")
    ssrc = v.call.truth.ssrc_of(publisher)
    frame = _decodable_frames(v, publisher).iloc[n - 1]
    if answer == _record(v, ssrc, int(frame.first_seq)) and frame.packets > 1:
        return not_yet(f"record {answer} starts that frame, but the frame spans {frame.packets} packets and the "
                       "decoder needs all of them: take its last_seq")
    p = v.wire.packets
    row = p[p.no == answer]
    if not len(row):
        return not_yet(f"the capture has no record {answer}")
    if row.kind.iloc[0] != "rtp":
        return not_yet(f"record {answer} is {row.kind.iloc[0].upper()} ({row.detail.iloc[0] or 'no media'}): "
                       "the frame's packets are RTP")
    if int(row.ssrc.iloc[0]) != ssrc:
        return not_yet(f"record {answer} belongs to another stream (SSRC {int(row.ssrc.iloc[0])}): filter on "
                       f"{publisher}'s video SSRC")
    return not_yet(f"record {answer} is a packet of {publisher}'s video, but not the last packet of the frame the "
                   "task asks for: count only the frames with decodable == True, from 1, in the order the SFU "
                   "got them")


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


# --- Task 3: the eavesdropper's RTP reader (build) ------------------------------------------------------


def udp_payloads(call: CapturedCall) -> list[bytes]:
    """The UDP payload of every record of ``call``'s capture, in record order (record n is item n - 1)."""
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import RawPcapReader

    out = []
    reader = RawPcapReader(str(call.pcap))
    try:
        for data, _meta in reader:
            packet = Ether(data)
            out.append(bytes(packet[UDP].payload) if UDP in packet else b"")
    finally:
        reader.close()
    return out


def _rtp(ssrc: int, seq: int, *, first: int = 0x80, second: int = 96, extra: bytes = b"") -> bytes:
    return bytes([first, second]) + seq.to_bytes(2, "big") + (12345).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + extra


def _hostile_datagrams() -> list[tuple[str, bytes, tuple[int, int] | None]]:
    """Task 3's own datagrams, drawn for this student: (what, bytes, (ssrc, seq) or None for not RTP)."""
    rng = params("02").rng("task3 datagrams")
    ssrc, seq = rng.getrandbits(32), rng.getrandbits(16)
    csrcs = rng.randbytes(8)
    ext = bytes([0xBE, 0xDE, 0, 1, 0x10, rng.getrandbits(8), 0, 0])
    return [
        ("an RTP packet with the marker bit set", _rtp(ssrc, seq, second=0x80 | 111, extra=rng.randbytes(40)),
         (ssrc, seq)),
        ("an RTP packet with two CSRCs and a header extension",
         _rtp(ssrc ^ 0xFFFF, seq ^ 0x0F0F, first=0x80 | 0x10 | 2, extra=csrcs + ext + rng.randbytes(30)),
         (ssrc ^ 0xFFFF, seq ^ 0x0F0F)),
        ("an RTCP sender report", bytes([0x80, 200, 0, 6]) + rng.randbytes(24), None),
        ("an RTCP picture loss indication", bytes([0x81, 206, 0, 2]) + rng.randbytes(8), None),
        ("a STUN binding request", bytes([0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]) + rng.randbytes(12), None),
        ("a DTLS record", bytes([22, 0xFE, 0xFD]) + rng.randbytes(30), None),
        ("a datagram of version 1", bytes([0x40, 96]) + rng.randbytes(20), None),
        ("a datagram shorter than an RTP header", bytes([0x80, 96]) + rng.randbytes(rng.randrange(0, 10)), None),
        ("an empty datagram", b"", None),
    ]


def _probe_cases(v: ThreeViews, payloads: list[bytes]) -> list[tuple[str, bytes, tuple[int, int] | None]]:
    cases = []
    for row, data in zip(v.wire.packets.itertuples(), payloads):
        truth = (int(row.ssrc), int(row.seq)) if row.kind == "rtp" else None
        cases.append((f"record {row.no} of the capture ({row.kind.upper()})", data, truth))
    return cases + _hostile_datagrams()


def probe_rtp_fields(func, v: ThreeViews, payloads: list[bytes]) -> list[dict]:
    """Task 3's probe: the student's ``rtp_fields(datagram)`` on every datagram of the capture
    (``payloads``, :func:`udp_payloads`, read by a lab cell: the probe opens no file) and on this
    student's hostile ones (value or exception name)."""
    from e2ee_lab.labs.plain import call_safely

    return [call_safely(func, data) for _, data, _ in _probe_cases(v, payloads)]


_FIELD_HINTS = (
    ("RTCP", "RTCP starts like RTP (version 2); the second byte tells them apart: RTCP packet types are "
             "192-223, where RTP has its marker bit and payload type (RFC 5761 §4)"),
    ("DTLS", "a first byte of 20-63 is DTLS (RFC 7983 §7): only 128-191 is RTP or RTCP"),
    ("STUN", "a first byte of 0-3 is STUN (RFC 7983 §7): only 128-191 is RTP or RTCP"),
    ("version 1", "RTP is version 2: the first two bits of the first byte"),
    ("shorter", "an RTP header has at least 12 bytes; anything shorter is not RTP"),
    ("empty", "an empty datagram is not RTP"),
    ("marker", "the marker bit is the top bit of the second byte, beside the payload type: it does not change "
               "what the packet is"),
    ("CSRCs", "CSRCs and a header extension follow the fixed header: the sequence number (bytes 2-3) and the "
              "SSRC (bytes 8-11) stay where they are"),
)


@check(probe=probe_rtp_fields)
def check_rtp_fields(answer, v: ThreeViews, payloads: list[bytes]) -> Feedback:
    """Task 3 (build): the student's ``rtp_fields(datagram) -> (ssrc, seq) | None`` on every datagram of the
    capture (``payloads``; the wire view is the truth) and on hostile ones; it must never raise."""
    if answer is None:
        return unanswered("Task 3")
    if not isinstance(answer, Probed):
        return not_yet("define rtp_fields(datagram) as a function and pass the function itself to the check.")
    cases = _probe_cases(v, list(payloads))
    if len(payloads) != len(v.wire.packets):
        return not_yet("pass the capture's own datagrams: lab.udp_payloads() of the same call as the views.")
    if not isinstance(answer.outputs, list) or len(answer.outputs) != len(cases):
        return not_yet("the check could not run rtp_fields() on the capture; pass the function itself.")
    for (what, _, truth), got in zip(cases, answer.outputs):
        if not isinstance(got, dict):
            return not_yet("the check could not read what rtp_fields() did; pass the function itself.")
        if "raised" in got:
            return not_yet(f"rtp_fields() raised {got['raised']} on {what}: a parser on the wire must answer None for "
                           "whatever it cannot read, never crash.")
        value = got.get("value")
        if value != truth or (truth is not None and type(value) is not tuple):
            hint = next((h for key, h in _FIELD_HINTS if key in what), "the SSRC is bytes 8-11 and the sequence "
                        "number bytes 2-3 of the RTP header, both big-endian (RFC 3550 §5.1)")
            shown = "None" if value is None else repr(value)
            return not_yet(f"on {what} rtp_fields() returned {shown}: {hint}.")
    return correct(f"your reader found every RTP packet's SSRC and sequence number in {len(cases)} datagrams and "
                   "refused the rest without a key and without a crash: this is all an eavesdropper needs to "
                   "tell streams apart, count packets and time them, in either mode.")
