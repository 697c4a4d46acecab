"""inpaint_fast::gram / gram_backward / style_distance (C++ CPU kernels) against the pure-PyTorch oracle.

Oracle: ``inpaint_fast.reference.features`` evaluated in float64 on the same (upcast) inputs:
``gram_matrix(feat, weight)`` and its autograd gradient, and ``style_distance([fp], [ft], weight)``
(one layer) with its gradient w.r.t. the prediction's features (the target's are a constant).
"""
import os
import subprocess
import sys

import pytest
import torch

from inpaint_fast.ops import library

from inpaint_fast.ops.style_distance import gram_matrix, style_distance  # noqa: E402
from inpaint_fast.reference import features as ref  # noqa: E402

from tests.conftest import TRITON_INTERPRETED  # noqa: E402
from tests.triton_aot import require_sm90, run_script  # noqa: E402

HAVE_EXT = library.load_error() is None
GRAM = torch.ops.inpaint_fast.gram.default if HAVE_EXT else None
GRAM_BACKWARD = torch.ops.inpaint_fast.gram_backward.default if HAVE_EXT else None
STYLE = torch.ops.inpaint_fast.style_distance.default if HAVE_EXT else None


@pytest.fixture(autouse=True)
def _needs_extension(request):
    """The C++ ops' tests need the compiled extension; the GPU-backend tests (fixture gpu_backend)
    skip by themselves what cannot run, and the test_triton_* ones need none (the Triton ops do not
    depend on the extension)."""
    if not HAVE_EXT and "gpu_backend" not in request.fixturenames and not request.node.name.startswith("test_triton"):
        pytest.skip(library.load_error())
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
# Relative to the largest magnitude of the expected tensor: products are accumulated in float32
# (float64) from exactly upcast inputs; outputs are rounded once to the dtype (the gram op) or
# kept in float32 (the loss).
REL = {torch.float64: 1e-11, torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
LOSS_REL = {torch.float64: 1e-11, torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}
# float16 gradients of the style term are ~1e-10 before grad_output multiplies them (they are
# kept in float32 until then): compare them under a GradScaler-like grad_output.
GRAD_SCALE = {torch.float16: 2.0 ** 14}


def close(actual, expected, rel):
    expected = expected.double()
    scale = max(expected.abs().max().item(), 1e-300) if expected.numel() else 1.0
    torch.testing.assert_close(actual.double(), expected, rtol=rel, atol=rel * scale)


def make_feats(shape, dtype, seed=0, relu=True):
    gen = torch.Generator().manual_seed(seed)
    fp = torch.randn(shape, generator=gen, dtype=torch.float64)
    ft = torch.randn(shape, generator=gen, dtype=torch.float64)
    if relu:  # post-ReLU-like features, as VGG's
        fp, ft = fp.relu() + 0.05 * fp, ft.relu() + 0.05 * ft
    return fp.to(dtype), ft.to(dtype)


def make_weight(shape, kind, dtype, seed=1):
    n, _, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    if kind is None:
        return None
    wshape = (1, 1, h, w) if kind.endswith("11HW") else (n, 1, h, w)
    if kind.startswith("soft"):
        wt = torch.rand(wshape, generator=gen, dtype=torch.float64)
    elif kind.startswith("binary"):
        wt = (torch.rand(wshape, generator=gen) > 0.4).double()
    elif kind == "zeros":
        wt = torch.zeros(wshape, dtype=torch.float64)
    else:
        wt = torch.ones(wshape, dtype=torch.float64)
    return wt.to(dtype)


def f64(t):
    return None if t is None else t.double()


def oracle_gram(feat, weight, grad=None):
    f = feat.double().detach().clone().requires_grad_()
    g = ref.gram_matrix(f, f64(weight))
    if grad is None:
        return g.detach(), None
    (gf,) = torch.autograd.grad(g, (f,), grad_outputs=grad.double())
    return g.detach(), gf


def oracle_style(fp, ft, weight):
    p = fp.double().detach().clone().requires_grad_()
    loss = ref.style_distance([p], [ft.double()], f64(weight))
    (gp,) = torch.autograd.grad(loss, (p,))
    return loss.detach(), gp


def op_style(fp, ft, weight, grad_output=1.0, backend="cpu"):
    p = fp.detach().clone().requires_grad_()
    loss = style_distance(p, ft, weight, backend=backend)
    go = torch.tensor(grad_output, dtype=loss.dtype, device=loss.device)
    (gp,) = torch.autograd.grad(loss, (p,), grad_outputs=go)
    return loss.detach(), gp


def check_gram(feat, weight, seed=2, backend="cpu"):
    n, c = feat.shape[:2]
    gG = torch.randn(n, c, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(feat.device)
    f = feat.detach().clone().requires_grad_()
    G = gram_matrix(f, weight, backend=backend)
    assert G.dtype == feat.dtype and G.shape == (n, c, c)
    assert torch.equal(G, G.transpose(1, 2))  # one triangle, mirrored: exactly symmetric
    (gf,) = torch.autograd.grad(G, (f,), grad_outputs=gG.to(feat.dtype))
    rG, rgf = oracle_gram(feat, weight, gG.to(feat.dtype))
    close(G, rG, REL[feat.dtype])
    assert gf.dtype == feat.dtype and gf.shape == feat.shape
    close(gf, rgf, REL[feat.dtype])
    return G, gf


def check_style(fp, ft, weight, backend="cpu"):
    s = GRAD_SCALE.get(fp.dtype, 1.0)
    loss, gp = op_style(fp, ft, weight, s, backend=backend)
    rl, rgp = oracle_style(fp, ft, weight)
    assert loss.dtype == fp.dtype and loss.dim() == 0
    assert gp.dtype == fp.dtype and gp.shape == fp.shape
    close(loss, rl, LOSS_REL[fp.dtype])
    close(gp.double() / s, rgp, REL[fp.dtype])
    return loss, gp


# ---------------------------------------------------------------- values against the oracle

WEIGHTS = [None, "soft", "soft11HW", "binary", "ones"]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weight", WEIGHTS, ids=str)
def test_gram_matches_reference(dtype, weight):
    feat, _ = make_feats((2, 7, 9, 11), dtype)
    check_gram(feat, make_weight(feat.shape, weight, dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("weight", WEIGHTS, ids=str)
def test_style_distance_matches_reference(dtype, weight):
    fp, ft = make_feats((2, 7, 9, 11), dtype)
    check_style(fp, ft, make_weight(fp.shape, weight, dtype))


@pytest.mark.parametrize("shape", [
    (1, 1, 1, 1), (3, 1, 4, 5), (2, 3, 1, 7), (1, 5, 6, 1),
    (2, 65, 6, 7),      # C <= 128: 32-row panels, a partial third panel
    (1, 130, 5, 9),     # C > 128: 64-row panels, 3 panels (one pair + the middle one), partial last
    (1, 20, 70, 90),    # few items: HW split into ranges whose partial Grams are summed
    (3, 40, 3, 2500),   # several HW chunks per gradient work item
], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16], ids=str)
def test_shapes_spanning_work_units(shape, dtype):
    fp, ft = make_feats(shape, dtype, seed=sum(shape))
    for weight in (None, make_weight(shape, "soft", dtype)):
        check_gram(fp, weight)
        check_style(fp, ft, weight)


def test_all_ones_weight_equals_no_weight():
    fp, ft = make_feats((2, 6, 8, 9), torch.float64)
    ones = torch.ones(2, 1, 8, 9, dtype=torch.float64)
    close(gram_matrix(fp, ones), gram_matrix(fp), 1e-13)
    close(op_style(fp, ft, ones)[1], op_style(fp, ft, None)[1], 1e-13)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_empty_weight_gives_zero_not_nan(dtype):
    fp, ft = make_feats((2, 4, 5, 6), dtype)
    zeros = torch.zeros(1, 1, 5, 6, dtype=dtype)
    G = gram_matrix(fp, zeros)
    assert torch.equal(G, torch.zeros_like(G))
    loss, gp = op_style(fp, ft, zeros)
    assert loss.item() == 0.0 and torch.equal(gp, torch.zeros_like(gp))
    # one empty sample among non-empty ones: the empty one's Gram is 0, the others unaffected
    w = torch.ones(2, 1, 5, 6, dtype=dtype)
    w[1] = 0
    G = gram_matrix(fp, w)
    assert torch.equal(G[1], torch.zeros_like(G[1]))
    close(G[0], oracle_gram(fp[:1], None)[0][0], REL[dtype])
    check_style(fp, ft, w)


def test_identical_features_give_exact_zero_and_zero_gradient():
    fp, _ = make_feats((2, 70, 9, 10), torch.float32)
    loss, gp = op_style(fp, fp.clone(), None)  # sign(0) = 0, as torch's abs backward
    assert loss.item() == 0.0 and torch.equal(gp, torch.zeros_like(gp))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_large_half_features_do_not_overflow(dtype):
    # fp16: products reach 250^2 * HW = 1.1e8, far beyond float16's 65504 (a float16 product
    # would overflow); bf16: 1e15^2 * HW ~ 1e33 (beyond bf16's precision, not its range).
    big = 250.0 if dtype == torch.float16 else 1e15
    fp, ft = make_feats((2, 4, 30, 60), torch.float64, seed=5)
    fp, ft = (fp.abs() * big / fp.abs().max()).to(dtype), (ft.abs() * big / ft.abs().max()).to(dtype)
    rG = oracle_gram(fp.float(), None)[0]  # the reference in float32 is finite ...
    assert torch.isfinite(ref.gram_matrix(fp.float())).all() and torch.isfinite(rG).all()
    G = gram_matrix(fp)                   # ... and so are we
    assert torch.isfinite(G).all()
    close(G, rG, REL[dtype])
    w = make_weight(fp.shape, "soft", dtype)
    assert torch.isfinite(gram_matrix(fp, w)).all()
    loss, gp = op_style(fp, ft, w)
    assert torch.isfinite(loss) and torch.isfinite(gp).all()
    close(loss, oracle_style(fp, ft, w)[0], LOSS_REL[dtype])


def test_degenerate_sizes_follow_the_reference():
    x = torch.randn(0, 3, 2, 4, dtype=torch.float64)  # no sample: mean of nothing is 0
    assert style_distance(x, x).item() == 0.0 and ref.style_distance([x], [x]).item() == 0.0
    assert gram_matrix(x).shape == (0, 3, 3)
    x = torch.randn(2, 3, 0, 4, dtype=torch.float64)  # no position: a zero Gram, with or without weight
    assert torch.equal(gram_matrix(x), torch.zeros(2, 3, 3, dtype=torch.float64))
    assert torch.equal(ref.gram_matrix(x), torch.zeros(2, 3, 3, dtype=torch.float64))
    assert style_distance(x, x).item() == 0.0 == ref.style_distance([x], [x]).item()
    w = torch.ones(2, 1, 0, 4, dtype=torch.float64)
    assert torch.equal(gram_matrix(x, w), ref.gram_matrix(x, w))
    assert style_distance(x, x, w).item() == 0.0 == ref.style_distance([x], [x], w).item()


# ---------------------------------------------------------------- layouts and strides

def _channels_last(t):
    return t.contiguous(memory_format=torch.channels_last)


def _strided(t):  # every other column of a wider tensor
    wide = torch.zeros(t.shape[:-1] + (2 * t.shape[-1],), dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    return wide[..., ::2]


def _channel_slice(t):  # a slice along C
    wide = torch.zeros((t.shape[0], t.shape[1] + 2) + t.shape[2:], dtype=t.dtype, device=t.device)
    wide[:, 1:-1] = t
    return wide[:, 1:-1]


def _transposed(t):  # H and W swapped in memory
    return t.transpose(2, 3).contiguous().transpose(2, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("layout", [_channels_last, _strided, _channel_slice, _transposed],
                         ids=lambda f: f.__name__.strip("_"))
def test_layouts(dtype, layout):
    fp, ft = make_feats((2, 70, 9, 12), dtype)
    w = make_weight(fp.shape, "soft", dtype)
    fpl, ftl, wl = layout(fp), layout(ft), layout(w)
    assert not fpl.is_contiguous()
    for weight in (None, wl):
        _, gf = check_gram(fpl, weight)
        _, gp = check_style(fpl, ftl, weight)
        if layout is _channels_last:  # processed natively: the gradient keeps the layout
            assert gf.is_contiguous(memory_format=torch.channels_last)
            assert gp.is_contiguous(memory_format=torch.channels_last)
    check_style(_channels_last(fp), ft, w)  # mixed layouts of prediction and target
    check_style(fp, _strided(ft), w[:1].expand(2, 1, 9, 12))  # expanded weight


# ---------------------------------------------------------------- autograd machinery

def test_gradcheck_fp64():
    fp, ft = make_feats((2, 3, 4, 5), torch.float64, seed=7, relu=False)
    ft = 0.3 * ft  # Gram differences well away from 0: sign() is constant under the perturbation
    w = make_weight(fp.shape, "soft", torch.float64)
    d = (ref.gram_matrix(fp, w) - ref.gram_matrix(ft, w)).abs().min()
    assert d > 1e-3
    p = fp.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: gram_matrix(x, w), (p,))
    assert torch.autograd.gradcheck(lambda x: gram_matrix(x), (p,))
    for weight in (w, None):
        assert torch.autograd.gradcheck(lambda x: style_distance(x, ft, weight), (p,))


def test_second_backward_works_and_double_backward_is_an_error():
    fp, ft = make_feats((2, 4, 5, 6), torch.float64)
    p = fp.clone().requires_grad_()
    loss = style_distance(p, ft)
    (g,) = torch.autograd.grad(loss, (p,), retain_graph=True)
    close(g, oracle_style(fp, ft, None)[1], 1e-12)
    (g2,) = torch.autograd.grad(2 * loss, (p,))  # the saved gradient is not consumed by a backward
    close(g2, 2 * oracle_style(fp, ft, None)[1], 1e-12)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(style_distance(p, ft), (p,), create_graph=True)
    (gG,) = torch.autograd.grad(gram_matrix(p).sum(), (p,), create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        gG.sum().backward()


def test_target_and_weight_are_constants():
    fp, ft = make_feats((1, 3, 4, 5), torch.float32)
    w = make_weight(fp.shape, "soft", torch.float32)
    with pytest.raises(RuntimeError, match="feat_target as a constant"):
        style_distance(fp.clone().requires_grad_(), ft.clone().requires_grad_())
    with pytest.raises(RuntimeError, match="does not differentiate its weight"):
        style_distance(fp.clone().requires_grad_(), ft, w.clone().requires_grad_())
    with pytest.raises(RuntimeError, match="does not differentiate its weight"):
        gram_matrix(fp.clone().requires_grad_(), w.clone().requires_grad_())


def test_gradient_only_computed_when_needed():
    fp, ft = make_feats((2, 3, 4, 5), torch.float32)
    loss, grad = STYLE(fp, ft, None, 1e-8, False)
    assert grad.shape == (0,) and loss.dtype == torch.float32
    close(loss, oracle_style(fp, ft, None)[0], 2e-6)
    p = fp.clone().requires_grad_()
    with torch.no_grad():
        assert not style_distance(p, ft).requires_grad
    loss, grad = STYLE(fp, ft, None, 1e-8, True)
    close(grad, oracle_style(fp, ft, None)[1], 2e-6)  # the op's own gradient output
    h = fp.half()
    assert STYLE(h, ft.half(), None, 1e-8, True)[1].dtype == torch.float32  # float16: float32 buffer


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_opcheck(dtype):
    fp, ft = make_feats((2, 5, 4, 6), dtype)
    w = make_weight(fp.shape, "soft", dtype)
    for args in [(fp, None, 1e-8), (fp.clone().requires_grad_(), w, 1e-8),
                 (_channels_last(fp).requires_grad_(), w[:1], 1e-8)]:
        torch.library.opcheck(GRAM, args)
    gG = torch.randn(2, 5, 5, dtype=dtype)
    torch.library.opcheck(GRAM_BACKWARD, (gG, fp, w, 1e-8))
    torch.library.opcheck(GRAM_BACKWARD, (gG, _channels_last(fp), None, 1e-8))
    torch.library.opcheck(STYLE, (fp, ft, w, 1e-8, False))
    torch.library.opcheck(STYLE, (_channels_last(fp), ft, None, 1e-8, True))
    torch.library.opcheck(STYLE, (fp.clone().requires_grad_(), ft, w, 1e-8, True))


def test_extension_reports_the_cpu_kernels():
    for op in ("gram", "gram_backward", "style_distance"):
        assert "cpu" in library.kernels(op)


@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_fullgraph(dynamic):
    fp, ft = make_feats((2, 6, 5, 7), torch.float32)
    w = make_weight(fp.shape, "soft", torch.float32)

    def loss_fn(p, t, wt):
        return style_distance(p, t, wt) + 0.5 * gram_matrix(p, wt).square().sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager", dynamic=dynamic)
    p = fp.clone().requires_grad_()
    loss = compiled(p, ft, w)
    loss.backward()
    rp = fp.double().requires_grad_()
    rloss = ref.style_distance([rp], [ft.double()], w.double()) + 0.5 * ref.gram_matrix(rp, w.double()).square().sum()
    rloss.backward()
    close(loss, rloss, 2e-6)
    close(p.grad, rp.grad, 2e-6)


# ---------------------------------------------------------------- determinism

def _run_all(fp, ft, w):
    p = fp.clone().requires_grad_()
    loss = style_distance(p, ft, w)
    (gp,) = torch.autograd.grad(loss, (p,))
    q = fp.clone().requires_grad_()
    G = gram_matrix(q, w)
    (gq,) = torch.autograd.grad(G, (q,), grad_outputs=torch.ones_like(G))
    return loss, gp, G, gq


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("shape", [(3, 130, 9, 14), (1, 24, 64, 70)], ids=["panels", "hw_split"])
def test_bitwise_deterministic_across_runs_and_threads(dtype, shape):
    fp, ft = make_feats(shape, dtype, seed=11)
    w = make_weight(shape, "soft", dtype)
    threads = torch.get_num_threads()
    try:
        for weight in (None, w):
            torch.set_num_threads(2)
            first, second = _run_all(fp, ft, weight), _run_all(fp, ft, weight)
            torch.set_num_threads(1)
            single = _run_all(fp, ft, weight)
            for a, b, c in zip(first, second, single):
                assert torch.equal(a, b) and torch.equal(a, c)
    finally:
        torch.set_num_threads(threads)
    close(first[0], oracle_style(fp, ft, w)[0], LOSS_REL[dtype])


# ---------------------------------------------------------------- C++ checks

def test_cpp_checks():
    fp, ft = make_feats((2, 3, 4, 5), torch.float32)
    w = make_weight(fp.shape, "soft", torch.float32)
    cases = [
        (lambda: GRAM(fp[0], None, 1e-8), "4-D"),
        (lambda: GRAM(fp.int(), None, 1e-8), "float16, bfloat16, float32 or float64"),
        (lambda: GRAM(fp, torch.rand(2, 3, 4, 5), 1e-8), "weight shape"),
        (lambda: GRAM(fp, torch.rand(3, 1, 4, 5), 1e-8), "weight shape"),
        (lambda: GRAM(fp, torch.rand(2, 1, 5, 4), 1e-8), "weight shape"),
        (lambda: GRAM(fp, w.double(), 1e-8), "weight dtype"),
        (lambda: GRAM(fp, w, 0.0), "eps must be positive"),
        (lambda: GRAM_BACKWARD(torch.ones(2, 3, 4), fp, None, 1e-8), "grad must have shape"),
        (lambda: GRAM_BACKWARD(torch.ones(2, 3, 3, dtype=torch.int32), fp, None, 1e-8), "grad must be floating"),
        (lambda: STYLE(fp, ft[:, :2], None, 1e-8, True), "feat_target shape"),
        (lambda: STYLE(fp, ft.double(), None, 1e-8, True), "feat_target dtype"),
        (lambda: STYLE(fp, ft, w[:, :, :3], 1e-8, True), "weight shape"),
        (lambda: STYLE(fp, ft, w, -1.0, True), "eps must be positive"),
    ]
    for call, match in cases:
        with pytest.raises(RuntimeError, match=match):
            call()


# ---------------------------------------------------------------- benchmark smoke run

def test_bench_quick(tmp_path):
    out = tmp_path / "quick.csv"
    subprocess.run([sys.executable, "benchmarks/bench_style_distance.py", "--quick", "--providers", "eager,cpu",
                    "--no-plot", "--repeats", "2", "--warmup", "1", "--modes", "full", "--out", str(out)], cwd=ROOT, check=True, capture_output=True,
                   text=True)
    import csv
    rows = list(csv.DictReader(out.open()))
    assert {r["provider"] for r in rows} == {"eager", "cpu"}
    assert {r["op"] for r in rows} == {"style_distance", "style_loss[identity]", "gram"}
    assert all(float(r["median_ms"]) > 0 and "MISMATCH" not in r["note"] for r in rows)


# ---------------------------------------------------------------- GPU backends ('cuda', 'triton')
# Through the gpu_backend fixture: on a GPU machine both run on CUDA tensors; here only 'triton'
# runs, on CPU tensors in Triton's interpreter (small shapes). The oracle is the same float64
# reference. bfloat16 only on a GPU (the interpreter's bfloat16 is not faithful).

TRITON_OPS = {
    "gram": lambda: torch.ops.inpaint_fast.gram_triton.default,
    "gram_backward": lambda: torch.ops.inpaint_fast.gram_backward_triton.default,
    "style_distance": lambda: torch.ops.inpaint_fast.style_distance_triton.default,
}


def gpu_dtypes(device, fp64=False):
    dtypes = [torch.float32, torch.float16] + ([torch.bfloat16] if device.type == "cuda" else [])
    return dtypes + ([torch.float64] if fp64 else [])


def on(device, *tensors):
    return [None if t is None else t.to(device) for t in tensors]


def the_op(name, backend):
    return TRITON_OPS[name]() if backend == "triton" else getattr(torch.ops.inpaint_fast, name).default


@pytest.mark.parametrize("weight", WEIGHTS + ["zeros", "binary11HW"], ids=str)
def test_gpu_matches_reference(gpu_backend, weight):
    backend, device = gpu_backend
    for dtype in gpu_dtypes(device, fp64=True):
        fp, ft = make_feats((2, 7, 9, 11), dtype)
        fp, ft, w = on(device, fp, ft, make_weight(fp.shape, weight, dtype))
        check_gram(fp, w, backend=backend)
        check_style(fp, ft, w, backend=backend)


@pytest.mark.parametrize("shape", [
    (1, 1, 1, 1), (3, 1, 4, 5), (2, 3, 1, 7),
    (2, 130, 5, 9),     # two 128-channel tiles: three upper tiles, partial last tile
    (1, 20, 70, 90),    # HW split into ranges (split-K) of several K blocks, partials summed in order
], ids=lambda s: "x".join(map(str, s)))
def test_gpu_shapes_spanning_tiles_and_splits(gpu_backend, shape):
    backend, device = gpu_backend
    dtypes = gpu_dtypes(device)
    if TRITON_INTERPRETED and shape[1] * shape[2] * shape[3] > 1000:
        dtypes = dtypes[:1]  # time: float16 is covered by the small shapes
    for dtype in dtypes:
        fp, ft = on(device, *make_feats(shape, dtype, seed=sum(shape)))
        for weight in (None, make_weight(shape, "soft", dtype).to(device)):
            check_gram(fp, weight, backend=backend)
            check_style(fp, ft, weight, backend=backend)


@pytest.mark.parametrize("layout", [_channels_last, _strided, _channel_slice, _transposed],
                         ids=lambda f: f.__name__.strip("_"))
def test_gpu_layouts(gpu_backend, layout):
    backend, device = gpu_backend
    dtype = torch.float32
    fp, ft = make_feats((2, 20, 9, 12), dtype)
    w = make_weight(fp.shape, "soft", dtype)
    fpl, ftl, wl = (layout(t.to(device)) for t in (fp, ft, w))
    assert not fpl.is_contiguous()
    for weight in (None, wl):
        _, gf = check_gram(fpl, weight, backend=backend)
        _, gp = check_style(fpl, ftl, weight, backend=backend)
        if layout is _channels_last:  # the gradient keeps the layout, as the C++ ops' (and fakes')
            assert gf.is_contiguous(memory_format=torch.channels_last)
            assert gp.is_contiguous(memory_format=torch.channels_last)
    fp, ft, w = on(device, fp, ft, w)
    check_style(_channels_last(fp), ft, w, backend=backend)  # mixed layouts of prediction and target
    check_style(fp, ft.transpose(2, 3).contiguous().transpose(2, 3), w[:1].expand(2, 1, 9, 12), backend=backend)


def test_gpu_empty_weight_and_degenerate_sizes(gpu_backend):
    backend, device = gpu_backend
    fp, ft = on(device, *make_feats((2, 4, 5, 6), torch.float32))
    zeros = torch.zeros(1, 1, 5, 6, device=device)
    G = gram_matrix(fp, zeros, backend=backend)
    assert torch.equal(G, torch.zeros_like(G))
    loss, gp = op_style(fp, ft, zeros, backend=backend)
    assert loss.item() == 0.0 and torch.equal(gp, torch.zeros_like(gp))
    w = torch.ones(2, 1, 5, 6, device=device)
    w[1] = 0  # one empty sample among non-empty ones
    G = gram_matrix(fp, w, backend=backend)
    assert torch.equal(G[1], torch.zeros_like(G[1]))
    check_style(fp, ft, w, backend=backend)
    x = torch.randn(0, 3, 2, 4, device=device)  # no sample: mean of nothing is 0
    assert style_distance(x, x, backend=backend).item() == 0.0
    assert gram_matrix(x, backend=backend).shape == (0, 3, 3)
    x = torch.randn(2, 3, 0, 4, device=device)  # no position: a zero Gram, with or without weight
    assert torch.equal(gram_matrix(x, backend=backend), torch.zeros(2, 3, 3, device=device))
    assert style_distance(x, x, backend=backend).item() == 0.0
    w = torch.ones(2, 1, 0, 4, device=device)
    assert torch.equal(gram_matrix(x, w, backend=backend), ref.gram_matrix(x, w))
    assert style_distance(x, x, w, backend=backend).item() == 0.0


def test_gpu_identical_features_give_exact_zero(gpu_backend):
    backend, device = gpu_backend
    fp, _ = on(device, *make_feats((2, 40, 9, 10), torch.float32))
    loss, gp = op_style(fp, fp.clone(), None, backend=backend)
    assert loss.item() == 0.0 and torch.equal(gp, torch.zeros_like(gp))


def test_gpu_large_half_features_do_not_overflow(gpu_backend):
    backend, device = gpu_backend
    for dtype, big in [(torch.float16, 250.0)] + ([(torch.bfloat16, 1e15)] if device.type == "cuda" else []):
        fp, ft = make_feats((2, 4, 30, 60), torch.float64, seed=5)
        fp, ft = (fp.abs() * big / fp.abs().max()).to(dtype), (ft.abs() * big / ft.abs().max()).to(dtype)
        fp, ft, w = on(device, fp, ft, make_weight(fp.shape, "soft", dtype))
        G = gram_matrix(fp, backend=backend)
        assert torch.isfinite(G).all()
        close(G, oracle_gram(fp.float(), None)[0], REL[dtype])
        Gw = gram_matrix(fp, w, backend=backend)
        assert torch.isfinite(Gw).all()
        close(Gw, oracle_gram(fp, w)[0], REL[dtype])
        loss, gp = op_style(fp, ft, w, backend=backend)
        assert torch.isfinite(loss) and torch.isfinite(gp).all()
        close(loss, oracle_style(fp, ft, w)[0], LOSS_REL[dtype])


def test_gpu_op_outputs_and_errors(gpu_backend):
    backend, device = gpu_backend
    style_op = the_op("style_distance", backend)
    fp, ft = on(device, *make_feats((2, 3, 4, 5), torch.float32))
    loss, grad = style_op(fp, ft, None, 1e-8, False)
    assert grad.shape == (0,) and loss.dtype == torch.float32 and loss.dim() == 0
    close(loss, oracle_style(fp, ft, None)[0], 2e-6)
    loss, grad = style_op(fp, ft, None, 1e-8, True)
    close(grad, oracle_style(fp, ft, None)[1], 2e-6)  # the op's own gradient output
    assert style_op(fp.half(), ft.half(), None, 1e-8, True)[1].dtype == torch.float32
    with pytest.raises(RuntimeError, match="feat_target as a constant"):
        style_distance(fp.clone().requires_grad_(), ft.clone().requires_grad_(), backend=backend)
    with pytest.raises(RuntimeError, match="double backward"):
        p = fp.clone().requires_grad_()
        torch.autograd.grad(style_distance(p, ft, backend=backend), (p,), create_graph=True)
    with pytest.raises(RuntimeError, match="weight shape"):
        the_op("gram", backend)(fp, torch.rand(3, 1, 4, 5, device=device), 1e-8)
    with pytest.raises(RuntimeError, match="eps must be positive"):
        style_op(fp, ft, None, 0.0, False)


def test_gpu_opcheck(gpu_backend):
    backend, device = gpu_backend
    gram_op, gram_bw_op, style_op = (the_op(n, backend) for n in ("gram", "gram_backward", "style_distance"))
    for dtype in (torch.float32,) if TRITON_INTERPRETED else (torch.float32, torch.float16, torch.float64):
        fp, ft = on(device, *make_feats((2, 5, 4, 6), dtype))
        w = make_weight(fp.shape, "soft", dtype).to(device)
        torch.library.opcheck(gram_op, (fp.clone().requires_grad_(), w, 1e-8))
        torch.library.opcheck(gram_op, (_channels_last(fp).requires_grad_(), None, 1e-8))
        gG = torch.randn(2, 5, 5, dtype=dtype, device=device)
        torch.library.opcheck(gram_bw_op, (gG, _channels_last(fp), w[:1], 1e-8))
        torch.library.opcheck(style_op, (fp, ft, w, 1e-8, False))
        torch.library.opcheck(style_op, (_channels_last(fp).requires_grad_(), ft, None, 1e-8, True))


def test_gpu_gradcheck_fp64(gpu_backend):
    backend, device = gpu_backend
    fp, ft = make_feats((2, 3, 4, 5), torch.float64, seed=7, relu=False)
    ft = 0.3 * ft  # Gram differences well away from 0: sign() is constant under the perturbation
    w = make_weight(fp.shape, "soft", torch.float64)
    assert (ref.gram_matrix(fp, w) - ref.gram_matrix(ft, w)).abs().min() > 1e-3
    fp, ft, w = on(device, fp, ft, w)
    p = fp.clone().requires_grad_()
    # Interpreted, each evaluation costs ~0.1 s: gradcheck's fast mode (random directions) there.
    fast = TRITON_INTERPRETED
    assert torch.autograd.gradcheck(lambda x: gram_matrix(x, w, backend=backend), (p,), fast_mode=fast)
    for weight in (w, None):
        assert torch.autograd.gradcheck(lambda x: style_distance(x, ft, weight, backend=backend), (p,),
                                        fast_mode=fast)


def test_gpu_bitwise_deterministic(gpu_backend):
    backend, device = gpu_backend
    shape = (2, 20, 16, 40) if TRITON_INTERPRETED else (4, 256, 64, 64)  # split-K in both cases
    for dtype in gpu_dtypes(device):
        fp, ft = on(device, *make_feats(shape, dtype, seed=11))
        for weight in (None, make_weight(shape, "soft", dtype).to(device)):
            def run():
                loss, gp = op_style(fp, ft, weight, backend=backend)
                q = fp.clone().requires_grad_()
                G = gram_matrix(q, weight, backend=backend)
                (gq,) = torch.autograd.grad(G, (q,), grad_outputs=torch.ones_like(G))
                return loss, gp, G, gq
            first, second = run(), run()
            for a, b in zip(first, second):
                assert torch.equal(a, b)
            close(first[0], oracle_style(fp, ft, weight)[0], LOSS_REL[dtype])


def test_gpu_torch_compile_fullgraph(gpu_backend):
    backend, device = gpu_backend
    fp, ft = make_feats((2, 6, 5, 7), torch.float32)
    fp, ft, w = on(device, fp, ft, make_weight(fp.shape, "soft", torch.float32))

    def loss_fn(p, t, wt):
        return style_distance(p, t, wt, backend=backend) + 0.5 * gram_matrix(p, wt, backend=backend).square().sum()

    torch._dynamo.reset()
    # The interpreter runs the Triton kernels eagerly: compile with aot_eager there; inductor on a GPU.
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager" if TRITON_INTERPRETED else "inductor")
    p = fp.clone().requires_grad_()
    loss = compiled(p, ft, w)
    loss.backward()
    rp = fp.double().requires_grad_()
    rloss = ref.style_distance([rp], [ft.double()], w.double()) + 0.5 * ref.gram_matrix(rp, w.double()).square().sum()
    rloss.backward()
    close(loss, rloss, 2e-6)
    close(p.grad, rp.grad, 2e-6)


def test_triton_kernels_are_listed():
    pytest.importorskip("triton")
    assert "triton" in library.kernels("style_distance")
    assert hasattr(torch.ops.inpaint_fast, "style_distance_triton")


_COMPILE_SM90 = r"""
from tests.triton_aot import compile_sm90
from inpaint_fast.ops.triton import style_distance as m

gram = dict(T=2, NF=2, FLAT=True, BLOCK_C=128)
for dt, acc, weighted, tf32, bk in [("fp16", "fp32", False, False, 64), ("fp32", "fp32", True, True, 32),
                                    ("fp64", "fp64", True, False, 16)]:
    compile_sm90(m._gram_partial_kernel, dict(feat_ptr="*" + dt, feat2_ptr="*" + dt, ws_ptr="*" + acc,
                                              scale_ptr="*" + acc, part_ptr="*" + acc),
                 dict(gram, WEIGHTED=weighted, TF32=tf32, BLOCK_K=bk, FLAT=dt != "fp64"), num_warps=8)
compile_sm90(m._style_finish_kernel, dict(part_ptr="*fp32", loss_ptr="*fp32", sign_ptr="*bf16"),
             dict(T=2, BLOCK_C=128, COMPUTE_GRAD=True), num_warps=8)
compile_sm90(m._gram_finish_kernel, dict(part_ptr="*fp32", out_ptr="*fp16"), dict(T=2, BLOCK_C=128), num_warps=8)
for a, f, g, weighted, tf32 in [("fp16", "fp16", "fp32", True, False), ("fp32", "bf16", "bf16", False, True),
                                ("fp64", "fp64", "fp64", True, False)]:
    acc = "fp64" if f == "fp64" else "fp32"
    compile_sm90(m._grad_kernel, dict(a_ptr="*" + a, feat_ptr="*" + f, ws_ptr="*" + acc, scale_ptr="*" + acc,
                                      grad_ptr="*" + g, HW="i64"),
                 dict(WEIGHTED=weighted, FLAT=True, G_FLAT=False, TF32=tf32, BLOCK_M=128, BLOCK_N=128, BLOCK_J=32),
                 num_warps=8)
print("compiled")
"""


def test_triton_kernels_compile_for_sm90():
    """The interpreter does not compile: compile the GPU path's kernels ahead of time for sm_90 (no GPU
    needed) in the dtype/precision variants the launchers use, so that a Triton compile error (e.g. a
    dot's dtype or precision; triton 3.6 wants the accumulator's dtype as out_dtype) fails here too."""
    require_sm90()
    res = run_script(_COMPILE_SM90)
    assert res.returncode == 0 and "compiled" in res.stdout, res.stderr[-4000:]
