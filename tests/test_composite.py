"""composite_loss / CompositeLoss against the notebook's composite_loss."""
import pytest
import torch

import inpaint_fast as IF
from tests import notebook


def test_matches_notebook_composite(vgg, notebook_vgg, monkeypatch, backend):
    monkeypatch.setattr(notebook, "vgg", notebook_vgg)
    torch.manual_seed(0)
    x, pred = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    m = notebook.get_box_mask(x, top=8, left=10, height=20, width=16)
    ours = IF.composite_loss(pred, x, mask=m, extractor=vgg)
    theirs = notebook.composite_loss(x, pred, m, notebook.NOTEBOOK_WEIGHTS)
    assert list(ours) == list(theirs)
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-6 if backend == "cpu" else 0, atol=0)
    module = IF.CompositeLoss(extractor=vgg)
    for k, v in module(pred, x, hole=1 - m).items():
        torch.testing.assert_close(v, ours[k])


def test_only_weighted_terms_are_computed():
    torch.manual_seed(0)
    x, pred = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16, requires_grad=True)
    mask = torch.rand(1, 1, 16, 16) > 0.5
    out = IF.composite_loss(pred, x, mask=mask, weights={"rec": 2.0, "tv": 0.5})  # no extractor needed
    assert set(out) == {"rec", "tv", "total"}
    torch.testing.assert_close(out["total"], 2 * IF.reconstruction_loss(pred, x, mask=mask)
                               + 0.5 * IF.total_variation(pred, mask=mask))
    out["total"].backward()
    assert pred.grad is not None
    assert IF.CompositeLoss(weights={"freq": 1.0}).extractor is None


def test_errors():
    x = torch.rand(1, 3, 8, 8)
    mask = torch.ones(1, 1, 8, 8)
    with pytest.raises(ValueError, match="need extractor="):
        IF.composite_loss(x, x, mask=mask)
    with pytest.raises(ValueError, match=r"unknown terms \['adv'\]"):
        IF.composite_loss(x, x, mask=mask, weights={"adv": 1.0})
    with pytest.raises(ValueError, match=r"weights\['tv'\] must be a finite number >= 0"):
        IF.CompositeLoss(weights={"tv": -0.1})
    with pytest.raises(ValueError, match="a mask is required"):
        IF.composite_loss(x, x, weights={"rec": 1.0})


# ------------------------------------------------------------------ the shared feature pass (issue 6)

class Counting:
    """An extractor that records the batch size of every call."""

    def __init__(self, extractor):
        self.extractor, self.batches = extractor, []

    def __call__(self, x):
        self.batches.append(x.shape[0])
        return self.extractor(x)


@pytest.fixture(scope="module")
def vgg64():
    """VGG16 pool1..pool3 with fixed random weights, in float64 (so batched and separate passes agree to 1e-12)."""
    torch.manual_seed(0)
    return IF.VGGFeatures(layers=("pool1", "pool2", "pool3"), weights=None).double()


def inputs(n=2, size=32, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g, dtype=dtype)
    pred = torch.rand(n, 3, size, size, generator=g, dtype=dtype, requires_grad=True)
    mask = torch.rand(n, 1, size, size, generator=g) > 0.4
    return x, pred, mask


def test_feature_cache_extracts_each_image_once(vgg64):
    x, pred, mask = inputs()
    comp = mask * x + ~mask * pred
    counting = Counting(vgg64)
    cache = IF.FeatureCache(counting, x, {"output": pred, "composite": comp})
    out, composite, target = cache["output"], cache["composite"], cache.target
    assert cache.batched[0].shape[0] == 4 and cache["output"][2] is not None and cache.target is target
    assert sorted(counting.batches) == [2, 4] and cache.passes == 2  # target once, both images in one batch
    assert not any(f.requires_grad for f in target) and all(f.requires_grad for f in out)
    for got, expected in ((out, vgg64(pred)), (composite, vgg64(comp)), (target, vgg64(x))):
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    g = cache.target_gram(1)
    assert cache.target_gram(1) is g
    torch.testing.assert_close(g, IF.reference.features.gram_matrix(target[1]))
    with pytest.raises(KeyError, match="no image named 'coarse'"):
        cache["coarse"]
    with pytest.raises(ValueError, match="pass a key"):
        cache.target_gram(0, torch.ones(1, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="must have the target's shape"):
        IF.FeatureCache(vgg64, x, {"output": pred[:1]})


def test_shared_pass_equals_separate_passes(vgg64, backend):
    """pconv_loss's one batched pass gives the terms and gradient of separate public calls per image."""
    x, pred, mask = inputs()
    counting = Counting(vgg64)
    loss = IF.pconv_loss(extractor=counting)
    terms = loss(pred, x, mask=mask)
    assert sorted(counting.batches) == [2, 4]
    grad, = torch.autograd.grad(terms["total"], pred)

    comp = mask * x + ~mask * pred
    ones = [1.0, 1.0, 1.0]
    separate = {
        "valid": IF.masked_l1(pred, x, mask=mask, region="known", normalize="all"),
        "hole": IF.masked_l1(pred, x, mask=mask, region="hole", normalize="all"),
        "perc": sum(IF.perceptual_loss(i, x, extractor=vgg64, layer_weights=ones) for i in (pred, comp)),
        "style": sum(IF.style_loss(i, x, extractor=vgg64, layer_weights=ones) for i in (pred, comp)),
        "tv": IF.total_variation(comp, mask=mask, region="hole_dilated", normalize="all"),
    }
    separate["total"] = (separate["valid"] + 6 * separate["hole"] + 0.05 * separate["perc"]
                         + 120 * separate["style"] + 0.1 * separate["tv"])
    assert list(terms) == ["valid", "hole", "perc", "style", "tv", "total"]
    for k, v in separate.items():
        torch.testing.assert_close(terms[k], v, rtol=1e-10, atol=0, msg=k)
    torch.testing.assert_close(grad, torch.autograd.grad(separate["total"], pred)[0], rtol=1e-9, atol=1e-15)


def test_notebook_composite_takes_two_passes(vgg, notebook_vgg, monkeypatch):
    """The notebook's composite runs VGG four times (perceptual and style, each on both images); ours twice."""
    monkeypatch.setattr(notebook, "vgg", notebook_vgg)
    x, pred = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    m = notebook.get_box_mask(x, top=8, left=4, height=12, width=20)
    counting = Counting(vgg)
    ours = IF.CompositeLoss(extractor=counting)(pred, x, mask=m)
    assert counting.batches == [1, 1]
    theirs = notebook.composite_loss(x, pred, m, notebook.NOTEBOOK_WEIGHTS)
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-5, atol=0)


def test_gradients_never_reach_extractors_or_target(vgg64, backend):
    x, pred, mask = inputs(size=32)
    x.requires_grad_()
    torch.manual_seed(0)
    resnet = IF.ResNetFeatures(weights=None, layers=("layer1", "layer2")).double()
    loss = IF.CompositeLoss({"perc": 1.0, "style": 1.0, "hrf": 1.0}, vgg64,
                            hrf=IF.HRFPerceptualLoss(extractor=resnet), feature_images=("output", "composite"))
    loss(pred, x, mask=mask)["total"].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert x.grad is None  # the target's features are taken without grad; the composite treats it as a constant
    for p in list(vgg64.parameters()) + list(resnet.parameters()):
        assert p.grad is None and not p.requires_grad


def test_masked_style_and_area_resize_in_composite(backend):
    """A masked StyleLoss in a composite: Grams over the hole (resized by area) of output and composite."""
    x, pred, mask = inputs(n=2, size=8)
    ext = lambda t: [t, torch.nn.functional.avg_pool2d(t, 2)]  # noqa: E731
    style = IF.StyleLoss(ext, region="hole", mask_resize="area", layer_weights=[1.0, 0.5])
    got = IF.CompositeLoss({"style": 1.0}, style=style, feature_images=("output", "composite"))(pred, x, mask=mask)
    hole = 1 - mask.double()
    comp = mask * x + ~mask * pred

    def gram(f, w):  # F diag(w) F^T / (C sum(w)), written out
        n, c = f.shape[:2]
        f, w = f.flatten(2), w.flatten(2)
        return torch.einsum("ncp,ndp->ncd", f * w, f) / (c * w.sum(-1, keepdim=True))

    expected = 0
    for image in (pred, comp):
        for lw, (fi, fx) in zip([1.0, 0.5], zip(ext(image), ext(x))):
            w = torch.nn.functional.adaptive_avg_pool2d(hole, fi.shape[-2:])
            expected = expected + lw * (gram(fi, w) - gram(fx, w)).abs().mean()
    torch.testing.assert_close(got["style"], expected)
    torch.testing.assert_close(torch.autograd.grad(got["total"], pred)[0], torch.autograd.grad(expected, pred)[0])


@pytest.mark.parametrize("make_mask", [
    lambda m: {"mask": m}, lambda m: {"hole": ~m}, lambda m: {"mask": m.to(torch.uint8)},
    lambda m: {"mask": m.double()}, lambda m: {"mask": m[:, 0]}, lambda m: {"hole": (~m[:1, 0]).float()},
], ids=["bool", "hole", "uint8", "float", "NHW", "HW-hole"])
def test_masks_of_every_kind(vgg64, make_mask):
    x, pred, mask = inputs(size=32)
    mask = mask[:1].expand(2, 1, 32, 32)  # one mask for the batch, so that the (H, W) form is the same mask
    loss = IF.CompositeLoss({"rec": 1.0, "perc": 1.0, "style": 1.0, "tv": 1.0}, vgg64,
                            feature_images=("output", "composite"), tv_image="composite")
    expected = loss(pred, x, mask=mask)
    got = loss(pred, x, **make_mask(mask))
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-12, atol=0)


@pytest.mark.parametrize("fill", [True, False], ids=["empty_hole", "all_hole"])
def test_empty_and_full_holes_are_finite(vgg64, fill):
    x, pred, _ = inputs(size=32)
    mask = torch.full((2, 1, 32, 32), fill)
    for loss in (IF.pconv_loss(extractor=vgg64, normalize="mask"), IF.CompositeLoss(extractor=vgg64)):
        terms = loss(pred, x, mask=mask)
        assert all(torch.isfinite(v) for v in terms.values())
        grad, = torch.autograd.grad(terms["total"], pred)
        assert torch.isfinite(grad).all()


def test_compile_autocast_and_channels_last_smoke():
    torch.manual_seed(0)
    vgg = IF.VGGFeatures(layers=("pool1", "pool2", "pool3"), weights=None)
    x, pred, mask = inputs(dtype=torch.float32)
    loss = IF.pconv_loss(extractor=vgg)
    eager = loss(pred, x, mask=mask)
    compiled = torch.compile(loss, fullgraph=True)(pred, x, mask=mask)
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-5, atol=1e-7)
    fast = IF.pconv_loss(extractor=IF.VGGFeatures(layers=("pool1", "pool2", "pool3"), weights=None,
                                                  channels_last=True))
    fast.perceptual.extractor.load_state_dict(vgg.state_dict())
    cl = fast(pred.contiguous(memory_format=torch.channels_last), x, mask=mask)
    for k in eager:
        torch.testing.assert_close(cl[k], eager[k], rtol=1e-5, atol=1e-7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss(pred, x, mask=mask)
    grad, = torch.autograd.grad(low["total"], pred)
    assert torch.isfinite(grad).all() and grad.dtype == torch.float32
    for k in eager:
        torch.testing.assert_close(low[k].float(), eager[k], rtol=5e-2, atol=1e-6)


def test_generator_and_discriminator_gan_terms():
    torch.manual_seed(0)
    x, pred, mask = inputs(n=2, size=16)
    fake_logits = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    real_images = x.clone().requires_grad_()
    real_logits = (real_images[:, :1, ::4, ::4] * 3).sin()
    feats = [torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.randn(2, 8, 4, 4, dtype=torch.float64)]
    real_feats = [f + 0.5 for f in feats]
    loss = IF.CompositeLoss({"adv": 2.0, "fm": 3.0}, adversarial=IF.AdversarialLoss("lsgan", region="hole"),
                            feature_matching=IF.FeatureMatchingLoss("l2"), r1=IF.R1Penalty(gamma=4.0),
                            mask_as_fake_target=True)
    g = loss(pred, x, mask=mask, fake_logits=fake_logits, fake_features=feats, real_features=real_feats)
    torch.testing.assert_close(g["adv"], IF.functional.adversarial.generator_loss(fake_logits, loss="lsgan", mask=mask.double()))
    torch.testing.assert_close(g["fm"], torch.stack([((f - r) ** 2).mean() for f, r in zip(feats, real_feats)]).mean())
    torch.testing.assert_close(g["total"], 2 * g["adv"] + 3 * g["fm"])
    d = loss.discriminator_loss(real_logits, fake_logits.detach(), real_images=real_images, hole=~mask)
    expected = IF.functional.adversarial.discriminator_loss(real_logits, fake_logits.detach(), loss="lsgan", hole=~mask)
    r1 = IF.functional.adversarial.r1_penalty(real_logits, real_images, gamma=4.0)
    assert list(d) == ["real", "fake", "r1", "total"]
    torch.testing.assert_close(d["fake"], expected.fake)
    torch.testing.assert_close(d["r1"], r1)
    torch.testing.assert_close(d["total"], expected.total + r1)
    with pytest.raises(ValueError, match="mask_as_fake_target=True: pass mask="):
        loss.discriminator_loss(real_logits, fake_logits, real_images=real_images)
    with pytest.raises(ValueError, match="needs real_images="):
        loss.discriminator_loss(real_logits, fake_logits, mask=mask)
    with pytest.raises(ValueError, match="needs fake_logits="):
        loss(pred, x, mask=mask, fake_features=feats, real_features=real_feats)
    with pytest.raises(ValueError, match="needs fake_features= and real_features="):
        loss(pred, x, mask=mask, fake_logits=fake_logits)


def test_composite_options_errors(vgg):
    with pytest.raises(ValueError, match=r"style= is given but weights has none of its terms \['style'\]"):
        IF.CompositeLoss({"rec": 1.0}, style=IF.StyleLoss(vgg))
    with pytest.raises(TypeError, match="perceptual must be an inpaint_fast.PerceptualLoss"):
        IF.CompositeLoss({"perc": 1.0}, perceptual=IF.StyleLoss(vgg))
    with pytest.raises(ValueError, match="feature_images must be one of"):
        IF.CompositeLoss({"perc": 1.0}, vgg, feature_images=("output", "input"))
    with pytest.raises(ValueError, match="feature_images must be a non-empty sequence"):
        IF.CompositeLoss({"perc": 1.0}, vgg, feature_images="output")
    with pytest.raises(ValueError, match="tv_image must be one of"):
        IF.CompositeLoss({"tv": 1.0}, tv_image="target")
    with pytest.raises(ValueError, match="reduction='none'"):
        IF.CompositeLoss({"perc": 1.0}, perceptual=IF.PerceptualLoss(vgg, reduction="none"))
    with pytest.raises(ValueError, match="needs an adversarial term"):
        IF.CompositeLoss({"rec": 1.0}).discriminator_loss(torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="every weight is 0"):
        IF.deepfill_v2_loss(l1_hole=0, l1_valid=0, adversarial=0)
    with pytest.raises(ValueError, match="tv_region must be one of"):
        IF.pconv_loss(extractor=vgg, tv_region="dilated")
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="coarse and target must have the same shape"):
        IF.deepfill_v2_loss(adversarial=0)(x, x, mask=torch.ones(8, 8), coarse=torch.rand(1, 3, 4, 4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_pconv_step(dtype):
    """A float16/bfloat16 VGG and images end to end: terms close to float32's, finite gradient."""
    torch.manual_seed(0)
    vgg = IF.VGGFeatures(layers=("pool1", "pool2", "pool3"), weights=None)
    x, pred, mask = inputs(dtype=torch.float32)
    expected = IF.pconv_loss(extractor=vgg)(pred, x, mask=mask)
    low = IF.pconv_loss(extractor=IF.VGGFeatures(layers=("pool1", "pool2", "pool3"), weights=None).to(dtype))
    low.perceptual.extractor.load_state_dict(vgg.state_dict())
    p = pred.detach().to(dtype).requires_grad_()
    got = low(p, x.to(dtype), mask=mask)
    grad, = torch.autograd.grad(got["total"], p)
    assert grad.dtype == dtype and torch.isfinite(grad).all()
    for k in expected:
        torch.testing.assert_close(got[k].float(), expected[k].float(), rtol=2e-2, atol=1e-6, msg=k)
