"""Interop with other implementations: libwebrtc's native SFrame through PyPI ``wrtc``.

Optional (``pip install -e '.[interop]'``). Importing ``wrtc`` and using its standalone
``SFrameTransform`` needs no network; a wrtc peer connection gathers on every interface and is only
ever created inside a private network namespace (see :mod:`e2ee_lab.interop.native`).
"""

from .wrtc_sframe import (
    WRTC_DECRYPT_ERRORS,
    WRTC_REQUIREMENT,
    WrtcSFrame,
    import_wrtc,
    wrtc_problem,
)

__all__ = ["WRTC_DECRYPT_ERRORS", "WRTC_REQUIREMENT", "WrtcSFrame", "import_wrtc", "wrtc_problem"]
