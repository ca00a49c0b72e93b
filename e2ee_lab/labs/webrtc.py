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

The tasks: which statement says why the SFU holds every leg's keys, a function that reads the
offerer's DTLS role out of the SDP (a build task: the check runs it on this student's SDP pairs, the
call's real SDP with the a=setup lines rewritten, including pairs that must be refused), the SRTP
profile and whether the SDP names it, and what a key-frame storm would cost in this student's call
(``labs.params("09")``).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from e2ee_lab.analysis.views import CapturedCall, ThreeViews, analyze_views
from e2ee_lab.config import lab_size, scratch_dir
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import Choice, Choices, Sealed, plain_copy, whole_number
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
        "ICE": "aioice, host 127.0.0.1" if real else "none (loopback ports the OS picks)",
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


# --- Task 1: why the SFU holds every leg's keys ------------------------------------------------------

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


@check
def check_role_statement(statement: str | None) -> Feedback:
    """Task 1: the statement that says why the SFU holds every leg's SRTP keys (sealed: ``09/T1``)."""
    return ROLE_STATEMENTS.verdict(statement, "Task 1")


# --- Task 2: the DTLS roles from the SDP (build) -----------------------------------------------------

#: (offer's a=setup, answer's a=setup) of Task 2's valid cases. The active side sends the ClientHello: it
#: is the DTLS client (RFC 5763 §5: the answerer MUST use active or passive; an offer must say actpass,
#: RFC 8842 §5.2, yet an answerer must accept an offer naming a role, from older implementations, §5.3).
_VALID_SETUPS = (("actpass", "active"), ("actpass", "passive"), ("active", "passive"), ("passive", "active"))
#: Pairs a receiver must refuse (ValueError): an answer may not leave the choice open, and the two
#: sides may not both take one role.
_INVALID_SETUPS = (("actpass", "actpass"), ("active", "active"), ("passive", "passive"))


def _with_setup(sdp: str, value: str) -> str:
    """``sdp`` with every ``a=setup`` line set to ``value`` (line endings kept)."""
    lines = sdp.splitlines(keepends=True)
    return "".join(f"a=setup:{value}" + line[len(line.rstrip("\r\n")):] if line.startswith("a=setup:") else line
                   for line in lines)


def _setup_cases(result: WebRTCCallResult) -> list[tuple[str, str, str, str]]:
    """Task 2's inputs, drawn for this student: (offer's a=setup, answer's a=setup, offer, answer), the
    call's real SDP of a leg with the a=setup lines rewritten; some with LF line endings instead of CRLF."""
    rng = params("09").rng("task2 cases")
    legs = sorted(result.sdp)
    pairs = list(_VALID_SETUPS) + [rng.choice(_VALID_SETUPS[:2])] + rng.sample(_INVALID_SETUPS, 2)
    rng.shuffle(pairs)
    cases = []
    for setup_offer, setup_answer in pairs:
        sdp = result.sdp[rng.choice(legs)]
        offer, answer = _with_setup(sdp["offer"], setup_offer), _with_setup(sdp["answer"], setup_answer)
        if rng.random() < 0.3:
            offer, answer = offer.replace("\r\n", "\n"), answer.replace("\r\n", "\n")
        cases.append((setup_offer, setup_answer, offer, answer))
    return cases


def _offerer_role(setup_offer: str, setup_answer: str) -> str | None:
    """The offerer's DTLS role, or None for a pair that must be refused."""
    if (setup_offer, setup_answer) not in _VALID_SETUPS:
        return None
    return "server" if setup_answer == "active" else "client"


def probe_offerer_role(func, result: WebRTCCallResult) -> list[dict]:
    """Task 2's probe: the student's ``offerer_role(offer, answer)`` on this student's SDP pairs; its
    return value, or whether what it raised was a ValueError or anything else."""
    out = []
    for _, _, offer, answer in _setup_cases(result):
        try:
            out.append({"value": plain_copy(func(offer, answer))})
        except ValueError:
            out.append({"raised": "ValueError"})
        except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
            out.append({"raised": type(exc).__name__})
    return out


def _role_hint(setup_offer: str, setup_answer: str, got: dict) -> str:
    """Why the student's output for one (offer, answer) pair is wrong, by the pair's a=setup values."""
    pair = f"for an offer with a=setup:{setup_offer} and an answer with a=setup:{setup_answer}"
    what = f"returned {got['value']!r}" if "value" in got else f"raised {got.get('raised')}"
    want = _offerer_role(setup_offer, setup_answer)
    if want is None:
        if setup_answer == "actpass":
            why = "an answer must decide (RFC 5763 §5: active or passive); actpass there leaves no DTLS client"
        else:
            why = f"both sides say {setup_answer}: two DTLS {'clients' if setup_answer == 'active' else 'servers'}, no handshake"
        return f"{pair} your function {what}; {why}. Raise ValueError."
    value = got.get("value")
    if isinstance(value, str) and value.endswith("\r"):
        return f"{pair} your function {what}: SDP lines end in CRLF; split with splitlines() or strip the CR."
    if isinstance(value, str) and value.strip().lower() in ("active", "passive", "actpass"):
        return f"{pair} your function {what}: that is an a=setup value; return the DTLS role, 'client' or 'server'."
    if setup_offer == "actpass":
        return (f"{pair} your function {what}. actpass says only 'either role': the answer decides. The active "
                "side opens the connection and sends the ClientHello, so it is the DTLS client.")
    return f"{pair} your function {what}. The active side sends the ClientHello: it is the DTLS client."


@check(probe=probe_offerer_role)
def check_offerer_role(answer, result: WebRTCCallResult) -> Feedback:
    """Task 2 (build): the student's ``offerer_role(offer, answer) -> "client" | "server"`` on this
    student's SDP pairs (:func:`_setup_cases`): the offerer's DTLS role, or ValueError for a pair that
    gives no handshake."""
    if answer is None:
        return unanswered("Task 2")
    if not isinstance(answer, Probed):
        return not_yet("define offerer_role(offer, answer) as a function and pass the function itself.")
    cases, outputs = _setup_cases(result), answer.outputs
    if not isinstance(outputs, list) or len(outputs) != len(cases) or not all(isinstance(o, dict) for o in outputs):
        return not_yet("the check could not run offerer_role on its SDP pairs; pass the function itself.")
    for (setup_offer, setup_answer, _, _), got in zip(cases, outputs):
        want = _offerer_role(setup_offer, setup_answer)
        ok = got.get("raised") == "ValueError" if want is None else got.get("value") == want
        if not ok:
            return not_yet(_role_hint(setup_offer, setup_answer, got))
    return correct(f"every pair read right, the invalid ones refused; in this call the SFU offers actpass and "
                   f"each participant answers active, so the SFU is the DTLS {sfu_role(result)} of every leg.")


# --- Task 3: the SRTP profile ------------------------------------------------------------------------


def _profile_name(text: str) -> str:
    name = str(text).strip().upper().replace("-", "_")
    return name[len("SRTP_"):] if name.startswith("SRTP_") else name


@check(answers=2)
def check_srtp_profile(profile: str | None, named_in_sdp: bool | None, result: WebRTCCallResult) -> Feedback:
    """Task 3: the SRTP protection profile the legs negotiated, and whether any SDP line names it."""
    if profile is None or named_in_sdp is None:
        return unanswered("Task 3")
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


# --- Task 4: what a key-frame storm would cost (reasoning) -------------------------------------------

#: Task 4's calls: participants (each publishes one video stream) and frames per second.
TASK4_PEOPLE = (3, 4, 5, 6, 8)
TASK4_FPS = (15, 24, 30)


def task4_call() -> dict[str, int]:
    """This student's Task 4 call: ``participants`` and ``fps`` (``labs.params("09")``)."""
    p = params("09")
    return {"participants": p.choice("task4 people", TASK4_PEOPLE, 3), "fps": p.choice("task4 fps", TASK4_FPS, 30)}


@check
def check_storm(answer: int | None) -> Feedback:
    """Task 4: key frames per second all subscribers together would receive if the SFU's decoders got
    the e2ee call's ciphertext (sealed per call: ``09/T4/n=<participants>,fps=<fps>``). A hint undoes a
    known mistake on the answer and opens the seal; it never compares with the answer itself."""
    if answer is None:
        return unanswered("Task 4")
    x = whole_number(answer)
    if x is None or x <= 0:
        return not_yet("give a whole, positive number of key frames per second.")
    call = task4_call()
    n, fps = call["participants"], call["fps"]
    seal = Sealed(f"09/T4/n={n},fps={fps}")
    if (message := seal.opens(x)) is not None:
        return correct(message)
    mistakes = (
        (x * (n - 1), "that counts the key frames the publishers send; the SFU forwards each one to every "
                      "other participant."),
        (x * n, "that is one publisher's share: every participant publishes video, and the SFU has a "
                "receiver for each stream."),
        (x * (n - 1) // n if x * (n - 1) % n == 0 else -1,
         "a publisher is not sent its own stream back: count each stream's subscribers only."),
    )
    for undone, hint in mistakes:
        if seal.opens(undone) is not None:
            return not_yet(hint)
    if x == fps:
        return not_yet(f"{fps} per second is one stream's frame rate; how many streams would turn into key frames, "
                       "and how many copies of each does the SFU forward?")
    return not_yet("follow one frame: which SFU receiver fails on it, whom does its PLI reach, what does that "
                   "publisher send next, and to how many subscribers does the SFU forward it?")
