"""perceptual_loss, gram_matrix, style_loss (and their modules) against the notebook's code and closed forms."""
import pytest
import torch

import inpaint_fast as IF
from tests import notebook


@pytest.fixture()
def notebook_with(notebook_vgg, monkeypatch):
    monkeypatch.setattr(notebook, "vgg", notebook_vgg)
    return notebook


def images(n=2, size=32, dtype=torch.float32):
    torch.manual_seed(0)
    return torch.rand(n, 3, size, size, dtype=dtype), torch.rand(n, 3, size, size, dtype=dtype)


def test_perceptual_matches_notebook(vgg, notebook_with, backend):
    """Bitwise on the reference; the fused per-layer distance (cpu) sums in another order."""
    x, pred = images()
    m = notebook.get_box_mask(x, top=4, left=6, height=12, width=10)
    pairs = [(IF.perceptual_loss(pred, x, extractor=vgg), notebook_with.perceptual_loss(x, pred)),
             (IF.perceptual_loss(pred, x, extractor=vgg, mask=m), notebook_with.perceptual_loss(x, pred, 1 - m)),
             (IF.perceptual_loss(pred, x, extractor=vgg, hole=1 - m, region="known"),
              notebook_with.perceptual_loss(x, pred, m))]
    for ours, theirs in pairs:
        if backend == "reference":
            assert torch.equal(ours, theirs)
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)


def test_style_and_gram_match_notebook(vgg, notebook_with, backend):
    x, pred = images()
    feat = torch.rand(2, 5, 4, 3)
    pairs = [(IF.style_loss(pred, x, extractor=vgg), notebook_with.style_loss(x, pred)),
             (IF.gram_matrix(feat), notebook.gram_matrix(feat))]
    for ours, theirs in pairs:
        if backend == "reference":
            assert torch.equal(ours, theirs)
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-9)


def test_gram_closed_form_and_masked_gram(backend):
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]], dtype=torch.float64)  # (1, C=2, 1, 2)
    expected = torch.tensor([[[1 + 4, 3 - 2], [3 - 2, 9 + 1]]], dtype=torch.float64) / (2 * 2)
    torch.testing.assert_close(IF.gram_matrix(f), expected)
    known = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # position 1 is the hole
    # Gram over the hole position only, divided by C * area = 2 * 1
    torch.testing.assert_close(IF.gram_matrix(f, mask=known), torch.tensor([[[4.0, -2.0], [-2.0, 1.0]]]).double() / 2)
    torch.testing.assert_close(IF.gram_matrix(f, mask=known, region="all"), expected)
    torch.testing.assert_close(IF.gram_matrix(f, mask=torch.ones(1, 2).double(), region="known"), expected)
    assert (IF.gram_matrix(f, mask=torch.ones(1, 2).double()) == 0).all()  # empty hole: 0, not NaN


def test_perceptual_options_closed_form():
    """An identity 'extractor' reduces perceptual loss to pixel losses: an independent closed form."""
    x, pred = images(size=8)
    mask = torch.rand(2, 1, 8, 8) > 0.5
    two_layers = lambda t: [t, 2 * t]  # noqa: E731
    l1 = IF.masked_l1(pred, x, mask=mask)
    torch.testing.assert_close(IF.perceptual_loss(pred, x, extractor=two_layers, mask=mask), (l1 + 2 * l1) / 2)
    torch.testing.assert_close(IF.perceptual_loss(pred, x, extractor=two_layers, mask=mask, layer_weights=[1.0, 0.5]),
                               l1 + 0.5 * 2 * l1)
    l2 = IF.masked_l2(pred, x, mask=mask, normalize="all")
    torch.testing.assert_close(
        IF.perceptual_loss(pred, x, extractor=lambda t: [t], mask=mask, loss="l2", normalize="all"), l2)
    maps = IF.perceptual_loss(pred, x, extractor=two_layers, mask=mask, reduction="none")
    assert isinstance(maps, list) and len(maps) == 2 and maps[1].shape == x.shape


def test_feature_mask_is_resized_by_nearest():
    x, pred = images(n=1, size=8)
    mask = torch.ones(1, 1, 8, 8)
    mask[..., :4, :] = 0  # top half is the hole
    pool = lambda t: [torch.nn.functional.avg_pool2d(t, 2)]  # noqa: E731  features at 4x4
    fx, fp = pool(x)[0], pool(pred)[0]
    expected = (fp - fx)[..., :2, :].abs().mean()
    torch.testing.assert_close(IF.perceptual_loss(pred, x, extractor=pool, mask=mask), expected)


def test_gradients_reach_pred_only(vgg, backend):
    x, pred = images(n=1)
    x.requires_grad_()
    pred.requires_grad_()
    mask = torch.rand(1, 1, 32, 32) > 0.3
    loss = IF.perceptual_loss(pred, x, extractor=vgg, mask=mask) + IF.style_loss(pred, x, extractor=vgg, mask=mask)
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert x.grad is None
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())


def test_style_gradcheck_with_mask(backend):
    torch.manual_seed(0)
    pred, x = torch.rand(1, 3, 5, 4, dtype=torch.float64, requires_grad=True), torch.rand(1, 3, 5, 4).double()
    mask = torch.rand(1, 1, 5, 4, dtype=torch.float64)
    ext = lambda t: [t, t[:, :2] * 3]  # noqa: E731
    assert torch.autograd.gradcheck(lambda p: IF.style_loss(p, x, extractor=ext, mask=mask), (pred,))
    assert torch.autograd.gradcheck(lambda p: IF.perceptual_loss(p, x, extractor=ext, mask=mask, loss="l2"), (pred,))


def test_modules(vgg, backend):
    x, pred = images(n=1)
    mask = torch.rand(1, 1, 32, 32) > 0.3
    perc = IF.PerceptualLoss(vgg, region="known", loss="l2")
    torch.testing.assert_close(perc(pred, x, mask=mask),
                               IF.perceptual_loss(pred, x, extractor=vgg, mask=mask, region="known", loss="l2"))
    style = IF.StyleLoss(vgg, layer_weights=[1.0, 2.0, 3.0])
    torch.testing.assert_close(style(pred, x), IF.style_loss(pred, x, extractor=vgg, layer_weights=[1.0, 2.0, 3.0]))
    built = IF.PerceptualLoss(weights=None, layers=("relu1_2",))
    assert isinstance(built.extractor, IF.VGGFeatures) and built.extractor.layers == ("relu1_2",)


def test_rgb_masks_are_averaged_over_channels(vgg, backend):
    """An image-level feature loss reads a (N, C, H, W) mask as its channel mean: an RGB mask of equal
    channels (naoto0804's loader) gives the single-channel result exactly, a soft one its mean."""
    x, pred = images(n=2)
    one = (torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(4)) > 0.4).float()
    soft = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    hrf = IF.HRFPerceptualLoss(weights=None, layers=("layer1", "layer2"))
    calls = [lambda **m: IF.perceptual_loss(pred, x, extractor=vgg, **m),
             lambda **m: IF.style_loss(pred, x, extractor=vgg, **m),
             lambda **m: hrf(pred, x, **m),
             lambda **m: IF.SNPatchDiscriminator(3, 4, num_layers=2)(pred, **m)]
    for call in calls[:3]:  # the mask matters (the discriminator needs one)
        assert not torch.allclose(call(mask=one), call())
    for call in calls:
        torch.manual_seed(0)
        expected = call(mask=one)
        torch.manual_seed(0)
        torch.testing.assert_close(call(mask=one.expand(2, 3, 32, 32)), expected, rtol=0, atol=0)
        torch.manual_seed(0)
        expected = call(hole=1 - soft.mean(1, keepdim=True))
        torch.manual_seed(0)
        torch.testing.assert_close(call(hole=1 - soft), expected, rtol=1e-6, atol=1e-7)


def test_low_precision_style_is_finite(backend):
    """float16 Grams are accumulated in float32: no overflow where float16 sums would overflow."""
    torch.manual_seed(0)
    feat = (torch.rand(1, 4, 64, 64) * 30).half()  # sums of products ~ 1e6 > float16 max
    g = IF.gram_matrix(feat)
    assert g.dtype == torch.float16 and torch.isfinite(g).all()
    torch.testing.assert_close(g.float(), IF.gram_matrix(feat.float()), rtol=2e-3, atol=0)


def test_feature_loss_errors(vgg):
    x, pred = images(n=1)
    with pytest.raises(TypeError, match="extractor must be a callable"):
        IF.perceptual_loss(pred, x, extractor="vgg")
    with pytest.raises(ValueError, match="single-channel"):  # a mask of the features' own size
        IF.gram_matrix(pred, mask=torch.ones(1, 3, 32, 32))
    with pytest.raises(ValueError, match="layer_weights must be a sequence of 3"):
        IF.style_loss(pred, x, extractor=vgg, layer_weights=[1.0])
    with pytest.raises(ValueError, match=r"layer_weights\[1\] must be a finite number >= 0"):
        IF.perceptual_loss(pred, x, extractor=vgg, layer_weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="loss must be one of"):
        IF.PerceptualLoss(vgg, loss="huber")


def test_style_reductions_agree_across_backends():
    from tests.conftest import CPU_BACKENDS
    x, pred = images(size=12, dtype=torch.float64)
    mask = torch.rand(2, 1, 12, 12) > 0.4
    ext = lambda t: [t, 3 * t[:, :2]]  # noqa: E731
    for reduction in ("mean", "sum"):
        values = []
        for name in CPU_BACKENDS:
            with IF.use_backend(name):
                values.append(IF.style_loss(pred, x, extractor=ext, mask=mask, reduction=reduction))
        for v in values[1:]:
            torch.testing.assert_close(v, values[0])
    sums = IF.style_loss(pred, x, extractor=ext, mask=mask, reduction="none")
    torch.testing.assert_close(sum(t.sum() for t in sums) / 2, IF.style_loss(pred, x, extractor=ext, mask=mask,
                                                                            reduction="sum"))


@pytest.mark.parametrize("mask_batch", [None, 1, 3])
def test_style_loss_micro_batches_match_one_batch(backend, mask_batch):
    """On CPU 256x256 images go through the extractor one per call; each micro-batch's distance is
    weighted by its share of the batch. Oracle: the reference distance over the whole batch."""
    from inpaint_fast.reference import features as ref
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 2, 256, 256, generator=gen, dtype=torch.float64).requires_grad_()
    target = torch.rand(3, 2, 256, 256, generator=gen, dtype=torch.float64)
    mask = None if mask_batch is None else torch.rand(mask_batch, 1, 256, 256, generator=gen) > 0.5
    ext = lambda t: [t, t[:, :1, ::2, ::2]]  # noqa: E731  (two layers, one at half resolution)
    assert IF.functional.feature.auto_micro_batch(pred, 1) == 1
    weight = None if mask is None else (~mask).double()  # the hole
    expected = ref.style_distance(ext(pred), [f.detach() for f in ext(target)], weight)
    (expected_grad,) = torch.autograd.grad(expected, pred)
    for reduction, factor in (("mean", 1.0), ("sum", None)):
        value = IF.style_loss(pred, target, extractor=ext, mask=mask, reduction=reduction)
        (grad,) = torch.autograd.grad(value, pred)
        if factor is None:  # 'sum': the per-layer sums, averaged over the two layers
            sums = ref.style_distance(ext(pred), ext(target), weight, reduction="sum")
            torch.testing.assert_close(value, sums, rtol=1e-10, atol=0)
            continue
        torch.testing.assert_close(value, expected, rtol=1e-10, atol=0)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-8, atol=1e-18)


def test_style_distance_of_given_features(backend):
    """style_distance(features) is style_loss with an extractor that returns them, mask at image size."""
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64)
    pred = torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64).requires_grad_()
    ext = lambda t: [t, (2 * t[:, :2, ::2, ::2]).contiguous()]  # noqa: E731
    hole = torch.rand(2, 16, 16, generator=gen) > 0.6
    for kwargs in ({}, {"hole": hole}, {"hole": hole, "region": "known", "mask_resize": "area"},
                   {"layer_weights": [0.25, 2.0], "reduction": "sum"}):
        expected = IF.style_loss(pred, x, extractor=ext, **kwargs)
        value = IF.style_distance(ext(pred), ext(x), **kwargs)
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)
        torch.testing.assert_close(torch.autograd.grad(value, pred)[0], torch.autograd.grad(expected, pred)[0],
                                   rtol=1e-10, atol=1e-20)
    one = IF.style_distance(pred, x)  # one feature map: the notebook's style loss of one layer
    expected = (notebook.gram_matrix(pred) - notebook.gram_matrix(x)).abs().mean()
    torch.testing.assert_close(one, expected, rtol=1e-10, atol=0)
    target_feats = [x.clone().requires_grad_()]
    IF.style_distance([pred], target_feats).backward()
    assert target_feats[0].grad is None  # the target's features are a constant


def test_style_distance_errors():
    f = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="as many layers"):
        IF.style_distance([f, f], [f])
    with pytest.raises(TypeError, match="pred_feats must be a feature map"):
        IF.style_distance("f", [f])
    with pytest.raises(ValueError, match=r"pred_feats\[0\] and target_feats\[0\] must have the same shape"):
        IF.style_distance([f], [f[:1]])
    with pytest.raises(ValueError, match=r"batch of pred_feats\[0\]"):
        IF.style_distance([f, f[:1]], [f, f[:1]])
    with pytest.raises(ValueError, match="mask must have shape"):
        IF.style_distance(f, f, mask=torch.ones(2, 3, 8, 8))
    with pytest.raises(ValueError, match="reduction must be one of"):
        IF.style_distance(f, f, reduction="avg")


def test_per_layer_losses_mse_and_area_resize(backend):
    """Per-layer 'l1'/'mse', and the mask resized by area (the fraction of each cell in the hole), in closed form."""
    x, pred = images(n=2, size=8, dtype=torch.float64)
    mask = torch.rand(2, 1, 8, 8, dtype=torch.float64) > 0.5
    pool = torch.nn.functional.avg_pool2d
    ext = lambda t: [t, pool(t, 2)]  # noqa: E731
    hole = 1 - mask.double()
    hole2 = pool(hole, 2)  # area resize of the hole to 4x4
    e1 = ((pred - x).abs() * hole).sum() / (3 * hole.sum())
    e2 = ((pool(pred, 2) - pool(x, 2)) ** 2 * hole2).sum() / (3 * hole2.sum())
    got = IF.perceptual_loss(pred, x, extractor=ext, mask=mask, loss=["l1", "mse"], mask_resize="area",
                             layer_weights=[1.0, 2.0])
    torch.testing.assert_close(got, e1 + 2 * e2)
    assert torch.equal(IF.perceptual_loss(pred, x, extractor=ext, loss="mse"),
                       IF.perceptual_loss(pred, x, extractor=ext, loss="l2"))
    with pytest.raises(ValueError, match="loss has 1 entries but the extractor returns 2 layers"):
        IF.perceptual_loss(pred, x, extractor=ext, loss=["l1"])
    with pytest.raises(ValueError, match="mask_resize must be one of"):
        IF.perceptual_loss(pred, x, extractor=ext, mask=mask, mask_resize="bilinear")


@pytest.mark.parametrize("feature_norm", ["unit", "instance"])
def test_feature_norm_closed_form(feature_norm, backend):
    x, pred = images(n=2, size=6, dtype=torch.float64)
    if feature_norm == "unit":  # LPIPS: unit length over channels at each position
        norm = lambda f: f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)  # noqa: E731
    else:  # InstanceNorm2d without affine
        norm = torch.nn.InstanceNorm2d(3, eps=1e-5).double()
    expected = (norm(pred) - norm(x)).abs().mean()
    torch.testing.assert_close(IF.perceptual_loss(pred, x, extractor=lambda t: [t], feature_norm=feature_norm),
                               expected)
    with pytest.raises(ValueError, match="feature_norm must be one of"):
        IF.PerceptualLoss(lambda t: [t], feature_norm="batch")


def test_vgg19_and_avg_pooling_modules():
    x, pred = images(n=1, size=16)
    torch.manual_seed(0)
    vgg19 = IF.VGGFeatures("vgg19", ("relu1_2", "pool2", "relu3_4"), weights=None, pooling="avg")
    perc = IF.PerceptualLoss(vgg19, loss="l2")
    feats_p, feats_x = vgg19(pred), vgg19(x)
    expected = sum(((a - b) ** 2).mean() for a, b in zip(feats_p, feats_x)) / 3
    torch.testing.assert_close(perc(pred, x), expected, rtol=1e-5, atol=0)
