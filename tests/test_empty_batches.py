"""Empty batches and images (N, C, H or W = 0) through the masked pixel losses, total variation (and its
per-image norm), the frequency, style, perceptual and feature-matching losses, with every mask form a
data loader may give (an empty mask, a broadcast one, one expanded to N = 0, whose data pointer is
null): 0 and a gradient of zeros, on every backend. A crash here (it was SIGFPE and SIGSEGV on the
CPU, a null read in Triton) would kill pytest, so the cases run in a child process per backend."""
import json
import os
import subprocess
import sys

import pytest
import torch

from inpaint_fast.ops import backend as _backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CASES = r"""
import json, sys
import torch
import inpaint_fast as IF

LOSSES = {
    "masked_l1": lambda p, t, m: IF.masked_l1(p, t, mask=m),
    "masked_l2": lambda p, t, m: IF.masked_l2(p, t, mask=m, region="known"),
    "masked_charbonnier": lambda p, t, m: IF.masked_charbonnier(p, t, mask=m),
    "reconstruction_loss": lambda p, t, m: IF.reconstruction_loss(p, t, mask=m),
    "total_variation": lambda p, t, m: IF.total_variation(p, mask=m, region="hole"),
    "total_variation_all": lambda p, t, m: IF.total_variation(p),
    "total_variation_hole_dilated": lambda p, t, m: IF.total_variation(p, mask=m, region="hole_dilated", p=2),
    "frequency_loss": lambda p, t, m: IF.frequency_loss(p, t),
    "style_loss": lambda p, t, m: IF.style_loss(p, t, extractor=lambda z: [z], mask=m, region="known"),
    "perceptual_loss": lambda p, t, m: IF.perceptual_loss(p, t, extractor=lambda z: [z], mask=m, region="known"),
    "total_variation_norm": lambda p, t, m: IF.total_variation_norm(p, mask=m, region="known"),
    "feature_matching_loss": lambda p, t, m: IF.feature_matching_loss([p], [t]),
    "feature_matching_masked": lambda p, t, m: IF.feature_matching_loss([p], [t], mask=m[:, :1] if m.dim() == 4
                                                                        else m, normalize="all"),
}
results = []
with IF.use_backend(sys.argv[1]):
    for shape in ((0, 3, 8, 8), (2, 0, 8, 8), (2, 3, 0, 8), (2, 3, 8, 0)):
        n, c, h, w = shape
        masks = {"n1hw": torch.ones(n, 1, h, w), "nhw_bool": torch.ones(n, h, w, dtype=torch.bool),
                 "11hw_uint8": torch.ones(1, 1, h, w, dtype=torch.uint8),
                 "expanded": torch.ones(1, 1, h, w).expand(n, 1, h, w)}
        for (name, fn), (mask_name, mask) in ((f, m) for f in LOSSES.items() for m in masks.items()):
            p = torch.rand(shape, requires_grad=True)
            value = fn(p, torch.rand(shape), mask)
            value.backward()
            results.append([name, list(shape), mask_name, value.item(), list(p.grad.shape),
                            float(p.grad.abs().sum())])
        stats = IF.masked_error_stats(torch.rand(shape), torch.rand(shape), mask=masks["expanded"])
        results.append(["masked_error_stats", list(shape), "expanded", [float(v) for v in stats.values()]])
print(json.dumps(results))
"""


def _backends():
    available = _backend.availability()
    names = ["reference"] + [b for b in ("cpu", "triton") if available[b] is None]
    return names if not torch.cuda.is_available() else [b for b in names if b != "triton"]


@pytest.mark.parametrize("backend", _backends())
def test_empty_batches_give_zero_and_zero_gradients(backend):
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", _CASES, backend], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == 4 * (13 * 4 + 1)
    for row in results:
        if row[0] == "masked_error_stats":
            assert row[3] == [0.0] * 6, row
            continue
        name, shape, mask_name, value, grad_shape, grad_abs = row
        assert value == 0.0 and grad_shape == shape and grad_abs == 0.0, row
