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

COLUMNS = ("op", "shape", "dtype", "provider", "mode", "median_ms", "p20_ms", "p80_ms", "gbps", "roofline_gbps",
           "pct_roofline", "speedup_vs_eager", "speedup_vs_compile", "peak_mem_mb", "threads", "device",
           "torch_version", "git_rev", "date", "note")


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
    return {"threads": torch.get_num_threads(), "device": device_name(device), "torch_version": torch.__version__,
            "git_rev": git_rev(), "date": now_utc()}


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
    left empty (NaN) for hand-over rows (:func:`is_handover`), whose work differs from the baseline's."""
    base: Dict[Tuple[str, str, str, str], float] = {}
    for r in rows:
        if r["provider"] in ("eager", "compile") and _finite(r["median_ms"]):
            base[(r["shape"], r["mode"], r["dtype"], r["provider"])] = r["median_ms"]
    for r in rows:
        for prov in ("eager", "compile"):
            b = base.get((r["shape"], r["mode"], r["dtype"], prov))
            ok = b is not None and _finite(r["median_ms"]) and r["median_ms"] > 0 and not is_handover(r)
            r[f"speedup_vs_{prov}"] = b / r["median_ms"] if ok else float("nan")


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


def plot_rows(rows: Sequence[Mapping[str, Any]], path: str, title: str = "") -> Optional[str]:
    """Bar chart of median time (p20-p80 as error bars) per provider, one panel per (shape, mode) of
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
            lo = [max(0.0, m - sel[p]["p20_ms"]) if _finite(sel[p]["p20_ms"]) else 0.0 for p, m in zip(names, med)]
            hi = [max(0.0, sel[p]["p80_ms"] - m) if _finite(sel[p]["p80_ms"]) else 0.0 for p, m in zip(names, med)]
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

