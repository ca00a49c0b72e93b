"""The lab's call on a real WebRTC stack: aiortc peer connections, an aiortc SFU, an Encoded Transform.

:func:`run_webrtc_call` runs the call of :mod:`e2ee_lab.call` with aiortc doing ICE, DTLS-SRTP
(RFC 5764), RTP/RTCP and codecs, on loopback only, and returns a :class:`WebRTCCallResult` with the
same summary fields (``run_call(..., stack="webrtc")`` and ``e2ee-lab call --stack webrtc`` lead
here, through the registry of :mod:`e2ee_lab.call.stacks`, where :mod:`.stack` registers it). The parts:

- :mod:`.loopback`: host candidates on 127.0.0.1 only and no STUN/TURN (why a scoped patch is needed);
- :mod:`.sdp`: candidate checks, the lab's payload types in the SFU's offers, annotated SDP lines;
- :mod:`.aiortc_hooks`: every reach into aiortc's private attributes, and their self-test;
- :mod:`.transform`: W3C-shaped sender and receiver transforms running the lab's frame transforms;
- :mod:`.media`: camera/microphone tracks, the SFU's silent tracks, the receivers' frame records;
- :mod:`.participant` and :mod:`.sfu`: the two kinds of peers; :mod:`.call`: one call;
- :mod:`.workers` (the call's side), :mod:`.worker` (a worker process), :mod:`.worker_protocol`
  and :mod:`.worker_records`: the participants in worker processes (``workers=K``).
"""

from .aiortc_hooks import PRIVATE_ATTRIBUTES, check_aiortc, missing_attributes
from .call import STACK, WebRTCCallResult, capture_mode, run_webrtc_call, run_webrtc_call_async
from .errors import AiortcChanged, CaptureImpossible, ConnectionFailed, NotLoopback, WebRTCError, WorkerError
from .loopback import loopback_configuration, loopback_ice
from .sdp import annotate, candidates, check_loopback, dtls_setup, has_sdes, remap_offer

__all__ = [
    "PRIVATE_ATTRIBUTES", "STACK", "AiortcChanged", "CaptureImpossible", "ConnectionFailed",
    "NotLoopback", "WebRTCCallResult", "WebRTCError", "WorkerError", "annotate", "candidates", "capture_mode",
    "check_aiortc", "check_loopback", "dtls_setup", "has_sdes", "loopback_configuration",
    "loopback_ice", "missing_attributes", "remap_offer", "run_webrtc_call", "run_webrtc_call_async",
]
