"""Record Lab 07's libwebrtc (wrtc) results to data/native_sframe.json, for machines without wrtc.

Run from the repository root with the interop extra installed: ``python data/make_native_sframe.py``.
The keys are random on every run; what is recorded are the verdicts, the headers and the recovered
bytes, which do not depend on the keys.
"""

import json
import platform
from pathlib import Path

from e2ee_lab.interop import import_wrtc
from e2ee_lab.labs.native import RECORDED_PATH, nonce_reuse_rows, replay_rows


def main() -> None:
    wrtc = import_wrtc()
    record = {
        "_meta": {"wrtc": getattr(wrtc, "__version__", "0.1.0"), "made_by": "data/make_native_sframe.py",
                  "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}"},
        "nonce_reuse": nonce_reuse_rows(),
        "replay": replay_rows(),
    }
    Path(RECORDED_PATH).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {RECORDED_PATH}")


if __name__ == "__main__":
    main()
