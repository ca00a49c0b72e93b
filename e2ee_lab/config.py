"""Run-size settings shared by the CLI, the notebooks and the tests.

``E2EE_LAB_SIZE=ci`` keeps every notebook short enough for the test suite; ``full`` (the default)
is the classroom size that ``make run`` uses.
"""

from __future__ import annotations

import os
from typing import Literal

Size = Literal["ci", "full"]
SIZES: tuple[Size, ...] = ("ci", "full")


def lab_size(default: Size = "full") -> Size:
    """Return the run size named by ``E2EE_LAB_SIZE`` (``ci`` or ``full``).

    Raises:
        ValueError: the variable holds anything else.
    """
    value = os.environ.get("E2EE_LAB_SIZE", default).strip().lower()
    if value not in SIZES:
        raise ValueError(f"E2EE_LAB_SIZE must be one of {', '.join(SIZES)}, not {value!r}")
    return value  # type: ignore[return-value]
