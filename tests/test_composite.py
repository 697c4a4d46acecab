"""composite_loss / CompositeLoss against the seed's composite_loss."""
import pytest
import torch

import inpaint_fast as IF
from tests import seed_notebook as seed


def test_matches_seed_composite(vgg, seed_vgg, monkeypatch, backend):
    monkeypatch.setattr(seed, "vgg", seed_vgg)
    torch.manual_seed(0)
    x, pred = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    m = seed.get_box_mask(x, top=8, left=10, height=20, width=16)
    ours = IF.composite_loss(pred, x, mask=m, extractor=vgg)
    theirs = seed.composite_loss(x, pred, m, seed.SEED_WEIGHTS)
    assert list(ours) == list(theirs)
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-6 if backend == "cpu" else 0, atol=0)
    module = IF.CompositeLoss(extractor=vgg)
    for k, v in module(pred, x, hole=1 - m).items():
        torch.testing.assert_close(v, ours[k])


def test_only_weighted_terms_are_computed():
    torch.manual_seed(0)
    x, pred = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16, requires_grad=True)
    mask = torch.rand(1, 1, 16, 16) > 0.5
    out = IF.composite_loss(pred, x, mask=mask, weights={"rec": 2.0, "tv": 0.5})  # no extractor needed
    assert set(out) == {"rec", "tv", "total"}
    torch.testing.assert_close(out["total"], 2 * IF.reconstruction_loss(pred, x, mask=mask)
                               + 0.5 * IF.total_variation(pred, mask=mask))
    out["total"].backward()
    assert pred.grad is not None
    assert IF.CompositeLoss(weights={"freq": 1.0}).extractor is None


def test_errors():
    x = torch.rand(1, 3, 8, 8)
    mask = torch.ones(1, 1, 8, 8)
    with pytest.raises(ValueError, match="need extractor="):
        IF.composite_loss(x, x, mask=mask)
    with pytest.raises(ValueError, match=r"unknown terms \['adv'\]"):
        IF.composite_loss(x, x, mask=mask, weights={"adv": 1.0})
    with pytest.raises(ValueError, match=r"weights\['tv'\] must be a finite number >= 0"):
        IF.CompositeLoss(weights={"tv": -0.1})
    with pytest.raises(ValueError, match="a mask is required"):
        IF.composite_loss(x, x, weights={"rec": 1.0})
