"""The frame of every bench script's main(): the shared options, output paths, the opening and the closing."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch

import records
from measure import MODES

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------------------------- CLI

def parse_shape(text: str) -> Tuple[int, ...]:
    return tuple(int(s) for s in text.lower().replace("×", "x").split("x"))


def parse_args(description: str, argv: Optional[Sequence[str]] = None,
               add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None,
               shapes: Sequence[Sequence[Tuple[int, ...]]] = ((), ()), threads: int = 2,
               processes: bool = False) -> argparse.Namespace:
    """The options every bench script shares (plus ``add_arguments(parser)`` for its own).

    ``shapes``: the script's (default, ``--quick``[, GPU default]) shapes, which ``args.shapes`` gets
    without ``--shapes``; the GPU defaults (when given) replace the defaults on a CUDA device.
    ``threads``: the default of ``--threads``. ``processes``: the script measures through :func:`collect`,
    which offers ``--processes N``.
    The device defaults to the CPU (the committed CPU results come from plain runs); ``--device cuda``
    selects the GPU, and asking for a device that is not there is an error.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes and 3 repeats (a smoke test); writes under results/quick/ and plots/quick/")
    p.add_argument("--threads", type=int, default=threads, help=f"torch.set_num_threads (default {threads})")
    p.add_argument("--out", default=None, help="CSV to append to (default benchmarks/results/<device>.csv)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="input dtype (default float32)")
    p.add_argument("--device", default="cpu",
                   help="torch device to run on: cpu (default) or cuda[:N] (the GPU shapes and providers)")
    p.add_argument("--shapes", default=None, help="comma-separated NxCxHxW shapes, overriding the defaults")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    p.add_argument("--providers", default=None, help="comma-separated subset of the providers")
    p.add_argument("--repeats", type=int, default=None, help="timed samples per case (default 25; 3 with --quick)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls per case (default 10, for first-touch page faults of fresh buffers; "
                        "1 with --quick)")
    p.add_argument("--plot", default=None, help="PNG path (default benchmarks/plots/<op>_<device>.png)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--no-csv", action="store_true", help="do not write the CSV")
    p.add_argument("--no-do-bench", action="store_true",
                   help="on CUDA, skip the triton.testing.do_bench second timing of forward and full (in the note)")
    if processes:
        p.add_argument("--processes", type=int, default=1,
                       help="run the whole measurement in N fresh processes, one after another, and record per case "
                            "the median of the per-process times and ratios with their min and max (default 1)")
        p.add_argument("--rows-to", default=None, help=argparse.SUPPRESS)  # a --processes child's rows go here
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.processes = getattr(args, "processes", 1)
    if args.processes < 1:
        p.error(f"--processes must be >= 1, got {args.processes}")
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device} asked for, but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, CUDA {torch.version.cuda})")
    if args.device.type == "cuda" and args.device.index is not None:
        torch.cuda.set_device(args.device)
    args.do_bench = args.device.type == "cuda" and not args.no_do_bench
    args.torch_dtype = DTYPES[args.dtype]
    if args.repeats is None:
        args.repeats = 3 if args.quick else 25
    if args.warmup is None:
        args.warmup = 1 if args.quick else 10  # see measure's docstring (first-touch page faults)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad:
        p.error(f"unknown mode(s) {bad}; choose from {list(MODES)}")
    args.providers = [s.strip() for s in args.providers.split(",")] if args.providers else None
    gpu_default = shapes[2] if len(shapes) > 2 and args.device.type == "cuda" else shapes[0]
    args.shapes = ([parse_shape(s) for s in args.shapes.split(",")] if args.shapes
                   else list(shapes[1] if args.quick else gpu_default) or None)
    return args


def default_paths(args: argparse.Namespace, op: str, device: torch.device) -> Tuple[str, str]:
    """(CSV path, PNG path) for this run: --out/--plot, else results/<device>.csv and
    plots/<op>_<device>.png (``plots/<op>_<device>_<dtype>.png`` for a dtype other than float32, so
    that the fp32 and bf16 runs of one GPU keep a figure each)."""
    dev = records.sanitize(records.device_name(device))
    sub = records.QUICK_SUBDIR if args.quick else ""
    csv_path = args.out or os.path.join(records.RESULTS_DIR, sub, f"{dev}.csv")
    suffix = "" if args.dtype == "float32" else f"_{args.dtype}"
    png_path = args.plot or os.path.join(records.PLOTS_DIR, sub, f"{op}_{dev}{suffix}.png")
    return csv_path, png_path


# --------------------------------------------------------------------------------------------- main

def set_threads(n: int) -> int:
    """``torch.set_num_threads(n)``; returns the count torch reports afterwards."""
    torch.set_num_threads(int(n))
    return torch.get_num_threads()


def load_average() -> float:
    """The 1-minute load average (NaN where /proc/loadavg or os.getloadavg is missing)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")


def warn_if_busy(threads: int) -> None:
    """Prints a warning when other work seems to be running (1-min load average above 1).

    On a small machine, OpenMP-parallel kernels (ours, inductor's, even ``copy_``) lose a scheduler
    time slice per parallel region when another process holds a core, so their times blow up
    while single-threaded eager ops barely move: run benchmarks on a quiet machine.
    """
    load = load_average()
    cores = os.cpu_count() or 1
    if load > 1.0:
        print(f"WARNING: 1-min load average is {load:.2f} on {cores} cores with {threads} benchmark threads: "
              "other work is running; timings of multithreaded kernels will be noisy", file=sys.stderr, flush=True)


def header(name: str, args: argparse.Namespace, extra: str = "") -> Dict[str, Any]:
    """main()'s opening: sets the threads, prints the run's header line (``extra`` before the shapes)
    and a busy warning; returns :func:`records.run_metadata`."""
    threads = set_threads(args.threads)
    meta = records.run_metadata(args.device)
    print(f"{name}: device {meta['device']!r}, torch {meta['torch_version']}, {threads} threads, {args.dtype}, "
          f"git {meta['git_rev']}, {args.repeats} repeats ({args.warmup} warmup), {extra}shapes "
          f"{', '.join(map(records.shape_str, args.shapes))}", flush=True)
    if args.device.type == "cuda":
        try:
            import triton
            tv = triton.__version__
        except Exception:  # noqa: BLE001
            tv = "not importable"
        print(f"  CUDA {torch.version.cuda}, triton {tv}, float32 matmul precision "
              f"{torch.get_float32_matmul_precision()!r}, do_bench {'on' if args.do_bench else 'off'}", flush=True)
    else:
        warn_if_busy(threads)
    return meta


def collect(args: argparse.Namespace, failures: List[str], measure_rows: Callable[[], List[Dict[str, Any]]],
            meta: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The rows of the run: ``measure_rows()`` here, or with ``--processes N`` (N > 1) the rows of N fresh
    processes running this script with the same options, one after another, aggregated per case by
    :func:`records.aggregate_processes` (their mismatches are added to ``failures``).

    Fresh processes, because a process's speed depends on what it was given at start (the memory map,
    huge pages, the threads' placement): ratios measured within one process can differ by 3x from the next."""
    if args.processes == 1:
        rows = measure_rows()
        if getattr(args, "rows_to", None):
            with open(args.rows_to, "w") as f:
                json.dump({"rows": rows, "failures": list(failures)}, f)
        return rows
    script = os.path.abspath(sys.modules[measure_rows.__module__].__file__)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.processes):
            path = os.path.join(tmp, f"rows{i}.json")
            print(f"\n--- process {i + 1} of {args.processes} ---", flush=True)
            cmd = [sys.executable, script, *args.argv, "--processes", "1", "--rows-to", path, "--no-csv", "--no-plot"]
            subprocess.run(cmd, check=False)
            if not os.path.exists(path):
                raise SystemExit(f"process {i + 1} of {args.processes} wrote no rows: {' '.join(cmd)}")
            with open(path) as f:
                run = json.load(f)
            runs.append(run["rows"])
            failures.extend(f"process {i + 1}: {msg}" for msg in run["failures"])
    return records.aggregate_processes(runs, meta)


def finish(rows: List[Dict[str, Any]], failures: Sequence[str], args: argparse.Namespace, meta: Mapping[str, Any],
           op: str, groups: Optional[Sequence[str]] = None,
           table: Optional[Callable[[Sequence[Mapping[str, Any]]], str]] = None,
           plot_path: Callable[[str, str], str] = lambda group, png: png) -> int:
    """main()'s closing: speedups, load average, table, CSV, plots, failure banner; the exit status.

    ``groups`` (default ``[op]``): the ``op`` values whose rows get their own speedups, table (headed
    by the group when it is not ``op``) and plot at ``plot_path(group, default PNG)``; ``table``:
    one table of all rows instead. ``op`` names the default PNG.
    """
    groups = list(groups or [op])
    parts = {g: [r for r in rows if r["op"] == g] for g in groups}
    for g in groups:  # fill_speedups matches rows by shape, mode and dtype only
        records.fill_speedups(parts[g])
    print(f"\n1-min load average at the end: {load_average():.2f}")
    if table:
        print(table(rows))
    else:
        cols = records.PROCESS_COLS if getattr(args, "processes", 1) > 1 else records.TABLE_COLS
        for g in groups:
            if g != op:
                print(f"\n{g}")
            print(records.format_table(parts[g], cols))
    csv_path, png_path = default_paths(args, op, args.device)
    where = meta["device"] if args.device.type == "cuda" else f"{meta['device']}, {meta['threads']} threads"
    if getattr(args, "processes", 1) > 1:
        where += f", median of {args.processes} processes (bars: min-max)"
    plots = ((parts[g], plot_path(g, png_path), f"{g} — {where}, {args.dtype}, torch {meta['torch_version']}")
             for g in groups)
    return write_outputs(rows, failures, args, csv_path, plots)


def write_outputs(rows: Sequence[Mapping[str, Any]], failures: Sequence[str], args: argparse.Namespace,
                  csv_path: str, plots: Iterable[Tuple[Sequence[Mapping[str, Any]], str, str]],
                  against: str = "eager") -> int:
    """main()'s last part: the CSV (unless --no-csv), a plot per (rows, PNG path, title) of ``plots``
    (unless --no-plot) and the banner of the providers that disagree with ``against``; the exit status."""
    if not args.no_csv:
        print(f"\nCSV rows appended to {os.path.relpath(records.write_rows(csv_path, rows))}")
    for part, path, title in [] if args.no_plot else plots:
        out = records.plot_rows(part, path, title)
        if out:
            print(f"plot written to {os.path.relpath(out)}")
    if failures:
        records.loud(f"{len(failures)} provider(s) disagree with {against}:\n!!! " + "\n!!! ".join(failures))
        return 1
    return 0
