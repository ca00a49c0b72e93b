"""Record Lab 10's libwebrtc participant call to data/native_call.json, for machines that cannot run it.

Run from the repository root as root with the interop extra (wrtc) installed:
``python data/make_native_call.py``. The call (alice and bob on aiortc, libwebrtc through wrtc, e2ee,
ci size) runs in a private network namespace with only ``lo``; its summary is recorded whole.
Frame keys are drawn from the OS (the summary says ``"reproducible_keys": false``) and not recorded:
what is recorded are counts, KIDs and libwebrtc's statistics.
"""

import json
import os
import platform

from e2ee_lab.call.common import format_summary
from e2ee_lab.interop import import_wrtc
from e2ee_lab.labs.native import CALL_PATH, CALL_SECONDS
from e2ee_lab.native import run_native_call


def main() -> None:
    wrtc = import_wrtc()
    result = run_native_call("e2ee", 2, CALL_SECONDS, seed=0, size="ci")
    record = {
        "_meta": {"wrtc": getattr(wrtc, "__version__", "0.1.0"), "made_by": "data/make_native_call.py",
                  "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}, "
                             f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"},
        "summary": result.summary,
    }
    CALL_PATH.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_summary(result.summary))
    print(f"wrote {CALL_PATH}")


if __name__ == "__main__":
    main()
