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
    out = capsys.readouterr().out
    assert "step    3" in out and "RePaint (4 steps, jump 2 x 2: 6 model calls)" in out  # 4 + 1 jump x 2 back


def test_tiny_eps_model_shapes_and_time_dependence():
    module = load()
    torch.manual_seed(0)
    model = module.TinyEpsModel(num_steps=1000)
    x = torch.randn(2, 3, 16, 16)
    a, b = model(x, torch.tensor([0, 0])), model(x, torch.tensor([999, 999]))
    assert a.shape == x.shape and not torch.allclose(a, b)
