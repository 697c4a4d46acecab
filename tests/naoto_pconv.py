"""naoto0804/pytorch-inpainting-with-partial-conv, the most copied PyTorch port of the PConv loss,
transcribed (kept as written there): ``config.py`` (``LAMBDA_DICT``), ``loss.py`` (``gram_matrix``,
``total_variation_loss``, ``InpaintingLoss``), ``net.py`` (``VGG16FeatureExtractor`` = vgg16.features[:5],
[5:10], [10:17], frozen, no input normalisation) and ``train.py``'s weighted sum (``naoto_total``).

The independent oracle of ``inpaint_fast.pconv_loss`` in tests/test_presets.py and the ``plain`` baseline
of benchmarks/bench_composite.py. Mask convention: 1 = known, as inpaint_fast's ``mask``.
"""
import torch
import torch.nn as nn


LAMBDA_DICT = {"valid": 1.0, "hole": 6.0, "tv": 0.1, "prc": 0.05, "style": 120.0}  # config.py


def naoto_gram_matrix(feat):
    (b, ch, h, w) = feat.size()
    feat = feat.view(b, ch, h * w)
    feat_t = feat.transpose(1, 2)
    gram = torch.bmm(feat, feat_t) / (ch * h * w)
    return gram


def naoto_total_variation_loss(image):
    loss = torch.mean(torch.abs(image[:, :, :, :-1] - image[:, :, :, 1:])) + \
        torch.mean(torch.abs(image[:, :, :-1, :] - image[:, :, 1:, :]))
    return loss


class NaotoVGG16FeatureExtractor(nn.Module):
    """net.py's VGG16FeatureExtractor, built on the given torchvision ``vgg16().features``."""

    def __init__(self, features):
        super().__init__()
        self.enc_1 = nn.Sequential(*features[:5])
        self.enc_2 = nn.Sequential(*features[5:10])
        self.enc_3 = nn.Sequential(*features[10:17])
        for i in range(3):
            for param in getattr(self, 'enc_{:d}'.format(i + 1)).parameters():
                param.requires_grad = False

    def forward(self, image):
        results = [image]
        for i in range(3):
            func = getattr(self, 'enc_{:d}'.format(i + 1))
            results.append(func(results[-1]))
        return results[1:]


class NaotoInpaintingLoss(nn.Module):
    def __init__(self, extractor):
        super().__init__()
        self.l1 = nn.L1Loss()
        self.extractor = extractor

    def forward(self, input, mask, output, gt):
        loss_dict = {}
        output_comp = mask * input + (1 - mask) * output

        loss_dict['hole'] = self.l1((1 - mask) * output, (1 - mask) * gt)
        loss_dict['valid'] = self.l1(mask * output, mask * gt)

        feat_output_comp = self.extractor(output_comp)
        feat_output = self.extractor(output)
        feat_gt = self.extractor(gt)

        loss_dict['prc'] = 0.0
        for i in range(3):
            loss_dict['prc'] += self.l1(feat_output[i], feat_gt[i])
            loss_dict['prc'] += self.l1(feat_output_comp[i], feat_gt[i])

        loss_dict['style'] = 0.0
        for i in range(3):
            loss_dict['style'] += self.l1(naoto_gram_matrix(feat_output[i]),
                                          naoto_gram_matrix(feat_gt[i]))
            loss_dict['style'] += self.l1(naoto_gram_matrix(feat_output_comp[i]),
                                          naoto_gram_matrix(feat_gt[i]))

        loss_dict['tv'] = naoto_total_variation_loss(output_comp)
        return loss_dict


def naoto_total(d, lambdas=LAMBDA_DICT):
    """train.py: loss = sum(coef * loss_dict[key] for key, coef in LAMBDA_DICT.items())"""
    return sum(coef * d[key] for key, coef in lambdas.items())
