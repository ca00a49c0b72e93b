"""The lab's stack in the registry: ``run_call(..., stack="lab")``, the default (``e2ee-lab call``).

Registers :func:`e2ee_lab.call.run.run_lab_call` with :mod:`e2ee_lab.call.stacks`. Its options
(``srtp_profile``, ``garbage``, ``capture``, ``policy``, ``key_policy``, ``sfu_setup``,
``sender_options``) are :func:`~e2ee_lab.call.stacks.run_call`'s documented keywords, and the
command's shared options already carry the CLI ones, so it adds none.
"""

from __future__ import annotations

from e2ee_lab.call.run import run_lab_call
from e2ee_lab.call.stacks import Stack, keyword_options, register


def _run(stack: str, mode: str, participants: int, seconds: float, seed: int, size, out, **options):
    return run_lab_call(mode, participants, seconds, seed, size, out, **options)


STACK = register(Stack("lab", run=_run, accepts=keyword_options(run_lab_call),
                       help="the lab's SFU and participants on its own DTLS-SRTP legs (default)"))
