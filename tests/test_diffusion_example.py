"""Smoke run of examples/train_diffusion_inpainter.py (a few steps, a short RePaint)."""
import importlib.util
import math
import pathlib

import torch

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "train_diffusion_inpainter.py"


def load():
    spec = importlib.util.spec_from_file_location("train_diffusion_inpainter", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_diffusion_inpainter_smoke(tmp_path, capsys):
    history = load().main(["--steps", "3", "--batch", "2", "--size", "16", "--sample-steps", "4",
                           "--jump-length", "2", "--jump-n-sample", "2", "--out", str(tmp_path)])
    assert len(history) == 3 and all(math.isfinite(v) and v > 0 for v in history)
    assert (tmp_path / "train_diffusion_inpainter.png").is_file()
    lines = capsys.readouterr().out.splitlines()
    # the header row names the column, the legend says what it is; then the rows, RePaint's line, the last line
    assert lines[-6].split() == ["step", "ε-loss"] and "mean over the last 20 steps" in lines[-8]
    assert [line.split()[0] for line in lines[-5:-2]] == ["1", "2", "3"]
    assert lines[-2].startswith("RePaint (4 steps, jump 2 x 2: 6 model calls)")  # 4 + 1 jump x 2 back
    assert lines[-1].startswith("done: 3 steps + 2 RePaint runs in ") and lines[-1].split("wrote ")[1].startswith(
        str(tmp_path / "train_diffusion_inpainter.png"))


def test_train_diffusion_inpainter_loss_falls(tmp_path):
    """A short small run: the ε-loss's mean over the last 10 steps is well below the first 10's."""
    history = load().main(["--steps", "40", "--batch", "4", "--size", "16", "--sample-steps", "2",
                           "--jump-length", "1", "--jump-n-sample", "1", "--out", str(tmp_path)])
    assert sum(history[-10:]) < 0.5 * sum(history[:10])


def test_tiny_eps_model_shapes_and_time_dependence():
    module = load()
    torch.manual_seed(0)
    model = module.TinyEpsModel(num_steps=1000)
    x = torch.randn(2, 3, 16, 16)
    a, b = model(x, torch.tensor([0, 0])), model(x, torch.tensor([999, 999]))
    assert a.shape == x.shape and not torch.allclose(a, b)
