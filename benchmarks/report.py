"""Writes the README's performance table from the committed benchmark CSVs.

    python benchmarks/report.py            # rewrite the table between the markers in README.md
    python benchmarks/report.py --print    # only print it

For every CSV in benchmarks/results/ (one per device) it takes, per (op, shape, dtype, mode), the
rows of the newest run (the latest ``date``) and shows our compiled backend(s) in forward+backward
('full'; the Gram and RePaint's blend: forward) against eager and torch.compile of the notebook's code: median time,
speedups measured in that same run, the share of the measured copy roofline (of a measured
``torch.mm``'s GFLOP/s for the FLOP-bound style ops, marked "(mm)") and peak memory. Every mode is
in the CSV. The whole-step rows of bench_composite.py (``pconv_step``, ``notebook_composite_step``) are
measured against their own baselines: "× eager" is against ``plain`` (a plain-PyTorch PConv loss)
and ``notebook`` (the notebook's composite) respectively. The host-overhead rows of bench_overhead.py
(``overhead[<loss>]``) have their own README section and the GPU time-split rows of bench_time_split.py
(``split[<loss>]``) their own table there: both are left out. Rows without a time (a backend skipped for want of a kernel) and failed rows are left out.

A GPU's CSV (its device name is a GPU's, e.g. "NVIDIA H100 80GB HBM3") gets two more columns: the
``triton.testing.do_bench`` median from the row's note, and whether the row meets issue 4's target:
forward+backward of reconstruction_loss and masked_tv at >= 85 % of the measured copy bandwidth and
>= 1.3x torch.compile; style_distance >= 1.5x eager (cuBLAS bmm at the same precision).
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import re
from collections import defaultdict
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
BASELINES = ("eager", "compile", "reference", "plain", "plain_compile", "notebook")  # bench_composite's baselines
GPU_NAME = re.compile(r"NVIDIA|Tesla|Quadro|GeForce|Radeon|Instinct|\bGPU\b|\b[AHBL]\d{2,3}\b")
MIN_PCT_COPY, MIN_X_COMPILE, MIN_X_EAGER_STYLE = 85.0, 1.3, 1.5  # issue 4's GPU targets


# Ops without a gradient path of their own: their table rows are the forward ones.
FORWARD_ONLY = ("gram", "repaint_blend")

def latest_rows(path: str) -> List[Dict[str, str]]:
    """The rows of the newest run of each (op, shape, dtype, mode) in one CSV."""
    groups: Dict[tuple, List[Dict[str, str]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            groups[(row["op"], row["shape"], row["dtype"], row["mode"])].append(row)
    out = []
    for rows in groups.values():
        newest = max(r["date"] for r in rows)
        out += [r for r in rows if r["date"] == newest]
    return out


def failed(row: Dict[str, str]) -> bool:
    note = row.get("note") or ""
    return "MISMATCH" in note or "failed" in note


def number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def timed(row: Dict[str, str]) -> bool:
    """A row with a finite median time (a skipped provider has none)."""
    return math.isfinite(number(row.get("median_ms")))


def is_gpu(device: str) -> bool:
    return bool(GPU_NAME.search(device or ""))


def do_bench_ms(row: Dict[str, str]) -> str:
    """The do_bench median of the row's note (``do_bench_ms=<median>[p20,p80]``), as text, or ''."""
    m = re.search(r"do_bench_ms=([0-9.eE+-]+)", row.get("note") or "")
    return m.group(1) if m else ""


def target(row: Dict[str, str]) -> str:
    """'yes' / 'no (...)' against issue 4's GPU target for the row's op, '' where it sets none."""
    if row["mode"] != "full":
        return ""
    if row["op"] == "reconstruction_loss" or row["op"].startswith("masked_tv"):
        pct, xc = number(row["pct_roofline"]), number(row["speedup_vs_compile"])
        misses = ([f"{fmt(row['pct_roofline'], 2)} % < {MIN_PCT_COPY:g} %"] if not pct >= MIN_PCT_COPY else []) + \
                 ([f"{fmt(row['speedup_vs_compile'])}x < {MIN_X_COMPILE:g}x compile"] if not xc >= MIN_X_COMPILE else [])
    elif row["op"] == "style_distance":
        xe = number(row["speedup_vs_eager"])
        misses = [f"{fmt(row['speedup_vs_eager'])}x < {MIN_X_EAGER_STYLE:g}x eager"] if not xe >= MIN_X_EAGER_STYLE else []
    else:
        return ""
    return "yes" if not misses else "no (" + ", ".join(misses) + ")"


def fmt(value: str, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if v != v:  # NaN
        return "–"
    return f"{v:.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"


def table(paths: List[str]) -> str:
    lines = []
    for path in sorted(paths):
        rows = [r for r in latest_rows(path) if r["provider"] not in BASELINES and not failed(r) and timed(r)
                and (r["mode"] == "full" or r["op"] in FORWARD_ONLY) and not r["op"].startswith(("overhead[", "split["))]
        if not rows:
            continue
        first = rows[0]
        gpu = is_gpu(first["device"])
        where = f"torch {first['torch_version']}" + ("" if gpu else f", {first['threads']} threads")
        lines.append(f"**{first['device']}**, {where} (`{os.path.relpath(path, ROOT)}`):\n")
        if gpu:
            lines.append("| op | shape | dtype | mode | ours | ms | do_bench ms | × eager | × compile | % roofline "
                         "| peak MB | issue-4 target |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        else:
            lines.append("| op | shape | dtype | mode | ours | ms | × eager | × compile | % roofline | peak MB |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|")
        order = {"full": 0, "forward": 1, "backward": 2}
        for r in sorted(rows, key=lambda r: (r["op"], r["shape"], r["dtype"], order.get(r["mode"], 3), r["provider"])):
            cells = [r["op"], r["shape"], r["dtype"], r["mode"], r["provider"], fmt(r["median_ms"])]
            if gpu:
                cells.append(fmt(do_bench_ms(r)))
            cells += [fmt(r["speedup_vs_eager"]), fmt(r["speedup_vs_compile"]),
                      fmt(r["pct_roofline"], 2) + (" (mm)" if "gflops=" in (r.get("note") or "") else ""),
                      fmt(r["peak_mem_mb"])]
            if gpu:
                cells.append(target(r))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the table instead of writing README.md")
    args = parser.parse_args(argv)
    text = table(glob.glob(os.path.join(RESULTS, "*.csv")))
    if args.print:
        print(text)
        return 0
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(README, "w", encoding="utf-8") as f:
        f.write(f"{head}{START}\n{text}{END}{tail}")
    print(f"README.md performance table rewritten from {len(glob.glob(os.path.join(RESULTS, '*.csv')))} CSV file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
