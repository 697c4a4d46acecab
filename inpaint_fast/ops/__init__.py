"""The fused ops (docs/ARCHITECTURE.md): ``backend`` chooses the implementation of a call, ``library``
loads the compiled kernels, ``<op>`` holds each op's checks, layout rule, fake kernel, autograd and
Triton op (kernels in ``triton/<op>``), ``scale_grad`` the backward they share."""
