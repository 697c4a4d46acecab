"""The fused CPU ops at every instruction-set level of csrc/common/cpu_dispatch.h.

The extension picks one level per process at first use: the best the CPU has (baseline x86-64,
x86-64-v3 = AVX2, x86-64-v4 = AVX-512), capped by torch's ATEN_CPU_CAPABILITY ("default", "avx2",
"avx512"); torch.ops.inpaint_fast.cpu_capability() reports it. For each level this CPU supports, a
fresh interpreter with ATEN_CPU_CAPABILITY set checks the reported level and every fused CPU op
(through the public functions) against the reference backend, value and gradient, float32 and
float64, with a mask; masked_tv, whose variants round alike (no FMA contraction), must give bitwise
the same loss and gradient at every level. Small shapes: a few seconds per interpreter.
"""
import json
import os
import platform
import subprocess
import sys

import pytest
import torch

import inpaint_fast  # noqa: F401  (loads the extension, if built)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEVELS = ("default", "avx2", "avx512")  # ATEN_CPU_CAPABILITY values, in increasing order

pytestmark = pytest.mark.skipif(not hasattr(torch.ops.inpaint_fast, "cpu_capability"),
                                reason="the C++ extension is not built")

# Run in the child, on the inputs the parent saved (torch's own random generators give other numbers
# under another ATEN_CPU_CAPABILITY): prints one JSON line {"level", "torch", "tv"} after checking
# every op against the reference backend (an AssertionError fails the child). "tv": masked_tv's loss
# (float.hex) and a digest of its gradient per case, compared across levels by the parent.
CHILD = r'''
import hashlib, json, sys
import torch
import inpaint_fast as IF

TOL = {torch.float32: dict(rtol=2e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def run(fn, inputs, wants_grad):
    xs = [x.detach().clone().requires_grad_(w) for x, w in zip(inputs, wants_grad)]
    value = fn(*xs)
    value.backward()
    return value.detach(), [x.grad for x, w in zip(xs, wants_grad) if w]


def check(name, fn, inputs, wants_grad, dtype):
    """fn on the fused CPU op and on the reference: the same value and gradients."""
    with IF.use_backend("cpu"):
        value, grads = run(fn, inputs, wants_grad)
    with IF.use_backend("reference"):
        ref_value, ref_grads = run(fn, inputs, wants_grad)
    torch.testing.assert_close(value, ref_value, **TOL[dtype], msg=lambda m: f"{name} {dtype} value: {m}")
    for k, (g, r) in enumerate(zip(grads, ref_grads)):
        torch.testing.assert_close(g, r, **TOL[dtype], msg=lambda m: f"{name} {dtype} grad {k}: {m}")
    return value, grads


inputs = torch.load(sys.argv[1])
known = inputs["known"]
tv = {}
for dtype in (torch.float32, torch.float64):
    pred, target, soft, weights, gram_weights = (inputs[k].to(dtype) for k in
                                                 ("pred", "target", "soft", "weights", "gram_weights"))

    # masked_error
    for loss in ("l1", "l2", "charbonnier"):
        check(f"reconstruction_loss {loss}", lambda p: IF.reconstruction_loss(p, target, mask=known, loss=loss),
              [pred], [True], dtype)
    check("reconstruction_loss soft mask", lambda p: IF.reconstruction_loss(p, target, mask=soft, loss="l2"),
          [pred], [True], dtype)
    check("reconstruction_loss channels_last",
          lambda p: IF.reconstruction_loss(p, target.contiguous(memory_format=torch.channels_last), mask=known),
          [pred.contiguous(memory_format=torch.channels_last)], [True], dtype)

    # masked_tv: NCHW and channels_last (read in place), every masked region, p = 1 and 2
    cases = [("nchw hole p1", pred, dict(mask=known, region="hole")),
             ("nchw known p2", pred, dict(mask=known, region="known", p=2)),
             ("nchw hole_dilated p1", pred, dict(mask=known, region="hole_dilated")),
             ("channels_last hole_dilated p1", pred.contiguous(memory_format=torch.channels_last),
              dict(mask=known, region="hole_dilated")),
             ("channels_last hole p2", pred.contiguous(memory_format=torch.channels_last),
              dict(mask=known, region="hole", p=2, normalize="all"))]
    for name, x, kw in cases:
        value, (grad,) = check(f"total_variation {name}", lambda p: IF.total_variation(p, **kw), [x], [True], dtype)
        digest = hashlib.sha256(grad.contiguous().numpy().tobytes()).hexdigest()
        tv[f"{dtype} {name}"] = [float(value).hex(), digest]

    # q_sample (the backward is the fused q_sample_backward)
    abar = torch.linspace(0.999, 0.01, 50, dtype=torch.float64).to(dtype)
    t = torch.tensor([3, 41])
    check("diffusion.q_sample", lambda x, z: (IF.functional.diffusion.q_sample(x, t, z, abar) * weights).sum(),
          [pred, target], [True, True], dtype)

    # spectral_l1, both gradients
    check("frequency_loss", lambda p, q: IF.frequency_loss(p, q), [pred, target], [True, True], dtype)

    # style_distance's gram (weighted)
    check("gram_matrix", lambda f: (IF.gram_matrix(f, mask=soft) * gram_weights).sum(), [pred], [True], dtype)

print(json.dumps({"level": torch.ops.inpaint_fast.cpu_capability(),
                  "torch": torch.backends.cpu.get_cpu_capability(), "tv": tv}))
'''


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """The child's JSON result per ATEN_CPU_CAPABILITY setting (None: unset), the children run in parallel."""
    gen = torch.Generator().manual_seed(0)
    N, C, H, W = 2, 3, 19, 37  # rows of 37: full vector steps, a tail and an overlapping last step
    inputs = {"pred": torch.randn(N, C, H, W, generator=gen, dtype=torch.float64),
              "target": torch.randn(N, C, H, W, generator=gen, dtype=torch.float64),
              "known": torch.rand(N, 1, H, W, generator=gen) > 0.4,  # True = known pixel
              "soft": torch.rand(N, 1, H, W, generator=gen, dtype=torch.float64),
              "weights": torch.randn(N, C, H, W, generator=gen, dtype=torch.float64),
              "gram_weights": torch.randn(N, C, C, generator=gen, dtype=torch.float64)}
    path = tmp_path_factory.mktemp("cpu_isa") / "inputs.pt"
    torch.save(inputs, path)
    procs = {}
    for setting in (None,) + LEVELS:
        env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
        if setting is not None:
            env["ATEN_CPU_CAPABILITY"] = setting
        procs[setting] = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = {}
    for setting, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"ATEN_CPU_CAPABILITY={setting}: the child failed:\n{err[-4000:]}"
        results[setting] = json.loads(out.strip().splitlines()[-1])
    return results


def best_level(children):
    return children[None]["level"]


def test_without_a_cap_the_best_level_of_the_cpu(children):
    """Unset, the level is the CPU's best, as torch detects it (torch's AVX512 needs AVX-512
    F/BW/DQ/VL, as x86-64-v4 does)."""
    level = best_level(children)
    assert level in LEVELS
    if platform.machine() in ("x86_64", "AMD64"):
        expected = {"AVX512": "avx512", "AVX2": "avx2"}.get(children[None]["torch"], "default")
        assert level == expected, (level, children[None]["torch"])
    else:
        assert level == "default"


@pytest.mark.parametrize("level", LEVELS)
def test_every_op_matches_the_reference_at_each_level(children, level):
    """ATEN_CPU_CAPABILITY=<level> selects that level (the child reports it), and the child's checks
    against the reference passed there."""
    best = best_level(children)
    if LEVELS.index(level) > LEVELS.index(best):
        pytest.skip(f"this CPU lacks {level} (its best level is {best})")
    assert children[level]["level"] == level


def test_masked_tv_is_bitwise_the_same_at_every_level(children):
    best = best_level(children)
    levels = LEVELS[:LEVELS.index(best) + 1]
    if len(levels) < 2:
        pytest.skip("only the baseline level runs on this machine")
    reference = children[levels[0]]["tv"]
    assert len(reference) == 10
    for level in levels[1:]:
        differing = sorted(k for k in reference if children[level]["tv"][k] != reference[k])
        assert not differing, f"{level} differs from {levels[0]} in {differing}"
