"""One call through a simulated SFU: N participants, real DTLS-SRTP legs on loopback, real media.

``run_call(mode, participants, seconds, seed, size, out, stack=...)`` runs it on a registered
stack (:mod:`e2ee_lab.call.stacks`: the registry, the choice of stack, the ``e2ee-lab call``
command, :func:`add_call_arguments` / :func:`cli_call`). What every stack shares, below them all,
is :mod:`e2ee_lab.call.common` (:class:`CallConfig`, :class:`CallResult`, the outputs, the
group-key wait). The lab's own stack is :mod:`e2ee_lab.call.run` (registered by
:mod:`e2ee_lab.call.stack`); the participant's asyncio edge is :mod:`e2ee_lab.call.participant`,
its sans-I/O media pipeline :mod:`e2ee_lab.call.pipeline`, its frame keys
:mod:`e2ee_lab.call.frame_keys`, its capture :mod:`e2ee_lab.call.capture`, and
:mod:`e2ee_lab.call.garbage` attacks the SFU's ports during a call. For rooms of a real size,
:mod:`e2ee_lab.call.clip` encodes each camera and microphone once before the call and
:mod:`e2ee_lab.call.workers` runs the participants' media in forked worker processes; every call
says whether it kept real time (:func:`~e2ee_lab.call.common.real_time_verdict`). Nothing here imports a stack
built on it (:mod:`e2ee_lab.webrtc`, :mod:`e2ee_lab.browser`, ...).
"""

from e2ee_lab.call.capture import (
    CallCapture,
    CaptureInfo,
    FrameKey,
    FrameKeys,
    FrameKeysError,
    read_frame_keys,
    write_frame_keys,
)
from e2ee_lab.call.common import (
    CALL_KEY_POLICY,
    KEY_POLICIES,
    CallConfig,
    CallResult,
    CallSetupError,
    format_summary,
    resolve_key_policy,
    write_outputs,
)
from e2ee_lab.call.pipeline import SenderOptions
from e2ee_lab.call.run import run_call_async
from e2ee_lab.call.stacks import add_call_arguments, cli_call, run_call

__all__ = [
    "CallCapture",
    "CaptureInfo",
    "FrameKey",
    "FrameKeys",
    "FrameKeysError",
    "read_frame_keys",
    "write_frame_keys",
    "CALL_KEY_POLICY",
    "KEY_POLICIES",
    "CallConfig",
    "CallResult",
    "CallSetupError",
    "add_call_arguments",
    "cli_call",
    "format_summary",
    "resolve_key_policy",
    "run_call",
    "run_call_async",
    "SenderOptions",
    "write_outputs",
]
