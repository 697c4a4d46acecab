"""The networks the losses use: frozen feature extractors (VGG for the perceptual and style losses, a
dilated ResNet-50 for LaMa's HRF loss) and patch discriminators. They depend only on
``inpaint_fast._validation``; the losses take any callable in their place."""
from .discriminators import NLayerDiscriminator, SNPatchDiscriminator
from .resnet import RESNET_LAYERS, ResNetFeatures
from .vgg import NOTEBOOK_LAYERS, VGGFeatures, layer_names

__all__ = ["VGGFeatures", "ResNetFeatures", "SNPatchDiscriminator", "NLayerDiscriminator", "layer_names",
           "NOTEBOOK_LAYERS", "RESNET_LAYERS"]


