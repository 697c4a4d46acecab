"""Benchmark of the diffusion forward process (``inpaint_fast::q_sample``) and RePaint's blend
(``inpaint_fast::repaint_blend``).

Ops timed, fp32 and 2 threads by default, DDPM's linear schedule (T = 1000), one random timestep per image:

- ``q_sample``: ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε``. Modes forward / backward / full; the gradient
  is taken w.r.t. ``x0`` (an upstream gradient of x_t's shape is given, not a ``.sum()``, so that no
  reduction is timed).
- ``repaint_blend``: one RePaint step's blend ``m ⊙ q_sample(x_known, t, ε) + (1 - m) ⊙ x_pred`` with a
  binary (N, 1, H, W) mask (1 = known; per image a random H/2 x W/2 hole), forward only under
  ``torch.no_grad()`` (it is a sampling step).

Providers, all computing the same numbers:

- ``eager``: plain PyTorch, ``inpaint_fast.reference.diffusion.q_sample`` (gather the coefficients, two
  multiplies, an add) and, for the blend, ``m * x_t + (1 - m) * x_pred`` on its result;
- ``compile``: ``torch.compile`` (default inductor, ``mode=None``, ``dynamic=False``) of that same function;
- ``cpu``, for ``q_sample``: the public ``inpaint_fast.functional.diffusion.q_sample(x0, t, noise,
  alphas_cumprod)`` (the function a user calls: its checks and backend choice, then the fused C++ op)
  under ``inpaint_fast.use_backend('cpu')``;
- ``cpu``, for ``repaint_blend``: OPS LEVEL. The blend has no public function of its own (the public
  ``inpaint_fast.repaint`` is the whole sampler, which calls it once per step), so this row times the
  ops layer's entry function ``inpaint_fast.ops.q_sample.repaint_blend_fused(x_known, noise, x_pred,
  mask, t, alphas_cumprod)``, the call ``repaint`` makes;
- ``cpu[op]`` (``q_sample`` only, and only when named in ``--providers``, e.g.
  ``--providers 'eager,cpu,cpu[op]'``): the ops layer beneath the public ``q_sample``,
  ``inpaint_fast.ops.q_sample.q_sample(x0, t, noise, alphas_cumprod)``: set beside the public row, it
  shows what the public function's checks cost.

Only the CPU has these kernels: on ``--device cuda`` the ``cuda`` and ``triton`` providers are note
rows (``skipped: ...``).

Before timing, each provider's output (and, for q_sample, its gradient w.r.t. x0) is checked against
eager's (every entry within rtol 1e-5 of the largest in fp32); a mismatch is printed loudly, noted in
the CSV, and makes the exit status 1.

Minimal bytes counted for GB/s (E = bytes of one image): q_sample forward reads x0 and ε and writes
x_t (3E); backward reads the upstream gradient and writes the one of x0 (2E); full 5E. The blend reads
x_known, ε, x_pred and the mask and writes x (4E + mask). The roofline is a measured ``copy_`` moving
the same bytes, timed interleaved with the providers.

Run from the repository root: ``python benchmarks/bench_q_sample.py`` (``--quick`` for a smoke run,
``--ops q_sample`` for one op, ``--help`` for the options).
"""
from __future__ import annotations

import math
import os
import sys
from typing import Callable, Dict, List, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import harness  # noqa: E402
import measure  # noqa: E402
import records  # noqa: E402

import torch  # noqa: E402

import inpaint_fast  # noqa: E402
from inpaint_fast.functional import diffusion as public_diffusion  # noqa: E402
from inpaint_fast.reference import diffusion as ref_diffusion  # noqa: E402

OPS = ("q_sample", "repaint_blend")
SHAPES = [(8, 3, 256, 256), (16, 3, 512, 512)]  # in cache-ish; far beyond the last-level cache
QUICK_SHAPES = [(2, 3, 64, 64)]
NUM_STEPS = 1000


def make_inputs(shape: Tuple[int, ...], dtype: torch.dtype, device: torch.device):
    g = torch.Generator().manual_seed(1234)
    x0, noise, x_pred, grad = (torch.randn(shape, generator=g).to(dtype=dtype, device=device) for _ in range(4))
    t = torch.randint(0, NUM_STEPS, (shape[0],), generator=g).to(device)
    abar = ref_diffusion.alphas_cumprod(ref_diffusion.linear_betas(NUM_STEPS)).to(device)
    mask = contenders.box_mask(shape[0], shape[2], shape[3], dtype, device)
    return x0, noise, x_pred, grad, t, abar, mask


def eager_q_sample(x0, t, noise, abar):
    return ref_diffusion.q_sample(x0, t, noise, abar)


def eager_blend(x_known, noise, x_pred, mask, t, abar):
    return mask * ref_diffusion.q_sample(x_known, t, noise, abar) + (1 - mask) * x_pred


def public_q_sample(backend: str) -> Callable:
    """The public ``inpaint_fast.functional.diffusion.q_sample`` on ``backend`` (the provider named ``backend``)."""
    def call(x0, t, noise, abar):
        with inpaint_fast.use_backend(backend):
            return public_diffusion.q_sample(x0, t, noise, abar)
    return call


def providers_for(op: str, eager: Callable, warm: Callable[[Callable], None],
                  args) -> Tuple[Dict[str, Callable], Dict[str, str]]:
    """eager, compile (warmed by ``warm``) and, when the extension has the kernel, cpu (q_sample: the public
    function, and ``cpu[op]`` when asked for; the blend: the ops-level entry); cut to --providers."""
    from inpaint_fast.ops import q_sample as ours
    providers: Dict[str, Callable] = {"eager": eager}
    notes: Dict[str, str] = {}
    if args.providers is None or "compile" in args.providers:
        torch._dynamo.reset()
        compiled, err = contenders.compile_provider(eager, warm, dynamic=False)
        if compiled is None:
            records.loud(f"torch.compile failed for {op}: {err}")
            notes["compile"] = f"compile failed: {err}"
        else:
            providers["compile"] = compiled
    wanted = args.providers
    if wanted is not None:  # a <backend>[op] provider also names its backend
        wanted = wanted + [w[:-len("[op]")] for w in wanted if w.endswith("[op]")]
    backends, skipped = contenders.our_backends("q_sample", args.device, wanted)
    notes.update(skipped)
    if op == "q_sample":
        providers.update({b: public_q_sample(b) for b in backends})
        if "cpu" in backends and args.providers is not None and "cpu[op]" in args.providers:
            providers["cpu[op]"] = ours.q_sample
    elif "cpu" in backends:  # no public blend: the ops-level entry function (see the module doc)
        providers["cpu"] = ours.repaint_blend_fused
    if args.providers is not None:
        providers = {k: v for k, v in providers.items() if k in args.providers or k == "eager"}
    return providers, notes


def q_case(fn: Callable, inputs: Sequence, x0: torch.Tensor, grad: torch.Tensor, mode: str) -> measure.Case:
    """Forward, backward (forward untimed in the setup) or full of ``fn(*inputs)`` w.r.t. ``x0``,
    with ``grad`` as the upstream gradient."""
    if mode == "forward":
        return measure.Case(lambda: fn(*inputs))
    if mode == "backward":
        return measure.Case(lambda out: torch.autograd.grad(out, (x0,), grad), setup=lambda: fn(*inputs))
    return measure.Case(lambda: torch.autograd.grad(fn(*inputs), (x0,), grad))


def close(got: torch.Tensor, want: torch.Tensor, rtol: float) -> str:
    scale = want.double().abs().max().item() if want.numel() else 0.0
    if got.shape == want.shape and torch.allclose(got.double(), want.double(), rtol=rtol, atol=rtol * scale):
        return ""
    return f"max abs err {(got.double() - want.double()).abs().max().item():.3g} (max |value| {scale:.3g})"


def check(op: str, providers: Dict[str, Callable], notes: Dict[str, str], inputs: Sequence, x0, grad, args,
          failures: List[str], where: str) -> None:
    """Every provider's value (and, for q_sample, gradient w.r.t. x0) against eager's."""
    rtol = contenders.RTOL.get(args.torch_dtype, 1e-5)

    def run(fn):
        if op == "repaint_blend":
            with torch.no_grad():
                return fn(*inputs), None
        out = fn(*inputs)
        return out.detach(), torch.autograd.grad(out, (x0,), grad)[0]
    ref = run(providers["eager"])

    def differs(name: str, fn: Callable) -> str:
        out, g = run(fn)
        return "; ".join(f"{what} {err}" for what, err in (("value", close(out, ref[0], rtol)),
                                                            ("grad", "" if g is None else close(g, ref[1], rtol)))
                         if err)
    contenders.check_each(providers, notes, failures, where, differs, f"{op} ")


def bench_op(op: str, shape, args, meta, failures: List[str]) -> List[Dict]:
    device, dtype = args.device, args.torch_dtype
    x0, noise, x_pred, grad, t, abar, mask = make_inputs(shape, dtype, device)
    if op == "q_sample":
        x0.requires_grad_(True)
        inputs = (x0, t, noise, abar)
        eager = eager_q_sample
        modes = args.modes

        def warm(compiled):
            for _ in range(2):
                compiled(*inputs)
                torch.autograd.grad(compiled(*inputs), (x0,), grad)
    else:
        inputs = (x0, noise, x_pred, mask, t, abar)
        eager = eager_blend
        modes = [m for m in args.modes if m == "forward"]

        def warm(compiled):
            with torch.no_grad():
                for _ in range(2):
                    compiled(*inputs)
    providers, notes = providers_for(op, eager, warm, args)
    where = f"{records.shape_str(shape)} {args.dtype}"
    check(op, providers, notes, inputs, x0, grad, args, failures, where)
    base = {"op": op, "shape": records.shape_str(shape), "dtype": args.dtype, **meta}
    image = measure.nbytes(x0)
    rows: List[Dict] = []
    for mode in modes:
        moved = {"forward": 3 * image, "backward": 2 * image, "full": 5 * image}[mode] if op == "q_sample" \
            else 4 * image + measure.nbytes(mask)
        roof_case, copied = measure.copy_case(moved, device=device)
        cases = {name: q_case(fn, inputs, x0, grad, mode) for name, fn in providers.items()}
        cases[contenders.ROOF] = roof_case
        with torch.set_grad_enabled(op == "q_sample"):
            timings = measure.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats,
                                         min_sample_ms=0.5 if args.quick else 2.0)
            roof = measure.gbps(copied, timings.pop(contenders.ROOF).median_ms)
            for name in list(providers) + [n for n in notes if n not in providers]:
                row = {**base, "provider": name, "mode": mode, "note": notes.get(name, ""), "roofline_gbps": roof}
                if name in providers:
                    tm = timings[name]
                    peak = measure.peak_memory_bytes(cases[name].fn, setup=cases[name].setup, device=device)
                    achieved = measure.gbps(moved, tm.median_ms)
                    row.update(median_ms=tm.median_ms, p20_ms=tm.p20_ms, p80_ms=tm.p80_ms, peak_mem_mb=peak / 2**20,
                               gbps=achieved, pct_roofline=100.0 * achieved / roof)
                else:
                    row.update(median_ms=math.nan, p20_ms=math.nan, p80_ms=math.nan, gbps=math.nan,
                               pct_roofline=math.nan, peak_mem_mb=math.nan)
                rows.append(row)
        print(f"  {op} {where} {mode}: done (copy roofline {roof:.1f} GB/s for {moved / 2**20:.1f} MiB)", flush=True)
    return rows


def op_png(op: str, png: str) -> str:
    """q_sample at the default PNG, the blend at ``repaint_blend_<device>.png``."""
    root, ext = os.path.splitext(png)
    return png if op == "q_sample" else root.replace("q_sample_", "repaint_blend_", 1) + ext


def add_arguments(p) -> None:
    p.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of " + ",".join(OPS))


def main(argv=None) -> int:
    args = harness.parse_args(__doc__.splitlines()[0], argv, add_arguments, shapes=(SHAPES, QUICK_SHAPES),
                              processes=True)
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise SystemExit(f"unknown op(s) {bad}; choose from {list(OPS)}")
    meta = harness.header("q_sample/repaint_blend", args)
    failures: List[str] = []
    rows = harness.collect(args, failures, lambda: [row for shape in args.shapes for op in ops
                                                    for row in bench_op(op, shape, args, meta, failures)], meta)
    return harness.finish(rows, failures, args, meta, "q_sample", groups=ops, plot_path=op_png)


if __name__ == "__main__":
    sys.exit(main())
