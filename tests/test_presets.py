"""The loss presets (pconv_loss, lama_loss, deepfill_v2_loss) against plain-PyTorch transcriptions of the
original training codes, never computed with inpaint_fast:

* naoto0804/pytorch-inpainting-with-partial-conv: transcribed in tests/naoto_pconv.py (shared with
  benchmarks/bench_composite.py);
* advimman/lama: ``saicinpainting/training/losses/feature_matching.py`` (``masked_l1_loss``,
  ``feature_matching_loss``), ``perceptual.py`` (``ResNetPL``), ``adversarial.py`` (``NonSaturatingWithR1``,
  ``make_r1_gp``, ``interpolate_mask``), ``trainers/default.py`` (how they are summed) and
  ``configs/training/big-lama.yaml`` (weights 10 / 30 / 10 / 100, gp_coef 0.001, mask_as_fake_target,
  allow_scale_mask);
* JiahuiYu/generative_inpainting ``inpaint_model.py`` (``ae_loss``, ``g_loss``) and neuralgym
  ``ops/gan_ops.py`` (``gan_hinge_loss``).

Mask conventions: naoto0804 and inpaint_fast's ``mask`` are 1 = known; LaMa's and DeepFill's ``mask`` are
1 = hole (inpaint_fast's ``hole``).
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet50, vgg16

import inpaint_fast as IF
from tests.lama_losses import make_r1_gp
from tests.naoto_pconv import (LAMBDA_DICT, NaotoInpaintingLoss, NaotoVGG16FeatureExtractor, naoto_gram_matrix,
                               naoto_total, naoto_total_variation_loss)
from tests.test_hrf import resnet_stages

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def vgg_features():
    """torchvision's vgg16(weights=None).features[:17] with fixed random weights (non-zero biases, so a wrong
    layer or a missing bias shows). Built on the meta device: no 500 MB classifier."""
    torch.manual_seed(0)
    with torch.device("meta"):
        features = vgg16(weights=None).features[:17]
    features = features.to_empty(device="cpu")
    for m in features:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return features


@pytest.fixture(scope="module")
def naoto_extractor(vgg_features):
    return NaotoVGG16FeatureExtractor(copy.deepcopy(vgg_features)).double().eval()


@pytest.fixture(scope="module")
def if_extractor(vgg_features):
    """inpaint_fast's VGGFeatures at pool1..pool3, no input normalisation, holding the same weights."""
    ext = IF.VGGFeatures(arch="vgg16", layers=("pool1", "pool2", "pool3"), weights=None, normalize_input=False)
    ext.features.load_state_dict(vgg_features.state_dict())
    return ext.double()


def images(n=2, size=24, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, 3, size, size, generator=g, dtype=dtype)
    pred = (gt + 0.3 * torch.randn(n, 3, size, size, generator=g, dtype=dtype)).clamp(0, 1)
    return gt, pred


def make_hole(n=2, size=24, seed=0, dtype=torch.float64):
    """An irregular hole (1 = missing), (N, 1, H, W): a different box per sample plus scattered pixels."""
    g = torch.Generator().manual_seed(seed + 100)
    hole = (torch.rand(n, 1, size, size, generator=g) < 0.1)
    for i in range(n):
        t, l = 3 + 5 * i, 7 + 3 * i
        hole[i, :, t:t + size // 3, l:l + size // 4 + i] = True
    return hole.to(dtype)


def dilated_tv(comp, hole):
    """The PConv paper's TV on region P (the hole dilated by one pixel, 3x3), pairs with both pixels in P,
    each direction divided by all its pairs (N*C*H*(W-1) horizontally, N*C*(H-1)*W vertically)."""
    n, c, h, w = comp.shape
    p = F.max_pool2d(hole, 3, stride=1, padding=1)
    pairs_h = p[..., :, 1:] * p[..., :, :-1]
    pairs_v = p[..., 1:, :] * p[..., :-1, :]
    tv_h = (pairs_h * (comp[..., :, 1:] - comp[..., :, :-1]).abs()).sum() / (n * c * h * (w - 1))
    tv_v = (pairs_v * (comp[..., 1:, :] - comp[..., :-1, :]).abs()).sum() / (n * c * (h - 1) * w)
    return tv_h + tv_v


NAOTO_TERMS = {"valid": "valid", "hole": "hole", "perc": "prc", "style": "style", "tv": "tv"}


def run_naoto(naoto_extractor, pred, gt, known):
    """naoto0804's InpaintingLoss on (N,1,H,W) known-masks (expanded to the image's 3 channels, as its dataset
    gives them); ``input`` is the masked image gt * mask."""
    mask3 = known.expand_as(gt)
    return NaotoInpaintingLoss(naoto_extractor)(gt * mask3, mask3, pred, gt)


@pytest.mark.parametrize("mask_channels", [1, 3])
def test_pconv_matches_naoto0804(naoto_extractor, if_extractor, backend, mask_channels):
    """mask_channels=3: the (N, 3, H, W) mask naoto0804's loader yields, passed as it is."""
    gt, pred = images()
    known = 1 - make_hole()
    pred_a = pred.clone().requires_grad_()
    pred_b = pred.clone().requires_grad_()
    expected = run_naoto(naoto_extractor, pred_a, gt, known)
    expected_total = naoto_total(expected)
    loss = IF.pconv_loss(extractor=if_extractor, tv_region="all")
    got = loss(pred_b, gt, mask=known if mask_channels == 1 else known.expand_as(gt).contiguous())
    assert set(got) == {"valid", "hole", "perc", "style", "tv", "total"}
    for ours, theirs in NAOTO_TERMS.items():
        torch.testing.assert_close(got[ours], expected[theirs], rtol=1e-5, atol=0, msg=ours)
    torch.testing.assert_close(got["total"], expected_total, rtol=1e-5, atol=0)
    expected_total.backward()
    got["total"].backward()
    torch.testing.assert_close(pred_b.grad, pred_a.grad, rtol=1e-5, atol=1e-12)


def test_pconv_float32_matches_naoto0804(naoto_extractor, if_extractor, backend):
    """The same in float32, the dtype of training (tolerance of float32 sums)."""
    gt, pred = images(dtype=torch.float32, seed=3)
    known = 1 - make_hole(dtype=torch.float32, seed=3)
    expected = run_naoto(copy.deepcopy(naoto_extractor).float(), pred, gt, known)
    got = IF.pconv_loss(extractor=copy.deepcopy(if_extractor).float(), tv_region="all")(pred, gt, mask=known)
    for ours, theirs in NAOTO_TERMS.items():
        torch.testing.assert_close(got[ours], expected[theirs].float(), rtol=1e-4, atol=0, msg=ours)
    torch.testing.assert_close(got["total"], naoto_total(expected).float(), rtol=1e-4, atol=0)


def test_pconv_default_tv_is_the_papers_dilated_hole_region(if_extractor, naoto_extractor, backend):
    gt, pred = images(seed=1)
    hole = make_hole(seed=1)
    known = 1 - hole
    pred = pred.requires_grad_()
    got = IF.pconv_loss(extractor=if_extractor)(pred, gt, mask=known)  # tv_region='hole_dilated'
    comp = known * gt + hole * pred
    expected_tv = dilated_tv(comp, hole)
    torch.testing.assert_close(got["tv"], expected_tv, rtol=1e-5, atol=0)
    # the region matters: differs from naoto0804's whole-image TV
    assert not torch.allclose(got["tv"], naoto_total_variation_loss(comp), rtol=1e-3)
    # the other terms are unchanged by the TV region
    expected = run_naoto(naoto_extractor, pred, gt, known)
    expected["tv"] = expected_tv
    torch.testing.assert_close(got["total"], naoto_total(expected), rtol=1e-5, atol=0)
    g_ours, = torch.autograd.grad(got["total"], pred)
    g_theirs, = torch.autograd.grad(naoto_total(expected), pred)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-12)


def test_pconv_dilated_tv_at_the_border():
    """A hole touching the image border: the dilation must not wrap or pad with ones."""
    torch.manual_seed(0)
    gt, pred = torch.rand(1, 3, 12, 12, dtype=torch.float64), torch.rand(1, 3, 12, 12, dtype=torch.float64)
    hole = torch.zeros(1, 1, 12, 12, dtype=torch.float64)
    hole[..., 0:4, 8:12] = 1  # top-right corner
    hole[..., 11, 0] = 1      # one pixel in the bottom-left corner
    got = IF.pconv_loss(valid=0.0, hole=0.0, perceptual=0.0, style=0.0, tv=1.0)(pred, gt, hole=hole)
    comp = (1 - hole) * gt + hole * pred
    torch.testing.assert_close(got["tv"], dilated_tv(comp, hole), rtol=1e-6, atol=0)


def test_pconv_normalize_input(vgg_features, naoto_extractor, tmp_path, backend):
    """normalize_input=True (the default): the VGG sees (x - mean) / std with ImageNet's mean/std; the pixel
    terms stay on the raw images. Weights from a features-only state-dict file."""
    path = tmp_path / "vgg16_features.pth"
    torch.save(vgg_features.state_dict(), path)
    gt, pred = images(seed=2)
    known = 1 - make_hole(seed=2)
    loss = IF.pconv_loss(vgg_weights=str(path), tv_region="all").double()
    got = loss(pred, gt, mask=known)

    def normalized(x):
        return naoto_extractor((x - MEAN.double()) / STD.double())
    expected = run_naoto(normalized, pred, gt, known)
    for ours, theirs in NAOTO_TERMS.items():
        torch.testing.assert_close(got[ours], expected[theirs], rtol=1e-5, atol=0, msg=ours)
    torch.testing.assert_close(got["total"], naoto_total(expected), rtol=1e-5, atol=0)
    # (normalize_input=False: test_pconv_untrained_default_extractor_is_naotos_layers)


def test_pconv_untrained_default_extractor_is_naotos_layers(naoto_extractor):
    """pconv_loss(vgg_weights=None, normalize_input=False, tv_region='all') builds pool1..pool3 of vgg16:
    naoto0804's extractor holding the same (random) weights gives the same numbers."""
    torch.manual_seed(5)
    loss = IF.pconv_loss(vgg_weights=None, normalize_input=False, tv_region="all").double()
    params = [p for p in loss.parameters()]
    assert params and all(not p.requires_grad for p in params)
    state = {k.split("features.", 1)[1]: v for k, v in loss.state_dict().items() if "features." in k}
    naoto = copy.deepcopy(naoto_extractor)
    nn.Sequential(*naoto.enc_1, *naoto.enc_2, *naoto.enc_3).load_state_dict(state)
    gt, pred = images(seed=4)
    known = 1 - make_hole(seed=4)
    got = loss(pred, gt, mask=known)
    expected = run_naoto(naoto, pred, gt, known)
    torch.testing.assert_close(got["total"], naoto_total(expected), rtol=1e-5, atol=0)


@pytest.mark.parametrize("weights", [
    {"style": 0.0},
    {"style": 60.0, "tv": 0.5},
    {"valid": 2.0, "hole": 3.0, "perceptual": 0.1},
    {"valid": 0.0, "hole": 0.0, "tv": 0.0},
    {"perceptual": 0.0, "style": 0.0},
])
def test_pconv_weights_are_overridable(weights, naoto_extractor, if_extractor):
    gt, pred = images(seed=6)
    known = 1 - make_hole(seed=6)
    got = IF.pconv_loss(extractor=if_extractor, tv_region="all", **weights)(pred, gt, mask=known)
    naming = {"valid": "valid", "hole": "hole", "perceptual": "prc", "style": "style", "tv": "tv"}
    ours = {"valid": "valid", "hole": "hole", "perceptual": "perc", "style": "style", "tv": "tv"}
    lambdas = dict(LAMBDA_DICT)
    for k, v in weights.items():
        lambdas[naming[k]] = v
    expected = run_naoto(naoto_extractor, pred, gt, known)
    torch.testing.assert_close(got["total"], naoto_total(expected, lambdas), rtol=1e-5, atol=0)
    for k in naming:
        w = lambdas[naming[k]]
        if w == 0:
            assert ours[k] not in got, f"a zero weight drops {ours[k]!r} from the dict"
        else:
            torch.testing.assert_close(got[ours[k]], expected[naming[k]], rtol=1e-5, atol=0)


def test_weights_are_checked():
    """A weight of 0 leaves its term out (tested above); all weights 0, or a negative one, is an error."""
    with pytest.raises(ValueError, match="every weight is 0"):
        IF.pconv_loss(valid=0.0, hole=0.0, perceptual=0.0, style=0.0, tv=0.0)
    with pytest.raises(ValueError, match="every weight is 0"):
        IF.deepfill_v2_loss(l1_hole=0, l1_valid=0, adversarial=0)
    with pytest.raises(ValueError, match=">= 0"):
        IF.lama_loss(hrf_extractor=TinyEncoder(), adversarial=-1.0)
    with pytest.raises(ValueError, match=">= 0"):
        IF.lama_loss(hrf_extractor=TinyEncoder(), gp_coef=-0.001)


# ----------------------------------------------------------------------------------------------------------
# masks of every kind through the presets
# ----------------------------------------------------------------------------------------------------------

class TinyVGG(nn.Module):
    """A frozen 3-feature stand-in for the VGG (cheap), for the tests of masks and gradients."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.3
        self.requires_grad_(False)

    def forward(self, x):
        f1 = F.relu(self.c1(x))
        f2 = F.relu(self.c2(f1))
        return [f1, f2, F.relu(self.c3(f2))]


def mask_variants(known):
    """(1, 1, H, W) float known-mask -> the same mask in the dtypes and shapes a preset accepts:
    [(dtype, shape, tensor)]; (N, 1, H, W) and (N, H, W) for a batch of 2, (H, W) shared by the batch."""
    k4 = known.expand(2, 1, *known.shape[-2:])
    k3, k2 = k4[:, 0], known[0, 0]
    out = []
    for dtype, t in ((torch.float32, k4), (torch.float64, k4), (torch.bool, k4), (torch.uint8, k4),
                     (torch.float32, k3), (torch.bool, k3), (torch.float32, k2), (torch.uint8, k2)):
        out.append((dtype, tuple(t.shape), t > 0.5 if dtype == torch.bool else t.to(dtype)))
    return out


@pytest.mark.parametrize("preset", ["pconv", "lama", "deepfill"])
def test_masks_of_every_kind(preset):
    torch.manual_seed(0)
    gt, pred = images(n=2, size=16, seed=7)
    gt, pred = gt.float(), pred.float()
    known1 = 1 - make_hole(n=1, size=16, seed=7, dtype=torch.float32)
    known = known1.expand(2, 1, 16, 16)
    fake = torch.randn(2, 1, 5, 5)
    feats_f, feats_r = [torch.randn(2, 4, 8, 8)], [torch.randn(2, 4, 8, 8)]
    if preset == "pconv":
        loss = IF.pconv_loss(extractor=TinyVGG())
        kw = {}
    elif preset == "lama":
        loss = IF.lama_loss(hrf_extractor=TinyVGG())
        kw = dict(fake_logits=fake, fake_features=feats_f, real_features=feats_r)
    else:
        loss = IF.deepfill_v2_loss()
        kw = dict(fake_logits=fake)
    ref = loss(pred, gt, mask=known, **kw)
    via_hole = loss(pred, gt, hole=1 - known, **kw)
    for k in ref:
        torch.testing.assert_close(via_hole[k], ref[k], rtol=0, atol=0, msg=k)
    for dtype, shape, m in mask_variants(known1):
        got = loss(pred, gt, mask=m, **kw)
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-6, atol=1e-7, msg=f"{k} {dtype} {shape}")
        if dtype in (torch.bool, torch.uint8):  # the complement as hole=
            got = loss(pred, gt, hole=(~m) if dtype == torch.bool else 1 - m, **kw)
            for k in ref:
                torch.testing.assert_close(got[k], ref[k], rtol=1e-6, atol=1e-7, msg=f"hole {k} {dtype} {shape}")


@pytest.mark.parametrize("preset", ["pconv", "lama", "deepfill"])
@pytest.mark.parametrize("case", ["empty hole", "full hole"])
def test_empty_and_full_holes_are_finite(preset, case):
    gt, pred = images(n=2, size=16, seed=8)
    gt, pred = gt.float(), pred.float().requires_grad_()
    hole = torch.zeros(2, 1, 16, 16) if case == "empty hole" else torch.ones(2, 1, 16, 16)
    fake = torch.randn(2, 1, 5, 5, requires_grad=True)
    if preset == "pconv":
        out = IF.pconv_loss(extractor=TinyVGG())(pred, gt, hole=hole)
    elif preset == "lama":
        out = IF.lama_loss(hrf_extractor=TinyVGG(), l1_missing=1.0)(
            pred, gt, hole=hole, fake_logits=fake, fake_features=[fake], real_features=[fake.detach() + 1])
    else:
        out = IF.deepfill_v2_loss()(pred, gt, hole=hole, fake_logits=fake, coarse=pred * 0.5)
    for k, v in out.items():
        assert torch.isfinite(v).all(), f"{k} = {v}"
    out["total"].backward()
    assert torch.isfinite(pred.grad).all()
    comp = (1 - hole) * gt + hole * pred.detach()
    if preset == "pconv":
        if case == "empty hole":
            assert out["hole"].item() == 0.0 and out["tv"].item() == 0.0
        else:
            assert out["valid"].item() == 0.0
            torch.testing.assert_close(out["tv"], dilated_tv(comp, hole))  # P = whole image
    elif preset == "lama" and case == "full hole":
        assert out["valid"].item() == 0.0
    elif preset == "lama":
        assert out["hole"].item() == 0.0


# ----------------------------------------------------------------------------------------------------------
# LaMa (advimman/lama, big-lama), transcribed
# ----------------------------------------------------------------------------------------------------------

def lama_masked_l1_loss(pred, target, mask, weight_known, weight_missing):
    per_pixel_l1 = F.l1_loss(pred, target, reduction='none')
    pixel_weights = mask * weight_missing + (1 - mask) * weight_known
    return (pixel_weights * per_pixel_l1).mean()


def lama_feature_matching_loss(fake_features, target_features, mask=None):
    assert mask is None  # big-lama: feature_matching has no pass_mask
    res = torch.stack([F.mse_loss(fake_feat, target_feat)
                       for fake_feat, target_feat in zip(fake_features, target_features)]).mean()
    return res


def lama_resnet_pl(pred, target, impl, weight=30.0):
    """perceptual.py ResNetPL.forward, ``impl(x, return_feature_maps=True)`` -> ``impl(x)``."""
    pred = (pred - MEAN.to(pred)) / STD.to(pred)
    target = (target - MEAN.to(target)) / STD.to(target)
    pred_feats = impl(pred)
    target_feats = impl(target)
    result = torch.stack([F.mse_loss(cur_pred, cur_target)
                          for cur_pred, cur_target
                          in zip(pred_feats, target_feats)]).sum() * weight
    return result


def lama_generator_adv(discr_fake_pred, weight=10.0):
    """NonSaturatingWithR1.generator_loss, mask_as_fake_target=True, extra_mask_weight_for_gen=0."""
    fake_loss = F.softplus(-discr_fake_pred)
    return fake_loss.mean() * weight


def lama_interpolate_mask(mask, shape, allow_scale_mask=True, mask_scale_mode='nearest'):
    assert mask is not None
    assert allow_scale_mask or shape == mask.shape[-2:]
    if shape != mask.shape[-2:] and allow_scale_mask:
        if mask_scale_mode == 'maxpool':
            mask = F.adaptive_max_pool2d(mask, shape)
        else:
            mask = F.interpolate(mask, size=shape, mode=mask_scale_mode)
    return mask


def lama_discriminator_loss(real_batch, discr_real_pred, discr_fake_pred, mask, gp_coef=0.001):
    """NonSaturatingWithR1.discriminator_loss, mask_as_fake_target=True, allow_scale_mask=True,
    mask_scale_mode='nearest', use_unmasked_for_discr=True; returns (total, parts)."""
    real_loss = F.softplus(-discr_real_pred)
    grad_penalty = make_r1_gp(discr_real_pred, real_batch) * gp_coef
    fake_loss = F.softplus(discr_fake_pred)
    mask = lama_interpolate_mask(mask, discr_fake_pred.shape[-2:])
    fake_loss = fake_loss * mask
    fake_loss = fake_loss + (1 - mask) * F.softplus(-discr_fake_pred)
    sum_discr_loss = real_loss + grad_penalty + fake_loss
    return sum_discr_loss.mean(), dict(real=real_loss.mean(), fake=fake_loss.mean(), r1=grad_penalty)


class TinyEncoder(nn.Module):
    """A frozen stand-in for the HRF ResNet: 3 feature maps, no input normalisation (ResNetPL normalises)."""

    def __init__(self, seed=12):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3
        self.requires_grad_(False)

    def forward(self, x):
        f1 = F.relu(self.c1(x))
        f2 = F.relu(self.c2(f1))
        return [f1, f2, F.relu(self.c3(f2))]


class Normalized(nn.Module):
    """What the preset gets as hrf_extractor: the encoder behind ImageNet normalisation (as ResNetFeatures)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x - MEAN.to(x)) / STD.to(x))


class TinyD(nn.Module):
    """A small PatchGAN: logits at 17x17 for a 32x32 image (a non-integer ratio, so the mask resize matters);
    returns (logits, features) as LaMa's NLayerDiscriminator."""

    def __init__(self, seed=13):
        super().__init__()
        torch.manual_seed(seed)
        self.c1 = nn.Conv2d(3, 8, 4, stride=2, padding=2)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        f1 = F.leaky_relu(self.c1(x), 0.2)
        f2 = F.leaky_relu(self.c2(f1), 0.2)
        return self.c3(f2), [f1, f2]


def lama_batch(seed=20, n=2, size=32):
    gt, pred = images(n=n, size=size, seed=seed)
    hole = make_hole(n=n, size=size, seed=seed)
    return gt, pred, hole


def test_lama_generator_matches_big_lama():
    gt, pred, hole = lama_batch()
    D = TinyD().double()
    enc = TinyEncoder().double()
    pred = pred.requires_grad_()
    discr_real_pred, discr_real_features = D(gt)
    discr_fake_pred, discr_fake_features = D(pred)
    # trainers/default.py generator_loss, big-lama weights
    l1_value = lama_masked_l1_loss(pred, gt, hole, 10, 0)
    pl_value = lama_resnet_pl(pred, gt, enc, weight=30)
    adv_gen_loss = lama_generator_adv(discr_fake_pred, weight=10)
    fm_value = lama_feature_matching_loss(discr_fake_features, discr_real_features) * 100
    expected_total = l1_value + adv_gen_loss + fm_value + pl_value

    got = IF.lama_loss(hrf_extractor=Normalized(enc))(
        pred, gt, hole=hole, fake_logits=discr_fake_pred, fake_features=discr_fake_features,
        real_features=discr_real_features)
    assert set(got) == {"valid", "hrf", "adv", "fm", "total"}
    torch.testing.assert_close(got["valid"], l1_value / 10, rtol=1e-5, atol=0)
    torch.testing.assert_close(got["hrf"], pl_value / 30, rtol=1e-5, atol=0)
    torch.testing.assert_close(got["adv"], adv_gen_loss / 10, rtol=1e-5, atol=0)
    torch.testing.assert_close(got["fm"], fm_value / 100, rtol=1e-5, atol=0)
    torch.testing.assert_close(got["total"], expected_total, rtol=1e-5, atol=0)
    g_theirs, = torch.autograd.grad(expected_total, pred, retain_graph=True)
    g_ours, = torch.autograd.grad(got["total"], pred)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-12)


def test_lama_hrf_on_resnet_features():
    """hrf_extractor=IF.ResNetFeatures(weights=None): ResNetPL on torchvision's dilated ResNet-50 holding the
    same weights, run here stage by stage."""
    torch.manual_seed(21)
    ext = IF.ResNetFeatures(weights=None).double()
    with torch.device("meta"):
        net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    net = net.to_empty(device="cpu").double().eval()
    missing, unexpected = net.load_state_dict(ext.body.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("fc.") for k in missing)

    def impl(x):
        return resnet_stages(net, x)

    gt, pred, hole = lama_batch(seed=22, size=16)
    pred = pred.requires_grad_()
    got = IF.lama_loss(hrf_extractor=ext, adversarial=0.0, feature_matching=0.0)(pred, gt, hole=hole)
    expected = lama_masked_l1_loss(pred, gt, hole, 10, 0) + lama_resnet_pl(pred, gt, impl, weight=30)
    torch.testing.assert_close(got["total"], expected, rtol=1e-5, atol=0)
    g_ours, = torch.autograd.grad(got["total"], pred)
    g_theirs, = torch.autograd.grad(expected, pred)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-5, atol=1e-12)
    assert all(p.grad is None for p in ext.parameters())


@pytest.mark.parametrize("weights", [
    dict(l1_known=1.0, l1_missing=2.0),
    dict(hrf=3.0, adversarial=0.5, feature_matching=7.0),
    dict(l1_known=0.0, adversarial=0.0),
    dict(hrf=0.0, feature_matching=0.0),
])
def test_lama_weights_are_overridable(weights):
    gt, pred, hole = lama_batch(seed=23)
    D, enc = TinyD().double(), TinyEncoder().double()
    real_pred, real_feats = D(gt)
    fake_pred, fake_feats = D(pred)
    w = dict(l1_known=10.0, l1_missing=0.0, hrf=30.0, adversarial=10.0, feature_matching=100.0)
    w.update(weights)
    # each term unweighted (weight 1), as LaMa computes it
    theirs = {"valid": lama_masked_l1_loss(pred, gt, hole, 1, 0), "hole": lama_masked_l1_loss(pred, gt, hole, 0, 1),
              "hrf": lama_resnet_pl(pred, gt, enc, weight=1), "adv": lama_generator_adv(fake_pred, weight=1),
              "fm": lama_feature_matching_loss(fake_feats, real_feats)}
    expected = (lama_masked_l1_loss(pred, gt, hole, w["l1_known"], w["l1_missing"])
                + lama_resnet_pl(pred, gt, enc, weight=w["hrf"])
                + lama_generator_adv(fake_pred, weight=w["adversarial"])
                + lama_feature_matching_loss(fake_feats, real_feats) * w["feature_matching"])
    got = IF.lama_loss(hrf_extractor=Normalized(enc), **weights)(
        pred, gt, hole=hole, fake_logits=fake_pred, fake_features=fake_feats, real_features=real_feats)
    names = {"l1_known": "valid", "l1_missing": "hole", "hrf": "hrf", "adversarial": "adv",
             "feature_matching": "fm"}
    for k, term in names.items():
        assert (term in got) == (w[k] > 0), (term, w[k], sorted(got))  # a zero weight leaves the term out
        if term in got:
            torch.testing.assert_close(got[term], theirs[term], rtol=1e-5, atol=0, msg=term)
    torch.testing.assert_close(got["total"], expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("use_nlayer", [False, True])
def test_lama_discriminator_matches_non_saturating_with_r1(use_nlayer):
    gt, pred, hole = lama_batch(seed=24)
    if use_nlayer:
        torch.manual_seed(25)
        D = IF.NLayerDiscriminator(base_channels=4, n_layers=2, norm="none").double()  # 32 -> 9x9 logits

        def run(x):
            return D(x, return_features=True)
    else:
        D = run = TinyD().double()
    params = [p for p in D.parameters()]
    fake = pred.detach()

    real_a = gt.clone().requires_grad_(True)  # pre_discriminator_step: real_batch.requires_grad = True
    discr_real_pred, _ = run(real_a)
    discr_fake_pred, _ = run(fake)
    assert discr_fake_pred.shape[-2:] != hole.shape[-2:]
    expected, parts = lama_discriminator_loss(real_a, discr_real_pred, discr_fake_pred, hole)
    g_theirs = torch.autograd.grad(expected, params)

    real_b = gt.clone().requires_grad_(True)
    real_logits, _ = run(real_b)
    fake_logits, _ = run(fake)
    got = IF.lama_loss(hrf_extractor=TinyEncoder()).discriminator_loss(
        real_logits, fake_logits, real_images=real_b, hole=hole)
    assert set(got) == {"real", "fake", "r1", "total"}
    for k in ("real", "fake", "r1"):
        torch.testing.assert_close(got[k], parts[k], rtol=1e-5, atol=0, msg=k)
    torch.testing.assert_close(got["total"], expected, rtol=1e-5, atol=0)
    g_ours = torch.autograd.grad(got["total"], params)
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-12)

    # the resize is nearest (LaMa's interpolate_mask), not e.g. area/bilinear/max-pool
    other = F.adaptive_max_pool2d(hole, discr_fake_pred.shape[-2:])
    alt = (F.softplus(discr_fake_pred) * other + (1 - other) * F.softplus(-discr_fake_pred)).mean()
    assert not torch.allclose(alt, parts["fake"], rtol=1e-4)


def test_lama_discriminator_gp_coef_and_mask_kinds():
    gt, pred, hole = lama_batch(seed=26)
    D = TinyD().double()
    real = gt.clone().requires_grad_(True)
    rp, _ = D(real)
    fp, _ = D(pred)
    _, parts = lama_discriminator_loss(real, rp, fp, hole, gp_coef=0.5)
    loss = IF.lama_loss(hrf_extractor=TinyEncoder(), gp_coef=0.5)
    real2 = gt.clone().requires_grad_(True)
    rp2, _ = D(real2)
    ref = loss.discriminator_loss(rp2, fp, real_images=real2, hole=hole)
    torch.testing.assert_close(ref["r1"], parts["r1"], rtol=1e-5, atol=0)
    torch.testing.assert_close(ref["total"], parts["real"] + parts["fake"] + parts["r1"], rtol=1e-5, atol=0)
    for h in (hole > 0.5, hole.to(torch.uint8), hole[:, 0], 1 - (1 - hole)):
        got = loss.discriminator_loss(rp2, fp, real_images=real2, hole=h)
        torch.testing.assert_close(got["fake"], ref["fake"], rtol=0, atol=0)
    got = loss.discriminator_loss(rp2, fp, real_images=real2, mask=1 - hole)
    torch.testing.assert_close(got["total"], ref["total"], rtol=0, atol=0)


def test_lama_discriminator_maxpool_resize_and_no_r1():
    """mask_resize='maxpool' is LaMa's mask_scale_mode='maxpool' (F.adaptive_max_pool2d); gp_coef=0 leaves
    the R1 term out."""
    gt, pred, hole = lama_batch(seed=27)
    D = TinyD().double()
    real = gt.clone().requires_grad_(True)
    rp, _ = D(real)
    fp, _ = D(pred.detach())
    h = lama_interpolate_mask(hole, fp.shape[-2:], mask_scale_mode="maxpool")
    expected_fake = (F.softplus(fp) * h + (1 - h) * F.softplus(-fp)).mean()
    got = IF.lama_loss(hrf_extractor=TinyEncoder(), mask_resize="maxpool").discriminator_loss(
        rp, fp, real_images=real, hole=hole)
    torch.testing.assert_close(got["fake"], expected_fake, rtol=1e-5, atol=0)
    got = IF.lama_loss(hrf_extractor=TinyEncoder(), gp_coef=0.0).discriminator_loss(rp, fp, hole=hole)
    assert set(got) == {"real", "fake", "total"}
    torch.testing.assert_close(got["real"], F.softplus(-rp).mean(), rtol=1e-5, atol=0)
    torch.testing.assert_close(got["total"], got["real"] + got["fake"], rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------------------------------------
# DeepFill v2 (JiahuiYu/generative_inpainting + neuralgym), transcribed
# ----------------------------------------------------------------------------------------------------------

def neuralgym_gan_hinge_loss(pos, neg):
    hinge_pos = torch.mean(F.relu(1 - pos))
    hinge_neg = torch.mean(F.relu(1 + neg))
    d_loss = .5 * hinge_pos + .5 * hinge_neg
    g_loss = -torch.mean(neg)
    return g_loss, d_loss


def deepfill_g_loss(batch_pos, x1, x2, neg, l1_loss_alpha=1.0, gan_loss_alpha=1.0):
    """build_graph_with_losses: ae_loss on x1 (when given) and x2; g_loss = gan_loss_alpha * g + ae_loss."""
    ae_loss = 0.0
    if x1 is not None:
        ae_loss = l1_loss_alpha * torch.mean(torch.abs(batch_pos - x1))
    ae_loss = ae_loss + l1_loss_alpha * torch.mean(torch.abs(batch_pos - x2))
    g_loss, _ = neuralgym_gan_hinge_loss(torch.zeros(1, dtype=neg.dtype), neg)
    return gan_loss_alpha * g_loss + ae_loss, ae_loss, g_loss


@pytest.mark.parametrize("with_coarse", [True, False])
def test_deepfill_v2_matches_generative_inpainting(with_coarse):
    g = torch.Generator().manual_seed(30)
    gt = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64) * 2 - 1  # DeepFill's [-1, 1]
    x2 = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64).mul(2).sub(1).requires_grad_()
    x1 = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64).mul(2).sub(1).requires_grad_()
    hole = make_hole(n=2, size=24, seed=30)
    neg = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64).requires_grad_()  # D(batch_complete)
    coarse = x1 if with_coarse else None
    expected, ae_loss, g_adv = deepfill_g_loss(gt, coarse, x2, neg)
    kw = dict(coarse=x1) if with_coarse else {}
    got = IF.deepfill_v2_loss()(x2, gt, hole=hole, fake_logits=neg, **kw)
    assert set(got) == {"hole", "valid", "adv", "total"}
    torch.testing.assert_close(got["hole"] + got["valid"], ae_loss, rtol=1e-6, atol=0)
    hole_part = (hole * (x2 - gt).abs()).mean() + ((hole * (x1 - gt).abs()).mean() if with_coarse else 0)
    torch.testing.assert_close(got["hole"], hole_part, rtol=1e-6, atol=0)
    torch.testing.assert_close(got["adv"], g_adv, rtol=1e-6, atol=0)
    torch.testing.assert_close(got["total"], expected, rtol=1e-6, atol=0)
    inputs = [x2, neg] + ([x1] if with_coarse else [])
    for a, b in zip(torch.autograd.grad(got["total"], inputs, retain_graph=True),
                    torch.autograd.grad(expected, inputs)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)


def test_deepfill_v2_discriminator_is_neuralgym_hinge():
    g = torch.Generator().manual_seed(31)
    pos = torch.randn(4, 1, 5, 5, generator=g, dtype=torch.float64).mul(2).requires_grad_()
    neg = torch.randn(4, 1, 5, 5, generator=g, dtype=torch.float64).mul(2).requires_grad_()
    _, d_loss = neuralgym_gan_hinge_loss(pos, neg)
    got = IF.deepfill_v2_loss().discriminator_loss(pos, neg)
    assert set(got) == {"real", "fake", "total"}
    torch.testing.assert_close(got["real"], .5 * F.relu(1 - pos).mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(got["fake"], .5 * F.relu(1 + neg).mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(got["total"], d_loss, rtol=1e-6, atol=0)
    for a, b in zip(torch.autograd.grad(got["total"], [pos, neg]), torch.autograd.grad(d_loss, [pos, neg])):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


@pytest.mark.parametrize("weights", [dict(l1_hole=2.0, l1_valid=0.5, adversarial=0.1), dict(adversarial=0.0),
                                     dict(l1_valid=0.0)])
def test_deepfill_v2_weights_are_overridable(weights):
    g = torch.Generator().manual_seed(32)
    gt, x2, x1 = (torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64) for _ in range(3))
    hole = make_hole(n=2, size=16, seed=32)
    neg = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    w = dict(l1_hole=1.0, l1_valid=1.0, adversarial=1.0)
    w.update(weights)
    d2, d1 = (x2 - gt).abs(), (x1 - gt).abs()
    expected = (w["l1_hole"] * ((hole * d2).mean() + (hole * d1).mean())
                + w["l1_valid"] * (((1 - hole) * d2).mean() + ((1 - hole) * d1).mean())
                - w["adversarial"] * neg.mean())
    kw = dict(fake_logits=neg) if w["adversarial"] > 0 else {}
    got = IF.deepfill_v2_loss(**weights)(x2, gt, hole=hole, coarse=x1, **kw)
    torch.testing.assert_close(got["total"], expected, rtol=1e-6, atol=0)
    for k, term in (("l1_hole", "hole"), ("l1_valid", "valid"), ("adversarial", "adv")):
        assert (term in got) == (w[k] > 0), (term, sorted(got))


# ----------------------------------------------------------------------------------------------------------
# gradients never reach the extractor weights or the target
# ----------------------------------------------------------------------------------------------------------

def test_pconv_gradients_stay_off_vgg_and_target():
    torch.manual_seed(40)
    loss = IF.pconv_loss(vgg_weights=None)
    gt, pred = images(n=2, size=32, seed=40, dtype=torch.float32)
    hole = make_hole(n=2, size=32, seed=40, dtype=torch.float32)
    pred.requires_grad_()
    out = loss(pred, gt, hole=hole)
    out["total"].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    params = list(loss.parameters())
    assert params and all(p.grad is None and not p.requires_grad for p in params)


def test_feature_terms_do_not_differentiate_the_target():
    """With only feature terms no gradient reaches the target: its features are taken without grad and the
    composite comp = m*target + (1-m)*pred treats it as a constant."""
    gt, pred = images(n=2, size=16, seed=41, dtype=torch.float32)
    hole = make_hole(n=2, size=16, seed=41, dtype=torch.float32)
    # LaMa's ResNetPL: pred vs target only
    target = gt.clone().requires_grad_()
    p = pred.clone().requires_grad_()
    out = IF.lama_loss(hrf_extractor=Normalized(TinyEncoder()), l1_known=0.0, adversarial=0.0,
                       feature_matching=0.0)(p, target, hole=hole)
    assert set(out) == {"hrf", "total"}
    out["total"].backward()
    assert target.grad is None or not target.grad.any()
    assert p.grad is not None and p.grad.any()
    # pconv's perceptual + style: the target is a constant both in phi(target) and in the composite
    # m * target + (1 - m) * pred (as naoto0804's, whose composite takes a separate masked input)
    target = gt.clone().requires_grad_()
    p = pred.clone().requires_grad_()
    ext = TinyVGG()
    out = IF.pconv_loss(extractor=ext, valid=0.0, hole=0.0, tv=0.0)(p, target, hole=hole)
    assert set(out) == {"perc", "style", "total"}
    out["total"].backward()
    assert target.grad is None
    p2 = pred.clone().requires_grad_()
    comp = (1 - hole) * gt + hole * p2
    f_out, f_comp, f_gt = ext(p2), ext(comp), ext(gt)
    expected = 0.05 * sum(F.l1_loss(a, c) + F.l1_loss(b, c) for a, b, c in zip(f_out, f_comp, f_gt)) + 120 * sum(
        F.l1_loss(naoto_gram_matrix(a), naoto_gram_matrix(c)) + F.l1_loss(naoto_gram_matrix(b), naoto_gram_matrix(c))
        for a, b, c in zip(f_out, f_comp, f_gt))
    expected.backward()
    torch.testing.assert_close(p.grad, p2.grad, rtol=1e-4, atol=1e-7)
