"""Diffusion inpainting: β schedules, the forward process, the ε / x0 / v training objectives (with an
optional hole weighting) and the RePaint sampler. The loss module: :class:`inpaint_fast.DiffusionInpaintingLoss`.

Notation: ``x0`` is the clean image (N, C, H, W), ``t`` the timestep (N,) int64 in [0, T), and
``alphas_cumprod`` the schedule's ᾱ (float64, (T,)). ``mask`` = 1 for a known pixel (or ``hole`` = 1
for a missing one). The conditional objective feeds the model ``(x_t, t, x0 * m, m)`` (the notebook's
``eps_theta(x_t, t, x ⊙ m, m)``); the unconditional one ``(x_t, t)``. ``prediction_type`` uses
diffusers' names: 'epsilon' (ε, DDPM), 'sample' (x0) and 'v_prediction' (v = sqrt(ᾱ) ε - sqrt(1-ᾱ) x0,
Salimans & Ho 2022).
"""
from __future__ import annotations

import sys
from typing import Callable, Iterable, List, Optional

import torch
from torch import Tensor

from .. import _validation as V
from ..ops import backend as _backend
from ..ops import q_sample as _q_sample_op
from ..reference import diffusion as _ref
from ..reference.pixel import global_means, masked_mean

PREDICTION_TYPES = _ref.PREDICTION_TYPES
SCHEDULES = ("linear", "cosine")


def _check_prediction(out, like: Tensor, what: str = "a prediction") -> Tensor:
    if not isinstance(out, Tensor) or out.shape != like.shape:
        raise ValueError(f"model must return {what} of the image's shape {tuple(like.shape)}; "
                         f"got {getattr(out, 'shape', type(out).__name__)}")
    return out


def _check_model(model) -> None:
    if not callable(model):
        raise TypeError(f"model must be callable, model(x_t, t[, known_image, mask]); got {type(model).__name__}")


def linear_beta_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear β schedule (Ho et al. 2020): ``linspace(beta_start, beta_end, num_steps)``, float64 (T,)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int; got {num_steps!r}")
    beta_start = V.check_positive(beta_start, "beta_start")
    beta_end = V.check_positive(beta_end, "beta_end")
    if not beta_start <= beta_end < 1.0:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1; got beta_start={beta_start}, beta_end={beta_end}")
    return _ref.linear_betas(num_steps, beta_start, beta_end)


def cosine_beta_schedule(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """The cosine schedule of Nichol & Dhariwal 2021 (improved-diffusion; diffusers' 'squaredcos_cap_v2').

    ``ᾱ(u) = f(u)/f(0)``, ``f(u) = cos²((u + s)/(1 + s) · π/2)``, ``β_i = min(1 - ᾱ((i+1)/T)/ᾱ(i/T), max_beta)``;
    float64 of shape (T,). Without clipping, ``alphas_cumprod(β)[i] = f((i+1)/T)/f(0)``.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int; got {num_steps!r}")
    s = V.check_nonnegative(s, "s")
    max_beta = V.check_positive(max_beta, "max_beta")
    if max_beta >= 1.0:
        raise ValueError(f"max_beta must be < 1; got {max_beta}")
    return _ref.cosine_betas(num_steps, s, max_beta)


def beta_schedule(name: str = "linear", num_steps: int = 1000) -> Tensor:
    """A named β schedule with its published defaults: 'linear' (1e-4 → 0.02) or 'cosine' (s = 0.008)."""
    V.check_choice(name, "schedule", SCHEDULES)
    return linear_beta_schedule(num_steps) if name == "linear" else cosine_beta_schedule(num_steps)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """ᾱ_t = Π_{s≤t} (1 - β_s)."""
    if not isinstance(betas, Tensor) or betas.dim() != 1 or not betas.is_floating_point():
        raise TypeError(f"betas must be a 1-D floating tensor; got {getattr(betas, 'shape', type(betas).__name__)}")
    return _ref.alphas_cumprod(betas)


def sample_timesteps(batch: int, num_steps: int, *, device=None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Uniform timesteps in [0, num_steps), (batch,) int64, drawn with ``generator``."""
    V.check_int(batch, "batch", 0)
    V.check_int(num_steps, "num_steps", 1)
    return torch.randint(0, num_steps, (batch,), device=device, generator=generator)


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """The forward process ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) noise`` (Ho et al. 2020, eq. 4)."""
    V.check_image(x0, "x0")
    if _backend.choose("q_sample", x0.device) == "cpu":
        return _q_sample_op.q_sample(x0, t, noise, alphas_cumprod)
    return _ref.q_sample(x0, V.check_timesteps(t, x0, "x0"), V.check_noise(noise, x0, "x0"),
                         V.check_alphas_cumprod(alphas_cumprod, x0))


def get_velocity(x0: Tensor, noise: Tensor, t: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """The v-prediction target ``v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0`` (Salimans & Ho 2022; diffusers' name)."""
    V.check_image(x0, "x0")
    return _ref.get_velocity(x0, V.check_noise(noise, x0, "x0"), V.check_timesteps(t, x0, "x0"),
                             V.check_alphas_cumprod(alphas_cumprod, x0))


def convert_prediction(model_output: Tensor, x_t: Tensor, t: Tensor, alphas_cumprod: Tensor, *,
                       from_type: str, to_type: str) -> Tensor:
    """Express a model output of ``from_type`` as ``to_type`` given ``x_t`` at timestep ``t``.

    Types: 'epsilon' (ε), 'sample' (x0), 'v_prediction' (v). With ``x_t = a x0 + s ε`` (a = sqrt(ᾱ_t),
    s = sqrt(1-ᾱ_t)): ``x0 = (x_t - s ε)/a = a x_t - s v``, ``ε = (x_t - a x0)/s = s x_t + a v``,
    ``v = a ε - s x0``. Shapes: model_output and x_t (N, C, H, W), t (N,).
    """
    V.check_choice(from_type, "from_type", PREDICTION_TYPES)
    V.check_choice(to_type, "to_type", PREDICTION_TYPES)
    V.check_pair(model_output, x_t, "model_output", "x_t")
    return _ref.convert_prediction(model_output, x_t, V.check_timesteps(t, x_t, "x_t"),
                                   V.check_alphas_cumprod(alphas_cumprod, x_t),
                                   from_type, to_type)


def predicted_original_sample(model_output: Tensor, x_t: Tensor, t: Tensor, alphas_cumprod: Tensor, *,
                              prediction_type: str) -> Tensor:
    """x̂0 from a model output of ``prediction_type`` (diffusers' ``pred_original_sample``)."""
    return convert_prediction(model_output, x_t, t, alphas_cumprod, from_type=prediction_type, to_type="sample")


def predicted_noise(model_output: Tensor, x_t: Tensor, t: Tensor, alphas_cumprod: Tensor, *,
                    prediction_type: str) -> Tensor:
    """ε̂ from a model output of ``prediction_type``."""
    return convert_prediction(model_output, x_t, t, alphas_cumprod, from_type=prediction_type, to_type="epsilon")


def diffusion_loss(model: Callable[..., Tensor], x0: Tensor, *, alphas_cumprod: Tensor, mask: Optional[Tensor] = None,
                   hole: Optional[Tensor] = None, conditional: bool = False, t: Optional[Tensor] = None,
                   noise: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                   prediction_type: str = "epsilon", weight_hole: float = 1.0, weight_known: float = 1.0,
                   reduction: str = "mean", process_group=None) -> Tensor:
    """The denoising objective ``E ||target - model(x_t, t[, x0 ⊙ m, m])||²`` (DDPM's "simple" loss).

    ``target`` is ε ('epsilon'), x0 ('sample') or v ('v_prediction'), ``x_t = q_sample(x0, t, noise)``.
    ``t`` and ``noise`` are drawn (with ``generator``; ``t`` first) when not given. ``conditional=True``
    needs a mask and calls ``model(x_t, t, x0 * m, m)`` with m expanded to the batch (the notebook's
    conditional objective); otherwise ``model(x_t, t)``.

    Hole weighting (not in DDPM, diffusers or RePaint): with a mask and ``(weight_hole, weight_known)``
    other than (1, 1) the per-pixel squared error is weighted by ``w = weight_hole·(1-m) + weight_known·m``
    and 'mean' is ``sum(w e) / sum(w)`` over every element (the project's masked mean); (1, 1) is the
    plain mean. reduction: 'mean' | 'sum' | 'none' ((N, C, H, W) weighted squared error).
    ``process_group``: the mean over every rank's batch (:func:`inpaint_fast.masked_l1`).
    """
    V.check_image(x0, "x0")
    V.check_choice(reduction, "reduction", V.REDUCTIONS)
    V.check_choice(prediction_type, "prediction_type", PREDICTION_TYPES)
    weight_hole = V.check_nonnegative(weight_hole, "weight_hole")
    weight_known = V.check_nonnegative(weight_known, "weight_known")
    _check_model(model)
    alpha_bar = V.check_alphas_cumprod(alphas_cumprod, x0)
    group = V.check_process_group(process_group)
    weighted = (weight_hole, weight_known) != (1.0, 1.0)
    if weighted and mask is None and hole is None:
        raise ValueError("weight_hole / weight_known need a mask: pass mask= (1 = known pixel) or hole= (1 = missing pixel)")
    known = V.known_from_mask(mask, hole, x0, required=conditional, like_name="x0")
    t = sample_timesteps(x0.shape[0], alpha_bar.shape[0], device=x0.device, generator=generator) if t is None \
        else V.check_timesteps(t, x0, "x0")
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) if noise is None \
        else V.check_noise(noise, x0, "x0")
    x_t = q_sample(x0, t, noise, alpha_bar)
    if conditional:
        known_b = known.expand(x0.shape[0], -1, -1, -1)
        out = model(x_t, t, x0 * known_b, known_b)
    else:
        out = model(x_t, t)
    out = _check_prediction(out, x0, {"epsilon": "ε", "sample": "x0", "v_prediction": "v"}[prediction_type])
    target = _ref.prediction_target(x0, noise, t, alpha_bar, prediction_type)
    err = (out - target) ** 2
    weight = weight_hole * (1 - known) + weight_known * known if weighted else None
    with global_means(group):
        return masked_mean(err, weight, reduction=reduction)


def spaced_timesteps(num_train_steps: int, num_inference_steps: int) -> List[int]:
    """The training timesteps a sampler of ``num_inference_steps`` visits (ascending, from 0 to T-1):
    improved-diffusion's ``space_timesteps(T, [S])``, used by RePaint, step for step (the float stride
    (T-1)/(S-1) accumulated, then rounded); [T-1] for S = 1."""
    num_train_steps = V.check_int(num_train_steps, "num_train_steps")
    num_inference_steps = V.check_int(num_inference_steps, "num_inference_steps")
    if num_inference_steps > num_train_steps:
        raise ValueError(f"num_inference_steps must be <= num_train_steps ({num_train_steps}); got {num_inference_steps}")
    return _ref.spaced_timesteps(num_train_steps, num_inference_steps)


def get_schedule_jump(num_inference_steps: int, jump_length: int = 10, jump_n_sample: int = 10) -> List[int]:
    """RePaint's resampling schedule: a list of states from ``S - 1`` down to -1 (the clean image).

    A pair (a, a-1) is a denoising step, (a, a+1) a re-noising one; at each state j in
    ``range(0, S - jump_length, jump_length)`` the sampler goes ``jump_length`` states back up
    ``jump_n_sample - 1`` times (Lugmayr et al. 2022, ``get_schedule_jump``; diffusers' RePaintScheduler).
    Its length is ``S + 1 + 2 · jump_length · (jump_n_sample - 1) · len(range(0, S - jump_length, jump_length))``.
    """
    return _ref.get_schedule_jump(V.check_int(num_inference_steps, "num_inference_steps"),
                                  V.check_int(jump_length, "jump_length"), V.check_int(jump_n_sample, "jump_n_sample"))


def _progress(items: List, enabled: bool) -> Iterable:
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _print_progress(items)
    return tqdm(items, desc="RePaint", leave=False)


def _print_progress(items: List) -> Iterable:
    total, every = len(items), max(1, len(items) // 10)
    for i, item in enumerate(items, 1):
        yield item
        if i % every == 0 or i == total:
            print(f"RePaint: {i}/{total} steps", file=sys.stderr, flush=True)


SAMPLERS = ("repaint", "diffusers")


def repaint(model: Callable[..., Tensor], image: Tensor, *, alphas_cumprod: Tensor, mask: Optional[Tensor] = None,
            hole: Optional[Tensor] = None, num_inference_steps: Optional[int] = None, jump_length: int = 10,
            jump_n_sample: int = 10, prediction_type: str = "epsilon", conditional: bool = False,
            clip_denoised: bool = True, generator: Optional[torch.Generator] = None,
            progress: bool = False, sampler: str = "repaint", eta: Optional[float] = None) -> Tensor:
    """RePaint sampling (Lugmayr et al. 2022, Algorithm 1 with the resampling schedule).

    ``image`` (N, C, H, W) holds the known pixels (values in the model's range, e.g. [-1, 1]); ``mask``
    (1 = known) or ``hole`` (1 = missing). Starting from ``x ~ N(0, I)`` at the last of
    ``num_inference_steps`` (default: every training step) evenly spaced timesteps, each denoising step
    t → t' takes the hole from the model's DDPM posterior ``q(x_t' | x_t, x̂0)`` (x̂0 from the model's
    output of ``prediction_type``, clamped to [-1, 1] when ``clip_denoised``) and the known region from
    the input re-noised to t' (``q_sample(image, t')``), combined by ``repaint_blend``; each re-noising
    step of the jump schedule (:func:`get_schedule_jump`) draws ``q(x_t | x_t')``. The last step ends at
    t' = clean, so the known pixels of the result equal ``image`` (exactly, for a binary mask).

    ``model(x_t, t)`` (or ``model(x_t, t, image * m, m)`` when ``conditional``), ``t`` a (N,) int64
    training timestep. All noise is drawn with ``generator``: the same seed gives the same result.
    ``progress`` shows a tqdm bar (or prints to stderr without tqdm). Returns (N, C, H, W), no gradient.

    ``sampler='diffusers'`` runs RePaint as diffusers' ``RePaintPipeline`` / ``RePaintScheduler`` do, draw
    for draw: timesteps ``k · (T // S)``; each denoising step is DDIM's (Song et al. 2021) with ``eta``
    (default 0, the pipeline's; 1 has DDPM's variance), x̂0 clamped when ``clip_denoised`` but the
    direction term taken with the model's unclamped ε, and the known region re-noised with the same
    draw as the hole's variance; each re-noising goes ``T // S`` single training steps (one draw each).
    """
    _check_model(model)
    V.check_image(image, "image")
    V.check_choice(prediction_type, "prediction_type", PREDICTION_TYPES)
    V.check_choice(sampler, "sampler", SAMPLERS)
    if sampler == "repaint" and eta is not None:
        raise ValueError("eta applies to sampler='diffusers' (RePaint's own sampler takes DDPM's posterior steps)")
    eta = 0.0 if eta is None else V.check_nonnegative(eta, "eta")
    alpha_bar = V.check_alphas_cumprod(alphas_cumprod, image)
    known = V.known_from_mask(mask, hole, image, required=True, like_name="image")
    T = alpha_bar.shape[0]
    num_states = T if num_inference_steps is None else V.check_int(num_inference_steps, "num_inference_steps")
    if num_states > T:
        raise ValueError(f"num_inference_steps must be <= num_train_steps ({T}), the length of alphas_cumprod; "
                         f"got {num_states}")
    schedule = get_schedule_jump(num_states, jump_length, jump_n_sample)
    if sampler == "diffusers":
        return _repaint_diffusers(model, image, known, alpha_bar, schedule[:-1], T // num_states, eta,
                                  prediction_type, conditional, clip_denoised, generator, progress)
    steps = spaced_timesteps(T, num_states)

    n = image.shape[0]
    device, dtype = image.device, image.dtype
    # ᾱ with the clean level first: index k + 1 is state k, state -1 (the clean image) has ᾱ = 1.
    levels = torch.cat([alpha_bar.new_ones(1), alpha_bar[torch.tensor(steps, device=alpha_bar.device)]]).double()
    level_values = levels.tolist()
    levels = levels.to(device)
    state_t = [torch.full((n,), s, dtype=torch.long, device=device) for s in steps]
    known_b = known.expand(n, -1, -1, -1)
    cond = (image * known_b, known_b) if conditional else ()

    def randn() -> Tensor:
        return torch.randn(image.shape, generator=generator, device=device, dtype=dtype)

    fused = _backend.choose("q_sample", device) == "cpu"
    with torch.no_grad():
        x = randn()
        for k, k_next in _progress(list(zip(schedule[:-1], schedule[1:])), bool(progress)):
            a_k, a_next = level_values[k + 1], level_values[k_next + 1]
            if k_next > k:  # re-noise: q(x_{k+1} | x_k)
                x = _ref.forward_step(x, a_k, a_next, randn())
                continue
            t = state_t[k]
            out = _check_prediction(model(x, t, *cond), x)
            x0_pred = _ref.convert_prediction(out, x, t, alpha_bar, prediction_type, "sample")
            if clip_denoised:
                x0_pred = x0_pred.clamp(-1, 1)
            unknown = _ref.posterior_step(x, x0_pred, a_k, a_next, randn())
            t_next = torch.full((n,), k_next + 1, dtype=torch.long, device=device)
            if fused:  # one pass: m * q(image, t_next) + (1 - m) * unknown
                x = _q_sample_op.repaint_blend_fused(image, randn(), unknown, known, t_next, levels)
            else:
                x = _ref.repaint_blend(_ref.q_sample(image, t_next, randn(), levels), unknown, known)
    return x


def _repaint_diffusers(model, image: Tensor, known: Tensor, alpha_bar: Tensor, states: List[int], stride: int,
                       eta: float, prediction_type: str, conditional: bool, clip_denoised: bool,
                       generator: Optional[torch.Generator], progress: bool) -> Tensor:
    """diffusers' RePaintPipeline loop over ``states`` (the jump schedule, without the final clean
    state) at timesteps ``state · stride``: an entry below the previous one is a DDIM step from it to
    ``t - stride`` (the clean image below 0), an entry above it re-noises from the previous entry by
    ``stride`` single β steps."""
    n, device, dtype = image.shape[0], image.device, image.dtype
    levels = alpha_bar.double().tolist()
    betas = [1.0 - levels[0]] + [1.0 - levels[t] / levels[t - 1] for t in range(1, len(levels))]
    known_b = known.expand(n, -1, -1, -1)
    cond = (image * known_b, known_b) if conditional else ()

    def randn() -> Tensor:
        return torch.randn(image.shape, generator=generator, device=device, dtype=dtype)

    with torch.no_grad():
        x = randn()
        t_last = states[0] * stride + 1
        for state in _progress(states, bool(progress)):
            t = state * stride
            if t >= t_last:  # undo_step: t_last -> t_last + stride, one training step at a time
                for beta in betas[t_last:t_last + stride]:
                    x = (1 - beta) ** 0.5 * x + beta ** 0.5 * randn()
                t_last = t
                continue
            steps = torch.full((n,), t, dtype=torch.long, device=device)
            out = _check_prediction(model(x, steps, *cond), x)
            eps = _ref.convert_prediction(out, x, steps, alpha_bar, prediction_type, "epsilon")
            x0_pred = _ref.convert_prediction(out, x, steps, alpha_bar, prediction_type, "sample")
            if clip_denoised:
                x0_pred = x0_pred.clamp(-1, 1)
            a_t = levels[t]
            a_prev = levels[t - stride] if t - stride >= 0 else 1.0
            noise = randn()
            std = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
            unknown = a_prev ** 0.5 * x0_pred + (1 - a_prev - std ** 2) ** 0.5 * eps
            if t > 0 and eta > 0:
                unknown = unknown + std * noise
            x = known * (a_prev ** 0.5 * image + (1 - a_prev) ** 0.5 * noise) + (1 - known) * unknown
            t_last = t
    return x
