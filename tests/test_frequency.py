"""frequency_loss / FrequencyLoss against the notebook's code and closed forms."""
import math

import pytest
import torch

import inpaint_fast as IF
from tests import notebook


def test_matches_notebook(backend):
    torch.manual_seed(0)
    x, pred = torch.rand(2, 3, 32, 24), torch.rand(2, 3, 32, 24)
    ours, theirs = IF.frequency_loss(pred, x), notebook.frequency_loss(x, pred)
    if backend == "reference":
        assert torch.equal(ours, theirs)
    else:
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=0)
    assert IF.frequency_loss(x, x).item() == 0.0


def test_constant_images_closed_form(backend):
    # a constant image c has one nonzero ortho coefficient: DC = c * sqrt(H W)
    h, w = 4, 6
    a, b = torch.full((1, 1, h, w), 0.5, dtype=torch.float64), torch.zeros(1, 1, h, w, dtype=torch.float64)
    expected = math.log1p(0.5 * math.sqrt(h * w)) / (h * (w // 2 + 1))
    assert IF.frequency_loss(a, b).item() == pytest.approx(expected)
    assert IF.frequency_loss(a, b, reduction="none").shape == (1, 1, h, w // 2 + 1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_upcast_for_the_fft(backend, dtype):
    torch.manual_seed(0)
    x, pred = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    got = IF.frequency_loss(pred.to(dtype), x.to(dtype))
    assert got.dtype == dtype
    expected = IF.frequency_loss(pred.to(dtype).float(), x.to(dtype).float())
    torch.testing.assert_close(got.float(), expected, rtol=1e-2, atol=0)


def test_gradcheck_and_module(backend):
    torch.manual_seed(0)
    pred = torch.rand(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    x = torch.rand(1, 2, 6, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: IF.frequency_loss(p, x), (pred,))
    torch.testing.assert_close(IF.FrequencyLoss(reduction="sum")(pred, x), IF.frequency_loss(pred, x, reduction="sum"))
