"""Execute every notebook into ``reports/`` as HTML: the job behind ``make run``.

Each notebook in ``notebooks/`` runs top to bottom with nbclient at the size ``E2EE_LAB_SIZE`` names
(``full`` under ``make run``), is exported to ``reports/<name>.html`` with nbconvert, and is listed
with its run time in ``reports/index.html``. A notebook that fails is still written (with the error)
and the command exits non-zero after the others have run.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from tqdm import tqdm

from e2ee_lab.config import lab_size

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: where its report is, how long it took, and the error if it failed."""

    notebook: Path
    report: Path
    seconds: float
    error: str | None


def execute_notebook(path: Path, out_dir: Path, timeout: float = 1200) -> NotebookRun:
    """Run ``path`` in its own folder and write ``out_dir/<stem>.html``."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    seconds = time.perf_counter() - start
    body, _ = HTMLExporter().from_notebook_node(nb)
    report = out_dir / f"{path.stem}.html"
    report.write_text(body, encoding="utf-8")
    return NotebookRun(path, report, seconds, error)


def write_index(runs: list[NotebookRun], out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` linking every report with its run time."""
    rows = "\n".join(
        f"<tr><td><a href='{r.report.name}'>{html.escape(r.notebook.stem)}</a></td>"
        f"<td>{r.seconds:.1f} s</td><td>{'ok' if r.error is None else html.escape(r.error)}</td></tr>"
        for r in runs
    )
    index = out_dir / "index.html"
    index.write_text(
        "<!doctype html><meta charset='utf-8'><title>e2ee_lab reports</title>"
        f"<h1>e2ee_lab reports (size {lab_size()})</h1>"
        f"<table><tr><th>notebook</th><th>run time</th><th>status</th></tr>{rows}</table>",
        encoding="utf-8",
    )
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = sorted(args.notebooks.glob("[0-9]*.ipynb"))
    runs = [execute_notebook(p, args.out.resolve()) for p in tqdm(paths, desc="notebooks", unit="nb")]
    index = write_index(runs, args.out)
    for r in runs:
        status = "ok" if r.error is None else f"FAILED: {r.error}"
        print(f"{r.report}  ({r.seconds:.1f} s)  {status}")
    print(f"\nReports written to {index.parent.resolve()}/ — open {index} in a browser.")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
