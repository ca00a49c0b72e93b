"""libwebrtc's own SFrame (PyPI ``wrtc``) in the labs: notebook 07's pitfalls, notebook 10's native participant.

Notebook 07: :func:`nonce_reuse_table` runs :func:`e2ee_lab.attacks.native.native_nonce_reuse`
twice (one KID for audio and video, the pitfall; one KID per media kind, the fix) and
:func:`replay_table` runs :func:`e2ee_lab.attacks.native.replay_against_native` (the lab's receiver
with its replay window beside libwebrtc's without one). Where wrtc is not installed, each prints
one line saying so and returns the results recorded by ``data/make_native_sframe.py``
(``data/native_sframe.json``).

Notebook 10: :func:`native_call` runs the aiortc call with a libwebrtc participant
(:func:`e2ee_lab.native.run_native_call`, in a private network namespace: root and wrtc); where
it cannot run, it prints one line saying why and returns the summary ``data/make_native_call.py``
recorded (``data/native_call.json``). :func:`native_directions` and :func:`native_key_frames` shape
it: what each side decoded of the other, per media kind, and how libwebrtc's VP8 depacketizer read
the lab's SFrame headers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from e2ee_lab.interop import wrtc_problem

RECORDED_PATH = Path(__file__).resolve().parents[2] / "data" / "native_sframe.json"
CALL_PATH = RECORDED_PATH.with_name("native_call.json")
CALL_SECONDS = 2.0  # the notebook's call (aiortc members alice and bob, and libwebrtc), ci size
AUDIO_FRAME = bytes(160)  # a silent audio frame: known to anyone (the attacker's crib)
VIDEO_FRAME = b"CONFIDENTIAL: the merger closes on Friday. " * 4  # the secret video bytes


def _recorded() -> dict:
    return json.loads(RECORDED_PATH.read_text(encoding="utf-8"))


def _note() -> bool:
    """True when wrtc runs here; else prints the one line and the caller uses the recording."""
    problem = wrtc_problem()
    if problem:
        rec = _recorded()["_meta"]
        print(f"{problem}: showing the results recorded with wrtc {rec['wrtc']} ({rec['made_by']})")
    return problem is None


def nonce_reuse_rows() -> list[dict]:
    """The two runs as rows (live with wrtc, else recorded)."""
    from e2ee_lab.attacks.native import native_nonce_reuse

    rows = []
    for label, kids in (("one KID for audio and video (pitfall)", (1, 1)),
                        ("one KID per media kind (fix)", (2, 3))):
        run = native_nonce_reuse(AUDIO_FRAME, VIDEO_FRAME, kids=kids)
        rows.append({"setup": label, "KIDs (audio, video)": str(kids),
                     "SFrame headers": " / ".join(run.headers), "same (key, nonce)": run.same_nonce,
                     "C_a ⊕ C_v = P_a ⊕ P_v": run.xor_leaks, "video recovered": run.recovered_ok,
                     "recovered bytes": run.recovered[:43].decode("ascii") if run.recovered_ok
                     else run.recovered[:12].hex() + "… (noise)"})
    return rows


def nonce_reuse_table() -> pd.DataFrame:
    """libwebrtc with one base key for audio and video: one KID (nonce reuse) against one per kind."""
    rows = nonce_reuse_rows() if _note() else _recorded()["nonce_reuse"]
    return pd.DataFrame(rows).set_index("setup")


def replay_rows() -> list[dict]:
    """The replay run as rows (live with wrtc, else recorded)."""
    from e2ee_lab.attacks.native import replay_against_native

    table = replay_against_native(frames=20, replayed=range(5))
    table["refusal_reasons"] = table["refusal_reasons"].map(str)
    return table.to_dict("records")


def replay_table() -> pd.DataFrame:
    """20 frames, then 5 of them replayed: what the lab's receiver and libwebrtc's accept."""
    rows = replay_rows() if _note() else _recorded()["replay"]
    return pd.DataFrame(rows).set_index("receiver")


# --- notebook 10: a libwebrtc participant in the call ------------------------------------------------


def native_call(seconds: float = CALL_SECONDS) -> dict:
    """The summary of an e2ee call of alice, bob (aiortc) and libwebrtc: live where it can run
    (root and wrtc), else the one recorded in ``data/native_call.json`` (after a one-line note)."""
    from e2ee_lab.labs.session import note_source
    from e2ee_lab.native import native_problem, run_native_call

    problem = native_problem()
    note_source("libwebrtc call", "live" if problem is None else "recorded")
    if problem is None:
        return run_native_call("e2ee", 2, seconds, seed=0, size="ci").summary
    recorded = json.loads(CALL_PATH.read_text(encoding="utf-8"))
    print(f"{problem}: showing the call {recorded['_meta']['made_by']} recorded")
    return recorded["summary"]


def native_directions(summary: dict) -> pd.DataFrame:
    """One row per direction, lab member and media kind: frames sent, decoded, and the share."""
    rows = []
    for direction, label in (("native_to_lab", "libwebrtc → {}"), ("lab_to_native", "{} → libwebrtc")):
        for member, kinds in summary["native"]["directions"][direction].items():
            for kind, counts in kinds.items():
                share = counts["decoded"] / counts["sent"] if counts["sent"] else float("nan")
                rows.append({"direction": label.format(member), "kind": kind, "sent": counts["sent"],
                             "decoded": counts["decoded"], "share": f"{share:.0%}",
                             "counted over": counts.get("counted", "the window")})
    return pd.DataFrame(rows).set_index(["direction", "kind"])


def native_key_frames(summary: dict) -> pd.DataFrame:
    """Per lab member: its video frames libwebrtc's VP8 depacketizer took for key and for delta
    frames (bit 0, the least significant, of the SFrame header's first byte), and the PLIs libwebrtc
    sent it."""
    stats = summary["native"]["stats"]
    return pd.DataFrame([{"publisher": name, "read as key frames": flags["key"], "read as delta frames": flags["delta"],
                          "PLIs from libwebrtc": stats.get(f"{name}/video", {}).get("pliCount")}
                         for name, flags in summary["native"]["read_as_key_frames"].items()]).set_index("publisher")
