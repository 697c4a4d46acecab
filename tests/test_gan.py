"""Adversarial losses: the notebook's table, closed forms, module and errors."""
import math

import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.functional import adversarial as gan
from inpaint_fast.demo import NOTEBOOK_GAN_CASES

# the notebook's adversarial table (image-free, so a test target): D real, D fake, G adv
NOTEBOOK_TABLE = {
    "D separates well": (0.1029, 0.1642, 1.9142),
    "D is uncertain": (0.6713, 0.6713, 0.7213),
    "G fools D": (0.1029, 1.9142, 0.1642),
}


def softplus(v):
    return math.log1p(math.exp(v))


@pytest.mark.parametrize("case", list(NOTEBOOK_TABLE))
def test_notebook_adversarial_table(case):
    real, fake = torch.tensor(NOTEBOOK_GAN_CASES[case]["real"]), torch.tensor(NOTEBOOK_GAN_CASES[case]["fake"])
    d = gan.discriminator_loss(real, fake)
    got = (d.real.item(), d.fake.item(), gan.generator_loss(fake).item())
    assert tuple(round(v, 4) for v in got) == NOTEBOOK_TABLE[case]
    assert d.total.item() == pytest.approx(d.real.item() + d.fake.item())


def test_closed_form_on_patch_logits():
    real = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]], dtype=torch.float64)  # a 2x2 patch map
    fake = -real
    # BCE(z, 1) = softplus(-z); BCE(z, 0) = softplus(z)
    expected_real = sum(softplus(-v) for v in (0.5, -1.0, 2.0, 0.0)) / 4
    expected_fake = sum(softplus(v) for v in (-0.5, 1.0, -2.0, 0.0)) / 4
    d = gan.discriminator_loss(real, fake)
    assert d.real.item() == pytest.approx(expected_real)
    assert d.fake.item() == pytest.approx(expected_fake)
    assert gan.generator_loss(fake).item() == pytest.approx(sum(softplus(v) for v in (0.5, -1.0, 2.0, 0.0)) / 4)


def test_generator_gradient_is_non_saturating():
    fake = torch.tensor([-6.0], requires_grad=True)  # D is confident the fake is fake
    gan.generator_loss(fake).backward()
    assert fake.grad.item() == pytest.approx(-torch.sigmoid(torch.tensor(6.0)).item())  # ~ -1, not ~ 0


def test_module_and_errors():
    adv = IF.AdversarialLoss()
    fake, real = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    torch.testing.assert_close(adv(fake), gan.generator_loss(fake))
    torch.testing.assert_close(adv.discriminator_loss(real, fake).total, gan.discriminator_loss(real, fake).total)
    with pytest.raises(ValueError, match="loss must be one of 'bce'"):
        IF.AdversarialLoss(loss="wgan")
    with pytest.raises(TypeError, match="fake_logits must be a floating tensor"):
        gan.generator_loss(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="real_logits is empty"):
        gan.discriminator_loss(torch.empty(0), fake)
    with pytest.raises(TypeError, match="real_logits must be a torch.Tensor"):
        gan.discriminator_loss([1.0], fake)


# ------------------------------------------------------------------ hinge and least squares: closed forms
Z = [0.5, -1.0, 2.0, 0.0]  # a 2x2 patch map of real logits; the fake logits are -Z


def patch(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype).reshape(1, 1, 2, 2)


def test_hinge_closed_form_deepfill_convention():
    real, fake = patch(Z), -patch(Z)
    d = gan.discriminator_loss(real, fake, loss="hinge")
    # 0.5 * mean relu(1 - real): relu(1 - [0.5, -1, 2, 0]) = [0.5, 2, 0, 1] -> 3.5 / 4 / 2
    assert d.real.item() == pytest.approx(0.4375)
    # 0.5 * mean relu(1 + fake): relu(1 + [-0.5, 1, -2, 0]) = [0.5, 2, 0, 1]
    assert d.fake.item() == pytest.approx(0.4375)
    assert d.total.item() == pytest.approx(0.875)
    # G = -mean(fake) = -(-0.5 + 1 - 2 + 0) / 4
    assert gan.generator_loss(fake, loss="hinge").item() == pytest.approx(0.375)


@pytest.mark.parametrize("case,expected", [
    # (D real, D fake, G) for hinge on the notebook's logits, by hand
    ("D separates well", (0.0, 0.0, 1.75)),          # real >= 1, fake <= -1: both margins met
    ("D is uncertain", (0.475, 0.475, 0.05)),       # relu(1-[.2,-.1])=[.8,1.1]; relu(1+[.1,-.2])=[1.1,.8]
    ("G fools D", (0.0, 1.375, -1.75)),             # relu(1+[1.5,2])=[2.5,3] -> 5.5/4
])
def test_hinge_on_notebook_cases(case, expected):
    real, fake = torch.tensor(NOTEBOOK_GAN_CASES[case]["real"]), torch.tensor(NOTEBOOK_GAN_CASES[case]["fake"])
    d = gan.discriminator_loss(real, fake, loss="hinge")
    got = (d.real.item(), d.fake.item(), gan.generator_loss(fake, loss="hinge").item())
    assert got == pytest.approx(expected, abs=1e-6)


def test_lsgan_closed_form():
    real, fake = patch(Z), -patch(Z)
    d = gan.discriminator_loss(real, fake, loss="lsgan")
    assert d.real.item() == pytest.approx(0.5 * (0.25 + 4 + 1 + 1) / 4)    # 1/2 mean (real - 1)^2
    assert d.fake.item() == pytest.approx(0.5 * (0.25 + 1 + 4 + 0) / 4)    # 1/2 mean fake^2
    assert gan.generator_loss(fake, loss="lsgan").item() == pytest.approx(0.5 * (2.25 + 0 + 9 + 1) / 4)


def test_bce_notebook_table_through_the_module():
    adv = IF.AdversarialLoss("bce")
    case = NOTEBOOK_GAN_CASES["G fools D"]
    real, fake = torch.tensor(case["real"]), torch.tensor(case["fake"])
    assert round(adv(fake).item(), 4) == NOTEBOOK_TABLE["G fools D"][2]
    assert round(adv.discriminator_loss(real, fake).fake.item(), 4) == NOTEBOOK_TABLE["G fools D"][1]


# ------------------------------------------------------------------ LaMa mask_as_fake_target
D_REAL = {"bce": lambda z: softplus(-z), "hinge": lambda z: 0.5 * max(0.0, 1 - z), "lsgan": lambda z: 0.5 * (z - 1) ** 2}
D_FAKE = {"bce": lambda z: softplus(z), "hinge": lambda z: 0.5 * max(0.0, 1 + z), "lsgan": lambda z: 0.5 * z ** 2}


@pytest.mark.parametrize("loss", gan.GAN_LOSSES)
def test_masked_fake_target_against_hand_built_map(loss):
    fake = patch([1.5, -0.5, 0.25, -2.0])
    real = patch([1.0, 1.0, 1.0, 1.0])
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :2] = 1  # the top-left cell of the 2x2 logit grid is the hole
    # hand-built target map: fake in the hole (top-left), real elsewhere
    expected = (D_FAKE[loss](1.5) + D_REAL[loss](-0.5) + D_REAL[loss](0.25) + D_REAL[loss](-2.0)) / 4
    for kwargs in ({"hole": hole}, {"mask": 1 - hole}, {"mask": (1 - hole).bool()[0, 0]}, {"hole": hole[:, 0]}):
        d = gan.discriminator_loss(real, fake, loss=loss, **kwargs)
        assert d.fake.item() == pytest.approx(expected), kwargs
        assert d.real.item() == pytest.approx(D_REAL[loss](1.0))  # real logits are always "real"


def test_mask_resize_nearest_versus_maxpool():
    fake = patch([0.3, -0.7, 1.1, 0.2])
    real = patch([0.0, 0.0, 0.0, 0.0])
    hole = torch.zeros(1, 1, 4, 4)
    hole[0, 0, 1, 2] = 1  # one pixel, inside the top-right logit cell (rows 0-1, cols 2-3)
    # nearest samples pixels (0,0), (0,2), (2,0), (2,2): it misses the hole -> every target is "real"
    all_real = (softplus(-0.3) + softplus(0.7) + softplus(-1.1) + softplus(-0.2)) / 4
    # maxpool: the top-right logit touches the hole -> its target is "fake"
    top_right_fake = (softplus(-0.3) + softplus(-0.7) + softplus(-1.1) + softplus(-0.2)) / 4
    assert gan.discriminator_loss(real, fake, hole=hole, resize="nearest").fake.item() == pytest.approx(all_real)
    assert gan.discriminator_loss(real, fake, hole=hole, resize="maxpool").fake.item() == pytest.approx(top_right_fake)


def test_all_hole_mask_equals_the_unmasked_loss():
    fake, real = torch.randn(2, 1, 3, 3, dtype=torch.float64), torch.randn(2, 1, 3, 3, dtype=torch.float64)
    d = gan.discriminator_loss(real, fake, loss="hinge", hole=torch.ones(2, 1, 12, 12))
    # every logit in the hole: the plain D fake term, 0.5 * mean relu(1 + fake), computed here directly
    assert d.fake.item() == pytest.approx(0.5 * torch.clamp(1 + fake, min=0).mean().item())


def test_generator_restricted_to_the_hole():
    fake = patch([1.5, -0.5, 0.25, -2.0])
    hole = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # at logit resolution, (H, W)
    assert gan.generator_loss(fake, loss="hinge", hole=hole).item() == pytest.approx(-1.5)  # region 'hole' by default
    assert gan.generator_loss(fake, loss="hinge", hole=hole, normalize="all").item() == pytest.approx(-1.5 / 4)
    assert gan.generator_loss(fake, loss="hinge", hole=hole, region="known").item() == pytest.approx(
        -(-0.5 + 0.25 - 2.0) / 3)
    assert gan.generator_loss(fake, loss="hinge", hole=hole, region="all").item() == pytest.approx(
        -(1.5 - 0.5 + 0.25 - 2.0) / 4)
    assert gan.generator_loss(fake, loss="bce", mask=1 - hole).item() == pytest.approx(softplus(-1.5))
    # an empty hole: 0 and a zero gradient, never NaN
    f = fake.clone().requires_grad_()
    g = gan.generator_loss(f, loss="lsgan", hole=torch.zeros(2, 2))
    g.backward()
    assert g.item() == 0.0 and torch.equal(f.grad, torch.zeros_like(f))


def test_masked_loss_gradient_is_the_mixed_target():
    fake = patch([0.4, -0.3, 0.9, -1.2]).requires_grad_()
    hole = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gan.discriminator_loss(patch([0.0] * 4), fake, loss="hinge", hole=hole).total.backward()
    # d/dz of 0.5 relu(1 + z) = 0.5 (hole, z > -1); of 0.5 relu(1 - z) = -0.5 (known, z < 1); each / 4 logits
    # the last logit is -1.2 in the hole: 1 + z < 0 -> 0
    torch.testing.assert_close(fake.grad, patch([0.125, -0.125, -0.125, 0.0]))


# ------------------------------------------------------------------ R1
def tiny_d(weight):
    """A small non-linear D: per-patch logits of (N, 2, 3, 3) images, fp64."""
    def d(x):
        return torch.tanh(torch.nn.functional.conv2d(x, weight, padding=1)) ** 2 + x.mean((1, 2, 3), keepdim=True)
    return d


def test_r1_against_finite_differences():
    torch.manual_seed(0)
    w = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    d = tiny_d(w)
    # central differences of sum(D(x_i)) in each pixel of image i
    eps, sq = 1e-6, [0.0, 0.0]
    for i in range(2):
        for idx in range(x[i].numel()):
            xp, xm = x.clone(), x.clone()
            xp[i].view(-1)[idx] += eps
            xm[i].view(-1)[idx] -= eps
            g = (d(xp)[i].sum() - d(xm)[i].sum()).item() / (2 * eps)
            sq[i] += g * g
    gamma = 3.0
    expected = gamma / 2 * (sq[0] + sq[1]) / 2
    xr = x.clone().requires_grad_()
    assert gan.r1_penalty(d(xr), xr, gamma=gamma).item() == pytest.approx(expected, rel=1e-6)


def test_r1_trains_d_gradcheck():
    torch.manual_seed(1)
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)

    def penalty(w):
        xr = x.clone().requires_grad_()
        return gan.r1_penalty(tiny_d(w)(xr), xr, gamma=2.0)

    w = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(penalty, (w,))  # the penalty's gradient in D's weights (create_graph)


def test_r1_lazy_interval():
    torch.manual_seed(2)
    w, x = torch.randn(1, 2, 3, 3, dtype=torch.float64), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    r1, got, due = IF.R1Penalty(gamma=4.0, interval=3), [], []
    for _ in range(6):
        due.append(r1.due)
        xr = x.clone().requires_grad_(r1.due)
        got.append(r1(tiny_d(w)(xr), xr).item())
    assert due == [True, False, False, True, False, False]
    xr = x.clone().requires_grad_()
    plain = gan.r1_penalty(tiny_d(w)(xr), xr, gamma=4.0).item()
    assert plain > 0
    assert got == pytest.approx([3 * plain, 0, 0, 3 * plain, 0, 0])
    # the step counter is checkpointed
    state = r1.state_dict()
    fresh = IF.R1Penalty(gamma=4.0, interval=3)
    fresh.steps = 1
    fresh.load_state_dict(state)
    assert fresh.steps == 6 and fresh.due


def test_r1_with_grad_scaler_recovers_underflowing_fp16_gradients():
    # D(x) = (x * w) * w with w = 1e-4 in fp16: dD/dx = 1e-8, below fp16's smallest subnormal (6e-8)
    w = torch.tensor(1e-4, dtype=torch.float16)
    x = torch.rand(2, 1, 2, 2).half().requires_grad_()
    expected = 10.0 / 2 * 4 * (1e-4 * 1e-4) ** 2  # gamma / 2 * (4 pixels * 1e-16) per image
    assert gan.r1_penalty((x * w) * w, x, gamma=10.0).item() == 0.0  # underflow without scaling
    scaler = torch.amp.GradScaler("cpu")  # the default scale, 2**16, is itself above fp16's max (65504)
    got = gan.r1_penalty((x * w) * w, x, gamma=10.0, scaler=scaler)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=2e-2)  # fp16 rounding of w and of the products
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    assert gan.r1_penalty((x * w) * w, x, gamma=10.0, scaler=disabled).item() == 0.0


def test_r1_scaled_backward_matches_unscaled():
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(3, 1, 3, padding=1)
    x = torch.rand(2, 3, 6, 6).requires_grad_()
    gan.r1_penalty(conv(x), x, gamma=1.0).backward()
    plain = conv.weight.grad.clone()
    conv.zero_grad()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    opt = torch.optim.SGD(conv.parameters(), lr=0.0)
    scaler.scale(gan.r1_penalty(conv(x), x, gamma=1.0, scaler=scaler)).backward()
    scaler.unscale_(opt)
    torch.testing.assert_close(conv.weight.grad, plain, rtol=1e-5, atol=1e-7)


def test_r1_under_bf16_autocast():
    torch.manual_seed(4)
    conv = torch.nn.Conv2d(3, 1, 3, padding=1)
    x = torch.rand(2, 3, 8, 8)
    xr = x.clone().requires_grad_()
    ref = gan.r1_penalty(torch.tanh(conv(xr)), xr, gamma=1.0).item()
    xr = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = torch.tanh(conv(xr))
        assert logits.dtype == torch.bfloat16
        got = gan.r1_penalty(logits, xr, gamma=1.0)
    assert got.dtype == torch.float32 and got.item() == pytest.approx(ref, rel=5e-2)
    got.backward()
    assert torch.isfinite(conv.weight.grad).all() and conv.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ feature matching
def test_feature_matching_by_hand():
    f1, r1 = torch.full((1, 1, 2, 2), 3.0), torch.ones(1, 1, 2, 2)              # |diff| = 2 everywhere
    f2 = torch.arange(16.0).reshape(1, 1, 4, 4)
    r2 = torch.zeros(1, 1, 4, 4)                                                 # |diff| = 0..15, mean 7.5
    assert gan.feature_matching_loss([f1, f2], [r1, r2]).item() == pytest.approx((2 + 7.5) / 2)
    assert gan.feature_matching_loss([f1, f2], [r1, r2], loss="l2").item() == pytest.approx(
        (4 + sum(v * v for v in range(16)) / 16) / 2)
    assert gan.feature_matching_loss([f1, f2], [r1, r2], layer_weights=[1.0, 0.5]).item() == pytest.approx(
        2 + 0.5 * 7.5)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., :2, :] = 1  # top half of the image
    # layer 2 (4x4): hole = rows 0-1 -> values 0..7, mean 3.5; layer 1 (2x2): row 0 -> |diff| 2
    assert gan.feature_matching_loss([f1, f2], [r1, r2], hole=hole).item() == pytest.approx((2 + 3.5) / 2)
    assert gan.feature_matching_loss([f1, f2], [r1, r2], mask=1 - hole, region="known").item() == pytest.approx(
        (2 + 11.5) / 2)


def test_feature_matching_detaches_real_features():
    f = torch.randn(2, 3, 4, 4, requires_grad=True)
    r = torch.randn(2, 3, 4, 4, requires_grad=True)
    gan.feature_matching_loss([f], [r]).backward()
    assert r.grad is None
    torch.testing.assert_close(f.grad, torch.sign(f - r).detach() / f.numel())


# ------------------------------------------------------------------ discriminators
def conv_params(cin, cout, k):
    return cin * cout * k * k + cout


def test_sn_patch_discriminator_shapes_and_params():
    from torch.nn.utils.parametrize import is_parametrized
    d = IF.SNPatchDiscriminator()
    widths = [4, 64, 128, 256, 256, 256, 256]  # image + hole channel, then DeepFill v2's widths
    assert sum(p.numel() for p in d.parameters()) == sum(conv_params(a, b, 5) for a, b in zip(widths, widths[1:]))
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6 and all(is_parametrized(c, "weight") for c in convs)
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    x = torch.rand(2, 3, 96, 128)
    hole = torch.zeros(2, 1, 96, 128)
    assert d(x, hole=hole).shape == (2, 256, 2, 2)  # ceil(96 / 64), ceil(128 / 64)
    small = IF.SNPatchDiscriminator(base_channels=8, num_layers=3, flatten=True)
    assert small(x[:, :, :16, :16], mask=torch.ones(16, 16)).shape == (2, 32 * 2 * 2)
    with pytest.raises(ValueError, match="a mask is required"):
        d(x)


def test_sn_patch_discriminator_sees_the_mask():
    torch.manual_seed(0)
    d = IF.SNPatchDiscriminator(base_channels=4, num_layers=2).eval()
    x = torch.rand(1, 3, 8, 8)
    assert not torch.allclose(d(x, hole=torch.zeros(8, 8)), d(x, hole=torch.ones(8, 8)))
    torch.testing.assert_close(d(x, hole=torch.ones(8, 8)), d(x, mask=torch.zeros(8, 8)))


def test_nlayer_discriminator_shapes_features_and_params():
    d = IF.NLayerDiscriminator(norm="instance")
    # pix2pixHD widths 64, 128, 256, 512 and the 1-channel head, 4x4 convs with bias (instance norm: no params)
    widths = [3, 64, 128, 256, 512, 1]
    assert sum(p.numel() for p in d.parameters()) == sum(conv_params(a, b, 4) for a, b in zip(widths, widths[1:]))
    logits, feats = d(torch.rand(2, 3, 64, 64), return_features=True)
    # padding 2: stride 2 maps H -> H / 2 + 1 (64, 33, 17, 9), stride 1 maps H -> H + 1 (10, 11)
    assert logits.shape == (2, 1, 11, 11)
    assert [tuple(f.shape) for f in feats] == [(2, 64, 33, 33), (2, 128, 17, 17), (2, 256, 9, 9), (2, 512, 10, 10)]
    batch = IF.NLayerDiscriminator()  # batch norm adds 2 parameters per channel of the 3 normed blocks
    assert sum(p.numel() for p in batch.parameters()) == sum(p.numel() for p in d.parameters()) + 2 * (128 + 256 + 512)
    sn = IF.NLayerDiscriminator(in_channels=4, base_channels=8, n_layers=2, norm="spectral", padding=1)
    assert sn(torch.rand(1, 4, 32, 32)).shape == (1, 1, 6, 6)  # 32 -> 16 -> 8 -> 7 -> 6


def test_gradients_flow_through_a_gan_step():
    torch.manual_seed(0)
    d = IF.NLayerDiscriminator(base_channels=8, n_layers=2)
    real = torch.rand(2, 3, 32, 32).requires_grad_()
    fake = torch.rand(2, 3, 32, 32, requires_grad=True)
    hole = torch.zeros(2, 1, 32, 32)
    hole[..., 8:20, 8:24] = 1
    real_logits, real_feats = d(real, return_features=True)
    dl = gan.discriminator_loss(real_logits, d(fake.detach()), loss="hinge", hole=hole, resize="maxpool")
    (dl.total + IF.R1Penalty(gamma=1.0)(real_logits, real)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())
    assert fake.grad is None
    fake_logits, fake_feats = d(fake, return_features=True)
    g = gan.generator_loss(fake_logits, loss="hinge", hole=hole) + gan.feature_matching_loss(fake_feats, real_feats)
    g.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_torch_compile_fullgraph_of_masked_losses():
    def step(real, fake, hole):
        d = gan.discriminator_loss(real, fake, loss="hinge", hole=hole, resize="maxpool")
        return d.total + gan.generator_loss(fake, loss="lsgan", hole=hole)

    real, fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    hole = (torch.rand(2, 1, 16, 16) > 0.5).float()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(real, fake, hole), step(real, fake, hole))


def test_new_errors():
    z = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="loss must be one of 'bce', 'hinge', 'lsgan'"):
        gan.generator_loss(z, loss="wgan")
    with pytest.raises(ValueError, match="resize must be one of"):
        gan.discriminator_loss(z, z, hole=torch.ones(4, 4), resize="bicubic")
    with pytest.raises(ValueError, match="fake_logits must have shape"):
        gan.discriminator_loss(torch.randn(2), torch.randn(2), hole=torch.ones(4, 4))
    with pytest.raises(ValueError, match="hole must have shape"):
        gan.discriminator_loss(z, z, hole=torch.ones(3, 1, 4, 4))
    with pytest.raises(ValueError, match="not both"):
        gan.generator_loss(z, mask=torch.ones(4, 4), hole=torch.ones(4, 4))
    with pytest.raises(ValueError, match="region='hole' needs a mask"):
        gan.generator_loss(z, region="hole")
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="real_images must require grad"):
        gan.r1_penalty(torch.nn.Conv2d(3, 1, 1)(x), x)
    with pytest.raises(ValueError, match="interval must be an integer >= 1"):
        IF.R1Penalty(interval=0)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        IF.R1Penalty(gamma=-1.0)
    with pytest.raises(ValueError, match="one length"):
        gan.feature_matching_loss([x], [x, x])
    with pytest.raises(ValueError, match="norm must be one of"):
        IF.NLayerDiscriminator(norm="layer")


def test_adversarial_loss_module_options():
    adv = IF.AdversarialLoss("hinge", resize="maxpool")
    fake, real = patch([0.3, -0.7, 1.1, 0.2]), patch([0.0] * 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[0, 0, 1, 2] = 1  # maxpool: only the top-right logit (-0.7) is hole
    assert adv(fake, hole=hole).item() == pytest.approx(0.7)  # G term over the hole logits: -(-0.7)
    # D fake term: 0.5 relu(1 + z) in the hole, 0.5 relu(1 - z) elsewhere, mean of 4
    expected = (0.5 * 0.7 + 0.5 * 0.3 + 0.5 * 0.0 + 0.5 * 0.8) / 4
    assert adv.discriminator_loss(real, fake, hole=hole).fake.item() == pytest.approx(expected)
    assert "hinge" in repr(adv) and "maxpool" in repr(adv)


def test_feature_matching_mask_resize_modes():
    fake, real = [torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]])], [torch.zeros(1, 1, 2, 2)]
    hole = torch.zeros(1, 1, 4, 4)
    hole[0, 0, 1, 2] = 1  # one pixel of the top-right 2x2 cell
    known = {
        "nearest": (1 + 2 + 4 + 8) / 4,            # samples pixels (0,0), (0,2), (2,0), (2,2): no hole seen
        "maxpool": (1 + 4 + 8) / 3,                # the top-right cell touches the hole: weight 0
        "bilinear": (1 + 0.75 * 2 + 4 + 8) / 3.75,  # the cell centre averages 2x2 pixels: hole weight 1/4
    }
    for mode, expected in known.items():
        got = gan.feature_matching_loss(fake, real, hole=hole, region="known", resize=mode).item()
        assert got == pytest.approx(expected), mode
