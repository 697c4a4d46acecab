"""Where a GPU training step's loss time goes: wall time, summed kernel time and CUDA-graph replay time.

For each public loss, forward + backward (``loss.backward()``, the gradient w.r.t. the prediction), per
provider: ``eager`` (the code of *Loss Functions for Image Inpainting*, ``tests/notebook.py``),
``compile`` (``torch.compile`` of that code, ``dynamic=False``) and our public function on each GPU backend
built here (``cuda``, ``triton``: ``inpaint_fast.use_backend``). Three numbers per provider, each a row of
the CSV (op ``split[<loss>]``) told apart by ``mode``:

- ``full``: wall time of one call, CUDA events around it on an idle GPU (host launch time included);
- ``full:kernels``: the device time of its kernels (and memcpy/memset), summed from ``torch.profiler``
  (CUPTI) over a few calls; ``pct_roofline`` is then the copy roofline's share of it (bytes: the inputs
  read once and the gradient written once, at the bandwidth of a ``copy_`` measured in the same run);
- ``full:graph``: one replay of the call captured in a CUDA graph (``torch.cuda.graph``): the host is gone.

Cases (issue 14): reconstruction_loss, total_variation (hole) and frequency_loss at 8x3x512x512 and
16x3x1024x1024, style distance (``inpaint_fast.style_distance``) at 8x256x128x128; ``--dtype`` float32 or
bfloat16 (the notebook's frequency loss then runs on float32 casts: torch.fft has no bfloat16). Values and
gradients are checked against eager first; below float32 against the notebook's code run in float64 (eager's
own deviation is noted on its row). On a CPU (``--quick`` smoke runs) only the wall time is measured.
Run: ``python benchmarks/bench_time_split.py --device cuda --dtype float32``.
"""
from __future__ import annotations

import math
import os
import statistics
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import harness  # noqa: E402
import measure  # noqa: E402
import records  # noqa: E402

import torch  # noqa: E402

import inpaint_fast as IF  # noqa: E402
from tests import notebook  # noqa: E402

OP = "split"
IMAGE_SHAPES = [(16, 3, 1024, 1024), (8, 3, 512, 512)]
STYLE_SHAPE = (8, 256, 128, 128)
QUICK = [(2, 3, 16, 16), (2, 8, 8, 8)]
PROFILED_CALLS = 5
LOW_PRECISION = (torch.float16, torch.bfloat16)
STYLE_RTOL = {**contenders.RTOL, torch.float16: 2e-2, torch.bfloat16: 3e-2}  # as bench_style_distance.py
FUSED_OP = {"reconstruction_loss": "masked_error", "total_variation": "masked_tv", "frequency_loss": "spectral_l1",
            "style_distance": "style_distance"}  # the op behind each loss (whose backends are timed)


def cases(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Dict[str, Tuple[Callable, Callable, tuple]]:
    """loss name -> (the notebook's code, ours, inputs), inputs[0] the prediction (requires grad). Image losses for a
    3-channel shape, the style distance for a feature shape (more than 4 channels)."""
    g = torch.Generator().manual_seed(0)
    n, c, h, w = shape
    pred = torch.rand(shape, generator=g).to(device, dtype).requires_grad_()
    target = torch.rand(shape, generator=g).to(device, dtype)
    if c > 4:  # post-ReLU-like features, as VGG's (and bench_style_distance.py's)
        pred = torch.randn(shape, generator=g).relu_().to(device, dtype).requires_grad_()
        target = torch.randn(shape, generator=g).relu_().to(device, dtype)
        return {"style_distance": (lambda p, f: (notebook.gram_matrix(p)
                                                 - notebook.gram_matrix(f.detach())).abs().mean(),
                                   lambda p, f: IF.style_distance(p, f), (pred, target))}
    mask = contenders.box_mask(n, h, w, dtype, device)
    return {
        "reconstruction_loss": (lambda p, x, m: notebook.reconstruction_loss(x, p, m),
                                lambda p, x, m: IF.reconstruction_loss(p, x, mask=m), (pred, target, mask)),
        "total_variation": (lambda p, m: notebook.tv_loss(p, 1 - m), lambda p, m: IF.total_variation(p, mask=m),
                            (pred, mask)),
        "frequency_loss": (lambda p, x: notebook.frequency_loss(x, p), lambda p, x: IF.frequency_loss(p, x),
                           (pred, target)),
    }


def runnable(name: str, notebook_fn: Callable, dtype: torch.dtype) -> Callable:
    """The notebook's code as timed: below float32 its frequency loss runs on float32 casts of the images
    (torch.fft has no bfloat16), as a user of that code has to write it (and as ours transforms them)."""
    if name == "frequency_loss" and dtype in LOW_PRECISION:
        return lambda p, x: notebook_fn(p.float(), x.float()).to(dtype)
    return notebook_fn


def check(name: str, notebook_fn: Callable, providers: Dict, notes: Dict, inputs: Sequence, args, failures: List[str],
          where: str) -> None:
    """Every provider's value and gradient against eager's; below float32 against the notebook's code run in
    float64 (eager's own rounding is then noted on its row, not counted as a failure)."""
    kw = {"rtols": STYLE_RTOL, "elementwise": True} if name == "style_distance" else {}
    if args.torch_dtype not in LOW_PRECISION:
        contenders.check_providers(providers, notes, inputs, args, failures, where, **kw)
        return
    exact = [t.detach().double().requires_grad_(t.requires_grad) if t.is_floating_point() else t for t in inputs]
    ref = contenders.value_and_grad(notebook_fn, exact, exact[0])

    def differs(_name: str, fn: Callable) -> str:
        return contenders.mismatch(fn, ref, inputs, inputs[0], args.torch_dtype, **kw)
    eager_error = differs("eager", providers["eager"])
    if eager_error:
        notes["eager"] = f"vs float64: {eager_error}"
    contenders.check_each(providers, notes, failures, where, differs, "(vs float64) ")


def moved_bytes(inputs: Sequence) -> int:
    """The roofline's traffic: every tensor input read once, the prediction's gradient written once."""
    return sum(measure.nbytes(t) for t in inputs if isinstance(t, torch.Tensor)) + measure.nbytes(inputs[0])


def step(fn: Callable, inputs: Sequence) -> Callable[[], None]:
    """One training step's share of the loss: forward, then ``backward()`` into a fresh ``.grad``."""
    pred = inputs[0]

    def run():
        pred.grad = None
        fn(*inputs).backward()
    return run


def wall_ms(run: Callable[[], None], device: torch.device, repeats: int, warmup: int) -> List[float]:
    """Per-call times: CUDA events around each call on an idle GPU (perf_counter on a CPU)."""
    for _ in range(warmup):
        run()
    return measure.time_cases({"c": measure.Case(run)}, device=device, warmup=0, repeats=repeats,
                              min_sample_ms=0.0, max_number=1)["c"].samples_ms


def kernel_ms(run: Callable[[], None]) -> float:
    """Device time of the kernels (and memcpy/memset) of one call, summed by torch.profiler."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED_CALLS):
            run()
        torch.cuda.synchronize()
    total_us = sum(e.time_range.elapsed_us() for e in prof.events() if e.device_type == DeviceType.CUDA)
    if total_us == 0:
        raise RuntimeError("the profiler recorded no device activity (CUPTI unavailable?)")
    return total_us / PROFILED_CALLS / 1e3


def graph_ms(run: Callable[[], None], repeats: int) -> List[float]:
    """Replay times of ``run`` captured in a CUDA graph (warmed up on a side stream first)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def _first_line(exc: Exception) -> str:
    return (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0][:200]


def _row(base: Dict, provider: str, mode: str, times: Sequence[float], note: str = "") -> Dict:
    q = statistics.quantiles(times, n=5) if len(times) > 1 else [times[0]] * 4
    return {**base, "provider": provider, "mode": mode, "median_ms": statistics.median(times),
            "p20_ms": q[0], "p80_ms": q[3], "note": note}


def bench_case(name: str, notebook_fn: Callable, ours: Callable, inputs: tuple, shape, args, meta,
               failures: List[str]) -> List[Dict]:
    where = f"{name} {records.shape_str(shape)} {args.dtype}"
    device = args.device
    backends, skipped = contenders.our_backends(FUSED_OP[name], device, args.providers)
    mine = {}
    for b in backends:
        def call(*xs, _b=b):
            with IF.use_backend(_b):
                return ours(*xs)
        mine[b] = call
    providers, notes = contenders.make_providers(runnable(name, notebook_fn, args.torch_dtype), mine, inputs, args,
                                                 where)
    notes.update(skipped)
    try:
        check(name, notebook_fn, providers, notes, inputs, args, failures, where)
    except Exception as exc:  # noqa: BLE001 - the baseline itself failed: this case is skipped, the run goes on
        records.loud(f"{where}: eager failed, case skipped: {_first_line(exc)}")
        failures.append(f"{where}: eager: {_first_line(exc)}")
        return []
    base = {"op": f"{OP}[{name}]", "shape": records.shape_str(shape), "dtype": args.dtype,
            "roofline_gbps": math.nan, **meta}
    rows: List[Dict] = []
    roof_ms, moved = math.nan, moved_bytes(inputs)
    if device.type == "cuda":
        copy, copied = measure.copy_case(moved, device=device)
        roof_ms = statistics.median(wall_ms(copy.fn, device, args.repeats, args.warmup))
        base["roofline_gbps"] = measure.gbps(copied, roof_ms)
    for provider, fn in providers.items():
        run = step(fn, inputs)
        note = notes.get(provider, "")
        try:
            rows.append(_row(base, provider, "full", wall_ms(run, device, args.repeats, args.warmup), note))
        except Exception as exc:  # noqa: BLE001 - recorded, the others go on
            records.loud(f"{where}: {provider} failed: {_first_line(exc)}")
            failures.append(f"{where}: {provider}: {_first_line(exc)}")
            continue
        if device.type != "cuda":
            continue
        try:
            k = kernel_ms(run)
            rows.append({**_row(base, provider, "full:kernels", [k], note), "pct_roofline": 100 * roof_ms / k,
                         "gbps": measure.gbps(moved, k)})
        except Exception as exc:  # noqa: BLE001
            rows.append(_row(base, provider, "full:kernels", [math.nan], f"profiler error: {_first_line(exc)}"))
        try:
            rows.append(_row(base, provider, "full:graph", graph_ms(run, args.repeats), note))
        except Exception as exc:  # noqa: BLE001 - a provider that cannot be captured is a finding, noted
            torch.cuda.synchronize()
            rows.append(_row(base, provider, "full:graph", [math.nan], f"capture failed: {_first_line(exc)}"))
    print(f"  {where}: done", flush=True)
    return rows


def table(rows) -> str:
    by = {(r["op"], r["shape"], r["mode"], r["provider"]): r for r in rows}
    providers = list(dict.fromkeys(r["provider"] for r in rows))
    lines = [f"{'case':34s} {'mode':13s} " + " ".join(f"{p + ' ms':>12s}" for p in providers)
             + f" {'best/compile':>12s} {'%copy':>6s}"]
    for op, shape, mode in dict.fromkeys((r["op"], r["shape"], r["mode"]) for r in rows):
        ms = {p: by[(op, shape, mode, p)]["median_ms"] for p in providers if (op, shape, mode, p) in by}
        ours = [v for p, v in ms.items() if p not in ("eager", "compile") and math.isfinite(v)]
        best = min(ours) if ours else math.nan
        ratio = ms.get("compile", math.nan) / best if ours else math.nan
        pct = max((by[(op, shape, mode, p)].get("pct_roofline", math.nan) for p in providers
                   if p not in ("eager", "compile") and (op, shape, mode, p) in by), default=math.nan)
        lines.append(f"{op[len(OP) + 1:-1] + ' ' + shape:34s} {mode:13s} "
                     + " ".join(f"{ms.get(p, math.nan):12.4g}" for p in providers)
                     + f" {ratio:12.3g} {pct:6.3g}")
    return "\n".join(lines) + "\n(best/compile: compile's time / our best backend's; > 1 is faster than compile)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, shapes=(IMAGE_SHAPES + [STYLE_SHAPE], QUICK,
                                                                      IMAGE_SHAPES + [STYLE_SHAPE]))
    meta = harness.header(OP, args)
    failures: List[str] = []
    rows: List[Dict] = []
    for shape in args.shapes:
        for name, (notebook_fn, ours, inputs) in cases(shape, args.torch_dtype, args.device).items():
            rows += bench_case(name, notebook_fn, ours, inputs, shape, args, meta, failures)
    args.no_plot = True  # a table: the three times side by side
    groups = list(dict.fromkeys(r["op"] for r in rows))
    return harness.finish(rows, failures, args, meta, OP, groups=groups, table=table)


if __name__ == "__main__":
    sys.exit(main())
