"""Shared test helpers: test vectors live as JSON in ``tests/data/`` and are read through here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"


def load_vectors(name: str) -> Any:
    """Load ``tests/data/<name>`` (``.json`` may be omitted) and return the parsed JSON."""
    path = DATA / (name if name.endswith(".json") else f"{name}.json")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)
