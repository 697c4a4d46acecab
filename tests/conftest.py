"""Shared fixtures: the backends that can run here, the seed's photo setup, a small VGG."""
import pytest
import torch

import inpaint_fast
from inpaint_fast import _backend

CPU_BACKENDS = ["reference"] + (["cpu"] if _backend.availability()["cpu"] is None else [])


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    """Runs the test once per CPU backend built here (the reference, and the C++ kernels)."""
    with inpaint_fast.use_backend(request.param):
        yield request.param


@pytest.fixture(scope="session")
def photo():
    """The seed's setup on scikit-image's chelsea: x (1,3,256,256), box mask, the predictions."""
    from inpaint_fast.demo import box_mask, load_photo, seed_predictions
    x = load_photo("chelsea")
    mask = box_mask(x)
    return x, mask, seed_predictions(x, mask)


@pytest.fixture(scope="session")
def vgg():
    """Untrained VGG16 with the seed's layers (relu1_2, relu2_2, relu3_3), fixed random weights."""
    torch.manual_seed(0)
    return inpaint_fast.VGGFeatures(weights=None)


@pytest.fixture(scope="session")
def seed_vgg(vgg):
    """The seed's ``vgg16(...).features[:16].eval()``, frozen, holding the same weights as ``vgg``."""
    from torchvision.models import vgg16
    with torch.device("meta"):
        net = vgg16(weights=None).features[:16]
    net = net.to_empty(device="cpu")
    net.load_state_dict(vgg.features.state_dict())
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()
