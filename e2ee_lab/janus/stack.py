"""Janus in the registry: ``run_call(..., sfu="janus")``, ``e2ee-lab call --sfu janus``.

Registers :func:`e2ee_lab.janus.call.run_for_stack` with :mod:`e2ee_lab.call.stacks`, selected by
the ``sfu`` keyword: the lab's call with aiortc participants through Janus's VideoRoom, in a
private network namespace (root; Debian ``janus`` and ``janus-tools``). It honours ``key_policy``
and ``reproducible_keys``, takes ``capture`` only as "auto" or "off" (nothing is captured) and
refuses the lab-only options.
``e2ee-lab call`` reports a :class:`~e2ee_lab.janus.errors.JanusError` (Janus, janus-pp-rec, a C
compiler or root missing; Janus refused) in one line and exits 2.
"""

from __future__ import annotations

import argparse

from e2ee_lab.call.stacks import Stack, keyword_options, register

from .call import STACK as NAME
from .call import run_for_stack
from .errors import JanusError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--sfu janus``: the call through Janus instead of the lab's SFU."""
    parser.add_argument("--sfu", choices=(NAME,), default=None,
                        help="janus: the call through Janus's VideoRoom in a private network namespace "
                             "(root, janus and janus-tools; aiortc participants, no capture)")


STACK = register(Stack(NAME, run=run_for_stack, option="sfu", add_arguments=add_arguments,
                       arguments={"sfu": "sfu"}, errors=(JanusError,), accepts=keyword_options(run_for_stack),
                       help="the call through Janus (--sfu janus)"))
