"""DDPM schedule, forward process and the ε-prediction objective (unconditional and mask-conditioned)."""
import math

import pytest
import torch

import inpaint_fast as IF
from inpaint_fast import diffusion


def test_linear_schedule_published_values():
    betas = diffusion.linear_beta_schedule()
    assert betas.shape == (1000,) and betas.dtype == torch.float64
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    abar = diffusion.alphas_cumprod(betas)
    # independent product in Python floats
    expected = [math.prod(1 - (1e-4 + (0.02 - 1e-4) * s / 999) for s in range(t + 1)) for t in (0, 499, 999)]
    torch.testing.assert_close(abar[[0, 499, 999]], torch.tensor(expected, dtype=torch.float64))
    assert abar[-1].item() == pytest.approx(4.0358e-05, rel=1e-4)  # the DDPM value quoted by diffusers users


def test_q_sample_closed_form_and_moments():
    abar = diffusion.alphas_cumprod(diffusion.linear_beta_schedule())
    x0 = torch.full((4000, 1, 2, 2), 0.7, dtype=torch.float64)
    t = torch.full((4000,), 300)
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xt = diffusion.q_sample(x0, t, noise, abar)
    a = abar[300].item()
    torch.testing.assert_close(xt, math.sqrt(a) * x0 + math.sqrt(1 - a) * noise)
    assert xt.mean().item() == pytest.approx(math.sqrt(a) * 0.7, abs=0.02)
    assert xt.var().item() == pytest.approx(1 - a, rel=0.05)


def test_objective_perfect_and_zero_models():
    abar = diffusion.alphas_cumprod(diffusion.linear_beta_schedule())
    x0 = torch.rand(3, 3, 8, 8)
    noise, t = torch.randn(3, 3, 8, 8), torch.tensor([0, 10, 999])
    xt = diffusion.q_sample(x0, t, noise, abar)
    perfect = lambda x_t, tt: (x_t - abar[tt].sqrt().float().view(-1, 1, 1, 1) * x0) / (1 - abar[tt]).sqrt().float().view(-1, 1, 1, 1)  # noqa: E731
    loss = diffusion.diffusion_loss(perfect, x0, alphas_cumprod=abar, t=t, noise=noise)
    assert loss.item() == pytest.approx(0.0, abs=1e-8)
    zero = lambda x_t, tt: torch.zeros_like(x_t)  # noqa: E731
    torch.testing.assert_close(diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, t=t, noise=noise),
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


def test_gradient_reaches_the_model_only():
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    x0 = torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = IF.DiffusionInpaintingLoss(conditional=False)(lambda x_t, t: net(x_t), x0)
    loss.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0


def test_errors():
    abar = diffusion.alphas_cumprod(diffusion.linear_beta_schedule(10))
    x0 = torch.rand(2, 3, 4, 4)
    zero = lambda x_t, t, *rest: torch.zeros_like(x_t)  # noqa: E731
    with pytest.raises(ValueError, match="a mask is required"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, conditional=True)
    with pytest.raises(ValueError, match=r"t must have shape \(N,\)"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, t=torch.tensor([1]))
    with pytest.raises(TypeError, match="t must be an int64 tensor"):
        diffusion.q_sample(x0, torch.tensor([0.5, 1.0]), torch.randn_like(x0), abar)
    with pytest.raises(ValueError, match="noise must be a tensor of x0's shape"):
        diffusion.diffusion_loss(zero, x0, alphas_cumprod=abar, noise=torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="model must return"):
        diffusion.diffusion_loss(lambda x_t, t: x_t[:, :1], x0, alphas_cumprod=abar)
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        diffusion.linear_beta_schedule(0)
    with pytest.raises(ValueError, match="beta_start <= beta_end < 1"):
        diffusion.linear_beta_schedule(10, 0.5, 0.1)
