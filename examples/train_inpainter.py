"""Train a tiny convolutional inpainter on random crops of a scikit-image photo with inpaint_fast's composite loss.

    python examples/train_inpainter.py --steps 300 --batch 8 --size 64 --image chelsea --threads 1 --out examples_out

(the defaults, so the same as no arguments; run from the repository root with inpaint_fast installed,
``pip install --no-build-isolation -e .``). Add ``--features`` for the VGG16 terms.

Trains: TinyInpainter (below: six 3x3 convolutions, dilations 1, 2, 4, 8, 1, 1, 32 channels, 39k
parameters; input the holed image and the mask, output composited with the known pixels), with Adam
(lr 2e-3), on --batch random --size x --size crops of the 256x256 photo per step, each with one random box
hole (a quarter to a half of the side).
Loss: ``inpaint_fast.CompositeLoss({"rec": 1, "tv": 0.01, "freq": 0.1})``: reconstruction (L1 with hole
weight 6, known weight 1), total variation over the hole, and the frequency loss (L1 between
log-magnitude spectra); --features adds VGG16 perceptual (weight 0.1) and style (10), ImageNet weights
when torchvision has them cached, else an untrained VGG16.
Prints: a title line, a legend of the columns, then a table with a row at step 1, every tenth of the
run and the last step. Columns: step; total (the weighted loss that is trained); rec, tv, freq (and perc,
style): its terms, unweighted. Every loss column is its mean over the last 20 steps (fewer before step 20).
Last line: ``done: 300 steps in N s; wrote examples_out/train_inpainter.png (target, input, before and
after training)``.
Writes: --out/train_inpainter.png, four panels for one fixed crop: target, input (hole black), the
untrained model's output and the trained one's.
Run time at the defaults: about 30 s on a 2-core CPU (measured: 31 s wall on idle cores, 30 s with
another job loading them); --threads 0 takes 20 s on idle cores, but minutes when the cores are shared.
--features makes it about 100 s (measured: 99.5 s). The total falls from 0.94 to about 0.43. A longer run,
e.g. --steps 1500 (about 2.5 minutes), brings it to about 0.38 by step 450, where it levels off
(0.34-0.37): the fill's colour then blends better with its surround, but a model this small learns no texture.
"""
import argparse
import os
import time

import torch
from torch import nn

import inpaint_fast as IF
from inpaint_fast.demo import load_photo, save_figure
from inpaint_fast.nets.vgg import pretrained_available


def random_crops(photo, batch, size, generator):
    _, _, h, w = photo.shape
    ys = torch.randint(0, h - size + 1, (batch,), generator=generator).tolist()
    xs = torch.randint(0, w - size + 1, (batch,), generator=generator).tolist()
    return torch.cat([photo[:, :, y:y + size, x:x + size] for y, x in zip(ys, xs)])


def random_box_masks(batch, size, generator):
    """(N, 1, size, size): 1 = known, one random box per image is the hole."""
    mask = torch.ones(batch, 1, size, size)
    for i in range(batch):
        bh, bw = torch.randint(size // 4, size // 2 + 1, (2,), generator=generator).tolist()
        y, x = torch.randint(0, size - bh + 1, (1,), generator=generator).item(), \
            torch.randint(0, size - bw + 1, (1,), generator=generator).item()
        mask[i, :, y:y + bh, x:x + bw] = 0
    return mask


class TinyInpainter(nn.Module):
    """Input: corrupted image and mask (4 channels); output: the image, composited with the known pixels."""

    def __init__(self, width=32):
        super().__init__()
        layers, ch = [], 4
        for dilation in (1, 2, 4, 8, 1):
            layers += [nn.Conv2d(ch, width, 3, padding=dilation, dilation=dilation), nn.ReLU()]
            ch = width
        self.body = nn.Sequential(*layers, nn.Conv2d(width, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, image, mask):
        out = self.body(torch.cat([image * mask, mask], dim=1))
        return mask * image + (1 - mask) * out


WINDOW = 20  # every printed loss is its mean over the last WINDOW steps (fewer before step WINDOW)


def log_step(step, steps):
    """Whether ``step`` prints a row: the first, every tenth of the run, and the last."""
    return step == 1 or step % max(1, steps // 10) == 0 or step == steps


def print_header(columns, legend):
    """The table's legend (``legend``: lines saying what each column is) and its header row."""
    print(f"columns (each loss is its mean over the last {WINDOW} steps, fewer before step {WINDOW}):")
    for line in legend:
        print("  " + line)
    print("step" + "".join(f"{c:>10}" for c in columns))


def _number(v):
    """A loss value in at most 9 characters: 4 decimals, or 3 significant digits when it is below 0.001."""
    return f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.2e}"


def print_row(step, history, columns):
    """One table row: ``step`` and each column's mean over the last WINDOW entries of ``history`` (dicts)."""
    recent = history[-WINDOW:]
    print(f"{step:4d}" + "".join(" " + _number(sum(h[c] for h in recent) / len(recent)).rjust(9) for c in columns))


def set_threads(n):
    """torch's CPU threads for the run (n > 0), returning the previous count to restore."""
    previous = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    return previous


THREADS_HELP = ("torch CPU threads, 0 for torch's default (one per core); 1 runs these tiny convolutions about 1.5x "
                "slower than 2 threads on 2 idle cores, but several times faster when another process shares them")


def build_parser():
    """The command line (every default is the one in the module docstring's command)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    parser.add_argument("--size", type=int, default=64, help="crop side in pixels (default 64)")
    parser.add_argument("--image", default="chelsea",
                        help="a scikit-image photo name or an image file (default chelsea)")
    parser.add_argument("--features", action="store_true", help="add VGG16 perceptual and style terms")
    parser.add_argument("--threads", type=int, default=1, help=THREADS_HELP + " (default 1)")
    parser.add_argument("--out", default="examples_out", help="output folder (default examples_out)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    threads = set_threads(args.threads)
    try:
        return train(args)
    finally:
        torch.set_num_threads(threads)


def train(args):
    start = time.perf_counter()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    photo = load_photo(args.image, size=256)
    model = TinyInpainter()
    weights = {"rec": 1.0, "tv": 0.01, "freq": 0.1}
    if args.features:
        weights.update(perc=0.1, style=10.0)
    pretrained = args.features and pretrained_available()
    loss_fn = IF.CompositeLoss(weights, vgg_weights="DEFAULT" if pretrained else None)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    fixed_x, fixed_mask = random_crops(photo, 4, args.size, g), random_box_masks(4, args.size, g)
    with torch.no_grad():
        before = model(fixed_x, fixed_mask)
    columns = ["total", *weights]
    print(f"train_inpainter: {args.steps} steps of {args.batch} {args.size}x{args.size} crops of {args.image}, "
          f"{torch.get_num_threads()} CPU thread(s)")
    vgg = "ImageNet VGG16" if pretrained else "untrained VGG16 (its weights are not cached)"
    names = {"rec": "reconstruction (L1, hole weight 6)", "tv": "total variation over the hole",
             "freq": "L1 of log-magnitude spectra", "perc": f"perceptual, {vgg}", "style": f"style (Gram), {vgg}"}
    described = [f"{k} = {names[k]}" for k in weights]
    print_header(columns, ["total = " + " + ".join(f"{w:g} {k}" for k, w in weights.items()) +
                           ": the loss trained; the other columns are its terms, unweighted",
                           "; ".join(described[:3]), *(["; ".join(described[3:])] if described[3:] else [])])
    history = []
    for step in range(1, args.steps + 1):
        x, mask = random_crops(photo, args.batch, args.size, g), random_box_masks(args.batch, args.size, g)
        terms = loss_fn(model(x, mask), x, mask=mask)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        history.append({k: terms[k].item() for k in columns})
        if log_step(step, args.steps):
            print_row(step, history, columns)
    with torch.no_grad():
        after = model(fixed_x, fixed_mask)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "train_inpainter.png")
    save_figure(path, {"target": fixed_x[:1], "input": (fixed_x * fixed_mask)[:1], "before": before[:1],
                       "after": after[:1]})
    print(f"done: {args.steps} steps in {time.perf_counter() - start:.0f} s; wrote {path} "
          "(target, input, before and after training)")
    return [h["total"] for h in history]


if __name__ == "__main__":
    main()
