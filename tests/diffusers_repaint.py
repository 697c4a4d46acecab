"""huggingface/diffusers' RePaint, transcribed to plain PyTorch (kept as written there), read at
huggingface/diffusers at 58eb52c0803ea9af3abec60841c2a093bdf1f951:
``src/diffusers/schedulers/scheduling_repaint.py`` (``RePaintScheduler``: ``__init__``, ``set_timesteps``,
``_get_variance``, ``step``, ``undo_step``; last changed in 612036aa14e416902fc38c3f3ef30fe8357acf7f),
``src/diffusers/pipelines/deprecated/repaint/pipeline_repaint.py`` (``RePaintPipeline.__call__``'s loop;
last changed in 2843b3d37ad7c83b44cdcd098b9c064e1569457d) and ``src/diffusers/utils/torch_utils.py``
(``randn_tensor``; last changed in 7d2e86a85a372df75ee2ccefe84e5a44cfc60429).

The independent oracle of inpaint_fast's RePaint sampler in the tests.

Differences from upstream, none numeric:
* ``DiffusersRePaintScheduler(betas)`` is ``RePaintScheduler(trained_betas=betas)``: upstream does
  ``torch.from_numpy(trained_betas)``, so the betas keep their dtype (float64 in -> float64 betas,
  alphas and alphas_cumprod). Upstream's own ``beta_schedule="linear"`` (no trained_betas) is
  ``torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)``, i.e. float32:
  ``DiffusersRePaintScheduler.linear(...)`` builds exactly that. ``num_train_timesteps`` (a separate config
  entry upstream, default 1000) defaults here to ``len(betas)``. ``final_alpha_cumprod`` is
  ``torch.tensor(1.0)`` (float32, exact) whatever the betas' dtype. ``clip_sample`` defaults to True as
  upstream.
* ``step`` returns the tuple ``(prev_sample, pred_original_sample)`` (upstream's ``return_dict=False``).
* ``diffusers_repaint`` is ``RePaintPipeline.__call__`` with ``model(x, t)`` in place of
  ``self.unet(image, t).sample``; it returns the raw final sample (in [-1, 1] space) unless
  ``postprocess=True``, which applies the pipeline's ``(image / 2 + 0.5).clamp(0, 1)`` (kept NCHW: the
  pipeline's ``permute`` / numpy / PIL conversion is dropped). The "unet dtype" is ``original_image.dtype``
  and the execution device ``original_image.device``.

Conventions (checked in the source): the pipeline's ``_preprocess_image`` / ``_preprocess_mask`` return
tensors untouched (only PIL images are converted: image ``2 * x / 255 - 1``, mask ``L / 255`` thresholded
at 0.5), so a tensor image must already be in [-1, 1]; the mask is 1 = known (kept), 0 = to inpaint
("The mask_image where 0.0 define which part of the original image to inpaint"; ``step`` ends with
``mask * prev_known_part + (1 - mask) * prev_unknown_part``). ``t`` given to the model is an element of
``scheduler.timesteps``: a 0-d int64 tensor (``torch.from_numpy`` of a numpy int64 array), not a python int.
Random draws, all from the one generator in this order: the initial noise (image shape), then per loop
entry either one draw in ``step`` (drawn even when eta == 0 or t == 0, and used both for the variance term
and for noising the known part) or ``num_train_timesteps // num_inference_steps`` draws in ``undo_step``.
"""
import numpy as np
import torch


def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
    """diffusers.utils.torch_utils.randn_tensor (the mps / neuron special cases and the log message dropped)."""
    if isinstance(device, str):
        device = torch.device(device)
    rand_device = device
    batch_size = shape[0]

    layout = layout or torch.strided
    device = device or torch.device("cpu")

    if generator is not None:
        gen_device_type = generator.device.type if not isinstance(generator, list) else generator[0].device.type
        if gen_device_type != device.type and gen_device_type == "cpu":
            rand_device = "cpu"
        elif gen_device_type != device.type and gen_device_type == "cuda":
            raise ValueError(f"Cannot generate a {device} tensor from a generator of type {gen_device_type}.")

    # make sure generator list of length 1 is treated like a non-list
    if isinstance(generator, list) and len(generator) == 1:
        generator = generator[0]

    if isinstance(generator, list):
        shape = (1,) + tuple(shape[1:])
        latents = [
            torch.randn(shape, generator=generator[i], device=rand_device, dtype=dtype, layout=layout)
            for i in range(batch_size)
        ]
        latents = torch.cat(latents, dim=0).to(device)
    else:
        latents = torch.randn(shape, generator=generator, device=rand_device, dtype=dtype, layout=layout).to(device)

    return latents


class DiffusersRePaintScheduler:
    """diffusers.RePaintScheduler with ``trained_betas=betas``."""

    order = 1

    def __init__(self, betas, eta=0.0, clip_sample=True, num_train_timesteps=None):
        if isinstance(betas, np.ndarray):
            betas = torch.from_numpy(betas)
        self.num_train_timesteps = len(betas) if num_train_timesteps is None else num_train_timesteps
        self.clip_sample = clip_sample

        self.betas = betas

        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.one = torch.tensor(1.0)

        self.final_alpha_cumprod = torch.tensor(1.0)

        # standard deviation of the initial noise distribution
        self.init_noise_sigma = 1.0

        # setable values
        self.num_inference_steps = None
        self.timesteps = torch.from_numpy(np.arange(0, self.num_train_timesteps)[::-1].copy())

        self.eta = eta

    @classmethod
    def linear(cls, num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, **kwargs):
        """Upstream's ``beta_schedule="linear"`` without trained_betas (float32 betas)."""
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
        return cls(betas, num_train_timesteps=num_train_timesteps, **kwargs)

    def scale_model_input(self, sample, timestep=None):
        return sample

    def set_timesteps(self, num_inference_steps, jump_length=10, jump_n_sample=10, device=None):
        num_inference_steps = min(self.num_train_timesteps, num_inference_steps)
        self.num_inference_steps = num_inference_steps

        timesteps = []

        jumps = {}
        for j in range(0, num_inference_steps - jump_length, jump_length):
            jumps[j] = jump_n_sample - 1

        t = num_inference_steps
        while t >= 1:
            t = t - 1
            timesteps.append(t)

            if jumps.get(t, 0) > 0:
                jumps[t] = jumps[t] - 1
                for _ in range(jump_length):
                    t = t + 1
                    timesteps.append(t)

        timesteps = np.array(timesteps) * (self.num_train_timesteps // self.num_inference_steps)
        self.timesteps = torch.from_numpy(timesteps).to(device)

    def _get_variance(self, t):
        prev_timestep = t - self.num_train_timesteps // self.num_inference_steps

        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        beta_prod_t_prev = 1 - alpha_prod_t_prev

        # variance = (1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * self.betas[t]
        variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)

        return variance

    def step(self, model_output, timestep, sample, original_image, mask, generator=None):
        """Returns ``(prev_sample, pred_original_sample)``."""
        t = timestep
        prev_timestep = timestep - self.num_train_timesteps // self.num_inference_steps

        # 1. compute alphas, betas
        alpha_prod_t = self.alphas_cumprod[t]
        alpha_prod_t_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t

        # 2. compute predicted original sample from predicted noise also called
        # "predicted x_0" of formula (15) from https://huggingface.co/papers/2006.11239
        pred_original_sample = (sample - beta_prod_t**0.5 * model_output) / alpha_prod_t**0.5

        # 3. Clip "predicted x_0"
        if self.clip_sample:
            pred_original_sample = torch.clamp(pred_original_sample, -1, 1)

        # 5. Add noise
        device = model_output.device
        noise = randn_tensor(model_output.shape, generator=generator, device=device, dtype=model_output.dtype)
        std_dev_t = self.eta * self._get_variance(timestep) ** 0.5

        variance = 0
        if t > 0 and self.eta > 0:
            variance = std_dev_t * noise

        # 6. compute "direction pointing to x_t" of formula (12)
        # from https://huggingface.co/papers/2010.02502
        pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** 0.5 * model_output

        # 7. compute x_{t-1} of formula (12) from https://huggingface.co/papers/2010.02502
        prev_unknown_part = alpha_prod_t_prev**0.5 * pred_original_sample + pred_sample_direction + variance

        # 8. Algorithm 1 Line 5 https://huggingface.co/papers/2201.09865
        prev_known_part = (alpha_prod_t_prev**0.5) * original_image + ((1 - alpha_prod_t_prev) ** 0.5) * noise

        # 9. Algorithm 1 Line 8 https://huggingface.co/papers/2201.09865
        pred_prev_sample = mask * prev_known_part + (1.0 - mask) * prev_unknown_part

        return pred_prev_sample, pred_original_sample

    def undo_step(self, sample, timestep, generator=None):
        n = self.num_train_timesteps // self.num_inference_steps

        for i in range(n):
            beta = self.betas[timestep + i]
            noise = randn_tensor(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)

            # 10. Algorithm 1 Line 10 https://huggingface.co/papers/2201.09865
            sample = (1 - beta) ** 0.5 * sample + beta**0.5 * noise

        return sample

    def __len__(self):
        return self.num_train_timesteps


@torch.no_grad()
def diffusers_repaint(model, original_image, mask_image, scheduler, num_inference_steps=250, eta=0.0,
                      jump_length=10, jump_n_sample=10, generator=None, postprocess=False):
    """RePaintPipeline.__call__ for tensor inputs (image in [-1, 1], mask 1 = known); ``model(x, t)`` -> eps,
    ``t`` a 0-d int64 tensor."""
    device = original_image.device
    dtype = original_image.dtype  # self.unet.dtype
    mask_image = mask_image.to(device=device, dtype=dtype)

    batch_size = original_image.shape[0]

    # sample gaussian noise to begin the loop
    if isinstance(generator, list) and len(generator) != batch_size:
        raise ValueError(
            f"You have passed a list of generators of length {len(generator)}, but requested an effective batch"
            f" size of {batch_size}. Make sure the batch size matches the length of the generators."
        )

    image_shape = original_image.shape
    image = randn_tensor(image_shape, generator=generator, device=device, dtype=dtype)

    # set step values
    scheduler.set_timesteps(num_inference_steps, jump_length, jump_n_sample, device)
    scheduler.eta = eta

    t_last = scheduler.timesteps[0] + 1
    generator = generator[0] if isinstance(generator, list) else generator
    for i, t in enumerate(scheduler.timesteps):
        if t < t_last:
            # predict the noise residual
            model_output = model(image, t)
            # compute previous image: x_t -> x_t-1
            image = scheduler.step(model_output, t, image, original_image, mask_image, generator)[0]

        else:
            # compute the reverse: x_t-1 -> x_t
            image = scheduler.undo_step(image, t_last, generator)
        t_last = t

    if postprocess:
        image = (image / 2 + 0.5).clamp(0, 1)
    return image
