"""Build of the compiled extension ``inpaint_fast._C``.

Package metadata lives in pyproject.toml ([project]); this file only declares the extension.
Build it against the torch that will run it:

    pip install --no-build-isolation -e .        # editable: _C*.so is written into inpaint_fast/
    pip install --no-build-isolation .

Sources: csrc/*.cpp, csrc/ops/*.cpp, csrc/ops/autograd/*.cpp and csrc/ops/cpu/*.cpp always; csrc/ops/cuda/*.cu as well
when CUDA is wanted: a CUDA build of torch sees a GPU and nvcc is found via CUDA_HOME, or
FORCE_CUDA=1 (CI compiles them this way on machines without a GPU). FORCE_ONLY_CPU=1 skips CUDA. TORCH_CUDA_ARCH_LIST (e.g. "9.0") picks the GPU
architectures; unset, torch chooses them (the visible GPU, or a long list when there is none,
which makes the build slow). MAX_JOBS limits ninja's parallel compile jobs. DEBUG=1 builds -O0 -g.
"""
import glob
import importlib.util
import os
import re
import shutil


def _fix_cuda_home() -> None:
    """torch guesses CUDA_HOME as the parent of the nvcc on PATH; when that nvcc is a wrapper
    script (e.g. /usr/local/bin/nvcc -> CUDA_HOME=/usr/local) the guess has no CUDA headers.
    Without CUDA_HOME/CUDA_PATH set, prefer /usr/local/cuda then. Must run before torch's
    cpp_extension module is imported (it reads CUDA_HOME once)."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    guess = os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None
    if guess and os.path.exists(os.path.join(guess, "include", "cuda_runtime.h")):
        return
    if os.path.exists("/usr/local/cuda/include/cuda_runtime.h"):
        os.environ["CUDA_HOME"] = "/usr/local/cuda"


_fix_cuda_home()

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = "csrc"  # relative paths: setuptools wants them relative to setup.py
CXX_STANDARD = "-std=c++20"  # g++ >= 10, nvcc >= 12; CMakeLists.txt sets the same (csrc/common/standard.h checks it)


def read_version() -> str:
    """The single source of the version: ``__version__`` in inpaint_fast/__init__.py."""
    with open(os.path.join(ROOT, "inpaint_fast", "__init__.py"), encoding="utf-8") as f:
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read(), re.M)
    if match is None:
        raise RuntimeError("inpaint_fast/__init__.py must define __version__ = \"X.Y.Z\"")
    return match.group(1)


def sources(*patterns: str) -> list:
    """Files under csrc/ matching the patterns, as paths relative to the project root."""
    return sorted(path for pattern in patterns
                  for path in glob.glob(os.path.join(CSRC, pattern), root_dir=ROOT))


def want_cuda(cuda_sources: list) -> bool:
    """As torchvision decides: CUDA kernels when a GPU is visible to a CUDA build of torch and nvcc is
    found, or when FORCE_CUDA=1 (building on a machine without a GPU, e.g. CI or a wheel builder)."""
    if os.environ.get("FORCE_ONLY_CPU") == "1" or not cuda_sources:
        return False
    if os.environ.get("FORCE_CUDA") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None and torch.cuda.is_available()


def cuda_library_includes() -> list:
    """ATen's CUDA headers include cuBLAS/cuSPARSE/cuSOLVER headers. A toolkit with only nvcc and
    cudart lacks them; the nvidia-* wheels that a CUDA torch depends on ship them: add those."""
    if CUDA_HOME and os.path.exists(os.path.join(CUDA_HOME, "include", "cusparse.h")):
        return []
    try:
        spec = importlib.util.find_spec("nvidia")
    except ImportError:
        return []
    if spec is None or not spec.submodule_search_locations or not torch.version.cuda:
        return []
    major = torch.version.cuda.split(".")[0]
    bases = list(spec.submodule_search_locations)
    found = [os.path.join(b, f"cu{major}", "include") for b in bases]  # CUDA >= 13: one folder
    found = [d for d in found if os.path.isdir(d)]
    if not found:  # CUDA 12 wheels: nvidia/<library>/include
        found = [os.path.join(b, lib, "include") for b in bases for lib in ("cublas", "cusparse", "cusolver")]
        found = [d for d in found if os.path.isdir(d)]
    return found


def extensions() -> list:
    cpp_sources = sources("*.cpp", os.path.join("common", "*.cpp"), os.path.join("ops", "*.cpp"),
                          os.path.join("ops", "autograd", "*.cpp"),
                          os.path.join("ops", "cpu", "*.cpp"))
    cuda_sources = sources(os.path.join("ops", "cuda", "*.cu"))
    use_cuda = want_cuda(cuda_sources)
    debug = os.environ.get("DEBUG") == "1"

    # The C++ standard is ours, host and nvcc alike: torch's default differs by release (c++17 in
    # 2.11, c++20 in 2.14), and BuildExtension adds its own only where none is given.
    cxx = [CXX_STANDARD] + (["-O0", "-g"] if debug else ["-O3"])
    # Stringified in init.cpp: INPAINT_FAST_VERSION=0.1.0 -> "0.1.0" (no shell quoting needed).
    cxx += ["-DINPAINT_FAST_VERSION=" + read_version(), "-DINPAINT_FAST_TORCH_VERSION=" + torch.__version__]
    link = []
    if torch.backends.openmp.is_available():
        # at::parallel_for is a header template: without -fopenmp it runs on one thread.
        cxx.append("-fopenmp")
        link.append("-fopenmp")
    nvcc = [CXX_STANDARD] + (["-O0", "-g", "-G"] if debug else ["-O3", "-lineinfo"])
    nvcc += ["-DINPAINT_FAST_VERSION=" + read_version(), "--expt-relaxed-constexpr"]

    kwargs = dict(
        name="inpaint_fast._C",
        sources=cpp_sources + (cuda_sources if use_cuda else []),
        include_dirs=[os.path.join(ROOT, CSRC)],
        extra_compile_args={"cxx": cxx, "nvcc": nvcc} if use_cuda else {"cxx": cxx},
        extra_link_args=link,
        # _C has no Python API of its own: one abi3 binary for every CPython >= 3.10 (torch then
        # defines Py_LIMITED_API itself and does not link libtorch_python).
        py_limited_api=True,
    )
    if use_cuda:
        kwargs["define_macros"] = [("INPAINT_FAST_WITH_CUDA", "1")]
        kwargs["include_dirs"] += cuda_library_includes()
        return [CUDAExtension(**kwargs)]
    return [CppExtension(**kwargs)]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
