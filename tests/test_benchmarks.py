"""Smoke run of the benchmark script (tiny shapes, no torch.compile), so it cannot rot."""
import csv
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_bench_masked_error_quick(tmp_path):
    out = tmp_path / "quick.csv"
    subprocess.run([sys.executable, "benchmarks/bench_masked_error.py", "--quick", "--providers",
                    "eager,reference,cpu", "--no-plot", "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    rows = list(csv.DictReader(out.open()))
    assert {r["provider"] for r in rows} >= {"eager", "reference"}
    assert all(float(r["median_ms"]) > 0 and not r["note"] for r in rows)
