"""total_variation / TVLoss against closed forms and the notebook's tv_loss."""
import pytest
import torch

import inpaint_fast as IF
from tests import notebook


def test_closed_form(backend):
    img = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]], dtype=torch.float64)  # (1, 1, 2, 3)
    # vertical pairs: |2-0|, |2-1|, |2-3| = 2, 1, 1; horizontal: 1, 2, 0, 0
    assert IF.total_variation(img).item() == pytest.approx(4 / 3 + 3 / 4)
    assert IF.total_variation(img, p=2).item() == pytest.approx(6 / 3 + 5 / 4)
    assert IF.total_variation(img, reduction="sum").item() == pytest.approx(7)
    known = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
    # hole pixels (0,1), (0,2), (1,1): vertical hole pair is column 1 (|2-1|); horizontal: (0,1)-(0,2) (|3-1|)
    assert IF.total_variation(img, mask=known).item() == pytest.approx(1 + 2)
    # known pixels (0,0), (1,0), (1,2): vertical pair column 0 (|2-0|); no horizontal known pair
    assert IF.total_variation(img, mask=known, region="known").item() == pytest.approx(2)
    # normalize='all' divides each direction by its number of pairs
    assert IF.total_variation(img, mask=known, normalize="all").item() == pytest.approx(1 / 3 + 2 / 4)


def test_none_map_sums_to_sum(backend):
    torch.manual_seed(0)
    img = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    mask = torch.rand(2, 1, 5, 6) > 0.5
    out = IF.total_variation(img, mask=mask, reduction="none")
    assert out.shape == img.shape
    torch.testing.assert_close(out.sum(), IF.total_variation(img, mask=mask, reduction="sum"))
    assert (out[:, :, -1, -1] == 0).all()


def test_matches_notebook(backend):
    torch.manual_seed(0)
    img = torch.rand(2, 3, 32, 40)
    m = notebook.get_box_mask(img, top=5, left=7, height=12, width=20)
    pairs = [(IF.total_variation(img), notebook.tv_loss(img)),
             (IF.total_variation(img, mask=m), notebook.tv_loss(img, 1 - m)),
             (IF.total_variation(img, hole=1 - m, region="known"), notebook.tv_loss(img, m)),
             (IF.total_variation(img, mask=m.bool()), notebook.tv_loss(img, 1 - m))]
    for ours, theirs in pairs:
        if backend == "reference":
            assert torch.equal(ours, theirs)
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)


def test_hole_dilated_closed_form(backend):
    img = torch.arange(25, dtype=torch.float64).reshape(1, 1, 5, 5) ** 1.5
    known = torch.ones(5, 5, dtype=torch.bool)
    known[1, 1] = False  # one hole pixel: the dilated hole is the 3x3 block rows 0-2, cols 0-2
    x = img[0, 0]
    vertical = [abs(x[i + 1, j] - x[i, j]) for i in range(2) for j in range(3)]
    horizontal = [abs(x[i, j + 1] - x[i, j]) for i in range(3) for j in range(2)]
    expected = sum(vertical) / 6 + sum(horizontal) / 6
    got = IF.total_variation(img, mask=known, region="hole_dilated")
    torch.testing.assert_close(got, expected.reshape(()))
    assert IF.TVLoss(region="hole_dilated")(img, hole=~known).item() == pytest.approx(expected.item())


def test_empty_region_and_single_row_are_zero_not_nan(backend):
    img = torch.rand(1, 3, 6, 6, requires_grad=True)
    loss = IF.total_variation(img, mask=torch.ones(6, 6))  # no hole
    (grad,) = torch.autograd.grad(loss, img)
    assert loss.item() == 0 and (grad == 0).all()
    row = torch.rand(1, 3, 1, 5)
    assert torch.isfinite(IF.total_variation(row))
    assert IF.total_variation(row).item() == pytest.approx((row[..., 1:] - row[..., :-1]).abs().mean().item())


def test_gradcheck_and_module(backend):
    torch.manual_seed(0)
    img = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(1, 1, 4, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: IF.total_variation(x, mask=mask, p=2), (img,))
    module = IF.TVLoss(region="known", p=2, normalize="all")
    torch.testing.assert_close(module(img, mask=mask),
                               IF.total_variation(img, mask=mask, region="known", p=2, normalize="all"))


def test_bad_power():
    with pytest.raises(ValueError, match="p must be 1"):
        IF.total_variation(torch.rand(1, 1, 3, 3), p=3)
    with pytest.raises(ValueError, match="p must be 1"):
        IF.TVLoss(p=True)
