"""The reports behind ``make run``: headline figures, the gallery, and the pages in a real browser.

The browser test executes two short notebooks at ci size into a temporary folder with
:func:`e2ee_lab.reports.main`, then opens ``index.html`` and every report in headless Chromium (no
network: every host name resolves to nothing) and reads back, from the live DOM, how many images
failed to load and how many error outputs appear outside cells tagged ``raises-exception``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from PIL import Image

from e2ee_lab import reports

ROOT = Path(__file__).resolve().parents[1]
# Debian's /usr/bin/chromium is a shell wrapper that adds flags; the binary behind it is launched first.
CHROMIUM = next((p for p in (os.environ.get("E2EE_LAB_CHROMIUM"), "/usr/lib/chromium/chromium",
                             shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and Path(p).exists()), None)

# Appended to a copy of each page: once loaded, write what the page shows into a <pre> for --dump-dom.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80));
  const errors = [...document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')]
    .filter(e => /Traceback|Error\\b/.test(e.textContent) && !e.closest(".celltag_raises-exception"));
  const out = document.createElement("pre");
  out.id = "e2ee-probe";
  out.textContent = JSON.stringify({images: images.length, broken: broken, errors: errors.length});
  document.body.appendChild(out);
});
</script>"""


def _png(width: int, height: int, noisy: bool = False) -> bytes:
    image = Image.effect_noise((width, height), 80).convert("RGB") if noisy else Image.new("RGB", (width, height), "white")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _image_cell(png: bytes, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = new_code_cell("fig")
    cell.outputs = [new_output("display_data", data={"image/png": base64.b64encode(png).decode()})]
    if tags:
        cell.metadata["tags"] = tags
    return cell


# --- without a browser --------------------------------------------------------------------------


def test_headline_is_the_tagged_cell_else_the_last_figure():
    first, tagged, last = _png(10, 10), _png(20, 10), _png(30, 10)
    nb = new_notebook(cells=[_image_cell(first), _image_cell(tagged, ["headline"]), _image_cell(last)])
    assert reports.headline_png(nb) == tagged
    nb.cells[1].metadata["tags"] = []
    assert reports.headline_png(nb) == last
    assert reports.headline_png(new_notebook(cells=[new_code_cell("1 + 1")])) is None


def test_shrink_png_fits_the_gallery_limit():
    big = _png(1800, 1200, noisy=True)
    assert len(big) > reports.GALLERY_LIMIT
    small = reports.shrink_png(big, reports.GALLERY_WIDTH, reports.GALLERY_LIMIT)
    image = Image.open(io.BytesIO(small))
    assert len(small) <= reports.GALLERY_LIMIT and image.width <= reports.GALLERY_WIDTH


def test_report_html_loads_nothing_from_the_network():
    page = '<head><script src="https://cdn.example/require.min.js"></script>\n<p>kept</p>'
    assert reports.offline_html(page) == "<head><p>kept</p>"


def test_select_picks_notebooks_by_number_or_name():
    picked = reports.select(ROOT / "notebooks", ["03", "05_malicious_sfu"])
    assert [p.name[:2] for p in picked] == ["03", "05"]


def test_committed_gallery_is_small():
    gallery = sorted(reports.GALLERY.glob("*.png"))
    assert gallery, "no gallery: run `python -m e2ee_lab.reports --gallery` (make run does not)"
    assert all(p.stat().st_size <= reports.GALLERY_LIMIT for p in gallery)
    assert {p.stem for p in gallery} <= {p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")}
    data = sum(p.stat().st_size for p in (ROOT / "data").rglob("*") if p.is_file())
    assert data < 20_000_000, f"data/ holds {data / 1e6:.1f} MB"


# --- in headless Chromium -----------------------------------------------------------------------


def _probe(page: Path, profile: Path) -> dict:
    """Open a copy of ``page`` (same folder, so relative links hold) with :data:`PROBE` appended."""
    copy = page.with_name(page.stem + ".probe.html")
    copy.write_text(page.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    out = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--virtual-time-budget=15000", "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="e2ee-probe">(.*?)</pre>', out.stdout, re.S)
    assert found, f"no probe result from {page.name}: {out.stderr[-500:]}"
    return json.loads(html.unescape(found.group(1)))


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, monkeypatch_module):
    out = tmp_path_factory.mktemp("reports")
    monkeypatch_module.setenv("E2EE_LAB_SIZE", "ci")
    assert reports.main(["--only", "03", "04", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.browser
@needs_chromium
def test_probe_sees_broken_images_and_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><img src='missing.png'><div class='jp-Cell'>"
        "<div data-mime-type='application/vnd.jupyter.stderr'>Traceback: ValueError</div></div>")
    seen = _probe(page, tmp_path / "profile")
    assert seen["images"] == 1 and len(seen["broken"]) == 1 and seen["errors"] == 1


@pytest.mark.browser
@needs_chromium
def test_index_and_reports_render_in_chromium(report_dir, tmp_path):
    index = report_dir / "index.html"
    links = re.findall(r"<a href='([^']+\.html)'>", index.read_text())
    assert sorted(set(links)) == ["03_sframe_by_hand.html", "04_key_agreement.html"]
    seen = _probe(index, tmp_path / "profile")
    assert seen == {"images": 2, "broken": [], "errors": 0}
    for name in sorted(set(links)):
        seen = _probe(report_dir / name, tmp_path / "profile")
        assert seen["images"] >= 1 and seen["broken"] == [] and seen["errors"] == 0, (name, seen)
