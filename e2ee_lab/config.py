"""Run-size settings shared by the CLI, the notebooks and the tests.

``E2EE_LAB_SIZE=ci`` keeps every notebook short enough for the test suite; ``full`` (the default)
is the classroom size that ``make run`` uses.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

Size = Literal["ci", "full"]

#: Rooms with more participants than this forward only the loudest speakers' audio (the SFU's
#: selection from RFC 6464 levels, :mod:`e2ee_lab.sfu.loudest`); smaller rooms forward every
#: microphone, as the labs' 3-participant calls always did.
LOUDEST_ROOM_SIZE = 8
SIZES: tuple[Size, ...] = ("ci", "full")

#: Every environment variable the package reads, and what it does (``e2ee-lab doctor`` prints
#: them; the README lists them; tests/test_doctor.py checks the three agree with the code).
ENVIRONMENT = {
    "E2EE_LAB_SIZE": "ci or full (default): how long the notebooks' calls and benchmarks run",
    "E2EE_LAB_STUDENT": "the student id for per-student parameters (labs.start(student=...) wins)",
    "E2EE_LAB_NO_SNIFF": "1: behave as without capture rights (labs 02, 09 use the recordings)",
    "E2EE_LAB_CHROMIUM": "path of the Chromium binary for lab 10 (default: the usual install paths)",
    "E2EE_LAB_TMP": "folder for the labs' temporary captures and browser profiles (default: the system's)",
    "E2EE_LAB_JANUS": "the janus executable for lab 11 (default: janus on the PATH)",
}


def lab_size(default: Size = "full") -> Size:
    """Return the run size named by ``E2EE_LAB_SIZE`` (``ci`` or ``full``).

    Raises:
        ValueError: the variable holds anything else.
    """
    value = os.environ.get("E2EE_LAB_SIZE", default).strip().lower()
    if value not in SIZES:
        raise ValueError(f"E2EE_LAB_SIZE must be one of {', '.join(SIZES)}, not {value!r}")
    return value  # type: ignore[return-value]


def scratch_dir(prefix: str) -> Path:
    """A new temporary folder (under ``$E2EE_LAB_TMP`` when set), removed when the process exits.

    The labs' captures and browser profiles go here, so a kernel that ran many calls leaves nothing
    behind (a kernel killed with SIGKILL cannot clean up; its folders start with ``e2ee-lab-``).
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("E2EE_LAB_TMP") or None))
    atexit.register(shutil.rmtree, path, True)
    return path
