"""Which stack runs a call: the registry the stacks register into, ``run_call`` and ``e2ee-lab call``.

A *stack* is one way to run the lab's call: the lab's own SFU and participants
(``stack="lab"``, :mod:`e2ee_lab.call.run`), aiortc peer connections (``"webrtc"``,
:mod:`e2ee_lab.webrtc`), a headless Chromium page in the aiortc call (``browser_participants=1``,
:mod:`e2ee_lab.browser`). Each registers itself with :func:`register` from the ``stack.py`` module
of its package; nothing in :mod:`e2ee_lab.call` names a stack above it. :func:`discover` imports
every ``e2ee_lab/<package>/stack.py`` once, the first time a call or the command needs the
registry, so a new stack is one new ``stack.py`` (and its package) with no edit here.

How a call finds its stack (:func:`select`): a stack registered with an ``option`` (a
:func:`run_call` keyword, e.g. ``browser_participants``) takes every call that sets that keyword
to a true value; two such keywords set at once are refused. Otherwise ``stack=`` names it
(default ``"lab"``). The chosen stack's ``run`` gets the call's arguments and every keyword given
to :func:`run_call` except the unset (false) ``option`` keywords; a keyword outside its
``accepts`` is refused here, and the stack refuses, with a ``ValueError``, a value it cannot honour.
A ``stack.py`` must import without its stack's optional dependencies (import them in ``run``):
discovery imports every one.

The ``e2ee-lab call`` command (:func:`add_call_arguments`, :func:`cli_call`) offers the options
every stack shares, ``--stack`` with the registered names, and each stack's own options
(``Stack.add_arguments``); ``Stack.arguments`` maps an option's argparse ``dest`` to its
:func:`run_call` keyword, passed on only when the option is set.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2ee_lab.call.capture import FRAME_KEYS_FILE
from e2ee_lab.call.common import DEFAULT_PROFILE, KEY_POLICIES, format_summary
from e2ee_lab.call.frame_keys import MODES
from e2ee_lab.capture.pcap import CaptureError
from e2ee_lab.config import SIZES, Size
from e2ee_lab.crypto.keys import KeyAgreementError
from e2ee_lab.transport import SRTPProfile
from e2ee_lab.transport.errors import TransportError

STACK_MODULE = "stack"  # e2ee_lab/<package>/stack.py registers that package's stack
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # e2ee_lab/


@dataclass(frozen=True)
class Stack:
    """One way to run the call, as :func:`register` records it.

    ``run(stack, mode, participants, seconds, seed, size, out, **options)`` runs the call and
    returns a result with ``summary`` (the fields of the lab call's summary, same meaning),
    ``keylog``, ``capture`` and ``out``; it raises ``ValueError`` for an option it cannot honour.
    ``accepts`` names the :func:`run_call` keywords it takes (its ``option`` among them):
    :func:`run_call` refuses any other with a ``ValueError`` before the stack runs.
    """

    name: str  # the value of run_call(stack=...) / --stack; with ``option``, just a label
    run: Callable[..., Any]
    help: str  # one line for ``e2ee-lab call --help``
    option: str | None = None  # a run_call keyword that hands the call to this stack when true
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None  # its own CLI options
    arguments: Mapping[str, str] = field(default_factory=dict)  # CLI dest -> run_call keyword
    errors: tuple[type[Exception], ...] = ()  # what ``e2ee-lab call`` reports in one line (exit 2)
    accepts: frozenset[str] | None = None  # the run_call keywords it takes (None: any); others refused


def keyword_options(func: Callable[..., Any]) -> frozenset[str]:
    """The keyword-only parameters of ``func``: a stack's ``accepts`` when ``run`` passes them on."""
    return frozenset(name for name, p in inspect.signature(func).parameters.items() if p.kind is p.KEYWORD_ONLY)


_STACKS: dict[str, Stack] = {}
_discovered = False


def register(stack: Stack) -> Stack:
    """Add ``stack`` to the registry (call it from the stack's ``stack.py``); returns it.

    Raises:
        ValueError: a stack of that name, or one selected by the same ``option``, is registered.
    """
    if stack.name in _STACKS:
        raise ValueError(f"a stack named {stack.name!r} is already registered")
    if stack.option is not None and any(s.option == stack.option for s in _STACKS.values()):
        raise ValueError(f"a stack selected by {stack.option!r} is already registered")
    _STACKS[stack.name] = stack
    return stack


def discover() -> None:
    """Import every stack module, ``e2ee_lab/<package>/stack.py``, once (they register themselves)."""
    global _discovered
    if _discovered:
        return
    for path in sorted(PACKAGE_DIR.glob(f"*/{STACK_MODULE}.py")):
        importlib.import_module(f"e2ee_lab.{path.parent.name}.{STACK_MODULE}")
    _discovered = True


def registered() -> dict[str, Stack]:
    """The registered stacks by name, after :func:`discover`."""
    discover()
    return dict(_STACKS)


def select(stack: str, options: Mapping[str, Any]) -> Stack:
    """The stack that runs a call with ``stack=stack`` and keywords ``options`` (module docstring).

    Raises:
        ValueError: no stack of that name, or two stacks' ``option`` keywords set at once.
    """
    stacks = registered()
    chosen = [s for s in stacks.values() if s.option is not None and options.get(s.option)]
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(s.option for s in chosen)} cannot be combined")  # type: ignore[misc]
    if chosen:
        return chosen[0]
    named = {s.name: s for s in stacks.values() if s.option is None}
    if stack not in named:
        raise ValueError(f"unknown stack {stack!r}; expected one of {', '.join(sorted(named))}")
    return named[stack]


def run_call(mode: str = "dtls-srtp", participants: int = 3, seconds: float = 5.0, seed: int = 0,
             size: Size | None = None, out: str | Path | None = None, *, stack: str = "lab",
             **options: Any):
    """Run a call on the stack :func:`select` picks and return its result (script or notebook).

    The lab's stack (``stack="lab"``, the default) returns a :class:`~e2ee_lab.call.CallResult`
    (:func:`e2ee_lab.call.run.run_lab_call`). ``stack="webrtc"`` runs the same call on aiortc peer
    connections through an aiortc SFU (:func:`e2ee_lab.webrtc.run_webrtc_call`; a
    ``WebRTCCallResult`` with the same summary fields). ``browser_participants=1``
    (``stack="webrtc"`` only) adds a headless Chromium page to that call
    (:func:`e2ee_lab.browser.call.run_for_call`; a ``BrowserCallResult``, the page one more row of
    the summary); ``participants`` then counts the Python members (1..8).

    Args:
        mode: "dtls-srtp" (SRTP per hop only), "e2ee" (SFrame) or "clear-prefix".
        participants: how many (2..255).
        seconds: how long media flows (real time).
        seed: reproducible pictures, SSRCs and schedules (keys only with the ``reproducible_keys``
            option; DTLS keys are always fresh).
        size: "ci" (320x240, 15 fps) or "full" (640x480, 30 fps); default :func:`lab_size`.
        out: a directory for ``summary.json`` and ``sfu-keys.json``, or None.
        stack: the registered stack that runs the call (:func:`registered`).
        options: the chosen stack's keywords. The lab's: ``srtp_profile``, ``garbage``,
            ``capture``, ``policy``, ``key_policy`` (a RekeyPolicy, "fixed" or "naive"),
            ``sfu_setup``, ``sender_options``, ``rtp_sframe``, ``reproducible_keys``,
            ``identities``, ``publishers``, ``loudest``, ``encode``, ``views``, ``workers``, ``loop``
            (:func:`~e2ee_lab.call.run.run_lab_call`); another stack refuses those it cannot honour.

    Raises:
        ValueError: an unknown stack; a bad mode, count, duration, profile, size or capture mode;
            an option the chosen stack does not take or cannot honour (a browser participant on a
            stack other than "webrtc", lab-only options on another stack).
        DTLSError: a handshake failed.  CaptureNotPermitted: ``capture="sniff"`` without rights.
    """
    stacks = registered()
    unset = {s.option for s in stacks.values() if s.option is not None and not options.get(s.option)}
    options = {k: v for k, v in options.items() if k not in unset}
    chosen = select(stack, options)
    refused = sorted(set(options) - chosen.accepts) if chosen.accepts is not None else []
    if refused:
        raise ValueError(f"the {chosen.name} stack does not take {', '.join(refused)}")
    return chosen.run(stack, mode, participants, seconds, seed, size, out, **options)


# --- the e2ee-lab call command -----------------------------------------------------------------


PROFILES = (SRTPProfile.AEAD_AES_128_GCM.value, SRTPProfile.AES_CM_128_HMAC_SHA1_80.value)
CAPTURE_CHOICES = ("auto", "sniff", "tap", "off")


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``call`` options (shared, ``--stack``, each stack's own) to ``parser``; set ``func=cli_call``."""
    stacks = registered()
    parser.add_argument("--mode", choices=MODES, default="e2ee", help="frame protection (default e2ee)")
    parser.add_argument("--participants", type=int, default=3, help="how many (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="media duration (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="reproducible pictures, SSRCs and schedules")
    parser.add_argument("--reproducible-keys", action="store_true",
                        help="derive identity and frame keys from --seed too (recordings, tests: anyone "
                             "with the seed recomputes them); default: keys from the OS")
    parser.add_argument("--key-policy", choices=KEY_POLICIES, default="fixed",
                        help="fixed (default) or naive: members without the roster, session, attribution "
                             "and retirement checks (the attacks' counter-example)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for summary.json and sfu-keys.json (default reports/call-MODE)")
    parser.add_argument("--size", choices=SIZES, default=None, help="ci or full (default E2EE_LAB_SIZE)")
    parser.add_argument("--srtp-profile", choices=PROFILES, default=DEFAULT_PROFILE, help="SRTP profile")
    parser.add_argument("--garbage", type=float, default=0.0, metavar="RATE",
                        help="garbage datagrams per second sent to the SFU's ports during the call")
    parser.add_argument("--capture", choices=CAPTURE_CHOICES, default="auto",
                        help="record the call to OUT/capture.pcap: sniff lo (needs root or "
                             "CAP_NET_RAW), the socket tap, auto (sniff, else tap) or off (default auto)")
    named = sorted(s.name for s in stacks.values() if s.option is None)
    parser.add_argument("--stack", choices=named, default="lab",
                        help="; ".join(f"{n}: {stacks[n].help}" for n in named))
    for stack in stacks.values():
        if stack.add_arguments is not None:
            stack.add_arguments(parser)
    parser.set_defaults(func=cli_call)


def _key_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--reproducible-keys`` and ``--key-policy`` as run_call keywords, passed only when set."""
    options: dict[str, Any] = {}
    if getattr(args, "reproducible_keys", False):
        options["reproducible_keys"] = True
    if getattr(args, "key_policy", "fixed") != "fixed":
        options["key_policy"] = args.key_policy
    return options


def cli_call(args: argparse.Namespace) -> int:
    """Run the call ``args`` describe, print the table and where the JSON went; returns 0.

    A call that cannot run here (live capture not permitted, no Chromium, a bad option, a failed
    handshake or connection) prints one line to stderr and returns 2; Ctrl-C returns 130.
    """
    stacks = registered().values()
    extra = {keyword: getattr(args, dest) for s in stacks for dest, keyword in s.arguments.items()
             if getattr(args, dest, None)}
    errors = (CaptureError, TransportError, KeyAgreementError, ValueError, ImportError,
              *(e for s in stacks for e in s.errors))
    out = args.out if args.out is not None else Path("reports") / f"call-{args.mode}"
    try:
        result = run_call(args.mode, args.participants, args.seconds, args.seed, args.size, out,
                          srtp_profile=args.srtp_profile, garbage=args.garbage,
                          capture=getattr(args, "capture", "off"), stack=getattr(args, "stack", "lab"),
                          **_key_options(args), **extra)
    except errors as exc:
        hint = " (--capture auto falls back to the socket tap)" if isinstance(exc, CaptureError) else ""
        print(f"call: {exc}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the call closed its legs and workers on the way out
        print("call: interrupted", file=sys.stderr)
        return 130
    print(format_summary(result.summary))
    keys = f", {out / FRAME_KEYS_FILE} (the members' secret)" if getattr(result, "frame_keys", None) else ""
    print(f"wrote {out / 'summary.json'}, {out / 'sfu-keys.json'}{keys}")
    if result.capture is not None:
        c = result.capture
        print(f"captured {c.datagrams} datagrams ({c.backend}) to {c.path}; "
              f"analyse with: e2ee-lab analyze {out}")
    return 0
