"""A participant on libwebrtc itself (M152, PyPI ``wrtc``) in the aiortc call, with libwebrtc's own SFrame.

``run_call(..., stack="webrtc", native_participants=1)`` / ``e2ee-lab call --stack webrtc --native 1``
(:mod:`.stack`) run :func:`~e2ee_lab.native.call.run_native_call`: the aiortc SFU and members of
:mod:`e2ee_lab.webrtc` plus a libwebrtc member (:mod:`.participant`) whose frames libwebrtc's
``RTCRtpSFrameEncryptor``/``RTCRtpSFrameDecryptor`` protect with keys from the lab's group key
agreement (:mod:`.keys`), only ever inside a private network namespace with nothing but ``lo``.
Importing this package needs neither ``wrtc`` nor root (``participant`` imports ``wrtc``).
"""

from .call import NativeCallResult, native_problem, run_native_call
from .errors import NativeError, NativeUnavailable, NotIsolated

__all__ = ["NativeCallResult", "NativeError", "NativeUnavailable", "NotIsolated", "native_problem",
           "run_native_call"]
