"""A libwebrtc participant in the registry: ``run_call(..., stack="webrtc", native_participants=1)``.

Registers :func:`e2ee_lab.native.call.run_for_call` with :mod:`e2ee_lab.call.stacks`, selected by the
``native_participants`` keyword (``e2ee-lab call --stack webrtc --native 1``): a libwebrtc member
(PyPI ``wrtc``, libwebrtc's own SFrame) joins the aiortc call, which then runs only in a private
network namespace (root); ``participants`` counts the aiortc members. It needs ``stack="webrtc"``
and refuses the lab-only options and the SFrame payload format (libwebrtc M152 does not speak it).
``e2ee-lab call`` reports a :class:`~e2ee_lab.native.errors.NativeError` (no wrtc, not root) in one
line and exits 2.
"""

from __future__ import annotations

import argparse

from e2ee_lab.call.stack import STACK as LAB
from e2ee_lab.call.stacks import Stack, register

from .call import run_for_call
from .errors import NativeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--native N``: libwebrtc participants joining the webrtc stack's call."""
    parser.add_argument("--native", type=int, default=0, metavar="N",
                        help="libwebrtc (wrtc) participants joining the webrtc stack's call (0 or 1; root: "
                             "the call runs in a private network namespace; --participants counts the aiortc ones)")


def _run(stack: str, mode: str, participants: int, seconds: float, seed: int, size, out, *,
         native_participants: int, **options):
    return run_for_call(stack, native_participants, mode, participants, seconds, seed, size, out, **options)


STACK = register(Stack("native", run=_run, option="native_participants", add_arguments=add_arguments,
                       arguments={"native": "native_participants"}, errors=(NativeError,),
                       accepts=(LAB.accepts - {"rtp_sframe"}) | {"native_participants"},
                       help="a libwebrtc participant in the webrtc stack's call (--native 1)"))
