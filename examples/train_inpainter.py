"""Train a tiny convolutional inpainter on random crops of a scikit-image photo.

    python examples/train_inpainter.py [--steps 300] [--features] [--out examples_out]

The loss is the notebook's composite objective from inpaint_fast (reconstruction with hole weight 6,
TV over the hole, frequency; with --features also VGG16 perceptual and style, pretrained when the
weights are cached, else untrained). Prints falling losses; saves a before/after PNG.
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--features", action="store_true", help="add VGG16 perceptual and style terms")
    parser.add_argument("--out", default="examples_out")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    photo = load_photo("chelsea", size=256)
    model = TinyInpainter()
    weights = {"rec": 1.0, "tv": 0.01, "freq": 0.1}
    if args.features:
        weights.update(perc=0.1, style=10.0)
    loss_fn = IF.CompositeLoss(weights, vgg_weights="DEFAULT" if pretrained_available() else None)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    fixed_x, fixed_mask = random_crops(photo, 4, args.size, g), random_box_masks(4, args.size, g)
    with torch.no_grad():
        before = model(fixed_x, fixed_mask)
    start, history = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        x, mask = random_crops(photo, args.batch, args.size, g), random_box_masks(args.batch, args.size, g)
        terms = loss_fn(model(x, mask), x, mask=mask)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        history.append(terms["total"].item())
        if step == 1 or step % max(1, args.steps // 10) == 0 or step == args.steps:
            recent = sum(history[-20:]) / len(history[-20:])
            print(f"step {step:4d}  loss {recent:.4f}  " +
                  "  ".join(f"{k} {v.item():.4f}" for k, v in terms.items() if k != "total"))
    with torch.no_grad():
        after = model(fixed_x, fixed_mask)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "train_inpainter.png")
    save_figure(path, {"target": fixed_x[:1], "input": (fixed_x * fixed_mask)[:1], "before": before[:1],
                       "after": after[:1]})
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s; before/after: {path}")
    return history


if __name__ == "__main__":
    main()
