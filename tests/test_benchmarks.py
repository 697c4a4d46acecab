"""The benchmark scripts and the GPU suite, so they cannot rot.

On CPU: smoke runs of the bench scripts (tiny shapes, no torch.compile); the GPU providers'
code path through Triton's interpreter (``--device cpu --providers eager,triton`` with
TRITON_INTERPRET=1: the Triton row is timed and checked against eager where the op has a Triton
kernel, and is a ``skipped`` note row where it has none); the CUDA-only helpers' logic (backend
selection, do_bench notes, GPU shapes, file names, the README's GPU table) with fakes; the rules that make
the numbers comparable (hand-over backward rows noted, without throughput or speedups, and never plotted;
bench_composite's like-for-like provider; report.py's commit/date, check and "eager is" columns, with
MISMATCH and failed rows shown); and ``benchmarks/gpu_suite.sh`` (syntax, ``--dry-run``, the loud failure
without a GPU).

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
    assert all(float(r["median_ms"]) > 0 for r in rows)
    # no note but the hand-over one, on the backward rows of our compiled backend
    assert all(not r["note"] or (r["note"] == records.HANDOVER_NOTE and r["mode"] == "backward"
                                 and r["provider"] == "cpu") for r in rows), rows


def test_processes_run_each_case_in_fresh_processes(tmp_path):
    out = tmp_path / "runs.csv"
    res = run_script("bench_masked_error.py", "--quick", "--processes", "2", "--providers", "eager,cpu", "--modes",
                     "forward,full", "--no-plot", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("--- process ") == 2
    rows = read_rows(out)
    assert {(r["provider"], r["mode"]) for r in rows} == {(p, m) for p in ("eager", "cpu") for m in ("forward", "full")}
    assert len(rows) == 4 and all(r["processes"] == "2" for r in rows)
    for r in rows:
        assert float(r["min_ms"]) <= float(r["median_ms"]) <= float(r["max_ms"])
        if r["provider"] == "cpu":
            assert float(r["speedup_vs_eager_min"]) <= float(r["speedup_vs_eager"]) <= float(r["speedup_vs_eager_max"])


@pytest.mark.skipif(library.load_error() is not None or not sys.platform.startswith("linux"),
                    reason="needs the compiled extension and Linux (prctl)")
def test_page_faults_with_and_without_the_output_cache():
    """With the cache, our 48 MiB gradient costs no fault per step; without it and without huge pages,
    a fault per 4 KiB page (the diagnostic's own four settings)."""
    res = run_script("page_faults.py", "--steps", "3", "--warmup", "2")
    assert res.returncode == 0, res.stderr
    table = {tuple(line.split()[:4]): float(line.split()[-1]) for line in res.stdout.splitlines()
             if line.startswith(("on ", "off "))}
    assert len(table) == 16
    for loss in ("reconstruction_loss", "total_variation"):
        assert table[("on", "available", loss, "ours")] == table[("on", "disabled", loss, "ours")] == 0
        assert table[("off", "disabled", loss, "ours")] >= 16 * 3 * 512 * 512 * 4 // 4096


def test_aggregate_processes_takes_ratios_within_each_process():
    """Each process's ratio first, then their median and extremes (not the ratio of the median times)."""
    def run(eager_ms, ours_ms, note=""):
        base = {"op": "op", "shape": "1x1x1x1", "dtype": "float32", "mode": "full", "gbps": 1.0, "peak_mem_mb": 2.0,
                "processes": 1, "git_rev": "abc", "date": "child", "note": note}
        return [dict(base, provider="eager", median_ms=eager_ms), dict(base, provider="cpu", median_ms=ours_ms)]
    runs = [run(10.0, 5.0), run(30.0, 6.0, "slow"), run(12.0, 4.0)]
    rows = records.aggregate_processes(runs, {"git_rev": "abc", "date": "now"})
    ours = next(r for r in rows if r["provider"] == "cpu")
    assert (ours["speedup_vs_eager"], ours["speedup_vs_eager_min"], ours["speedup_vs_eager_max"]) == (3.0, 2.0, 5.0)
    assert (ours["median_ms"], ours["min_ms"], ours["max_ms"]) == (5.0, 4.0, 6.0)
    assert (ours["processes"], ours["git_rev"], ours["date"], ours["note"]) == (3, "abc", "now", "slow")
    assert (records.error_bar(ours), records.error_bar(ours, upper=True)) == (4.0, 6.0)  # the plots' bars
    records.fill_speedups(rows)  # a later fill (harness.finish) keeps the per-process medians
    assert ours["speedup_vs_eager"] == 3.0
    runs[1][1]["git_rev"] = "abc+dirty"  # a process that saw the tree changed
    assert all(r["git_rev"] == "abc+dirty" for r in records.aggregate_processes(runs, {"git_rev": "abc", "date": "now"})
               if r["provider"] == "cpu")


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
    each with its baseline, ours (its defaults) and ours_nchw_batch (ours with the baseline's VGG settings),
    timed and equal in value and gradient; every row's note names its VGG settings."""
    out = tmp_path / "composite.csv"
    res = run_script("bench_composite.py", "--quick", "--no-plot", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = read_rows(out)
    assert {(r["op"], r["provider"]) for r in rows} == {
        (op, provider) for op, base in (("pconv_step", "plain"), ("notebook_composite_step", "notebook"))
        for provider in (base, "ours_nchw_batch", "ours")}, rows
    assert all(r["mode"] == "full" and r["shape"] == "1x3x32x32" and "MISMATCH" not in r["note"] for r in rows), rows
    for r in rows:
        assert float(r["median_ms"]) > 0 and float(r["peak_mem_mb"]) > 0, r
        assert float(r["speedup_vs_eager"]) > 0, r
        if r["provider"] in ("ours", "ours_nchw_batch"):
            assert "peak_mem_vs_" in r["note"], r
        settings = {"ours": "vgg=channels_last,micro-batched"}.get(r["provider"], "vgg=NCHW,whole batch per call")
        assert settings in r["note"], r


def test_composite_baseline_settings_take_whole_batch_vgg_calls():
    """ours_nchw_batch's VGG calls: NCHW and the whole batch (output and composite together, the target
    apart), where ours's are channels_last and one 256x256 image each; the constant is restored after."""
    import bench_composite
    from inpaint_fast.nets import vgg as vgg_module
    args = harness.parse_args("x", ["--quick"], bench_composite.add_arguments,
                              shapes=(bench_composite.SHAPES, bench_composite.QUICK_SHAPES))
    providers, _ = bench_composite.pconv_providers(args, torch.float32, torch.device("cpu"))
    inputs = bench_composite.make_inputs((2, 3, 256, 256), torch.float32, torch.device("cpu"))
    calls, forward = [], vgg_module.VGGFeatures.forward

    def spy(self, x):
        calls.append((x.shape[0], self.channels_last))
        return forward(self, x)
    before = bench_composite.IF_feature.CPU_PIXELS_PER_CALL
    values = {}
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(vgg_module.VGGFeatures, "forward", spy)
        for name in ("ours_nchw_batch", "ours"):
            calls.clear()
            values[name] = providers[name](*inputs).item()
            if name == "ours_nchw_batch":
                assert sorted(calls) == [(2, False), (4, False)], calls
            else:
                assert calls == [(1, True)] * 6, calls
        values["plain"] = providers["plain"](*inputs).item()
    assert bench_composite.IF_feature.CPU_PIXELS_PER_CALL == before
    assert values["ours"] == pytest.approx(values["plain"], rel=1e-5)
    assert values["ours_nchw_batch"] == pytest.approx(values["plain"], rel=1e-5)

def test_handover_backward_rows_noted_unplotted(tmp_path):
    """Our fused backends' 'backward' rows hand over a gradient their forward computed: they carry the
    hand-over note and no GB/s, % roofline or speedups, and no plot draws them (no plot draws 'backward');
    eager's backward row keeps its numbers."""
    if "cpu" not in library.kernels("masked_error"):
        pytest.skip("the C++ extension is not built")
    out = tmp_path / "handover.csv"
    res = run_script("bench_masked_error.py", "--quick", "--providers", "eager,reference,cpu", "--shapes", "1x3x16x16",
                     "--repeats", "2", "--warmup", "1", "--no-plot", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = read_rows(out)
    back = {r["provider"]: r for r in rows if r["mode"] == "backward"}
    assert set(back) == {"eager", "reference", "cpu"}, rows
    assert back["cpu"]["note"].startswith(records.HANDOVER_NOTE), back["cpu"]
    assert float(back["cpu"]["median_ms"]) > 0
    assert all(back["cpu"][c] == "" for c in ("gbps", "pct_roofline", "speedup_vs_eager", "speedup_vs_compile"))
    for name in ("eager", "reference"):  # plain autograd: a real backward, with its numbers
        assert not records.is_handover(back[name]) and float(back[name]["pct_roofline"]) > 0, back[name]
    assert all(not records.is_handover(r) for r in rows if r["mode"] != "backward"), rows
    drawn = records.plotted(rows)
    assert drawn and all(r["mode"] in ("forward", "full") for r in drawn)
    assert not any(records.is_handover(r) for r in drawn)


def test_handover_style_distance_but_not_gram(tmp_path):
    """style_distance's backward is a hand-over (no GFLOP/s: neither % of mm nor gflops= in the note);
    gram's backward is a real GEMM and keeps its GFLOP/s."""
    if "cpu" not in library.kernels("style_distance"):
        pytest.skip("the C++ extension is not built")
    out = tmp_path / "style.csv"
    res = run_script("bench_style_distance.py", "--quick", "--providers", "eager,cpu", "--shapes", "1x16x8x8",
                     "--modes", "backward", "--ops", "style_distance,gram", "--gram-modes", "backward",
                     "--repeats", "2", "--warmup", "1", "--no-plot", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {(r["op"], r["provider"]): r for r in read_rows(out)}
    ours = rows[("style_distance", "cpu")]
    assert records.is_handover(ours) and ours["pct_roofline"] == "" and "gflops=" not in ours["note"], ours
    assert "hand-over" in res.stdout  # the console table says it too
    for key in (("style_distance", "eager"), ("gram", "eager"), ("gram", "cpu")):
        assert not records.is_handover(rows[key]) and float(rows[key]["pct_roofline"]) > 0, rows[key]


def test_mark_handover_and_plotted():
    row = {"op": "x", "shape": "1", "dtype": "float32", "provider": "cpu", "mode": "backward", "median_ms": 0.1,
           "gbps": 900.0, "pct_roofline": 1965.0, "note": "MISMATCH vs eager: x"}
    records.mark_handover(row, "(detail)")
    assert row["note"] == f"{records.HANDOVER_NOTE} (detail); MISMATCH vs eager: x"
    assert math.isnan(row["gbps"]) and math.isnan(row["pct_roofline"]) and math.isnan(row["gflops"])
    eager = {**row, "provider": "eager", "note": "", "median_ms": 2.0}
    rows = [row, eager]
    records.fill_speedups(rows)
    assert math.isnan(row["speedup_vs_eager"]) and eager["speedup_vs_eager"] == 1.0
    assert records.plotted(rows) == []  # no backward panel at all
    full = {**eager, "mode": "full"}
    assert records.plotted(rows + [full]) == [full]
    assert records.plot_rows(rows, "/nonexistent/never.png") is None  # nothing to draw: nothing written
    assert contenders.handover_providers(["eager", "compile", "reference", "cpu", "triton", "cpu[op]"]) == [
        "cpu", "triton", "cpu[op]"]


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
    assert ("**NVIDIA H100 80GB HBM3**, torch 2.11.0, measured at commit `abc` on 2026-11-24 10:00 UTC ("
            in text and "threads" not in text)
    assert "| do_bench ms |" in text and "| issue-4 target |" in text
    lines = [ln for ln in text.splitlines() if ln.startswith("| reconstruction_loss") or ln.startswith("| style")]
    assert len(lines) == 3  # eager and the skipped row are left out
    cuda_line = next(ln for ln in lines if "| cuda |" in ln)
    assert "| 0.29 |" in cuda_line and cuda_line.endswith("| yes | notebook | ok |")
    triton_line = next(ln for ln in lines if "reconstruction_loss" in ln and "| triton |" in ln)
    assert "no (70 % < 85 %, 1.1x < 1.3x compile)" in triton_line
    assert next(ln for ln in lines if ln.startswith("| style")).endswith("| 40 (mm) | – | yes | notebook | ok |")
    assert "masked_tv" not in text
    assert "| commit |" not in text and "| measured (UTC) |" not in text  # one commit, one date: in the header


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
    assert "| masked_tv[hole] | 8x3x256x256 | float32 | full | cpu | 0.88 | 8.2 | 3 | 1 | 12 | 6 | notebook | ok |" in text
    assert "do_bench" not in text and "fresh processes" not in text


def test_report_shows_the_spread_of_a_multi_process_row(tmp_path):
    report = load_report()
    path = write_csv(tmp_path / "AMD_EPYC.csv", [dict(
        CPU_ROW, op="reconstruction_loss", provider="cpu", median_ms="5", min_ms="4", max_ms="6", speedup_vs_eager="9",
        speedup_vs_eager_min="8", speedup_vs_eager_max="10", speedup_vs_compile="3", speedup_vs_compile_min="2.5",
        speedup_vs_compile_max="3.5", processes="5")])
    text = report.table([path])
    assert "| reconstruction_loss | 8x3x256x256 | float32 | full | cpu | 5 (4–6) | 9 (8–10) | 3 (2.5–3.5) | 5 | 12 |" in text
    assert "measured in N fresh processes" in text


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=records.COLUMNS)
        w.writeheader()
        w.writerows([{**{c: "" for c in records.COLUMNS}, **r} for r in rows])
    return str(path)


CPU_ROW = dict(shape="8x3x256x256", dtype="float32", mode="full", median_ms="1", speedup_vs_eager="8",
               speedup_vs_compile="3", pct_roofline="12", peak_mem_mb="6", threads="2", device="AMD EPYC",
               torch_version="2.14.1", git_rev="abc1234", date="2026-11-24T10:00:00+00:00")


def test_report_flags_mismatch_and_failed_rows(tmp_path):
    """MISMATCH and failed rows are shown with what went wrong in the 'check' column, never dropped (a
    baseline's too); good rows say 'ok'; skipped rows and good baselines stay out."""
    report = load_report()
    path = write_csv(tmp_path / "AMD_EPYC.csv", [
        {**CPU_ROW, "op": "reconstruction_loss", "provider": "cpu"},
        {**CPU_ROW, "op": "masked_tv[hole]", "provider": "cpu",
         "note": "MISMATCH vs eager: masked_tv[hole] cpu at 8x3x256x256 float32: grad max abs err 0.1"},
        {**CPU_ROW, "op": "frequency_loss", "provider": "cpu", "median_ms": "",
         "note": "MISMATCH vs eager: frequency_loss cpu at 8x3: raised RuntimeError: boom"},
        {**CPU_ROW, "op": "frequency_loss", "provider": "compile", "median_ms": "",
         "note": "compile failed: BackendCompilerFailed: x"},
        {**CPU_ROW, "op": "reconstruction_loss", "provider": "eager"},
        {**CPU_ROW, "op": "masked_tv[hole]", "provider": "triton", "median_ms": "", "note": "skipped: no kernel"},
    ])
    text = report.table([path])
    rows = {tuple(c.strip() for c in ln.split("|")[1:6:4]): ln for ln in text.splitlines()
            if ln.startswith("| ") and not ln.startswith("| op")}
    assert set(rows) == {("reconstruction_loss", "cpu"), ("masked_tv[hole]", "cpu"), ("frequency_loss", "cpu"),
                         ("frequency_loss", "compile")}, text
    assert rows[("reconstruction_loss", "cpu")].endswith("| ok |")
    assert rows[("masked_tv[hole]", "cpu")].endswith("| notebook | MISMATCH vs eager |")
    assert rows[("frequency_loss", "cpu")].endswith("| failed: raised RuntimeError |")
    assert "| – |" in rows[("frequency_loss", "cpu")]  # no time
    assert rows[("frequency_loss", "compile")].endswith("| failed: compile failed |")


def test_report_names_each_rows_commit_and_date(tmp_path, monkeypatch):
    """Rows of several commits get a commit and a date column; a row of an older commit is marked, with
    the number of commits git counts (or without, where git does not know the commit: then the run's date
    orders them)."""
    report = load_report()
    path = write_csv(tmp_path / "AMD_EPYC.csv", [
        {**CPU_ROW, "op": "reconstruction_loss", "provider": "cpu", "git_rev": "1111111",
         "date": "2026-11-20T09:00:00+00:00"},
        {**CPU_ROW, "op": "masked_tv[hole]", "provider": "cpu", "git_rev": "2222222+dirty",
         "date": "2026-11-24T10:00:00+00:00"},
        {**CPU_ROW, "op": "gram", "mode": "forward", "provider": "cpu", "git_rev": "2222222",
         "date": "2026-11-24T11:30:00+00:00"},
    ])
    times = {"1111111": 100, "2222222": 200}
    monkeypatch.setattr(report, "commit_time", lambda rev: times.get(rev.split("+")[0]))
    monkeypatch.setattr(report, "commits_between", lambda old, new: 7)
    text = report.table([path])
    assert "Newest commit measured: `2222222`" in text and "rows from 3 commits" in text
    assert "| commit | measured (UTC) |" in text
    line = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ")}
    assert line["reconstruction_loss"].endswith("| 1111111 **(older: 7 commits)** | 2026-11-20 09:00 |")
    assert line["masked_tv[hole]"].endswith("| 2222222+dirty | 2026-11-24 10:00 |")
    assert line["gram"].endswith("| 2222222 | 2026-11-24 11:30 |")
    # commits git does not know: ordered by the dates they were measured at
    monkeypatch.setattr(report, "commit_time", lambda rev: None)
    monkeypatch.setattr(report, "commits_between", lambda old, new: None)
    text = report.table([path])
    line = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| ")}
    assert line["reconstruction_loss"].endswith("| 1111111 **(older)** | 2026-11-20 09:00 |")
    assert "older" not in line["gram"] and "older" not in line["masked_tv[hole]"]


def test_report_names_a_device_not_rerun_at_the_newest_commit(tmp_path, monkeypatch):
    """Commits are compared across the tables: a device with no row at the newest commit gets no table,
    only a line naming it and its commits (its rows stay in its CSV); the newest table's header names its
    commit, unmarked. A device with some rows at the newest commit keeps its table, older rows marked."""
    report = load_report()
    old = write_csv(tmp_path / "AMD_EPYC.csv", [{**CPU_ROW, "op": "reconstruction_loss", "provider": "cpu",
                                                 "git_rev": "1111111", "date": "2026-11-20T09:00:00+00:00"}])
    new = write_csv(tmp_path / "Intel_Xeon.csv", [{**CPU_ROW, "op": "reconstruction_loss", "provider": "cpu",
                                                   "device": "Intel Xeon", "git_rev": "2222222"}])
    monkeypatch.setattr(report, "commit_time", lambda rev: {"1111111": 100, "2222222": 200}.get(rev))
    monkeypatch.setattr(report, "commits_between", lambda a, b: 12)
    text = report.table([old, new])
    assert text.startswith("Not re-run at `2222222` (their rows stay in the CSVs): AMD EPYC "
                           "(`" + os.path.relpath(old, report.ROOT) + "`, newest rows at 1111111).")
    assert "**AMD EPYC**" not in text
    assert "**Intel Xeon**, torch 2.14.1, 2 threads, measured at commit `2222222` on 2026-11-24 10:00 UTC" in text
    assert "| commit |" not in text


def test_report_says_what_eager_is(tmp_path):
    """The 'eager is' column and its legend: the notebook's code, or inpaint_fast.reference's formulas
    where the notebook has no such function (q_sample, the dilated TV region)."""
    report = load_report()
    path = write_csv(tmp_path / "AMD_EPYC.csv", [
        {**CPU_ROW, "op": "q_sample", "provider": "cpu"},
        {**CPU_ROW, "op": "masked_tv[hole_dilated]", "provider": "cpu"},
        {**CPU_ROW, "op": "pconv_step", "provider": "ours"},
        {**CPU_ROW, "op": "pconv_step", "provider": "ours_nchw_batch"},
        {**CPU_ROW, "op": "pconv_step", "provider": "plain"},
        # backward rows never reach the table (ours are hand-overs)
        {**CPU_ROW, "op": "q_sample", "provider": "cpu", "mode": "backward", "note": report.HANDOVER_NOTE},
    ])
    text = report.table([path])
    line = {(ln.split("|")[1].strip(), ln.split("|")[5].strip()): ln for ln in text.splitlines()
            if ln.startswith("| ") and not ln.startswith("| op")}
    assert set(line) == {("q_sample", "cpu"), ("masked_tv[hole_dilated]", "cpu"), ("pconv_step", "ours"),
                         ("pconv_step", "ours_nchw_batch")}, text
    assert "| reference | ok |" in line[("q_sample", "cpu")]
    assert "| notebook + reference dilate | ok |" in line[("masked_tv[hole_dilated]", "cpu")]
    assert "| naoto0804 (plain PyTorch) | ok |" in line[("pconv_step", "ours")]
    assert "`inpaint_fast.reference.diffusion.q_sample`" in text and "`ours_nchw_batch`" in text
    assert report.HANDOVER_NOTE == records.HANDOVER_NOTE


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
