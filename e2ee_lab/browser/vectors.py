"""RFC 9605 Appendix C vectors run inside the page: the browser's own SFrame code, checked in place.

:func:`run_vectors_in_browser` opens the web client in headless Chromium and calls its
``lab.vectors()``, which, for every SFrame vector of the suites the page offers (all eight: RFC
9605's 1-5 and draft-barnes-sframe-iana-256's AES-256-CTR + HMAC-SHA512 suites 6-8), derives ``sframe_key`` and ``sframe_salt``
(§4.4.2) in WebCrypto, encrypts the plaintext with the vector's KID, CTR and metadata (§4.4.3),
compares the ciphertext byte for byte, decrypts it back and checks that a flipped tag bit is
refused; and encodes and decodes all header vectors (§4.3). The vectors are the same JSON the
Python tests read.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from .chromium import Chromium
from .server import StaticServer


async def run_vectors_in_browser_async(vectors: dict) -> dict:
    """``lab.vectors(vectors)`` in a fresh page: ``{"sframe": [...], "headers": n, "headerFailures": k}``."""
    with StaticServer() as server:
        async with Chromium() as chrome:
            await chrome.navigate(server.url)
            return await chrome.page.call("(v) => lab.vectors(v)", vectors)


def run_vectors_in_browser(vectors: dict | str | Path) -> dict:
    """Run the RFC 9605 vectors (a dict, or the path of their JSON file) in headless Chromium."""
    if not isinstance(vectors, dict):
        vectors = json.loads(Path(vectors).read_text(encoding="utf-8"))
    subset = {"sframe": vectors["sframe"], "header": vectors["header"]}
    return asyncio.run(run_vectors_in_browser_async(subset))
