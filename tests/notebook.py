"""The loss code of the notebook *Loss Functions for Image Inpainting*, verbatim (indentation restored), as
the independent oracle. Only the global ``vgg`` is set by the tests (the notebook builds it from
pretrained weights) and the plotting helpers are left out. Note the notebook's argument order: reference
first, prediction second.
"""
import torch
import torch.nn.functional as F

vgg = None  # the tests assign a torchvision ``vgg16(...).features[:16].eval()``, frozen


def get_box_mask(x, top=40, left=50, height=100, width=100):
    mask = torch.ones(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
    mask[:, :, top:top+height, left:left+width] = 0
    return mask


def get_mean(x, mask=None, eps=1e-8):
    if mask is None:
        return x.mean()
    mask = mask.expand_as(x)
    return (x * mask).sum() / mask.sum().clamp_min(eps)


def l1_loss(x, y, mask=None):
    return get_mean((x - y).abs(), mask)


def l2_loss(x, y, mask=None):
    return get_mean((x - y) ** 2, mask)


def reconstruction_loss(x, y, mask, lambda_hole=6.0, lambda_valid=1.0):
    hole = 1 - mask
    valid = mask
    return lambda_hole * l1_loss(x, y, hole) + lambda_valid * l1_loss(x, y, valid)


def imagenet_normalize(x):
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def extract_vgg_features(x, layers=[3, 8, 15]):
    feats = []
    x = imagenet_normalize(x)
    for i, layer in enumerate(vgg.to(x.device)):
        x = layer(x)
        if i in layers:
            feats.append(x)
    return feats


def perceptual_loss(x, y, mask=None):
    x_feats = [f.detach() for f in extract_vgg_features(x)]
    y_feats = extract_vgg_features(y)
    losses = []
    for fx, fy in zip(x_feats, y_feats):
        d = (fx - fy).abs()
        if mask is not None:
            m = F.interpolate(mask, size=d.shape[-2:], mode="nearest")
            losses.append(get_mean(d, m))
        else:
            losses.append(d.mean())
    return torch.stack(losses).mean()


def gram_matrix(f):
    n, c, h, w = f.shape
    f = f.view(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def style_loss(x, y):
    x_feats = [f.detach() for f in extract_vgg_features(x)]
    y_feats = extract_vgg_features(y)
    losses = []
    for fx, fy in zip(x_feats, y_feats):
        losses.append((gram_matrix(fx) - gram_matrix(fy)).abs().mean())
    return torch.stack(losses).mean()


def tv_loss(y, mask=None):
    dh = (y[:, :, 1:, :] - y[:, :, :-1, :]).abs()
    dw = (y[:, :, :, 1:] - y[:, :, :, :-1]).abs()
    if mask is None:
        return dh.mean() + dw.mean()
    mh = mask[:, :, 1:, :] * mask[:, :, :-1, :]
    mw = mask[:, :, :, 1:] * mask[:, :, :, :-1]
    return get_mean(dh, mh) + get_mean(dw, mw)


def bce_logits_loss(logits, target):
    target = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, target)


def fft_magnitude(x):
    return torch.fft.rfft2(x, norm="ortho").abs()


def frequency_loss(x, y):
    fx = torch.log1p(fft_magnitude(x))
    fy = torch.log1p(fft_magnitude(y))
    return (fx - fy).abs().mean()


def composite_loss(x, y, mask, weights):
    terms = {
        "rec": reconstruction_loss(x, y, mask),
        "perc": perceptual_loss(x, y, 1 - mask),
        "style": style_loss(x, y),
        "tv": tv_loss(y, 1 - mask),
        "freq": frequency_loss(x, y),
    }
    total = sum(weights[k] * terms[k] for k in weights)
    terms["total"] = total
    return terms


NOTEBOOK_WEIGHTS = {"rec": 1.0, "perc": 0.1, "style": 10.0, "tv": 0.01, "freq": 0.1}
