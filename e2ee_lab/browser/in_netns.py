"""The child process of a browser call in a network namespace: ``python -m e2ee_lab.browser.in_netns IN OUT``.

:func:`~e2ee_lab.browser.isolation.run_in_netns` starts it inside ``unshare -n`` with only ``lo``
up: it reads the pickled keyword arguments from ``IN``, runs
:func:`~e2ee_lab.browser.call.run_browser_call_async` and writes the pickled
:class:`~e2ee_lab.browser.call.BrowserCallResult` to ``OUT``. It is its own module so that
:mod:`.isolation` (which :mod:`.call` uses) never imports :mod:`.call`.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from pathlib import Path

from .call import run_browser_call_async


def main(inp: str, out: str) -> None:
    """Run the call described in the pickle ``inp``; write its result's pickle to ``out``."""
    kwargs = pickle.loads(Path(inp).read_bytes())
    result = asyncio.run(run_browser_call_async(**kwargs))
    Path(out).write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
