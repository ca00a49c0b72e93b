"""``python -m e2ee_lab.labs.instructor seal [--check]``: write (or check) ``e2ee_lab/labs/sealed.json``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from e2ee_lab.labs.answers import SEALED_FILE, seal, unseal
from e2ee_lab.labs.instructor.answers import sealed_answers

SEALED_PATH = Path(__file__).resolve().parents[1] / SEALED_FILE


def tokens() -> dict[str, str]:
    """Every token, sealed from :func:`~e2ee_lab.labs.instructor.answers.sealed_answers`."""
    return {key: seal(key, answer, message) for key, (answer, message) in sorted(sealed_answers().items())}


def stale(path: Path = SEALED_PATH) -> list[str]:
    """Keys whose shipped token is missing, extra, or does not open to the instructor's message."""
    shipped = json.loads(path.read_text()) if path.exists() else {}
    want = sealed_answers()
    bad = sorted(set(shipped) ^ set(want))
    bad += [k for k in sorted(set(shipped) & set(want)) if unseal(k, shipped[k], want[k][0]) != want[k][1]]
    return bad


def main(argv: list[str] | None = None) -> int:
    """Write sealed.json (``seal``), or exit 1 when it is out of date (``seal --check``)."""
    parser = argparse.ArgumentParser(prog="python -m e2ee_lab.labs.instructor", description=__doc__)
    parser.add_argument("command", choices=("seal",))
    parser.add_argument("--check", action="store_true", help="report stale tokens, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        print("sealed.json is up to date" if not bad else f"stale: {', '.join(bad)}")
        return 1 if bad else 0
    SEALED_PATH.write_text(json.dumps(tokens(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(tokens())} sealed answers to {SEALED_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
