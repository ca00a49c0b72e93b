"""Notebook 07's section on a real library: libwebrtc's SFrame (through PyPI ``wrtc``) and its pitfalls.

:func:`nonce_reuse_table` runs :func:`e2ee_lab.attacks.native.native_nonce_reuse` twice (one KID
for audio and video, the pitfall; one KID per media kind, the fix) and :func:`replay_table` runs
:func:`e2ee_lab.attacks.native.replay_against_native` (the lab's receiver with its replay window
beside libwebrtc's without one). Where wrtc is not installed, each prints one line saying so and
returns the results recorded by ``data/make_native_sframe.py`` (``data/native_sframe.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from e2ee_lab.interop import wrtc_problem

RECORDED_PATH = Path(__file__).resolve().parents[2] / "data" / "native_sframe.json"
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
