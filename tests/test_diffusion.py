"""Diffusion: schedules, q_sample, the ε / x0 / v objectives, hole weighting, RePaint and its schedule.

Oracles: numpy float64 products and the closed-form cosine ᾱ, Monte-Carlo moments, the algebra of
x_t = a x0 + s ε worked by hand, RePaint's jump schedule traced by hand, and a scalar linear-Gaussian
recursion for the sampler's output moments on Gaussian data with its exact denoiser.
"""
import math
import sys

import numpy as np
import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.functional import diffusion

ABAR = diffusion.alphas_cumprod(diffusion.linear_beta_schedule())


# ---- schedules ---------------------------------------------------------------------------------

def test_linear_schedule_published_values():
    betas = diffusion.linear_beta_schedule()
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    abar = diffusion.alphas_cumprod(betas)
    # independent product in Python floats
    expected = [math.prod(1 - (1e-4 + (0.02 - 1e-4) * s / 999) for s in range(t + 1)) for t in (0, 499, 999)]
    torch.testing.assert_close(abar[[0, 499, 999]], torch.tensor(expected, dtype=torch.float64))
    assert abar[-1].item() == pytest.approx(4.0358e-05, rel=1e-4)  # the DDPM value quoted by diffusers users
    # numpy float64 oracle at a few t
    np_abar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000, dtype=np.float64))
    idx = [0, 1, 99, 250, 500, 750, 998, 999]
    np.testing.assert_allclose(abar[idx].numpy(), np_abar[idx], rtol=1e-12)
    assert diffusion.beta_schedule("linear").equal(betas)


def test_cosine_schedule_closed_form():
    T, s = 1000, 0.008
    betas = diffusion.cosine_beta_schedule(T)
    assert betas.shape == (T,) and betas.dtype == torch.float64
    abar = diffusion.alphas_cumprod(betas).numpy()
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
    i = np.array([0, 1, 10, 250, 499, 750, 900, 990, 998])
    np.testing.assert_allclose(abar[i], f((i + 1) / T) / f(0.0), rtol=1e-9)
    # the last β would be 1 (f(1) = 0): Nichol & Dhariwal clip it at 0.999
    assert betas[-1].item() == 0.999 and (betas[:-1] < 0.999).all()
    assert abar[-1] == pytest.approx(abar[-2] * 0.001, rel=1e-9)
    assert diffusion.beta_schedule("cosine").equal(betas)
    assert diffusion.cosine_beta_schedule(10, max_beta=0.5)[-1].item() == 0.5


# ---- forward process ---------------------------------------------------------------------------

def test_q_sample_closed_form_and_moments():
    x0 = torch.full((4000, 1, 2, 2), 0.7, dtype=torch.float64)
    t = torch.full((4000,), 300)
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xt = diffusion.q_sample(x0, t, noise, ABAR)
    a = ABAR[300].item()
    torch.testing.assert_close(xt, math.sqrt(a) * x0 + math.sqrt(1 - a) * noise)
    assert xt.mean().item() == pytest.approx(math.sqrt(a) * 0.7, abs=0.02)
    assert xt.var().item() == pytest.approx(1 - a, rel=0.05)


def test_q_sample_moments_per_timestep():
    """Two timesteps in one batch: each half has mean sqrt(ᾱ) x0 and variance 1 - ᾱ (16k samples each)."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((2, 1, 128, 128), -0.4)
    t = torch.tensor([50, 800])
    xt = diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=g), ABAR)
    for i, ti in enumerate((50, 800)):
        a = float(np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[ti])
        assert xt[i].mean().item() == pytest.approx(-0.4 * math.sqrt(a), abs=4 * math.sqrt(1 - a) / 128)
        assert xt[i].var().item() == pytest.approx(1 - a, rel=0.05)


def test_sample_timesteps_uniform_and_seeded():
    t = diffusion.sample_timesteps(20000, 10, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and t.min().item() == 0 and t.max().item() == 9
    counts = torch.bincount(t, minlength=10).double()
    assert (counts - 2000).abs().max().item() < 4 * math.sqrt(2000)
    assert torch.equal(t, diffusion.sample_timesteps(20000, 10, generator=torch.Generator().manual_seed(0)))


# ---- conversions and objectives ------------------------------------------------------------------

def _xt(seed=0, n=4):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 3, 5, 5, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(n, 3, 5, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999][:n])
    a = ABAR[t].sqrt().view(-1, 1, 1, 1)
    s = (1 - ABAR[t]).sqrt().view(-1, 1, 1, 1)
    return x0, eps, t, a * x0 + s * eps, a, s


def test_conversions_recover_x0_eps_v():
    x0, eps, t, xt, a, s = _xt()
    v = a * eps - s * x0  # Salimans & Ho's definition
    torch.testing.assert_close(diffusion.get_velocity(x0, eps, t, ABAR), v)
    truth = {"epsilon": eps, "sample": x0, "v_prediction": v}
    for src, out in truth.items():
        for dst, expected in truth.items():
            got = diffusion.convert_prediction(out, xt, t, ABAR, from_type=src, to_type=dst)
            torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9, msg=f"{src} -> {dst}")
    torch.testing.assert_close(diffusion.predicted_original_sample(v, xt, t, ABAR, prediction_type="v_prediction"), x0)
    torch.testing.assert_close(diffusion.predicted_noise(x0, xt, t, ABAR, prediction_type="sample"), eps)


@pytest.mark.parametrize("ptype", ["epsilon", "sample", "v_prediction"])
def test_perfect_model_of_each_type_has_zero_loss(ptype):
    x0, eps, t, xt, a, s = _xt()
    truth = {"epsilon": eps, "sample": x0, "v_prediction": a * eps - s * x0}[ptype]
    loss = diffusion.diffusion_loss(lambda x_t, tt: truth, x0, alphas_cumprod=ABAR, t=t, noise=eps, prediction_type=ptype)
    assert loss.item() == pytest.approx(0.0, abs=1e-20)
    zero = diffusion.diffusion_loss(lambda x_t, tt: torch.zeros_like(x_t), x0, alphas_cumprod=ABAR, t=t, noise=eps,
                                    prediction_type=ptype)
    torch.testing.assert_close(zero, (truth ** 2).mean())


def test_objectives_agree_through_conversions():
    """One denoiser as an ε-, x0- and v-model: per pixel, x0-error = (1-ᾱ)/ᾱ · ε-error and
    v-error = ε-error / ᾱ (x̂0 - x0 = -(s/a)(ε̂ - ε), v̂ - v = (ε̂ - ε)/a)."""
    x0, eps, t, xt, a, s = _xt(seed=3)
    net = torch.nn.Conv2d(3, 3, 3, padding=1).double()
    eps_model = lambda x_t, tt: net(x_t)  # noqa: E731
    as_type = {p: (lambda x_t, tt, p=p: diffusion.convert_prediction(net(x_t), x_t, tt, ABAR, from_type="epsilon",
                                                                      to_type=p))
               for p in ("sample", "v_prediction")}
    kw = dict(alphas_cumprod=ABAR, t=t, noise=eps, reduction="none")
    with torch.no_grad():
        e_eps = diffusion.diffusion_loss(eps_model, x0, **kw)
        e_x0 = diffusion.diffusion_loss(as_type["sample"], x0, prediction_type="sample", **kw)
        e_v = diffusion.diffusion_loss(as_type["v_prediction"], x0, prediction_type="v_prediction", **kw)
    abar = ABAR[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(e_x0, e_eps * (1 - abar) / abar, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(e_v, e_eps / abar, rtol=1e-8, atol=1e-12)


def test_hole_weighting_by_hand():
    # 1 image, 2 channels, 2x2; model outputs 0 so the error is noise**2.
    noise = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.5, 1.0], [1.5, 2.0]]]], dtype=torch.float64)
    err = noise ** 2
    hole = torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)  # one missing pixel, top-left
    x0 = torch.zeros_like(noise)
    zero = lambda x_t, tt: torch.zeros_like(x_t)  # noqa: E731
    kw = dict(alphas_cumprod=ABAR, t=torch.tensor([7]), noise=noise)
    wh, wk = 6.0, 0.5
    hole_sum = 1.0 + 0.25
    known_sum = 4 + 9 + 16 + 1 + 2.25 + 4
    expected = (wh * hole_sum + wk * known_sum) / (2 * (wh * 1 + wk * 3))
    got = diffusion.diffusion_loss(zero, x0, hole=hole, weight_hole=wh, weight_known=wk, **kw)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert diffusion.diffusion_loss(zero, x0, mask=~hole, weight_hole=wh, weight_known=wk, **kw).item() == \
        pytest.approx(expected, rel=1e-12)
    s = diffusion.diffusion_loss(zero, x0, hole=hole, weight_hole=wh, weight_known=wk, reduction="sum", **kw)
    assert s.item() == pytest.approx(wh * hole_sum + wk * known_sum, rel=1e-12)
    # hole only: the mean over the hole's elements
    assert diffusion.diffusion_loss(zero, x0, hole=hole, weight_known=0.0, **kw).item() == pytest.approx(hole_sum / 2)
    # (1, 1) and no weighting: the plain mean, mask or not
    assert diffusion.diffusion_loss(zero, x0, hole=hole, **kw).item() == pytest.approx(err.mean().item())
    none = diffusion.diffusion_loss(zero, x0, hole=hole, weight_hole=wh, weight_known=wk, reduction="none", **kw)
    w = torch.tensor([[wh, wk], [wk, wk]], dtype=torch.float64)
    torch.testing.assert_close(none, err * w)


def test_module_options_and_repr():
    loss_fn = IF.DiffusionInpaintingLoss(schedule="cosine", prediction_type="v_prediction", conditional=False,
                                         weight_hole=2.0)
    torch.testing.assert_close(loss_fn.alphas_cumprod, diffusion.alphas_cumprod(diffusion.cosine_beta_schedule()))
    assert "v_prediction" in repr(loss_fn) and "cosine" in repr(loss_fn)
    x0 = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    hole = torch.zeros(4, 4)
    hole[:2] = 1
    t, noise = torch.tensor([3, 600]), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    zero = lambda x_t, tt: torch.zeros_like(x_t)  # noqa: E731
    got = loss_fn(zero, x0, hole=hole, t=t, noise=noise)
    a = loss_fn.alphas_cumprod[t].view(-1, 1, 1, 1)
    v = a.sqrt() * noise - (1 - a).sqrt() * x0
    w = 2.0 * hole + (1 - hole)
    assert got.item() == pytest.approx(((v ** 2) * w).sum().item() / (w.sum().item() * 2 * 3), rel=1e-12)


def test_objective_perfect_and_zero_models():
    x0 = torch.rand(3, 3, 8, 8)
    noise, t = torch.randn(3, 3, 8, 8), torch.tensor([0, 10, 999])
    xt = diffusion.q_sample(x0, t, noise, ABAR)
    perfect = lambda x_t, tt: (x_t - ABAR[tt].sqrt().float().view(-1, 1, 1, 1) * x0) / (1 - ABAR[tt]).sqrt().float().view(-1, 1, 1, 1)  # noqa: E731
    loss = diffusion.diffusion_loss(perfect, x0, alphas_cumprod=ABAR, t=t, noise=noise)
    assert loss.item() == pytest.approx(0.0, abs=1e-8)
    zero = lambda x_t, tt: torch.zeros_like(x_t)  # noqa: E731
    torch.testing.assert_close(diffusion.diffusion_loss(zero, x0, alphas_cumprod=ABAR, t=t, noise=noise),
                               (noise ** 2).mean())
    assert xt.shape == x0.shape


def test_conditional_model_sees_known_image_and_mask():
    seen = {}

    def model(x_t, t, known_image, mask):
        seen.update(x_t=x_t, t=t, known_image=known_image, mask=mask)
        return torch.zeros_like(x_t)

    x0 = torch.rand(2, 3, 6, 6)
    hole = torch.zeros(6, 6, dtype=torch.bool)
    hole[1:4, 2:5] = True
    loss_fn = IF.DiffusionInpaintingLoss()
    g = torch.Generator().manual_seed(0)
    loss = loss_fn(model, x0, hole=hole, generator=g)
    m = (~hole).float().expand(2, 1, 6, 6)
    torch.testing.assert_close(seen["mask"], m)
    torch.testing.assert_close(seen["known_image"], x0 * m)
    assert seen["t"].shape == (2,) and seen["t"].dtype == torch.int64
    assert loss.ndim == 0 and loss.item() > 0
    # the same generator state gives the same t and noise: the loss is reproducible
    loss2 = loss_fn(model, x0, hole=hole, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loss, loss2)


@pytest.mark.parametrize("ptype", ["epsilon", "sample", "v_prediction"])
def test_gradient_reaches_the_model_only(ptype):
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    x0 = torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = IF.DiffusionInpaintingLoss(conditional=False, prediction_type=ptype)(lambda x_t, t: net(x_t), x0)
    loss.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


# ---- RePaint's schedule -------------------------------------------------------------------------

def test_jump_schedule_by_hand():
    # S = 6, jump_length 2, jump_n_sample 2: jumps at states 0 and 2 (range(0, 4, 2)), once each.
    assert diffusion.get_schedule_jump(6, 2, 2) == [5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]
    # jump_n_sample 3: two jumps back from each of those states
    assert diffusion.get_schedule_jump(5, 2, 3) == [4, 3, 2, 3, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, -1]
    # no resampling: jump_n_sample 1, or jump_length >= S
    assert diffusion.get_schedule_jump(4, 2, 1) == [3, 2, 1, 0, -1]
    assert diffusion.get_schedule_jump(4, 4, 10) == [3, 2, 1, 0, -1]


def test_jump_schedule_published_defaults():
    """RePaint's setting (250 steps, j = r = 10): 24 jump points x 9 jumps x 10 up and 10 down."""
    ts = diffusion.get_schedule_jump(250)
    assert len(ts) == 250 + 1 + 24 * 9 * 20 == 4571
    assert ts[0] == 249 and ts[-1] == -1 and min(ts) == -1 and max(ts) == 249
    steps = np.diff(ts)
    assert set(steps.tolist()) == {-1, 1}
    assert (steps == -1).sum() == 250 + 24 * 9 * 10


def improved_diffusion_space_timesteps(num_timesteps, section_counts):
    """openai/improved-diffusion, improved_diffusion/respace.py, ``space_timesteps`` at commit
    6051920c0865d53146db7841bfba43c3e67edef6, transcribed (the list-of-counts branch, as RePaint calls it)."""
    size_per = num_timesteps // len(section_counts)
    extra = num_timesteps % len(section_counts)
    start_idx = 0
    all_steps = []
    for i, section_count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < section_count:
            raise ValueError(f"cannot divide section of {size} steps into {section_count}")
        if section_count <= 1:
            frac_stride = 1
        else:
            frac_stride = (size - 1) / (section_count - 1)
        cur_idx = 0.0
        taken_steps = []
        for _ in range(section_count):
            taken_steps.append(start_idx + round(cur_idx))
            cur_idx += frac_stride
        all_steps += taken_steps
        start_idx += size
    return set(all_steps)


def test_spaced_timesteps_are_improved_diffusions():
    """Every S in 2..T for T = 1000 (and smaller T) equals upstream's set of steps, ascending; at T = 1000,
    283 of those 999 differ from the exact round(i (T-1)/(S-1)) the function computed before."""
    for T in (1000, 250, 50, 7, 2):
        for S in range(2, T + 1):
            assert diffusion.spaced_timesteps(T, S) == sorted(improved_diffusion_space_timesteps(T, [S])), (T, S)
    exact = [S for S in range(2, 1001)
             if diffusion.spaced_timesteps(1000, S) != [round(i * 999 / (S - 1)) for i in range(S)]]
    assert len(exact) == 283
    assert diffusion.spaced_timesteps(1000, 21)[10] == 499
    assert diffusion.spaced_timesteps(20, 20) == list(range(20))
    assert diffusion.spaced_timesteps(20, 1) == [19]  # upstream: [0]


# ---- RePaint sampler ------------------------------------------------------------------------------

def _box(n=2, size=8):
    mask = torch.ones(n, 1, size, size)
    mask[:, :, 2:6, 3:7] = 0
    return mask


@pytest.mark.parametrize("ptype", ["epsilon", "sample", "v_prediction"])
def test_repaint_keeps_known_region(ptype):
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    mask = _box()
    out = diffusion.repaint(lambda x, t: net(x), image, mask=mask, alphas_cumprod=ABAR, num_inference_steps=20,
                            jump_length=4, jump_n_sample=3, prediction_type=ptype,
                            generator=torch.Generator().manual_seed(1))
    known = mask.expand_as(image).bool()
    assert torch.equal(out[known], image[known])
    assert torch.isfinite(out).all() and out.shape == image.shape
    assert (out[~known] - image[~known]).abs().max() > 1e-3  # the hole is the model's, not the input
    assert out[~known].abs().max() <= 1.0 + 1e-6  # last step returns the clamped x̂0 in the hole


def test_repaint_known_region_soft_mask_and_hole_arg():
    image = torch.rand(1, 3, 8, 8, dtype=torch.float64) * 2 - 1
    hole = 1 - _box(1).double()
    kw = dict(alphas_cumprod=ABAR, num_inference_steps=5, jump_length=2, jump_n_sample=2)
    model = lambda x, t: 0.1 * x  # noqa: E731
    a = diffusion.repaint(model, image, hole=hole, generator=torch.Generator().manual_seed(0), **kw)
    b = diffusion.repaint(model, image, mask=1 - hole, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(a, b)
    soft = (1 - hole) * 0.999
    c = diffusion.repaint(model, image, mask=soft, generator=torch.Generator().manual_seed(0), **kw)
    # the last step gives 0.999 image + 0.001 x̂0 there, x̂0 clamped to [-1, 1]: within 0.002 of the input
    known = soft.expand_as(image) > 0
    diff = (c - image)[known].abs()
    assert diff.max() <= 0.002 + 1e-12 and diff.max() > 0


def test_repaint_is_deterministic_under_a_seed():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    kw = dict(mask=_box(), alphas_cumprod=ABAR, num_inference_steps=10, jump_length=3, jump_n_sample=2)
    a = diffusion.repaint(lambda x, t: net(x), image, generator=torch.Generator().manual_seed(5), **kw)
    torch.manual_seed(123)  # the global RNG plays no part
    b = diffusion.repaint(lambda x, t: net(x), image, generator=torch.Generator().manual_seed(5), **kw)
    c = diffusion.repaint(lambda x, t: net(x), image, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_repaint_model_calls_follow_the_schedule():
    """The model is called once per denoising pair of get_schedule_jump, at the spaced training timestep,
    and, conditional, with (image * m, m)."""
    calls = []
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    mask = _box()

    def model(x, t, known_image, m):
        calls.append(t.tolist())
        torch.testing.assert_close(known_image, image * mask)
        torch.testing.assert_close(m, mask)
        return torch.zeros_like(x)

    diffusion.repaint(model, image, mask=mask, alphas_cumprod=diffusion.alphas_cumprod(diffusion.linear_beta_schedule(50)),
                      num_inference_steps=6, jump_length=2, jump_n_sample=2, conditional=True,
                      generator=torch.Generator().manual_seed(0))
    spaced = [0, 10, 20, 29, 39, 49]  # round(i * 49 / 5)
    # the denoising pairs of [5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1] start from these states
    states = [5, 4, 3, 4, 3, 2, 1, 2, 1, 0]
    assert calls == [[spaced[k]] * 2 for k in states]


def _gaussian_moments(schedule_states, levels, mu, sigma2):
    """Mean and variance of the sampler's output on data x0 ~ N(mu, sigma2) with the exact E[x0 | x_t]:
    a scalar linear-Gaussian recursion in float64 (independent of the tensor code)."""
    m, v = 0.0, 1.0
    for k, k2 in zip(schedule_states[:-1], schedule_states[1:]):
        ab, ab2 = levels[k], levels[k2]
        alpha = ab / ab2 if k2 < k else ab2 / ab
        if k2 > k:
            m, v = math.sqrt(alpha) * m, alpha * v + 1 - alpha
            continue
        a, s2 = math.sqrt(ab), 1 - ab
        g = a * sigma2 / (ab * sigma2 + s2)  # x̂0 = mu + g (x_t - a mu)
        beta = 1 - alpha
        c0 = math.sqrt(ab2) * beta / (1 - ab)
        ct = math.sqrt(alpha) * (1 - ab2) / (1 - ab)
        var_post = beta * (1 - ab2) / (1 - ab)
        m = c0 * (mu + g * (m - a * mu)) + ct * m
        v = (c0 * g + ct) ** 2 * v + var_post
    return m, v


def test_repaint_output_moments_on_gaussian_data():
    """x0 ~ N(0.3, 0.25) per pixel; the exact denoiser as an ε-, x0- and v-model gives the same samples,
    whose hole moments match the scalar recursion over the same spaced, resampled schedule."""
    T, S, L, R = 50, 6, 2, 2
    abar = diffusion.alphas_cumprod(diffusion.linear_beta_schedule(T, 1e-3, 0.3))
    mu, sigma2 = 0.3, 0.25

    def x0_hat(x, t):
        ab = abar[t].view(-1, 1, 1, 1)
        return mu + ab.sqrt() * sigma2 / (ab * sigma2 + 1 - ab) * (x - ab.sqrt() * mu)

    def as_eps(x, t):
        ab = abar[t].view(-1, 1, 1, 1)
        return (x - ab.sqrt() * x0_hat(x, t)) / (1 - ab).sqrt()

    def as_v(x, t):
        ab = abar[t].view(-1, 1, 1, 1)
        return ab.sqrt() * as_eps(x, t) - (1 - ab).sqrt() * x0_hat(x, t)

    image = torch.zeros(4, 1, 48, 48, dtype=torch.float64)
    mask = torch.zeros(1, 1, 48, 48, dtype=torch.float64)
    mask[..., :, :8] = 1  # a known strip; the rest (4 x 48 x 40 = 7680 pixels) is the hole
    kw = dict(mask=mask, alphas_cumprod=abar, num_inference_steps=S, jump_length=L, jump_n_sample=R, clip_denoised=False)
    outs = {p: diffusion.repaint(f, image, prediction_type=p, generator=torch.Generator().manual_seed(0), **kw)
            for p, f in (("sample", x0_hat), ("epsilon", as_eps), ("v_prediction", as_v))}
    torch.testing.assert_close(outs["epsilon"], outs["sample"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(outs["v_prediction"], outs["sample"], rtol=1e-9, atol=1e-9)
    out = outs["sample"]
    assert torch.equal(out[..., :8], image[..., :8])
    hole = out[..., 8:]
    spaced = np.round(np.linspace(0, T - 1, S)).astype(int)
    levels = {-1: 1.0, **{k: float(abar[spaced[k]]) for k in range(S)}}
    states = [5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]
    m, v = _gaussian_moments(states, levels, mu, sigma2)
    n = hole.numel()
    assert hole.mean().item() == pytest.approx(m, abs=4 * math.sqrt(v / n))
    assert hole.var().item() == pytest.approx(v, rel=4 * math.sqrt(2 / n))
    # the oracle's sanity: the mean is the data's; the variance is short of σ² on 6 coarse steps (plugging
    # x̂0 = E[x0|x_t] into the posterior drops Var[x0|x_t]) and reaches it on DDPM's 1000 steps
    assert m == pytest.approx(mu, abs=1e-4) and v < sigma2
    abar_fine = diffusion.alphas_cumprod(diffusion.linear_beta_schedule())
    fine = {-1: 1.0, **{k: float(abar_fine[k]) for k in range(1000)}}
    assert _gaussian_moments(list(range(999, -2, -1)), fine, mu, sigma2)[1] == pytest.approx(sigma2, rel=0.03)


def test_repaint_progress_prints_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    image = torch.zeros(1, 1, 4, 4)
    kw = dict(mask=torch.ones(4, 4), alphas_cumprod=ABAR, num_inference_steps=3, jump_length=1, jump_n_sample=1)
    diffusion.repaint(lambda x, t: x, image, progress=True, **kw)
    assert "RePaint: 3/3 steps" in capsys.readouterr().err
    diffusion.repaint(lambda x, t: x, image, **kw)
    assert capsys.readouterr().err == ""


# ---- bad inputs -----------------------------------------------------------------------------------

def test_errors():
    abar = diffusion.alphas_cumprod(diffusion.linear_beta_schedule(10))
    x0 = torch.rand(2, 3, 4, 4)
    zero = lambda x_t, t, *rest: torch.zeros_like(x_t)  # noqa: E731
    with pytest.raises(ValueError, match="a mask is required"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, conditional=True)
    with pytest.raises(ValueError, match=r"t must have shape \(N,\)"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, t=torch.tensor([1]))
    with pytest.raises(TypeError, match=r"t must be an int64 \(or int32\) tensor"):
        diffusion.q_sample(x0, torch.tensor([0.5, 1.0]), torch.randn_like(x0), abar)
    with pytest.raises(ValueError, match=r"noise must have the shape of x0 \(2, 3, 4, 4\)"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, noise=torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="model must return"):
        diffusion.diffusion_loss(lambda x_t, t: x_t[:, :1], x0, alphas_cumprod=abar)
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        diffusion.linear_beta_schedule(0)
    with pytest.raises(ValueError, match="beta_start <= beta_end < 1"):
        diffusion.linear_beta_schedule(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="prediction_type must be one of"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, prediction_type="eps")
    with pytest.raises(ValueError, match="weight_hole / weight_known need a mask"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, weight_hole=2.0)
    with pytest.raises(ValueError, match="weight_known must be a finite number >= 0"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, mask=torch.ones(4, 4), weight_known=-1.0)
    with pytest.raises(TypeError, match="model must be callable"):
        diffusion.diffusion_loss("net", x0, alphas_cumprod=abar)
    with pytest.raises(TypeError, match="alphas_cumprod must be"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=[0.5, 0.2])
    with pytest.raises(ValueError, match="schedule must be one of"):
        IF.DiffusionInpaintingLoss(schedule="sigmoid")
    with pytest.raises(ValueError, match="max_beta must be < 1"):
        diffusion.cosine_beta_schedule(10, max_beta=1.0)
    with pytest.raises(ValueError, match="to_type must be one of"):
        diffusion.convert_prediction(x0, x0, torch.tensor([0, 1]), abar, from_type="epsilon", to_type="x0")
    kw = dict(alphas_cumprod=abar, mask=torch.ones(4, 4))
    with pytest.raises(ValueError, match="a mask is required"):
        diffusion.repaint(zero, x0, alphas_cumprod=abar)
    with pytest.raises(ValueError, match=r"num_inference_steps must be <= num_train_steps \(10\)"):
        diffusion.repaint(zero, x0, num_inference_steps=11, **kw)
    with pytest.raises(ValueError, match="jump_length must be an int >= 1"):
        diffusion.repaint(zero, x0, jump_length=0, **kw)
    with pytest.raises(TypeError, match="jump_n_sample must be an int"):
        diffusion.repaint(zero, x0, jump_n_sample=2.5, **kw)
    with pytest.raises(ValueError, match="model must return"):
        diffusion.repaint(lambda x, t: x[:, :1], x0, **kw)
    with pytest.raises(ValueError, match="mask of shape"):
        diffusion.repaint(zero, x0, alphas_cumprod=abar, mask=torch.ones(5, 5))
    with pytest.raises(TypeError, match="image must be a floating tensor"):
        diffusion.repaint(zero, x0.long(), **kw)


def test_loss_compiles_fullgraph():
    """No host sync or graph break in the weighted v-objective: compiled equals eager."""
    net = torch.nn.Conv2d(3, 3, 3, padding=1)

    def f(x0, t, noise, mask):
        return diffusion.diffusion_loss(lambda x_t, tt: net(x_t), x0, alphas_cumprod=ABAR, t=t, noise=noise, mask=mask,
                                        prediction_type="v_prediction", weight_hole=3.0)

    x0, t, noise = torch.rand(2, 3, 8, 8), torch.tensor([1, 500]), torch.randn(2, 3, 8, 8)
    mask = _box(2)
    torch.testing.assert_close(torch.compile(f, fullgraph=True)(x0, t, noise, mask), f(x0, t, noise, mask))
