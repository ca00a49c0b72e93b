"""The child process of a Janus call: ``python -m e2ee_lab.janus.isolated IN OUT``.

:func:`~e2ee_lab.browser.isolation.run_module_in_netns` starts it inside ``unshare -n`` (a private
network namespace with only ``lo``); it reads the pickled arguments of
:func:`~e2ee_lab.janus.call.run_janus_call_async` from IN, runs the call in this process's main
thread (Janus, started from it, dies with it) and pickles the result to OUT.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from pathlib import Path


def main(inp: str, out: str) -> None:
    from .call import run_janus_call_async

    kwargs = pickle.loads(Path(inp).read_bytes())
    result = asyncio.run(run_janus_call_async(**kwargs))
    Path(out).write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
