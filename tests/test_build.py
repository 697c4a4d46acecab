"""Build checks: the extension reports the package version, and CMakeLists.txt builds the csrc/
sources against libtorch (the C++/IDE build that must not rot next to setup.py)."""
import glob
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

import inpaint_fast
from inpaint_fast.ops import library

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(library.load_error() is not None, reason=str(library.load_error()))
def test_extension_version_is_package_version():
    # setup.py passes __version__ of inpaint_fast/__init__.py to the C++ build; a mismatch means the
    # built _C is stale (rebuild with pip install --no-build-isolation -e .).
    assert library.version() == inpaint_fast.__version__


# Run in a fresh interpreter: loading a second library that defines the inpaint_fast namespace into
# a process that imported inpaint_fast._C would clash. The oracle is reference/pixel.py, loaded by
# path so that the package (and its _C) is not imported.
_CHECK_LIBRARY = textwrap.dedent("""
    import importlib.util, sys
    import torch
    torch.ops.load_library(sys.argv[1])
    spec = importlib.util.spec_from_file_location("pixel", sys.argv[2])
    pixel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pixel)
    assert torch.ops.inpaint_fast.version() == sys.argv[3], torch.ops.inpaint_fast.version()
    g = torch.Generator().manual_seed(0)
    p, t = torch.randn(2, 3, 40, 50, generator=g), torch.randn(2, 3, 40, 50, generator=g)
    w = torch.rand(2, 1, 40, 50, generator=g)
    sums = torch.ops.inpaint_fast.masked_error_stats(p, t, w, False)
    p, t, w = p.double(), t.double(), w.double()
    expected = torch.stack([pixel.l1(p, t, 1 - w, reduction="sum"), pixel.l1(p, t, w, reduction="sum"),
                            pixel.l2(p, t, 1 - w, reduction="sum"), pixel.l2(p, t, w, reduction="sum"),
                            (1 - w).expand_as(p).sum(), w.expand_as(p).sum()])
    torch.testing.assert_close(sums.double(), expected, rtol=1e-5, atol=1e-5)
    print("ok")
""")


@pytest.mark.build
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not on PATH")
def test_cmake_builds_the_cpu_library(tmp_path):
    """CMakeLists.txt configures and builds libinpaint_fast (CPU kernels, no Python) against the
    installed torch, and the built library registers working ops (~30 s on 2 cores)."""
    build = tmp_path / "build"
    configure = ["cmake", "-S", ROOT, "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    for cmd in (configure, ["cmake", "--build", str(build), "--parallel", str(os.cpu_count() or 1)]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    library = build / "libinpaint_fast.so"
    assert library.exists(), sorted(p.name for p in build.iterdir())
    done = subprocess.run(
        [sys.executable, "-c", _CHECK_LIBRARY, str(library),
         os.path.join(ROOT, "inpaint_fast", "reference", "pixel.py"), inpaint_fast.__version__],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr


@pytest.mark.skipif(os.environ.get("FORCE_CUDA") != "1",
                    reason="the CUDA sources are compiled only when a GPU is visible or FORCE_CUDA=1 (CI sets it)")
def test_cuda_kernels_are_compiled_in():
    """CI installs with FORCE_CUDA=1: every csrc/ops/cuda/<op>_kernel.cu must then be in the extension
    (a compile error fails the install; this catches a build that silently left CUDA out)."""
    assert library.load_error() is None, library.load_error()
    sources = sorted(os.path.basename(f)[:-len("_kernel.cu")]
                     for f in glob.glob(os.path.join(ROOT, "csrc", "ops", "cuda", "*_kernel.cu")))
    assert sources, "FORCE_CUDA=1 but csrc/ops/cuda has no kernels"
    for op in sources:  # the op named after the file, or its in-place form (scale_grad_kernel.cu: scale_grad_)
        backends = library.kernels(op) | library.kernels(op + "_")
        assert "cuda" in backends, f"{op}: no CUDA kernel registered; kernels: {library.kernels(op)}"


def _bash_blocks(path):
    return re.findall(r"```bash\n(.*?)\n```", open(path, encoding="utf-8").read(), re.S)


def test_ci_runs_the_readme_test_command():
    """README opens with two commands (demo, tests); .ci/run runs the second unchanged."""
    commands = _bash_blocks(os.path.join(ROOT, "README.md"))[:2]
    assert "python -m inpaint_fast demo" in commands[0] and "pytest" in commands[1]
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read().strip().splitlines()[-1]
    assert ci == commands[1]


def test_one_supported_torch_range():
    """pyproject.toml and requirements.txt declare the same range (no pin a user's install would
    obey), requirements-dev.txt and requirements-oldest.txt pin its two ends, and this torch is in it."""
    def lines(name):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]

    pyproject = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    declared = re.search(r'^dependencies = \[(.*)\]', pyproject, re.M).group(1)
    torch_range = re.search(r'"(torch[<>=!~][^"]*)"', declared).group(1)
    vision_range = re.search(r'"(torchvision[^"]*)"', declared).group(1)
    assert torch_range in lines("requirements.txt") and vision_range in lines("requirements.txt")
    assert not any(line.startswith(("torch==", "torchvision==")) for line in lines("requirements.txt"))
    newest = [line for line in lines("requirements-dev.txt") if line.startswith("torch==")]
    oldest = [line for line in lines("requirements-oldest.txt") if line.startswith("torch==")]
    assert newest and oldest
    from torch.torch_version import TorchVersion
    low, high = re.search(r">=([\d.]+)", torch_range).group(1), re.search(r"<([\d.]+)", torch_range).group(1)
    for pin in (newest[0], oldest[0]):
        assert low <= TorchVersion(pin[len("torch=="):]) < high, (pin, torch_range)
    assert oldest[0] == f"torch=={low}.0"
    assert low <= TorchVersion(torch.__version__.split("+")[0]) < high
