"""open-mmlab/mmagic (formerly mmediting) pixel and GAN-penalty losses, transcribed (kept as written there)
from open-mmlab/mmagic at 0a560bba9b79ebe78574e1d4cbbdd0e798e63568 (HEAD of the default branch, 2024-01-31;
the three files below last changed in b3c855b5c11435ecb3723834333e6213f6e1f04c (loss_wrapper.py,
pixelwise_loss.py, loss_comps/disc_auxiliary_loss_comps.py) and 06f8b4b6f685782663ace8e80b168a74d1a3680e
(gan_loss.py)):

* ``mmagic/models/losses/loss_wrapper.py``: ``reduce_loss``, ``mask_reduce_loss`` and the ``masked_loss``
  decorator (inlined: element-wise loss, then ``mask_reduce_loss(loss, weight, reduction, sample_wise)``);
* ``mmagic/models/losses/pixelwise_loss.py``: ``l1_loss`` / ``mse_loss`` / ``charbonnier_loss`` and the
  forward of ``L1Loss`` / ``MSELoss`` / ``CharbonnierLoss`` (``loss_weight * <masked loss>``) as
  ``mmagic_l1_loss`` / ``mmagic_mse_loss`` / ``mmagic_charbonnier_loss``; ``MaskedTVLoss`` (a subclass of
  ``L1Loss`` built with reduction='mean', sample_wise=False) as ``mmagic_masked_tv_loss``;
* ``mmagic/models/losses/gan_loss.py``: ``gradient_penalty_loss``, ``GradientPenaltyLoss.forward``
  (``mmagic_gradient_penalty_loss_module``) and ``r1_gradient_penalty_loss`` (the ``loss_scaler`` /
  ``use_apex_amp`` branches left out);
* ``mmagic/models/losses/loss_comps/disc_auxiliary_loss_comps.py``: the ``data_info=None`` path of
  ``GradientPenaltyLossComps.forward`` and ``R1GradientPenaltyComps.forward`` (``* loss_weight``).

Next to these in gan_loss.py (not transcribed): ``disc_shift_loss(pred) = pred**2`` and ``DiscShiftLoss``
(default loss_weight=0.1), whose forward is ``torch.mean(pred**2) * loss_weight``: PGGAN's drift penalty on
the discriminator's raw outputs (the inpaintors call it on the disc prediction and log ``0.5 *`` it).

Mask convention. ``weight`` of the pixel losses is an element-wise weight, shape (N,1,H,W) or (N,C,H,W):
1 = pixel counted. With reduction='mean' the denominator is sum(weight) after expanding an (N,1,H,W) weight
to (N,C,H,W), i.e. C * sum(mask) counts, plus eps = 1e-12. In mmagic's inpaintors (base_models/one_stage.py:
``fake_img = gt_img * (1. - mask) + fake_res * mask``) ``mask`` is 1 = HOLE, 0 = known, and it is passed
as is as ``weight`` of the hole L1 (``1. - mask`` for the valid L1), as ``mask`` of ``MaskedTVLoss`` (so the
TV is taken over the hole: a difference is counted where its top / left pixel is a hole pixel), and as
``mask`` of ``GradientPenaltyLoss`` (gradients kept in the hole). That is the OPPOSITE of inpaint_fast's
``mask`` (1 = known): pass ``1 - m`` to these functions.
"""
import torch
import torch.nn.functional as F

_reduction_modes = ['none', 'mean', 'sum']


# ------------------------------------------------------------------ loss_wrapper.py

def reduce_loss(loss, reduction):
    reduction_enum = F._Reduction.get_enum(reduction)
    # none: 0, elementwise_mean:1, sum: 2
    if reduction_enum == 0:
        return loss
    if reduction_enum == 1:
        return loss.mean()
    if reduction_enum == 2:
        return loss.sum()
    raise ValueError(f'reduction type {reduction} not supported')


def mask_reduce_loss(loss, weight=None, reduction='mean', sample_wise=False):
    # if weight is specified, apply element-wise weight
    if weight is not None:
        assert weight.dim() == loss.dim()
        assert weight.size(1) == 1 or weight.size(1) == loss.size(1)
        loss = loss * weight

    # if weight is not specified or reduction is sum, just reduce the loss
    if weight is None or reduction == 'sum':
        loss = reduce_loss(loss, reduction)
    # if reduction is mean, then compute mean over masked region
    elif reduction == 'mean':
        # expand weight from N1HW to NCHW
        if weight.size(1) == 1:
            weight = weight.expand_as(loss)
        # small value to prevent division by zero
        eps = 1e-12

        # perform sample-wise mean
        if sample_wise:
            weight = weight.sum(dim=[1, 2, 3], keepdim=True)  # NCHW to N111
            loss = (loss / (weight + eps)).sum() / weight.size(0)
        # perform pixel-wise mean
        else:
            loss = loss.sum() / (weight.sum() + eps)

    # NB upstream: weight given with reduction='none' returns loss * weight unreduced.
    return loss


# ------------------------------------------------------------------ pixelwise_loss.py

def l1_loss(pred, target, weight=None, reduction='mean', sample_wise=False):
    """``@masked_loss`` ``l1_loss``: the element-wise loss, then mask_reduce_loss."""
    loss = F.l1_loss(pred, target, reduction='none')
    loss = mask_reduce_loss(loss, weight, reduction, sample_wise)
    return loss


def mse_loss(pred, target, weight=None, reduction='mean', sample_wise=False):
    """``@masked_loss`` ``mse_loss``."""
    loss = F.mse_loss(pred, target, reduction='none')
    loss = mask_reduce_loss(loss, weight, reduction, sample_wise)
    return loss


def charbonnier_loss(pred, target, weight=None, reduction='mean', sample_wise=False, eps=1e-12):
    """``@masked_loss`` ``charbonnier_loss`` (eps: inside the sqrt, the curvature near zero)."""
    loss = torch.sqrt((pred - target)**2 + eps)
    loss = mask_reduce_loss(loss, weight, reduction, sample_wise)
    return loss


def _check_reduction(reduction):
    # the modules' __init__ check
    if reduction not in ['none', 'mean', 'sum']:
        raise ValueError(f'Unsupported reduction mode: {reduction}. '
                         f'Supported ones are: {_reduction_modes}')


def mmagic_l1_loss(pred, target, weight=None, reduction='mean', sample_wise=False, loss_weight=1.0):
    """``L1Loss(loss_weight, reduction, sample_wise)(pred, target, weight)``."""
    _check_reduction(reduction)
    return loss_weight * l1_loss(
        pred,
        target,
        weight,
        reduction=reduction,
        sample_wise=sample_wise)


def mmagic_mse_loss(pred, target, weight=None, reduction='mean', sample_wise=False, loss_weight=1.0):
    """``MSELoss(loss_weight, reduction, sample_wise)(pred, target, weight)``."""
    _check_reduction(reduction)
    return loss_weight * mse_loss(
        pred,
        target,
        weight,
        reduction=reduction,
        sample_wise=sample_wise)


def mmagic_charbonnier_loss(pred, target, weight=None, reduction='mean', sample_wise=False,
                            loss_weight=1.0, eps=1e-12):
    """``CharbonnierLoss(loss_weight, reduction, sample_wise, eps)(pred, target, weight)``."""
    _check_reduction(reduction)
    return loss_weight * charbonnier_loss(
        pred,
        target,
        weight,
        eps=eps,
        reduction=reduction,
        sample_wise=sample_wise)


def mmagic_masked_tv_loss(pred, mask=None, loss_weight=1.0):
    """``MaskedTVLoss(loss_weight)(pred, mask)``: pred (n, c, h, w), mask (n, 1, h, w).

    Each ``super().forward`` is ``L1Loss.forward`` with reduction='mean', sample_wise=False, so each term
    carries its own ``loss_weight *``. As upstream, mask=None raises (None is sliced).
    """
    y_diff = mmagic_l1_loss(
        pred[:, :, :-1, :], pred[:, :, 1:, :], weight=mask[:, :, :-1, :], loss_weight=loss_weight)
    x_diff = mmagic_l1_loss(
        pred[:, :, :, :-1], pred[:, :, :, 1:], weight=mask[:, :, :, :-1], loss_weight=loss_weight)

    loss = x_diff + y_diff

    return loss


# ------------------------------------------------------------------ gan_loss.py

def gradient_penalty_loss(discriminator, real_data, fake_data, mask=None, norm_mode='pixel'):
    """WGAN-GP. alpha: one ``torch.rand`` draw of shape (batch, 1, 1, 1) from the global CPU generator in
    the default dtype, then ``.to(real_data)`` (dtype and device)."""
    batch_size = real_data.size(0)
    alpha = torch.rand(batch_size, 1, 1, 1).to(real_data)

    # interpolate between real_data and fake_data
    interpolates = alpha * real_data + (1. - alpha) * fake_data
    # autograd.Variable(t, requires_grad=True): a detached alias of t (a new leaf), as
    # interpolates.detach().requires_grad_(True); no gradient flows back to real_data / fake_data.
    interpolates = torch.autograd.Variable(interpolates, requires_grad=True)

    disc_interpolates = discriminator(interpolates)
    gradients = torch.autograd.grad(
        outputs=disc_interpolates,
        inputs=interpolates,
        grad_outputs=torch.ones_like(disc_interpolates),
        create_graph=True,
        retain_graph=True,
        only_inputs=True)[0]

    if mask is not None:
        gradients = gradients * mask

    if norm_mode == 'pixel':
        gradients_penalty = ((gradients.norm(2, dim=1) - 1)**2).mean()
    elif norm_mode == 'HWC':
        gradients_penalty = ((
            gradients.reshape(batch_size, -1).norm(2, dim=1) - 1)**2).mean()
    else:
        raise NotImplementedError(
            'Currently, we only support ["pixel", "HWC"] '
            f'norm mode but got {norm_mode}.')
    if mask is not None:
        gradients_penalty /= torch.mean(mask)

    return gradients_penalty


def mmagic_gradient_penalty_loss_module(discriminator, real_data, fake_data, mask=None, loss_weight=1.0):
    """``GradientPenaltyLoss(loss_weight)(discriminator, real_data, fake_data, mask)``: always
    norm_mode='pixel' (the function's default)."""
    loss = gradient_penalty_loss(
        discriminator, real_data, fake_data, mask=mask)

    return loss * loss_weight


def mmagic_gradient_penalty_loss_comps(discriminator, real_data, fake_data, mask=None, loss_weight=1.0):
    """``GradientPenaltyLossComps(loss_weight, norm_mode)(discriminator, real_data, fake_data, mask)`` with
    data_info=None: ``gradient_penalty_loss(*args, **kwargs) * loss_weight`` -- the module's norm_mode is
    NOT passed on that path (only the data_info path passes it), so it is 'pixel'."""
    return gradient_penalty_loss(discriminator, real_data, fake_data, mask=mask) * loss_weight


def r1_gradient_penalty_loss(discriminator, real_data, mask=None, norm_mode='pixel', loss_scaler=None,
                             use_apex_amp=False):
    """R1 penalty (Mescheder et al. 2018). Left out: the ``loss_scaler`` (GradScaler: scale disc_pred,
    then multiply gradients by 1 / scale) and ``use_apex_amp`` branches; only the plain path is here."""
    if loss_scaler or use_apex_amp:
        raise NotImplementedError('loss_scaler / use_apex_amp branches are not transcribed')
    batch_size = real_data.shape[0]

    # clone(): unlike the WGAN-GP's Variable, this keeps the graph back to the caller's real_data
    real_data = real_data.clone().requires_grad_()

    disc_pred = discriminator(real_data)

    gradients = torch.autograd.grad(
        outputs=disc_pred,
        inputs=real_data,
        grad_outputs=torch.ones_like(disc_pred),
        create_graph=True,
        retain_graph=True,
        only_inputs=True)[0]

    if mask is not None:
        gradients = gradients * mask

    if norm_mode == 'pixel':
        gradients_penalty = ((gradients.norm(2, dim=1))**2).mean()
    elif norm_mode == 'HWC':
        gradients_penalty = gradients.pow(2).reshape(batch_size,
                                                     -1).sum(1).mean()
    else:
        raise NotImplementedError(
            'Currently, we only support ["pixel", "HWC"] '
            f'norm mode but got {norm_mode}.')
    if mask is not None:
        gradients_penalty /= torch.mean(mask)

    return gradients_penalty


def mmagic_r1_gradient_penalty_comps(discriminator, real_data, mask=None, norm_mode='pixel', loss_weight=1.0):
    """``R1GradientPenaltyComps(loss_weight, norm_mode)(discriminator, real_data, mask=mask)`` with
    data_info=None (interval must then be 1): ``r1_gradient_penalty_loss(*args, norm_mode=self.norm_mode,
    **kwargs) * self.loss_weight``. (stylegan2.py instead multiplies the function by ``r1_loss_weight``.)"""
    return r1_gradient_penalty_loss(
        discriminator, real_data, mask=mask, norm_mode=norm_mode) * loss_weight
