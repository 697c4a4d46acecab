"""Adversarial losses: the seed's table, closed forms, module and errors."""
import math

import pytest
import torch

import inpaint_fast as IF
from inpaint_fast import gan
from inpaint_fast.demo import SEED_GAN_CASES

# the seed notebook's adversarial table (image-free, so a test target): D real, D fake, G adv
SEED_TABLE = {
    "D separates well": (0.1029, 0.1642, 1.9142),
    "D is uncertain": (0.6713, 0.6713, 0.7213),
    "G fools D": (0.1029, 1.9142, 0.1642),
}


def softplus(v):
    return math.log1p(math.exp(v))


@pytest.mark.parametrize("case", list(SEED_TABLE))
def test_seed_adversarial_table(case):
    real, fake = torch.tensor(SEED_GAN_CASES[case]["real"]), torch.tensor(SEED_GAN_CASES[case]["fake"])
    d = gan.discriminator_loss(real, fake)
    got = (d.real.item(), d.fake.item(), gan.generator_loss(fake).item())
    assert tuple(round(v, 4) for v in got) == SEED_TABLE[case]
    assert d.total.item() == pytest.approx(d.real.item() + d.fake.item())


def test_closed_form_on_patch_logits():
    real = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]], dtype=torch.float64)  # a 2x2 patch map
    fake = -real
    # BCE(z, 1) = softplus(-z); BCE(z, 0) = softplus(z)
    expected_real = sum(softplus(-v) for v in (0.5, -1.0, 2.0, 0.0)) / 4
    expected_fake = sum(softplus(v) for v in (-0.5, 1.0, -2.0, 0.0)) / 4
    d = gan.discriminator_loss(real, fake)
    assert d.real.item() == pytest.approx(expected_real)
    assert d.fake.item() == pytest.approx(expected_fake)
    assert gan.generator_loss(fake).item() == pytest.approx(sum(softplus(v) for v in (0.5, -1.0, 2.0, 0.0)) / 4)


def test_generator_gradient_is_non_saturating():
    fake = torch.tensor([-6.0], requires_grad=True)  # D is confident the fake is fake
    gan.generator_loss(fake).backward()
    assert fake.grad.item() == pytest.approx(-torch.sigmoid(torch.tensor(6.0)).item())  # ~ -1, not ~ 0


def test_module_and_errors():
    adv = IF.AdversarialLoss()
    fake, real = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    torch.testing.assert_close(adv(fake), gan.generator_loss(fake))
    torch.testing.assert_close(adv.discriminator_loss(real, fake).total, gan.discriminator_loss(real, fake).total)
    with pytest.raises(ValueError, match="loss must be one of 'bce'"):
        IF.AdversarialLoss(loss="wgan")
    with pytest.raises(TypeError, match="fake_logits must be a floating tensor"):
        gan.generator_loss(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="real_logits is empty"):
        gan.discriminator_loss(torch.empty(0), fake)
    with pytest.raises(TypeError, match="real_logits must be a torch.Tensor"):
        gan.discriminator_loss([1.0], fake)
