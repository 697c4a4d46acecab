"""masked_l1 / masked_l2 / reconstruction_loss against closed forms and the notebook's code, on every CPU backend."""
import pytest
import torch

import inpaint_fast as IF
from tests import notebook


def tiny():
    """pred/target (1, 2, 2, 2) with hand-checkable errors; mask known everywhere but pixel (0, 1)."""
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.5, -1.0], [0.0, 2.0]]]], dtype=torch.float64)
    target = torch.zeros_like(pred)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]], dtype=torch.float64)
    return pred, target, mask


def test_closed_form_l1_l2(backend):
    pred, target, mask = tiny()
    # hole = pixel (0, 1) in both channels: |2| and |-1|; known = the other three pixels in both channels
    assert IF.masked_l1(pred, target, mask=mask).item() == pytest.approx((2 + 1) / 2)
    assert IF.masked_l1(pred, target, mask=mask, region="known").item() == pytest.approx((1 + 3 + 4 + 0.5 + 0 + 2) / 6)
    assert IF.masked_l2(pred, target, mask=mask).item() == pytest.approx((4 + 1) / 2)
    assert IF.masked_l2(pred, target, mask=mask, region="known").item() == pytest.approx((1 + 9 + 16 + 0.25 + 0 + 4) / 6)
    assert IF.masked_l1(pred, target).item() == pytest.approx(13.5 / 8)
    assert IF.masked_l1(pred, target, mask=mask, region="all").item() == pytest.approx(13.5 / 8)
    # normalize='all' divides by all 8 elements; 'sum' does not divide
    assert IF.masked_l1(pred, target, mask=mask, normalize="all").item() == pytest.approx(3 / 8)
    assert IF.masked_l1(pred, target, mask=mask, reduction="sum").item() == pytest.approx(3)
    assert IF.masked_l2(pred, target, mask=mask, region="known", reduction="sum").item() == pytest.approx(30.25)


def test_reduction_none_is_the_weighted_map(backend):
    pred, target, mask = tiny()
    out = IF.masked_l1(pred, target, mask=mask, reduction="none")
    assert out.shape == pred.shape
    torch.testing.assert_close(out, (pred - target).abs() * (1 - mask))
    rec = IF.reconstruction_loss(pred, target, mask=mask, reduction="none")
    torch.testing.assert_close(rec, (pred - target).abs() * (6 * (1 - mask) + mask))
    torch.testing.assert_close(rec.sum(), IF.reconstruction_loss(pred, target, mask=mask, reduction="sum"))


def test_reconstruction_is_weighted_hole_plus_valid(backend):
    pred, target, mask = tiny()
    rec = IF.reconstruction_loss(pred, target, mask=mask)
    assert rec.item() == pytest.approx(6 * 1.5 + 10.5 / 6)
    rec = IF.reconstruction_loss(pred, target, mask=mask, lambda_hole=2.0, lambda_valid=0.5, loss="l2")
    assert rec.item() == pytest.approx(2 * 2.5 + 0.5 * 30.25 / 6)


def test_soft_mask_is_a_weighted_average(backend):
    pred = torch.tensor([[[[1.0, 3.0]]]], dtype=torch.float64)
    target = torch.zeros_like(pred)
    known = torch.tensor([[[[0.25, 1.0]]]], dtype=torch.float64)
    # hole weights 0.75 and 0: the hole mean is 1; known weights 0.25, 1: (0.25 + 3) / 1.25
    assert IF.masked_l1(pred, target, mask=known).item() == pytest.approx(1.0)
    assert IF.masked_l1(pred, target, mask=known, region="known").item() == pytest.approx(3.25 / 1.25)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_empty_region_gives_zero_loss_and_zero_grad(backend, fill):
    pred = torch.rand(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    mask = torch.full((2, 1, 5, 4), fill, dtype=torch.float64)
    region = "hole" if fill == 1.0 else "known"  # the region that is empty
    for fn in (IF.masked_l1, IF.masked_l2):
        loss = fn(pred, target, mask=mask, region=region)
        assert loss.item() == 0.0
        (grad,) = torch.autograd.grad(loss, pred)
        assert torch.isfinite(grad).all() and (grad == 0).all()
    loss = IF.reconstruction_loss(pred, target, mask=mask)
    assert torch.isfinite(loss)
    other = "known" if region == "hole" else "hole"
    lam = 1.0 if other == "known" else 6.0
    torch.testing.assert_close(loss, lam * IF.masked_l1(pred, target, mask=mask, region=other))


def test_every_mask_shape_and_dtype_agrees(backend):
    torch.manual_seed(1)
    n, c, h, w = 2, 3, 6, 7
    pred, target = torch.rand(n, c, h, w), torch.rand(n, c, h, w)
    base = torch.rand(h, w) > 0.4  # one (H, W) mask shared by the batch
    expected = IF.masked_l1(pred, target, mask=base.float().expand(n, 1, h, w))
    variants = [base, base[None], base.expand(n, h, w), base[None, None], base.expand(n, 1, h, w),
                base.expand(n, c, h, w), base.to(torch.uint8), base.double(), base.float()]
    for m in variants:
        torch.testing.assert_close(IF.masked_l1(pred, target, mask=m), expected)
        hole = ~m if m.dtype == torch.bool else 1 - m
        torch.testing.assert_close(IF.masked_l1(pred, target, hole=hole), expected)
        torch.testing.assert_close(IF.masked_l1(pred, target, hole=hole, region="known"),
                                   IF.masked_l1(pred, target, mask=m, region="known"))


def test_per_channel_mask_differs_from_spatial(backend):
    pred, target = torch.ones(1, 2, 1, 2), torch.zeros(1, 2, 1, 2)
    pred[0, 1] = 3.0
    mask = torch.tensor([[[[0.0, 1.0]], [[1.0, 1.0]]]])  # only channel 0, pixel 0 is a hole
    assert IF.masked_l1(pred, target, mask=mask).item() == pytest.approx(1.0)
    assert IF.masked_l1(pred, target, mask=mask, region="known").item() == pytest.approx((1 + 3 + 3) / 3)


def test_matches_the_notebook_on_random_images(backend):
    torch.manual_seed(0)
    x, pred = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    m = notebook.get_box_mask(x, top=10, left=12, height=30, width=20)
    # the notebook takes the reference first; ours take the prediction first
    pairs = [
        (IF.masked_l1(pred, x), notebook.l1_loss(x, pred)),
        (IF.masked_l1(pred, x, mask=m), notebook.l1_loss(x, pred, 1 - m)),
        (IF.masked_l1(pred, x, mask=m, region="known"), notebook.l1_loss(x, pred, m)),
        (IF.masked_l2(pred, x), notebook.l2_loss(x, pred)),
        (IF.masked_l2(pred, x, mask=m), notebook.l2_loss(x, pred, 1 - m)),
        (IF.masked_l2(pred, x, hole=1 - m, region="known"), notebook.l2_loss(x, pred, m)),
        (IF.reconstruction_loss(pred, x, mask=m), notebook.reconstruction_loss(x, pred, m)),
    ]
    for ours, theirs in pairs:
        if backend == "reference":
            assert torch.equal(ours, theirs)
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_low_precision_returns_input_dtype_without_overflow(backend, dtype, tol):
    # 3 * 200 * 200 = 120000 mask elements: more than float16 can count (65504)
    torch.manual_seed(0)
    pred, target = torch.rand(1, 3, 200, 200), torch.rand(1, 3, 200, 200)
    mask = torch.rand(1, 1, 200, 200) > 0.5
    for fn in (IF.masked_l1, IF.masked_l2):
        expected = fn(pred.double(), target.double(), mask=mask)
        got = fn(pred.to(dtype), target.to(dtype), mask=mask)
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), expected, rtol=tol, atol=0)


def test_gradient_closed_form(backend):
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    mask = (torch.rand(2, 1, 4, 5) > 0.5).double()
    hole = (1 - mask).expand(2, 3, 4, 5)
    (g1,) = torch.autograd.grad(IF.masked_l1(pred, target, mask=mask), pred)
    torch.testing.assert_close(g1, torch.sign(pred - target) * hole / hole.sum())
    (g2,) = torch.autograd.grad(IF.masked_l2(pred, target, mask=mask, normalize="all"), pred)
    torch.testing.assert_close(g2, 2 * (pred - target) * hole / pred.numel())


def test_target_gradient_is_the_negative(backend):
    torch.manual_seed(0)
    pred = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(1, 1, 4, 5) > 0.5
    gp, gt = torch.autograd.grad(IF.reconstruction_loss(pred, target, mask=mask), (pred, target))
    torch.testing.assert_close(gt, -gp)


def test_gradcheck(backend):
    torch.manual_seed(0)
    pred = torch.rand(2, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    target = (pred.detach() + 0.1 + 0.5 * torch.rand_like(pred)).requires_grad_()  # away from the |d| kink
    mask = torch.rand(2, 1, 4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, t: IF.reconstruction_loss(p, t, mask=mask), (pred, target))
    assert torch.autograd.gradcheck(lambda p, t: IF.masked_l2(p, t, mask=mask, region="known"), (pred, target))


def test_soft_mask_requiring_grad_gets_its_gradient(backend):
    torch.manual_seed(0)
    pred, target = torch.rand(1, 1, 3, 3, dtype=torch.float64), torch.rand(1, 1, 3, 3, dtype=torch.float64)
    mask = torch.rand(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m: IF.masked_l1(pred, target, mask=m, region="known"), (mask,))


def test_noncontiguous_and_channels_last(backend):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 9), torch.rand(2, 3, 8, 9)
    mask = torch.rand(2, 1, 8, 9) > 0.5
    expected = IF.reconstruction_loss(pred, target, mask=mask)
    cl = IF.reconstruction_loss(pred.to(memory_format=torch.channels_last),
                                target.to(memory_format=torch.channels_last), mask=mask)
    wide_p, wide_t = torch.rand(2, 3, 8, 18), torch.rand(2, 3, 8, 18)
    wide_p[..., ::2], wide_t[..., ::2] = pred, target
    strided = IF.reconstruction_loss(wide_p[..., ::2], wide_t[..., ::2], mask=mask)
    torch.testing.assert_close(cl, expected)
    torch.testing.assert_close(strided, expected)


def test_modules_match_functions(backend):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    hole = torch.rand(2, 8, 8) > 0.5
    module = IF.ReconstructionLoss(lambda_hole=3.0, loss="l2", normalize="all")
    torch.testing.assert_close(module(pred, target, hole=hole),
                               IF.reconstruction_loss(pred, target, hole=hole, lambda_hole=3.0, loss="l2",
                                                      normalize="all"))
    assert "lambda_hole=3.0" in repr(module)


def test_compiles_without_graph_breaks(backend):
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 8, 8, requires_grad=True)
    target, mask = torch.rand(2, 3, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()

    def step(p, t, m):
        return IF.reconstruction_loss(p, t, mask=m) + IF.masked_l2(p, t, mask=m, region="known")

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss = compiled(pred, target, mask)
    (grad,) = torch.autograd.grad(loss, pred)
    pred2 = pred.detach().requires_grad_()
    expected = step(pred2, target, mask)
    (expected_grad,) = torch.autograd.grad(expected, pred2)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_charbonnier_closed_form(backend):
    pred, target, mask = tiny()
    eps = 0.5
    hole = ((2 ** 2 + eps ** 2) ** 0.5 + (1 + eps ** 2) ** 0.5) / 2
    assert IF.masked_charbonnier(pred, target, mask=mask, charbonnier_eps=eps).item() == pytest.approx(hole)
    rec = IF.reconstruction_loss(pred, target, mask=mask, loss="charbonnier", charbonnier_eps=eps, lambda_valid=0.0)
    assert rec.item() == pytest.approx(6 * hole)
    with pytest.raises(ValueError, match="charbonnier_eps must be > 0"):
        IF.masked_charbonnier(pred, target, charbonnier_eps=0.0)


@pytest.mark.parametrize("kind", ["mask", "hole", "none"])
def test_error_stats_equal_the_separate_losses(backend, kind):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 20, 30), torch.rand(2, 3, 20, 30)
    known = torch.rand(2, 1, 20, 30) > 0.3
    kwargs = {"mask": dict(mask=known), "hole": dict(hole=~known), "none": {}}[kind]
    stats = IF.functional.masked_error_stats(pred, target, **kwargs)
    for loss, fn in (("l1", IF.masked_l1), ("l2", IF.masked_l2)):
        torch.testing.assert_close(stats[f"full_{loss}"], fn(pred, target))
        if kind == "none":
            assert stats[f"hole_{loss}"].item() == 0
            torch.testing.assert_close(stats[f"known_{loss}"], fn(pred, target))
        else:
            torch.testing.assert_close(stats[f"hole_{loss}"], fn(pred, target, **kwargs, region="hole"))
            torch.testing.assert_close(stats[f"known_{loss}"], fn(pred, target, **kwargs, region="known"))
