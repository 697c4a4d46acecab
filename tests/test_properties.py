"""Property-based tests (hypothesis, derandomized, no example database): every public loss, its value
and its gradient, on every CPU backend, against a float64 oracle written in ``tests/property_cases.py``
from the documented semantics (not ``inpaint_fast.reference``).

Drawn: shapes (N, C, H, W) with N, C, H, W down to 0, N, C up to 3 and H, W up to 9, float64 / float32 /
float16 / bfloat16 (not bfloat16 for the Gram-based families on interpreted Triton, whose ``tl.dot``
multiplies bfloat16 bit patterns: triton-lang/triton#11584), layouts of pred and target (contiguous,
channels_last, every other column of a wider tensor, transposed-back, a storage offset; target also
expanded with stride 0),
masks (none; bool, uint8 0/1, 0/255 and arbitrary non-zero, float 0/1 and soft; shapes (N,1,H,W),
(N,C,H,W), (N,H,W), (1,1,H,W), (H,W); contiguous, stride-0 expanded, strided, transposed,
channels_last; ``mask=`` or ``hole=``; empty and full regions; soft masks that require grad), every
region (and 'hole_dilated' for total_variation), normalisation, reduction, loss, lambda (0 included),
charbonnier_eps, eps, trivial feature extractors, layer weights, mask resizes and feature norms, and
the loss scale (d loss / d output 1, -0.5, 3 or 1024; a random cotangent for maps).

Checked per case: the value and d loss / d pred (and d loss / d mask for a soft mask that requires
grad) against the oracle with dtype tolerances (float16 / bfloat16 loose, relative to the magnitude),
finite for finite inputs, and on a fused backend the same within twice the tolerance as the reference
backend; with NaN / inf inputs, a NaN reaches the value and the NaN / inf pattern of value and
gradient is the oracle's and the reference backend's.

Each backend's sweep runs in a child process (``python -m tests.property_cases BACKEND``): 'reference',
'cpu' (the C++ kernels) and 'triton' (interpreted on CPU tensors when there is no GPU), so that a crash
of a kernel fails a test instead of killing pytest. Examples per family and backend:
``property_cases.EXAMPLES`` (reference 250, cpu 250, triton 60; non-finite inputs 250 / 250 / 60 over
all families; about 13 s, 14 s and 21 s on 2 cores, child start included: 48 s in all, up to 80 s
on a loaded machine);
``INPAINT_FAST_PROPERTY_SCALE=10`` multiplies them for a longer local run. A failure
prints the shrunk ``Case(...)``; ``property_cases.check(Case(...), backend)`` reruns it.
"""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.ops import backend as _backend

from . import property_cases as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sweep_backends():
    available = _backend.availability()
    names = ["reference"] + ([] if available["cpu"] is not None else ["cpu"])
    if available["triton"] is None and not torch.cuda.is_available():  # interpreted, on CPU tensors
        names.append("triton")
    return names


@pytest.mark.parametrize("backend", _sweep_backends())
def test_property_sweep(backend, tmp_path):
    """The whole sweep of one backend (every family, then non-finite inputs) in a child process: a crash
    (SIGSEGV, SIGFPE, abort) is a failure here, with the child's last output. The child also keeps the
    generated cases independent of what else this pytest session imported (hypothesis draws constants
    from the loaded local modules) and hypothesis' files out of the repository."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HYPOTHESIS_STORAGE_DIRECTORY=str(tmp_path / "hypothesis"))
    done = subprocess.run([sys.executable, "-m", "tests.property_cases", backend], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (f"the {backend} sweep exited with {done.returncode} "
                                  f"(a negative code is the signal that killed it):\n{done.stderr[-4000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROPERTY-REPORT ")]
    assert lines, f"no report from the child:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    report = json.loads(lines[-1][len("PROPERTY-REPORT "):])
    print(f"\n{backend}: " + ", ".join(f"{k} {v['cases']} cases {v['seconds']} s" for k, v in report.items()))
    assert set(report) == set(P.FAMILIES) | {"nonfinite"}
    failures = {k: v["error"] for k, v in report.items() if v["error"]}
    assert not failures, f"{backend}: {len(failures)} of {len(report)} sweeps failed:\n\n" + "\n\n".join(
        f"[{k}]\n{v}" for k, v in failures.items())


# ---- floating masks outside [0, 1] --------------------------------------------------------------

_OUT_OF_RANGE_CALLS = {
    "masked_l1": lambda p, kw: IF.masked_l1(p, p.detach() * 0.5, **kw),
    "masked_l2": lambda p, kw: IF.masked_l2(p, p.detach() * 0.5, region="known", **kw),
    "masked_charbonnier": lambda p, kw: IF.masked_charbonnier(p, p.detach() * 0.5, **kw),
    "reconstruction_loss": lambda p, kw: IF.reconstruction_loss(p, p.detach() * 0.5, **kw),
    "masked_error_stats": lambda p, kw: IF.masked_error_stats(p, p.detach() * 0.5, **kw),
    "total_variation": lambda p, kw: IF.total_variation(p, **kw),
    "total_variation_dilated": lambda p, kw: IF.total_variation(p, region="hole_dilated", **kw),
    "gram_matrix": lambda p, kw: IF.gram_matrix(p, **kw),
    "style_loss": lambda p, kw: IF.style_loss(p, p.detach() * 0.5, extractor=lambda x: [x], **kw),
    "perceptual_loss": lambda p, kw: IF.perceptual_loss(p, p.detach() * 0.5, extractor=lambda x: [x], **kw),
}


@pytest.mark.parametrize("backend", _sweep_backends())
@pytest.mark.parametrize("arg", ["mask", "hole"])
@pytest.mark.parametrize("bad", [-0.5, 1.5, 2.0, -1e-3, 1.0625, math.inf, -math.inf, math.nan])
def test_floating_mask_outside_0_1_raises_value_error(backend, arg, bad):
    """A floating mask is a weight in [0, 1]: one value outside (or NaN) raises a ValueError naming the argument,
    in every family, whatever the mask's float dtype (float16 / float32 / float64) and shape."""
    torch.manual_seed(0)
    for dtype, mdtype, form in ((torch.float32, torch.float32, (2, 1, 4, 5)),
                                (torch.float64, torch.float16, (4, 5)),
                                (torch.float16, torch.float64, (2, 4, 5)),
                                (torch.bfloat16, torch.float32, (1, 1, 4, 5))):
        m = (torch.rand(form) > 0.5).to(mdtype)
        m.view(-1)[3] = bad
        for name, fn in _OUT_OF_RANGE_CALLS.items():
            p = torch.rand(2, 1, 4, 5, dtype=dtype, requires_grad=True)
            with IF.use_backend(backend):
                try:
                    fn(p, {arg: m})
                except ValueError as error:
                    assert arg in str(error), (name, str(error))
                    continue
            pytest.fail(f"{name}: no ValueError for a {mdtype} {arg}= holding {bad} ({dtype} images)")
