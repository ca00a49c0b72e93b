"""Execute every notebook into ``reports/`` as HTML with a gallery index: the job behind ``make run``.

Each notebook in ``notebooks/`` runs top to bottom with nbclient at the size ``E2EE_LAB_SIZE`` names
(``full`` under ``make run``) and is exported to ``reports/<name>.html`` with nbconvert, without the
template's CDN scripts so that a report opens offline. Its **headline figure** (the PNG output of the
cell tagged ``headline``, else the notebook's last PNG output) is saved next to it as
``reports/<name>.png`` with a thumbnail ``reports/<name>.thumb.png``.
``reports/index.html`` links every report with its run time, status and thumbnail. A notebook that
fails is still written (with the error) and the command exits non-zero after the others have run.

``--gallery`` also copies each headline figure, shrunk below :data:`GALLERY_LIMIT` bytes, into the
committed folder ``data/figures/gallery/`` that the README shows. ``--only 01 03`` runs a subset.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from PIL import Image
from tqdm import tqdm

from e2ee_lab.config import lab_size

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "data" / "figures" / "gallery"
DEFAULT_OUT = Path("reports")
INDEX = "index.html"
HEADLINE_TAG = "headline"
RAISES_TAG = "raises-exception"
THUMB_WIDTH = 320
GALLERY_WIDTH = 960
GALLERY_LIMIT = 150_000
_CDN_SCRIPT = re.compile(r'<script src="https?://[^"]*">\s*</script>\n?')


@dataclass(frozen=True)
class NotebookRun:
    """One executed notebook: its report, its headline figure (if any), run time and error."""

    notebook: Path
    report: Path
    seconds: float
    error: str | None
    headline: Path | None = None
    thumbnail: Path | None = None


# --- figures ------------------------------------------------------------------------------------


def _pngs(cell: nbformat.NotebookNode) -> list[bytes]:
    """The PNG images a code cell displayed, in order."""
    return [base64.b64decode(out["data"]["image/png"]) for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})]


def headline_png(nb: nbformat.NotebookNode) -> bytes | None:
    """The headline figure of an executed notebook as PNG bytes, or ``None`` when it drew none.

    The last PNG of the first cell tagged ``headline`` wins; without such a cell (or if it drew
    nothing), the last PNG anywhere in the notebook.
    """
    tagged = [c for c in nb.cells if HEADLINE_TAG in c.get("metadata", {}).get("tags", [])]
    for cell in tagged[:1] + [c for c in reversed(nb.cells)]:
        images = _pngs(cell)
        if images:
            return images[-1]
    return None


def shrink_png(data: bytes, width: int, limit: int | None = None) -> bytes:
    """``data`` scaled down to at most ``width`` pixels wide, re-encoded to stay under ``limit`` bytes.

    A full-colour PNG that is still too large is reduced to a 256-colour palette, then narrowed in
    steps of 15 %. Raises ``ValueError`` when even a 200-pixel palette image exceeds ``limit``.
    """
    image = Image.open(io.BytesIO(data)).convert("RGB")
    palette = False
    while True:
        scaled = image
        if image.width > width:
            scaled = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        if palette:
            scaled = scaled.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        scaled.save(buf, format="PNG", optimize=True)
        if limit is None or buf.tell() <= limit:
            return buf.getvalue()
        if not palette:
            palette = True
        elif width > 200:
            width = int(width * 0.85)
        else:
            raise ValueError(f"cannot fit the figure into {limit} bytes")


def save_figures(nb: nbformat.NotebookNode, stem: str, out_dir: Path) -> tuple[Path | None, Path | None]:
    """Write ``<stem>.png`` (the headline figure) and ``<stem>.thumb.png`` into ``out_dir``."""
    png = headline_png(nb)
    if png is None:
        return None, None
    headline, thumb = out_dir / f"{stem}.png", out_dir / f"{stem}.thumb.png"
    headline.write_bytes(png)
    thumb.write_bytes(shrink_png(png, THUMB_WIDTH))
    return headline, thumb


def copy_to_gallery(runs: Iterable[NotebookRun], gallery: Path = GALLERY) -> list[Path]:
    """Copy every run's headline figure into ``gallery`` below :data:`GALLERY_LIMIT` bytes each."""
    gallery.mkdir(parents=True, exist_ok=True)
    written = []
    for run in runs:
        if run.headline is not None and run.error is None:
            target = gallery / run.headline.name
            target.write_bytes(shrink_png(run.headline.read_bytes(), GALLERY_WIDTH, GALLERY_LIMIT))
            written.append(target)
    return written


# --- execution ----------------------------------------------------------------------------------


def execute_notebook(path: Path, out_dir: Path, timeout: float = 1200) -> NotebookRun:
    """Run ``path`` in its own folder; write ``out_dir/<stem>.html`` and its headline figure."""
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
    body, _ = HTMLExporter().from_notebook_node(nb, resources={"metadata": {"name": path.stem}})
    report = out_dir / f"{path.stem}.html"
    report.write_text(offline_html(body), encoding="utf-8")
    headline, thumb = save_figures(nb, path.stem, out_dir)
    return NotebookRun(path, report, seconds, error, headline, thumb)


def offline_html(body: str) -> str:
    """``body`` without the template's CDN scripts (require.js, MathJax): the labs use neither, and a
    report must open without network access."""
    return _CDN_SCRIPT.sub("", body)


def _title(path: Path) -> str:
    """The notebook's first markdown heading, without the ``#``; the file stem if it has none."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            return cell.source.lstrip().splitlines()[0].lstrip("# ").strip()
    return path.stem


_STYLE = ("body{font-family:sans-serif;margin:2em}td,th{padding:.4em .8em;text-align:left;"
          "vertical-align:middle;border-bottom:1px solid #ddd}img{max-width:320px}.failed{color:#b00}")


def _row(run: NotebookRun) -> str:
    link = html.escape(run.report.name)
    thumb = (f"<a href='{link}'><img src='{html.escape(run.thumbnail.name)}' "
             f"alt='headline figure of {html.escape(run.notebook.stem)}'></a>" if run.thumbnail else "")
    status = "ok" if run.error is None else f"<span class='failed'>{html.escape(run.error)}</span>"
    return (f"<tr><td><a href='{link}'>{html.escape(run.notebook.stem)}</a><br>"
            f"{html.escape(_title(run.notebook))}</td><td>{run.seconds:.1f} s</td>"
            f"<td>{status}</td><td>{thumb}</td></tr>")


def write_index(runs: Sequence[NotebookRun], out_dir: Path) -> Path:
    """Write ``out_dir/index.html``: every report with its title, run time, status and thumbnail."""
    total = sum(r.seconds for r in runs)
    index = out_dir / INDEX
    index.write_text(
        "<!doctype html><html lang='en'><meta charset='utf-8'><title>e2ee_lab reports</title>"
        f"<style>{_STYLE}</style><h1>e2ee_lab reports</h1>"
        f"<p>{len(runs)} notebooks executed at size <b>{html.escape(lab_size())}</b> "
        f"in {total:.0f} s. Click a notebook to open its report.</p>"
        "<table><tr><th>notebook</th><th>run time</th><th>status</th><th>headline figure</th></tr>"
        + "\n".join(_row(r) for r in runs) + "</table></html>",
        encoding="utf-8",
    )
    return index


def select(notebooks: Path, only: Sequence[str] = ()) -> list[Path]:
    """The numbered notebooks in ``notebooks``; with ``only``, those whose name, stem or NN matches."""
    paths = sorted(notebooks.glob("[0-9]*.ipynb"))
    if only:
        paths = [p for p in paths if {p.name, p.stem, p.name[:2]} & set(only)]
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m e2ee_lab.reports [--only NN ...] [--out DIR] [--gallery [DIR]]``; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", nargs="+", default=(), metavar="NN", help="run only these notebooks")
    parser.add_argument("--gallery", type=Path, nargs="?", const=GALLERY, default=None,
                        help=f"also copy small headline PNGs into DIR (default {GALLERY.relative_to(ROOT)})")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = select(args.notebooks, args.only)
    if not paths:
        print(f"no notebooks selected in {args.notebooks}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    runs = [execute_notebook(p, out, args.timeout) for p in tqdm(paths, desc="notebooks", unit="nb")]
    index = write_index(runs, args.out)
    for r in runs:
        status = "ok" if r.error is None else f"FAILED: {r.error}"
        print(f"{r.report}  ({r.seconds:.1f} s)  {status}")
    print(f"total {sum(r.seconds for r in runs):.1f} s at size {lab_size()} on {os.cpu_count()} cores")
    if args.gallery is not None:
        for png in copy_to_gallery(runs, args.gallery):
            print(f"gallery: {png}  ({png.stat().st_size // 1024} KB)")
    print(f"\nReports written to {index.parent.resolve()}/ — open {index} in a browser.")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
