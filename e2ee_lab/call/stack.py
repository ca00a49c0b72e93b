"""The lab's stack in the registry: ``run_call(..., stack="lab")``, the default (``e2ee-lab call``).

Registers :func:`e2ee_lab.call.run.run_lab_call` with :mod:`e2ee_lab.call.stacks`. Its options
(``srtp_profile``, ``garbage``, ``capture``, ``policy``, ``key_policy``, ``sfu_setup``,
``sender_options``, ``rtp_sframe``, ``reproducible_keys``, ``identities``) are
:func:`~e2ee_lab.call.stacks.run_call`'s documented keywords; the command's shared options carry
the CLI ones, and this module adds ``--rtp-sframe`` (the aiortc stack takes it too), ``--publishers``
and ``--loudest`` (a room with mostly listeners), ``--encode``, ``--views`` and ``--workers``
(endpoints that scale; the webrtc stack takes ``--encode`` and ``--workers`` too).
"""

from __future__ import annotations

import argparse

from e2ee_lab.call.clip import ENCODINGS
from e2ee_lab.config import LOUDEST_ROOM_SIZE
from e2ee_lab.rtp import RTPSFrameMode
from e2ee_lab.sfu.loudest import DEFAULT_LOUDEST

from e2ee_lab.call.run import run_lab_call
from e2ee_lab.call.stacks import Stack, keyword_options, register


def _run(stack: str, mode: str, participants: int, seconds: float, seed: int, size, out, **options):
    return run_lab_call(mode, participants, seconds, seed, size, out, **options)


def _views(text: str) -> int | str:
    """``--views``: a count >= 1 or "sample"."""
    if text == "sample":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"--views takes a count >= 1 or 'sample', not {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rtp-sframe {per-frame,per-packet}``: the SFrame RTP payload format (lab and webrtc stacks);
    ``--workers K`` (lab and webrtc stacks); ``--publishers K``, ``--loudest N``, ``--encode live|clip``,
    ``--views N`` and ``--loop`` (lab stack)."""
    parser.add_argument("--rtp-sframe", choices=[m.value for m in RTPSFrameMode], default=None,
                        help="e2ee only: send SFrame in its RTP payload format "
                             "(draft-ietf-avtcore-rtp-sframe-02) instead of the codec's (default)")
    parser.add_argument("--publishers", type=int, default=None, metavar="K",
                        help="lab stack: the first K participants send video, the others only audio "
                             "(default: everyone)")
    parser.add_argument("--loudest", type=int, default=None, metavar="N",
                        help=f"lab stack: in rooms of more than {LOUDEST_ROOM_SIZE} the SFU forwards the "
                             f"audio of the N loudest speakers only, by RFC 6464 level (default {DEFAULT_LOUDEST})")
    parser.add_argument("--encode", choices=ENCODINGS, default=None,
                        help="lab and webrtc stacks: live (default): each sender encodes its camera during "
                             "the call; clip: each scene encoded once before the call and shared (on the "
                             "webrtc stack through aiortc's pre-encoded path)")
    parser.add_argument("--workers", type=int, default=None, metavar="K",
                        help="lab and webrtc stacks: run the participants in K worker processes (the SFU "
                             "stays in the call's process); lab: forked for the media, needs --encode clip "
                             "and --capture off; webrtc: 1..participants fresh processes, from the start")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=None,
                        help="lab stack: the participants' event loop: the call's one process, or each "
                             "worker's (default asyncio; uvloop: pip install 'e2ee-lab[fast]', with --capture off)")
    parser.add_argument("--views", type=_views, default=None, metavar="N|sample",
                        help="lab stack: each receiver decodes N >= 1 publishers' video, or (sample) each "
                             "publisher's video is decoded by one receiver; every frame is verified "
                             "(default: every receiver decodes all)")


STACK = register(Stack("lab", run=_run, accepts=keyword_options(run_lab_call),
                       add_arguments=add_arguments,
                       arguments={"rtp_sframe": "rtp_sframe", "publishers": "publishers", "loudest": "loudest",
                                  "encode": "encode", "views": "views", "workers": "workers", "loop": "loop"},
                       help="the lab's SFU and participants on its own DTLS-SRTP legs (default)"))
