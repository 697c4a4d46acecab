"""Writes the README's performance table from the committed benchmark CSVs.

    python benchmarks/report.py            # rewrite the table between the markers in README.md
    python benchmarks/report.py --print    # only print it

For every CSV in benchmarks/results/ (one per device) it takes, per (op, shape, dtype, mode), the
rows of the newest run (the latest ``date``) and shows our compiled backend(s) in forward+backward
('full'; the Gram alone: forward) against eager and torch.compile of the seed's code: median time,
speedups measured in that same run, the share of the measured copy roofline (of a measured
``torch.mm``'s GFLOP/s for the FLOP-bound style ops, marked "(mm)") and peak memory. Every mode is
in the CSV.
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
from collections import defaultdict
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
BASELINES = ("eager", "compile", "reference")


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


def fmt(value: str, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if v != v:  # NaN
        return "–"
    return f"{v:.{digits}g}"


def table(paths: List[str]) -> str:
    lines = []
    for path in sorted(paths):
        rows = [r for r in latest_rows(path) if r["provider"] not in BASELINES and not failed(r)
                and (r["mode"] == "full" or r["op"] == "gram")]
        if not rows:
            continue
        first = rows[0]
        lines.append(f"**{first['device']}**, torch {first['torch_version']}, {first['threads']} threads "
                     f"(`{os.path.relpath(path, ROOT)}`):\n")
        lines.append("| op | shape | dtype | mode | ours | ms | × eager | × compile | % roofline | peak MB |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        order = {"full": 0, "forward": 1, "backward": 2}
        for r in sorted(rows, key=lambda r: (r["op"], r["shape"], r["dtype"], order.get(r["mode"], 3))):
            lines.append(f"| {r['op']} | {r['shape']} | {r['dtype']} | {r['mode']} | {r['provider']} | "
                         f"{fmt(r['median_ms'])} | {fmt(r['speedup_vs_eager'])} | {fmt(r['speedup_vs_compile'])} | "
                         f"{fmt(r['pct_roofline'], 2)}{' (mm)' if 'gflops=' in (r.get('note') or '') else ''} | "
                         f"{fmt(r['peak_mem_mb'])} |")
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
