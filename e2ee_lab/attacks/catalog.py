"""What the attack matrix is made of: the attacks (:data:`ATTACKS`), the calls they are packed into
(:class:`CallPlan`) and a call run with its attacks (:class:`AttackRun`).

:mod:`e2ee_lab.attacks.runner` plans and runs the attacks in real calls;
:mod:`e2ee_lab.attacks.measure` reads each attack's ``goal`` and run to say whether it succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from e2ee_lab.attacks.sfu import AttackPolicy
from e2ee_lab.call import CallResult
from e2ee_lab.crypto.keys import MITM


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the matrix."""

    name: str
    shape: str  # "pair": one publisher -> subscriber; "publisher": all of one's pairs; "both-ways";
    #             "swap": two publishers -> one subscriber; "ring": each participant once, to the next
    goal: str  # "display" (get bad frames shown), "disrupt" (drop/delay/reorder), "read", "none"
    rekey: bool | None  # the call must (True) / must not (False) rekey; None: either
    does: str  # what the SFU does
    event: str | None = None  # "ghost" or "leave": changes the key agreement, in a call of its own


ATTACKS: dict[str, AttackSpec] = {s.name: s for s in (
    AttackSpec("none", "pair", "none", None, "forwards honestly (the baseline)"),
    AttackSpec("tamper-header", "pair", "display", None,
               "flips a bit in the frame header: SFrame KID/CTR (e2ee), VP8 frame tag (dtls-srtp)"),
    AttackSpec("tamper-payload", "pair", "display", None, "flips a bit in the ciphertext / VP8 data"),
    AttackSpec("tamper-tag", "pair", "display", None,
               "flips a bit in the last 16 bytes of the frame: the AEAD tag (e2ee)"),
    AttackSpec("replay", "pair", "display", False, "re-sends 0.4-0.7 s old frames in fresh RTP sequence slots"),
    AttackSpec("replay-same-seq", "pair", "display", False, "re-sends old frames in their old sequence slots"),
    AttackSpec("replay-rekey", "pair", "display", True,
               "triggers a rekey, then re-sends frames of the old epoch in fresh slots"),
    AttackSpec("drop", "pair", "disrupt", None, "drops 0.5 s of frames and closes the sequence gap"),
    AttackSpec("delay", "pair", "disrupt", False, "holds every frame 0.3 s"),
    AttackSpec("reorder", "pair", "disrupt", False, "swaps frames in pairs, renumbered"),
    AttackSpec("inject", "pair", "display", None,
               "forges frames: known KID, future CTR, random ciphertext (e2ee); its own VP8 picture (dtls-srtp)"),
    AttackSpec("downgrade-inject", "pair", "display", None,
               "injects an unencrypted VP8 picture of its own into the member's stream"),
    AttackSpec("downgrade-signalling", "publisher", "read", None,
               "drops a=sframe from its answer to one member, who then sends without SFrame"),
    AttackSpec("key-substitution", "both-ways", "read", None,
               "serves its own identity keys to two members and re-seals their key messages (MITM)"),
    AttackSpec("ghost-member", "pair", "read", True,
               "adds a member of its own (a ghost) to a REKEY; reads what the members then seal to it",
               event="ghost"),
    AttackSpec("stream-swap", "swap", "display", None,
               "forwards one member's video on another member's stream (SSRC)"),
    AttackSpec("leaver-forgery", "ring", "display", True,
               "a member who left keeps its keys; the SFU injects frames it sealed under its last epoch's "
               "KIDs as each remaining member", event="leave"),
    AttackSpec("cross-call-replay", "pair", "display", False,
               "relays a key message recorded in an earlier call between the same identity keys, then "
               "injects frames sealed with that call's key"),
)}
ATTACK_NAMES = tuple(ATTACKS)
#: The attacks on the group key agreement that the naive members (``key_policy="naive"``) fall to.
KEY_ATTACKS = ("ghost-member", "stream-swap", "leaver-forgery", "cross-call-replay")


@dataclass
class CallPlan:
    """One call: whether it rekeys, the key-agreement event it hosts, and the pairs each attack runs on."""

    rekey: bool
    names: list[str]  # participants
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    event: str | None = None  # "ghost" or "leave" (:attr:`AttackSpec.event`)

    def free(self) -> list[tuple[str, str]]:
        """Pairs no attack uses yet."""
        used = {p for ps in self.pairs.values() for p in ps}
        return [(a, b) for a in self.names for b in self.names if a != b and (a, b) not in used]

    def admits(self, spec: AttackSpec) -> bool:
        """Whether ``spec`` may share this call (an event's call takes only rekey-indifferent attacks)."""
        if spec.event is not None:
            return False
        if self.event is not None:
            return spec.rekey is None
        return spec.rekey is None or spec.rekey == self.rekey

    def fit(self, spec: AttackSpec) -> list[tuple[str, str]] | None:
        """Free pairs of the shape ``spec`` needs, or None."""
        free, names = self.free(), self.names
        if spec.shape == "pair":
            return free[:1] or None
        if spec.shape == "ring":
            ring = [(a, names[(i + 1) % len(names)]) for i, a in enumerate(names)]
            return ring if all(p in free for p in ring) else None
        if spec.shape == "swap":
            for sub in names:
                mine = [(p, sub) for p in names if p != sub and (p, sub) in free]
                if len(mine) >= 2:
                    return mine[:2]
            return None
        if spec.shape == "publisher":
            for name in names:
                mine = [(name, b) for b in names if b != name]
                if all(p in free for p in mine):
                    return mine
            return None
        pairs = [[(a, b), (b, a)] for a in names for b in names if a < b]
        return next((p for p in pairs if all(x in free for x in p)), None)


@dataclass
class AttackRun:
    """One call of a plan: the result, what each attack's policies logged, and the attackers on the
    key agreement (``agents``: a :class:`~e2ee_lab.attacks.group.Ghost`, an
    :class:`~e2ee_lab.attacks.group.ExMember`, a :class:`~e2ee_lab.attacks.group.CrossCallReplay`,
    by attack name; none in dtls-srtp mode, which has no key agreement)."""

    mode: str
    plan: CallPlan
    result: CallResult
    policies: dict[str, list[AttackPolicy]]
    mitm: MITM | None = None
    key_policy: str = "fixed"  # "fixed" or "naive" (the members'); dtls-srtp calls have no members
    agents: dict[str, object] = field(default_factory=dict)
