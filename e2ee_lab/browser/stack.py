"""A browser participant in the registry: ``run_call(..., stack="webrtc", browser_participants=1)``.

Registers :func:`e2ee_lab.browser.call.run_for_call` with :mod:`e2ee_lab.call.stacks`, selected by
the ``browser_participants`` keyword (``e2ee-lab call --stack webrtc --browser 1``): a headless
Chromium page joins the aiortc call; ``participants`` then counts the Python members. It needs
``stack="webrtc"`` and refuses the lab-only options. ``e2ee-lab call`` reports a
:class:`~e2ee_lab.browser.errors.BrowserError` (no Chromium, the page failed) or a
:class:`~e2ee_lab.webrtc.errors.WorkerError` (``--workers``: a worker failed before media) in one line.
"""

from __future__ import annotations

import argparse

from e2ee_lab.call.stack import STACK as LAB
from e2ee_lab.call.stacks import Stack, register

from e2ee_lab.webrtc.errors import WorkerError

from .call import run_for_call
from .errors import BrowserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--browser N``: headless Chromium participants joining the webrtc stack's call."""
    parser.add_argument("--browser", type=int, default=0, metavar="N",
                        help="headless Chromium participants joining the webrtc stack's call (0 or 1; "
                             "--participants then counts the Python ones)")


def _run(stack: str, mode: str, participants: int, seconds: float, seed: int, size, out, *,
         browser_participants: int, **options):
    return run_for_call(stack, browser_participants, mode, participants, seconds, seed, size, out, **options)


STACK = register(Stack("browser", run=_run, option="browser_participants", add_arguments=add_arguments,
                       arguments={"browser": "browser_participants"}, errors=(BrowserError, WorkerError),
                       # the lab's options (refused when set) but the SFrame payload format: the page
                       # has none (Chromium 156 exposes no SFrame to JavaScript)
                       accepts=(LAB.accepts - {"rtp_sframe"}) | {"browser_participants"},
                       help="a headless Chromium page in the webrtc stack's call (--browser 1)"))
