"""Smoke run of examples/train_gan_inpainter.py (a few steps)."""
import importlib.util
import math
import pathlib

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "train_gan_inpainter.py"


def test_train_gan_inpainter_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_gan_inpainter", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    history = module.main(["--steps", "4", "--batch", "2", "--size", "32", "--r1-interval", "2",
                           "--out", str(tmp_path)])
    assert len(history) == 4
    assert all(math.isfinite(v) for h in history for v in h.values())
    assert all(h["rec"] > 0 and h["d_real"] >= 0 and h["d_fake"] >= 0 for h in history)
    # lazy R1: computed (positive) on D steps 1 and 3, skipped (exactly 0) on steps 2 and 4
    assert [h["r1"] > 0 for h in history] == [True, False, True, False]
    assert (tmp_path / "train_gan_inpainter.png").is_file()
    lines = capsys.readouterr().out.splitlines()
    # every column is named in the header row, and the legend says what the numbers are
    assert lines[-6].split() == ["step", "rec", "g_adv", "d_real", "d_fake", "r1"]
    assert any("mean over the last 20 steps" in line for line in lines[:-6])
    assert [line.split()[0] for line in lines[-5:-1]] == ["1", "2", "3", "4"]
    assert lines[-1].startswith("done: 4 steps in ") and lines[-1].split("wrote ")[1].startswith(
        str(tmp_path / "train_gan_inpainter.png"))
