"""The aiortc stack in the registry: ``run_call(..., stack="webrtc")``, ``e2ee-lab call --stack webrtc``.

Registers :func:`e2ee_lab.webrtc.call.run_for_stack` with :mod:`e2ee_lab.call.stacks`: the lab's
call on aiortc peer connections through an aiortc SFU. It honours ``capture`` and ``key_policy``
and refuses the lab-only options (``garbage``, ``policy``, ``sfu_setup``, ``sender_options``, an
SRTP profile other than the default: aiortc picks its own). ``e2ee-lab call`` reports a
:class:`~e2ee_lab.webrtc.errors.WebRTCError` (no loopback candidate, a leg that did not connect,
aiortc changed) in one line.
"""

from __future__ import annotations

from e2ee_lab.call.stacks import Stack, keyword_options, register

from .call import STACK as NAME
from .call import run_for_stack
from .errors import WebRTCError

STACK = register(Stack(NAME, run=run_for_stack, errors=(WebRTCError,), accepts=keyword_options(run_for_stack),
                       help="aiortc peer connections and an aiortc SFU "
                            "(aiortc picks the SRTP profile; no socket tap, no --garbage)"))
