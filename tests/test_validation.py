"""Bad input raises ValueError/TypeError naming the argument and showing the shapes."""
import pytest
import torch

import inpaint_fast as IF

X = torch.rand(2, 3, 8, 8)
M = torch.ones(2, 1, 8, 8)


@pytest.mark.parametrize("call,exc,pattern", [
    (lambda: IF.masked_l1(X[0], X[0]), ValueError, r"pred must have shape \(N, C, H, W\); got \(3, 8, 8\)"),
    (lambda: IF.masked_l1(X, X[:1]), ValueError, r"same shape; got \(2, 3, 8, 8\) and \(1, 3, 8, 8\)"),
    (lambda: IF.masked_l1(X, X.double()), TypeError, "same dtype; got torch.float32 and torch.float64"),
    (lambda: IF.masked_l1(X, X.to("meta")), ValueError, "same device"),
    (lambda: IF.masked_l1((X * 255).to(torch.uint8), X), TypeError, "pred must be a floating tensor"),
    (lambda: IF.masked_l1(X.numpy(), X), TypeError, "pred must be a torch.Tensor; got ndarray"),
    (lambda: IF.masked_l1(X, X, mask=M, hole=M), ValueError, "either mask= .* or hole= .*, not both"),
    (lambda: IF.reconstruction_loss(X, X), ValueError, "a mask is required"),
    (lambda: IF.masked_l1(X, X, mask=torch.ones(2, 1, 8, 7)), ValueError,
     r"mask of shape \(2, 1, 8, 7\) cannot broadcast to pred of shape \(2, 3, 8, 8\)"),
    (lambda: IF.masked_l1(X, X, hole=torch.ones(3, 1, 8, 8)), ValueError, r"hole of shape \(3, 1, 8, 8\)"),
    (lambda: IF.masked_l1(X, X, mask=torch.ones(2, 2, 8, 8)), ValueError, "cannot broadcast"),
    (lambda: IF.masked_l1(X, X, mask=torch.ones(8)), ValueError, r"mask must have shape .*; got \(8,\)"),
    (lambda: IF.masked_l1(X, X, mask=torch.ones(2, 1, 8, 8, dtype=torch.int32)), TypeError,
     "mask must be bool, uint8 or floating; got torch.int32"),
    (lambda: IF.masked_l1(X, X, mask=[[1]]), TypeError, "mask must be a torch.Tensor"),
    (lambda: IF.masked_l1(X, X, mask=M.to("meta")), ValueError, "mask must be on the device of pred"),
    (lambda: IF.masked_l1(X, X, reduction="avg"), ValueError, "reduction must be one of 'mean', 'sum', 'none'; got 'avg'"),
    (lambda: IF.masked_l1(X, X, normalize="valid"), ValueError, "normalize must be one of 'mask', 'all'"),
    (lambda: IF.masked_l1(X, X, mask=M, region="missing"), ValueError, "region must be one of 'hole', 'known', 'all'"),
    (lambda: IF.masked_l1(X, X, region="hole"), ValueError, "region='hole' needs a mask"),
    (lambda: IF.masked_l1(X, X, eps=0.0), ValueError, "eps must be > 0"),
    (lambda: IF.reconstruction_loss(X, X, mask=M, lambda_hole=-1.0), ValueError,
     "lambda_hole must be a finite number >= 0; got -1.0"),
    (lambda: IF.reconstruction_loss(X, X, mask=M, lambda_valid="1"), TypeError, "lambda_valid must be a real number"),
    (lambda: IF.reconstruction_loss(X, X, mask=M, loss="l3"), ValueError, "loss must be one of 'l1', 'l2'"),
    (lambda: IF.ReconstructionLoss(lambda_hole=float("nan")), ValueError, "lambda_hole must be a finite number"),
    (lambda: IF.total_variation(X, mask=M, normalize="x"), ValueError, "normalize must be one of"),
    (lambda: IF.TVLoss(region="inside"), ValueError, "region must be one of"),
    (lambda: IF.frequency_loss(X, X, reduction=None), ValueError, "reduction must be one of"),
    (lambda: IF.gram_matrix(X[0]), ValueError, r"feat must have shape \(N, C, H, W\)"),
    (lambda: IF.VGGFeatures(layers=("relu9_9",), weights=None), ValueError, "layers"),
])
def test_errors_name_the_argument(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_checks_do_not_read_values():
    """Validation uses metadata only: it runs on meta tensors (no data, no device sync)."""
    x = torch.empty(2, 3, 8, 8, device="meta")
    mask = torch.empty(2, 8, 8, device="meta", dtype=torch.bool)
    with IF.use_backend("reference"):
        out = IF.reconstruction_loss(x, x, mask=mask)
    assert out.device.type == "meta" and out.shape == ()
