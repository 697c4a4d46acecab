"""Smoke runs of the examples (a few steps each)."""
import importlib.util
import math
import pathlib

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_inpainter_smoke(tmp_path):
    history = load("train_inpainter").main(["--steps", "3", "--batch", "2", "--size", "32", "--features",
                                            "--out", str(tmp_path)])
    assert len(history) == 3 and all(math.isfinite(v) and v > 0 for v in history)
    assert (tmp_path / "train_inpainter.png").is_file()
