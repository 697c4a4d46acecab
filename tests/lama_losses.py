"""advimman/lama at 786f5936b27fb3dacd2b1ad799e4de968ea697e7, LaMa's ResNet-PL ("high receptive field
perceptual loss") and its R1 non-saturating adversarial loss, transcribed (kept as written there, minus
unused branches, downloads and non-torch imports): ``models/ade20k/resnet.py`` (``conv3x3``, ``Bottleneck``,
``ResNet`` with the 3-conv deep stem, ``resnet50``), ``models/ade20k/base.py`` (``ModelBuilder.weights_init``,
``ModelBuilder.build_encoder`` / ``get_encoder`` for 'resnet50dilated', ``ResnetDilated`` with
``_nostride_dilate``), ``saicinpainting/training/losses/perceptual.py`` (``IMAGENET_MEAN``/``IMAGENET_STD``,
``ResNetPL``) and ``saicinpainting/training/losses/adversarial.py`` (``BaseAdversarialLoss.interpolate_mask``
and its pre-step hooks, ``make_r1_gp``, ``NonSaturatingWithR1``). LaMa's ade20k modules live in
``models/ade20k/`` (not ``saicinpainting/training/modules/``); they are themselves "Modified from
https://github.com/CSAILVision/semantic-segmentation-pytorch" (read at 8f27c9b97d2ca7c6e05333d5766d144bf7d8c31b
for the checkpoint format, see ``lama_encoder_state_dict_keys``).

The independent oracles of inpaint_fast's ResNet-PL / LaMa-style adversarial loss in tests. Mask
convention: LaMa's ``mask`` is 1 = hole (missing, generated), 0 = known; the opposite of inpaint_fast's.

Deviations from the text upstream, none of which changes a number:
  * ``resnet50(pretrained=True)`` (ImageNet download, used upstream when ``weights == ''``) is not
    transcribed; ``lama_resnet50dilated()`` builds the random init ``ResNet.__init__`` gives
    (conv ~ N(0, sqrt(2 / (k*k*out_channels))), BN weight 1 / bias 0; upstream's
    ``net_encoder.apply(ModelBuilder.weights_init)`` is commented out, so ``weights_init`` is NOT applied
    to the encoder). ``avgpool``/``fc`` exist on the inner ResNet but are not copied into ResnetDilated.
  * ``functools.partial(self._nostride_dilate, dilate=d)`` -> an equivalent lambda; ``os.path.join`` ->
    an f-string with '/'; typing annotations dropped; ``BaseAdversarialLoss``'s abstract
    ``generator_loss``/``discriminator_loss`` (``raise NotImplemented()``) dropped; ``BCELoss`` and the
    mobilenet / decoder / SegmentationModule code (unused by ResNetPL) dropped.

Things worth knowing (upstream behaviour, kept):
  * ``ResNetPL.__init__`` calls ``self.impl.eval()`` once and freezes the weights; ``forward`` never
    calls eval() again. In LaMa's training the ResNetPL is a plain submodule (``self.loss_resnet_pl``) of
    the pytorch-lightning 1.2.9 LightningModule, whose ``model.train()`` / ``on_validation_model_train``
    recurse into it, and LaMa overrides neither -> BatchNorm probably runs in train mode (batch
    statistics, running stats updated) during real LaMa training after the first (sanity) validation.
    ``lama_resnet_pl`` below uses whatever mode ``impl`` is in.
  * ``ResNetPL.forward`` uses F.mse_loss with the default ``reduction='mean'`` per feature map (mean over
    N*C*H*W of that map), summed over the 4 maps, times ``weight`` (30 in LaMa's configs). No mask.
  * ``NonSaturatingWithR1``'s ``weight`` scales only the generator loss; the discriminator loss is
    unweighted. The ``discr_real_gp`` metric is already multiplied by ``gp_coef``.
  * ``make_r1_gp`` sets ``real_batch.requires_grad = False`` afterwards (so ``real_batch`` must be a leaf);
    under ``torch.no_grad()`` the penalty is the int 0.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import BatchNorm2d

# ---------------------------------------------------------------------------------------------------------
# models/ade20k/resnet.py
# ---------------------------------------------------------------------------------------------------------

model_urls = {
    'resnet50': 'http://sceneparsing.csail.mit.edu/model/pretrained_resnet/resnet50-imagenet.pth',
}


def conv3x3(in_planes, out_planes, stride=1):
    "3x3 convolution with padding"
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride,
                     padding=1, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super(Bottleneck, self).__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride,
                               padding=1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x

        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)

        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)

        out = self.conv3(out)
        out = self.bn3(out)

        if self.downsample is not None:
            residual = self.downsample(x)

        out += residual
        out = self.relu(out)

        return out


class ResNet(nn.Module):

    def __init__(self, block, layers, num_classes=1000):
        self.inplanes = 128
        super(ResNet, self).__init__()
        self.conv1 = conv3x3(3, 64, stride=2)
        self.bn1 = BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(64, 64)
        self.bn2 = BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv3x3(64, 128)
        self.bn3 = BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AvgPool2d(7, stride=1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
            elif isinstance(m, BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion,
                          kernel_size=1, stride=stride, bias=False),
                BatchNorm2d(planes * block.expansion),
            )

        layers = []
        layers.append(block(self.inplanes, planes, stride, downsample))
        self.inplanes = planes * block.expansion
        for i in range(1, blocks):
            layers.append(block(self.inplanes, planes))

        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.maxpool(x)

        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)

        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        x = self.fc(x)

        return x


def resnet50(pretrained=False, **kwargs):
    """Constructs a ResNet-50 model.

    Args:
        pretrained (bool): If True, returns a model pre-trained on ImageNet
    """
    model = ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)
    if pretrained:
        # upstream: model.load_state_dict(load_url(model_urls['resnet50']), strict=False)
        raise NotImplementedError('ImageNet download (models/ade20k/resnet.py resnet50(pretrained=True)) '
                                  'is not transcribed')
    return model


# ---------------------------------------------------------------------------------------------------------
# models/ade20k/base.py
# ---------------------------------------------------------------------------------------------------------

# Resnet Dilated
class ResnetDilated(nn.Module):
    def __init__(self, orig_resnet, dilate_scale=8):
        super().__init__()

        if dilate_scale == 8:
            orig_resnet.layer3.apply(
                lambda m: self._nostride_dilate(m, dilate=2))
            orig_resnet.layer4.apply(
                lambda m: self._nostride_dilate(m, dilate=4))
        elif dilate_scale == 16:
            orig_resnet.layer4.apply(
                lambda m: self._nostride_dilate(m, dilate=2))

        # take pretrained resnet, except AvgPool and FC
        self.conv1 = orig_resnet.conv1
        self.bn1 = orig_resnet.bn1
        self.relu1 = orig_resnet.relu1
        self.conv2 = orig_resnet.conv2
        self.bn2 = orig_resnet.bn2
        self.relu2 = orig_resnet.relu2
        self.conv3 = orig_resnet.conv3
        self.bn3 = orig_resnet.bn3
        self.relu3 = orig_resnet.relu3
        self.maxpool = orig_resnet.maxpool
        self.layer1 = orig_resnet.layer1
        self.layer2 = orig_resnet.layer2
        self.layer3 = orig_resnet.layer3
        self.layer4 = orig_resnet.layer4

    def _nostride_dilate(self, m, dilate):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            # the convolution with stride
            if m.stride == (2, 2):
                m.stride = (1, 1)
                if m.kernel_size == (3, 3):
                    m.dilation = (dilate // 2, dilate // 2)
                    m.padding = (dilate // 2, dilate // 2)
            # other convoluions
            else:
                if m.kernel_size == (3, 3):
                    m.dilation = (dilate, dilate)
                    m.padding = (dilate, dilate)

    def forward(self, x, return_feature_maps=False):
        conv_out = []

        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.maxpool(x)

        x = self.layer1(x)
        conv_out.append(x)
        x = self.layer2(x)
        conv_out.append(x)
        x = self.layer3(x)
        conv_out.append(x)
        x = self.layer4(x)
        conv_out.append(x)

        if return_feature_maps:
            return conv_out
        return [x]


# Model Builder
class ModelBuilder:
    # custom weights initialization
    @staticmethod
    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            nn.init.kaiming_normal_(m.weight.data)
        elif classname.find('BatchNorm') != -1:
            m.weight.data.fill_(1.)
            m.bias.data.fill_(1e-4)

    @staticmethod
    def build_encoder(arch='resnet50dilated', fc_dim=512, weights=''):
        pretrained = True if len(weights) == 0 else False
        arch = arch.lower()
        if arch == 'resnet50dilated':
            orig_resnet = resnet50(pretrained=pretrained)
            net_encoder = ResnetDilated(orig_resnet, dilate_scale=8)
        else:
            raise Exception('Architecture undefined!')

        # encoders are usually pretrained
        # net_encoder.apply(ModelBuilder.weights_init)
        if len(weights) > 0:
            print('Loading weights for net_encoder')
            net_encoder.load_state_dict(
                torch.load(weights, map_location=lambda storage, loc: storage), strict=False)
        return net_encoder

    @staticmethod
    def get_encoder(weights_path, arch_encoder, arch_decoder, fc_dim, segmentation,
                    *arts, **kwargs):
        if segmentation:
            path = f'{weights_path}/ade20k/ade20k-{arch_encoder}-{arch_decoder}/encoder_epoch_20.pth'
        else:
            path = ''
        return ModelBuilder.build_encoder(arch=arch_encoder, fc_dim=fc_dim, weights=path)


def lama_resnet50dilated(weights_path=None):
    """LaMa's ResNetPL encoder (``ResnetDilated(resnet50(), dilate_scale=8)``).

    ``weights_path=None``: upstream's random init (ResNet.__init__; no ImageNet / ADE20k download).
    ``weights_path=DIR``: exactly ``ModelBuilder.get_encoder(weights_path=DIR, arch_encoder='resnet50dilated',
    arch_decoder='ppm_deepsup', fc_dim=2048, segmentation=True)``, i.e. ``torch.load`` of
    ``DIR/ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth`` and
    ``load_state_dict(..., strict=False)``. Returned in train mode (as built); ResNetPL calls eval().
    """
    if weights_path is None:
        return ResnetDilated(resnet50(pretrained=False), dilate_scale=8)
    return ModelBuilder.get_encoder(weights_path=weights_path, arch_encoder='resnet50dilated',
                                    arch_decoder='ppm_deepsup', fc_dim=2048, segmentation=True)


def lama_encoder_state_dict_keys():
    """The ``state_dict()`` keys of the transcribed encoder (computed from the module).

    Upstream's checkpoint ``ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth`` (LaMa's README
    wgets it from http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup/; note
    the directory is ``...-ppm_deepsup``, built from ``arch_decoder='ppm_deepsup'``) was written by
    CSAILVision/semantic-segmentation-pytorch ``train.py``'s ``checkpoint()``:
    ``torch.save(net_encoder.state_dict(), '{}/encoder_epoch_{}.pth')`` on the *unwrapped* ``ResnetDilated``
    (only the surrounding SegmentationModule is wrapped in UserScatteredDataParallel), with the same
    attribute names (conv1..bn3, layer1..layer4; SynchronizedBatchNorm2d has BatchNorm2d's keys). So its keys
    are these, with NO prefix to strip ('module.' / 'encoder.' are absent). No source we read prints the
    file's keys; whether it holds the ``*.num_batches_tracked`` buffers depends on the PyTorch version it
    was trained with. LaMa loads it with ``strict=False``, so missing/extra keys would pass silently.
    """
    return list(lama_resnet50dilated().state_dict().keys())


# ---------------------------------------------------------------------------------------------------------
# saicinpainting/training/losses/perceptual.py
# ---------------------------------------------------------------------------------------------------------

IMAGENET_MEAN = torch.FloatTensor([0.485, 0.456, 0.406])[None, :, None, None]
IMAGENET_STD = torch.FloatTensor([0.229, 0.224, 0.225])[None, :, None, None]


class ResNetPL(nn.Module):
    """perceptual.py's ResNetPL; ``impl`` (extra) replaces the get_encoder call when given."""

    def __init__(self, weight=1,
                 weights_path=None, arch_encoder='resnet50dilated', segmentation=True, impl=None):
        super().__init__()
        if impl is None:
            impl = ModelBuilder.get_encoder(weights_path=weights_path,
                                            arch_encoder=arch_encoder,
                                            arch_decoder='ppm_deepsup',
                                            fc_dim=2048,
                                            segmentation=segmentation)
        self.impl = impl
        self.impl.eval()
        for w in self.impl.parameters():
            w.requires_grad_(False)

        self.weight = weight

    def forward(self, pred, target):
        return lama_resnet_pl(pred, target, self.impl, weight=self.weight)


def lama_resnet_pl(pred, target, impl, weight=30):
    """``ResNetPL.forward`` (pred/target in [0, 1]); weight=30 as in LaMa's configs (class default 1).

    Does not touch ``impl``'s train/eval mode (upstream calls ``impl.eval()`` only in ``__init__``)."""
    pred = (pred - IMAGENET_MEAN.to(pred)) / IMAGENET_STD.to(pred)
    target = (target - IMAGENET_MEAN.to(target)) / IMAGENET_STD.to(target)

    pred_feats = impl(pred, return_feature_maps=True)
    target_feats = impl(target, return_feature_maps=True)

    result = torch.stack([F.mse_loss(cur_pred, cur_target)
                          for cur_pred, cur_target
                          in zip(pred_feats, target_feats)]).sum() * weight
    return result


# ---------------------------------------------------------------------------------------------------------
# saicinpainting/training/losses/adversarial.py
# ---------------------------------------------------------------------------------------------------------

class BaseAdversarialLoss:
    def pre_generator_step(self, real_batch, fake_batch, generator, discriminator):
        """
        Prepare for generator step
        """

    def pre_discriminator_step(self, real_batch, fake_batch, generator, discriminator):
        """
        Prepare for discriminator step
        """

    def interpolate_mask(self, mask, shape):
        assert mask is not None
        assert self.allow_scale_mask or shape == mask.shape[-2:]
        if shape != mask.shape[-2:] and self.allow_scale_mask:
            if self.mask_scale_mode == 'maxpool':
                mask = F.adaptive_max_pool2d(mask, shape)
            else:
                mask = F.interpolate(mask, size=shape, mode=self.mask_scale_mode)
        return mask


def make_r1_gp(discr_real_pred, real_batch):
    if torch.is_grad_enabled():
        grad_real = torch.autograd.grad(outputs=discr_real_pred.sum(), inputs=real_batch, create_graph=True)[0]
        grad_penalty = (grad_real.view(grad_real.shape[0], -1).norm(2, dim=1) ** 2).mean()
    else:
        grad_penalty = 0
    real_batch.requires_grad = False

    return grad_penalty


class NonSaturatingWithR1(BaseAdversarialLoss):
    def __init__(self, gp_coef=5, weight=1, mask_as_fake_target=False, allow_scale_mask=False,
                 mask_scale_mode='nearest', extra_mask_weight_for_gen=0,
                 use_unmasked_for_gen=True, use_unmasked_for_discr=True):
        self.gp_coef = gp_coef
        self.weight = weight
        # use for discr => use for gen;
        # otherwise we teach only the discr to pay attention to very small difference
        assert use_unmasked_for_gen or (not use_unmasked_for_discr)
        # mask as target => use unmasked for discr:
        # if we don't care about unmasked regions at all
        # then it doesn't matter if the value of mask_as_fake_target is true or false
        assert use_unmasked_for_discr or (not mask_as_fake_target)
        self.use_unmasked_for_gen = use_unmasked_for_gen
        self.use_unmasked_for_discr = use_unmasked_for_discr
        self.mask_as_fake_target = mask_as_fake_target
        self.allow_scale_mask = allow_scale_mask
        self.mask_scale_mode = mask_scale_mode
        self.extra_mask_weight_for_gen = extra_mask_weight_for_gen

    def generator_loss(self, real_batch, fake_batch, discr_real_pred, discr_fake_pred, mask=None):
        fake_loss = F.softplus(-discr_fake_pred)
        if (self.mask_as_fake_target and self.extra_mask_weight_for_gen > 0) or \
                not self.use_unmasked_for_gen:  # == if masked region should be treated differently
            mask = self.interpolate_mask(mask, discr_fake_pred.shape[-2:])
            if not self.use_unmasked_for_gen:
                fake_loss = fake_loss * mask
            else:
                pixel_weights = 1 + mask * self.extra_mask_weight_for_gen
                fake_loss = fake_loss * pixel_weights

        return fake_loss.mean() * self.weight, dict()

    def pre_discriminator_step(self, real_batch, fake_batch, generator, discriminator):
        real_batch.requires_grad = True

    def discriminator_loss(self, real_batch, fake_batch, discr_real_pred, discr_fake_pred, mask=None):

        real_loss = F.softplus(-discr_real_pred)
        grad_penalty = make_r1_gp(discr_real_pred, real_batch) * self.gp_coef
        fake_loss = F.softplus(discr_fake_pred)

        if not self.use_unmasked_for_discr or self.mask_as_fake_target:
            # == if masked region should be treated differently
            mask = self.interpolate_mask(mask, discr_fake_pred.shape[-2:])
            # use_unmasked_for_discr=False only makes sense for fakes;
            # for reals there is no difference beetween two regions
            fake_loss = fake_loss * mask
            if self.mask_as_fake_target:
                fake_loss = fake_loss + (1 - mask) * F.softplus(-discr_fake_pred)

        sum_discr_loss = real_loss + grad_penalty + fake_loss
        metrics = dict(discr_real_out=discr_real_pred.mean(),
                       discr_fake_out=discr_fake_pred.mean(),
                       discr_real_gp=grad_penalty)
        return sum_discr_loss.mean(), metrics


# LaMa's configs (configs/training/big-lama.yaml, lama-fourier.yaml, ...: losses.adversarial, kind r1)
LAMA_ADV_OPTIONS = dict(weight=10, gp_coef=0.001, mask_as_fake_target=True, allow_scale_mask=True)


def lama_nonsat_generator_loss(real_batch, fake_batch, discr_real_pred, discr_fake_pred, mask, **options):
    """``NonSaturatingWithR1(**options).generator_loss(...)`` -> (loss, {}). Options default as upstream's
    constructor (gp_coef=5, weight=1, mask_as_fake_target=False, allow_scale_mask=False,
    mask_scale_mode='nearest', extra_mask_weight_for_gen=0, use_unmasked_for_gen=True,
    use_unmasked_for_discr=True); LaMa's configs use ``LAMA_ADV_OPTIONS``. mask: 1 = hole."""
    loss = NonSaturatingWithR1(**options)
    return loss.generator_loss(real_batch=real_batch, fake_batch=fake_batch,
                               discr_real_pred=discr_real_pred, discr_fake_pred=discr_fake_pred,
                               mask=mask)


def lama_nonsat_discriminator_loss(real_batch, fake_batch, discr_real_pred, discr_fake_pred, mask, **options):
    """``NonSaturatingWithR1(**options).discriminator_loss(...)`` -> (loss, metrics dict with
    discr_real_out, discr_fake_out, discr_real_gp (= gp_coef * R1)).

    ``discr_real_pred`` must have been computed from ``real_batch`` (a leaf with requires_grad=True, as
    upstream's ``pre_discriminator_step`` sets it) under grad mode; afterwards ``real_batch.requires_grad``
    is False (make_r1_gp's side effect, kept). mask: 1 = hole."""
    loss = NonSaturatingWithR1(**options)
    return loss.discriminator_loss(real_batch=real_batch, fake_batch=fake_batch,
                                   discr_real_pred=discr_real_pred, discr_fake_pred=discr_fake_pred,
                                   mask=mask)
