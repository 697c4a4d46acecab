"""Tests of inpaint_fast.features (VGG feature extractors). Offline and fast: random weights, 32x32 images.

The oracle is torchvision's own ``vgg16().features`` run by hand as the notebook does; VGG models are
built on the meta device (no 500 MB classifier) and filled from one state dict shared by every test.
"""
import os
import pathlib
import re
import urllib.error

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models

from inpaint_fast.nets.vgg import VGGFeatures, layer_names, pretrained_available

TV = {"vgg16": models.vgg16, "vgg19": models.vgg19}
NOTEBOOK_MEAN = (0.485, 0.456, 0.406)
NOTEBOOK_STD = (0.229, 0.224, 0.225)


def tv_features(arch="vgg16"):
    """torchvision's untouched ``.features`` (in-place ReLUs), parameters left uninitialised."""
    with torch.device("meta"):
        feats = TV[arch](weights=None).features
    return feats.to_empty(device="cpu")


def notebook_extract(vgg, x, layers=(3, 8, 15), normalize=True):
    """The notebook's extract_vgg_features, verbatim but for the network argument."""
    if normalize:
        mean = torch.tensor(NOTEBOOK_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(NOTEBOOK_STD, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    feats = []
    for i, layer in enumerate(vgg):
        x = layer(x)
        if i in layers:
            feats.append(x)
    return feats


@pytest.fixture(scope="module")
def state16():
    """Features-only state dict of a full vgg16 (``0.weight`` ...), random but fixed."""
    g = torch.Generator().manual_seed(0)
    feats = tv_features("vgg16")
    with torch.no_grad():
        for m in feats:
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * 9
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan_out) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return {k: v.clone() for k, v in feats.state_dict().items()}


@pytest.fixture(scope="module")
def paths(state16, tmp_path_factory):
    """The state dict saved in both layouts: features-only and full torchvision (with classifier keys)."""
    d = tmp_path_factory.mktemp("weights")
    feat, full = d / "features.pth", d / "full.pth"
    torch.save(state16, feat)
    full_sd = {f"features.{k}": v for k, v in state16.items()}
    full_sd.update({"classifier.0.weight": torch.zeros(2, 3), "classifier.0.bias": torch.zeros(2)})
    torch.save(full_sd, full)
    return {"features": feat, "full": full}


@pytest.fixture(scope="module")
def tv16(state16):
    feats = tv_features("vgg16")
    feats.load_state_dict(state16)
    return feats.eval()


@pytest.fixture(scope="module")
def model(paths):
    """The notebook's extractor: vgg16, relu1_2/relu2_2/relu3_3, weights from a file."""
    return VGGFeatures(weights=str(paths["full"]))


@pytest.fixture
def x():
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def assert_same(outs, refs, tol=1e-6):
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=tol, atol=tol)


# ---------------------------------------------------------------- equivalence with the notebook

def test_weights_none_matches_torchvision_hand_run(x):
    ours = VGGFeatures(layers=[3, 8, 15], weights=None)
    assert ours.indices == (3, 8, 15) and ours.layers == ("relu1_2", "relu2_2", "relu3_3")
    assert len(ours.features) == 16  # truncated like the notebook's features[:16]
    ref = tv_features("vgg16")[:16]
    ref.load_state_dict(ours.features.state_dict())  # same keys: our layer i is torchvision's layer i
    with torch.no_grad():
        assert_same(ours(x), notebook_extract(ref, x))
    # torchvision's VGG initialisation: kaiming-normal (fan_out) weights, zero bias
    conv = ours.features[12]
    assert torch.all(conv.bias == 0)
    expected_std = (2 / (conv.out_channels * 9)) ** 0.5
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.05


def test_pretrained_file_matches_torchvision_hand_run(model, tv16, x):
    with torch.no_grad():
        assert_same(model(x), notebook_extract(tv16, x))
    assert model.indices == (3, 8, 15)


def test_normalize_input_false(paths, tv16, x):
    m = VGGFeatures(layers=["relu2_1"], weights=paths["features"], normalize_input=False)
    with torch.no_grad():
        assert_same(m(x), notebook_extract(tv16, x, layers=(6,), normalize=False))


# ---------------------------------------------------------------- layer names

def names_from_torchvision(arch):
    """Expected names derived from torchvision's module list: a block ends at each MaxPool2d."""
    names, block, conv = [], 1, 0
    for m in tv_features(arch):
        if isinstance(m, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(m, nn.ReLU):
            names.append(f"relu{block}_{conv}")
        elif isinstance(m, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            raise AssertionError(f"unexpected layer {m}")
    return names


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_layer_names_match_torchvision(arch):
    names = layer_names(arch)
    assert names == names_from_torchvision(arch)
    kinds = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}
    for name, m in zip(names, tv_features(arch)):
        assert isinstance(m, kinds[name[:4]]), (name, m)
    convs_per_block = [sum(n.startswith(f"conv{b}_") for n in names) for b in range(1, 6)]
    assert convs_per_block == ([2, 2, 3, 3, 3] if arch == "vgg16" else [2, 2, 4, 4, 4])


@pytest.mark.parametrize("arch, name, index", [
    ("vgg16", "relu1_2", 3), ("vgg16", "relu2_2", 8), ("vgg16", "relu3_3", 15), ("vgg16", "pool1", 4),
    ("vgg16", "pool2", 9), ("vgg16", "pool3", 16), ("vgg16", "relu4_3", 22), ("vgg16", "relu5_3", 29),
    ("vgg16", "conv1_1", 0), ("vgg19", "relu3_4", 17), ("vgg19", "pool3", 18), ("vgg19", "relu4_4", 26),
    ("vgg19", "conv5_4", 34), ("vgg19", "relu5_4", 35), ("vgg19", "pool5", 36),
])
def test_known_indices(arch, name, index):
    assert layer_names(arch)[index] == name


def test_names_and_indices_resolve_alike():
    m = VGGFeatures("vgg19", layers=["conv3_4", 1], weights=None)
    assert m.indices == (16, 1) and m.layers == ("conv3_4", "relu1_1")
    assert len(m.features) == 17


# ---------------------------------------------------------------- behaviour

def test_conv_output_is_pre_relu(paths, x):
    m = VGGFeatures(layers=["conv1_2", "relu1_2"], weights=paths["features"])
    with torch.no_grad():
        conv, relu = m(x)
    assert conv.min() < 0  # not overwritten by the following (formerly in-place) ReLU
    assert torch.equal(relu, conv.clamp_min(0))


def test_user_order_is_kept(paths, model, x):
    m = VGGFeatures(layers=["relu3_3", "pool2", "relu1_2"], weights=paths["features"])
    assert m.indices == (15, 9, 3)
    with torch.no_grad():
        r33, p2, r12 = m(x)
        ref = model(x)
    assert torch.equal(r33, ref[2]) and torch.equal(r12, ref[0])
    assert p2.shape == (1, 128, 8, 8)
    torch.testing.assert_close(p2, F.max_pool2d(ref[1], 2), rtol=0, atol=0)


def test_avg_pooling(paths, model, x):
    m = VGGFeatures(layers=["pool1", "relu2_1"], weights=paths["features"], pooling="avg")
    assert not any(isinstance(layer, nn.MaxPool2d) for layer in m.features)
    assert sum(isinstance(layer, nn.AvgPool2d) for layer in m.features) == 1
    with torch.no_grad():
        p1, _ = m(x)
        r12 = model(x)[0]
    torch.testing.assert_close(p1, F.avg_pool2d(r12, 2), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(p1, F.max_pool2d(r12, 2))


def test_frozen_but_input_gets_gradient(model, x):
    x = x.clone().requires_grad_(True)
    sum(f.square().mean() for f in model(x)).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_train_keeps_eval(model):
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    parent = nn.Sequential(nn.Identity(), model)
    parent.train()
    assert parent.training and not model.training
    model.train(True)
    assert not model.training


def test_no_grad_channels_last_and_compile(model, x):
    ref = model(x)
    with torch.no_grad():
        assert_same(model(x), ref)
        # channels_last may pick another convolution algorithm: equal up to float rounding
        assert_same(model(x.to(memory_format=torch.channels_last)), ref, tol=1e-5)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert_same(compiled(x), ref)


def test_buffers_follow_to_and_are_not_saved(paths, x):
    m = VGGFeatures(layers=["relu1_1"], weights=paths["features"])
    assert "mean" not in m.state_dict() and "std" not in m.state_dict()
    torch.testing.assert_close(m.mean.flatten(), torch.tensor(NOTEBOOK_MEAN))
    m64 = VGGFeatures(layers=["relu1_1"], weights=paths["features"]).double()
    assert m64.mean.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(m64(x.double())[0].float(), m(x)[0], rtol=1e-5, atol=1e-5)


def test_repr(model):
    r = repr(model)
    assert "vgg16" in r and "relu1_2=3" in r and "relu3_3=15" in r and "full.pth" in r
    assert "random init" in repr(VGGFeatures(layers=[0], weights=None))


# ---------------------------------------------------------------- weights

@pytest.mark.parametrize("layout", ["features", "full"])
@pytest.mark.parametrize("as_path", [str, pathlib.Path])
def test_state_dict_file_layouts(paths, tv16, x, layout, as_path):
    m = VGGFeatures(layers=["relu1_2", "relu2_2", "relu3_3"], weights=as_path(paths[layout]))
    with torch.no_grad():
        assert_same(m(x), notebook_extract(tv16, x))


def test_wrong_state_dict_raises(state16, paths, tmp_path):
    missing = {k: v for k, v in state16.items() if k != "2.bias"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"2\.bias"):
        VGGFeatures(weights=tmp_path / "missing.pth")
    # shapes of vgg16 do not fit vgg19 past block 2 (vgg19 layer 16 is conv3_4, vgg16's is pool3)
    with pytest.raises(ValueError, match="do not fit vgg19"):
        VGGFeatures("vgg19", layers=["relu3_4"], weights=paths["full"])
    torch.save({"module.conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="neither a torchvision VGG state dict"):
        VGGFeatures(weights=tmp_path / "other.pth")


def test_missing_path_raises(tmp_path):
    p = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(p))):
        VGGFeatures(weights=str(p))
    with pytest.raises(FileNotFoundError, match="DEFAULT"):  # a typo of a weights name
        VGGFeatures(weights="DEFUALT")


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub dir, and a download that fails like an offline machine (never the network)."""
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path, calls


@pytest.mark.parametrize("arch, weights, filename", [
    ("vgg16", "DEFAULT", "vgg16-397923af.pth"),
    ("vgg16", models.VGG16_Weights.IMAGENET1K_V1, "vgg16-397923af.pth"),
    ("vgg19", "IMAGENET1K_V1", "vgg19-dcbb9e9d.pth"),
])
def test_offline_pretrained_raises_helpful_error(empty_hub, arch, weights, filename):
    hub, calls = empty_hub
    assert not pretrained_available(arch)
    with pytest.raises(RuntimeError) as info:
        VGGFeatures(arch, weights=weights)
    msg = str(info.value)
    assert "could not be downloaded" in msg and filename in msg
    assert os.path.join(str(hub), "checkpoints") in msg
    assert "weights=None" in msg and "weights='/path/to/" in msg
    assert len(calls) == 1 and calls[0].endswith(filename)


def test_pretrained_from_hub_cache(empty_hub, paths, tv16, x):
    hub, calls = empty_hub
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "checkpoints" / "vgg16-397923af.pth").write_bytes(paths["full"].read_bytes())
    assert pretrained_available("vgg16") and not pretrained_available("vgg19")
    m = VGGFeatures(weights="DEFAULT")
    assert calls == [] and m.weights_source == "VGG16_Weights.IMAGENET1K_V1"
    with torch.no_grad():
        assert_same(m(x), notebook_extract(tv16, x))


def test_weights_enum_normalisation(empty_hub, paths):
    """Weights whose preset has its own mean/std (the Caffe-ported VGG16 features) normalise with it."""
    hub, _ = empty_hub
    w = models.VGG16_Weights.IMAGENET1K_FEATURES
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    (hub / "checkpoints" / os.path.basename(w.url)).write_bytes(paths["features"].read_bytes())
    m = VGGFeatures(layers=[0], weights=w)
    torch.testing.assert_close(m.mean.flatten(), torch.tensor(w.transforms.keywords["mean"]))
    torch.testing.assert_close(m.std.flatten(), torch.tensor(w.transforms.keywords["std"]))


# ---------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(layers="relu1_2"), TypeError, "layers"),
    (dict(layers=[]), ValueError, "layers must not be empty.*relu1_2"),
    (dict(layers=["relu9_9"]), ValueError, "layers.*relu9_9.*relu1_2"),
    (dict(layers=["conv3_4"]), ValueError, "layers.*conv3_4.*valid names for vgg16"),
    (dict(layers=[31]), ValueError, "layers.*31.*0..30"),
    (dict(layers=[-1]), ValueError, "layers.*-1"),
    (dict(layers=["relu1_2", 3]), ValueError, "layers.*twice"),
    (dict(layers=[1.5]), TypeError, "layers"),
    (dict(layers=[True]), TypeError, "layers"),
    (dict(arch="vgg11"), ValueError, "arch.*vgg16.*vgg19"),
    (dict(pooling="mean"), ValueError, "pooling.*max.*avg"),
    (dict(normalize_input="yes"), TypeError, "normalize_input"),
    (dict(weights=models.VGG19_Weights.DEFAULT), ValueError, "VGG16_Weights"),
    (dict(weights=123), TypeError, "weights"),
])
def test_bad_arguments(kwargs, exc, pattern):
    kwargs.setdefault("weights", None)
    with pytest.raises(exc, match=pattern):
        VGGFeatures(**kwargs)


def test_bad_arch_in_functions():
    with pytest.raises(ValueError, match="arch"):
        layer_names("resnet50")
    with pytest.raises(ValueError, match="arch"):
        pretrained_available("vgg13")


@pytest.mark.parametrize("shape, dtype, exc, pattern", [
    ((1, 1, 32, 32), torch.float32, ValueError, "3 .*channels"),
    ((1, 4, 32, 32), torch.float32, ValueError, "3 .*channels"),
    ((3, 32, 32), torch.float32, ValueError, r"x must have shape \(N, C, H, W\)"),
    ((1, 3, 32, 32), torch.int64, TypeError, "x must be a floating"),
])
def test_bad_input(model, shape, dtype, exc, pattern):
    with pytest.raises(exc, match=pattern):
        model(torch.zeros(shape, dtype=dtype))
