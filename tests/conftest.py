"""Shared fixtures: the backends that can run here, the notebook's photo setup, a small VGG."""
import os

import pytest
import torch

# Without a GPU the Triton kernels run on CPU tensors in Triton's interpreter. The variable must be
# set before inpaint_fast (and so triton.jit) is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import inpaint_fast  # noqa: E402
from inpaint_fast.ops import backend as _backend  # noqa: E402

CPU_BACKENDS = ["reference"] + (["cpu"] if _backend.availability()["cpu"] is None else [])
GPU_BACKENDS = ["cuda", "triton"]
# Triton on CPU tensors: each program is interpreted in Python, so tests keep shapes small.
TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
GPU_DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    """Runs the test once per CPU backend built here (the reference, and the C++ kernels)."""
    with inpaint_fast.use_backend(request.param):
        yield request.param


@pytest.fixture(params=GPU_BACKENDS)
def gpu_backend(request):
    """(name, device) for each GPU backend that can run here: 'cuda' (the CUDA C++ kernels) on a GPU;
    'triton' on a GPU, or on CPU tensors under TRITON_INTERPRET=1. Skips the others, saying why."""
    reason = _backend.availability()[request.param]
    if reason is not None:
        pytest.skip(f"backend {request.param!r}: {reason}")
    with inpaint_fast.use_backend(request.param):
        yield request.param, GPU_DEVICE


@pytest.fixture(scope="session")
def photo():
    """The notebook's setup on scikit-image's chelsea: x (1,3,256,256), box mask, the predictions."""
    from inpaint_fast.demo import box_mask, load_photo, notebook_predictions
    x = load_photo("chelsea")
    mask = box_mask(x)
    return x, mask, notebook_predictions(x, mask)


@pytest.fixture(scope="session")
def vgg():
    """Untrained VGG16 with the notebook's layers (relu1_2, relu2_2, relu3_3), fixed random weights."""
    torch.manual_seed(0)
    return inpaint_fast.VGGFeatures(weights=None)


@pytest.fixture(scope="session")
def notebook_vgg(vgg):
    """The notebook's ``vgg16(...).features[:16].eval()``, frozen, holding the same weights as ``vgg``."""
    from torchvision.models import vgg16
    with torch.device("meta"):
        net = vgg16(weights=None).features[:16]
    net = net.to_empty(device="cpu")
    net.load_state_dict(vgg.features.state_dict())
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()
