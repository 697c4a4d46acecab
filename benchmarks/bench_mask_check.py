"""Cost of the [0, 1] check of a floating mask (``inpaint_fast._validation.check_mask_values``), as a
fraction of the loss that runs it.

Every public masked loss checks a floating mask's values once per call: one ``torch.aminmax`` over the
mask, then a ValueError on CPU or ``torch._assert_async`` on a GPU (no host sync). This times, in one
process and interleaved, the check alone and ``reconstruction_loss`` (which includes it) with a float
(N, 1, H, W) mask, forward only and forward + backward, on the default backend of the device, and prints
the check's time over each loss time (median of the samples; p20-p80 in brackets).

Run from the repository root: ``python benchmarks/bench_mask_check.py`` (``--device cuda`` on a GPU).
Repeat it in fresh processes: ratios of one process can swing on a busy machine.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contenders  # noqa: E402  (through records, also puts the repository root on sys.path)
import measure  # noqa: E402
import records  # noqa: E402

import torch  # noqa: E402

import inpaint_fast  # noqa: E402
from inpaint_fast import _validation  # noqa: E402

CPU_SHAPES = [(16, 3, 256, 256), (16, 3, 512, 512)]
GPU_SHAPES = [(16, 3, 1024, 1024)]
QUICK_SHAPES = [(2, 3, 16, 16)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run at a tiny shape")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {records.device_name(device)}, torch {torch.__version__}, float32, float (N,1,H,W) box mask")
    shapes = QUICK_SHAPES if args.quick else GPU_SHAPES if device.type == "cuda" else CPU_SHAPES
    for shape in shapes:
        gen = torch.Generator().manual_seed(0)
        pred = torch.rand(shape, generator=gen).to(device).requires_grad_()
        target = torch.rand(shape, generator=gen).to(device)
        mask = contenders.box_mask(shape[0], shape[2], shape[3], torch.float32, device)

        def forward():
            with torch.no_grad():
                return inpaint_fast.reconstruction_loss(pred, target, mask=mask)

        def full():
            pred.grad = None
            inpaint_fast.reconstruction_loss(pred, target, mask=mask).backward()

        cases = {"check": measure.Case(lambda: _validation.check_mask_values(mask, "mask")),
                 "forward": measure.Case(forward), "full": measure.Case(full)}
        t = measure.time_cases(cases, device=device, warmup=args.warmup, repeats=args.repeats)
        check = t["check"]
        for mode in ("forward", "full"):
            loss = t[mode]
            print(f"{records.shape_str(shape)} {mode:8s} check {check.median_ms:.3f} ms / loss {loss.median_ms:.3f} ms"
                  f" = {check.median_ms / loss.median_ms:.1%}"
                  f" [{check.p20_ms / loss.p80_ms:.1%}-{check.p80_ms / loss.p20_ms:.1%}]")


if __name__ == "__main__":
    main()
