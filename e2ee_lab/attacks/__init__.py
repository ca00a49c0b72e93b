"""Attacks the lab demonstrates: a malicious SFU and crypto pitfalls.

- :mod:`~e2ee_lab.attacks.sfu`: forwarding policies that tamper, replay, drop, delay, reorder and
  inject (RFC 9605 frames in RTP), and the sans-I/O tamper functions.
- :mod:`~e2ee_lab.attacks.signalling`: attacks on the SFU's signalling, a downgrade by dropping SDP
  ``a=sframe`` and identity-key substitution (a MITM on the key messages), and the safety numbers
  that reveal the latter.
- :mod:`~e2ee_lab.attacks.runner`: every attack in real calls, and the matrix of what the receivers did.
- :mod:`~e2ee_lab.attacks.crypto`: nonce reuse and short-tag forgery (import it from the submodule).

The malicious SFU's public API is exported here.
"""

from e2ee_lab.attacks.runner import (
    ATTACK_NAMES, ATTACKS, CHECKS, MATRIX_COLUMNS, MODES, REKEY_POLICY, AttackRun, AttackSpec, CallPlan, Matrix,
    attack_matrix, attack_seconds, measure, parse_rejected_by, plan_calls, replay_across_rekey, run_attack,
    run_attacks, run_matrix, run_plan,
)
from e2ee_lab.attacks.sfu import (
    AttackAction, AttackPolicy, Delay, Drop, Honest, Inject, PairRouter, Reorder, Replay, Tamper, flip_bit,
    forged_picture, forged_vp8_frame, payload_layout, region_span, sample_frames, sframe_forgery, tamper_frame,
    tamper_payload, tamper_sweep,
)
from e2ee_lab.attacks.signalling import (
    downgrade_answers, mitm_reads, safety_numbers, strip_sframe, substitute_keys,
)

__all__ = [
    "ATTACKS", "ATTACK_NAMES", "CHECKS", "MATRIX_COLUMNS", "MODES", "REKEY_POLICY", "AttackAction", "AttackPolicy",
    "AttackRun", "AttackSpec", "CallPlan", "Delay", "Drop", "Honest", "Inject", "Matrix", "PairRouter", "Reorder",
    "Replay", "Tamper", "attack_matrix", "attack_seconds", "downgrade_answers", "flip_bit", "forged_picture",
    "forged_vp8_frame", "measure", "mitm_reads", "parse_rejected_by", "payload_layout", "plan_calls",
    "region_span", "replay_across_rekey", "run_attack", "run_attacks", "run_matrix", "run_plan",
    "safety_numbers", "sample_frames", "sframe_forgery", "strip_sframe", "substitute_keys", "tamper_frame",
    "tamper_payload", "tamper_sweep",
]
