"""Train a tiny GAN inpainter on random crops of a scikit-image photo: reconstruction + hinge + lazy R1.

    python examples/train_gan_inpainter.py [--steps 300] [--image astronaut] [--threads 1] [--out examples_out]

Generator: examples/train_inpainter.py's TinyInpainter (dilated convs, input x*m and m, output
composited with the known pixels). Discriminator: a small SN-PatchGAN (DeepFill v2,
inpaint_fast.IF.SNPatchDiscriminator) on the image and its hole map, trained with the hinge loss and
LaMa's mask_as_fake_target (fake patches are "fake" in the hole, "real" in the known region), plus an R1
penalty on the real crops every --r1-interval D steps (StyleGAN2's lazy regularisation).
The generator's loss is inpaint_fast.reconstruction_loss (hole weight 6) + --adv-weight * the hinge G
term (-mean of the fake logits whose cell touches the hole).
Prints losses (running means over 20 steps) and saves a before/after PNG.
"""
import argparse
import importlib.util
import os
import time

import torch

import inpaint_fast as IF
from inpaint_fast.functional import adversarial as gan
from inpaint_fast.demo import load_photo, save_figure


def _load_sibling(name):
    """The neighbouring example as a module (its generator and data helpers), without touching sys.path."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", os.path.join(os.path.dirname(
        os.path.abspath(__file__)), f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_base = _load_sibling("train_inpainter")
TinyInpainter, random_crops, random_box_masks = _base.TinyInpainter, _base.random_crops, _base.random_box_masks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--image", default="astronaut", help="a scikit-image photo name or an image file")
    parser.add_argument("--adv-weight", type=float, default=0.05)
    parser.add_argument("--r1-gamma", type=float, default=1.0)
    parser.add_argument("--r1-interval", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads while training, 0 for torch's default (the convolutions are tiny: "
                             "one thread is as fast on 2 cores and far faster when they are shared)")
    parser.add_argument("--out", default="examples_out")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return train(args)
    finally:
        torch.set_num_threads(threads)


def train(args):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    photo = load_photo(args.image, size=256)
    G = TinyInpainter()
    D = IF.SNPatchDiscriminator(base_channels=16, num_layers=4)  # 64x64 crops -> 4x4 patch logits
    r1 = IF.R1Penalty(gamma=args.r1_gamma, interval=args.r1_interval)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))

    fixed_x, fixed_mask = random_crops(photo, 4, args.size, g), random_box_masks(4, args.size, g)
    with torch.no_grad():
        before = G(fixed_x, fixed_mask)
    start, history = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        x, mask = random_crops(photo, args.batch, args.size, g), random_box_masks(args.batch, args.size, g)
        pred = G(x, mask)

        # discriminator step: hinge with the hole as fake target, lazy R1 on the real crops
        real = x.clone().requires_grad_(r1.due)
        real_logits = D(real, mask=mask)
        d = gan.discriminator_loss(real_logits, D(pred.detach(), mask=mask), loss="hinge", mask=mask,
                                   resize="maxpool")
        penalty = r1(real_logits, real)
        opt_d.zero_grad(set_to_none=True)
        (d.total + penalty).backward()
        opt_d.step()

        # generator step: reconstruction + the hinge G term on the patches that touch the hole
        rec = IF.reconstruction_loss(pred, x, mask=mask)
        adv = gan.generator_loss(D(pred, mask=mask), loss="hinge", mask=mask, resize="maxpool")
        opt_g.zero_grad(set_to_none=True)
        (rec + args.adv_weight * adv).backward()
        opt_g.step()

        history.append({"rec": rec.item(), "g_adv": adv.item(), "d_real": d.real.item(), "d_fake": d.fake.item(),
                        "r1": penalty.item()})
        if step == 1 or step % max(1, args.steps // 10) == 0 or step == args.steps:
            recent = history[-20:]
            print(f"step {step:4d}  " + "  ".join(
                f"{k} {sum(h[k] for h in recent) / len(recent):.4f}" for k in history[-1]))
    with torch.no_grad():
        after = G(fixed_x, fixed_mask)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "train_gan_inpainter.png")
    save_figure(path, {"target": fixed_x[:1], "input": (fixed_x * fixed_mask)[:1], "before": before[:1],
                       "after": after[:1]})
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s; before/after: {path}")
    return history


if __name__ == "__main__":
    main()
