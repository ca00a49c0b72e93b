"""SDP for the real-WebRTC call: candidates, the lab's payload types, and a line-by-line reading.

Pure functions on SDP text (RFC 8866), no aiortc objects:

- :func:`candidates` parses every ``a=candidate`` line (RFC 8839 §5.1) and :func:`check_loopback`
  raises :class:`~e2ee_lab.webrtc.errors.NotLoopback` unless every candidate and every ``c=``
  address is 127.0.0.1 or ::1 and every candidate is a host candidate (no server-reflexive or relay
  address learnt from a STUN/TURN server).
- :func:`remap_offer` rewrites an offer so that VP8 uses payload type 96 and Opus 111, and the
  RTP header extensions use Chrome's ids (audio level 1, abs-send-time 2, MID 4; RFC 8285 §5). The
  answerer adopts an offer's dynamic payload types and extension ids (RFC 3264 §6.1), so both ends
  of every leg then send what the lab's packet tools read by default (:mod:`e2ee_lab.rtp`,
  :mod:`e2ee_lab.analysis`): a capture of this call is analysed unchanged. aiortc would otherwise
  pick Opus 96 and VP8 97. Rewriting the offer before ``setLocalDescription`` is ordinary SDP
  munging; it changes numbers, not what is negotiated.
- :func:`annotate` picks the lines that matter for security out of an offer or answer and says
  what each means: ``a=fingerprint`` (RFC 8122 §5, the certificate DTLS must present),
  ``a=setup`` (RFC 8842 §5: actpass / active / passive decide the DTLS client and server),
  ICE credentials and candidates, BUNDLE (RFC 9143) and rtcp-mux (RFC 5761), the codecs and
  header extensions, the SSRCs (RFC 5576). ``a=crypto`` (SDES, RFC 4568) would carry SRTP keys in
  the SDP itself; WebRTC forbids it (RFC 8827 §6.5) and it never appears.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pandas as pd

from e2ee_lab.media.codecs import OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE
from e2ee_lab.rtp.extensions import AUDIO_LEVEL_ID, AUDIO_LEVEL_URI, MID_ID, MID_URI

from .errors import NotLoopback

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
ABS_SEND_TIME_ID = 2  #: Chrome's extmap id for abs-send-time
#: codec name (upper case, as in a=rtpmap) -> the lab's payload type
LAB_PAYLOAD_TYPES = {"VP8": VP8_PAYLOAD_TYPE, "OPUS": OPUS_PAYLOAD_TYPE}
#: header extension URI -> the lab's (Chrome's) extmap id
LAB_EXTENSION_IDS = {AUDIO_LEVEL_URI: AUDIO_LEVEL_ID, ABS_SEND_TIME_URI: ABS_SEND_TIME_ID, MID_URI: MID_ID}
LOOPBACK = ("127.0.0.1", "::1")
SETUP_MEANING = {
    "actpass": "either DTLS role: the answerer chooses (an offer must say this, RFC 8842 §5.2)",
    "active": "this side is the DTLS client: it sends the ClientHello",
    "passive": "this side is the DTLS server: it waits for the ClientHello",
}


@dataclass(frozen=True)
class Candidate:
    """One ``a=candidate`` line (RFC 8839 §5.1)."""

    mid: str | None  # the m-section's MID (None before the first a=mid)
    foundation: str
    component: int  # 1 = RTP (RTCP is muxed onto it)
    transport: str  # "udp"
    priority: int
    address: str
    port: int
    type: str  # "host", "srflx", "prflx" or "relay"


def _sections(sdp: str) -> list[list[str]]:
    """The session part and each m-section as lists of lines (without line endings)."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        if line:
            sections[-1].append(line)
    return sections


def _mid(section: list[str]) -> str | None:
    return next((line[len("a=mid:"):] for line in section if line.startswith("a=mid:")), None)


def candidates(sdp: str) -> list[Candidate]:
    """Every ``a=candidate`` line of ``sdp``, with the MID of its m-section.

    Raises:
        ValueError: a candidate line with fewer than eight fields or a non-numeric port/priority.
    """
    out = []
    for section in _sections(sdp):
        mid = _mid(section)
        for line in section:
            if not line.startswith("a=candidate:"):
                continue
            bits = line[len("a=candidate:"):].split()
            if len(bits) < 8 or bits[6] != "typ":
                raise ValueError(f"malformed candidate line: {line!r}")
            out.append(Candidate(mid, bits[0], int(bits[1]), bits[2].lower(), int(bits[3]),
                                 bits[4], int(bits[5]), bits[7]))
    return out


def is_loopback(address: str) -> bool:
    """True for an IPv4 or IPv6 loopback address (a hostname is never provably loopback)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a hostname (mDNS .local, ...) is not provably loopback


def check_loopback(sdp: str, *, where: str = "SDP") -> list[Candidate]:
    """Raise unless every candidate of ``sdp`` is a loopback host candidate and every ``c=`` line
    names a loopback address (or aiortc's 0.0.0.0 placeholder); returns the candidates.

    Raises:
        NotLoopback: naming the offending lines; also when ``sdp`` has no candidate at all.
    """
    found = candidates(sdp)
    bad = [f"{c.address}:{c.port} typ {c.type}" for c in found
           if c.type != "host" or not is_loopback(c.address)]
    for line in sdp.splitlines():
        if line.startswith("c=IN "):
            address = line.split()[-1]
            if address not in ("0.0.0.0", "::") and not is_loopback(address):
                bad.append(line)
    if bad:
        raise NotLoopback(f"{where} leaves loopback: {', '.join(bad)}")
    if not found:
        raise NotLoopback(f"{where} has no ICE candidate (no loopback address was gathered)")
    return found


def dtls_setup(sdp: str) -> list[str]:
    """The ``a=setup`` value of each m-section (``actpass``, ``active`` or ``passive``)."""
    return [line.split(":", 1)[1] for line in sdp.splitlines() if line.startswith("a=setup:")]


def has_sdes(sdp: str) -> bool:
    """True if ``sdp`` carries an ``a=crypto`` line (SDES keys in the signalling, RFC 4568)."""
    return any(line.startswith("a=crypto:") for line in sdp.splitlines())


# --- the lab's payload types and extension ids ------------------------------------------------------


def _pt_map(section: list[str]) -> dict[str, str]:
    """old payload type -> new one, for the codecs of one m-section the lab has a number for."""
    mapping = {}
    for line in section:
        match = re.match(r"a=rtpmap:(\d+) ([^/]+)/", line)
        if match and match.group(2).upper() in LAB_PAYLOAD_TYPES:
            mapping[match.group(1)] = str(LAB_PAYLOAD_TYPES[match.group(2).upper()])
    return mapping


def _remap_line(line: str, pts: dict[str, str]) -> str:
    if line.startswith("m="):
        head = line.split()
        return " ".join(head[:3] + [pts.get(pt, pt) for pt in head[3:]])
    match = re.match(r"(a=(?:rtpmap|rtcp-fb|fmtp):)(\d+)(.*)", line)
    if match:
        return match.group(1) + pts.get(match.group(2), match.group(2)) + match.group(3)
    match = re.match(r"a=extmap:(\d+)(/\w+)? (\S+)(.*)", line)
    if match and match.group(3) in LAB_EXTENSION_IDS:
        return f"a=extmap:{LAB_EXTENSION_IDS[match.group(3)]}{match.group(2) or ''} {match.group(3)}{match.group(4)}"
    return line


def remap_offer(sdp: str) -> str:
    """``sdp`` with VP8 on payload type 96, Opus on 111 and Chrome's header-extension ids.

    Lines other than ``m=``, ``a=rtpmap``, ``a=rtcp-fb``, ``a=fmtp`` and ``a=extmap`` are kept
    byte for byte; codecs the lab has no number for keep theirs.

    Raises:
        ValueError: a codec would be moved onto a payload type another codec of the same m-section
            already uses, or two extensions would share an id.
    """
    out = []
    for section in _sections(sdp):
        pts = _pt_map(section)
        kept = {re.match(r"a=rtpmap:(\d+)", line).group(1) for line in section  # type: ignore[union-attr]
                if line.startswith("a=rtpmap:")} - set(pts)
        if kept & set(pts.values()):
            raise ValueError(f"payload types {sorted(kept & set(pts.values()))} are taken in {section[0]!r}")
        lines = [_remap_line(line, pts) for line in section]
        ids = [line.split()[0] for line in lines if line.startswith("a=extmap:")]
        if len(ids) != len(set(ids)):
            raise ValueError(f"two header extensions share an id in {section[0]!r}")
        out += lines
    return "\r\n".join(out) + "\r\n"


# --- reading an offer or answer ---------------------------------------------------------------------


def _meaning(line: str) -> str | None:
    """What a line means for the call's security, or None for a line the table leaves out."""
    if line.startswith("a=group:BUNDLE"):
        return "BUNDLE (RFC 9143): every m-section shares one ICE/DTLS transport, hence one leg key"
    if line.startswith("m="):
        kind, pts = line[2:].split()[0], " ".join(line.split()[3:])
        return f"a {kind} m-section; UDP/TLS/RTP/SAVPF = SRTP keyed by DTLS, with feedback; payload types {pts}"
    if line.startswith("c=IN"):
        return "connection address (aiortc writes the first candidate's address here)"
    if line.startswith("a=setup:"):
        return "DTLS role (RFC 8842 §5): " + SETUP_MEANING.get(line.split(":", 1)[1], "?")
    if line.startswith("a=fingerprint:"):
        return ("hash of this side's DTLS certificate (RFC 8122 §5): the peer aborts the handshake "
                "if the certificate differs; this is the only key material in the SDP")
    if line.startswith(("a=ice-ufrag:", "a=ice-pwd:")):
        return "ICE credentials (RFC 8839 §5.4): authenticate the STUN connectivity checks"
    if line.startswith("a=candidate:"):
        c = candidates(line)[0]
        where = "loopback" if is_loopback(c.address) else "NOT loopback"
        return f"ICE {c.type} candidate {c.address}:{c.port}/{c.transport} ({where})"
    if line.startswith("a=rtcp-mux"):
        return "RTCP on the RTP port (RFC 5761): one 5-tuple per leg"
    if line.startswith("a=rtpmap:"):
        return "payload type -> codec (RFC 8866 §6.6); the lab's tools expect VP8 96 and Opus 111"
    if line.startswith("a=extmap:"):
        return "RTP header extension id (RFC 8285); these bytes stay readable to the SFU"
    if line.startswith("a=msid:"):
        return "stream and track id (RFC 8830): the SFU names the publisher in the track id"
    if line.startswith("a=ssrc:") and " cname:" in line:
        return "the SSRC this side sends with (RFC 5576): the SFU routes by it"
    if line.startswith(("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive")):
        return "direction of this m-section, seen from the side that wrote it"
    if line.startswith("a=crypto:"):
        return "SDES (RFC 4568): SRTP keys in clear in the signalling; forbidden in WebRTC"
    if line == SFRAME_ATTRIBUTE:
        return ("SFrame RTP payload format expected here (draft-ietf-avtcore-rtp-sframe-02 §6); "
                "the signalling can strip it (a downgrade) and the SFU can see it")
    return None


def annotate(sdp: str, *, side: str = "") -> pd.DataFrame:
    """The security-relevant lines of an offer or answer, one row each: ``side``, ``mid``,
    ``line`` (long values shortened) and ``meaning``."""
    rows = []
    for section in _sections(sdp):
        mid = _mid(section)
        for line in section:
            meaning = _meaning(line)
            if meaning is not None:
                shown = line if len(line) <= 72 else line[:69] + "..."
                rows.append({"side": side, "mid": mid, "line": shown, "meaning": meaning})
    return pd.DataFrame(rows, columns=["side", "mid", "line", "meaning"])


# --- a=sframe (draft-ietf-avtcore-rtp-sframe-02 §6) --------------------------------------------------


SFRAME_ATTRIBUTE = "a=sframe"  # media level, no value: "I expect to receive SFrame in this m-section"


def add_sframe(sdp: str) -> str:
    """``sdp`` with ``a=sframe`` at the end of every audio and video m-section that lacks it."""
    sections = _sections(sdp)
    out = sections[0][:]
    for section in sections[1:]:
        media = section[0].startswith(("m=audio", "m=video"))
        out += section + ([SFRAME_ATTRIBUTE] if media and SFRAME_ATTRIBUTE not in section else [])
    return "\r\n".join(out) + "\r\n"


def sframe_sections(sdp: str) -> dict[str, bool]:
    """For each audio/video m-section, by MID (or its index): does it carry ``a=sframe``?"""
    media = [s for s in _sections(sdp)[1:] if s[0].startswith(("m=audio", "m=video"))]
    return {(_mid(s) or str(i)): SFRAME_ATTRIBUTE in s for i, s in enumerate(media)}
