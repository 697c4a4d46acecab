"""HRF perceptual loss (LaMa's ResNetPL) and its dilated ResNet-50 extractor; offline (weights=None or a
state dict the test saves). The ADE20k deep-stem checkpoint (LaMa's own encoder) is checked against
tests/lama_losses.py, the transcription of LaMa's ResnetDilated / ResNetPL."""
import re

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import ResNet50_Weights, VGG16_Weights, resnet50

from inpaint_fast import HRFPerceptualLoss, ResNetFeatures, hrf_perceptual_loss
from inpaint_fast.nets.resnet import pretrained_available
from tests.lama_losses import lama_encoder_state_dict_keys, lama_resnet50dilated, lama_resnet_pl

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def state_dict():
    """A full torchvision resnet50 state dict with non-trivial BatchNorm statistics (fc included)."""
    torch.manual_seed(0)
    net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    randomize_batch_norms(net)
    return net.state_dict()


def randomize_batch_norms(net: torch.nn.Module) -> None:
    """Running statistics and affine parameters away from their defaults, so a wrong BN shows."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.0)
            m.bias.data.uniform_(-0.1, 0.1)


@pytest.fixture(scope="module")
def extractor(state_dict, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "resnet50.pth"
    torch.save(state_dict, path)
    return ResNetFeatures(weights=str(path)).double()


def images(seed=1, n=1, size=64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, size, size, generator=g, dtype=torch.float64),
            torch.rand(n, 3, size, size, generator=g, dtype=torch.float64))


def resnet_stages(net, x):
    """torchvision's ResNet run by hand: the stem, then the outputs of layer1..layer4."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    out = []
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = stage(x)
        out.append(x)
    return out


def plain_resnet_pl(state_dict, pred, target, weight):
    """LaMa's ResNetPL written out: normalise, run layer1..layer4, sum of per-layer F.mse_loss, times weight."""
    net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True]).double().eval()
    net.load_state_dict(state_dict)

    def feats(x):
        return resnet_stages(net, (x - MEAN.double()) / STD.double())

    with torch.no_grad():
        terms = [F.mse_loss(a, b) for a, b in zip(feats(pred), feats(target))]
    return torch.stack(terms).sum() * weight


def test_shapes_and_strides_of_dilated_stages():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    dilated = ResNetFeatures(weights=None)
    shapes = [tuple(f.shape) for f in dilated(x)]
    assert shapes == [(2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 8, 8), (2, 2048, 8, 8)]
    assert dilated.body.layer3[1].conv2.dilation == (2, 2) and dilated.body.layer4[1].conv2.dilation == (4, 4)
    plain = ResNetFeatures(weights=None, layers=("layer4", "layer3"), dilated=False)
    assert [tuple(f.shape) for f in plain(x)] == [(2, 2048, 2, 2), (2, 1024, 4, 4)]
    layer4_only = ResNetFeatures(weights=None, layers=("layer3", "layer4"), dilated=(False, False, True))
    assert [tuple(f.shape) for f in layer4_only(x)] == [(2, 1024, 4, 4), (2, 2048, 4, 4)]
    assert layer4_only.body.layer4[1].conv2.dilation == (2, 2)
    with pytest.raises(TypeError, match="dilated must be a bool or three bools"):
        ResNetFeatures(weights=None, dilated=(True, True))
    # truncated after the deepest requested stage
    assert not hasattr(ResNetFeatures(weights=None, layers=("layer2",)).body, "layer3")


def test_frozen_and_eval(extractor):
    loss = HRFPerceptualLoss(extractor=extractor)
    loss.train()
    assert not extractor.training and all(not m.training for m in extractor.modules())
    assert all(not p.requires_grad for p in extractor.parameters())
    pred, target = images()
    pred.requires_grad_(True)
    target.requires_grad_(True)
    loss(pred, target).backward()
    assert all(p.grad is None for p in extractor.parameters())
    assert target.grad is None  # target features are taken without grad
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_running_stats_unchanged_after_train_call(state_dict, tmp_path):
    path = tmp_path / "w.pth"
    torch.save(state_dict, path)
    f = ResNetFeatures(weights=path, layers=("layer1",))
    f.train(True)
    before = f.body.bn1.running_mean.clone()
    f(torch.rand(2, 3, 32, 32))
    assert torch.equal(f.body.bn1.running_mean, before)
    assert torch.equal(before, state_dict["bn1.running_mean"])


@pytest.mark.parametrize("weight", [1.0, 30.0])
def test_equals_plain_pytorch(extractor, state_dict, weight):
    pred, target = images(n=2)
    got = HRFPerceptualLoss(weight=weight, extractor=extractor)(pred, target)
    want = plain_resnet_pl(state_dict, pred, target, weight)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    assert got > 0


def test_functional_layer_weights_and_none(extractor, state_dict):
    pred, target = images(seed=3)
    per_layer = hrf_perceptual_loss(pred, target, extractor=extractor, reduction="none")
    assert len(per_layer) == 4 and per_layer[2].shape == (1, 1024, 8, 8)
    lw = [0.5, 1.0, 2.0, 0.0]
    got = hrf_perceptual_loss(pred, target, extractor=extractor, layer_weights=lw, weight=3.0)
    want = 3.0 * sum(w * m.mean() for w, m in zip(lw, per_layer))
    torch.testing.assert_close(got, want)


def test_mask_region(extractor):
    pred, target = images(seed=4)
    hole = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    hole[..., 16:48, 16:48] = 1
    maps = hrf_perceptual_loss(pred, target, extractor=extractor, reduction="none")
    got = HRFPerceptualLoss(extractor=extractor)(pred, target, hole=hole)
    want = 0
    for m in maps:
        w = F.interpolate(hole, size=m.shape[-2:], mode="nearest")
        want = want + (m * w).sum() / w.expand_as(m).sum()
    torch.testing.assert_close(got, want)
    # mask= (1 = known) is the complement of hole=
    torch.testing.assert_close(HRFPerceptualLoss(extractor=extractor)(pred, target, mask=1 - hole), got)


def test_identical_images_give_zero(extractor):
    x, _ = images(seed=5)
    x.requires_grad_(True)
    loss = HRFPerceptualLoss(weight=30.0, extractor=extractor)(x, x.detach().clone())
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(x.grad) == 0


def test_grad_matches_plain_pytorch(extractor, state_dict):
    pred, target = images(seed=6)
    a = pred.clone().requires_grad_(True)
    HRFPerceptualLoss(weight=2.0, extractor=extractor)(a, target).backward()
    net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True]).double().eval()
    net.load_state_dict(state_dict)
    b = pred.clone().requires_grad_(True)
    body = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    xb, xt = body((b - MEAN.double()) / STD.double()), body((target - MEAN.double()) / STD.double())
    total = 0
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        xb, xt = stage(xb), stage(xt)
        total = total + F.mse_loss(xb, xt.detach())
    (2.0 * total).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-14)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="are for another architecture; pass a ResNet50_Weights member"):
        ResNetFeatures(weights=VGG16_Weights.DEFAULT)
    with pytest.raises(FileNotFoundError, match="no state-dict file"):
        ResNetFeatures(weights=str(tmp_path / "missing.pth"))
    with pytest.raises(TypeError, match="weights must be"):
        ResNetFeatures(weights=3)
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="do not fit"):
        ResNetFeatures(weights=bad)
    with pytest.raises(ValueError, match="unknown stage"):
        ResNetFeatures(weights=None, layers=("layer5",))
    with pytest.raises(ValueError, match="twice"):
        ResNetFeatures(weights=None, layers=("layer1", "layer1"))
    with pytest.raises(ValueError, match="weight must be"):
        HRFPerceptualLoss(weight=-1.0, weights=None, layers=("layer1",))
    assert isinstance(pretrained_available(), bool)  # no network access
    assert pretrained_available(ResNet50_Weights.IMAGENET1K_V1) in (True, False)


def test_bad_inputs():
    loss = HRFPerceptualLoss(weights=None, layers=("layer1",))
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        loss(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="same shape"):
        loss(x, torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        loss(x[0], x[0])
    with pytest.raises(ValueError, match="layer_weights"):
        hrf_perceptual_loss(x, x, extractor=loss.extractor, layer_weights=[1.0, 2.0])


# --- LaMa's own encoder: CSAILVision's ADE20k resnet50dilated (deep 3-conv stem) -------------------------

@pytest.fixture(scope="module")
def ade20k(tmp_path_factory):
    """(LaMa's encoder in float64 eval mode, the path of its saved state dict): a random ADE20k
    resnet50dilated with non-trivial BatchNorm statistics and affine parameters. The state dict is saved in
    float32 (as the real checkpoint), so ResNetFeatures(...).double() and the float64 oracle hold the same
    numbers."""
    torch.manual_seed(0)
    net = lama_resnet50dilated()
    randomize_batch_norms(net)
    path = tmp_path_factory.mktemp("ade20k") / "encoder_epoch_20.pth"
    torch.save(net.state_dict(), path)
    return net.double().eval(), path


def lama_features(net, x):
    """LaMa's ResNetPL feature maps of x in [0, 1]: ImageNet-normalised, ``impl(x, return_feature_maps=True)``."""
    with torch.no_grad():
        return net((x - MEAN.double()) / STD.double(), return_feature_maps=True)


def test_ade20k_checkpoint_builds_lamas_network(ade20k):
    net, path = ade20k
    f = ResNetFeatures(weights=str(path))
    assert f.deep_stem and "ADE20k" in f.weights_source and str(path) in f.weights_source
    assert list(f.body.state_dict()) == lama_encoder_state_dict_keys()
    # torchvision's replace_stride_with_dilation=[False, True, True] == LaMa's _nostride_dilate, conv by conv
    ours = {n: m for n, m in f.body.named_modules() if isinstance(m, torch.nn.Conv2d)}
    theirs = {n: m for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert list(ours) == list(theirs)
    for name, conv in theirs.items():
        for attr in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
            assert getattr(ours[name], attr) == getattr(conv, attr), (name, attr)
        assert ours[name].bias is None and conv.bias is None
    assert not f.training and all(not p.requires_grad for p in f.parameters())
    f.train()
    assert not any(m.training for m in f.modules())


def test_ade20k_features_equal_lamas_encoder(ade20k):
    net, path = ade20k
    x, _ = images(seed=7, n=2)
    want = lama_features(net, x)
    f = ResNetFeatures(weights=str(path), normalize_input=True).double()
    got = f(x)
    assert [tuple(g.shape) for g in got] == [(2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 8, 8), (2, 2048, 8, 8)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12 * w.abs().max().item())
    sub = ResNetFeatures(weights=path, layers=("layer4", "layer2"), normalize_input=True).double()
    for g, w in zip(sub(x), (want[3], want[1])):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12 * w.abs().max().item())
    # normalize_input=False: the caller normalises
    raw = ResNetFeatures(weights=path, layers=("layer2",), normalize_input=False).double()
    torch.testing.assert_close(raw((x - MEAN.double()) / STD.double())[0], want[1], rtol=1e-12, atol=0)
    shallow = ResNetFeatures(weights=path, layers=("layer2",))
    assert not hasattr(shallow.body, "layer3") and hasattr(shallow.body, "conv3")


def test_ade20k_loss_and_grad_equal_lama_resnet_pl(ade20k):
    net, path = ade20k
    weight = 30.0  # big-lama's
    pred, target = images(seed=8, n=2)
    a = pred.clone().requires_grad_(True)
    loss = HRFPerceptualLoss(weights=str(path), weight=weight)
    loss.extractor.double()
    got = loss(a, target)
    got.backward()
    b = pred.clone().requires_grad_(True)
    want = lama_resnet_pl(b, target, impl=net, weight=weight)
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12 * b.grad.abs().max().item())
    functional = hrf_perceptual_loss(pred, target, extractor=loss.extractor, weight=weight)
    torch.testing.assert_close(functional, want.detach(), rtol=1e-12, atol=0)
    assert got > 0


def test_ade20k_checkpoint_variants(ade20k, tmp_path):
    """A DataParallel 'module.' prefix, no num_batches_tracked buffers (an older PyTorch), extra fc.* keys."""
    net, path = ade20k
    state = torch.load(path, weights_only=True)
    variant = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    variant["module.fc.weight"], variant["module.fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    torch.save(variant, tmp_path / "v.pth")
    f = ResNetFeatures(weights=tmp_path / "v.pth", layers=("layer1",)).double()
    assert f.deep_stem
    x, _ = images(seed=9)
    torch.testing.assert_close(f(x)[0], lama_features(net, x)[0], rtol=1e-12, atol=0)


def test_ade20k_bad_checkpoint(ade20k, tmp_path):
    _, path = ade20k
    state = torch.load(path, weights_only=True)
    missing = dict(state)
    del missing["layer2.1.conv2.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    pattern = r"(?s)" + re.escape(str(tmp_path / "missing.pth")) + r".*ADE20k deep-stem.*layer2\.1\.conv2\.weight"
    with pytest.raises(ValueError, match=pattern):
        ResNetFeatures(weights=tmp_path / "missing.pth")
    ResNetFeatures(weights=tmp_path / "missing.pth", layers=("layer1",))  # a stage not kept is not needed
    wrong = dict(state)
    wrong["conv3.weight"] = torch.zeros(128, 64, 1, 1)
    torch.save(wrong, tmp_path / "wrong.pth")
    pattern = r"(?s)" + re.escape(str(tmp_path / "wrong.pth")) + r".*size mismatch for conv3\.weight"
    with pytest.raises(ValueError, match=pattern):
        ResNetFeatures(weights=tmp_path / "wrong.pth", layers=("layer1",))
    with pytest.raises(ValueError, match="do not fit the ADE20k deep-stem"):
        HRFPerceptualLoss(weights=str(tmp_path / "wrong.pth"))
    # a torchvision checkpoint is still loaded into torchvision's network
    tv = resnet50(weights=None).state_dict()
    torch.save(tv, tmp_path / "tv.pth")
    assert not ResNetFeatures(weights=tmp_path / "tv.pth", layers=("layer1",)).deep_stem
