"""Page faults per training step: why a fused CPU op's time depended on the allocator's luck.

    python benchmarks/page_faults.py                     # 16x3x512x512, fp32, 2 threads (~2 min)
    python benchmarks/page_faults.py --shape 8x3x256x256

For each of four settings, in a fresh process: the output cache of the fused CPU ops on or off
(``INPAINT_FAST_OUTPUT_CACHE_MB=0``: a fresh gradient buffer every call, as before the cache), and
transparent huge pages available or not (``prctl(PR_SET_THP_DISABLE)``, as on a machine whose kernel
has no huge page to give), it times forward + backward of ``reconstruction_loss`` and of
``total_variation`` (hole) against ``torch.compile`` of the notebook's code (the providers of
bench_masked_error.py and bench_masked_tv.py) and counts the minor page faults of each step
(``getrusage``). It prints the median per setting, and the machine's huge-page settings.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_masked_error  # noqa: E402  (puts the repository root on sys.path)
import bench_masked_tv  # noqa: E402
import harness  # noqa: E402

PR_SET_THP_DISABLE = 41
SETTINGS = [("on", "available"), ("on", "disabled"), ("off", "available"), ("off", "disabled")]


def disable_huge_pages() -> None:
    """In a child before it starts: no transparent huge page for it (inherited across exec)."""
    ctypes.CDLL(None).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def step_stats(fn, inputs, steps: int, warmup: int):
    """(median ms, median minor faults) of forward + backward steps, the gradient freed after each."""
    import torch
    pred = inputs[0]
    for _ in range(warmup):
        torch.autograd.grad(fn(*inputs), pred)
    times, faults = [], []
    for _ in range(steps):
        f0, t0 = minor_faults(), time.perf_counter()
        grad = torch.autograd.grad(fn(*inputs), pred)
        times.append(time.perf_counter() - t0)
        faults.append(minor_faults() - f0)
        del grad
    return statistics.median(times) * 1e3, statistics.median(faults)


def child(shape, steps: int, warmup: int, threads: int) -> dict:
    """One setting, in this (fresh) process: {case: [ms, faults per step]}."""
    import torch
    from tests import notebook
    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    rec = bench_masked_error.make_inputs(shape, torch.float32, cpu)
    tv = bench_masked_tv.make_inputs(shape, torch.float32, cpu)
    cases = {
        "reconstruction_loss compile": (torch.compile(bench_masked_error.notebook_eager(notebook.reconstruction_loss),
                                                      dynamic=False), rec),
        "reconstruction_loss ours": (bench_masked_error.ours("cpu"), rec),
        "total_variation compile": (torch.compile(bench_masked_tv.notebook_tv("hole"), dynamic=False), tv),
        "total_variation ours": (bench_masked_tv.ours("hole"), tv),
    }
    return {name: step_stats(fn, inputs, steps, warmup) for name, (fn, inputs) in cases.items()}


def machine() -> str:
    def read(path):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return "?"
    thp = read("/sys/kernel/mm/transparent_hugepage/enabled")
    defrag = read("/sys/kernel/mm/transparent_hugepage/defrag")
    reporting = [p for p in read("/proc/cmdline").split() if p.startswith("page_reporting")]
    return (f"THP enabled: {thp}; defrag: {defrag}; free page reporting: {' '.join(reporting) or 'not set'}; "
            f"glibc {platform.libc_ver()[1]} (mmap threshold at most 32 MiB on 64-bit)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="16x3x512x512", help="NxCxHxW (default 16x3x512x512)")
    p.add_argument("--steps", type=int, default=15, help="timed steps per case (default 15)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per case (default 10)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # a setting's process: its JSON goes here
    args = p.parse_args(argv)
    shape = harness.parse_shape(args.shape)
    if args.child:
        with open(args.child, "w") as f:
            json.dump(child(shape, args.steps, args.warmup, args.threads), f)
        return 0
    print(f"page faults per step, {args.shape} fp32, {args.threads} threads; {machine()}", flush=True)
    rows = []
    for cache, thp in SETTINGS:
        out = f"/tmp/page_faults_{os.getpid()}.json"
        env = dict(os.environ, INPAINT_FAST_OUTPUT_CACHE_MB="0" if cache == "off" else
                   os.environ.get("INPAINT_FAST_OUTPUT_CACHE_MB", "1024"))
        subprocess.run([sys.executable, os.path.abspath(__file__), "--shape", args.shape, "--steps", str(args.steps),
                        "--warmup", str(args.warmup), "--threads", str(args.threads), "--child", out],
                       env=env, preexec_fn=disable_huge_pages if thp == "disabled" else None, check=True)
        with open(out) as f:
            result = json.load(f)
        os.remove(out)
        for name, (ms, faults) in result.items():
            rows.append((cache, thp, name, ms, faults))
    print(f"\n{'cache':6s} {'huge pages':11s} {'case':28s} {'ms/step':>8s} {'faults/step':>12s}")
    for cache, thp, name, ms, faults in rows:
        print(f"{cache:6s} {thp:11s} {name:28s} {ms:8.2f} {faults:12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
