"""photosynthesis-team/piq's total variation, transcribed (kept as written there), read at
photosynthesis-team/piq at 9948a52fc09ac5f7fb3618ce64b7086f5c3109da (v0.8.0): ``piq/tv.py``
(``total_variation``, ``TVLoss.forward``; last changed in 6a7bda38635f05f44faff26d063401f39ae60e98) and
``piq/utils/common.py`` (``_validate_input``, ``_reduce``; last changed in
01e16b7d8c76bc8765fb6a69560d806148b8046a).

An independent oracle for inpaint_fast's TV losses in the tests.

Per image (sum over C, H, W of the forward differences, no normalisation by the number of pixels), then
reduced over the batch by ``_reduce`` ('none' | 'mean' | 'sum'):
  'l1':         sum|dw| + sum|dh|
  'l2':         sqrt(sum dw^2 + sum dh^2)   (no eps inside the sqrt: the gradient is inf/nan at a constant image)
  'l2_squared': sum dw^2 + sum dh^2
``_validate_input([x], dim_range=(4, 4), data_range=(0, -1))`` only asserts a 4-D tensor (data_range (0, -1)
disables the range check); kept as an assert.
"""
import torch


def _reduce(x, reduction='mean'):
    """piq.utils.common._reduce: reduce input in batch dimension if needed."""
    if reduction == 'none':
        return x
    elif reduction == 'mean':
        return x.mean(dim=0)
    elif reduction == 'sum':
        return x.sum(dim=0)
    else:
        raise ValueError("Unknown reduction. Expected one of {'none', 'mean', 'sum'}")


def piq_total_variation(x, reduction='mean', norm_type='l2'):
    """piq.tv.total_variation"""
    assert torch.is_tensor(x), f'Expected torch.Tensor, got {type(x)}'
    assert x.dim() == 4, f'Expected number of dimensions to be 4, got {x.dim()}'

    if norm_type == 'l1':
        w_variance = torch.sum(torch.abs(x[:, :, :, 1:] - x[:, :, :, :-1]), dim=[1, 2, 3])
        h_variance = torch.sum(torch.abs(x[:, :, 1:, :] - x[:, :, :-1, :]), dim=[1, 2, 3])
        score = (h_variance + w_variance)
    elif norm_type == 'l2':
        w_variance = torch.sum(torch.pow(x[:, :, :, 1:] - x[:, :, :, :-1], 2), dim=[1, 2, 3])
        h_variance = torch.sum(torch.pow(x[:, :, 1:, :] - x[:, :, :-1, :], 2), dim=[1, 2, 3])
        score = torch.sqrt(h_variance + w_variance)
    elif norm_type == 'l2_squared':
        w_variance = torch.sum(torch.pow(x[:, :, :, 1:] - x[:, :, :, :-1], 2), dim=[1, 2, 3])
        h_variance = torch.sum(torch.pow(x[:, :, 1:, :] - x[:, :, :-1, :], 2), dim=[1, 2, 3])
        score = (h_variance + w_variance)
    else:
        raise ValueError("Incorrect norm type, should be one of {'l1', 'l2', 'l2_squared'}")

    return _reduce(score, reduction)


def piq_tv_loss(x, norm_type='l2', reduction='mean'):
    """piq.tv.TVLoss(norm_type, reduction).forward(x)"""
    score = piq_total_variation(x, reduction=reduction, norm_type=norm_type)
    return score
