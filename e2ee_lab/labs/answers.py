"""Answers as data: sealed answers, multiple choice with exact parsing (and, re-exported from
:mod:`.plain`, the plain data every answer is turned into).

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from e2ee_lab.labs import Feedback, correct, not_yet, unanswered
from e2ee_lab.labs.plain import (Opaque, call_safely, from_plain, plain_copy, real_number, to_plain,  # noqa: F401
                                 whole_number)

SEAL_VERSION = "s1"
SEALED_FILE = "sealed.json"


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

    def verdict(self, answer: Any, task: str) -> Feedback:
        """``unanswered`` / ``not yet`` with the picked option's hint / ``correct`` with the sealed
        message (the seal ``key`` holds the right option's id)."""
        if answer is None:
            return unanswered(task)
        picked = self.parse(answer)
        if picked is None:
            return not_yet(f"answer with one letter: {', '.join(self)}.")
        message = Sealed(self.key).opens(picked)
        return correct(message) if message is not None else not_yet(self.options[picked].hint)
