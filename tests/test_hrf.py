"""HRF perceptual loss (LaMa's ResNetPL) and its dilated ResNet-50 extractor; offline (weights=None or a
state dict the test saves)."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.models import ResNet50_Weights, VGG16_Weights, resnet50

from inpaint_fast import HRFPerceptualLoss, ResNetFeatures, hrf_perceptual_loss
from inpaint_fast.nets.resnet import pretrained_available

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def state_dict():
    """A full torchvision resnet50 state dict with non-trivial BatchNorm statistics (fc included)."""
    torch.manual_seed(0)
    net = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.0)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.state_dict()


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
