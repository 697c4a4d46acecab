"""inpaint_fast::q_sample, q_sample_backward and repaint_blend (C++ CPU kernels).

Oracles: the formulas written out here from the math, in float64 on the upcast inputs,
``x_t = sqrt(ᾱ[t]) x0 + sqrt(1 - ᾱ[t]) ε`` (Ho et al. 2020, eq. 4) and RePaint's blend
``m x_t + (1 - m) x_pred`` (Lugmayr et al. 2022, eq. 8); closed forms on a hand-made schedule
(ᾱ = 1, 1/4, 0); torch.autograd.gradcheck / gradgradcheck (finite differences) for the gradients.
"""
import pytest
import torch

from inpaint_fast.ops import library

requires_extension = pytest.mark.skipif(
    library.load_error() is not None or "cpu" not in library.kernels("q_sample"),
    reason=str(library.load_error() or "the extension has no q_sample kernel"))
pytestmark = requires_extension

if library.load_error() is None and "cpu" in library.kernels("q_sample"):
    from inpaint_fast.ops import q_sample as Q
    OP = torch.ops.inpaint_fast.q_sample.default
    BACK_OP = torch.ops.inpaint_fast.q_sample_backward.default
    BLEND_OP = torch.ops.inpaint_fast.repaint_blend.default

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-14), torch.float32: dict(rtol=1e-6, atol=1e-6),
       torch.float16: dict(rtol=1e-3, atol=1e-3), torch.bfloat16: dict(rtol=8e-3, atol=8e-3)}


def schedule(T=50):
    """DDPM's linear β schedule (1e-4 .. 0.02), its ᾱ in float64."""
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)


def images(shape, dtype, count=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(count)]


def oracle_q(x0, t, noise, abar):
    a = abar.double()[t.long()].view(-1, 1, 1, 1)
    return a.sqrt() * x0.double() + (1 - a).sqrt() * noise.double()


def oracle_blend(xk, noise, xp, known, t, abar):
    v = known.double()
    return v * oracle_q(xk, t, noise, abar) + (1 - v) * xp.double()


def timesteps(n, T=50, seed=1):
    return torch.randint(0, T, (n,), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- q_sample

def test_closed_form_on_a_hand_made_schedule():
    abar = torch.tensor([1.0, 0.25, 0.0], dtype=torch.float64)
    x0, noise = images((3, 2, 5, 7), torch.float32)
    xt = Q.q_sample(x0, torch.tensor([0, 1, 2]), noise, abar)
    assert torch.equal(xt[0], x0[0])      # ᾱ = 1: the clean image, exactly
    assert torch.equal(xt[2], noise[2])   # ᾱ = 0: pure noise, exactly
    torch.testing.assert_close(xt[1], 0.5 * x0[1] + 0.75 ** 0.5 * noise[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_values_per_dtype(dtype):
    x0, noise = images((3, 3, 9, 11), dtype)
    t, abar = timesteps(3), schedule()
    xt = Q.q_sample(x0, t, noise, abar)
    assert xt.dtype == dtype and xt.shape == x0.shape and xt.is_contiguous()
    torch.testing.assert_close(xt.double(), oracle_q(x0, t, noise, abar), **TOL[dtype])
    # int32 timesteps and a float32 schedule are accepted; the coefficients come from ᾱ in float64
    xt32 = Q.q_sample(x0, t.int(), noise, abar.float())
    torch.testing.assert_close(xt32.double(), oracle_q(x0, t, noise, abar.float()), **TOL[dtype])


@pytest.mark.parametrize("shape", [(2, 3, 100, 100), (1, 3, 120, 160), (2, 1, 1, 5), (0, 3, 4, 4)])
def test_layouts_and_sizes(shape):
    # (2,3,100,100) channels_last: 30000 elements per sample, two units; (1,3,120,160): planes of
    # 19200 > 16384 elements, two units per plane in the planes layout
    x0, noise = images(shape, torch.float32)
    t, abar = timesteps(shape[0]), schedule()
    expected = oracle_q(x0, t, noise, abar)
    cl = Q.q_sample(x0.to(memory_format=torch.channels_last), t, noise.to(memory_format=torch.channels_last), abar)
    torch.testing.assert_close(cl.double(), expected, **TOL[torch.float32])
    if shape[1] > 1 and shape[2] * shape[3] > 1:
        assert cl.is_contiguous(memory_format=torch.channels_last)
    mixed = Q.q_sample(x0.to(memory_format=torch.channels_last), t, noise, abar)  # copied: contiguous out
    torch.testing.assert_close(mixed.double(), expected, **TOL[torch.float32])
    assert mixed.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_long_runs(dtype):
    """Runs of several thousand elements with odd lengths: float16 is staged through float32 in chunks
    of 512 (x86-64-v3), so this crosses chunk boundaries and ends on a partial vector."""
    x0, noise, xp, g = images((2, 3, 33, 37), dtype, count=4)
    t, abar = timesteps(2), schedule()
    soft = make_mask((2, 1, 33, 37), "soft", dtype)
    a = abar[t].view(-1, 1, 1, 1)
    for fmt in (torch.contiguous_format, torch.channels_last):
        xf, zf, pf, gf = (v.to(memory_format=fmt) for v in (x0, noise, xp, g))
        torch.testing.assert_close(Q.q_sample(xf, t, zf, abar).double(), oracle_q(x0, t, noise, abar), **TOL[dtype])
        gx, gz = BACK_OP(gf, t, abar, True, True)
        torch.testing.assert_close(gx.double(), a.sqrt() * g.double(), **TOL[dtype])
        torch.testing.assert_close(gz.double(), (1 - a).sqrt() * g.double(), **TOL[dtype])
        for m in (soft, soft > 0.5):
            torch.testing.assert_close(Q.repaint_blend_fused(xf, zf, pf, m, t, abar).double(),
                                       oracle_blend(x0, noise, xp, m, t, abar), **TOL[dtype])


def test_strided_inputs():
    x0, noise = images((4, 6, 10, 12), torch.float64)
    t, abar = timesteps(4), schedule()
    for a, b, tt in ((x0[1:], noise[1:], t[1:]),                        # slices along N (flat, in place)
                     (x0[:, ::2], noise[:, 1::2], t),                   # slices along C (planes, in place)
                     (x0[:, :, 2:7], noise[:, :, 3:8], t),              # crops along H (planes, in place)
                     (x0.transpose(2, 3), noise.transpose(2, 3), t),    # copied
                     (x0, noise[:1].expand_as(noise), t)):              # a broadcast (stride 0) noise
        torch.testing.assert_close(Q.q_sample(a, tt, b, abar), oracle_q(a, tt, b, abar), **TOL[torch.float64])
    t_strided, abar_strided = torch.stack([t, t], 1)[:, 0], torch.stack([abar, abar], 1)[:, 0]  # stride 2
    torch.testing.assert_close(Q.q_sample(x0, t_strided, noise, abar_strided), oracle_q(x0, t, noise, abar))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients(dtype):
    x0, noise = images((2, 3, 6, 7), dtype)
    t, abar = timesteps(2), schedule()
    g_out = images((2, 3, 6, 7), dtype, count=1, seed=5)[0]
    a = abar[t].view(-1, 1, 1, 1)
    for need in ((True, True), (True, False), (False, True)):
        x = x0.clone().requires_grad_(need[0])
        z = noise.clone().requires_grad_(need[1])
        grads = torch.autograd.grad(Q.q_sample(x, t, z, abar), [v for v in (x, z) if v.requires_grad], g_out)
        expected = [c for c, n in ((a.sqrt() * g_out.double(), need[0]), ((1 - a).sqrt() * g_out.double(), need[1]))
                    if n]
        for got, want in zip(grads, expected):
            assert got.dtype == dtype
            torch.testing.assert_close(got.double(), want, **TOL[dtype])


def test_backward_of_a_sum_and_channels_last_gradients():
    x0, noise = images((2, 3, 8, 8), torch.float32)
    t, abar = timesteps(2), schedule()
    x = x0.to(memory_format=torch.channels_last).requires_grad_()
    Q.q_sample(x, t, noise.to(memory_format=torch.channels_last), abar).sum().backward()  # grad: expanded ones
    torch.testing.assert_close(x.grad, abar[t].sqrt().float().view(-1, 1, 1, 1).expand_as(x0))
    gx, gz = BACK_OP(torch.ones_like(x0).to(memory_format=torch.channels_last), t, abar, True, True)
    assert gx.is_contiguous(memory_format=torch.channels_last) and gz.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gz, (1 - abar[t]).sqrt().float().view(-1, 1, 1, 1).expand_as(x0))
    gx, gz = BACK_OP(x0, t, abar, False, False)
    assert gx.numel() == 0 and gz.numel() == 0


def test_gradcheck_and_gradgradcheck():
    x0, noise = images((2, 2, 3, 4), torch.float64)
    x, z = x0.requires_grad_(), noise.requires_grad_()
    t, abar = timesteps(2), schedule()
    fn = lambda a, b: Q.q_sample(a, t, b, abar)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, z))
    assert torch.autograd.gradgradcheck(fn, (x, z))
    assert torch.autograd.gradgradcheck(lambda a: Q.q_sample(a, t, noise.detach(), abar), (x,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck(dtype):
    x0, noise = images((2, 3, 5, 6), dtype)
    t, abar = timesteps(2), schedule()
    torch.library.opcheck(OP, (x0.requires_grad_(), t, noise.requires_grad_(), abar))
    torch.library.opcheck(OP, (x0.detach().to(memory_format=torch.channels_last), t,
                               noise.detach().to(memory_format=torch.channels_last), abar))
    torch.library.opcheck(BACK_OP, (x0.detach(), t, abar, True, False))
    torch.library.opcheck(BACK_OP, (x0.detach().clone().requires_grad_(), t, abar, True, True))
    torch.library.opcheck(BACK_OP, (x0.detach().to(memory_format=torch.channels_last), t, abar, False, True))
    mask = torch.rand(2, 1, 5, 6, generator=torch.Generator().manual_seed(3), dtype=dtype)
    for m, hole in ((mask, False), (mask > 0.5, True), ((mask > 0.5).to(torch.uint8), False)):
        torch.library.opcheck(BLEND_OP, (x0.detach(), noise.detach(), noise.detach() * 2, m, hole, t, abar))
    torch.library.opcheck(BLEND_OP, (x0.detach().to(memory_format=torch.channels_last), noise.detach(),
                                     noise.detach(), mask, False, t, abar))


def test_compile_fullgraph():
    x0, noise = images((2, 3, 8, 8), torch.float32)
    t, abar = timesteps(2), schedule()
    mask = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4)) > 0.5

    def step(x, z):
        return (Q.q_sample(x, t, z, abar) ** 2).sum()

    def sample(xk, z, xp):
        return Q.repaint_blend_fused(xk, z, xp, mask, t, abar)

    torch._dynamo.reset()
    x = x0.clone().requires_grad_()
    value = torch.compile(step, fullgraph=True, backend="aot_eager")(x, noise)
    value.backward()
    xt = oracle_q(x0, t, noise, abar)
    torch.testing.assert_close(value.double(), (xt ** 2).sum(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), 2 * xt * abar[t].sqrt().view(-1, 1, 1, 1), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        out = torch.compile(sample, fullgraph=True, backend="aot_eager")(x0, noise, 3 * noise)
    torch.testing.assert_close(out.double(), oracle_blend(x0, noise, 3 * noise, mask, t, abar), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_bitwise_deterministic_across_threads(channels_last):
    shape = (3, 3, 96, 96)  # several units per image in both layouts
    x0, noise, xp = images(shape, torch.float32, count=3)
    if channels_last:
        x0, noise, xp = (v.to(memory_format=torch.channels_last) for v in (x0, noise, xp))
    t, abar = timesteps(3), schedule()
    soft = torch.rand(3, 1, 96, 96, generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 2):
            torch.set_num_threads(n)
            runs.append([OP(x0, t, noise, abar), *BACK_OP(x0, t, abar, True, True),
                         BLEND_OP(x0, noise, xp, soft, False, t, abar),
                         BLEND_OP(x0, noise, xp, soft > 0.5, True, t, abar)])
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(run, runs[0]))


# --------------------------------------------------------------------------------------------- repaint_blend

def make_mask(shape, kind, dtype, seed=7):
    r = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if kind == "bool":
        return r > 0.4
    if kind == "uint8":
        return (r > 0.4).to(torch.uint8)
    return r.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["bool", "uint8", "soft"])
def test_blend_mask_kinds_and_dtypes(dtype, kind):
    xk, noise, xp = images((2, 3, 7, 9), dtype, count=3)
    t, abar = timesteps(2), schedule()
    for mshape in ((2, 1, 7, 9), (2, 3, 7, 9), (1, 1, 7, 9)):
        mask = make_mask(mshape, kind, dtype)
        out = Q.repaint_blend_fused(xk, noise, xp, mask, t, abar)
        assert out.dtype == dtype and out.shape == xk.shape
        torch.testing.assert_close(out.double(), oracle_blend(xk, noise, xp, mask, t, abar), **TOL[dtype])
        hole = (~mask.bool()).to(mask.dtype) if kind != "soft" else 1 - mask
        by_hole = Q.repaint_blend_fused(xk, noise, xp, None, t, abar, hole=hole)
        torch.testing.assert_close(by_hole.double(), oracle_blend(xk, noise, xp, 1 - hole.double(), t, abar),
                                   **TOL[dtype])
        if kind != "soft":  # binary: a select between q (as the q_sample op computes it) and x_pred, bitwise
            assert torch.equal(by_hole, out)
            known = mask.bool().expand_as(xk)
            q = Q.q_sample(xk, t, noise, abar)
            assert torch.equal(out[~known], xp[~known])
            # the same formula in another loop: the compiler may contract a*x + b*z into an FMA differently
            eps = torch.finfo(dtype).eps
            torch.testing.assert_close(out[known], q[known], rtol=eps, atol=eps)


def test_blend_mask_shapes_and_layouts():
    xk, noise, xp = images((2, 3, 40, 60), torch.float32, count=3)
    t, abar = timesteps(2), schedule()
    mask = make_mask((2, 40, 60), "soft", torch.float64)  # (N, H, W), float64: cast to the image dtype
    expected = oracle_blend(xk, noise, xp, mask.float()[:, None], t, abar)
    cl = [v.to(memory_format=torch.channels_last) for v in (xk, noise, xp)]
    for args, m in (((xk, noise, xp), mask), (cl, mask), (cl, mask[:, None].expand(2, 3, 40, 60).contiguous()),
                    ((xk, noise, cl[2]), mask),  # mixed layouts: x_pred copied
                    ((xk, noise, xp), mask.transpose(1, 2).contiguous().transpose(1, 2))):  # mask copied
        out = Q.repaint_blend_fused(*args, m, t, abar)
        torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-6)
    assert Q.repaint_blend_fused(*cl, mask, t, abar).is_contiguous(memory_format=torch.channels_last)
    hw = make_mask((40, 60), "bool", torch.float32)  # (H, W)
    torch.testing.assert_close(Q.repaint_blend_fused(*cl, hw, t, abar).double(),
                               oracle_blend(xk, noise, xp, hw, t, abar), rtol=1e-6, atol=1e-6)
    per_channel = make_mask((1, 3, 40, 60), "uint8", torch.float32).to(memory_format=torch.channels_last)
    torch.testing.assert_close(Q.repaint_blend_fused(*cl, per_channel, t, abar).double(),
                               oracle_blend(xk, noise, xp, per_channel, t, abar), rtol=1e-6, atol=1e-6)


def test_known_region_is_the_input_at_t0():
    """RePaint's last step (ᾱ_0 = 1 in a schedule that starts without noise): the known region is the input."""
    xk, noise, xp = images((2, 3, 6, 6), torch.float32, count=3)
    abar = torch.cat([torch.ones(1, dtype=torch.float64), schedule()])
    mask = make_mask((2, 1, 6, 6), "bool", torch.float32)
    out = Q.repaint_blend_fused(xk, noise, xp, mask, torch.zeros(2, dtype=torch.int64), abar)
    assert torch.equal(torch.where(mask, out, 0), torch.where(mask, xk, 0))
    plain = Q.repaint_blend(xk, xp, mask)
    assert torch.equal(plain, torch.where(mask, xk, xp))
    xp_nan = torch.where(mask, float("nan"), xp)  # a binary mask selects: nothing leaks from the other side
    assert torch.equal(Q.repaint_blend(xk, xp_nan, mask), plain)
    assert torch.equal(Q.repaint_blend(xk, xp_nan, None, hole=(~mask).to(torch.uint8)), plain)
    soft = make_mask((2, 1, 6, 6), "soft", torch.float32)
    torch.testing.assert_close(Q.repaint_blend(xk, xp, soft), soft * xk + (1 - soft) * xp)


def test_blend_with_inputs_that_require_grad_uses_the_composite():
    xk, noise, xp = images((2, 2, 4, 5), torch.float64, count=3)
    t, abar = timesteps(2), schedule()
    soft = make_mask((2, 1, 4, 5), "soft", torch.float64)
    args = [v.clone().requires_grad_() for v in (xk, noise, xp, soft)]
    assert torch.autograd.gradcheck(lambda a, b, c, m: Q.repaint_blend_fused(a, b, c, m, t, abar), args)
    binary = soft > 0.5
    assert torch.autograd.gradcheck(lambda a, b, c: Q.repaint_blend_fused(a, b, c, None, t, abar, hole=binary),
                                    args[:3])
    assert torch.autograd.gradcheck(lambda a, c, m: Q.repaint_blend(a, c, m), (args[0], args[2], args[3]))
    out = Q.repaint_blend_fused(*args[:3], binary, t, abar)
    torch.testing.assert_close(out.double(), oracle_blend(xk, noise, xp, binary, t, abar))
    with torch.no_grad():  # under no_grad the fused op runs, same values
        torch.testing.assert_close(Q.repaint_blend_fused(*args[:3], binary, t, abar), out, rtol=1e-15, atol=1e-15)
    raw = BLEND_OP(args[0], noise, xp, soft, False, t, abar)
    with pytest.raises(RuntimeError, match="repaint_blend has no backward"):
        raw.sum().backward()


# --------------------------------------------------------------------------------------------- bad inputs

def test_python_entry_validates():
    x0, noise = images((2, 3, 4, 4), torch.float32)
    t, abar = timesteps(2), schedule()
    mask = torch.ones(2, 1, 4, 4, dtype=torch.bool)
    cases = [
        (TypeError, "x0 must be a torch.Tensor", lambda: Q.q_sample(x0.numpy(), t, noise, abar)),
        (ValueError, "x0 must have shape", lambda: Q.q_sample(x0[0], t, noise[0], abar)),
        (TypeError, "x0 must be a floating", lambda: Q.q_sample(x0.long(), t, noise.long(), abar)),
        (ValueError, "noise must have the shape", lambda: Q.q_sample(x0, t, noise[:1], abar)),
        (TypeError, "noise must have the dtype", lambda: Q.q_sample(x0, t, noise.double(), abar)),
        (TypeError, "t must be an int64", lambda: Q.q_sample(x0, t.float(), noise, abar)),
        (TypeError, "t must be a torch.Tensor", lambda: Q.q_sample(x0, [1, 2], noise, abar)),
        (ValueError, "t must have shape", lambda: Q.q_sample(x0, t[:1], noise, abar)),
        (ValueError, "t must have shape", lambda: Q.q_sample(x0, t[:, None], noise, abar)),
        (TypeError, "alphas_cumprod must be floating", lambda: Q.q_sample(x0, t, noise, t)),
        (ValueError, "alphas_cumprod must have shape", lambda: Q.q_sample(x0, t, noise, abar[None])),
        (ValueError, "alphas_cumprod must have shape", lambda: Q.q_sample(x0, t, noise, abar[:0])),
        (ValueError, r"t\[1\] = 50 is out of range \[0, 50\)",
         lambda: Q.q_sample(x0, torch.tensor([0, 50]), noise, abar)),
        (ValueError, r"t\[0\] = -1 is out of range", lambda: Q.q_sample(x0, torch.tensor([-1, 0]), noise, abar)),
        (ValueError, "x_known and x_pred must have the same shape",
         lambda: Q.repaint_blend_fused(x0, noise, noise[:, :2], mask, t, abar)),
        (ValueError, "mask of shape", lambda: Q.repaint_blend_fused(x0, noise, noise, mask[:, :, :2], t, abar)),
        (ValueError, "a mask is required", lambda: Q.repaint_blend_fused(x0, noise, noise, None, t, abar)),
        (ValueError, "not both", lambda: Q.repaint_blend_fused(x0, noise, noise, mask, t, abar, hole=mask)),
        (TypeError, "mask must be bool, uint8 or floating",
         lambda: Q.repaint_blend_fused(x0, noise, noise, mask.long(), t, abar)),
        (ValueError, r"t\[1\] = 99 is out of range",
         lambda: Q.repaint_blend_fused(x0, noise, noise, mask, torch.tensor([3, 99]), abar)),
        (ValueError, "x_known_noised and x_pred must have the same shape",
         lambda: Q.repaint_blend(x0, noise[:1], mask)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()


def test_op_checks():
    x0, noise = images((2, 3, 4, 4), torch.float32)
    t, abar = timesteps(2), schedule()
    mask = torch.ones(2, 1, 4, 4)
    cases = [
        (ValueError, "x0 must be 4-D", lambda: OP(x0[0], t, noise[0], abar)),
        (ValueError, "noise shape", lambda: OP(x0, t, noise[:1], abar)),
        (TypeError, "noise dtype", lambda: OP(x0, t, noise.double(), abar)),
        (TypeError, "t must be int64", lambda: OP(x0, t.float(), noise, abar)),
        (ValueError, "t must have shape", lambda: OP(x0, t[:1], noise, abar)),
        (ValueError, "alphas_cumprod must be 1-D", lambda: OP(x0, t, noise, abar[None])),
        (ValueError, r"t\[1\] = 7 is out of range \[0, 3\)", lambda: OP(x0, torch.tensor([0, 7]), noise, abar[:3])),
        (ValueError, "out of range", lambda: BACK_OP(x0, torch.tensor([0, 70]), abar, True, True)),
        (ValueError, "mask shape", lambda: BLEND_OP(x0, noise, noise, mask[:, :, :3], False, t, abar)),
        (TypeError, "mask must be bool, uint8 or the images' dtype",
         lambda: BLEND_OP(x0, noise, noise, mask.double(), False, t, abar)),
        (TypeError, "x_pred dtype", lambda: BLEND_OP(x0, noise, noise.double(), mask, False, t, abar)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()


def test_baseline_isa_build():
    """ATEN_CPU_CAPABILITY=default selects the baseline (non-AVX2) build of the hot loops: the same
    checks against the oracle, in a fresh process."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import torch; from tests import test_q_sample as t; "
            "[t.test_values_per_dtype(d) for d in (torch.float32, torch.float16)]; "
            "t.test_gradients(torch.bfloat16); t.test_layouts_and_sizes((2, 3, 100, 100)); "
            "[t.test_blend_mask_kinds_and_dtypes(torch.float32, k) for k in ('bool', 'soft')]; "
            "t.test_blend_mask_shapes_and_layouts(); t.test_half_precision_long_runs(torch.float16); "
            "print('baseline ok')")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "baseline ok" in done.stdout, done.stderr[-3000:]


def test_public_diffusion_functions_use_the_fused_ops_and_agree_with_the_reference():
    """diffusion.q_sample, diffusion_loss and the RePaint sampler run the fused CPU ops by default; the
    reference backend gives the same results (the same random draws, the same formulas)."""
    import inpaint_fast as IF
    from inpaint_fast.functional import diffusion
    from inpaint_fast.ops import backend as _backend

    assert _backend.choose("q_sample", torch.device("cpu")) == "cpu"
    abar = diffusion.alphas_cumprod(diffusion.linear_beta_schedule(20))
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 8, 8, generator=gen) * 2 - 1
    mask = (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float()
    t = torch.tensor([3, 17])
    noise = torch.randn(image.shape, generator=gen)

    def model(x_t, t):
        return 0.3 * x_t

    def run():
        return (diffusion.q_sample(image, t, noise, abar),
                diffusion.diffusion_loss(model, image, alphas_cumprod=abar, t=t, noise=noise),
                diffusion.repaint(model, image, alphas_cumprod=abar, mask=mask, jump_length=2, jump_n_sample=2,
                                  generator=torch.Generator().manual_seed(5)))

    fused = run()
    with IF.use_backend("reference"):
        expected = run()
    for got, want in zip(fused, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused[2] * mask, image * mask, rtol=0, atol=0)
