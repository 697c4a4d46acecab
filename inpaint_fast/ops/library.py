"""Loads the compiled extension ``inpaint_fast._C`` when it is built and reports what it provides.

Importing ``_C`` runs the C++ operator registrations (``torch.ops.inpaint_fast.*``). A failed import
is not an error here: the package then runs the pure-PyTorch reference, and :func:`load_error` says
why. Which backends have a kernel for each op is computed once, at import, into a plain dict, so
that :func:`kernels` is a dict lookup that ``torch.compile`` traces without a graph break.
"""
from __future__ import annotations

import functools
import glob
import importlib.util
import os
import pkgutil
import re
from typing import Callable, Dict, FrozenSet, List, Optional

import torch

from .output_cache import check_env as check_output_cache_env

NAMESPACE = "inpaint_fast"
BUILD_COMMAND = "pip install --no-build-isolation -e .  (from the repository root; ~5 min on 2 cores)"
_MARKER = re.compile(rb"inpaint_fast built with torch ([0-9A-Za-z.+_-]+)")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def built_with_torch(path: str) -> Optional[str]:
    """The torch version a built ``_C`` library was compiled against (the marker csrc/init.cpp embeds),
    read from the file without loading it; None when the file has no marker."""
    try:
        with open(path, "rb") as f:
            found = _MARKER.search(f.read())
    except OSError:
        return None
    return None if found is None or found.group(1) == b"unknown" else found.group(1).decode()


def describe_load_error(error: BaseException, libraries: List[str], running_torch: str) -> str:
    """Why ``inpaint_fast._C`` did not load, in the user's terms: not built, built for another torch
    (both versions named), or another load error; always with the command that builds it."""
    if not libraries:
        return (f"not built: there is no compiled inpaint_fast._C in {PACKAGE_DIR}, so the pure-PyTorch "
                f"reference runs everywhere. Build it with: {BUILD_COMMAND}")
    built = built_with_torch(libraries[0])
    if built is not None and built != running_torch:
        return (f"built for another torch: {os.path.basename(libraries[0])} was built with torch {built}, this is "
                f"torch {running_torch}. Rebuild it with: {BUILD_COMMAND}  (the error: {error})")
    return f"could not be loaded ({libraries[0]}): {error}. Rebuild it with: {BUILD_COMMAND}"


check_output_cache_env()
_LOAD_ERROR: Optional[str]
try:
    from .. import _C  # noqa: F401  (loading the library registers the ops)
except ImportError as exc:  # not built, built for another torch, missing symbols ...
    _LOAD_ERROR = describe_load_error(exc, sorted(glob.glob(os.path.join(PACKAGE_DIR, "_C.*"))), torch.__version__)
else:
    _LOAD_ERROR = None


def _dispatcher_ops() -> list:
    """Names (without namespace and overload) of the inpaint_fast ops the dispatcher knows."""
    prefix = NAMESPACE + "::"
    names = set()
    for qualname in torch._C._dispatch_get_all_op_names():
        if qualname.startswith(prefix):
            names.add(qualname[len(prefix):].split(".", 1)[0])
    return sorted(names)


def _triton_ops() -> list:
    """Modules ``inpaint_fast.ops.triton.<op>`` (public names only), without importing them."""
    try:
        spec = importlib.util.find_spec(f"{NAMESPACE}.ops.triton")
    except ImportError:
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)
                  if not m.name.startswith("_"))


def triton_imports() -> bool:
    """Whether ``import triton`` works here."""
    try:
        import triton  # noqa: F401
    except Exception:  # ImportError, or a broken install raising anything else
        return False
    return True


def _kernel_table() -> Dict[str, FrozenSet[str]]:
    table: Dict[str, set] = {}
    if _LOAD_ERROR is None:
        for op in _dispatcher_ops():
            qualname = f"{NAMESPACE}::{op}"
            backends = table.setdefault(op, set())
            for backend, key in (("cpu", "CPU"), ("cuda", "CUDA")):
                if torch._C._dispatch_has_kernel_for_dispatch_key(qualname, key):
                    backends.add(backend)
    triton_ops = _triton_ops()
    if triton_ops and triton_imports():  # triton is imported only when we have triton kernels
        for op in triton_ops:
            table.setdefault(op, set()).add("triton")
    return {op: frozenset(backends) for op, backends in table.items()}


_KERNELS: Dict[str, FrozenSet[str]] = _kernel_table()
_NO_KERNELS: FrozenSet[str] = frozenset()
_HAS_CUDA_KERNELS: bool = any("cuda" in backends for backends in _KERNELS.values())


def load_error() -> Optional[str]:
    """None when the extension is loaded, else why it is not."""
    return _LOAD_ERROR


def version() -> Optional[str]:
    """The version the extension was built as (``inpaint_fast::version``), None when not loaded."""
    if _LOAD_ERROR is not None:
        return None
    return torch.ops.inpaint_fast.version()


def has_cuda_kernels() -> bool:
    """Whether the extension was built with CUDA kernels (any inpaint_fast op has one)."""
    return _HAS_CUDA_KERNELS


def kernels(op: str) -> FrozenSet[str]:
    """The backends among 'cpu', 'cuda', 'triton' that have a kernel for ``op`` (e.g.
    'masked_error'); empty when none. A plain dict lookup (torch.compile-friendly)."""
    return _KERNELS.get(op, _NO_KERNELS)


def register(op: str, fake: Callable, backward: Optional[Callable] = None,
             setup_context: Optional[Callable] = None) -> None:
    """Registers the fake kernel (and, when given, the autograd) of ``op``; ``fake`` and
    ``setup_context`` receive the op's name as ``op=``, so that one set serves an op and its Triton
    twin (``<op>_triton``). Called from the op's module: torch checks that the fake kernel is
    registered there (the C++ schema's ``set_python_module``), so its frame is the one named."""
    torch.library.register_fake(op, functools.partial(fake, op=op), _stacklevel=2)
    if backward is not None:
        torch.library.register_autograd(op, backward, setup_context=functools.partial(setup_context, op=op))
