"""The Triton kernels' GPU path without a GPU: compiled ahead of time for sm_90 (the H100/H200), and the
triton_ops traced as torch.compile traces them. Triton's interpreter (what the other tests run here)
never calls Triton's compiler nor torch's triton_op tracing, so both run in a fresh interpreter without
TRITON_INTERPRET: ``run_script(code)`` from a test, with ``from tests.triton_aot import *`` in ``code``.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(code: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter at the repository root, without TRITON_INTERPRET."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def require_sm90() -> None:
    """Skips the calling test unless triton and its NVIDIA backend (the sm_90 compiler) import here."""
    import pytest
    pytest.importorskip("triton")
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.backends.nvidia.compiler import get_ptxas  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"triton without its NVIDIA backend: {exc}")


def compile_sm90(fn, types: dict, constexprs: dict, divisible_by_16=(), num_warps: int = 4, num_stages: int = 3):
    """Compiles the @triton.jit ``fn`` for sm_90: ``types`` maps argument names to Triton types ('*fp32',
    '*i1', 'i64', ...; unnamed ones are 'i32'), ``constexprs`` the constexpr arguments, and the
    arguments in ``divisible_by_16`` are specialised as a launch specialises aligned ones."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    names = fn.arg_names
    signature = {n: "constexpr" if n in constexprs else types.get(n, "i32") for n in names}
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in divisible_by_16 if n in names and n not in constexprs}
    src = ASTSource(fn=fn, signature=signature, constexprs={(names.index(k),): v for k, v in constexprs.items()},
                    attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": num_warps, "num_stages": num_stages})


def aot_forward_graph(fn, *args) -> str:
    """The forward graph (code) that AOTAutograd makes of ``fn(*args)`` (CPU tensors), as torch.compile
    sees it: triton_ops decompose into triton_kernel_wrapper_functional calls. A stub driver gives
    Triton an sm_90 target (torch analyses the kernels' TTIR); nothing is launched."""
    import torch
    import triton
    from torch._functorch.aot_autograd import aot_function
    from triton.backends.compiler import GPUTarget

    class StubDriver:
        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

        def get_active_torch_device(self):
            return torch.device("cpu")

    class Captured(BaseException):
        pass

    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm.code)
        raise Captured  # stop before running: the kernels cannot run here

    triton.runtime.driver.set_active(StubDriver())  # for the rest of the process: no real driver to go back to
    try:
        aot_function(fn, fw_compiler=capture)(*args)
    except Captured:
        pass
    return graphs[0]
