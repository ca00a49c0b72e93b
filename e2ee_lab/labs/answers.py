"""Answers as data: plain copies, sealed answers, and multiple choice with exact parsing.

**Plain data.** A student's answer reaches a check, and travels from a student's notebook to the
grader, as plain Python data: ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, tuples,
lists, sets, dicts, numpy arrays and pandas Series (:func:`to_plain` / :func:`from_plain`, a tagged
JSON form; :func:`plain_copy` does both). Subclasses lose their methods on the way, so an object
with a rigged ``__eq__`` cannot pass a comparison; anything else becomes :class:`Opaque`, which
equals nothing and hashes to its type name.

**Sealed answers.** A static answer is not written in the check module: the module ships a token
from ``sealed.json`` that only the right answer opens (:class:`Sealed`). The key is
HKDF-SHA256 of the answer's canonical bytes (:func:`canonical`), salted per task; the token is
AES-256-GCM of the message the student reads when correct. Reading the source gives neither the
answer nor that message. A seal does **not** resist trying candidates: the check itself answers
"correct" or "not yet" for any value, so a small answer space can always be searched through it.
Numbers with a tolerance are sealed by bucket (:func:`number_bucket`). The tokens are written by
``python -m e2ee_lab.labs.instructor seal`` from the instructor module, never by hand.

**Multiple choice.** :class:`Choices` holds options by id; each student sees them in their own
order (:func:`e2ee_lab.labs.session.params`), lettered A, B, C, ...; :meth:`Choices.parse` accepts
exactly one letter ("B", "b", "(b)", "b.") and nothing else ("Because ... no, B" is not an answer).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_DEPTH = 32
MAX_ITEMS = 200_000
SEAL_VERSION = "s1"
SEALED_FILE = "sealed.json"


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


# --- canonical bytes and seals --------------------------------------------------------------------


def _sorted(items: list) -> list:
    return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))


def _canonical_tree(data: Any) -> Any:
    if isinstance(data, list):
        return [_canonical_tree(v) for v in data]
    if isinstance(data, dict):
        (tag, body), = [(k, v) for k, v in data.items() if k != "index"] or [("", None)]
        if tag == "set":
            return {"set": _sorted([_canonical_tree(v) for v in body])}
        if tag == "dict":
            return {"dict": _sorted([[_canonical_tree(k), _canonical_tree(v)] for k, v in body])}
        if tag in ("tuple", "ndarray", "series"):
            return {"tuple": [_canonical_tree(v) for v in body]}
        return data
    if isinstance(data, float) and data.is_integer():
        return int(data)
    return data


def canonical(value: Any) -> bytes:
    """Bytes that are equal exactly when two plain answers are: sets and dicts sorted, tuples and
    lists told apart, ``3.0`` the same as ``3``."""
    tree = _canonical_tree(to_plain(value))
    return json.dumps(tree, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hkdf(salt: bytes, key_id: str, answer: Any) -> bytes:
    info = f"e2ee-lab sealed answer {SEAL_VERSION}|{key_id}".encode()
    return HKDF(hashes.SHA256(), 32, salt, info).derive(canonical(answer))


def seal(key_id: str, answer: Any, message: str) -> str:
    """A token that :func:`unseal` opens with ``answer`` (and nothing else) to read ``message``.

    The salt is SHA-256 of (key id, message): the same inputs give the same token, and each
    (key, nonce) pair encrypts one message only.
    """
    salt = hashlib.sha256(f"{key_id}\x00{message}".encode()).digest()[:16]
    sealed = AESGCM(_hkdf(salt, key_id, answer)).encrypt(bytes(12), message.encode(), key_id.encode())
    return f"{SEAL_VERSION}:" + base64.b64encode(salt + sealed).decode()


def unseal(key_id: str, token: str, answer: Any) -> str | None:
    """The sealed message when ``answer`` is the sealed answer, else None."""
    version, _, body = token.partition(":")
    raw = base64.b64decode(body) if version == SEAL_VERSION else b""
    if len(raw) < 32:
        return None
    try:
        return AESGCM(_hkdf(raw[:16], key_id, answer)).decrypt(bytes(12), raw[16:], key_id.encode()).decode()
    except InvalidTag:
        return None


@functools.cache
def _tokens() -> dict[str, str]:
    return json.loads(resources.files("e2ee_lab.labs").joinpath(SEALED_FILE).read_text())


def number_bucket(x: float, rel_tol: float) -> int | None:
    """The bucket of a positive number on a log scale of ratio ``1 + rel_tol``; None if not one."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        return None
    return math.floor(math.log(x) / math.log1p(rel_tol))


@dataclass(frozen=True)
class Sealed:
    """The sealed answer ``key`` of ``sealed.json`` (``"03/T2"``, ``"07/T4/crash_restore"``)."""

    key: str

    def opens(self, answer: Any) -> str | None:
        """The message when ``answer`` is right, else None. KeyError if the token is missing."""
        return unseal(self.key, _tokens()[self.key], answer)

    def opens_number(self, x: Any, rel_tol: float) -> str | None:
        """For a number sealed as ``("~", number_bucket(truth, rel_tol))``: the message when ``x``
        is within ``rel_tol`` of the truth (accepted up to about twice that), else None."""
        bucket = number_bucket(x, rel_tol)
        if bucket is None:
            return None
        return next((m for b in (bucket, bucket - 1, bucket + 1) if (m := self.opens(("~", b))) is not None), None)


# --- multiple choice ------------------------------------------------------------------------------

_LETTER = re.compile(r"\s*\(?\s*([A-Za-z])\s*[).]?\s*")


def parse_letter(answer: Any) -> str | None:
    """The one letter ``answer`` is ("B", "b", " (b) ", "b." and "b)" give "B"), or None."""
    if not isinstance(answer, str):
        return None
    m = _LETTER.fullmatch(answer)
    return m.group(1).upper() if m else None


@dataclass(frozen=True)
class Choice:
    """One option: the text students read, and the hint they get when they pick it wrongly."""

    text: str
    hint: str


class Choices(Mapping):
    """The options of one question, by id, lettered in each student's own order.

    As a mapping it reads ``{letter: text}`` in that order (so ``for letter, text in
    choices.items()`` and displaying it list the options); :meth:`parse` turns an answer into an
    option id; :meth:`verdict` is the usual check body.
    """

    def __init__(self, key: str, options: Mapping[str, Choice], *, lower: bool = False) -> None:
        self.key, self.options, self.lower = key, dict(options), lower

    def order(self) -> list[str]:
        """The option ids in this student's order."""
        from e2ee_lab.labs.session import params

        return params(self.key.split("/")[0]).shuffled(self.key, sorted(self.options))

    def letters(self) -> dict[str, str]:
        """``{letter: option id}`` for this student (upper-case letters)."""
        return {chr(ord("A") + i): oid for i, oid in enumerate(self.order())}

    def _shown(self, letter: str) -> str:
        return letter.lower() if self.lower else letter

    def __getitem__(self, letter: str) -> str:
        return self.options[self.letters()[str(letter).upper()]].text

    def __iter__(self) -> Iterator[str]:
        return iter([self._shown(letter) for letter in self.letters()])

    def __len__(self) -> int:
        return len(self.options)

    def __str__(self) -> str:
        return "\n".join(f"{letter}: {text}" for letter, text in self.items())

    def _repr_markdown_(self) -> str:
        return "\n".join(f"- **{letter}**: {text}" for letter, text in self.items())

    def __repr__(self) -> str:
        return str(self)

    def parse(self, answer: Any) -> str | None:
        """The option id ``answer`` names (exactly one of this student's letters), or None."""
        return self.letters().get(parse_letter(answer) or "")

    def letter_of(self, option_id: str) -> str:
        """This student's letter for ``option_id`` (as the question shows it)."""
        return self._shown({oid: letter for letter, oid in self.letters().items()}[option_id])

    def verdict(self, answer: Any, task: str):
        """``unanswered`` / ``not yet`` with the picked option's hint / ``correct`` with the sealed
        message (the seal ``key`` holds the right option's id)."""
        from e2ee_lab.labs import correct, not_yet, unanswered

        if answer is None:
            return unanswered(task)
        picked = self.parse(answer)
        if picked is None:
            return not_yet(f"answer with one letter: {', '.join(self)}.")
        message = Sealed(self.key).opens(picked)
        return correct(message) if message is not None else not_yet(self.options[picked].hint)
