"""Backend selection: defaults, use_backend, INPAINT_FAST_BACKEND, and errors."""
import os
import subprocess
import sys

import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.ops import backend as _backend
from inpaint_fast.ops import library

CPU = torch.device("cpu")
HAS_CPU_KERNELS = _backend.availability()["cpu"] is None


def test_default_uses_the_cpu_kernel_when_built():
    assert _backend.choose("masked_error", CPU) == ("cpu" if HAS_CPU_KERNELS else "reference")
    assert _backend.choose("no_such_op", CPU) == "reference"


def test_use_backend_forces_and_restores():
    with IF.use_backend("reference"):
        assert _backend.choose("masked_error", CPU) == "reference"
        if HAS_CPU_KERNELS:
            with IF.use_backend("cpu"):
                assert _backend.choose("masked_error", CPU) == "cpu"
        assert _backend.choose("masked_error", CPU) == "reference"
    assert _backend.forced() is None


def test_forcing_an_unknown_or_unavailable_backend_is_an_error():
    with pytest.raises(ValueError, match="backend must be one of 'reference', 'cpu', 'cuda', 'triton'; got 'gpu'"):
        with IF.use_backend("gpu"):
            pass
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="backend 'cuda' is not available here"):
            with IF.use_backend("cuda"):
                pass


@pytest.mark.skipif(not HAS_CPU_KERNELS, reason="the C++ extension is not built")
def test_forced_cpu_backend_rejects_other_devices_and_keeps_reference_ops():
    x = torch.empty(1, 3, 4, 4, device="meta")
    with IF.use_backend("cpu"):
        with pytest.raises(RuntimeError, match="backend 'cpu' cannot run masked_error on a meta tensor"):
            IF.masked_l1(x, x)
        img = torch.rand(1, 3, 4, 4)
        torch.testing.assert_close(IF.total_variation(img), IF.reference.tv.total_variation(img))


@pytest.mark.parametrize("value,expected", [("reference", "reference"), ("cpu", "cpu"), ("nonsense", "error")])
def test_environment_variable(value, expected):
    if expected == "cpu" and not HAS_CPU_KERNELS:
        pytest.skip("the C++ extension is not built")
    code = ("import torch; from inpaint_fast.ops import backend as _backend\n"
            "try: print(_backend.choose('masked_error', torch.device('cpu')))\n"
            "except ValueError as e: print('error', e)")
    env = dict(os.environ, INPAINT_FAST_BACKEND=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == expected


@pytest.mark.parametrize("kernels,unavailable,expected", [
    ({"cpu", "cuda", "triton"}, (), "cuda"),
    ({"cpu", "cuda", "triton"}, ("cuda",), "triton"),
    ({"cpu", "triton"}, (), "triton"),
    ({"cpu", "cuda", "triton"}, ("cuda", "triton"), "reference"),
    ({"cpu"}, (), "reference"),
])
def test_cuda_tensors_prefer_cuda_then_triton_then_reference(monkeypatch, kernels, unavailable, expected):
    """The GPU order of issue 4, with the kernel table and availability of a GPU machine emulated."""
    from inpaint_fast.ops import library
    monkeypatch.setitem(library._KERNELS, "masked_error", frozenset(kernels))
    monkeypatch.setattr(_backend, "_AVAILABILITY", {"reference": None, "cpu": None, "cuda": None, "triton": None,
                                                    **{name: "emulated: unavailable" for name in unavailable}})
    assert _backend.choose("masked_error", torch.device("cuda")) == expected
    assert _backend.choose("masked_error", CPU) == "cpu"


def test_triton_on_cpu_tensors_only_when_interpreted():
    if _backend.availability()["triton"] is not None:
        with pytest.raises(RuntimeError, match="backend 'triton' is not available here"):
            with IF.use_backend("triton"):
                pass
    elif not torch.cuda.is_available():  # TRITON_INTERPRET=1 (tests/conftest.py sets it without a GPU)
        from inpaint_fast.ops import library
        with IF.use_backend("triton"):
            expected = "triton" if "triton" in library.kernels("masked_error") else "reference"
            assert _backend.choose("masked_error", CPU) == expected


def test_triton_ops_have_the_schemas_of_the_cpp_ops():
    """Each ``<op>_triton`` op takes its schema from its launcher's annotations (torch 2.11's triton_op
    infers it even when given one): they must be complete and say what the C++ op's schema says."""
    from inpaint_fast.ops import library
    if library.load_error() is not None:
        pytest.skip(library.load_error())
    names = [op[:-len("_triton")] for op in library._dispatcher_ops() if op.endswith("_triton")]
    if not names:
        pytest.skip("triton is not installed")
    assert len(names) == 7, names  # masked_error(_stats), masked_tv, gram(_backward), style_distance, spectral_l1

    def signature(schema):  # argument names and types, return types (a Python int infers SymInt)
        def kind(t):
            return str(t).replace("SymInt", "int")
        return ([(a.name, kind(a.type)) for a in schema.arguments], [kind(r.type) for r in schema.returns])

    ops = torch.ops.inpaint_fast
    for op in names:
        assert signature(getattr(ops, op + "_triton").default._schema) == signature(getattr(ops, op).default._schema), op


def test_use_backend_is_per_thread():
    """One thread inside use_backend('reference') does not move another thread's ops."""
    import threading
    inside, release, seen = threading.Event(), threading.Event(), {}

    def forcing():
        with IF.use_backend("reference"):
            seen["forcing"] = _backend.forced()
            inside.set()
            release.wait(10)

    def other():
        inside.wait(10)
        seen["other"] = _backend.choose("masked_error", torch.device("cpu"))
        release.set()

    threads = [threading.Thread(target=forcing), threading.Thread(target=other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    default = "cpu" if "cpu" in library.kernels("masked_error") else "reference"  # not forced
    assert seen == {"forcing": "reference", "other": default}


@pytest.mark.parametrize("name,loss", [
    ("masked_l1", lambda p, t, m: IF.masked_l1(p, t, mask=m)),
    ("reconstruction_loss", lambda p, t, m: IF.reconstruction_loss(p, t, mask=m)),
    ("total_variation", lambda p, t, m: IF.total_variation(p, mask=m, region="hole_dilated")),
    ("frequency_loss", lambda p, t, m: IF.frequency_loss(p, t)),
    ("style_loss", lambda p, t, m: IF.style_loss(p, t, extractor=lambda z: [z], mask=m)),
])
def test_torch_func_transforms_run_and_match_autograd(name, loss):
    gen = torch.Generator().manual_seed(0)
    pred, target = (torch.rand(2, 3, 6, 5, generator=gen, dtype=torch.float64) for _ in range(2))
    mask = torch.rand(2, 1, 6, 5, generator=gen) > 0.5
    grad = torch.func.grad(lambda p: loss(p, target, mask))(pred)
    p = pred.clone().requires_grad_()
    loss(p, target, mask).backward()
    torch.testing.assert_close(grad, p.grad)
    batched = torch.func.vmap(lambda p: loss(p, target[:1], mask[:1]))(pred[:, None])
    expected = torch.stack([loss(pred[i:i + 1], target[:1], mask[:1]) for i in range(2)])
    torch.testing.assert_close(batched, expected)
