"""The lab's call through a production SFU: Janus WebRTC Server's VideoRoom, whose own recording
feature is the privileged decryption point.

:func:`run_janus_call` runs the lab's aiortc call (:mod:`e2ee_lab.webrtc`) with Janus forwarding
the media, in a private network namespace with only ``lo``, and reads Janus's own recording of the
room back as the SFU's view. The parts:

- :mod:`.config`: Janus's configuration, generated per run (VideoRoom and HTTP only, 127.0.0.1);
- :mod:`.shim` and ``loopback_shim.c``: the ``LD_PRELOAD`` shim that lets Janus gather on ``lo``;
- :mod:`.server`: start and stop Janus, never outside a private namespace, leaving no process;
- :mod:`.http` and :mod:`.client`: the Janus and VideoRoom HTTP API; :mod:`.admin`: the admin API;
- :mod:`.participant`: an aiortc participant publishing and subscribing through VideoRoom;
- :mod:`.recording`: the ``.mjr`` recordings, ``janus-pp-rec`` and the lab's judging;
- :mod:`.call` (and :mod:`.isolated`, its namespace child; :mod:`.stack`, its entry in the call
  registry: ``--sfu janus``); :mod:`.capacity`: Janus and the lab
  SFU side by side.
"""

from .call import STACK, JanusCallResult, janus_problem, run_janus_call, run_janus_call_async
from .client import JanusSession, VideoRoom
from .config import JanusConfig, render_config, write_config
from .errors import (
    JanusAPIError,
    JanusError,
    JanusProtocolError,
    JanusStartFailed,
    JanusTimeout,
    JanusUnavailable,
    NotIsolated,
    ShimBuildFailed,
)
from .server import JanusServer

__all__ = [
    "STACK", "JanusAPIError", "JanusCallResult", "JanusConfig", "JanusError", "JanusProtocolError",
    "JanusServer", "JanusSession", "JanusStartFailed", "JanusTimeout", "JanusUnavailable", "NotIsolated",
    "ShimBuildFailed", "VideoRoom", "janus_problem", "render_config", "run_janus_call",
    "run_janus_call_async", "write_config",
]
