"""``python -m inpaint_fast info`` and ``demo`` (on an image file)."""
import subprocess
import sys

import pytest

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
    with pytest.raises(SystemExit) as e:
        main(["demo", "--image", "no_such_photo", "--out", "unused"])
    assert e.value.code == 2
    assert "image must be one of" in capsys.readouterr().err
