"""Measuring one callable: interleaved timing, the three modes, peak memory, the copy_ roofline, do_bench.

What is op-specific (inputs, providers, bytes or FLOPs counted) stays in the ``bench_<op>.py``
scripts and comes in as arguments. Everything here is device-agnostic: a ``torch.device`` is passed
in, CUDA work is synchronised around every timed region, and peak memory is taken from the CUDA
caching allocator on GPU and from the profiler's allocation events on CPU (see
:func:`peak_memory_bytes`).

Timing model (:func:`time_cases`)
    Providers of one (shape, mode) are timed *interleaved*: each round times every provider once,
    in a rotated order, so slow drifts of a shared machine (other jobs, frequency changes) hit all
    providers alike and the ratios between them stay meaningful. After ``warmup`` untimed calls per
    provider, ``repeats`` samples are taken; a sample of a case without per-call setup repeats the
    call ``number`` times (calibrated so one sample lasts at least ``min_sample_ms``) and records
    the mean. Reported: median and the 20th/80th percentiles of the samples, in milliseconds.
    The Python garbage collector is disabled while timing. On CPU a sample is wall-clock time
    (``time.perf_counter``); on CUDA it is the GPU time between two CUDA events recorded on the
    current stream around the call(s) (after a ``torch.cuda.synchronize``), so the host's launch
    work counts only where the GPU waits for it. On CUDA, :func:`do_bench_note` also times forward and
    full with ``triton.testing.do_bench`` (its own warm-up, L2 flush and repetitions) as a second
    opinion, written to the row's ``note``.

    Warm-up: the scripts default to 10 calls (``--warmup``; 1 with ``--quick``). On this VM the first
    calls that allocate multi-MiB buffers pay first-touch page faults on fresh memory (and host-side
    faults) until the allocator's pages are mapped, so a steady training-loop state needs more than
    a handful of warm-up calls. Only ratios within one run (speedups, % of roofline) are reported
    as results, so every provider gets the same warm-up.

Modes (:func:`mode_case`)
    ``forward``: the loss call, with the inputs that need a gradient requiring grad (a training
    forward: it records the autograd graph). ``backward``: the backward alone; each sample first
    runs a forward *untimed* (a fresh graph every time), then times ``torch.autograd.grad``.
    ``full``: forward + backward in one timed call.
"""
from __future__ import annotations

import functools
import gc
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

MODES = ("forward", "backward", "full")


# --------------------------------------------------------------------------------------------- timing

def synchronize(device: torch.device) -> None:
    """Wait for queued device work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Per-call times of one case, in milliseconds."""
    samples_ms: List[float]
    number: int = 1  # calls per sample

    def _pct(self, q: float) -> float:
        s = sorted(self.samples_ms)
        if not s:
            return float("nan")
        k = (len(s) - 1) * q
        lo, hi = math.floor(k), math.ceil(k)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)

    @property
    def median_ms(self) -> float:
        return self._pct(0.5)

    @property
    def p20_ms(self) -> float:
        return self._pct(0.2)

    @property
    def p80_ms(self) -> float:
        return self._pct(0.8)


@dataclass
class Case:
    """A timed callable. With ``setup``, each sample calls ``fn(setup())`` and times only ``fn``."""
    fn: Callable[..., Any]
    setup: Optional[Callable[[], Any]] = None


class _Timer:
    """Elapsed milliseconds of a region: CUDA events on a CUDA device, ``time.perf_counter`` elsewhere."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        if self.cuda:
            self.start_ev = torch.cuda.Event(enable_timing=True)
            self.end_ev = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        synchronize(self.device)  # nothing queued before the region is counted
        if self.cuda:
            self.start_ev.record()
        else:
            self.t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self.end_ev.record()
            self.end_ev.synchronize()
            return float(self.start_ev.elapsed_time(self.end_ev))
        return (time.perf_counter() - self.t0) * 1e3


def _run_once(case: Case, device: torch.device) -> float:
    """Milliseconds of one call of ``case.fn`` (its setup, if any, runs untimed before)."""
    timer = _Timer(device)
    if case.setup is not None:
        state = case.setup()
        timer.start()
        out = case.fn(state)
        ms = timer.stop()
        del out, state
        return ms
    timer.start()
    out = case.fn()
    ms = timer.stop()
    del out
    return ms


def _run_sample(case: Case, device: torch.device, number: int) -> float:
    """Milliseconds per call, averaged over ``number`` back-to-back calls (``number`` is 1 with a setup)."""
    if case.setup is not None or number == 1:
        return _run_once(case, device)
    timer = _Timer(device)
    timer.start()
    for _ in range(number):
        out = case.fn()
        del out
    return timer.stop() / number


def time_cases(cases: Mapping[str, Case], *, device: torch.device, warmup: int = 3, repeats: int = 20,
               min_sample_ms: float = 1.0, max_number: int = 1000) -> Dict[str, Timing]:
    """Times every case, interleaved round by round (see the module docstring); name -> Timing."""
    names = list(cases)
    numbers: Dict[str, int] = {}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in names:
            for _ in range(max(warmup, 1)):
                _run_once(cases[name], device)
            if cases[name].setup is not None:
                numbers[name] = 1
            else:
                t_ms = _run_once(cases[name], device)
                numbers[name] = int(min(max_number, max(1, math.ceil(min_sample_ms / max(t_ms, 1e-6)))))
        samples: Dict[str, List[float]] = {n: [] for n in names}
        for r in range(repeats):
            k = r % len(names)
            for name in names[k:] + names[:k]:  # rotate the order so no provider always goes first
                samples[name].append(_run_sample(cases[name], device, numbers[name]))
    finally:
        if was_enabled:
            gc.enable()
    return {n: Timing(samples[n], numbers[n]) for n in names}


def mode_case(loss_fn: Callable[..., torch.Tensor], args: Sequence[Any], grad_inputs: Sequence[torch.Tensor],
              mode: str) -> Case:
    """The :class:`Case` timing ``mode`` of ``loss_fn(*args)``; gradients are taken w.r.t. ``grad_inputs``.

    'backward' runs the forward untimed in the setup (a fresh graph for every sample) and times
    ``torch.autograd.grad`` alone; 'full' times forward + backward. ``autograd.grad`` is used rather
    than ``.backward()`` so that no ``.grad`` accumulates between samples.
    """
    grad_inputs = tuple(grad_inputs)
    if mode == "forward":
        return Case(lambda: loss_fn(*args))
    if mode == "backward":
        return Case(lambda loss: torch.autograd.grad(loss, grad_inputs), setup=lambda: loss_fn(*args))
    if mode == "full":
        return Case(lambda: torch.autograd.grad(loss_fn(*args), grad_inputs))
    raise ValueError(f"mode must be one of {MODES}; got {mode!r}")


# --------------------------------------------------------------------------------------------- memory

def _cpu_allocation_events(prof) -> List[Tuple[int, int]]:
    """(time_ns, signed bytes) of every CPU allocation (+) and free (-) the profiler recorded."""
    events: List[Tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        extra = node.extra_fields
        if type(extra).__name__ == "_ExtraFields_Allocation" and extra.device.type == "cpu":
            events.append((node.start_time_ns, int(extra.alloc_size)))
    events.sort()
    return events


def peak_memory_bytes(fn: Callable[..., Any], *, setup: Optional[Callable[[], Any]] = None,
                      device: torch.device = torch.device("cpu")) -> int:
    """Peak bytes of tensor memory allocated by one call of ``fn()`` (or ``fn(setup())``) above the start.

    What is measured is the high-water mark of *extra* live tensor bytes while the call runs,
    relative to what was live when it started; the call's outputs (e.g. the gradients it returns)
    are still alive at the end and therefore count. A ``setup`` (e.g. the forward before a timed
    backward) runs before the measured window, so its allocations are the baseline.

    CUDA: ``torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated()`` around the call,
    after ``reset_peak_memory_stats`` (the caching allocator's exact count of bytes handed to tensors,
    not the memory it reserves from the driver).

    CPU: torch has no CPU allocator statistics, and ``tracemalloc``/RSS do not see (or do not
    isolate) the c10 allocator, so the call runs under ``torch.profiler.profile(profile_memory=True)``:
    c10's default CPU allocator then reports every allocation and free (size, time) to the
    profiler. The events are sorted by time and summed; the peak of the running sum is the answer.
    It counts every tensor storage allocated through torch's CPU allocator (ATen ops, C++
    extensions using ``at::empty``, inductor-compiled code), at its real size, and nothing else
    (Python objects, the OpenMP runtime's and compiled code's own stack buffers). The profiler's
    own overhead changes timings, never sizes; this measurement is taken apart from the timed runs.
    """
    state = setup() if setup is not None else None
    call = functools.partial(fn, state) if setup is not None else fn
    synchronize(device)
    gc.collect()
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = call()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out, state
        return int(peak)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = call()
    del out, state
    running = peak = 0
    for _, size in _cpu_allocation_events(prof):
        running += size
        peak = max(peak, running)
    return int(peak)


# --------------------------------------------------------------------------------------------- roofline

def copy_case(nbytes: int, *, device: torch.device) -> Tuple[Case, int]:
    """A :class:`Case` timing ``dst.copy_(src)`` that moves ``nbytes`` in all, and the bytes it moves.

    ``src`` and ``dst`` hold ``nbytes / 2`` each (fp32), so the copy's traffic (read src + write dst)
    and its working set equal those of the loss it is compared with (same cache level). Put it among
    the cases of :func:`time_cases` so that it is timed interleaved with the providers, under the same
    machine noise; the roofline is then ``gbps(moved, timing.median_ms)``.
    """
    numel = max(1, int(nbytes) // 2 // 4)
    src = torch.randn(numel, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    return Case(lambda: dst.copy_(src)), 2 * numel * 4


def gbps(nbytes: int, ms: float) -> float:
    """Achieved GB/s of moving ``nbytes`` in ``ms`` milliseconds."""
    return nbytes / (ms * 1e-3) / 1e9 if ms > 0 else float("nan")


def nbytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's elements (numel * element size; broadcast views count as their numel)."""
    return t.numel() * t.element_size()


# --------------------------------------------------------------------------------------------- do_bench (CUDA)

def do_bench_ms(fn: Callable[[], Any], bench: Optional[Callable[..., Any]] = None) -> Tuple[float, float, float]:
    """(median, p20, p80) ms of ``fn()`` by ``triton.testing.do_bench`` (25 ms warm-up, 100 ms of
    repetitions, L2 flushed before each call; ``bench`` replaces do_bench, e.g. in tests)."""
    if bench is None:
        from triton.testing import do_bench as bench
    res = bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
    vals = [float(res)] * 3 if isinstance(res, (int, float)) else [float(v) for v in res]
    return vals[0], vals[1], vals[2]


def do_bench_note(fn: Callable[[], Any], bench: Optional[Callable[..., Any]] = None) -> str:
    """``do_bench_ms=<median>[<p20>,<p80>]`` for the row's note, or ``do_bench error: ...``."""
    try:
        med, lo, hi = do_bench_ms(fn, bench)
    except Exception as exc:  # noqa: BLE001 - a second opinion; its failure is noted, not fatal
        first = (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0]
        return f"do_bench error: {first}"[:200]
    return f"do_bench_ms={med:.4g}[{lo:.4g},{hi:.4g}]"

