"""Patch discriminators of inpainting GANs: DeepFill v2's SN-PatchGAN and pix2pix's N-layer PatchGAN
(LaMa's ``NLayerDiscriminator``). Their losses: :mod:`inpaint_fast.functional.adversarial`."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from .. import _validation as V

# ---------------------------------------------------------------- discriminators
class SNPatchDiscriminator(nn.Module):
    """SN-PatchGAN, DeepFill v2's discriminator (Yu et al. 2019, "Free-Form Image Inpainting with Gated
    Convolution", ``build_sn_patch_gan_discriminator``).

    ``num_layers`` (6) convolutions 5×5, stride 2, padding 2, spectral norm (``torch.nn.utils.
    parametrizations.spectral_norm``), leaky ReLU 0.2 after every one, the last included, as DeepFill;
    widths ``base_channels`` × (1, 2, 4, 4, 4, 4) = 64/128/256/256/256/256. Input: the image and, with
    ``mask_channel=True`` (DeepFill's ``gan_with_mask``), the hole map as one more channel (4 channels
    for RGB; DeepFill's "ones" channel is the generator's input, not D's). Output: (N, 256, ⌈H/64⌉,
    ⌈W/64⌉) patch scores, or (N, 256·h·w) with ``flatten=True`` (DeepFill's ``flatten``); every element
    is one logit for the losses above (DeepFill uses 'hinge'). PyTorch's symmetric padding 2 gives TF
    'SAME' output sizes; for even sizes TF pads (1, 2) instead of (2, 2).
    """

    WIDTHS = (1, 2, 4, 4, 4, 4)

    def __init__(self, in_channels: int = 3, base_channels: int = 64, *, num_layers: int = 6,
                 mask_channel: bool = True, flatten: bool = False):
        super().__init__()
        V.check_int(in_channels, "in_channels", 1)
        V.check_int(base_channels, "base_channels", 1)
        V.check_int(num_layers, "num_layers", 1)
        self.mask_channel, self.flatten = bool(mask_channel), bool(flatten)
        ch, layers = in_channels + int(self.mask_channel), []
        for i in range(num_layers):
            out = base_channels * self.WIDTHS[min(i, len(self.WIDTHS) - 1)]
            layers += [spectral_norm(nn.Conv2d(ch, out, 5, stride=2, padding=2)), nn.LeakyReLU(0.2)]
            ch = out
        self.body = nn.Sequential(*layers)
        self.out_channels = ch

    def forward(self, image: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None) -> Tensor:
        V.check_image(image, "image")
        if self.mask_channel:
            known = V.spatial_weight(V.known_from_mask(mask, hole, image, required=True, like_name="image"))
            image = torch.cat([image, (1 - known).expand(image.shape[0], 1, -1, -1)], dim=1)
        elif mask is not None or hole is not None:
            raise ValueError("this discriminator was built with mask_channel=False: pass no mask")
        out = self.body(image)
        return out.flatten(1) if self.flatten else out
_NORMS = ("batch", "instance", "none", "spectral")


class NLayerDiscriminator(nn.Module):
    """PatchGAN with ``n_layers`` stride-2 layers: pix2pix (Isola et al. 2017) / pix2pixHD (Wang et al.
    2018) ``NLayerDiscriminator``, as LaMa's.

    Blocks: conv 4×4 s2 + leaky ReLU 0.2; ``n_layers - 1`` × [conv 4×4 s2, norm, leaky ReLU] with widths
    ``base_channels`` × 2, 4, … (capped at 512); conv 4×4 s1, norm, leaky ReLU; conv 4×4 s1 to 1 channel
    (the logits). ``padding`` 2 as pix2pixHD and LaMa (⌈(4-1)/2⌉), 1 as pix2pix. ``norm``: 'batch'
    (LaMa, pix2pix), 'instance' (pix2pixHD), 'spectral' (spectral norm on every conv, no norm layer) or
    'none'. ``forward(x, return_features=True)`` returns ``(logits, [output of each block but the last])``
    for :func:`feature_matching_loss` (pix2pixHD's ``getIntermFeat``).
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, *,
                 norm: str = "batch", padding: int = 2):
        super().__init__()
        V.check_int(in_channels, "in_channels", 1)
        V.check_int(base_channels, "base_channels", 1)
        V.check_int(n_layers, "n_layers", 1)
        V.check_choice(norm, "norm", _NORMS)
        if padding not in (1, 2) or isinstance(padding, bool):
            raise ValueError(f"padding must be 2 (pix2pixHD, LaMa) or 1 (pix2pix); got {padding!r}")

        def conv(cin, cout, stride):
            c = nn.Conv2d(cin, cout, 4, stride=stride, padding=padding)
            return spectral_norm(c) if norm == "spectral" else c

        def norm_layer(c):
            if norm == "batch":
                return [nn.BatchNorm2d(c)]
            if norm == "instance":
                return [nn.InstanceNorm2d(c)]
            return []

        blocks = [nn.Sequential(conv(in_channels, base_channels, 2), nn.LeakyReLU(0.2))]
        nf = base_channels
        for _ in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            blocks.append(nn.Sequential(conv(prev, nf, 2), *norm_layer(nf), nn.LeakyReLU(0.2)))
        prev, nf = nf, min(nf * 2, 512)
        blocks.append(nn.Sequential(conv(prev, nf, 1), *norm_layer(nf), nn.LeakyReLU(0.2)))
        blocks.append(nn.Sequential(conv(nf, 1, 1)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, return_features: bool = False):
        V.check_image(x, "x")
        features: List[Tensor] = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return (x, features[:-1]) if return_features else x
