"""The child process of a native call: ``python -m e2ee_lab.native.isolated IN OUT``.

:func:`~e2ee_lab.browser.isolation.run_module_in_netns` starts it inside ``unshare -n`` (a private
network namespace with only ``lo``); it reads the pickled arguments of
:func:`~e2ee_lab.native.call.run_native_call_async` from IN, runs the call (libwebrtc, the aiortc
SFU and members, all in this process) and pickles the result to OUT.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from pathlib import Path


def main(inp: str, out: str) -> None:
    """Run the call described in the pickle ``inp``; write its result's pickle to ``out``."""
    from .call import run_native_call_async

    kwargs = pickle.loads(Path(inp).read_bytes())
    result = asyncio.run(run_native_call_async(**kwargs))
    Path(out).write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
