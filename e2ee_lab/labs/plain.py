"""Plain data: what a student's answer is made of when it reaches a check or the grader.

``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples, lists, sets, dicts, numpy arrays
and pandas Series, in a tagged JSON form (:func:`to_plain` / :func:`from_plain`; :func:`plain_copy`
does both). Subclasses lose their methods on the way, so an object with a rigged ``__eq__`` cannot
pass a comparison; anything else becomes :class:`Opaque`, which equals nothing. This module imports
nothing else of the package, so the checks' decorator and the grader's judge can both use it.
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 32
MAX_ITEMS = 200_000


@dataclass(frozen=True)
class Opaque:
    """Stands for an answer that is not plain data (its type name); equal to no answer."""

    type_name: str

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return hash(("opaque", self.type_name))

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"


class _Budget:
    def __init__(self) -> None:
        self.items = 0

    def spend(self) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise OverflowError("answer too large")


def _scalar(value: Any) -> Any:
    """The plain form of a scalar, or NotImplemented."""
    import numpy as np

    if value is None or type(value) is bool or isinstance(value, np.bool_):
        return None if value is None else bool(value)
    if isinstance(value, (int, np.integer)):
        return {"int": int.__repr__(int(value))} if abs(int(value)) >= 2**53 else int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else {"float": repr(x)}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    return NotImplemented


def _plain(value: Any, depth: int, budget: _Budget) -> Any:
    import numpy as np
    import pandas as pd

    budget.spend()
    scalar = _scalar(value)
    if scalar is not NotImplemented:
        return scalar
    if depth > MAX_DEPTH:
        return {"opaque": "too deep"}
    if isinstance(value, Opaque):
        return {"opaque": value.type_name}
    items = functools.partial(_plain, depth=depth + 1, budget=budget)
    if isinstance(value, tuple):
        return {"tuple": [items(v) for v in tuple.__iter__(value)]}
    if isinstance(value, list):
        return [items(v) for v in list.__iter__(value)]
    if isinstance(value, (set, frozenset)):
        return {"set": [items(v) for v in (set.__iter__(value) if isinstance(value, set)
                                           else frozenset.__iter__(value))]}
    if isinstance(value, dict):
        return {"dict": [[items(k), items(v)] for k, v in dict.items(value)]}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= MAX_ITEMS:
        return {"ndarray": [items(v) for v in value.tolist()]}
    if isinstance(value, pd.Series) and len(value) <= MAX_ITEMS:
        return {"series": [items(v) for v in value.tolist()], "index": [items(v) for v in value.index.tolist()]}
    return {"opaque": type(value).__name__}


def to_plain(value: Any) -> Any:
    """``value`` as JSON-able tagged data (see the module docstring); never raises."""
    try:
        return _plain(value, 0, _Budget())
    except Exception as exc:  # noqa: BLE001 - a hostile object: its conversion fails, it is opaque
        return {"opaque": f"{type(value).__name__} ({type(exc).__name__})"}


def _key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return Opaque(type(value).__name__)
    return value


def from_plain(data: Any) -> Any:
    """The Python value of :func:`to_plain`'s output (built-in types, numpy, pandas only).

    Raises:
        ValueError: ``data`` is not of that form.
    """
    import numpy as np
    import pandas as pd

    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [from_plain(v) for v in data]
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise ValueError("not plain data")
    tag, body = next(iter(data.items()))
    if tag == "int":
        return int(body)
    if tag == "float":
        return float(body)
    if tag == "bytes":
        return base64.b64decode(body, validate=True)
    if tag == "tuple":
        return tuple(from_plain(v) for v in body)
    if tag == "set":
        return {_key(from_plain(v)) for v in body}
    if tag == "dict":
        return {_key(from_plain(k)): from_plain(v) for k, v in body}
    if tag == "ndarray":
        return np.array([from_plain(v) for v in body])
    if tag == "series":
        return pd.Series([from_plain(v) for v in body], index=[from_plain(v) for v in data["index"]],
                         dtype=object if not body else None)
    if tag == "opaque":
        return Opaque(str(body))
    raise ValueError(f"unknown tag {tag!r}")


def plain_copy(value: Any) -> Any:
    """``from_plain(to_plain(value))``: what a check (and the grader) sees of an answer."""
    return from_plain(to_plain(value))


def whole_number(value: Any) -> int | None:
    """``value`` as an int when it is one (a bool is not; 12.0 is 12; 12.7 and "12" are not), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def real_number(value: Any) -> float | None:
    """``value`` as a finite float when it is a real number (not a bool, not a str), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def call_safely(func: Callable, *args: Any) -> dict:
    """Call a student's function for a probe: ``{"value": plain copy}`` or ``{"raised": "TypeError"}``."""
    try:
        return {"value": plain_copy(func(*args))}
    except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
        return {"raised": type(exc).__name__}
