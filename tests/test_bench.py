"""Smoke tests of e2ee_lab.bench and the ``e2ee-lab bench`` command: structure, never speed."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from e2ee_lab.bench import BENCHMARKS, bench_sframe, format_sframe, machine_info
from e2ee_lab.cli import build_parser, main

TINY = {"repeat": 2, "number": 3, "progress": False}


def test_bench_sframe_returns_one_row_per_suite_and_size():
    df = bench_sframe(sizes=[64, 1_000], suites=[1, 4], **TINY)
    assert list(zip(df["suite"], df["size"])) == [(1, 64), (1, 1_000), (4, 64), (4, 1_000)]
    timed = ["protect_us", "unprotect_us", "gcm_encrypt_us", "gcm_decrypt_us"]
    assert (df[timed] > 0).all().all() and (df[[c.replace("_us", "_iqr_us") for c in timed]] >= 0).all().all()
    expected = (df["protect_us"] + df["unprotect_us"]) / (df["gcm_encrypt_us"] + df["gcm_decrypt_us"])
    assert df["ratio_gcm"].tolist() == pytest.approx(expected.tolist())
    ctr_rows, gcm_rows = df[df["suite"] == 1], df[df["suite"] == 4]
    assert ctr_rows["ratio_ctr_hmac"].notna().all() and gcm_rows["ratio_ctr_hmac"].isna().all()
    assert gcm_rows["ctr_hmac_encrypt_us"].isna().all()
    # The suite-4 goal applies at 1 KB only (among these sizes), and its verdict is a bool there.
    assert df.loc[(df["suite"] == 4) & (df["size"] == 1_000), "goal"].item() == 2.0
    assert isinstance(df.loc[(df["suite"] == 4) & (df["size"] == 1_000), "goal_met"].item(), bool)
    assert df.loc[df["size"] == 64, "goal"].isna().all()
    assert (df["number"] == 3).all() and (df["repeat"] == 2).all()


def test_machine_is_described():
    info = machine_info()
    assert {"cpu", "aes_ni", "cores", "python", "openssl", "cryptography"} <= set(info)
    assert "OpenSSL" in info["openssl"] and isinstance(info["aes_ni"], bool)


def test_format_names_suites_and_columns():
    df = bench_sframe(sizes=[32], suites=[5], **TINY)
    text = format_sframe(df)
    assert "AES_256_GCM_SHA512_128" in text and "ratio vs gcm" in text and "openssl" in text


def test_bad_counts_raise_value_error():
    with pytest.raises(ValueError):
        bench_sframe(sizes=[32], suites=[4], repeat=0, progress=False)


def test_cli_bench_writes_csv_and_prints_table(tmp_path, capsys):
    out = tmp_path / "deep" / "sframe.csv"
    argv = ["bench", "sframe", "--repeat", "1", "--number", "2", "--sizes", "50", "--suites", "2", "4",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "protect µs" in table and "AES_128_CTR_HMAC_SHA256_64" in table
    assert pd.read_csv(out)[["suite", "size"]].values.tolist() == [[2, 50], [4, 50]]


def test_cli_bench_json_is_valid_and_complete(tmp_path, capsys):
    argv = ["bench", "sframe", "--json", "--repeat", "1", "--number", "2", "--sizes", "50", "--suites", "4",
            "--out", str(tmp_path / "s.csv"), "--no-progress"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    (row,) = payload["sframe"]["rows"]
    assert row["suite"] == 4 and row["size"] == 50 and row["ratio_ctr_hmac"] is None
    assert math.isfinite(row["ratio_gcm"]) and payload["sframe"]["machine"]["python"]


def test_cli_bench_choices_come_from_the_registry():
    parser = build_parser()
    assert parser.parse_args(["bench", "all"]).name == "all"
    for name in BENCHMARKS:
        assert parser.parse_args(["bench", name]).name == name
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "no-such-benchmark"])
    with pytest.raises(SystemExit):
        parser.parse_args([])
