"""torch.library glue of the fused ops: one module per op (fake kernel, autograd, Python entry)."""
