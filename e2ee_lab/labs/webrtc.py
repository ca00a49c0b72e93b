"""Notebook 09 (real WebRTC): the lab's call on aiortc, its SDP, its handshakes, and the task checks.

The helpers run the same call on both stacks (:func:`webrtc_calls` on aiortc peer connections
through an aiortc SFU, :func:`lab_calls` on the lab's own DTLS-SRTP transport) and shape their
results for the notebook: the SDP offer and answer read line by line (RFC 8866; ``a=fingerprint``
RFC 8122 §5, ``a=setup`` RFC 8842 §5, no ``a=crypto``: RFC 8827 §6.5), the ICE candidates (RFC
8839 §5.1, all 127.0.0.1) and why aiortc needs a patch to gather them, the DTLS roles and the SRTP
profile the legs negotiated (RFC 5764 §4.1), the SFU's key log (RFC 5764 §4.2), key-frame requests
(RFC 4585 §6.3.1 PLI), the three views of a captured call, the private aiortc attributes the
hooks rely on, and a side-by-side table of the two stacks. The checks recompute their answers
from the student's own calls.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from e2ee_lab.analysis.views import CapturedCall, ThreeViews, analyze_views
from e2ee_lab.config import lab_size, scratch_dir
from e2ee_lab.labs import Feedback, check, correct, not_yet, unanswered
from e2ee_lab.labs.answers import Choice, Choices, whole_number
from e2ee_lab.labs.session import note_source
from e2ee_lab.webrtc import (
    PRIVATE_ATTRIBUTES,
    WebRTCCallResult,
    annotate,
    dtls_setup,
    has_sdes,
    loopback_configuration,
    loopback_ice,
    missing_attributes,
    run_webrtc_call,
)

PARTICIPANTS = 3
SEED = 0
MODES = ("dtls-srtp", "e2ee")
STACK_NAMES = {"lab": "lab stack (own DTLS, no ICE)", "webrtc": "real stack (aiortc)"}


def call_seconds() -> float:
    """How long the notebook's calls last: 2 s at ci size, 4 s at full size."""
    return 2.0 if lab_size() == "ci" else 4.0


# --- running the calls -------------------------------------------------------------------------------


def webrtc_calls(modes: tuple[str, ...] = MODES, *, seed: int = SEED) -> dict[str, WebRTCCallResult]:
    """One aiortc call per mode (3 participants), sniffed on ``lo`` where that is permitted.

    Prints one line per call: what was captured, or why nothing was (the socket tap cannot see
    aiortc's sockets, so without capture rights the call runs unrecorded).
    """
    calls = {}
    for mode in modes:
        out = scratch_dir(f"e2ee-lab-09-{mode}-")
        result = run_webrtc_call(mode, PARTICIPANTS, call_seconds(), seed=seed, size=lab_size(),
                                 out=out, capture="auto")
        if result.capture is not None:
            print(f"{mode}: {result.summary['elapsed_s']} s, captured live with scapy on lo, "
                  f"{result.capture.datagrams} datagrams")
        else:
            print(f"{mode}: {result.summary['elapsed_s']} s; {result.summary['capture']['note']}")
        note_source(f"capture {mode}", "live" if result.capture is not None else "none")
        calls[mode] = result
    return calls


def lab_calls(modes: tuple[str, ...] = MODES, *, seed: int = SEED) -> dict:
    """The same calls (participants, seconds, seed, size) on the lab's own stack, not captured."""
    from e2ee_lab.call import run_call

    return {mode: run_call(mode, PARTICIPANTS, call_seconds(), seed=seed, size=lab_size())
            for mode in modes}


# --- aiortc's private attributes and the loopback patch ----------------------------------------------


def aiortc_attributes() -> pd.DataFrame:
    """Every private aiortc attribute the hooks use, why, and whether the installed aiortc has it
    (:func:`~e2ee_lab.webrtc.missing_attributes` builds real aiortc objects to look)."""
    missing = set(missing_attributes())
    rows = [{"class": cls, "attribute": name, "used for": why, "present": f"{cls}.{name}" not in missing}
            for cls, name, why in PRIVATE_ATTRIBUTES]
    return pd.DataFrame(rows)


def loopback_patch() -> pd.DataFrame:
    """What aiortc would gather and whom it would ask, with and without the lab's loopback setup.

    Nothing is sent: the host addresses come from the machine's interfaces, and the ICE servers
    are what aiortc's gatherer would use for ``RTCConfiguration()`` (the default) and for
    :func:`~e2ee_lab.webrtc.loopback_configuration`.
    """
    import aioice.ice
    from aiortc.rtcicetransport import RTCIceGatherer

    plain = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    with loopback_ice():
        patched = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    default_servers = [s.urls for s in RTCIceGatherer.getDefaultIceServers()]
    ours = loopback_configuration().iceServers
    rows = [
        ("host addresses aioice gathers", ", ".join(plain) or "(none)",
         ", ".join(patched), "aioice skips 127.0.0.1 and ::1 on purpose"),
        ("ICE servers (STUN/TURN)", f"RTCConfiguration() → {', '.join(map(str, default_servers))}",
         f"iceServers={ours} → none", "iceServers=None means 'use Google's STUN server'"),
    ]
    return pd.DataFrame(rows, columns=["what", "aiortc's default", "inside the lab's call", "why"])


# --- SDP and candidates ------------------------------------------------------------------------------


def sdp_lines(result: WebRTCCallResult, leg: str | None = None, mid: str = "1") -> pd.DataFrame:
    """The SFU's offer and ``leg``'s answer, annotated line by line: the session lines and the
    m-section ``mid`` only (the others repeat the same transport lines)."""
    leg = leg or result.names[0]
    pair = result.sdp[leg]
    parts = [annotate(pair["offer"], side="offer (SFU)"), annotate(pair["answer"], side=f"answer ({leg})")]
    table = pd.concat(parts, ignore_index=True)
    return table[table.mid.isna() | (table.mid == mid)].fillna({"mid": "session"}).reset_index(drop=True)


def _hashes(sdp: str) -> str:
    found = [line.split()[0].split(":", 1)[1] for line in sdp.splitlines() if line.startswith("a=fingerprint:")]
    return ", ".join(dict.fromkeys(found))


def sdp_facts(result: WebRTCCallResult) -> pd.DataFrame:
    """Per leg and SDP: its ``a=setup`` value(s), the fingerprint hashes, whether it carries an
    ``a=crypto`` line (SDES keys: never in WebRTC), and its ICE candidates' addresses and types."""
    rows = []
    cands = result.candidates
    for leg, pair in result.sdp.items():
        for which, text in pair.items():
            mine = cands[(cands.leg == leg) & (cands.sdp == which)]
            rows.append({"leg": leg, "sdp": which, "a=setup": ",".join(sorted(set(dtls_setup(text)))),
                         "fingerprint hashes": _hashes(text), "a=crypto": has_sdes(text),
                         "candidates": len(mine), "addresses": ",".join(sorted(set(mine.address))),
                         "types": ",".join(sorted(set(mine.type)))})
    return pd.DataFrame(rows)


def keylog_table(result: WebRTCCallResult) -> pd.DataFrame:
    """The SFU's key log: per leg the profile, the DTLS client and server addresses, and the first
    bytes of each write key (exported again from the live DTLS connection after the handshake)."""
    rows = []
    for entry in result.keylog:
        rows.append({"leg": entry.leg, "profile": entry.profile.value,
                     "DTLS client": f"{entry.client[0]}:{entry.client[1]}",
                     "DTLS server (the SFU)": f"{entry.server[0]}:{entry.server[1]}",
                     "client_write key": bytes(entry.client_write.key)[:6].hex() + "…",
                     "server_write key": bytes(entry.server_write.key)[:6].hex() + "…",
                     "key bytes": len(entry.client_write.key)})
    return pd.DataFrame(rows)


# --- views, PLIs, the two stacks ---------------------------------------------------------------------


def captured_views(calls: Mapping[str, WebRTCCallResult]) -> dict[str, ThreeViews] | None:
    """The three views of each captured call, or None (with one line saying why) if any call was
    not captured."""
    missing = [mode for mode, r in calls.items() if r.capture is None]
    if missing:
        print(f"no capture of the {', '.join(missing)} call: the three views need one; "
              "showing what the SFU and the receivers decoded live instead")
        return None
    return {mode: analyze_views(CapturedCall.from_result(r)) for mode, r in calls.items()}


def views_figure(calls: Mapping[str, WebRTCCallResult], views: Mapping[str, ThreeViews] | None):
    """The three-views figure of the captured calls, or, without a capture, the pictures the
    receivers and the SFU decoded during the call (:func:`~e2ee_lab.analysis.plots.call_pictures`)."""
    from e2ee_lab.analysis import plots

    return plots.three_views(views) if views else plots.call_pictures(calls)


def _delivery(summary: dict, kind: str) -> str:
    got = sum(p[f"{kind}_frames_decoded"] for p in summary["participants"])
    want = sum(p[f"{kind}_frames_expected"] for p in summary["participants"])
    return f"{got} of {want}"


def pli_table(lab: Mapping, webrtc: Mapping) -> pd.DataFrame:
    """Key-frame requests (PLIs) per stack and mode: sent by receivers, sent by the SFU, received
    by publishers; for aiortc also forwarded by the SFU and the frames its receivers stole."""
    rows = []
    for stack, results in (("lab", lab), ("webrtc", webrtc)):
        for mode, r in results.items():
            s = r.summary
            people = s["participants"]
            plis = s.get("plis", {})
            rows.append({"stack": stack, "mode": mode,
                         "sent by receivers": sum(p["plis_sent"] for p in people),
                         "sent by the SFU": s["sfu"].get("plis_sent", 0),
                         "forwarded by the SFU": plis.get("forwarded_by_sfu", "n/a"),
                         "received by publishers": sum(p["plis_received"] for p in people),
                         "video frames stolen by the SFU": s["sfu"].get("frames_stolen", {}).get("video", "n/a"),
                         "video frames the SFU saw": s["sfu"]["video_frames_seen"]})
    return pd.DataFrame(rows)


def _of(summary: dict, got: str, seen: str) -> str:
    return f"{summary[got]} of {summary[seen]}"


def _stack_column(stack: str, s: dict) -> dict:
    """One column of :func:`compare_stacks`: the measures of one call's summary."""
    sfu, people = s["sfu"], s["participants"]
    latency = sorted(p["video_latency_ms"] for p in people if p.get("video_latency_ms"))
    real = stack == "webrtc"
    return {
        "ICE": "aioice, host 127.0.0.1" if real else "none (fixed loopback ports)",
        "DTLS-SRTP": "aiortc (pyOpenSSL, pylibsrtp)" if real else "e2ee_lab.transport (pyOpenSSL, pylibsrtp)",
        "SRTP profile": s["srtp_profile"],
        "video frames decoded by receivers": _delivery(s, "video"),
        "audio frames decoded by receivers": _delivery(s, "audio"),
        "packets into the SFU": sfu["packets_in"],
        "packets forwarded by the SFU": sfu["packets_forwarded"],
        "SFU: video frames it decodes into the picture": _of(sfu, "video_frames_decodable", "video_frames_seen"),
        "SFU: audio frames it understands": _of(sfu, "audio_frames_intelligible", "audio_frames_seen"),
        "PLIs sent by receivers": sum(p["plis_sent"] for p in people),
        "median video latency (ms)": latency[len(latency) // 2] if latency else "n/a",
        "call time incl. setup (s)": s.get("elapsed_s", "n/a"),
    }


def compare_stacks(lab: Mapping, webrtc: Mapping) -> pd.DataFrame:
    """The same calls on both stacks, one column per (mode, stack), one row per measure."""
    columns = {(mode, stack): _stack_column(stack, results[mode].summary)
               for mode in lab for stack, results in (("lab", lab), ("webrtc", webrtc))}
    table = pd.DataFrame(columns)
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["mode", "stack"])
    return table


# --- Task 1: the SFU's DTLS role ---------------------------------------------------------------------

#: Task 1's statements, lettered in each student's own order.
ROLE_STATEMENTS = Choices("09/T1", {
    "server-sends-keys": Choice(
        "As DTLS server the SFU alone derives each leg's SRTP keys and sends them to the participant in "
        "the handshake.",
        "no key travels in a DTLS-SRTP handshake: both ends run the exporter on the same master "
        "secret (RFC 5764 §4.2), so the participant derives the same keys itself"),
    "endpoint": Choice(
        "Whatever its role, the SFU is a DTLS endpoint of every leg and derives each leg's SRTP keys from "
        "the exporter.",
        "look at keylog_table: which side's key log holds the keys, and how did it get them?"),
    "server-cert-only": Choice(
        "Only the server's certificate is checked against a fingerprint, so the participants are not "
        "authenticated by the SFU.",
        "look at sdp_facts: the answer carries fingerprints too, and each side checks the other's "
        "certificate against them"),
    "client-blind": Choice(
        "If the participants were the DTLS servers instead, the SFU could no longer read the media of a "
        "dtls-srtp call.",
        "the role decides who sends the ClientHello, not who gets the keys: a DTLS client derives "
        "exactly the same keys as the server"),
})


def role_statements() -> str:
    """The statements of Task 1, one per line (``print`` it)."""
    return str(ROLE_STATEMENTS)


def sfu_role(result: WebRTCCallResult) -> str:
    """The DTLS role the SFU took on every leg ("client" or "server"); ValueError if legs differ."""
    hs = result.handshakes
    roles = set(hs[hs.side == "sfu"].dtls_role)
    if len(roles) != 1:
        raise ValueError(f"the SFU took different roles on its legs: {sorted(roles)}")
    return roles.pop()


@check(answers=2)
def check_sfu_role(role: str | None, statement: str | None, result: WebRTCCallResult) -> Feedback:
    """Task 1: the DTLS role the SFU takes on every leg, and the statement saying why it matters
    (sealed: ``09/T1``)."""
    if role is None or statement is None:
        return unanswered("Task 1")
    expected = sfu_role(result)
    given = role.strip().lower() if isinstance(role, str) else repr(role)
    if given in ("actpass", "active", "passive"):
        return not_yet(f"{given!r} is an a=setup value, not a DTLS role: the SFU's offer says actpass "
                       "(either), the answer says active (= DTLS client); so which role is left for the SFU?")
    if given not in ("client", "server"):
        return not_yet(f"answer with 'client' or 'server', not {role!r}")
    if given != expected:
        return not_yet("the participant's answer says a=setup:active: the active side is the DTLS "
                       "client and sends the ClientHello; check the dtls_role column of the handshakes")
    verdict = ROLE_STATEMENTS.verdict(statement, "Task 1")
    if not verdict.ok:
        return not_yet(f"the role is right; the statement is not: {verdict.message}")
    return correct(f"the SFU is the DTLS {expected} of all {len(result.keylog)} legs; {verdict.message}")


# --- Task 2: the SRTP profile ------------------------------------------------------------------------


def _profile_name(text: str) -> str:
    name = str(text).strip().upper().replace("-", "_")
    return name[len("SRTP_"):] if name.startswith("SRTP_") else name


@check(answers=2)
def check_srtp_profile(profile: str | None, named_in_sdp: bool | None, result: WebRTCCallResult) -> Feedback:
    """Task 2: the SRTP protection profile the legs negotiated, and whether any SDP line names it."""
    if profile is None or named_in_sdp is None:
        return unanswered("Task 2")
    expected = result.config.srtp_profile
    given = _profile_name(profile)
    if given.startswith("SHA"):
        return not_yet(f"{profile!r} is a hash of a=fingerprint (the certificate), not an SRTP "
                       "profile: look at the profile column of the handshakes table")
    if given != expected:
        if given == "AEAD_AES_128_GCM":
            return not_yet("that is the lab stack's profile (its SFU offers only that one); between "
                           "two aiortc peers the DTLS server picks another: see the handshakes table")
        if "CM" in given or "SHA1" in given:
            return not_yet("aiortc offers AES-CM with HMAC-SHA1 too, but prefers an AEAD (AES-GCM) "
                           "profile: see the handshakes table")
        return not_yet(f"the legs negotiated another profile than {profile!r}: see the handshakes table")
    if not isinstance(named_in_sdp, bool):
        return not_yet("the profile is right; answer the second part with True or False")
    if named_in_sdp:
        return not_yet("the profile is right, but search the offer and the answer for it: no line "
                       "names it. DTLS negotiates it in its use_srtp extension (RFC 5764 §4.1.2); only "
                       "a=crypto (SDES, forbidden in WebRTC) would put SRTP parameters in the SDP")
    return correct(f"{expected}: the SFU, as DTLS server, picked it from the participant's use_srtp "
                   "list inside the handshake; the SDP only pins the certificates by fingerprint")


# --- Task 3: delivered frames on both stacks ---------------------------------------------------------


def _total(summary: dict, field: str) -> int:
    return int(sum(p[field] for p in summary["participants"]))


def video_delivered(summaries: Mapping[str, dict]) -> dict[str, int]:
    """Per stack: video frames of the measured window that all receivers together decoded."""
    return {stack: _total(s, "video_frames_decoded") for stack, s in summaries.items()}


@check
def check_video_delivered(answer: Mapping | None, summaries: Mapping[str, dict]) -> Feedback:
    """Task 3: video frames decoded by all receivers together, per stack, in the same call.

    ``summaries`` maps "lab" and "webrtc" to the two calls' summaries.
    """
    if answer is None:
        return unanswered("Task 3")
    expected = video_delivered(summaries)
    if not isinstance(answer, Mapping) or set(answer) != set(expected):
        return not_yet(f"answer with a dict with the keys {sorted(expected)}, e.g. {{'lab': 10, 'webrtc': 12}}")
    given = {k: whole_number(v) for k, v in answer.items()}
    if None in given.values():
        return not_yet("give whole numbers of frames, not shares or strings")
    if given == expected:
        want = {k: _total(s, "video_frames_expected") for k, s in summaries.items()}
        return correct(", ".join(f"{k}: {expected[k]} of {want[k]}" for k in expected) +
                       ". SFrame is the same on both stacks and sits above the transport: any "
                       "difference comes from the transport and the machine's load, not from E2EE")
    swapped = dict(zip(expected, reversed(list(expected.values()))))
    guesses = {
        "frames sent (each publisher counts its own)":
            {k: _total(s, "video_frames_sent") for k, s in summaries.items()},
        "frames expected, not decoded": {k: _total(s, "video_frames_expected") for k, s in summaries.items()},
        "frames the SFU saw (it counts the whole call, not the window)":
            {k: int(s["sfu"]["video_frames_seen"]) for k, s in summaries.items()},
    }
    if given == swapped:
        return not_yet("the two numbers are swapped: the lab column comes from lab_results")
    for what, values in guesses.items():
        if given == values:
            return not_yet(f"that counts {what}: add up video_frames_decoded over the participants")
    name = summaries.get("webrtc", {}).get("participants", [{}])[0].get("name", "alice")
    return not_yet(f"add up video_frames_decoded over all participants of the e2ee call, per stack "
                   f"(one receiver, {name}, is not enough)")
