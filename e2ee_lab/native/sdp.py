"""libwebrtc's answer, read by aiortc: the one SDP difference between them that breaks ICE.

With BUNDLE (RFC 9143) libwebrtc writes its ICE candidates into the first m-section of the bundle
only and ends every other one with ``a=end-of-candidates``; aiortc, as the offerer, keeps one
m-section per transport when it reads an answer, the last one of the bundle, and so sees no
candidate at all: ICE fails at once ("Components {1} have no candidate pairs", then aioice
answers the peer's checks but never nominates). :func:`share_bundle_candidates` copies the first
bundled section's ``a=candidate`` lines into every bundled section that has none, which is what an
aiortc answer looks like (it repeats its candidates in every section). It keeps only the UDP
candidates on 127.0.0.1, the only ones the SFU can pair with (it gathers on 127.0.0.1, UDP, and
aioice has no ICE-TCP): libwebrtc also offers ::1 and TCP "active" candidates, which would
only be tried and fail, and the SFU's key log names each leg by its one pair of addresses.
:func:`~e2ee_lab.webrtc.sdp.check_loopback` checks libwebrtc's answer before this and after.
"""

from __future__ import annotations

CANDIDATE = "a=candidate:"
END = "a=end-of-candidates"
LOOPBACK = "127.0.0.1"


def _split(sdp: str) -> list[list[str]]:
    """The session part and each m-section, as lists of lines."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        if line:
            sections[-1].append(line)
    return sections


def _bundle(session: list[str]) -> list[str]:
    line = next((x for x in session if x.startswith("a=group:BUNDLE")), "")
    return line.split()[1:]


def _usable(line: str) -> bool:
    """A UDP candidate on 127.0.0.1 (RFC 8839 §5.1: foundation, component, transport, priority, address, ...)."""
    fields = line[len(CANDIDATE):].split()
    return len(fields) > 4 and fields[2].lower() == "udp" and fields[4] == LOOPBACK


def share_bundle_candidates(sdp: str) -> str:
    """``sdp`` with the first bundled m-section's UDP 127.0.0.1 candidates in every bundled one (and no other)."""
    session, *media = _split(sdp)
    bundled = set(_bundle(session))
    mids = [next((x[6:] for x in s if x.startswith("a=mid:")), None) for s in media]
    sources = [s for s, mid in zip(media, mids) if mid in bundled and any(x.startswith(CANDIDATE) for x in s)]
    if not sources:
        return sdp
    shared = [x for x in sources[0] if x.startswith(CANDIDATE) and _usable(x)]
    out = list(session)
    for section, mid in zip(media, mids):
        if mid in bundled:
            section = [x for x in section if not x.startswith(CANDIDATE)]
            cut = section.index(END) if END in section else len(section)
            section = section[:cut] + shared + section[cut:]
        out += section
    return "\r\n".join(out) + "\r\n"


def stream_labels(offer: str) -> dict[str, str]:
    """MID -> the track id (``a=msid`` second token) of each m-section of ``offer`` that has one."""
    labels = {}
    for section in _split(offer)[1:]:
        mid = next((x[6:] for x in section if x.startswith("a=mid:")), None)
        msid = next((x.split()[1] for x in section if x.startswith("a=msid:") and len(x.split()) > 1), None)
        if mid is not None and msid is not None:
            labels[mid] = msid
    return labels
