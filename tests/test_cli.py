"""``python -m inpaint_fast info`` and ``demo`` (on an image file), the help, and how a missing or
broken extension is reported."""
import os
import shutil
import subprocess
import sys

import pytest

import inpaint_fast
from inpaint_fast import __version__
from inpaint_fast.cli import main, supported_torch


def test_info_lists_versions_and_backends():
    out = subprocess.run([sys.executable, "-m", "inpaint_fast", "info"], capture_output=True, text=True, check=True).stdout
    assert f"inpaint_fast {__version__}" in out
    assert "reference available" in out
    assert "masked_error" in out
    assert "triton " in out
    if supported_torch() is not None:  # installed (not only built in place): CI runs a supported torch
        assert f"supported: {supported_torch()[0]} (met)" in out


def test_supported_torch_reads_the_declared_range(monkeypatch):
    import importlib.metadata

    import torch

    if supported_torch() is None:
        pytest.skip("inpaint-fast is not installed (built in place): no package metadata")
    spec, ok = supported_torch()
    assert spec.startswith("torch") and ">=2.11" in spec and ok
    monkeypatch.setattr(importlib.metadata, "requires", lambda name: ["torch<2.11,>=2.0", "numpy"])
    assert supported_torch() == ("torch<2.11,>=2.0", False)
    monkeypatch.setattr(torch, "__version__", "2.10.0+cpu")
    assert supported_torch() == ("torch<2.11,>=2.0", True)


def test_demo_on_an_image_file(tmp_path, capsys):
    import skimage.data
    from PIL import Image
    path = tmp_path / "photo.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    assert main(["demo", "--image", str(path), "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert "Composite" in out and "(1, 3, 256, 256)" in out
    assert (tmp_path / "figs" / "spectra.png").is_file()


def test_demo_rejects_an_unknown_image(capsys):
    assert main(["demo", "--image", "no_such_photo", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: image must be one of" in err  # one line, no traceback


def test_bare_command_and_help_describe_the_commands():
    run = [sys.executable, "-m", "inpaint_fast"]
    bare = subprocess.run(run, capture_output=True, text=True)
    assert bare.returncode == 0 and "usage: python -m inpaint_fast" in bare.stdout and not bare.stderr
    assert "demo" in bare.stdout and "info" in bare.stdout and "examples:" in bare.stdout
    demo = subprocess.run(run + ["demo", "--help"], capture_output=True, text=True, check=True).stdout
    assert "Loss Functions for Image Inpainting" in demo and "--vgg-weights PATH" in demo and "examples:" in demo


def test_a_missing_extension_is_reported_as_not_built(tmp_path):
    """A package without its compiled _C (a fresh clone, not built) says so and how to build it, in
    ``info`` and when a fused backend is asked for; never "circular import"."""
    package = tmp_path / "inpaint_fast"
    shutil.copytree(os.path.dirname(inpaint_fast.__file__), package,
                    ignore=shutil.ignore_patterns("_C.*", "__pycache__"))
    # An editable install's import hook (on sys.meta_path) would load the repository's _C for the copy.
    script = ("import sys\n"
              "sys.meta_path = [f for f in sys.meta_path\n"
              "                 if not getattr(f, '__module__', '').startswith('__editable__')]\n"
              "import inpaint_fast, inpaint_fast.cli as c; c.info()\n"
              "try:\n    inpaint_fast.use_backend('cpu').__enter__()\nexcept RuntimeError as e:\n    print('ERR', e)")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         check=True).stdout
    assert "not built" in out and "pip install --no-build-isolation -e ." in out
    assert "ERR backend 'cpu' is not available here: not built" in out
    assert "circular import" not in out


def test_load_errors_name_the_torch_the_library_was_built_with(tmp_path):
    from inpaint_fast.ops.library import built_with_torch, describe_load_error
    library = tmp_path / "_C.abi3.so"
    library.write_bytes(b"\x7fELF...\0inpaint_fast built with torch 2.11.0+cu130\0...")
    assert built_with_torch(str(library)) == "2.11.0+cu130"
    error = ImportError("undefined symbol: _ZN3c10xyz")
    message = describe_load_error(error, [str(library)], "2.14.1+cu130")
    assert message.startswith("built for another torch") and "2.11.0+cu130" in message and "2.14.1+cu130" in message
    assert "undefined symbol" in message and "pip install --no-build-isolation -e ." in message
    other = describe_load_error(error, [str(library)], "2.11.0+cu130")  # the same torch: another load error
    assert other.startswith("could not be loaded") and "undefined symbol" in other
