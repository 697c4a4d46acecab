"""The structural facts of the notebook *Loss Functions for Image Inpainting*, on a real photograph
(scikit-image's chelsea).

The notebook's tables were computed on a photo we cannot download, so their numbers are not targets;
the relations between them hold for any photo and are checked here.
"""
import pytest
import torch

import inpaint_fast as IF
from inpaint_fast.demo import run


def test_pixel_table_facts(photo, backend):
    x, mask, preds = photo
    hole_fraction = 100 * 100 / (256 * 256)
    l1 = lambda img, **kw: IF.masked_l1(img, x, mask=mask, **kw).item()  # noqa: E731
    l2 = lambda img, **kw: IF.masked_l2(img, x, mask=mask, **kw).item()  # noqa: E731
    assert l1(preds["Reference"], region="all") == 0
    assert l1(preds["Corrupted"], region="known") == 0 and l2(preds["Corrupted"], region="known") == 0
    assert l1(preds["Fake inpainted"], region="known") == 0
    assert l1(preds["Fake inpainted"]) == pytest.approx(l1(preds["Blurred image"]), rel=1e-6)
    assert l2(preds["Fake inpainted"]) == pytest.approx(l2(preds["Blurred image"]), rel=1e-6)
    # the corrupted image is 0 in the hole: its hole L1 is the mean of x there, its full L1 a fraction of it
    assert l1(preds["Corrupted"]) == pytest.approx(x.expand(1, 3, 256, 256)[..., 40:140, 50:150].mean().item(), rel=1e-5)
    assert l1(preds["Corrupted"], region="all") == pytest.approx(hole_fraction * l1(preds["Corrupted"]), rel=1e-5)
    # darkening by 0.65 leaves an error of 0.35 x everywhere
    assert l1(preds["Darkened image"]) == pytest.approx(0.35 * x[..., 40:140, 50:150].mean().item(), rel=1e-5)
    for img in preds.values():
        rec = IF.reconstruction_loss(img, x, mask=mask).item()
        assert rec == pytest.approx(6 * l1(img) + l1(img, region="known"), rel=1e-6, abs=1e-9)


def test_tv_and_frequency_facts(photo):
    x, mask, preds = photo
    tv_hole = lambda img: IF.total_variation(img, mask=mask).item()  # noqa: E731
    assert tv_hole(preds["Corrupted"]) == 0
    assert tv_hole(preds["Fake inpainted"]) == pytest.approx(tv_hole(preds["Blurred image"]), rel=1e-6)
    assert tv_hole(preds["Darkened image"]) == pytest.approx(0.65 * tv_hole(x), rel=1e-5)
    assert IF.total_variation(preds["Blurred image"]).item() < IF.total_variation(x).item() \
        < IF.total_variation(preds["Noisy image"]).item()
    assert IF.frequency_loss(x, x).item() == 0
    assert IF.frequency_loss(preds["Fake inpainted"], x) < IF.frequency_loss(preds["Corrupted"], x)


def test_feature_facts(photo, vgg):
    x, mask, preds = photo
    assert IF.perceptual_loss(x, x, extractor=vgg).item() == 0
    assert IF.style_loss(x, x, extractor=vgg).item() == 0
    # the corrupted image's error is all in the hole, so its hole average exceeds its full-image average
    hole_perc = IF.perceptual_loss(preds["Corrupted"], x, extractor=vgg, mask=mask).item()
    assert hole_perc > IF.perceptual_loss(preds["Corrupted"], x, extractor=vgg).item() > 0


def test_demo_prints_every_table_and_writes_figures(tmp_path):
    lines = []
    tables = run("chelsea", out=str(tmp_path), print_fn=lines.append)
    text = "\n".join(lines)
    for title in ("Pixel-wise", "Perceptual", "Style", "Total variation", "Adversarial", "Frequency", "Composite"):
        assert title in text
    assert "UNTRAINED" in text or "ImageNet" in text
    assert {p.name for p in tmp_path.iterdir()} == {"images.png", "mask.png", "spectra.png"}
    pixel = tables["Pixel-wise reconstruction losses"]
    assert pixel["Corrupted"]["Valid L1"] == 0
    assert pixel["Fake inpainted"]["Hole L1"] == pytest.approx(pixel["Blurred image"]["Hole L1"], rel=1e-6)
    assert tables["Adversarial (BCE with logits)"]["G fools D"]["D fake loss"] == pytest.approx(1.9142, abs=5e-5)
    composite = tables["Composite (rec 1, perc 0.1, style 10, tv 0.01, freq 0.1)"]
    for row in composite.values():
        expected = row["rec"] + 0.1 * row["perc"] + 10 * row["style"] + 0.01 * row["tv"] + 0.1 * row["freq"]
        assert row["total"] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert composite["Corrupted"]["rec"] == pytest.approx(pixel["Corrupted"]["Reconstruction"])
    assert composite["Reference"]["tv"] == pytest.approx(tables["Total variation"]["Reference"]["Hole TV"])
