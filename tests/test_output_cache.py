"""The cache of the fused CPU ops' large outputs (csrc/common/alloc.cpp, inpaint_fast/ops/output_cache.py).

Oracle: the pure-PyTorch reference (``use_backend('reference')``) or the closed forms of
tests/test_q_sample.py. A reused block holds the previous tensor's values, so every case first
fills the outputs of a call with NaN, frees them, and checks that the next call, which must reuse
those blocks (the hit count says it did), still equals the oracle: a kernel that skipped an element
would show the NaN.
"""
import gc
import os
import subprocess
import sys
import threading

import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.ops import library, output_cache

from .test_q_sample import oracle_blend, oracle_q, schedule

pytestmark = pytest.mark.skipif(library.load_error() is not None, reason=str(library.load_error()))

MIB = 1 << 20
SHAPE = (2, 3, 256, 256)  # 3 MiB per float64 image: above the cache's 1 MiB threshold


def box_mask(n, h, w):
    """1 = known; a different h/2 x w/2 hole per image."""
    m = torch.ones(n, 1, h, w, dtype=torch.float64)
    for i in range(n):
        y, x = (i * 37) % (h // 2), (i * 53) % (w // 2)
        m[i, :, y:y + h // 2, x:x + w // 2] = 0
    return m


def inputs(shape=SHAPE, count=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(count)]


def loss_and_grad(loss_fn, *args):
    """[loss, d loss / d args[0]] with args[0] a fresh leaf."""
    x = args[0].detach().requires_grad_(True)
    loss = loss_fn(x, *args[1:])
    return [loss.detach(), torch.autograd.grad(loss, x)[0]]


def reconstruction(pred, target, mask):
    return loss_and_grad(lambda p, t: IF.reconstruction_loss(p, t, mask=mask), pred, target)


def tv_hole(pred, _target, mask):
    return loss_and_grad(lambda p: IF.total_variation(p, mask=mask, region="hole"), pred)


def frequency(pred, target, _mask):
    return loss_and_grad(lambda p, t: IF.frequency_loss(p, t), pred, target)


def style(pred, target, _mask):
    feats = [x.reshape(2, 48, 64, 64) for x in (pred, target)]  # 1.5 MiB per feature map
    return loss_and_grad(lambda p, t: IF.style_distance(p, t), *feats)


def gram(pred, _target, _mask):
    feat = pred.reshape(2, 48, 64, 64).detach().requires_grad_(True)
    g = IF.gram_matrix(feat)
    return [g.detach(), torch.autograd.grad(g, feat, torch.ones_like(g))[0]]


CASES = {"reconstruction_loss": reconstruction, "total_variation": tv_hole, "frequency_loss": frequency,
         "style_distance": style, "gram_matrix": gram}


def poison(tensors):
    """Fills every tensor of 1 MiB or more with NaN (through a detached alias) and frees them all."""
    with torch.no_grad():
        for t in tensors:
            if t.numel() * t.element_size() >= MIB:
                t.detach().fill_(float("nan"))
    tensors.clear()


@pytest.mark.parametrize("case", sorted(CASES))
def test_reused_buffers_equal_the_reference(case):
    pred, target = inputs()
    mask = box_mask(2, 256, 256)
    with IF.use_backend("reference"):
        want = CASES[case](pred, target, mask)
    with IF.use_backend("cpu"):
        first = CASES[case](pred, target, mask)
        poison(first)
        hits = output_cache.stats()["hits"]
        got = CASES[case](pred, target, mask)
    assert output_cache.stats()["hits"] > hits, "the second call did not reuse a cached block"
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_q_sample_and_repaint_blend_reuse_buffers():
    from inpaint_fast.ops import q_sample as Q
    x0, noise, x_pred = inputs(count=3)
    abar, t, known = schedule(), torch.tensor([3, 41]), box_mask(2, 256, 256)
    g_out = inputs(count=1, seed=5)[0]

    def run():
        x, z = x0.clone().requires_grad_(True), noise.clone().requires_grad_(True)
        xt = Q.q_sample(x, t, z, abar)
        return [xt.detach(), *torch.autograd.grad(xt, [x, z], g_out), Q.repaint_blend_fused(x0, noise, x_pred,
                                                                                           known, t, abar)]
    poison(run())
    hits = output_cache.stats()["hits"]
    xt, gx, gz, blend = run()
    assert output_cache.stats()["hits"] >= hits + 4
    a = abar[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(xt, oracle_q(x0, t, noise, abar), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gx, a.sqrt() * g_out, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gz, (1 - a).sqrt() * g_out, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(blend, oracle_blend(x0, noise, x_pred, known, t, abar), rtol=1e-12, atol=1e-14)


def test_a_freed_gradient_returns_and_is_handed_out_again():
    pred, target = inputs()
    mask = box_mask(2, 256, 256)
    gc.collect()  # no tensor of an earlier test returns a block during this one
    output_cache.empty()
    before = output_cache.stats()
    grad = reconstruction(pred, target, mask)[1]
    ptr, nbytes = grad.data_ptr(), grad.numel() * grad.element_size()
    during = output_cache.stats()
    assert during["in_use_bytes"] - before["in_use_bytes"] == nbytes  # the tensor's own bytes
    del grad
    after = output_cache.stats()
    assert after["in_use_bytes"] == before["in_use_bytes"]
    assert after["cached_bytes"] == 4 * MIB  # 3 MiB rounded up to whole 2 MiB units
    again = reconstruction(pred, target, mask)[1]
    assert again.data_ptr() == ptr
    output_cache.empty()
    assert output_cache.stats()["cached_bytes"] == 0
    assert output_cache.stats()["in_use_bytes"] == after["in_use_bytes"] + nbytes  # a live tensor keeps its block


def test_outputs_below_one_mib_bypass_the_cache():
    pred, target = inputs(shape=(1, 3, 64, 64))
    gc.collect()
    before = output_cache.stats()
    grads = [reconstruction(pred, target, box_mask(1, 64, 64))[1] for _ in range(3)]
    after = output_cache.stats()
    assert (after["hits"], after["misses"], after["in_use_bytes"]) == \
           (before["hits"], before["misses"], before["in_use_bytes"])
    assert len(grads) == 3


def test_threads_share_the_cache_safely():
    mask = box_mask(2, 256, 256)
    cases = [inputs(seed=s) for s in range(4)]
    with IF.use_backend("reference"):
        want = [reconstruction(p, t, mask)[1] for p, t in cases]
    gc.collect()
    start = output_cache.stats()["in_use_bytes"]
    errors = []

    def work(i):
        try:
            for _ in range(8):
                with IF.use_backend("cpu"):
                    grad = reconstruction(*cases[i], mask)[1]
                torch.testing.assert_close(grad, want[i], rtol=1e-10, atol=1e-12)
                del grad
        except Exception as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert output_cache.stats()["in_use_bytes"] == start


def test_peak_memory_still_counts_the_gradient():
    """The profiler's memory records (benchmarks' peak-memory measure) see the cached blocks."""
    from torch.profiler import ProfilerActivity, profile
    pred, target = inputs()
    mask = box_mask(2, 256, 256)
    reconstruction(pred, target, mask)  # a block is cached now: the next call reuses it
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        grad = reconstruction(pred, target, mask)[1]
    allocated = sum(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0)
    assert allocated >= grad.numel() * grad.element_size()


def run_child(code, value):
    env = dict(os.environ, **{output_cache.ENV: value})
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


CHILD = """
import torch, inpaint_fast as IF
from inpaint_fast.ops import output_cache
from tests.test_output_cache import box_mask, inputs, reconstruction
pred, target = inputs()
mask = box_mask(2, 256, 256)
grads = [reconstruction(pred, target, mask)[1] for _ in range(2)]  # two live 3 MiB gradients
ptrs = {g.data_ptr() for g in grads}
del grads
again = reconstruction(pred, target, mask)[1]
print(output_cache.stats(), again.data_ptr() in ptrs)
"""


# INPAINT_FAST_OUTPUT_CACHE_MB, then what CHILD ends with: two 4 MiB blocks came back and the third call took
# one; a 5 MiB limit had kept only one of them; 0 is no cache at all.
@pytest.mark.parametrize("value, cached_mib, hits, misses, evictions", [("0", 0, 0, 0, 0), ("5", 0, 1, 2, 1),
                                                                      ("", 4, 1, 2, 0)])
def test_the_limit_from_the_environment(value, cached_mib, hits, misses, evictions):
    res = run_child(CHILD, value)
    assert res.returncode == 0, res.stderr
    stats_text, reused = res.stdout.strip().rsplit(" ", 1)
    stats = eval(stats_text)  # noqa: S307  (our own child's dict repr)
    assert stats["limit_bytes"] == (1024 if value == "" else int(value)) * MIB
    assert (stats["cached_bytes"], stats["hits"], stats["misses"], stats["evictions"]) == \
           (cached_mib * MIB, hits, misses, evictions)
    if value != "0":  # (without the cache the allocator may or may not map the same address again)
        assert reused == "True"


@pytest.mark.parametrize("value", ["-1", "1.5", "lots", " 8"])
def test_a_bad_limit_is_a_value_error(value):
    with pytest.raises(ValueError, match=output_cache.ENV):
        output_cache.check_env({output_cache.ENV: value})
    res = run_child("import inpaint_fast", value)
    assert res.returncode != 0 and "ValueError" in res.stderr and output_cache.ENV in res.stderr
