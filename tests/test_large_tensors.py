"""64-bit indexing: the fused ops on one image plane of 46341 x 46341 = 2^31 + 4633 elements, so that
the last row lies past 2^31. Everything but the last ROWS rows is zero (the mask there is 0: outside
the region), so each op's result over the whole plane equals the reference's over those rows (float64),
and the gradient is zero above them: a 32-bit offset anywhere reads or writes the wrong element (or
crashes). bfloat16 keeps a plane at 4.3 GB; about 16 GB at the peak. CPU kernels here; on a GPU the
CUDA and Triton kernels (the interpreter would take hours)."""
import gc

import pytest
import torch

from inpaint_fast.ops import backend as _backend
from inpaint_fast.reference import diffusion as ref_diffusion
from inpaint_fast.reference import pixel as ref_pixel
from inpaint_fast.reference import tv as ref_tv

SIDE = 46341
ROWS = 3  # the rows with data: offsets (SIDE - ROWS) * SIDE .. SIDE * SIDE, across 2^31
assert (SIDE - ROWS) * SIDE < 2 ** 31 < SIDE * SIDE
OPS = torch.ops.inpaint_fast
DTYPE = torch.bfloat16


def _backends():
    found = []
    if _backend.availability()["cpu"] is None:
        found.append(("cpu", torch.device("cpu")))
    if torch.cuda.is_available():
        found += [(name, torch.device("cuda")) for name in ("cuda", "triton") if _backend.availability()[name] is None]
    return found


def _memory_for(device) -> bool:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory > 24 * 2 ** 30
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable"))
    except (OSError, StopIteration):
        return True
    return available * 1024 > 17 * 2 ** 30


@pytest.fixture(scope="module", params=_backends(), ids=lambda b: b[0])
def plane(request):
    """(backend, pred, target, known mask, rows of the three in float64): views of 1 x 1 x SIDE x SIDE."""
    name, device = request.param
    if not _memory_for(device):
        pytest.skip("needs about 17 GB of free memory")
    gen = torch.Generator().manual_seed(0)
    tail = (1, 1, ROWS, SIDE)
    pred = torch.zeros(1, 1, SIDE, SIDE, dtype=DTYPE, device=device)
    target = torch.zeros_like(pred)
    known = torch.zeros(1, 1, SIDE, SIDE, dtype=torch.bool, device=device)
    rows = (torch.rand(tail, generator=gen, dtype=torch.float64), torch.rand(tail, generator=gen, dtype=torch.float64),
            torch.rand(tail, generator=gen) > 0.3)
    rows = (rows[0].to(DTYPE).double(), rows[1].to(DTYPE).double(), rows[2])
    pred[..., -ROWS:, :] = rows[0].to(device, DTYPE)
    target[..., -ROWS:, :] = rows[1].to(device, DTYPE)
    known[..., -ROWS:, :] = rows[2].to(device)
    yield name, pred, target, known, rows
    del pred, target, known
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _op(name: str, op: str):
    return getattr(OPS, op + "_triton" if name == "triton" else op)


def _check_grad(grad, expected_rows, rtol):
    assert grad.shape == (1, 1, SIDE, SIDE)
    torch.testing.assert_close(grad[..., -ROWS:, :].double().cpu(), expected_rows, rtol=rtol, atol=1e-30)
    assert int(torch.count_nonzero(grad[..., :-ROWS, :])) == 0


def test_masked_error_past_2_31(plane):
    name, pred, target, known, (p, t, m) = plane
    # weight_hole 0: only the known region (the last rows) counts, normalised by its area, which the
    # mask pre-pass sums over the whole plane.
    loss, grad = _op(name, "masked_error")(pred, target, known, False, 0, 1e-3, 0.0, 2.0, 1, 1e-8, True)
    pr = p.clone().requires_grad_()
    expected = ref_pixel.masked_error(pr, t, m.double(), weight_hole=0.0, weight_valid=2.0)
    expected.backward()
    torch.testing.assert_close(loss.double().cpu(), expected.detach(), rtol=1e-5, atol=0)
    _check_grad(grad, pr.grad, rtol=1e-2)
    stats = _op(name, "masked_error_stats")(pred, target, known, False)
    e = (p - t).abs()
    area = m.double().sum()
    expected_stats = torch.stack([(e * ~m).sum(), (e * m).sum(), (e * e * ~m).sum(), (e * e * m).sum(),
                                  SIDE * SIDE - area, area])
    torch.testing.assert_close(stats.double().cpu(), expected_stats, rtol=1e-5, atol=0)


def test_masked_tv_past_2_31(plane):
    name, pred, _, known, (p, _, m) = plane
    loss, grad = _op(name, "masked_tv")(pred, known, False, 1, 1, 1, 1e-8, True)  # region known, p 1, mask areas
    pr = p.clone().requires_grad_()
    expected = ref_tv.total_variation(pr, m.double())
    expected.backward()
    torch.testing.assert_close(loss.double().cpu(), expected.detach(), rtol=1e-5, atol=0)
    _check_grad(grad, pr.grad, rtol=1e-2)


def test_style_distance_past_2_31(plane):
    name, pred, target, _, (p, t, _) = plane
    if name == "cuda":  # cuBLAS takes 32-bit sizes: a clear error before any allocation
        with pytest.raises(RuntimeError, match="2\\^31 - 1"):
            OPS.style_distance(pred, target, None, 1e-8, True)
        return
    loss, grad = _op(name, "style_distance")(pred, target, None, 1e-8, True)
    pr = p.clone().requires_grad_()
    scale = 1.0 / (SIDE * SIDE)  # the Gram of one channel: sum x^2 / (C H W), taken over the whole plane
    expected = ((pr * pr).sum() * scale - (t * t).sum() * scale).abs()  # the Gram of 1 channel, written out
    expected.backward()
    torch.testing.assert_close(loss.double().cpu(), expected.detach(), rtol=1e-4, atol=0)
    _check_grad(grad, pr.grad, rtol=1e-2)


def test_q_sample_past_2_31(plane):
    name, pred, target, _, (p, t, _) = plane
    if name != "cpu":
        pytest.skip("q_sample has a CPU kernel only")
    abar = torch.linspace(0.9, 0.1, 10, dtype=torch.float64)
    step = torch.tensor([3])
    out = OPS.q_sample(pred, step, target, abar.float())
    expected = ref_diffusion.q_sample(p, step, t, abar)
    torch.testing.assert_close(out[..., -ROWS:, :].double(), expected, rtol=1e-2, atol=1e-2)
    assert int(torch.count_nonzero(out[..., :-ROWS, :])) == 0
