"""Bad input raises ValueError/TypeError naming the argument and showing the shapes."""
import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.ops import library

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
    """Validation of images and binary masks uses metadata only: it runs on meta tensors (no data, no
    device sync). Only a floating mask's values are checked (below)."""
    x = torch.empty(2, 3, 8, 8, device="meta")
    mask = torch.empty(2, 8, 8, device="meta", dtype=torch.bool)
    with IF.use_backend("reference"):
        out = IF.reconstruction_loss(x, x, mask=mask)
    assert out.device.type == "meta" and out.shape == ()


def test_floating_masks_at_0_and_1_and_binary_masks_of_any_value_pass():
    soft = torch.rand(2, 1, 8, 8)
    soft[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    IF.masked_l1(X, X, mask=soft)
    IF.masked_l1(X, X, mask=(soft * 255).to(torch.uint8))  # 0..255: binary, no error


@pytest.mark.parametrize("backend,exc", [
    ("reference", RuntimeError),
    pytest.param("cpu", ValueError, marks=pytest.mark.skipif(library.load_error() is not None,
                                                             reason="the C++ extension is not built")),
])
def test_floating_mask_check_under_torch_compile(backend, exc):
    """Compiled, the reference path's check is torch._assert_async (no host sync; a RuntimeError with the
    message); the fused op checks the mask itself when it runs, as in eager mode (a ValueError on CPU)."""
    with IF.use_backend(backend):
        fn = torch.compile(lambda p, m: IF.masked_l1(p, p * 0.5, mask=m), backend="eager", fullgraph=True)
        assert fn(X, M).item() == pytest.approx(0.0)
        with pytest.raises(exc, match=r"mask must hold values in \[0, 1\]"):
            fn(X, M * 2)


@pytest.mark.parametrize("which", ["pred", "target", "mask"])
def test_sparse_tensors_are_refused_by_name(which):
    args = {"pred": X, "target": X, "mask": M}
    args[which] = args[which].to_sparse()
    with pytest.raises(TypeError, match=f"{which} must be a dense \\(strided\\) tensor; got layout torch.sparse_coo"):
        IF.masked_l1(args["pred"], args["target"], mask=args["mask"])


@pytest.mark.parametrize("fn", [
    lambda p, t: IF.masked_l1(p, t, mask=M),
    lambda p, t: IF.reconstruction_loss(p, t, mask=M),
    lambda p, t: IF.frequency_loss(p, t),
])
def test_autocast_promotes_a_mixed_pair_as_torch_losses_do(fn):
    pred = torch.rand(2, 3, 8, 8, dtype=torch.bfloat16, requires_grad=True)
    target = torch.rand(2, 3, 8, 8)
    with pytest.raises(TypeError, match="same dtype"):  # outside autocast: the dtypes must agree
        fn(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fn(pred, target)
        assert torch.nn.functional.l1_loss(pred, target).dtype == loss.dtype == torch.float32
    loss.backward()
    expected = fn(pred.detach().float(), target)
    torch.testing.assert_close(loss, expected)
    assert pred.grad.dtype == torch.bfloat16 and torch.isfinite(pred.grad).all()


@pytest.mark.skipif(library.load_error() is not None, reason="the C++ extension is not built")
@pytest.mark.parametrize("bad", [-0.25, 1.5, float("nan"), float("inf")])
@pytest.mark.parametrize("is_hole", [False, True])
@pytest.mark.parametrize("normalize", [0, 1, 2])
def test_fused_ops_check_a_floating_mask_themselves(bad, is_hole, normalize):
    """The public losses leave the [0, 1] check to the op they call: the C++ ops raise the same ValueError,
    naming the argument (hole= or mask=), whatever the normalisation."""
    ops = torch.ops.inpaint_fast
    mask = torch.ones(2, 1, 8, 8)
    mask[1, 0, 3, 4] = bad
    name = "hole" if is_hole else "mask"
    calls = [lambda: ops.masked_error(X, X * 0.5, mask, is_hole, 0, 0.0, 1.0, 1.0, normalize, 1e-8, False),
             lambda: ops.masked_error_stats(X, X * 0.5, mask, is_hole),
             lambda: ops.masked_tv(X, mask, is_hole, 2, 1, normalize, 1e-8, False)]
    for call in calls:
        with pytest.raises(ValueError, match=rf"^{name} must hold values in \[0, 1\]"):
            call()
    mask[1, 0, 3, 4] = 1.0
    for call in calls:
        call()  # in range: no error


_ASYNC_MASK_CHECK = r"""
import torch, inpaint_fast as IF
x = torch.rand(2, 3, 8, 8, device="cuda")
mask = torch.ones(2, 1, 8, 8, device="cuda")
mask[1, 0, 2, 3] = 2.0
IF.masked_l1(x, x * 0.5, mask=mask)  # queued: no host sync, no exception yet
print("returned", flush=True)
try:
    torch.cuda.synchronize()
except RuntimeError as e:
    print("raised at sync:", str(e).splitlines()[0], flush=True)
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_floating_mask_check_is_asynchronous():
    """On a GPU the [0, 1] check is a device-side assert: the loss returns without waiting, the next
    sync fails. A device-side assert spoils the CUDA context, so it runs in a child process."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", _ASYNC_MASK_CHECK], capture_output=True, text=True, timeout=300)
    assert "returned" in done.stdout and "raised at sync" in done.stdout, done.stdout + done.stderr[-2000:]
