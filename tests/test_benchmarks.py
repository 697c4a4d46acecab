"""The benchmark scripts and the GPU suite, so they cannot rot.

On CPU: smoke runs of the bench scripts (tiny shapes, no torch.compile); the GPU providers'
code path through Triton's interpreter (``--device cpu --providers eager,triton`` with
TRITON_INTERPRET=1: the Triton row is timed and checked against eager where the op has a Triton
kernel, and is a ``skipped`` note row where it has none); the CUDA-only helpers' logic (backend
selection, do_bench notes, GPU shapes, file names, the README's GPU table) with fakes; and
``benchmarks/gpu_suite.sh`` (syntax, ``--dry-run``, the loud failure without a GPU).

Test names avoid the words that the GPU suite's ``-k`` selects, and the suite ignores this file.
"""
import csv
import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SUITE = BENCH / "gpu_suite.sh"

if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
import contenders  # noqa: E402
import harness  # noqa: E402
import measure  # noqa: E402
import records  # noqa: E402

from inpaint_fast.ops import library  # noqa: E402

# script, the op it dispatches (its kernel module), a tiny shape
SCRIPTS = {
    "masked_error": ("bench_masked_error.py", "masked_error", "1x3x16x16"),
    "masked_tv": ("bench_masked_tv.py", "masked_tv", "1x3x16x16"),
    "style_distance": ("bench_style_distance.py", "style_distance", "1x16x8x8"),
    "spectral_l1": ("bench_spectral_l1.py", "spectral_l1", "1x3x16x16"),
    "q_sample": ("bench_q_sample.py", "q_sample", "1x3x16x16"),
}


def run_script(script, *args, env=None):
    return subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=600)


def read_rows(path):
    return list(csv.DictReader(open(path, newline="")))


def test_bench_masked_error_quick(tmp_path):
    out = tmp_path / "quick.csv"
    subprocess.run([sys.executable, "benchmarks/bench_masked_error.py", "--quick", "--providers",
                    "eager,reference,cpu", "--no-plot", "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    rows = list(csv.DictReader(out.open()))
    assert {r["provider"] for r in rows} >= {"eager", "reference"}
    assert all(float(r["median_ms"]) > 0 and not r["note"] for r in rows)


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_bench_scripts_cpu_and_interpreted_gpu_provider(tmp_path, name):
    """Each script on CPU with its C++ provider and, in Triton's interpreter (TRITON_INTERPRET=1, CPU
    tensors), the path a GPU run takes for the 'triton' provider: the Triton row is timed and checked
    against eager where the op has a Triton kernel, and is a 'skipped' note row where it has none."""
    script, module, shape = SCRIPTS[name]
    out = tmp_path / "interp.csv"
    res = run_script(script, "--quick", "--device", "cpu", "--providers", "eager,cpu,triton", "--modes", "forward,full",
                     "--shapes", shape, "--repeats", "2", "--warmup", "1", "--no-plot", "--out", str(out),
                     env={"TRITON_INTERPRET": "1"})
    assert res.returncode == 0, res.stdout + res.stderr
    rows = read_rows(out)
    assert "eager" in {r["provider"] for r in rows}
    assert not any("MISMATCH" in r["note"] for r in rows), rows
    for r in rows:
        if r["provider"] in ("eager", "cpu"):
            assert float(r["median_ms"]) > 0 and "skipped" not in r["note"], r
    if importlib.util.find_spec("triton") is None:
        return
    ours = [r for r in rows if r["provider"] == "triton"]
    assert ours and {r["mode"] for r in ours} == {"forward", "full"}, rows
    if "triton" in library.kernels(module):  # the kernel exists: timed (and equal to eager, above)
        for r in ours:
            if r["op"] == "gram" and "skipped" in r["note"]:
                continue  # gram_triton may not exist even where style_distance_triton does
            assert math.isfinite(float(r["median_ms"])), r
    else:  # no kernel yet: an empty row saying so, and no failure
        assert all(r["note"].startswith("skipped: backend 'triton' has no kernel") and not r["median_ms"]
                   for r in ours), ours



def test_bench_composite_quick(tmp_path):
    """bench_composite.py's smoke run: both objectives (the PConv step and the notebook's composite step),
    each with its baseline and ours, timed and equal in value and gradient."""
    out = tmp_path / "composite.csv"
    res = run_script("bench_composite.py", "--quick", "--no-plot", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = read_rows(out)
    assert {(r["op"], r["provider"]) for r in rows} == {("pconv_step", "plain"), ("pconv_step", "ours"),
                                                        ("notebook_composite_step", "notebook"),
                                                        ("notebook_composite_step", "ours")}, rows
    assert all(r["mode"] == "full" and r["shape"] == "1x3x32x32" and "MISMATCH" not in r["note"] for r in rows), rows
    for r in rows:
        assert float(r["median_ms"]) > 0 and float(r["peak_mem_mb"]) > 0, r
        assert float(r["speedup_vs_eager"]) > 0, r
        if r["provider"] == "ours":
            assert "peak_mem_vs_" in r["note"], r

def test_bench_overhead_quick(tmp_path):
    """bench_overhead.py: every public loss, forward and forward + backward, ours checked against the
    notebook's code (equal value and gradient) and timed beside it."""
    out = tmp_path / "overhead.csv"
    res = run_script("bench_overhead.py", "--quick", "--providers", "eager,ours", "--repeats", "2", "--warmup", "1",
                     "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = read_rows(out)
    losses = {"reconstruction_loss", "masked_l1", "masked_l2", "total_variation", "frequency_loss", "style_loss",
              "gram_matrix", "q_sample"}
    assert {(r["op"], r["mode"], r["provider"]) for r in rows} == {
        (f"overhead[{name}]", mode, provider) for name in losses for mode in ("forward", "full")
        for provider in ("eager", "ours")}, rows
    assert all(r["shape"] == "1x3x8x8" and r["threads"] == "1" and "MISMATCH" not in r["note"] for r in rows), rows
    assert all(float(r["median_ms"]) > 0 and float(r["speedup_vs_eager"]) > 0 for r in rows), rows
    assert "ours/eager" in res.stdout  # the table


def test_bench_time_split_quick(tmp_path):
    """bench_time_split.py on a CPU: each loss's providers checked against the notebook's code and the
    wall time written (the kernel and CUDA-graph rows need a GPU)."""
    out = tmp_path / "split.csv"
    res = run_script("bench_time_split.py", "--quick", "--providers", "eager,cpu", "--repeats", "2", "--warmup", "1",
                     "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = read_rows(out)
    assert {(r["op"], r["mode"], r["provider"]) for r in rows} == {
        (f"split[{name}]", "full", provider) for name in ("reconstruction_loss", "total_variation", "frequency_loss",
                                                          "style_distance")
        for provider in ("eager", "cpu")}, rows
    assert all(float(r["median_ms"]) > 0 and "MISMATCH" not in r["note"] for r in rows), rows
    assert "best/compile" in res.stdout  # the table


# --------------------------------------------------------------------------------------------- helpers

def fake_backends(monkeypatch, avail, table):
    from inpaint_fast.ops import backend as _backend
    monkeypatch.setattr(_backend, "availability", lambda: dict(avail))
    monkeypatch.setattr(library, "kernels", lambda op: frozenset(table.get(op, ())))


def test_our_backends_on_a_gpu(monkeypatch):
    all_ok = {"reference": None, "cpu": None, "cuda": None, "triton": None}
    fake_backends(monkeypatch, all_ok, {"masked_error": {"cpu", "cuda"}, "spectral_l1": {"cpu"}})
    dev = torch.device("cuda")
    run, notes = contenders.our_backends("masked_error", dev)
    assert run == ["cuda"] and notes == {"triton": "skipped: backend 'triton' has no kernel for masked_error"}
    run, notes = contenders.our_backends("spectral_l1", dev)
    assert run == [] and set(notes) == {"cuda", "triton"}
    run, notes = contenders.our_backends("masked_error", dev, wanted=["eager", "triton"])
    assert run == [] and set(notes) == {"triton"}
    # a backend that is not available says why
    fake_backends(monkeypatch, {**all_ok, "cuda": "the extension was built without CUDA"}, {"masked_error": {"cuda"}})
    run, notes = contenders.our_backends("masked_error", dev)
    assert run == [] and notes["cuda"] == "skipped: the extension was built without CUDA"


def test_our_backends_on_cpu(monkeypatch):
    fake_backends(monkeypatch, {"reference": None, "cpu": "not built", "cuda": "x", "triton": None}, {})
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    cpu = torch.device("cpu")
    assert contenders.our_backends("masked_tv", cpu) == ([], {})  # a missing cpu kernel stays silent
    run, notes = contenders.our_backends("masked_tv", cpu, wanted=["eager", "triton"])  # interpreted, when asked
    assert run == [] and notes["triton"].startswith("skipped")
    monkeypatch.delenv("TRITON_INTERPRET")
    assert contenders.our_backends("masked_tv", cpu, wanted=["eager", "triton"]) == ([], {})


def test_has_kernel_triton_needs_the_registered_op(monkeypatch):
    fake_backends(monkeypatch, {}, {"style_distance": {"triton"}})
    assert contenders.has_kernel("triton", "no_such_op_xyz", module="style_distance") is False
    assert contenders.has_kernel("cuda", "style_distance") is False


def test_do_bench_note():
    calls = []

    def bench(fn, warmup, rep, quantiles):
        fn()
        calls.append((warmup, rep, tuple(quantiles)))
        return [1.5, 1.25, 2.0]
    assert measure.do_bench_note(lambda: None, bench) == "do_bench_ms=1.5[1.25,2]"
    assert calls == [(25, 100, (0.5, 0.2, 0.8))]
    assert measure.do_bench_note(lambda: None, lambda fn, **kw: 0.75) == "do_bench_ms=0.75[0.75,0.75]"

    def broken(fn, **kw):
        raise RuntimeError("no GPU\nmore")
    note = measure.do_bench_note(lambda: None, broken)
    assert note == "do_bench error: RuntimeError: no GPU" and "failed" not in note  # report.py drops "failed" rows


def test_parse_args_devices(monkeypatch):
    shapes = ([(8, 3, 256, 256)], [(2, 3, 64, 64)], [(16, 3, 1024, 1024)])
    args = harness.parse_args("x", [], shapes=shapes)
    assert args.device.type == "cpu" and args.shapes == [(8, 3, 256, 256)] and not args.do_bench
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            harness.parse_args("x", ["--device", "cuda"], shapes=shapes)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    args = harness.parse_args("x", ["--device", "cuda"], shapes=shapes)
    assert args.shapes == [(16, 3, 1024, 1024)] and args.do_bench
    assert harness.parse_args("x", ["--device", "cuda", "--quick"], shapes=shapes).shapes == [(2, 3, 64, 64)]
    assert not harness.parse_args("x", ["--device", "cuda", "--no-do-bench"], shapes=shapes).do_bench
    assert harness.parse_args("x", ["--device", "cuda"], shapes=shapes[:2]).shapes == [(8, 3, 256, 256)]


def test_default_paths_keep_one_png_per_dtype(monkeypatch):
    monkeypatch.setattr(records, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    dev = torch.device("cpu")
    csv_path, png = harness.default_paths(harness.parse_args("x", []), "masked_tv", dev)
    assert csv_path.endswith(os.path.join("results", "NVIDIA_H100_80GB_HBM3.csv"))
    assert png.endswith(os.path.join("plots", "masked_tv_NVIDIA_H100_80GB_HBM3.png"))
    _, png16 = harness.default_paths(harness.parse_args("x", ["--dtype", "bfloat16"]), "masked_tv", dev)
    assert png16.endswith("masked_tv_NVIDIA_H100_80GB_HBM3_bfloat16.png")


def test_git_rev_override(monkeypatch):
    monkeypatch.setenv("INPAINT_FAST_GIT_REV", "abc1234")
    assert records.git_rev() == "abc1234"


def test_timer_on_cpu():
    ms = measure._Timer(torch.device("cpu"))
    ms.start()
    assert ms.stop() >= 0.0


def load_report():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_report_gpu_table(tmp_path):
    report = load_report()
    path = tmp_path / "NVIDIA_H100_80GB_HBM3.csv"
    base = {c: "" for c in records.COLUMNS}
    base.update(shape="16x3x1024x1024", dtype="float32", mode="full", threads="2", device="NVIDIA H100 80GB HBM3",
                torch_version="2.11.0", git_rev="abc", date="2026-11-24T10:00:00+00:00")
    rows = [
        {**base, "op": "reconstruction_loss", "provider": "cuda", "median_ms": "0.3", "pct_roofline": "90",
         "speedup_vs_eager": "12", "speedup_vs_compile": "1.5", "peak_mem_mb": "192",
         "note": "do_bench_ms=0.29[0.28,0.3]"},
        {**base, "op": "reconstruction_loss", "provider": "triton", "median_ms": "0.4", "pct_roofline": "70",
         "speedup_vs_eager": "9", "speedup_vs_compile": "1.1", "peak_mem_mb": "192"},
        {**base, "op": "masked_tv[hole]", "provider": "triton", "note": "skipped: backend 'triton' has no kernel"},
        {**base, "op": "style_distance", "shape": "8x256x128x128", "provider": "triton", "median_ms": "2",
         "pct_roofline": "40", "speedup_vs_eager": "1.6", "speedup_vs_compile": "1.6", "note": "gflops=1;mm_gflops=2"},
        {**base, "op": "reconstruction_loss", "provider": "eager", "median_ms": "3.6", "speedup_vs_eager": "1"},
    ]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=records.COLUMNS)
        w.writeheader()
        w.writerows(rows)
    text = report.table([str(path)])
    assert "**NVIDIA H100 80GB HBM3**, torch 2.11.0 (" in text and "threads" not in text
    assert "| do_bench ms |" in text and "| issue-4 target |" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("| reconstruction_loss") or ln.startswith("| style")]
    assert len(lines) == 3  # eager and the skipped row are left out
    cuda_line = next(ln for ln in lines if "| cuda |" in ln)
    assert "| 0.29 |" in cuda_line and cuda_line.endswith("| yes |")
    triton_line = next(ln for ln in lines if "reconstruction_loss" in ln and "| triton |" in ln)
    assert "no (70 % < 85 %, 1.1x < 1.3x compile)" in triton_line
    assert next(ln for ln in lines if ln.startswith("| style")).endswith("| 40 (mm) | – | yes |")
    assert "masked_tv" not in text


def test_report_cpu_table_unchanged_format(tmp_path):
    report = load_report()
    path = tmp_path / "AMD_EPYC.csv"
    row = {c: "" for c in records.COLUMNS}
    row.update(op="masked_tv[hole]", shape="8x3x256x256", dtype="float32", provider="cpu", mode="full",
               median_ms="0.88", speedup_vs_eager="8.2", speedup_vs_compile="3", pct_roofline="12", peak_mem_mb="6",
               threads="2", device="AMD EPYC", torch_version="2.14.1", date="2026-11-24T10:00:00+00:00")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=records.COLUMNS)
        w.writeheader()
        w.writerow(row)
    text = report.table([str(path)])
    assert "**AMD EPYC**, torch 2.14.1, 2 threads" in text
    assert "| masked_tv[hole] | 8x3x256x256 | float32 | full | cpu | 0.88 | 8.2 | 3 | 12 | 6 |" in text
    assert "do_bench" not in text


# --------------------------------------------------------------------------------------------- gpu_suite.sh

def test_gpu_suite_syntax():
    subprocess.run(["bash", "-n", str(SUITE)], check=True)


def test_gpu_suite_dry_run(tmp_path):
    out = tmp_path / "out"
    res = subprocess.run(["bash", str(SUITE), "--dry-run", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    text = res.stdout
    assert "FORCE_CUDA=1" in text and "TORCH_CUDA_ARCH_LIST=" in text and "setup.py build_ext --inplace" in text
    assert "-m inpaint_fast info" in text
    assert "pytest" in text and "cuda\\ or\\ triton" in text
    for script in ("bench_time_split.py", "bench_masked_error.py", "bench_masked_tv.py", "bench_style_distance.py",
                   "bench_spectral_l1.py"):
        assert f"benchmarks/{script}" in text
    runs = [ln for ln in text.splitlines() if ln.startswith("+ ") and "benchmarks/bench_" in ln]
    assert len(runs) == 9 and all("--device cuda" in ln for ln in runs)
    assert "bench_time_split.py" in runs[0]  # the time split first
    assert sum("--dtype bfloat16" in ln for ln in runs) == 4
    assert not out.exists()  # a dry run writes nothing
    res = subprocess.run(["bash", str(SUITE), "--dry-run", "--stages", "bench", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "setup.py build_ext" not in res.stdout and "-m pytest" not in res.stdout


def test_gpu_suite_usage_errors(tmp_path):
    for argv in ([], ["--stages", "nope", str(tmp_path)], ["--bogus", str(tmp_path)]):
        res = subprocess.run(["bash", str(SUITE), *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, (argv, res.stdout, res.stderr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="would run the whole suite on this GPU")
def test_gpu_suite_fails_loudly_without_gpu(tmp_path):
    out = tmp_path / "out"
    res = subprocess.run(["bash", str(SUITE), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHON": sys.executable})
    assert res.returncode == 2
    assert "NO GPU" in res.stdout + res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["suite.log"]  # nothing built, tested or benchmarked
    assert "NO GPU" in (out / "suite.log").read_text()


FAKE_PYTHON = r'''#!/usr/bin/env bash
# Stands in for python3 on a GPU machine: answers what gpu_suite.sh asks, logs every call.
echo "$*" >> "$FAKE_LOG"
case "$*" in
    "-") cat >/dev/null; echo 9.0; echo FAKE_GPU ;;
    "-c import triton"*) echo "triton 0.0" ;;
    "setup.py build_ext --inplace") echo "compiling"; exit "${FAKE_BUILD_RC:-0}" ;;
    "-m pip install"*) exit 0 ;;
    "-c import inpaint_fast.ops.library"*) echo "extension: loaded" ;;
    "-m inpaint_fast info") echo "inpaint_fast info" ;;
    "-m pytest --help") echo "--session-timeout=SECONDS --timeout=TIMEOUT --numprocesses=n" ;;
    *"--collect-only"*) echo "tests/test_a.py::test_x[cuda]"; echo "tests/test_a.py::test_x[triton]" ;;
    "-m pytest"*) for a in "$@"; do case "$a" in --junitxml=*) echo "<testsuites/>" > "${a#--junitxml=}" ;; esac; done ;;
    "benchmarks/bench_masked_tv.py --dtype bfloat16"*) exit 1 ;;
    "benchmarks/bench_"*)
        mkdir -p benchmarks/results benchmarks/plots
        echo "row $1 $3" >> benchmarks/results/FAKE_GPU.csv
        touch "benchmarks/plots/${1#benchmarks/}_$3.png" ;;
    "benchmarks/report.py --print") echo "| table |" ;;
    *) echo "fake python: unexpected call: $*" >&2; exit 3 ;;
esac
'''


def fake_suite(tmp_path, extra_env):
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "gpu_suite.sh").write_text(SUITE.read_text())
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(fake), "FAKE_LOG": str(tmp_path / "calls.log"), **extra_env}
    res = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_suite.sh"), str(out)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    return res, out


def test_gpu_suite_skips_benchmarks_past_its_budget(tmp_path):
    res, out = fake_suite(tmp_path, {"SUITE_BUDGET_S": "40"})
    assert res.returncode == 1
    summary = (out / "summary.txt").read_text()
    skipped = [ln for ln in summary.splitlines() if ln.startswith("bench_") and ln[44:].split()[0] == "skipped"]
    assert len(skipped) == 9 and "--stages bench" in summary


@pytest.mark.parametrize("build_rc", [0, 1])
def test_gpu_suite_flow_with_a_fake_gpu(tmp_path, build_rc):
    """The suite's control flow and OUTDIR layout, with a stand-in python3 that 'has' a GPU."""
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "gpu_suite.sh").write_text(SUITE.read_text())
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": str(fake), "FAKE_LOG": str(log), "FAKE_BUILD_RC": str(build_rc),
           "SUITE_TEST_WORKERS": "4"}
    res = subprocess.run(["bash", str(repo / "benchmarks" / "gpu_suite.sh"), str(out)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    text = res.stdout + res.stderr
    assert res.returncode == 1, text  # one benchmark fails
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["suite.log", "build.log", "pytest.xml", "FAKE_GPU.csv", "plots.tar.gz", "report.md",
                            "summary.txt"])
    assert all(p.is_file() for p in out.iterdir())
    calls = log.read_text().splitlines()
    assert "setup.py build_ext --inplace" in calls
    assert any(c.startswith("-m pip install --no-build-isolation") for c in calls) == bool(build_rc)
    pytest_run = next(c for c in calls if c.startswith("-m pytest -q -rfEs"))
    assert "-k cuda or triton" in pytest_run and "-n 4" in pytest_run and "--session-timeout=" in pytest_run
    benches = [c for c in calls if c.startswith("benchmarks/bench_")]
    assert len(benches) == 9 and all("--device cuda" in c for c in benches)
    assert len((out / "FAKE_GPU.csv").read_text().splitlines()) == 8  # the stand-in writes a row per run that passes
    summary = (out / "summary.txt").read_text()
    status = {ln[:44].strip(): ln[44:].split()[0] for ln in summary.splitlines() if len(ln) > 44}
    assert status["bench_masked_tv.py --dtype bfloat16"] == "FAILED" and status["tests"] == "ok"
    assert status["build"] == "ok" and status["bench_spectral_l1.py --dtype float32"] == "ok"
    assert "SOMETHING FAILED" in summary
    import tarfile
    with tarfile.open(out / "plots.tar.gz") as tar:
        assert len(tar.getnames()) == 8
    assert "=== summary" in (out / "suite.log").read_text()
