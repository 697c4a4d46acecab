"""The composite objective: a weighted sum of named terms, whose feature terms share one feature pass."""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence

from torch import Tensor, nn

from .. import _validation as V
from ..functional.feature import FeatureCache
from ..functional.pixel import masked_error
from ..nets.vgg import NOTEBOOK_LAYERS
from ..reference import pixel as _ref_pixel
from .adversarial import AdversarialLoss, FeatureMatchingLoss, R1Penalty
from .feature import HRFPerceptualLoss, PerceptualLoss, StyleLoss, _make_extractor
from .frequency import FrequencyLoss
from .pixel import ReconstructionLoss, TVLoss

NOTEBOOK_COMPOSITE_WEIGHTS = {"rec": 1.0, "perc": 0.1, "style": 10.0, "tv": 0.01, "freq": 0.1}

TERMS = ("rec", "hole", "valid", "perc", "style", "tv", "freq", "hrf", "adv", "fm")
IMAGES = ("output", "composite")


def _check_module(module, name: str, cls):
    if module is not None and not isinstance(module, cls):
        raise TypeError(f"{name} must be an inpaint_fast.{cls.__name__}; got {type(module).__name__}")
    return module


class CompositeLoss(nn.Module):
    """A weighted sum of named inpainting terms; the feature terms share one feature pass per extractor.

    ``forward(pred, target, mask=... | hole=..., ...)`` returns a dict of the terms named in ``weights``
    (each unweighted) and their weighted sum ``'total'``. Terms:

    ======== =====================================================================================
    'rec'    ``reconstruction`` (hole/valid weighted pixel loss; the notebook's 6 / 1 L1) on ``pred``
    'hole'   the pixel loss of ``reconstruction`` (its ``loss``, ``normalize``) over the hole of ``pred``
    'valid'  the same over the known pixels
    'perc'   ``perceptual`` on each of ``feature_images``, summed
    'style'  ``style`` on each of ``feature_images``, summed (target Grams computed once)
    'tv'     ``tv`` of ``tv_image``
    'freq'   ``frequency`` of ``pred``
    'hrf'    ``hrf`` (LaMa's ResNetPL, its own ``weight`` included) on each of ``feature_images``
    'adv'    ``adversarial.generator_loss(fake_logits)``; the mask is passed when its region is 'hole'/'known'
    'fm'     ``feature_matching(fake_features, real_features)``; the mask as for 'adv'
    ======== =====================================================================================

    ``feature_images``: any of 'output' (``pred``) and 'composite' (``mask * target + (1 - mask) * pred``);
    ``tv_image``: one of them. With ``coarse=`` (a coarse-stage output, DeepFill's x1), 'rec', 'hole'
    and 'valid' also add their value on it. A mask is always required.

    Each term is configured by its module (default: the notebook's settings): ``reconstruction``
    (:class:`ReconstructionLoss`), ``perceptual`` (:class:`PerceptualLoss`), ``style``
    (:class:`StyleLoss`), ``tv`` (:class:`TVLoss`), ``frequency`` (:class:`FrequencyLoss`), ``hrf``
    (:class:`HRFPerceptualLoss`), ``adversarial`` (:class:`AdversarialLoss`), ``feature_matching``
    (:class:`FeatureMatchingLoss`). When 'perc' or 'style' is weighted and its module is not given, one
    VGG extractor is built (``extractor`` / ``arch`` / ``layers`` / ``vgg_weights``; channels_last) and shared.
    Feature terms whose modules hold the same extractor object share its :class:`FeatureCache`: the
    target goes through it once under no_grad, all ``feature_images`` once in one batched forward.

    ``discriminator_loss(real_logits, fake_logits, real_images=..., mask=... | hole=...)`` is the
    discriminator's side: ``adversarial``'s D loss (with the mask only when ``mask_as_fake_target``:
    LaMa's fake target) plus ``r1`` (:class:`R1Penalty`) when given.

    ``process_group`` (True: the default group): every masked mean of the generator's terms is taken
    over the ranks' whole batch (:func:`inpaint_fast.reference.pixel.global_means`); the style and frequency terms are
    plain means per rank (exact under DDP when every rank has the same batch size).

    With no arguments this is the notebook's composite: {rec 1, perc 0.1, style 10, tv 0.01, freq 0.1}.
    Presets: :func:`inpaint_fast.pconv_loss`, :func:`inpaint_fast.lama_loss`, :func:`inpaint_fast.deepfill_v2_loss`.
    """

    def __init__(self, weights: Optional[Mapping[str, float]] = None,
                 extractor: Optional[Callable[[Tensor], List[Tensor]]] = None, *, arch: str = "vgg16",
                 layers: Sequence = NOTEBOOK_LAYERS, vgg_weights="DEFAULT",
                 reconstruction: Optional[ReconstructionLoss] = None, perceptual: Optional[PerceptualLoss] = None,
                 style: Optional[StyleLoss] = None, tv: Optional[TVLoss] = None,
                 frequency: Optional[FrequencyLoss] = None, hrf: Optional[HRFPerceptualLoss] = None,
                 adversarial: Optional[AdversarialLoss] = None, feature_matching: Optional[FeatureMatchingLoss] = None,
                 r1: Optional[R1Penalty] = None, feature_images: Sequence[str] = ("output",), tv_image: str = "output",
                 mask_as_fake_target: bool = False, process_group=None):
        super().__init__()
        self.process_group = process_group
        self.weights = check_composite_weights(weights, TERMS)
        modules = {"reconstruction": (reconstruction, ReconstructionLoss, ("rec", "hole", "valid")),
                   "perceptual": (perceptual, PerceptualLoss, ("perc",)), "style": (style, StyleLoss, ("style",)),
                   "tv": (tv, TVLoss, ("tv",)), "frequency": (frequency, FrequencyLoss, ("freq",)),
                   "hrf": (hrf, HRFPerceptualLoss, ("hrf",)), "adversarial": (adversarial, AdversarialLoss, ("adv",)),
                   "feature_matching": (feature_matching, FeatureMatchingLoss, ("fm",)), "r1": (r1, R1Penalty, ("adv",))}
        for name, (module, cls, terms) in modules.items():
            _check_module(module, name, cls)
            if module is not None and not any(t in self.weights for t in terms):
                raise ValueError(f"{name}= is given but weights has none of its terms {list(terms)}; "
                                 f"weights: {self.weights}")
        if isinstance(feature_images, str) or not isinstance(feature_images, Sequence) or not feature_images:
            raise ValueError(f"feature_images must be a non-empty sequence of {IMAGES}; got {feature_images!r}")
        for image in feature_images:
            V.check_choice(image, "feature_images", IMAGES)
        if len(set(feature_images)) != len(feature_images):
            raise ValueError(f"feature_images names an image twice; got {list(feature_images)}")
        self.feature_images = tuple(feature_images)
        self.tv_image = V.check_choice(tv_image, "tv_image", IMAGES)
        if not isinstance(mask_as_fake_target, bool):
            raise TypeError(f"mask_as_fake_target must be a bool; got {type(mask_as_fake_target).__name__}")
        self.mask_as_fake_target = mask_as_fake_target

        w = self.weights
        if ("perc" in w and perceptual is None) or ("style" in w and style is None):
            shared = _make_extractor(extractor, arch, layers, vgg_weights, channels_last=True)
            if "perc" in w and perceptual is None:
                perceptual = PerceptualLoss(shared)
            if "style" in w and style is None:
                style = StyleLoss(shared)
        if any(t in w for t in ("rec", "hole", "valid")) and reconstruction is None:
            reconstruction = ReconstructionLoss()
        defaults = {"tv": (tv, TVLoss), "freq": (frequency, FrequencyLoss), "hrf": (hrf, HRFPerceptualLoss),
                    "adv": (adversarial, AdversarialLoss), "fm": (feature_matching, FeatureMatchingLoss)}
        built = {t: (m if m is not None or t not in w else cls()) for t, (m, cls) in defaults.items()}
        self.reconstruction, self.perceptual, self.style = reconstruction, perceptual, style
        self.tv, self.frequency, self.hrf = built["tv"], built["freq"], built["hrf"]
        self.adversarial, self.feature_matching, self.r1 = built["adv"], built["fm"], r1
        for name in ("perceptual", "style", "hrf"):
            module = getattr(self, name)
            if module is not None and module.reduction == "none":
                raise ValueError(f"{name} has reduction='none'; a composite term must be a scalar ('mean' or 'sum')")

    @property
    def extractor(self):
        """The VGG extractor of the perceptual/style terms (None when neither is weighted)."""
        module = self.perceptual if self.perceptual is not None else self.style
        return None if module is None else module.extractor

    def _pixel_terms(self, image: Tensor, target: Tensor, mask: V.Mask) -> Dict[str, Tensor]:
        rec, out = self.reconstruction, {}
        if rec is None:
            return out
        options = dict(loss=rec.loss, normalize=rec.normalize, reduction=rec.reduction, eps=rec.eps,
                       charbonnier_eps=rec.charbonnier_eps)
        if "rec" in self.weights:
            out["rec"] = masked_error(image, target, mask, weight_hole=rec.lambda_hole,
                                          weight_valid=rec.lambda_valid, **options)
        for term, weights in (("hole", (1.0, 0.0)), ("valid", (0.0, 1.0))):
            if term in self.weights:
                out[term] = masked_error(image, target, mask, weight_hole=weights[0], weight_valid=weights[1],
                                             **options)
        return out

    def _gan_mask(self, module, known: Tensor) -> Dict[str, Tensor]:
        return {"mask": known} if module.region in ("hole", "known") else {}

    def forward(self, pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                fake_logits: Optional[Tensor] = None, fake_features: Optional[Sequence[Tensor]] = None,
                real_features: Optional[Sequence[Tensor]] = None, coarse: Optional[Tensor] = None) -> Dict[str, Tensor]:
        with _ref_pixel.global_means(V.check_process_group(self.process_group)):
            return self._terms(pred, target, mask, hole, fake_logits, fake_features, real_features, coarse)

    def _terms(self, pred, target, mask, hole, fake_logits, fake_features, real_features, coarse) -> Dict[str, Tensor]:
        pred, target = V.check_pair(pred, target)
        m = V.mask_arg(mask, hole, pred, required=True)
        known = m.known(pred.dtype)
        w = self.weights
        feature_modules = [mod for t, mod in (("perc", self.perceptual), ("style", self.style), ("hrf", self.hrf))
                           if t in w]
        needs = set(self.feature_images) if feature_modules else set()
        if "tv" in w:
            needs.add(self.tv_image)
        images = {"output": pred}
        if "composite" in needs:
            images["composite"] = known * target.detach() + (1 - known) * pred  # the target stays a constant

        terms = self._pixel_terms(pred, target, m)
        if coarse is not None:
            coarse, _ = V.check_pair(coarse, target, "coarse", "target")
            for k, v in self._pixel_terms(coarse, target, m).items():
                terms[k] = terms[k] + v
        if feature_modules:
            feature_known = V.spatial_weight(known)
            caches: Dict[int, FeatureCache] = {}
            for term, module in (("perc", self.perceptual), ("style", self.style), ("hrf", self.hrf)):
                if term in w:
                    cache = caches.get(id(module.extractor))
                    if cache is None:
                        cache = FeatureCache(module.extractor, target, {k: images[k] for k in self.feature_images})
                        caches[id(module.extractor)] = cache
                    terms[term] = module.from_cache(cache, feature_known)
        if "tv" in w:
            terms["tv"] = self.tv(images[self.tv_image], mask=known)
        if "freq" in w:
            terms["freq"] = self.frequency(pred, target)
        if "adv" in w:
            if fake_logits is None:
                raise ValueError("the 'adv' term needs fake_logits= (the discriminator's logits of the fake images)")
            terms["adv"] = self.adversarial.generator_loss(fake_logits, **self._gan_mask(self.adversarial, known))
        if "fm" in w:
            if fake_features is None or real_features is None:
                raise ValueError("the 'fm' term needs fake_features= and real_features= (the discriminator's "
                                 "intermediate features of the fake and the real images)")
            terms["fm"] = self.feature_matching(fake_features, real_features,
                                                **self._gan_mask(self.feature_matching, known))
        terms = {k: terms[k] for k in w}
        terms["total"] = sum(w[k] * terms[k] for k in w)
        return terms

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor, *, real_images: Optional[Tensor] = None,
                           mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                           scaler=None) -> Dict[str, Tensor]:
        """The discriminator's objective: {'real', 'fake', 'r1' (with ``r1``), 'total'}.

        ``mask=``/``hole=`` is required with ``mask_as_fake_target`` (LaMa: a fake logit's target is
        "real" where its cell is known) or an ``adversarial`` of ``fake_mask='hole'`` (only the hole's
        fake logits count), and ignored otherwise; ``real_images`` (requiring grad, what D
        saw for ``real_logits``) is required with ``r1`` on its due steps; ``scaler``: see :func:`r1_penalty`.
        """
        if self.adversarial is None:
            raise ValueError("discriminator_loss needs an adversarial term: weights has no 'adv'")
        masks = {}
        if self.mask_as_fake_target or self.adversarial.fake_mask == "hole":
            if mask is None and hole is None:
                why = "mask_as_fake_target=True" if self.mask_as_fake_target else "adversarial has fake_mask='hole'"
                raise ValueError(f"{why}: pass mask= (1 = known) or hole= (1 = missing)")
            masks = {"mask": mask, "hole": hole}
        d = self.adversarial.discriminator_loss(real_logits, fake_logits, **masks)
        out = {"real": d.real, "fake": d.fake}
        if self.r1 is not None:
            if real_images is None and self.r1.due:
                raise ValueError("the R1 penalty needs real_images= (the real batch D saw, with requires_grad=True)")
            out["r1"] = self.r1(real_logits, real_images, scaler=scaler)
        out["total"] = sum(out.values())
        return out

    def extra_repr(self) -> str:
        return (f"weights={self.weights}, feature_images={self.feature_images}, tv_image={self.tv_image!r}, "
                f"mask_as_fake_target={self.mask_as_fake_target}")


def check_composite_weights(weights: Optional[Mapping[str, float]],
                            terms: Sequence[str] = tuple(NOTEBOOK_COMPOSITE_WEIGHTS)) -> Dict[str, float]:
    """A dict of non-negative weights over ``terms``; None gives the notebook's weights."""
    if weights is None:
        return dict(NOTEBOOK_COMPOSITE_WEIGHTS)
    return V.check_term_weights(weights, "weights", terms)


def composite_loss(pred: Tensor, target: Tensor, *, mask: Optional[Tensor] = None, hole: Optional[Tensor] = None,
                   extractor: Optional[Callable[[Tensor], List[Tensor]]] = None,
                   weights: Optional[Mapping[str, float]] = None) -> Dict[str, Tensor]:
    """The notebook's composite objective: a dict of the (unweighted) terms and their weighted ``'total'``.

    Terms: 'rec' (reconstruction, hole 6 / valid 1), 'perc' (perceptual over the hole), 'style'
    (unmasked), 'tv' (TV of pred over the hole), 'freq' (frequency). Only the terms named in
    ``weights`` (default: the notebook's rec 1, perc 0.1, style 10, tv 0.01, freq 0.1) are computed;
    perceptual and style share one feature pass. A mask is required. For the other terms and
    options, and the presets, see :class:`inpaint_fast.CompositeLoss`.
    """
    weights = check_composite_weights(weights)
    if ("perc" in weights or "style" in weights) and extractor is None:
        raise ValueError("composite terms 'perc' and 'style' need extractor=, e.g. inpaint_fast.VGGFeatures()")
    return CompositeLoss(weights, extractor)(pred, target, mask=mask, hole=hole)
