"""Attacks the lab demonstrates: a malicious SFU, a malicious signalling server, an ex-member, crypto pitfalls.

- :mod:`~e2ee_lab.attacks.sfu`: forwarding policies that tamper, replay, drop, delay, reorder,
  inject and move frames between streams (RFC 9605 frames in RTP); :mod:`~e2ee_lab.attacks.tamper`:
  the sans-I/O tamper and forgery functions they use, and where each region lies in a payload.
- :mod:`~e2ee_lab.attacks.signalling`: attacks on the SFU's signalling, a downgrade by dropping SDP
  ``a=sframe`` and identity-key substitution (a MITM on the key messages), and the safety numbers
  that reveal the latter.
- :mod:`~e2ee_lab.attacks.group`: attacks on the group key agreement: a ghost member in a REKEY, an
  ex-member who keeps its keys and forges, a key message replayed from an earlier call.
- :mod:`~e2ee_lab.attacks.runner`: every attack of the catalogue (:mod:`~e2ee_lab.attacks.catalog`)
  in real calls, against the fixed and the naive members; :mod:`~e2ee_lab.attacks.measure`: the
  matrix of what the receivers did.
- :mod:`~e2ee_lab.attacks.crypto`: nonce reuse and short-tag forgery (import it from the submodule),
  with the GF(2^128) algebra of :mod:`~e2ee_lab.attacks.gf128`.
- :mod:`~e2ee_lab.attacks.native`: the same pitfalls in libwebrtc's SFrame through ``wrtc`` (nonce
  reuse with one KID across audio and video, no replay window); needs the ``interop`` extra.

The public API of the call-level attacks is exported here, loaded on first use: importing
``e2ee_lab.attacks`` (or ``e2ee_lab.attacks.crypto``) does not load the call stack that
:mod:`~e2ee_lab.attacks.runner` and :mod:`~e2ee_lab.attacks.signalling` run on.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "catalog": ("ATTACK_NAMES", "ATTACKS", "KEY_ATTACKS", "AttackRun", "AttackSpec", "CallPlan"),
    "runner": (
        "EVENT_POLICY", "MODES", "REKEY_POLICY", "Matrix", "attack_matrix", "attack_seconds", "plan_calls", "replay_across_rekey", "run_attack",
        "run_attacks", "run_matrix", "run_plan",
    ),
    "measure": ("CHECKS", "MATRIX_COLUMNS", "key_drops", "measure", "parse_rejected_by"),
    "sfu": ("AttackAction", "AttackPolicy", "Delay", "Drop", "Honest", "Inject", "PairRouter", "Reorder", "Replay",
            "StreamSwap", "Tamper"),
    "tamper": (
        "flip_bit", "forged_picture", "forged_vp8_frame", "payload_layout", "region_span", "sample_frames",
        "sframe_forgery", "tamper_frame", "tamper_payload", "tamper_sweep",
    ),
    "signalling": ("downgrade_answers", "frames_read", "mitm_reads", "safety_numbers", "strip_sframe",
                   "substitute_keys"),
    "group": ("CrossCallReplay", "ExMember", "Ghost", "recorded_key_message"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
