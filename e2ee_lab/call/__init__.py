"""One call through a simulated SFU: N participants, real DTLS-SRTP legs on loopback, real media.

``run_call(mode, participants, seconds, seed, size, out)`` runs it (:mod:`e2ee_lab.call.run`);
the participant's asyncio edge is :mod:`e2ee_lab.call.participant`, its sans-I/O media pipeline
:mod:`e2ee_lab.call.pipeline`, its frame keys :mod:`e2ee_lab.call.frame_keys`, its capture :mod:`e2ee_lab.call.capture`, and
:mod:`e2ee_lab.call.garbage` attacks the SFU's ports during a call. The ``e2ee-lab call`` command
is :func:`add_call_arguments` / :func:`cli_call`.
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
from e2ee_lab.call.pipeline import SenderOptions
from e2ee_lab.call.run import (
    CALL_KEY_POLICY,
    CallConfig,
    CallResult,
    CallSetupError,
    add_call_arguments,
    cli_call,
    format_summary,
    run_call,
    run_call_async,
    write_outputs,
)

__all__ = [
    "CallCapture",
    "CaptureInfo",
    "FrameKey",
    "FrameKeys",
    "FrameKeysError",
    "read_frame_keys",
    "write_frame_keys",
    "CALL_KEY_POLICY",
    "CallConfig",
    "CallResult",
    "CallSetupError",
    "add_call_arguments",
    "cli_call",
    "format_summary",
    "run_call",
    "run_call_async",
    "SenderOptions",
    "write_outputs",
]
