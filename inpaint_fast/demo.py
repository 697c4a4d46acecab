"""The notebook's experiment on a real photograph: every loss table, recomputed.

``python -m inpaint_fast demo [--image chelsea|astronaut|PATH] [--out DIR]``. The photo is resized
to 256 (shorter side) and centre-cropped to 256×256; the mask is the notebook's box (top 40, left 50,
100×100); the predictions are the notebook's controlled examples.
"""
from __future__ import annotations

import os
import time
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from . import functional as LF
from .functional.adversarial import discriminator_loss, generator_loss
from .losses import composite_loss
from .nets.vgg import NOTEBOOK_LAYERS, VGGFeatures, pretrained_available

SKIMAGE_PHOTOS = ("chelsea", "astronaut", "coffee")
NOTEBOOK_GAN_CASES = {
    "D separates well": {"real": [2.5, 2.0], "fake": [-2.0, -1.5]},
    "D is uncertain": {"real": [0.2, -0.1], "fake": [0.1, -0.2]},
    "G fools D": {"real": [2.5, 2.0], "fake": [1.5, 2.0]},
}


def load_photo(image: str = "chelsea", size: int = 256) -> Tensor:
    """A (1, 3, size, size) float32 image in [0, 1]: a scikit-image photo by name, or a file path.

    Resize(size) then CenterCrop(size), the notebook's torchvision pipeline.
    """
    from PIL import Image
    from torchvision.transforms import CenterCrop, Compose, Resize, ToTensor

    if image in SKIMAGE_PHOTOS:
        import skimage.data
        pil = Image.fromarray(getattr(skimage.data, image)())
    elif os.path.isfile(image):
        pil = Image.open(image)
    else:
        raise ValueError(f"image must be one of {SKIMAGE_PHOTOS} or an existing file path; got {image!r}")
    return Compose([Resize(size), CenterCrop(size), ToTensor()])(pil.convert("RGB")).unsqueeze(0)


def box_mask(x: Tensor, top: int = 40, left: int = 50, height: int = 100, width: int = 100) -> Tensor:
    """The notebook's ``get_box_mask``: (N, 1, H, W) float, 1 = known, a 0 box = the hole."""
    mask = torch.ones(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
    mask[:, :, top:top + height, left:left + width] = 0
    return mask


def notebook_predictions(x: Tensor, mask: Tensor, seed: int = 0) -> Dict[str, Tensor]:
    """The notebook's controlled "predictions" of ``x``, plus its noisy image (σ 0.1, seeded)."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    blurred = F.avg_pool2d(x, kernel_size=7, stride=1, padding=3)
    corrupted = x * mask
    return {
        "Reference": x,
        "Corrupted": corrupted,
        "Fake inpainted": corrupted + blurred * (1 - mask),
        "Blurred image": blurred,
        "Darkened image": (0.65 * x).clamp(0, 1),
        "Noisy image": (x + 0.1 * noise).clamp(0, 1),
    }


class MemoizedExtractor:
    """Runs ``extractor`` once per distinct image tensor: the demo asks for the same images'
    features in several tables (gradients are off, so sharing them changes no number)."""

    def __init__(self, extractor):
        self.extractor = extractor
        self._cache: Dict[int, tuple] = {}

    def __call__(self, img: Tensor):
        hit = self._cache.get(id(img))
        if hit is None or hit[0] is not img:
            hit = self._cache[id(img)] = (img, self.extractor(img))
        return hit[1]


def format_value(v: float, decimals: int = 4) -> str:
    """Fixed point with ``decimals``; a nonzero value that would print as zero goes to scientific."""
    text = f"{v:.{decimals}f}"
    return f"{v:.1e}" if v != 0 and float(text) == 0 else text


def format_table(title: str, rows: Dict[str, Dict[str, object]], decimals: int = 4) -> str:
    columns = list(next(iter(rows.values())))
    cells = {r: [format_value(float(v), decimals) for v in row.values()] for r, row in rows.items()}
    name_width = max(len(r) for r in rows)
    widths = [max(len(c), *(len(cells[r][i]) for r in rows)) for i, c in enumerate(columns)]
    lines = [title, " " * name_width + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += [r.ljust(name_width) + "  " + "  ".join(v.rjust(w) for v, w in zip(cells[r], widths)) for r in rows]
    return "\n".join(lines)


def log_spectrum(x: Tensor) -> Tensor:
    """``log(1 + |F|)`` of the first image's 2-D FFT (unnormalised, so the structure away from the DC
    term is visible), averaged over channels and centred with ``fftshift``: (H, W)."""
    z = torch.fft.fftshift(torch.fft.fft2(x[0].double()), dim=(-2, -1))
    return z.abs().log1p().mean(dim=0).float()


class Panel:
    """One panel of a demo figure: an RGB image in [0, 1] (kind 'image'), a known-mask (kind 'mask':
    drawn known / hole with a frame and a legend) or a log spectrum (kind 'spectrum': a perceptual colour
    map, a colour bar and frequency axes)."""

    def __init__(self, title: str, data: Tensor, kind: str = "image"):
        self.title, self.data, self.kind = title, data, kind


def save_figure(path: str, panels, title: Optional[str] = None) -> None:
    """A row of panels (:class:`Panel`, or a {title: (N, 3|1, H, W) image} dict) saved as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if isinstance(panels, dict):
        panels = [Panel(t, img) for t, img in panels.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.9), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        ax.set_title(panel.title, fontsize=9)
        if panel.kind == "spectrum":
            s = panel.data.cpu().numpy()
            h, w = s.shape
            im = ax.imshow(s, cmap="magma", extent=(-0.5, 0.5, 0.5, -0.5), vmin=float(s.min()), vmax=float(s.max()))
            ax.set_xlabel("horizontal frequency (cycles/pixel)", fontsize=8)
            ax.set_ylabel("vertical frequency (cycles/pixel)", fontsize=8)
            ax.tick_params(labelsize=7)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("log(1 + |FFT|)", fontsize=8)
            continue
        img = panel.data[0].detach().cpu().float()
        if panel.kind == "mask":
            ax.imshow(img[0].clamp(0, 1).numpy(), cmap=ListedColormap(["#d62728", "#dddddd"]), vmin=0, vmax=1)
            ax.legend(handles=[Patch(facecolor="#dddddd", edgecolor="black", label="known (mask = 1)"),
                               Patch(facecolor="#d62728", edgecolor="black", label="hole (mask = 0)")],
                      loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=7, frameon=False)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("black")
                spine.set_linewidth(1.5)
            continue
        img = img.clamp(0, 1)
        gray = img.shape[0] == 1
        ax.imshow((img[0] if gray else img.permute(1, 2, 0)).numpy(), cmap="gray" if gray else None)
        ax.axis("off")
    if title is not None:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93) if title is not None else (0, 0, 1, 1))
    fig.savefig(path, dpi=100, bbox_inches="tight")  # "tight": the mask's legend below its panel
    plt.close(fig)


def make_extractor(vgg_weights: Optional[str]) -> tuple:
    """(VGG16 extractor with the notebook's layers, a sentence saying where its weights came from)."""
    if vgg_weights is not None:
        return VGGFeatures(layers=NOTEBOOK_LAYERS, weights=vgg_weights), f"VGG16 weights from {vgg_weights}"
    if pretrained_available("vgg16"):
        return VGGFeatures(layers=NOTEBOOK_LAYERS, weights="DEFAULT"), "VGG16 ImageNet weights (torchvision, cached)"
    torch.manual_seed(0)
    return VGGFeatures(layers=NOTEBOOK_LAYERS, weights=None), (
        "NOTE: no pretrained VGG16 weights on this machine, so the perceptual, style and composite numbers "
        "below come from UNTRAINED (randomly initialised, seed 0) VGG16 features and will not match the "
        "notebook's tables. Pass --vgg-weights PATH (a torchvision vgg16 state dict) or put vgg16-397923af.pth in "
        f"{os.path.join(torch.hub.get_dir(), 'checkpoints')} to use ImageNet features.")


@torch.no_grad()
def run(image: str = "chelsea", out: Optional[str] = "demo_out", vgg_weights: Optional[str] = None,
        print_fn=print) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Recompute the notebook's tables on ``image``; print them, write figures to ``out`` (None: none).

    Returns {table title: {row: {column: value}}}.
    """
    start = time.perf_counter()
    x = load_photo(image)
    mask = box_mask(x)
    preds = notebook_predictions(x, mask)
    extractor, weights_note = make_extractor(vgg_weights)
    vgg = MemoizedExtractor(extractor)
    print_fn(f"inpaint_fast demo: image {image!r} {tuple(x.shape)}, hole = box top 40 left 50 100x100 "
             f"({int((mask == 0).sum())} pixels)")
    print_fn(weights_note)

    tables: Dict[str, Dict[str, Dict[str, object]]] = {}
    pixel = {name: LF.masked_error_stats(img, x, mask=mask) for name, img in preds.items()}  # one pass each
    tables["Pixel-wise reconstruction losses"] = {name: {
        "Full L1": s["full_l1"], "Hole L1": s["hole_l1"], "Valid L1": s["known_l1"],
        "Full L2": s["full_l2"], "Hole L2": s["hole_l2"], "Valid L2": s["known_l2"],
        "Reconstruction": LF.reconstruction_loss(preds[name], x, mask=mask),
    } for name, s in pixel.items()}
    tables["Perceptual loss (VGG16 relu1_2, relu2_2, relu3_3)"] = {name: {
        "Full perceptual": LF.perceptual_loss(img, x, extractor=vgg),
        "Hole perceptual": LF.perceptual_loss(img, x, extractor=vgg, mask=mask),
        "Hole L1": pixel[name]["hole_l1"],
        "Hole L2": pixel[name]["hole_l2"],
    } for name, img in preds.items()}
    other = "astronaut" if image == "chelsea" else "chelsea"
    comparison = {"Original": x, "Blurred": preds["Blurred image"], f"Different image ({other})": load_photo(other)}
    tables["Style loss"] = {name: {"Style loss": LF.style_loss(img, x, extractor=vgg)}
                            for name, img in comparison.items()}
    tables["Total variation"] = {name: {
        "Full TV": LF.total_variation(img),
        "Hole TV": LF.total_variation(img, mask=mask, region="hole"),
    } for name, img in preds.items()}
    adversarial = {}
    for name, case in NOTEBOOK_GAN_CASES.items():
        real, fake = torch.tensor(case["real"]), torch.tensor(case["fake"])
        d = discriminator_loss(real, fake)
        adversarial[name] = {"D real loss": d.real, "D fake loss": d.fake, "G adv loss": generator_loss(fake)}
    tables["Adversarial (BCE with logits)"] = adversarial
    tables["Frequency loss"] = {name: {"Frequency loss": LF.frequency_loss(img, x)} for name, img in preds.items()}
    tables["Composite (rec 1, perc 0.1, style 10, tv 0.01, freq 0.1)"] = {
        name: composite_loss(img, x, mask=mask, extractor=vgg) for name, img in preds.items()}

    for title, rows in tables.items():
        print_fn("\n" + format_table(title, rows))

    if out is not None:
        save_figures(out, x, mask, preds, tables)
        print_fn(f"\nfigures: {', '.join(os.path.join(out, f) for f in ('images.png', 'mask.png', 'spectra.png'))}")
    print_fn(f"done in {time.perf_counter() - start:.1f} s")
    return {t: {r: {c: float(v) for c, v in row.items()} for r, row in rows.items()} for t, rows in tables.items()}


def save_figures(out: str, x: Tensor, mask: Tensor, preds: Dict[str, Tensor], tables) -> None:
    """images.png, mask.png and spectra.png in ``out``, each panel titled with the numbers it shows."""
    os.makedirs(out, exist_ok=True)
    pixel = tables["Pixel-wise reconstruction losses"]
    perceptual = next(rows for title, rows in tables.items() if title.startswith("Perceptual"))
    tv = tables["Total variation"]
    freq = tables["Frequency loss"]

    def numbers(name: str) -> str:
        return (f"{name}\nL1 {float(pixel[name]['Full L1']):.4f}, perceptual "
                f"{float(perceptual[name]['Full perceptual']):.4f}\nTV {float(tv[name]['Full TV']):.4f}")

    save_figure(os.path.join(out, "images.png"),
                [Panel(numbers(k), preds[k]) for k in ("Reference", "Darkened image", "Noisy image", "Blurred image")],
                title="The notebook's controlled predictions, with their full-image losses against the reference")
    hole_pixels = int((mask == 0).sum())
    save_figure(os.path.join(out, "mask.png"), [
        Panel("Reference", x),
        Panel(f"Mask: {hole_pixels} hole pixels\n({100 * hole_pixels / mask.numel():.1f} % of the image)", mask,
              "mask"),
        Panel(f"Corrupted (x * mask)\nhole L1 {float(pixel['Corrupted']['Hole L1']):.4f}, "
              f"reconstruction {float(pixel['Corrupted']['Reconstruction']):.4f}", preds["Corrupted"]),
        Panel(f"Fake inpainted (blur in the hole)\nhole L1 {float(pixel['Fake inpainted']['Hole L1']):.4f}, "
              f"reconstruction {float(pixel['Fake inpainted']['Reconstruction']):.4f}", preds["Fake inpainted"])],
        title="The notebook's box mask (1 = known pixel, 0 = hole) and the losses it weights")
    save_figure(os.path.join(out, "spectra.png"), [
        Panel("Reference", x),
        Panel("Reference spectrum", log_spectrum(x), "spectrum"),
        Panel("Corrupted", preds["Corrupted"]),
        Panel(f"Corrupted spectrum\nfrequency loss {float(freq['Corrupted']['Frequency loss']):.4f}",
              log_spectrum(preds["Corrupted"]), "spectrum")],
        title="Centred log-magnitude spectra: the box's sharp edges add the bright horizontal and vertical lines")
