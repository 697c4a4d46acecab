"""Triton kernels, one module per fused op (inpaint_fast.triton.<op>); none yet."""
