"""The examples' docstrings against their command lines; runs of examples/train_inpainter.py (a few steps
with every term, and a short run whose loss falls)."""
import argparse
import importlib.util
import math
import pathlib
import re
import shlex

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_inpainter_smoke(tmp_path, capsys):
    history = load("train_inpainter").main(["--steps", "3", "--batch", "2", "--size", "32", "--features",
                                            "--out", str(tmp_path)])
    assert len(history) == 3 and all(math.isfinite(v) and v > 0 for v in history)
    assert (tmp_path / "train_inpainter.png").is_file()
    lines = capsys.readouterr().out.splitlines()
    # every column is named in the header row, and the legend says what the numbers are
    assert lines[-5].split() == ["step", "total", "rec", "tv", "freq", "perc", "style"]
    assert any("mean over the last 20 steps" in line for line in lines[:-5])
    assert [line.split()[0] for line in lines[-4:-1]] == ["1", "2", "3"]
    assert lines[-1].startswith("done: 3 steps in ") and lines[-1].split("wrote ")[1].startswith(
        str(tmp_path / "train_inpainter.png"))


def test_train_inpainter_loss_falls(tmp_path):
    """A short small run at the default loss: the total's mean over the last 10 steps is well below the first 10's."""
    history = load("train_inpainter").main(["--steps", "60", "--batch", "4", "--size", "32", "--out", str(tmp_path)])
    assert sum(history[-10:]) < 0.9 * sum(history[:10])


@pytest.mark.parametrize("name", ["train_inpainter", "train_gan_inpainter", "train_diffusion_inpainter"])
def test_docstring_command_is_the_defaults(name):
    """The command in the module docstring spells out every valued option at its argparse default, each
    help string's "(default X)" is that default, and the printed last line it quotes has the default step count."""
    module = load(name)
    parser = module.build_parser()
    command = re.search(rf"^ +python examples/{name}\.py(.*?)\n\n", module.__doc__, re.S | re.M).group(1)
    argv = shlex.split(command.replace("\\\n", " "))
    assert vars(parser.parse_args(argv)) == vars(parser.parse_args([]))
    valued = {a.option_strings[-1] for a in parser._actions
              if a.option_strings and not isinstance(a, (argparse._StoreTrueAction, argparse._HelpAction))}
    assert {a for a in argv if a.startswith("--")} == valued
    for action in parser._actions:
        for said in re.findall(r"\(default ([^)]*)\)", action.help or ""):
            assert said == str(action.default), action.option_strings
    assert f"``done: {parser.get_default('steps')} steps" in module.__doc__
