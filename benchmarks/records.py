"""What a run records: paths, run metadata, rows (notes, speedups, hand-over rows), the CSV, the console
table, the plot.

Importing it puts the repository root on ``sys.path``: every bench script imports it (through
:mod:`contenders`) before ``from tests import ...``.
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import platform
import re
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from measure import MODES

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
PLOTS_DIR = os.path.join(BENCH_DIR, "plots")
QUICK_SUBDIR = "quick"  # --quick runs write under results/quick/ and plots/quick/ (git-ignored)

if REPO_ROOT not in sys.path:  # so `from tests import notebook` works from `python benchmarks/x.py`
    sys.path.insert(0, REPO_ROOT)

# A row of a --processes N run (N > 1) aggregates N fresh processes: median_ms, p20/p80, GB/s and the
# speedups are the medians of the per-process values (each speedup measured within its process), min_ms /
# max_ms and speedup_*_min / _max their extremes; a single-process row has processes 1 and those empty.
COLUMNS = ("op", "shape", "dtype", "provider", "mode", "median_ms", "p20_ms", "p80_ms", "min_ms", "max_ms", "gbps",
           "roofline_gbps", "pct_roofline", "speedup_vs_eager", "speedup_vs_compile", "speedup_vs_eager_min",
           "speedup_vs_eager_max", "speedup_vs_compile_min", "speedup_vs_compile_max", "peak_mem_mb", "processes",
           "threads", "device", "torch_version", "git_rev", "date", "note")


# --------------------------------------------------------------------------------------------- metadata

def sanitize(name: str) -> str:
    """A file-name-safe version of a device name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "unknown"


def device_name(device: torch.device) -> str:
    """The GPU name, or the CPU model (/proc/cpuinfo 'model name', else platform.processor())."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def git_rev() -> str:
    """Short HEAD revision, '+dirty' when tracked files have changes; 'no-commit' before the first commit.

    Changes under benchmarks/results/ and benchmarks/plots/ (what the benchmarks write) do not count.
    ``INPAINT_FAST_GIT_REV`` in the environment overrides it (a copy of the tree without ``.git``,
    e.g. on a lent GPU machine: pass the revision the copy was made from)."""
    if os.environ.get("INPAINT_FAST_GIT_REV"):
        return os.environ["INPAINT_FAST_GIT_REV"]
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    try:
        rev = git("rev-parse", "--short", "HEAD")
        if not rev:
            return "no-commit"
        outputs = [f":(exclude){os.path.relpath(d, REPO_ROOT)}" for d in (RESULTS_DIR, PLOTS_DIR)]
        return rev + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".", *outputs) else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def run_metadata(device: torch.device) -> Dict[str, Any]:
    """The columns that describe the run rather than the case."""
    return {"processes": 1, "threads": torch.get_num_threads(), "device": device_name(device),
            "torch_version": torch.__version__, "git_rev": git_rev(), "date": now_utc()}


# --------------------------------------------------------------------------------------------- rows

def loud(msg: str) -> None:
    """Prints ``msg`` in a ``!!!`` banner on stderr."""
    bar = "!" * 100
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


def join_notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# A fused op of ours computes its gradient in the forward and saves it; its backward only hands that
# gradient over (scaled by grad_output, in place; nothing done when it is 1). Timed alone, that backward
# is not the work eager's backward does (which computes the gradient), so such a row gets this note, no
# GB/s, % roofline, GFLOP/s or speedups, and no bar in the plots. Its forward and full rows are whole.
HANDOVER_NOTE = "hand-over: gradient computed in the forward"


def is_handover(row: Mapping[str, Any]) -> bool:
    """Whether ``row`` times a hand-over backward (its note carries :data:`HANDOVER_NOTE`)."""
    return HANDOVER_NOTE in str(row.get("note") or "")


def mark_handover(row: Dict[str, Any], detail: str = "") -> Dict[str, Any]:
    """Makes ``row`` a hand-over row: :data:`HANDOVER_NOTE` (then ``detail``) first in its note, and its
    throughput cells (gbps, pct_roofline, gflops, mm_gflops) and speedups empty; its times stay."""
    note = HANDOVER_NOTE + (f" {detail}" if detail else "")
    row["note"] = join_notes(note, row.get("note", ""))
    for key in ("gbps", "pct_roofline", "gflops", "mm_gflops", "speedup_vs_eager", "speedup_vs_compile"):
        row[key] = float("nan")
    return row


def fill_speedups(rows: List[Dict[str, Any]]) -> None:
    """Sets speedup_vs_eager / speedup_vs_compile (baseline median / row median, same shape+mode+dtype);
    left empty (NaN) for hand-over rows (:func:`is_handover`), whose work differs from the baseline's.
    Rows that aggregate several processes (:func:`aggregate_processes`) keep theirs."""
    single = [r for r in rows if r.get("processes", 1) == 1]
    if len(single) < len(rows):
        return fill_speedups(single)
    base: Dict[Tuple[str, str, str, str], float] = {}
    for r in rows:
        if r["provider"] in ("eager", "compile") and _finite(r["median_ms"]):
            base[(r["shape"], r["mode"], r["dtype"], r["provider"])] = r["median_ms"]
    for r in rows:
        for prov in ("eager", "compile"):
            b = base.get((r["shape"], r["mode"], r["dtype"], prov))
            ok = b is not None and _finite(r["median_ms"]) and r["median_ms"] > 0 and not is_handover(r)
            r[f"speedup_vs_{prov}"] = b / r["median_ms"] if ok else float("nan")


def aggregate_processes(runs: Sequence[Sequence[Dict[str, Any]]], meta: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One row per case (op, shape, dtype, provider, mode) from the rows of several processes' runs.

    Speedups are first computed within each process (per op, as :func:`fill_speedups`); then a case's
    numbers are the medians over the processes, with min_ms / max_ms of its times and speedup_*_min /
    _max of its ratios, and peak_mem_mb the largest. ``meta`` (the parent run's) gives the commit (``+dirty``
    when a process saw another) and the date; each process's own ``note`` is kept once."""
    def key(r: Mapping[str, Any]) -> Tuple[str, ...]:
        return tuple(str(r[k]) for k in ("op", "shape", "dtype", "provider", "mode"))

    cases: Dict[Tuple[str, ...], List[Dict[str, Any]]] = {}
    for run in runs:
        for op in dict.fromkeys(r["op"] for r in run):
            fill_speedups([r for r in run if r["op"] == op])
        for r in run:
            cases.setdefault(key(r), []).append(r)
    out = []
    for rows in cases.values():
        agg = dict(rows[0])
        for k, v in rows[0].items():
            values = [r.get(k) for r in rows]
            if isinstance(v, float) and all(isinstance(x, (int, float)) for x in values):
                finite = [x for x in values if _finite(x)]
                agg[k] = statistics.median(finite) if finite else float("nan")
        times = [r["median_ms"] for r in rows if _finite(r.get("median_ms"))]
        agg["min_ms"], agg["max_ms"] = (min(times), max(times)) if times else (float("nan"), float("nan"))
        for prov in ("eager", "compile"):
            ratios = [r[f"speedup_vs_{prov}"] for r in rows if _finite(r.get(f"speedup_vs_{prov}"))]
            agg[f"speedup_vs_{prov}_min"] = min(ratios) if ratios else float("nan")
            agg[f"speedup_vs_{prov}_max"] = max(ratios) if ratios else float("nan")
        peaks = [r["peak_mem_mb"] for r in rows if _finite(r.get("peak_mem_mb"))]
        agg["peak_mem_mb"] = max(peaks) if peaks else float("nan")
        agg["note"] = join_notes(*dict.fromkeys(str(r.get("note") or "") for r in rows))
        rev = meta["git_rev"]  # a process that saw the tree changed makes the run dirty
        dirty = any(r.get("git_rev") != rev for r in rows) and not rev.endswith("+dirty")
        agg.update(git_rev=rev + ("+dirty" if dirty else ""), date=meta["date"], processes=len(rows))
        out.append(agg)
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.{digits}g}"
    return "" if v is None else str(v)


def write_rows(path: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Appends ``rows`` to the CSV at ``path`` (header written when the file is new); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if tuple(header) != COLUMNS:
            raise ValueError(f"{path} has columns {header}, expected {list(COLUMNS)}; move it away or pass --out")
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({c: _fmt(r.get(c), 6) for c in COLUMNS})
    return path


TABLE_COLS = [("shape", "shape", 0), ("mode", "mode", 0), ("provider", "provider", 0), ("median_ms", "median ms", 4),
              ("p20_ms", "p20", 4), ("p80_ms", "p80", 4), ("gbps", "GB/s", 3), ("pct_roofline", "%copy", 3),
              ("speedup_vs_eager", "x eager", 3), ("speedup_vs_compile", "x compile", 3),
              ("peak_mem_mb", "peak MB", 4), ("note", "note", 0)]
# With --processes N: each process's extremes beside the medians.
PROCESS_COLS = TABLE_COLS[:4] + [("min_ms", "min ms", 4), ("max_ms", "max ms", 4)] + TABLE_COLS[6:10] + \
    [("speedup_vs_compile_min", "min x compile", 3), ("speedup_vs_compile_max", "max x compile", 3),
     ("processes", "processes", 0)] + TABLE_COLS[10:]


def format_table(rows: Sequence[Mapping[str, Any]], cols: Sequence[Tuple[str, str, int]] = TABLE_COLS,
                 left: int = 3) -> str:
    """A readable fixed-width table of the rows: ``cols`` are (key, heading, significant digits or 0 for
    text); the first ``left`` columns and a note are left-aligned, the rest right-aligned."""
    table = [[h for _, h, _ in cols]]
    for r in rows:
        table.append([_fmt(r.get(k), d) if d else _fmt(r.get(k)) for k, _, d in cols])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i < left or cols[i][0] == "note" else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- plots

# The modes drawn: 'backward' is left out of every plot. Our fused ops' backward rows are hand-overs
# (HANDOVER_NOTE): beside eager's real backward they would put unlike work in one chart. All modes stay in the CSV.
PLOT_MODES = tuple(m for m in MODES if m != "backward")


def plotted(rows: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The rows a plot draws: those of :data:`PLOT_MODES` (no 'backward') that are no hand-over rows."""
    return [r for r in rows if r["mode"] in PLOT_MODES and not is_handover(r)]


def error_bar(row: Mapping[str, Any], upper: bool = False) -> Any:
    """Where a plot's error bar ends: p20 / p80 of the run, or for a row of several processes the
    fastest / slowest process's median."""
    if row.get("processes", 1) > 1 and _finite(row.get("min_ms")):
        return row["max_ms" if upper else "min_ms"]
    return row["p80_ms" if upper else "p20_ms"]


def plot_rows(rows: Sequence[Mapping[str, Any]], path: str, title: str = "") -> Optional[str]:
    """Bar chart of median time (p20-p80 as error bars; min-max over the processes for a row of several:
    :func:`error_bar`) per provider, one panel per (shape, mode) of
    :data:`PLOT_MODES` (forward, full: no backward panel, and no hand-over row in any panel: :func:`plotted`);
    PNG. Returns None (and writes nothing) when no row is left to draw."""
    rows = plotted(rows)
    if not rows:
        print(f"no forward or full rows to plot: {path} not written", file=sys.stderr)
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written", file=sys.stderr)
        return None
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    modes = [m for m in PLOT_MODES if any(r["mode"] == m for r in rows)]
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    colors = {p: plt.cm.tab10(i % 10) for i, p in enumerate(providers)}
    fig, axes = plt.subplots(len(shapes), len(modes), figsize=(4.2 * len(modes), 3.2 * len(shapes)), squeeze=False)
    for i, shape in enumerate(shapes):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            sel = {r["provider"]: r for r in rows if r["shape"] == shape and r["mode"] == mode}
            names = [p for p in providers if p in sel]
            med = [sel[p]["median_ms"] if _finite(sel[p]["median_ms"]) else 0.0 for p in names]
            low, high = [error_bar(sel[p]) for p in names], [error_bar(sel[p], upper=True) for p in names]
            lo = [max(0.0, m - v) if _finite(v) else 0.0 for v, m in zip(low, med)]
            hi = [max(0.0, v - m) if _finite(v) else 0.0 for v, m in zip(high, med)]
            bars = ax.bar(names, med, yerr=[lo, hi], capsize=3, color=[colors[p] for p in names])
            for b, m, h in zip(bars, med, hi):
                label = f"{m:.3g}" if m > 0 else "n/a"
                ax.annotate(label, (b.get_x() + b.get_width() / 2, m + h), ha="center", va="bottom", fontsize=8,
                            xytext=(0, 3), textcoords="offset points")
            ax.set_title(f"{shape}  {mode}", fontsize=9)
            ax.set_ylabel("median ms" if j == 0 else "")
            ax.tick_params(axis="x", labelsize=8)
            ax.margins(y=0.15)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

