"""The options that reproduce the published training codes' variants, each against a transcription of
the peer's code (never computed with inpaint_fast), values and gradients in float64:

* mmagic (tests/mmagic_losses.py): ``sample_wise=True`` pixel losses -> ``normalize='sample'``;
  ``MaskedTVLoss`` -> ``total_variation(pair_weight='first')``;
* piq (tests/piq_tv.py): ``TVLoss(norm_type)`` -> ``total_variation_norm(norm=...)``;
* LaMa (tests/lama_losses.py): ``NonSaturatingWithR1(use_unmasked_for_discr=False)`` ->
  ``lama_loss(use_unmasked_for_discr=False)`` / ``discriminator_loss(fake_mask='hole')``.

Mask conventions: mmagic's and LaMa's ``mask`` is 1 = hole (inpaint_fast's ``hole=``).
"""
import pytest
import torch
import torch.nn.functional as F

import inpaint_fast as IF
from tests import mmagic_losses as mmagic
from tests.lama_losses import lama_nonsat_discriminator_loss, lama_nonsat_generator_loss
from tests.piq_tv import piq_total_variation, piq_tv_loss

DOUBLE = dict(dtype=torch.float64)


def batch(n=3, c=3, size=16, seed=0):
    """pred, target (N, C, H, W) and a hole (N, 1, H, W), 1 = missing, of very different size per sample."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, c, size, size, generator=g, **DOUBLE)
    pred = target + 0.3 * torch.randn(n, c, size, size, generator=g, **DOUBLE)
    hole = torch.zeros(n, 1, size, size, **DOUBLE)
    for i in range(n):
        side = 2 + 5 * i
        hole[i, :, 1 + i:1 + i + side, 2:2 + side] = 1
    hole = torch.maximum(hole, (torch.rand(n, 1, size, size, generator=g) < 0.05).to(torch.float64))
    return pred, target, hole


def value_and_grad(fn, x):
    x = x.clone().requires_grad_()
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def assert_same(ours, theirs, rtol=1e-12):
    """Values and gradients of (value, grad) pairs to float64 rounding (mmagic adds 1e-12 to areas of
    order 10-1000: a relative 1e-13 at most)."""
    torch.testing.assert_close(ours[0], theirs[0], rtol=rtol, atol=0)
    torch.testing.assert_close(ours[1], theirs[1], rtol=rtol, atol=1e-15)


# ---------------------------------------------------------------------------------- mmagic sample_wise
@pytest.mark.parametrize("sample_wise", [False, True])
@pytest.mark.parametrize("kind", ["l1", "l2", "charbonnier"])
@pytest.mark.parametrize("channels", [1, 3])
def test_mmagic_pixel_losses(backend, sample_wise, kind, channels):
    """mmagic's L1Loss / MSELoss / CharbonnierLoss with a hole weight, pixel-wise and sample-wise. Its
    CharbonnierLoss eps (1e-12, added to d²) is our charbonnier_eps² (1e-6)."""
    pred, target, hole = batch(seed=1)
    colour_weights = torch.tensor([0.3, 0.7, 1.0], **DOUBLE).view(3, 1, 1)  # a soft (N, 3, H, W) weight
    weight = hole if channels == 1 else hole.expand(-1, 3, -1, -1) * colour_weights
    peer = {"l1": mmagic.mmagic_l1_loss, "l2": mmagic.mmagic_mse_loss, "charbonnier": mmagic.mmagic_charbonnier_loss}
    ours = {"l1": IF.masked_l1, "l2": IF.masked_l2,
            "charbonnier": lambda *a, **k: IF.masked_charbonnier(*a, charbonnier_eps=1e-6, **k)}
    normalize = "sample" if sample_wise else "mask"
    theirs = value_and_grad(lambda p: peer[kind](p, target, weight=weight, sample_wise=sample_wise, loss_weight=6.0),
                            pred)
    got = value_and_grad(lambda p: 6.0 * ours[kind](p, target, hole=weight, normalize=normalize), pred)
    assert_same(got, theirs)
    # the two normalisations differ on this batch (hole areas 4, 49 and 144 pixels)
    other = value_and_grad(lambda p: 6.0 * ours[kind](p, target, hole=weight,
                                                      normalize="mask" if sample_wise else "sample"), pred)
    assert not torch.allclose(other[0], theirs[0], rtol=1e-3)


@pytest.mark.parametrize("sample_wise", [False, True])
def test_mmagic_hole_and_valid_terms(backend, sample_wise):
    """mmagic's inpaintors' ``loss_l1_hole(fake, gt, weight=mask)`` (6) + ``loss_l1_valid(fake, gt,
    weight=1 - mask)`` (1) is reconstruction_loss with the same normalisation."""
    pred, target, hole = batch(seed=2)
    theirs = value_and_grad(lambda p: mmagic.mmagic_l1_loss(p, target, weight=hole, sample_wise=sample_wise,
                                                            loss_weight=6.0)
                            + mmagic.mmagic_l1_loss(p, target, weight=1 - hole, sample_wise=sample_wise), pred)
    normalize = "sample" if sample_wise else "mask"
    got = value_and_grad(lambda p: IF.reconstruction_loss(p, target, hole=hole, normalize=normalize), pred)
    assert_same(got, theirs)
    module = IF.ReconstructionLoss(normalize=normalize)
    assert_same(value_and_grad(lambda p: module(p, target, hole=hole), pred), theirs)


def test_sample_normalisation_of_the_other_masked_losses(backend):
    """normalize='sample' is each sample's masked mean, then their mean, in every masked loss that has
    ``normalize``: a Python loop over the samples is the oracle."""
    pred, target, hole = batch(seed=3)
    n = pred.shape[0]

    def loop(fn):
        return sum(fn(i) for i in range(n)) / n

    one = slice
    cases = [
        (lambda p: IF.total_variation(p, hole=hole, normalize="sample"),
         lambda p: loop(lambda i: IF.total_variation(p[one(i, i + 1)], hole=hole[one(i, i + 1)]))),
        (lambda p: IF.total_variation(p, hole=hole, region="hole_dilated", p=2, normalize="sample"),
         lambda p: loop(lambda i: IF.total_variation(p[one(i, i + 1)], hole=hole[one(i, i + 1)], region="hole_dilated",
                                                     p=2))),
        (lambda p: IF.generator_loss(p[:, :1], hole=hole, loss="hinge", normalize="sample"),
         lambda p: loop(lambda i: IF.generator_loss(p[one(i, i + 1), :1], hole=hole[one(i, i + 1)], loss="hinge"))),
        (lambda p: IF.feature_matching_loss([p], [target], hole=hole, normalize="sample"),
         lambda p: loop(lambda i: IF.feature_matching_loss([p[one(i, i + 1)]], [target[one(i, i + 1)]],
                                                           hole=hole[one(i, i + 1)]))),
    ]
    for ours, oracle in cases:
        assert_same(value_and_grad(ours, pred), value_and_grad(oracle, pred))
    # no mask, or region='all': every sample has the same size, so it is the plain mean
    torch.testing.assert_close(IF.masked_l1(pred, target, normalize="sample"), (pred - target).abs().mean())
    torch.testing.assert_close(IF.total_variation(pred, hole=hole, region="all", normalize="sample"),
                               IF.total_variation(pred))


def test_sample_normalisation_of_an_empty_region_is_zero(backend):
    """A sample with no hole adds 0 and still counts in the batch mean (as mmagic: 0 / (0 + 1e-12))."""
    pred, target, hole = batch(seed=4)
    hole[1] = 0
    theirs = value_and_grad(lambda p: mmagic.mmagic_l1_loss(p, target, weight=hole, sample_wise=True), pred)
    got = value_and_grad(lambda p: IF.masked_l1(p, target, hole=hole, normalize="sample"), pred)
    assert_same(got, theirs)
    assert got[1][1].abs().max() == 0


# ---------------------------------------------------------------------------------- mmagic MaskedTVLoss
@pytest.mark.parametrize("soft", [False, True])
def test_mmagic_masked_tv(backend, soft):
    """``MaskedTVLoss(loss_weight=0.1)(comp, mask=hole)``: a pair counts with its top / left pixel's
    weight, each direction divided by C times that weight's sum."""
    pred, target, hole = batch(seed=5)
    if soft:
        hole = hole * torch.rand(hole.shape, generator=torch.Generator().manual_seed(6), **DOUBLE)
    theirs = value_and_grad(lambda p: mmagic.mmagic_masked_tv_loss(p, mask=hole, loss_weight=0.1), pred)
    got = value_and_grad(lambda p: 0.1 * IF.total_variation(p, hole=hole, pair_weight="first"), pred)
    assert_same(got, theirs)
    module = IF.TVLoss("hole", pair_weight="first")
    assert_same(value_and_grad(lambda p: 0.1 * module(p, hole=hole), pred), theirs)
    notebook_pairs = IF.total_variation(pred, hole=hole)  # both pixels in the hole: another number
    assert not torch.allclose(0.1 * notebook_pairs, theirs[0], rtol=1e-3)


def test_mmagic_pconv_pixel_and_tv_terms(backend):
    """mmagic's PConv inpaintor's pixel and TV terms (``loss_l1_hole`` 6, ``loss_l1_valid`` 1,
    ``loss_tv`` MaskedTVLoss 0.1 on the composite ``gt (1 - mask) + fake mask``) as one CompositeLoss."""
    pred, target, hole = batch(seed=7)
    composite = IF.CompositeLoss({"hole": 6.0, "valid": 1.0, "tv": 0.1},
                                 tv=IF.TVLoss("hole", pair_weight="first"), tv_image="composite")

    def theirs(p):
        comp = target * (1 - hole) + p * hole
        return (mmagic.mmagic_l1_loss(p, target, weight=hole, loss_weight=6.0)
                + mmagic.mmagic_l1_loss(p, target, weight=1 - hole, loss_weight=1.0)
                + mmagic.mmagic_masked_tv_loss(comp, mask=hole, loss_weight=0.1))

    assert_same(value_and_grad(lambda p: composite(p, target, hole=hole)["total"], pred), value_and_grad(theirs, pred))


# ---------------------------------------------------------------------------------- piq TVLoss
@pytest.mark.parametrize("norm", ["l1", "l2", "l2_squared"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_piq_total_variation(norm, reduction):
    pred, _, _ = batch(seed=8)
    theirs = piq_tv_loss(pred, norm_type=norm, reduction=reduction)
    torch.testing.assert_close(theirs, piq_total_variation(pred, reduction=reduction, norm_type=norm))
    got = IF.total_variation_norm(pred, norm=norm, reduction=reduction)
    torch.testing.assert_close(got, theirs, rtol=1e-13, atol=0)
    if reduction != "none":
        assert_same(value_and_grad(lambda p: IF.total_variation_norm(p, norm=norm, reduction=reduction), pred),
                    value_and_grad(lambda p: piq_tv_loss(p, norm_type=norm, reduction=reduction), pred))


def test_total_variation_norm_of_a_constant_image_and_with_a_mask():
    """sqrt at 0: piq's gradient is NaN; ours is 0 (the subgradient of a norm at 0). With a hole, the
    pairs are weighted as in total_variation: l2_squared is its 'sum' reduction per image."""
    x = torch.ones(2, 3, 8, 8, **DOUBLE).requires_grad_()
    value = IF.total_variation_norm(x)
    value.backward()
    assert value.item() == 0 and x.grad.abs().max() == 0
    pred, _, hole = batch(seed=9)
    per_image = IF.total_variation_norm(pred, hole=hole, norm="l2_squared", reduction="none")
    expected = torch.stack([IF.total_variation(pred[i:i + 1], hole=hole[i:i + 1], p=2, reduction="sum")
                            for i in range(pred.shape[0])])
    torch.testing.assert_close(per_image, expected, rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="norm must be one of"):
        IF.total_variation_norm(pred, norm="l3")
    with pytest.raises(ValueError, match="pair_weight must be one of"):
        IF.total_variation(pred, pair_weight="second")


# ---------------------------------------------------------------------------------- LaMa use_unmasked_for_discr
class TinyD(torch.nn.Module):
    """A small PatchGAN: 32x32 images -> 9x9 logits (a non-integer ratio, so the mask resize matters)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(31)
        self.c1 = torch.nn.Conv2d(3, 4, 4, stride=2, padding=2)
        self.c2 = torch.nn.Conv2d(4, 1, 4, stride=2, padding=2)

    def forward(self, x):
        return self.c2(F.leaky_relu(self.c1(x), 0.2))


@pytest.mark.parametrize("mask_scale_mode", ["nearest", "maxpool"])
def test_lama_discriminator_use_unmasked_for_discr_false(mask_scale_mode):
    pred, target, hole = batch(n=2, size=32, seed=10)
    D = TinyD().double()
    params = list(D.parameters())
    fake = pred.detach()
    options = dict(weight=10, gp_coef=0.001, mask_as_fake_target=False, allow_scale_mask=True,
                   mask_scale_mode=mask_scale_mode, use_unmasked_for_gen=False, use_unmasked_for_discr=False)
    real_a = target.clone().requires_grad_(True)
    real_pred = D(real_a)
    expected, metrics = lama_nonsat_discriminator_loss(real_a, fake, real_pred, D(fake), hole, **options)
    g_theirs = torch.autograd.grad(expected, params)

    loss = IF.lama_loss(hrf_extractor=lambda x: [x], use_unmasked_for_discr=False, mask_resize=mask_scale_mode)
    real_b = target.clone().requires_grad_(True)
    got = loss.discriminator_loss(D(real_b), D(fake), real_images=real_b, hole=hole)
    torch.testing.assert_close(got["r1"], metrics["discr_real_gp"], rtol=1e-12, atol=0)
    torch.testing.assert_close(got["total"], expected, rtol=1e-12, atol=0)
    for a, b in zip(torch.autograd.grad(got["total"], params), g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)
    # mask_as_fake_target (LaMa's default) is another number on the same logits
    default = IF.lama_loss(hrf_extractor=lambda x: [x], gp_coef=0.0, mask_resize=mask_scale_mode)
    mixed = default.discriminator_loss(D(target), D(fake), hole=hole)["fake"]
    assert not torch.allclose(mixed, got["fake"], rtol=1e-3)
    with pytest.raises(ValueError, match="fake_mask='hole': pass mask="):
        loss.discriminator_loss(D(real_b), D(fake), real_images=real_b)

    # the generator side of that configuration: use_unmasked_for_gen=False is region='hole', normalize='all'
    fake_g = pred.clone().requires_grad_()
    theirs, _ = lama_nonsat_generator_loss(target, fake_g, None, D(fake_g), hole, **options)
    ours = 10 * IF.generator_loss(D(fake_g), hole=hole, region="hole", normalize="all", resize=mask_scale_mode)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)


def test_fake_mask_option_is_checked():
    z = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="fake_mask must be one of"):
        IF.discriminator_loss(z, z, hole=torch.ones(2, 1, 4, 4), fake_mask="known")
    with pytest.raises(ValueError, match="fake_mask must be one of"):
        IF.AdversarialLoss(fake_mask="both")
    with pytest.raises(TypeError, match="use_unmasked_for_discr must be a bool"):
        IF.lama_loss(hrf_extractor=lambda x: [x], use_unmasked_for_discr="no")


# ---------------------------------------------------------------------------------- WGAN-GP and masked R1
class PatchD(torch.nn.Module):
    """(N, 3, 16, 16) -> (N, 1, 4, 4) logits, smooth (softplus), so second derivatives are not 0."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(41)
        self.c1 = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.c2 = torch.nn.Conv2d(4, 1, 3, stride=2, padding=1)

    def forward(self, x):
        return self.c2(F.softplus(self.c1(x)))


def penalty_and_d_grads(fn, D):
    """The penalty and its gradient in D's parameters (0 for the last bias, which no input gradient sees)."""
    value = fn()
    params = list(D.parameters())
    grads = torch.autograd.grad(value, params, allow_unused=True)
    return value.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def assert_penalties_equal(ours, theirs):
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-12, atol=0)
    for a, b in zip(ours[1], theirs[1]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("norm_mode", ["pixel", "HWC"])
@pytest.mark.parametrize("masked", [False, True])
def test_mmagic_gradient_penalty(norm_mode, masked):
    """mmagic's ``gradient_penalty_loss`` (WGAN-GP), alpha drawn by the same global-RNG call."""
    pred, target, hole = batch(seed=11)
    D = PatchD().double()
    mask = hole if masked else None
    torch.manual_seed(5)
    theirs = penalty_and_d_grads(lambda: mmagic.gradient_penalty_loss(D, target, pred, mask=mask,
                                                                      norm_mode=norm_mode), D)
    torch.manual_seed(5)
    norm = "pixel" if norm_mode == "pixel" else "image"
    ours = penalty_and_d_grads(lambda: IF.gradient_penalty(D, target, pred, hole=mask, norm=norm), D)
    assert_penalties_equal(ours, theirs)
    # an explicit alpha, and the mask given as mask= (1 = known)
    alpha = torch.rand(3, generator=torch.Generator().manual_seed(6), **DOUBLE)
    expected = IF.gradient_penalty(D, target, pred, hole=mask, norm=norm, alpha=alpha.view(3, 1, 1, 1))
    got = IF.gradient_penalty(D, target, pred, mask=None if mask is None else 1 - mask, norm=norm, alpha=alpha)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_gradient_penalty_is_gulrajanis_and_trains_d_only():
    """norm='image' is the paper's E (||∇D(x̂)||₂ - 1)² with the norm over each whole image; the images get
    no gradient (x̂ is a new leaf), D's parameters do."""
    pred, target, _ = batch(seed=12)
    D = PatchD().double()
    real, fake = target.clone().requires_grad_(), pred.clone().requires_grad_()
    alpha = torch.tensor([0.2, 0.5, 0.9], **DOUBLE)
    value = IF.gradient_penalty(D, real, fake, alpha=alpha)
    x = (alpha.view(3, 1, 1, 1) * target + (1 - alpha.view(3, 1, 1, 1)) * pred).requires_grad_()
    (g,) = torch.autograd.grad(D(x).sum(), x)
    torch.testing.assert_close(value, ((g.flatten(1).norm(dim=1) - 1) ** 2).mean(), rtol=1e-12, atol=0)
    value.backward()
    assert real.grad is None and fake.grad is None
    assert all(p.grad.abs().sum() > 0 for p in (D.c1.weight, D.c1.bias, D.c2.weight))
    with pytest.raises(ValueError, match="norm must be one of"):
        IF.gradient_penalty(D, target, pred, norm="HWC")
    with pytest.raises(ValueError, match="alpha must have shape"):
        IF.gradient_penalty(D, target, pred, alpha=torch.rand(2, **DOUBLE))
    with pytest.raises(ValueError, match="one shape and dtype"):
        IF.gradient_penalty(D, target, pred[:2])


@pytest.mark.parametrize("norm_mode", ["pixel", "HWC"])
@pytest.mark.parametrize("masked", [False, True])
def test_mmagic_r1_penalty(norm_mode, masked):
    """mmagic's ``r1_gradient_penalty_loss`` is r1_penalty with gamma = 2 (and its norm and mask)."""
    _, target, hole = batch(seed=13)
    D = PatchD().double()
    mask = hole if masked else None
    theirs = penalty_and_d_grads(lambda: mmagic.r1_gradient_penalty_loss(D, target, mask=mask, norm_mode=norm_mode), D)
    norm = "pixel" if norm_mode == "pixel" else "image"

    def ours():
        real = target.clone().requires_grad_()
        return IF.r1_penalty(D(real), real, gamma=2.0, hole=mask, norm=norm)

    assert_penalties_equal(penalty_and_d_grads(ours, D), theirs)
    module = IF.R1Penalty(gamma=2.0, norm=norm)
    real = target.clone().requires_grad_()
    torch.testing.assert_close(module(D(real), real, hole=mask), theirs[0], rtol=1e-12, atol=0)


def test_masked_penalties_of_an_empty_hole_are_zero():
    """mmagic divides by mean(mask): 0/0 for an empty hole; ours is 0 with a zero gradient."""
    _, target, _ = batch(seed=14)
    D = PatchD().double()
    empty = torch.zeros(3, 1, 16, 16, **DOUBLE)
    real = target.clone().requires_grad_()
    for value in (IF.r1_penalty(D(real), real, hole=empty), IF.gradient_penalty(D, target, target, hole=empty)):
        assert value.item() == 0
        assert all(g.abs().max() == 0 for g in torch.autograd.grad(value, list(D.parameters()), allow_unused=True)
                   if g is not None)


# ---------------------------------------------------------------------------------- RePaint as diffusers runs it
class EpsModel(torch.nn.Module):
    """A smooth ε model that reads t: (N, 3, H, W), t (N,) or 0-d (diffusers) -> ε."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(51)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x, t):
        return torch.tanh(self.conv(x)) + 0.5 * x + (t.to(x.dtype) / 1000).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("steps", [(1000, 20, 3, 2), (100, 12, 5, 3), (50, 7, 2, 2)])
def test_repaint_matches_diffusers_pipeline(eta, steps):
    """repaint(sampler='diffusers', eta=...) and diffusers' RePaintPipeline (its scheduler given the same
    float64 betas) draw the same noise in the same order and give the same image (T // S spacing, also
    where S does not divide T)."""
    from tests.diffusers_repaint import DiffusersRePaintScheduler, diffusers_repaint

    T, S, jump_length, jump_n_sample = steps
    betas = torch.linspace(1e-4, 0.02 * 1000 / T, T, **DOUBLE)
    _, target, hole = batch(n=2, size=8, seed=15)
    image = target * 2 - 1
    known = 1 - hole
    model = EpsModel().double()
    scheduler = DiffusersRePaintScheduler(betas)
    with torch.no_grad():
        theirs = diffusers_repaint(model, image, known, scheduler, num_inference_steps=S, eta=eta,
                                   jump_length=jump_length, jump_n_sample=jump_n_sample,
                                   generator=torch.Generator().manual_seed(7))
    ours = IF.repaint(model, image, mask=known, alphas_cumprod=torch.cumprod(1 - betas, 0), num_inference_steps=S,
                      jump_length=jump_length, jump_n_sample=jump_n_sample, sampler="diffusers", eta=eta,
                      generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert torch.equal(ours * known, image * known)
    original = IF.repaint(model, image, mask=known, alphas_cumprod=torch.cumprod(1 - betas, 0), num_inference_steps=S,
                          jump_length=jump_length, jump_n_sample=jump_n_sample,
                          generator=torch.Generator().manual_seed(7))
    assert not torch.allclose(original, theirs, atol=1e-3)  # RePaint's own sampler is another one


def test_repaint_sampler_options_are_checked():
    image = torch.zeros(1, 3, 8, 8)
    kw = dict(mask=torch.ones(1, 1, 8, 8), alphas_cumprod=torch.linspace(0.99, 0.1, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="sampler must be one of"):
        IF.repaint(lambda x, t: x, image, sampler="ddim", **kw)
    with pytest.raises(ValueError, match="eta applies to sampler='diffusers'"):
        IF.repaint(lambda x, t: x, image, eta=0.5, **kw)
    with pytest.raises(ValueError, match="eta must be a finite number >= 0"):
        IF.repaint(lambda x, t: x, image, sampler="diffusers", eta=-1.0, **kw)
