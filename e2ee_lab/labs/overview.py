"""Notebook 00 (overview): the course map, the "see it" calls, and the checks of its tasks.

:func:`labs_map` reads every lab notebook's own header (title, "Time", "Prerequisites", whether it
mentions live capture) so the map never disagrees with the labs. :func:`sfu_view_table` sums up
what the SFU made of the notebook's two short calls (one per mode), and the checks compare the
student's answers with those runs and with the threat model of
:mod:`e2ee_lab.analysis.threat_model` (RFC 5764 §4.2: both ends of a leg's DTLS handshake export
its SRTP keys; RFC 9605: frame keys stay with the members). Task 1 asks about a leg through a relay
(drawn per student, ``labs.params("00")``); Task 3 is a build task: the student's ``readers(path,
relays, e2ee)`` (``who_reads``) runs on paths through relays, one SFU or two cascaded ones, and its answers are
compared with sealed ones (``00/T3/<case>``), so this module holds no reference solution.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd

from e2ee_lab.analysis import threat_model
from e2ee_lab.call import CallResult
from e2ee_lab.labs import Feedback, Probed, check, correct, not_yet, params, unanswered
from e2ee_lab.labs.answers import Sealed

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NO_ROOT_PATH = "no (live capture if permitted, else data/captures/)"
ROOT_LIVE = "yes for the live calls (else recorded results)"

_TITLE = re.compile(r"^#\s+(?:Lab\s+\d+\s*[—–-]\s*)?(.+)$", re.MULTILINE)
_TIME = re.compile(r"\*\*Time[^*]*\*\*[^0-9]*?(\d+)\s*min", re.IGNORECASE)
_PREREQ = re.compile(r"prerequisites(.*?)(?=\*\*Time|\n#|\Z)", re.IGNORECASE | re.DOTALL)
_LAB_REFS = re.compile(r"\blabs?\s+(\d{2}(?:\s*(?:,|and|&|or)\s*\d{2})*)", re.IGNORECASE)
_HELPFUL = re.compile(r"helpful|\bhelp\b|not required|optional", re.IGNORECASE)
_NEEDS_ROOT = re.compile(r"\*\*Needs:?\*\*:?\s*root\b", re.IGNORECASE)  # "**Needs:** root and ..."


@dataclass(frozen=True)
class LabInfo:
    """What a lab notebook's header says about it."""

    number: str  # "01"
    title: str
    minutes: int | None  # the "Time" line, None when the notebook gives none
    necessary: tuple[str, ...]  # labs listed as prerequisites
    helpful: tuple[str, ...]  # labs listed as helpful, not required
    live_capture: bool  # mentions live capture (root or CAP_NET_RAW) and its fallback
    notebook: str  # file name
    root_live: bool = False  # its "Needs" line starts with root: the live runs need it (recorded otherwise)


def _header_text(nb: nbformat.NotebookNode) -> str:
    """The markdown before the first code cell (title, goals, prerequisites, time)."""
    text = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            break
        text.append(cell.source)
    return "\n\n".join(text)


def _prerequisites(header: str, own: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(necessary, helpful) lab numbers named in the Prerequisites part of ``header``."""
    match = _PREREQ.search(header)
    necessary: set[str] = set()
    helpful: set[str] = set()
    for clause in re.split(r"\n|(?<=\.)\s", match.group(1) if match else ""):
        labs = {n for m in _LAB_REFS.finditer(clause) for n in re.findall(r"\d{2}", m.group(1))} - {own}
        (helpful if _HELPFUL.search(clause) else necessary).update(labs)
    return tuple(sorted(necessary)), tuple(sorted(helpful - necessary))


def read_lab(path: str | Path) -> LabInfo:
    """Read one lab notebook's header (``NN_name.ipynb``).

    Raises:
        ValueError: the file name does not start with a two-digit lab number.
        OSError, nbformat.reader.NotJSONError: the file cannot be read as a notebook.
    """
    path = Path(path)
    number = path.name[:2]
    if not number.isdigit():
        raise ValueError(f"a lab notebook is named NN_name.ipynb, not {path.name!r}")
    nb = nbformat.read(path, as_version=4)
    header = _header_text(nb)
    title = _TITLE.search(header)
    time = _TIME.search(header)
    necessary, helpful = _prerequisites(header, number)
    everything = "\n".join(c.source for c in nb.cells)
    return LabInfo(number=number, title=title.group(1).strip() if title else path.stem,
                   minutes=int(time.group(1)) if time else None, necessary=necessary, helpful=helpful,
                   live_capture="CAP_NET_RAW" in everything, notebook=path.name,
                   root_live=bool(_NEEDS_ROOT.search(header)))


def lab_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The student notebooks ``NN_*.ipynb`` in ``folder`` (default the repository's notebooks/)."""
    return sorted(Path(folder or NOTEBOOKS).glob("[0-9][0-9]_*.ipynb"))


def labs_map(folder: str | Path | None = None) -> pd.DataFrame:
    """The course map: one row per lab notebook present, from each notebook's own header.

    Columns: ``lab``, ``title``, ``time`` (minutes), ``prerequisites`` (labs required, then the
    helpful ones in parentheses), ``needs root?`` and ``notebook`` (the file name).
    """
    rows = []
    for path in lab_notebooks(folder):
        lab = read_lab(path)
        prereq = ", ".join(lab.necessary) or "none"
        if lab.helpful:
            prereq += f" ({', '.join(lab.helpful)} helpful)"
        rows.append({"lab": lab.number, "title": lab.title,
                     "time": f"{lab.minutes} min" if lab.minutes else "?", "prerequisites": prereq,
                     "needs root?": ROOT_LIVE if lab.root_live else NO_ROOT_PATH if lab.live_capture else "no",
                     "notebook": lab.notebook})
    return pd.DataFrame(rows, columns=["lab", "title", "time", "prerequisites", "needs root?", "notebook"])


# --- see it ------------------------------------------------------------------------------------------


def _sfu_frames(result: CallResult, publisher: str, kind: str = "video") -> pd.DataFrame:
    frames = result.sfu.frames
    return frames[(frames.publisher == publisher) & (frames.kind == kind)]


def sfu_view_table(calls: Mapping[str, CallResult]) -> pd.DataFrame:
    """Per mode, what the SFU made of the frames it forwarded: video frames seen and decoded to
    the sent picture, speech frames seen and intelligible, key messages it relayed (sealed)."""
    rows = {}
    for mode, result in calls.items():
        s = result.summary["sfu"]
        rows[mode] = {"video frames forwarded": s["video_frames_seen"],
                      "pictures the SFU decoded": s["video_frames_decodable"],
                      "speech frames forwarded": s["audio_frames_seen"],
                      "speech frames the SFU understood": s["audio_frames_intelligible"],
                      "key messages relayed (sealed)": s["key_messages_relayed"]}
    return pd.DataFrame.from_dict(rows, orient="index")


def media_readers(result: CallResult, publisher: str | None = None) -> set[str]:
    """The parties that read ``publisher``'s pictures in a run: the publisher, every receiver that
    decoded one, and the SFU if it decoded one matching the sent picture."""
    publisher = publisher or result.names[0]
    readers = {publisher} | {n for n, got in result.pictures.items() if got.get(publisher) is not None}
    if _sfu_frames(result, publisher).matches.any():
        readers.add(threat_model.SFU)
    return readers


# --- checks ------------------------------------------------------------------------------------------


def _names(answer: object) -> set[str] | None:
    """A set of lower-case names, or None when ``answer`` is not a collection of strings."""
    if isinstance(answer, str) or not isinstance(answer, Iterable):
        return None
    names = list(answer)
    if not all(isinstance(n, str) for n in names):
        return None
    return {n.strip().lower() for n in names}


#: Task 1's relays: what sits between one participant and the SFU, forwarding UDP datagrams only.
RELAYS = ("a TURN relay run by the hotel's network", "the office's firewall", "a VPN server abroad",
          "a TURN server of the conferencing service")
RELAY = "relay"  # the relay's name in answers


def task1_setting() -> tuple[str, str]:
    """(participant, relay) of Task 1 for this student: whose leg, and what relays its datagrams."""
    p = params("00")
    return p.choice("participant", threat_model.DEFAULT_NAMES, "bob"), p.choice("relay", RELAYS, RELAYS[0])


@check
def check_leg_key(answer: Iterable[str] | None, plain: CallResult, publisher: str | None = None) -> Feedback:
    """Task 1: the parties holding the SRTP key of ``publisher``'s leg in the dtls-srtp run, when that
    leg's datagrams pass through a relay (named ``"relay"``) that is no DTLS endpoint."""
    if answer is None:
        return unanswered("Task 1")
    publisher = publisher or plain.names[0]
    label = threat_model.srtp_label(publisher)
    given, truth = _names(answer), plain.key_holders[label]
    if given is None:
        return not_yet(f"write a set of names, e.g. {{'{publisher}'}}, from {sorted(plain.names)}, 'sfu' and "
                       f"'{RELAY}'.")
    if given == truth:
        return correct(f"the key of {publisher}'s leg is held by the two ends of its DTLS handshake, {publisher} and "
                       "the SFU (both export the SRTP keys, RFC 5764 §4.2). The relay forwards the handshake's "
                       "datagrams without taking part: it sees SRTP ciphertext and no key.")
    if RELAY in given:
        return not_yet("the relay forwards UDP datagrams, the DTLS handshake's among them, but it is not one of "
                       "the handshake's two ends: the key is derived from a secret it never learns (ECDHE).")
    if threat_model.SFU not in given:
        return not_yet("who runs the other end of that leg's DTLS handshake? Both ends export the leg's "
                       "SRTP keys, so that party holds the key too.")
    if given - truth:
        return not_yet("every leg has its own handshake and key: a participant who is not an end of this leg "
                       "never sees its key. The SFU unprotects with it and protects again with each receiver's.")
    return not_yet("the key protects the packets of the participant whose leg it is: who encrypts them before "
                   "they leave?")


@check
def check_media_readers(answer: Mapping[str, Iterable[str] | None] | None,
                        calls: Mapping[str, CallResult], publisher: str | None = None) -> Feedback:
    """Task 2: per mode, the parties that read ``publisher``'s pictures in the "see it" calls."""
    if answer is None:
        return unanswered("Task 2")
    if not isinstance(answer, Mapping) or set(answer) != set(calls):
        return not_yet(f"the answer is a dict with the keys {sorted(calls)}, each a set of names.")
    publisher = publisher or calls[next(iter(calls))].names[0]
    for mode, result in calls.items():
        given, truth = _names(answer[mode]), media_readers(result, publisher)
        if given is None:
            return not_yet(f"answer[{mode!r}] should be a set of names, e.g. {{'bob', 'dave'}}.")
        if given != truth:
            return not_yet(_readers_hint(mode, given, truth, result, publisher))
    return correct("with dtls-srtp the SFU reads every picture it forwards; with e2ee only the members "
                   "do. End-to-end encryption changed exactly one reader: the SFU.")


def _readers_hint(mode: str, given: set[str], truth: set[str], result: CallResult, publisher: str) -> str:
    video = _sfu_frames(result, publisher)
    counts = f"{len(video)} of {publisher}'s video frames and decoded {int(video.matches.sum())}"
    sfu = threat_model.SFU
    if sfu in given and sfu not in truth:
        return (f"in the {mode} call the SFU forwarded {counts} to the sent picture: look at its panel in "
                "the figure above. It forwards what it cannot read.")
    if sfu in truth and sfu not in given:
        return f"in the {mode} call the SFU forwarded {counts}: it holds the leg key, so it reads them."
    return (f"for {mode}: the SFU's part is right, but not everyone else's. Compare each participant's panel "
            "in the figure with the sent picture, and ask who holds a key for this publisher's frames.")


# --- Task 3: who reads a frame along a path (build) -----------------------------------------------------

#: Task 3's paths: (case, roles along the path sender → receiver, e2ee). Roles: "member" (sender or
#: receiver), "sfu" (a DTLS endpoint that forwards: an SFU), "relay" (forwards datagrams, no DTLS).
PATHS = (
    ("one SFU", ("member", "sfu", "member"), False),
    ("one SFU, e2ee", ("member", "sfu", "member"), True),
    ("a TURN relay before the SFU", ("member", "relay", "sfu", "member"), False),
    ("two cascaded SFUs", ("member", "sfu", "sfu", "member"), False),
    ("two cascaded SFUs, e2ee", ("member", "sfu", "sfu", "member"), True),
    ("peer to peer", ("member", "member"), False),
    ("relays on both sides", ("member", "relay", "sfu", "relay", "member"), False),
    ("relays on both sides, e2ee", ("member", "relay", "sfu", "relay", "member"), True),
)
_NAMES = {"member": ("ana", "ben", "chloe", "dmitri", "eun", "farah", "gus", "hana"),
          "sfu": ("sfu-eu", "sfu-us", "media-1", "media-2", "bridge", "edge-7"),
          "relay": ("turn-1", "isp-router", "hotel-wifi", "vpn-exit", "firewall")}


def path_cases() -> list[tuple[str, list[str], set[str], bool]]:
    """Task 3's inputs for this student: (case, path of names, the relays among them, e2ee)."""
    rng = params("00").rng("task3 names")
    out = []
    for case, roles, e2ee in PATHS:
        pools = {role: rng.sample(names, len(names)) for role, names in _NAMES.items()}
        path = [pools[role].pop() for role in roles]
        out.append((case, path, {n for n, r in zip(path, roles) if r == "relay"}, e2ee))
    return out


def probe_readers(func) -> list[dict]:
    """Task 3's probe: the student's ``who_reads(path, relays, e2ee)`` on every case of :func:`path_cases`;
    each answer as the sorted positions on the path of the names it returned (or the exception's name)."""
    from e2ee_lab.labs.plain import call_safely

    out = []
    for _, path, relays, e2ee in path_cases():
        got = call_safely(func, list(path), set(relays), e2ee)
        names = _names(got.get("value")) if "value" in got else None
        if names is None:
            out.append(got if "raised" in got else {"not a set of names": True})
        else:
            out.append({"positions": sorted(i for i, n in enumerate(path) if n in names),
                        "outside": sorted(names - set(path))})
    return out


@check(probe=probe_readers)
def check_readers(answer) -> Feedback:
    """Task 3 (build): the student's ``who_reads`` on every path (sealed per case: ``00/T3/<case>``)."""
    if answer is None:
        return unanswered("Task 3")
    if not isinstance(answer, Probed):
        return not_yet("define who_reads(path, relays, e2ee) as a function and pass the function itself.")
    cases = path_cases()
    if not isinstance(answer.outputs, list) or len(answer.outputs) != len(cases):
        return not_yet("the check could not run who_reads() on its paths; pass the function itself.")
    for (case, path, relays, e2ee), got in zip(cases, answer.outputs):
        where = f"{' → '.join(path)} (relays {sorted(relays) or 'none'}, e2ee={e2ee})"
        if not isinstance(got, dict) or "raised" in got or "positions" not in got:
            what = f"raised {got['raised']}" if isinstance(got, dict) and "raised" in got else "returned no set of names"
            return not_yet(f"for {where} who_reads() {what}: return a set of names from the path.")
        if got["outside"]:
            return not_yet(f"for {where} who_reads() named {got['outside']}, who are not on the path.")
        if Sealed(f"00/T3/{case}").opens(tuple(got["positions"])) is None:
            return not_yet(f"for {where} who_reads() named {sorted(path[i] for i in got['positions'])}. " + _PATH_HINT)
    return correct("every path: without E2EE every DTLS endpoint on the path reads the frame (one SFU, two "
                   "cascaded ones), a relay never does; with E2EE only the sender and the receiver do.")


_PATH_HINT = ("Ask of each party: does it terminate a DTLS handshake (then it unprotects SRTP and holds the "
              "frame as the sender's encoder made it), or does it only pass datagrams on? And with e2ee, who "
              "holds the frame key?")
