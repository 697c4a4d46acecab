"""The command line: ``python -m inpaint_fast demo | info``."""
from __future__ import annotations

import argparse
import operator
import platform
import sys
from typing import List, Optional, Tuple

import torch


def supported_torch() -> Optional[Tuple[str, bool]]:
    """(the torch requirement this install declares, e.g. 'torch<2.15,>=2.11'; whether the running
    torch meets it), from the package metadata (pyproject.toml); None when not installed."""
    import importlib.metadata
    from torch.torch_version import TorchVersion
    try:
        requires = importlib.metadata.requires("inpaint-fast") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    spec = next((r for r in requires if r.startswith("torch") and r[5:6] in "<>=!~"), None)
    if spec is None:
        return None
    compare = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt,
               "<": operator.lt}  # two-character operators first: ">=" before ">"
    running = TorchVersion(torch.__version__.split("+")[0])
    ok = True
    for clause in spec[5:].split(","):
        op = next((o for o in compare if clause.startswith(o)), None)
        ok = ok and op is not None and compare[op](running, clause[len(op):].strip())
    return spec, ok


def info(print_fn=print) -> None:
    """Versions, the extension, and which backend runs each fused op on each device."""
    from . import __version__
    from .ops import backend as _backend
    from .ops import library, output_cache

    print_fn(f"inpaint_fast {__version__}")
    try:
        import triton
        triton_version = triton.__version__
    except Exception:  # not installed, or broken
        triton_version = "not installed"
    print_fn(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
             f"triton {triton_version}, {torch.get_num_threads()} CPU threads, "
             f"OpenMP {torch.backends.openmp.is_available()}")
    supported = supported_torch()
    if supported is not None:
        print_fn(f"supported: {supported[0]} ({'met' if supported[1] else 'NOT met: untested, may fail to build or run'})")
    print_fn(f"GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    ext = library.load_error()
    print_fn(f"extension inpaint_fast._C: {'built, version ' + str(library.version()) if ext is None else 'not available (' + ext + ')'}")
    if ext is None:
        print_fn(f"CPU instruction set of the kernels: {torch.ops.inpaint_fast.cpu_capability()} "
                 "(capped by ATEN_CPU_CAPABILITY)")
        cache = output_cache.stats()
        limit = f"up to {cache['limit_bytes'] >> 20} MiB idle" if cache["limit_bytes"] else "off"
        print_fn(f"CPU output cache ({output_cache.ENV}): {limit}, {cache['cached_bytes'] >> 20} MiB cached now")
    print_fn("backends:")
    for name, reason in _backend.availability().items():
        print_fn(f"  {name:9s} {'available' if reason is None else 'unavailable: ' + reason}")
    print_fn("fused ops (kernels built; the backend chosen by default per device):")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for op in _backend.FUSED_OPS:
        chosen = ", ".join(f"{d} -> {_backend.choose(op, torch.device(d))}" for d in devices)
        print_fn(f"  {op:20s} kernels: {', '.join(sorted(library.kernels(op))) or 'none'}; {chosen}")


DESCRIPTION = """\
inpaint_fast: the loss functions of image inpainting (masked L1/L2, perceptual, style, total
variation, adversarial, frequency, diffusion) for PyTorch, with fused CPU/CUDA/Triton kernels."""

EPILOG = """\
examples:
  python -m inpaint_fast demo                          # scikit-image's chelsea, figures in demo_out/
  python -m inpaint_fast demo --image photo.png --out figs
  python -m inpaint_fast info                          # is the extension built? which kernels run?
  python -m inpaint_fast demo --help                   # the demo's options"""

DEMO_DESCRIPTION = """\
Recomputes the tables of the notebook "Loss Functions for Image Inpainting" on a real photo with a
100x100 box hole: pixel (L1/L2, hole/valid), perceptual, style, total variation, adversarial,
frequency and the composite loss, for the notebook's controlled "predictions" (darkened, noisy,
blurred, corrupted, fake-inpainted). Prints the tables, writes images.png, mask.png and spectra.png
to --out, and ends with "done in N s". Without pretrained VGG16 weights on this machine the feature
terms use untrained VGG16 features (it says so)."""

DEMO_EPILOG = """\
examples:
  python -m inpaint_fast demo
  python -m inpaint_fast demo --image astronaut --out demo_astronaut
  python -m inpaint_fast demo --image my_photo.jpg --vgg-weights ~/weights/vgg16-397923af.pth"""


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m inpaint_fast", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=raw)
    sub = parser.add_subparsers(dest="command", title="commands", metavar="{demo,info}")
    demo = sub.add_parser("demo", help="recompute every loss table of the notebook \"Loss Functions for Image "
                                       "Inpainting\" on a real photo; write figures",
                          description=DEMO_DESCRIPTION, epilog=DEMO_EPILOG, formatter_class=raw)
    demo.add_argument("--image", default="chelsea",
                      help="a scikit-image photo (chelsea, astronaut, coffee) or an image file path "
                           "(default: chelsea)")
    demo.add_argument("--out", default="demo_out", help="directory for the PNG figures (default: demo_out)")
    demo.add_argument("--vgg-weights", default=None, metavar="PATH",
                      help="a torchvision VGG16 state dict (.pth) for the feature terms (default: torchvision's "
                           "cached ImageNet weights when present, else untrained features)")
    sub.add_parser("info", help="versions, whether the compiled extension is built, which backend runs each op",
                   description="Prints the versions of Python, torch and triton, whether the compiled extension "
                               "inpaint_fast._C is built (and if not, why and how to build it), and which backend "
                               "runs each fused op on each device.")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "info":
        info()
        return 0
    from .demo import run
    try:
        run(image=args.image, out=args.out, vgg_weights=args.vgg_weights)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"python -m inpaint_fast demo: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
