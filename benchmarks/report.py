"""Writes the README's performance table from the committed benchmark CSVs.

    python benchmarks/report.py            # rewrite the table between the markers in README.md
    python benchmarks/report.py --print    # only print it

For every CSV in benchmarks/results/ (one per device) it takes, per (op, shape, dtype, mode), the
rows of the newest run (the latest ``date``) and shows our compiled backend(s) in forward+backward
('full'; the Gram and RePaint's blend: forward) against the eager baseline and torch.compile of it:
median time, speedups measured in that same run, the share of the measured copy roofline (of a measured
``torch.mm``'s GFLOP/s for the FLOP-bound style ops, marked "(mm)") and peak memory; a row measured in N
fresh processes (``--processes N``, column *processes*) shows its time and ratios as ``median (min–max)``
over the processes. Every mode is
in the CSV; 'backward' rows never reach the table (our fused ops' backward is a hand-over of a gradient
computed in the forward: the CSV notes it on those rows).

What "eager" is differs per op, and the column "eager is" names it (the legend under the tables says
what each name means): the notebook's own function for the losses it defines; for ``q_sample`` and
``repaint_blend``, which the notebook writes inline, ``inpaint_fast.reference``'s formulas; for
``masked_tv[hole_dilated]`` the notebook's ``tv_loss`` on a weight dilated by ``inpaint_fast.reference``
(the notebook has no dilated region). The whole-step rows of bench_composite.py (``pconv_step``,
``notebook_composite_step``) are measured against their own baselines, as written: "× eager" is
against ``plain`` (naoto0804's PConv loss in plain PyTorch) and ``notebook`` (the notebook's composite)
respectively, and two rows of ours are shown: ``ours`` (its defaults: channels_last VGG, micro-batched
VGG calls) and ``ours_nchw_batch`` (ours with the baseline's settings: the like-for-like ratio).
The host-overhead rows of bench_overhead.py (``overhead[<loss>]``) have their own README section and
the GPU time-split rows of bench_time_split.py (``split[<loss>]``) their own table there: both are left out.

Trust: every row says which commit (the CSV's ``git_rev``) and when (``date``, UTC) it was measured;
when all rows of a device share one commit (or one date) the table's header line says it once instead
of a column. A row measured at an older commit than the newest one of all the tables is marked
"(older: N commits)" in its commit cell (or in its table's header line, when the table's rows share
that commit); the order comes from ``git`` where the commit is known here, else from the run's date.
The column "check" says whether the row's values matched its baseline before timing: ``ok``,
``MISMATCH vs <baseline>`` or ``failed: ...``; rows that mismatched or failed are shown (baselines'
too, e.g. a failed torch.compile), never dropped. Rows of a backend skipped for want of a
kernel (no time, note ``skipped: ...``) are left out.

A GPU's CSV (its device name is a GPU's, e.g. "NVIDIA H100 80GB HBM3") gets two more columns: the
``triton.testing.do_bench`` median from the row's note, and whether the row meets issue 4's target:
forward+backward of reconstruction_loss and masked_tv at >= 85 % of the measured copy bandwidth and
>= 1.3x torch.compile; style_distance >= 1.5x eager (cuBLAS bmm at the same precision).
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import glob
import math
import os
import re
import subprocess
from collections import defaultdict
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- perf-table:start -->", "<!-- perf-table:end -->"
# The baselines (bench_composite's too): shown only when their check is not ok.
BASELINES = ("eager", "compile", "reference", "plain", "plain_compile", "notebook")
GPU_NAME = re.compile(r"NVIDIA|Tesla|Quadro|GeForce|Radeon|Instinct|\bGPU\b|\b[AHBL]\d{2,3}\b")
MIN_PCT_COPY, MIN_X_COMPILE, MIN_X_EAGER_STYLE = 85.0, 1.3, 1.5  # issue 4's GPU targets
HANDOVER_NOTE = "hand-over: gradient computed in the forward"  # records.HANDOVER_NOTE (this file imports no torch)


# Ops without a gradient path of their own: their table rows are the forward ones.
FORWARD_ONLY = ("gram", "repaint_blend")

# What "eager" (the "× eager" column's baseline) is, per op: a short name for the table, explained in LEGEND.
EAGER_IS = {
    "reconstruction_loss": "notebook",
    "masked_tv[hole]": "notebook",
    "masked_tv[hole_dilated]": "notebook + reference dilate",
    "frequency_loss": "notebook",
    "style_distance": "notebook",
    "style_loss[identity]": "notebook",
    "gram": "notebook",
    "q_sample": "reference",
    "repaint_blend": "reference",
    "pconv_step": "naoto0804 (plain PyTorch)",
    "notebook_composite_step": "notebook",
}
LEGEND = {
    "notebook": "the notebook's own function (`tests/notebook.py`, verbatim): `reconstruction_loss`, `tv_loss`, "
                "`frequency_loss`, `gram_matrix` and the body of `style_loss`, `composite_loss` (VGG run NCHW, "
                "the whole batch per call, as written)",
    "notebook + reference dilate": "the notebook's `tv_loss` on the weight "
                                   "`inpaint_fast.reference.tv.dilate(1 - mask)` (the notebook has no dilated region)",
    "reference": "`inpaint_fast.reference.diffusion.q_sample` in plain PyTorch (the notebook writes q_sample inline, "
                 "not as a function); `repaint_blend`: `m * x_t + (1 - m) * x_pred` on its result",
    "naoto0804 (plain PyTorch)": "naoto0804/pytorch-inpainting-with-partial-conv's `InpaintingLoss` as written "
                                 "(`tests/naoto_pconv.py`; VGG run NCHW, the whole batch per call)",
}
PROVIDER_LEGEND = (
    "`ours` in the whole-step rows runs with its defaults (VGG on a channels_last copy of the input, on CPU "
    "micro-batched VGG calls of about 256×256 pixels); `ours_nchw_batch` is the same loss with the baseline's "
    "settings (NCHW, the whole batch per VGG call): its ratio is the like-for-like one.")


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


def check(row: Dict[str, str]) -> str:
    """'ok', 'MISMATCH vs <baseline>' (its value or gradient differed from the baseline's before timing; a
    provider that raised then is 'failed: raised ...') or 'failed: ...' (e.g. 'failed: compile failed')."""
    note = row.get("note") or ""
    m = re.search(r"MISMATCH vs (\S+?):", note)
    if m:
        raised = re.search(r"\braised (\w+)", note)
        return f"failed: raised {raised.group(1)}" if raised else f"MISMATCH vs {m.group(1)}"
    if "MISMATCH" in note:
        return "MISMATCH"
    if "failed" in note:
        part = next(p for p in note.split("; ") if "failed" in p)
        return "failed: " + part.split(":", 1)[0].strip()
    return "ok"


def failed(row: Dict[str, str]) -> bool:
    """Whether the row's check is not ok (:func:`check`)."""
    return check(row) != "ok"


def number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def timed(row: Dict[str, str]) -> bool:
    """A row with a finite median time (a skipped provider has none)."""
    return math.isfinite(number(row.get("median_ms")))


def skipped(row: Dict[str, str]) -> bool:
    return (row.get("note") or "").startswith("skipped")


def is_handover(row: Dict[str, str]) -> bool:
    return HANDOVER_NOTE in (row.get("note") or "")


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
    if failed(row):
        return "no (check failed)"
    return "yes" if not misses else "no (" + ", ".join(misses) + ")"


def fmt(value: str, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if v != v:  # NaN
        return "–"
    return f"{v:.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"


def processes(row: Dict[str, str]) -> str:
    """How many fresh processes the row aggregates (harness ``--processes``); '1' for rows of older CSVs."""
    return row.get("processes") or "1"


def with_range(row: Dict[str, str], median: str, low: str, high: str) -> str:
    """The ``median`` cell, followed by ``(low–high)`` where the row aggregates several processes."""
    cell = fmt(row.get(median))
    if processes(row) == "1" or not math.isfinite(number(row.get(low))):
        return cell
    return f"{cell} ({fmt(row.get(low))}–{fmt(row.get(high))})"


MULTI_PROCESS_LEGEND = (
    "A row with *processes* N > 1 was measured in N fresh processes one after another (`--processes N`): its time "
    "and ratios are the medians of the N per-process values (each ratio measured within its process), with the "
    "smallest and largest of them in brackets.")


# --------------------------------------------------------------------------------------------- commits

def _git(*args: str) -> Optional[str]:
    """``git <args>`` in the repository, stdout stripped; None when git or the repository is not there or fails."""
    try:
        res = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def rev_of(row: Dict[str, str]) -> str:
    """The row's ``git_rev`` ('unknown' where the CSV has none)."""
    return row.get("git_rev") or "unknown"


def _commit(rev: str) -> str:
    """The commit of a ``git_rev`` value (``+dirty`` dropped)."""
    return rev.split("+", 1)[0]


@lru_cache(maxsize=None)
def commit_time(rev: str) -> Optional[int]:
    """Committer time (Unix seconds) of ``rev``'s commit, None where git does not know it here."""
    out = _git("show", "-s", "--format=%ct", f"{_commit(rev)}^{{commit}}") if re.fullmatch(r"[0-9a-f]{4,40}",
                                                                                         _commit(rev)) else None
    try:
        return int(out.splitlines()[-1]) if out else None
    except ValueError:
        return None


@lru_cache(maxsize=None)
def commits_between(old: str, new: str) -> Optional[int]:
    """How many commits ``new`` has that ``old`` has not (``git rev-list --count old..new``), None if unknown."""
    if commit_time(old) is None or commit_time(new) is None:
        return None
    out = _git("rev-list", "--count", f"{_commit(old)}..{_commit(new)}")
    return int(out) if out and out.isdigit() else None


def _epoch(date: str) -> float:
    try:
        return _dt.datetime.fromisoformat(date).timestamp()
    except ValueError:
        return math.nan


def commit_labels(rows: Sequence[Dict[str, str]]) -> Tuple[Dict[str, str], str]:
    """(``git_rev`` -> its cell, the newest ``git_rev``). A cell is the rev, and for a commit older than the
    table's newest ``**(older: N commits)**`` (``**(older)**`` when git cannot count). Commits are ordered by
    their commit time where git knows them, else by the earliest date a row was measured at them."""
    first_run: Dict[str, float] = {}
    for r in rows:
        rev = rev_of(r)
        first_run[rev] = min(first_run.get(rev, math.inf), _epoch(r.get("date") or ""))

    def key(rev: str) -> float:
        t = commit_time(rev)
        return float(t) if t is not None else first_run[rev]
    newest = max(first_run, key=lambda rev: (key(rev), first_run[rev]))
    labels = {}
    for rev in first_run:
        if _commit(rev) == _commit(newest) or not key(rev) < key(newest):
            labels[rev] = rev
        else:
            n = commits_between(rev, newest)
            labels[rev] = f"{rev} **(older{f': {n} commits' if n else ''})**"
    return labels, newest


def _ticked(label: str) -> str:
    """A commit cell with the rev in backticks: ``abc1234`` -> `` `abc1234` ``, the older mark kept."""
    rev, _, rest = label.partition(" ")
    return f"`{rev}`" + (f" {rest}" if rest else "")


def when(date: str) -> str:
    """'2026-11-24 13:03' from the CSV's ISO date (UTC)."""
    return date.replace("T", " ")[:16] if date else "–"


def _distinct(rows: Sequence[Dict[str, str]], key: str) -> List[str]:
    return sorted({r.get(key) or "?" for r in rows})


# --------------------------------------------------------------------------------------------- table

def shown(row: Dict[str, str]) -> bool:
    """Whether a (newest-run) row goes into the table: full mode (forward for FORWARD_ONLY ops), not the
    overhead or time-split rows, no hand-over or skipped row; our providers always, a baseline only when its
    check failed; a row without a time only when its check failed."""
    if row["op"].startswith(("overhead[", "split[")) or is_handover(row) or skipped(row):
        return False
    if not (row["mode"] == "full" or row["op"] in FORWARD_ONLY):
        return False
    bad = failed(row)
    return (row["provider"] not in BASELINES or bad) and (timed(row) or bad)


def table(paths: List[str]) -> str:
    """The README's tables, one per CSV of ``paths`` that has rows to show (:func:`shown`), and the legend.

    Commits are compared across all the tables: a row (or a table, when its rows share one commit) measured
    at an older commit than the newest of any table is marked older."""
    tables = [(path, [r for r in latest_rows(path) if shown(r)]) for path in sorted(paths)]
    tables = [(path, rows) for path, rows in tables if rows]
    if not tables:
        return "\n"
    labels, newest = commit_labels([r for _, rows in tables for r in rows])
    lines = []
    stale = [(path, rows) for path, rows in tables if not any(rev_of(r) == newest for r in rows)]
    if stale and len(stale) < len(tables):  # a device not re-run at the newest commit: named, not tabled
        tables = [(path, rows) for path, rows in tables if (path, rows) not in stale]
        lines.append("Not re-run at `" + newest + "` (their rows stay in the CSVs): " + "; ".join(
            f"{rows[0]['device']} (`{os.path.relpath(path, ROOT)}`, newest rows at "
            f"{', '.join(sorted({rev_of(r) for r in rows}))})" for path, rows in stale) + ".\n")
    if any(labels[rev_of(r)] != rev_of(r) for _, rows in tables for r in rows):
        lines.append(f"Newest commit measured: `{newest}`; a row or table measured at an older commit is marked "
                     "**(older: N commits)**.\n")
    eager_names: List[str] = []
    composite = multi = False
    for path, rows in tables:
        first = rows[0]
        gpu = is_gpu(first["device"])
        where = "torch " + " / ".join(_distinct(rows, "torch_version"))
        if not gpu:
            where += ", " + " / ".join(_distinct(rows, "threads")) + " threads"
        revs, dates = sorted({rev_of(r) for r in rows}), _distinct(rows, "date")
        if len(revs) == 1:
            where += f", measured at commit {_ticked(labels[revs[0]])}"
        else:
            where += f", rows from {len(revs)} commits"
        if len(dates) == 1:
            where += f" on {when(dates[0])} UTC"
        lines.append(f"**{first['device']}**, {where} (`{os.path.relpath(path, ROOT)}`):\n")
        extra = (["commit"] if len(revs) > 1 else []) + (["measured (UTC)"] if len(dates) > 1 else [])
        head = ["op", "shape", "dtype", "mode", "provider", "ms"] + (["do_bench ms"] if gpu else []) + \
               ["× eager", "× compile", "processes", "% roofline", "peak MB"] + (["issue-4 target"] if gpu else []) + \
               ["eager is", "check"] + extra
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        order = {"full": 0, "forward": 1, "backward": 2}
        for r in sorted(rows, key=lambda r: (r["op"], r["shape"], r["dtype"], order.get(r["mode"], 3), r["provider"])):
            eager = EAGER_IS.get(r["op"], "see the op's script")
            if eager not in eager_names:
                eager_names.append(eager)
            composite = composite or r["op"] in ("pconv_step", "notebook_composite_step")
            multi = multi or processes(r) != "1"
            cells = [r["op"], r["shape"], r["dtype"], r["mode"], r["provider"], with_range(r, "median_ms", "min_ms",
                                                                                          "max_ms")]
            if gpu:
                cells.append(fmt(do_bench_ms(r)))
            cells += [with_range(r, *(f"speedup_vs_{b}{end}" for end in ("", "_min", "_max")))
                      for b in ("eager", "compile")]
            cells += [processes(r),
                      fmt(r["pct_roofline"], 2) + (" (mm)" if "gflops=" in (r.get("note") or "") else ""),
                      fmt(r["peak_mem_mb"])]
            if gpu:
                cells.append(target(r))
            cells += [eager, check(r)]
            if len(revs) > 1:
                cells.append(labels[rev_of(r)])
            if len(dates) > 1:
                cells.append(when(r.get("date") or ""))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if multi:
        lines.append(MULTI_PROCESS_LEGEND + "\n")
    if eager_names:
        lines.append("\"eager is\": " + "; ".join(f"*{name}*: {LEGEND[name]}" for name in eager_names
                                                   if name in LEGEND) + "." + (" " + PROVIDER_LEGEND if composite
                                                                               else ""))
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
