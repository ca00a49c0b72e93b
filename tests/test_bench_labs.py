"""``e2ee-lab bench labs``: each notebook in a fresh process, measured with getrusage."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from e2ee_lab.bench.labs import bench_labs, format_labs
from e2ee_lab.cli import main

pytestmark = pytest.mark.notebook


def test_a_lab_costs_cpu_and_memory_and_a_failing_one_is_a_row_with_its_error(tmp_path):
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Lab 98"), new_code_cell("x = bytearray(64 * 2**20)\nsum(range(10**6))")]),
                   tmp_path / "98_busy.ipynb")
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Lab 99"), new_code_cell("1 / 0")]), tmp_path / "99_broken.ipynb")
    df = bench_labs(sizes=("ci",), notebooks=tmp_path, progress=False)
    busy, broken = df.iloc[0], df.iloc[1]
    assert list(df.lab) == ["98", "99"] and list(df["size"]) == ["ci", "ci"]
    assert busy.error == "" and busy.cpu_s > 0.1 and busy.peak_rss_mib > 64  # the kernel's 64 MiB buffer
    assert "ZeroDivisionError" in broken.error or "CellExecutionError" in broken.error
    assert "FAILED 99_broken.ipynb ci" in format_labs(df)


def test_the_command_writes_the_table_and_the_csv(tmp_path, capsys):
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Lab 97"), new_code_cell("x = 1")]), tmp_path / "97_x.ipynb")
    assert main(["bench", "labs", "--notebooks", str(tmp_path), "--lab-sizes", "ci", "--out", str(tmp_path / "labs.csv"),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "cpu_s ci" in text and (tmp_path / "labs.csv").read_text().startswith("lab,notebook,size")
