"""The Triton GPU path of masked_error and masked_tv without a GPU (tests/triton_aot.py): the kernels
compile for sm_90 in the variants the launchers use, bool masks and 64-bit offsets included, and
torch.compile's trace of the triton_ops passes a bool mask on as it is (Inductor in torch 2.11 cannot
lower the bool -> uint8 view the launchers used to make)."""
import pytest

from tests.triton_aot import run_script, sm90_available

pytestmark = pytest.mark.skipif(bool(sm90_available()), reason=sm90_available() or "triton is not installed")

_MASKED_TV_SM90 = r"""
from tests.triton_aot import compile_sm90
from inpaint_fast.triton import masked_tv as k

DIV16 = ("x_ptr", "m_ptr", "g_ptr", "part_ptr", "scale_ptr")
for img, mask, region, per_c, p, grad in (("fp32", "i1", 3, False, 1, True), ("bf16", "u8", 2, True, 2, True),
                                           ("fp16", "fp16", 1, False, 1, False), ("fp64", "i1", 0, False, 2, True)):
    f64 = img == "fp64"
    compile_sm90(k._tv_kernel, dict(x_ptr="*" + img, m_ptr="*" + mask, g_ptr="*" + img, part_ptr="*fp64",
                                    scale_ptr="*fp64", xsn="i64"),
                 dict(REGION=region, MASK_IS_HOLE=False, MASK_PER_C=per_c, P=p, COMPUTE_GRAD=grad, F64=f64,
                      BLOCK_H=4, BLOCK_W=128), DIV16)
    if region:
        compile_sm90(k._area_kernel, dict(m_ptr="*" + mask, part_ptr="*fp64"),
                     dict(REGION=region, MASK_IS_HOLE=True, F64=f64, BLOCK_H=4, BLOCK_W=128), DIV16)
print("sm90 ok")
"""


def test_masked_tv_kernels_compile_for_sm90():
    done = run_script(_MASKED_TV_SM90)
    assert done.returncode == 0 and "sm90 ok" in done.stdout, done.stderr[-3000:]


_BOOL_MASK_GRAPHS = r"""
import json
import torch
import inpaint_fast  # noqa: F401  (registers the ops: triton_op, since nothing is interpreted)
from tests.triton_aot import aot_forward_graph, compile_sm90
from inpaint_fast.triton import masked_error as me

ops = torch.ops.inpaint_fast
p, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
m = torch.rand(2, 1, 4, 5) > 0.5
graphs = {
    "masked_error": aot_forward_graph(lambda p, t, m: ops.masked_error_triton(p, t, m, False, 0, 1e-3, 6.0, 1.0, 1,
                                                                              1e-8, True), p, t, m),
    "masked_error_stats": aot_forward_graph(lambda p, t, m: ops.masked_error_stats_triton(p, t, m, True), p, t, m),
    "masked_tv": aot_forward_graph(lambda p, m: ops.masked_tv_triton(p, m, False, 3, 1, 1, 1e-8, True), p, m),
}
# The main and area kernels with a bool (i1) mask, as the launchers now pass it, with 64-bit indexing.
for channels_last in (False, True):
    consts = dict(LOSS=0, HAS_MASK=True, MASK_BCAST_C=True, GRAD=True, COEF_PTR=True, CHANNELS_LAST=channels_last,
                  STATS=False, F64=False, I64=True, BLOCK_C=1 if channels_last else 4, BLOCK=512, TILES=8,
                  C_CL=3 if channels_last else 1)
    compile_sm90(me._main_kernel, dict(p_ptr="*fp32", t_ptr="*fp32", m_ptr="*i1", g_ptr="*fp32", part_ptr="*fp32",
                                       coef_ptr="*fp64", m_a="fp64", m_b="fp64", k_hole_in="fp64",
                                       k_valid_in="fp64", ceps2_in="fp64", HW="i64"), consts, num_warps=8)
compile_sm90(me._mask_sum_kernel, dict(m_ptr="*i1", part_ptr="*fp32", HW="i64"), dict(I64=True, BLOCK=4096, TILES=8))
print(json.dumps(graphs))
"""


def test_bool_masks_reach_the_kernels_as_they_are():
    import json
    done = run_script(_BOOL_MASK_GRAPHS)
    assert done.returncode == 0, done.stderr[-3000:]
    graphs = json.loads(done.stdout.strip().splitlines()[-1])
    for op, code in graphs.items():
        assert "triton_kernel_wrapper_functional" in code, (op, code)
        # the mask (the last graph input) goes to the kernels unconverted: no view, no copy of it
        assert "view.dtype" not in code and "_to_copy.default(arg2_1" not in code, (op, code)
        assert "'m_ptr': arg2_1" in code or "'m_ptr': arg1_1" in code, (op, code)
