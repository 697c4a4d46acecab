"""``python -m inpaint_fast info`` and ``demo`` (on an image file)."""
import subprocess
import sys

import pytest

from inpaint_fast import __version__
from inpaint_fast.cli import main


def test_info_lists_versions_and_backends():
    out = subprocess.run([sys.executable, "-m", "inpaint_fast", "info"], capture_output=True, text=True, check=True).stdout
    assert f"inpaint_fast {__version__}" in out
    assert "reference available" in out
    assert "masked_error" in out


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
