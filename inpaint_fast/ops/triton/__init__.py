"""Triton kernels, one module per fused op (``inpaint_fast.ops.triton.<op>``), registered as ops by
``inpaint_fast/ops/<op>.py``."""
