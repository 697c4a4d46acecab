"""Masked means over the global batch under DistributedDataParallel (``process_group=``): 2 and 4 gloo
processes on CPU, each holding an uneven share of one batch whose samples have very different hole
sizes, against one process on the whole batch (float64, to 1e-12 relative).

The model is a DDP-wrapped convolution: after backward its (DDP-averaged) gradients must equal one
process's, and every loss value must equal the one-process value on every rank.
"""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import inpaint_fast as IF

N, SIZE = 5, 16
SPLITS = {2: [2, 3], 4: [1, 1, 1, 2]}


def global_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 3, SIZE, SIZE, generator=g, dtype=torch.float64)
    target = torch.rand(N, 3, SIZE, SIZE, generator=g, dtype=torch.float64)
    t = torch.randint(0, 100, (N,), generator=g)
    noise = torch.randn(N, 3, SIZE, SIZE, generator=g, dtype=torch.float64)
    hole = torch.zeros(N, 1, SIZE, SIZE, dtype=torch.float64)
    for i in range(N):
        side = 2 + 3 * i
        hole[i, :, 1:1 + side, i:i + side] = 1
    return x, target, hole, t, noise


ABAR = torch.cumprod(1 - torch.linspace(1e-4, 0.2, 100, dtype=torch.float64), 0)


def disc_like_eps(disc):
    """A frozen ε model for the diffusion loss (image-shaped output)."""
    return lambda x_t, t: x_t * disc(x_t).mean(dim=(1, 2, 3), keepdim=True) + t.to(x_t.dtype).view(-1, 1, 1, 1) / 100


def make_nets():
    torch.manual_seed(1)
    model = torch.nn.Conv2d(3, 3, 3, padding=1).double()
    disc = torch.nn.Conv2d(3, 1, 4, stride=4).double().requires_grad_(False)
    extractor_conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1).double().requires_grad_(False)
    return model, disc, lambda x: [F.relu(extractor_conv(x))]


def losses(model, disc, extractor, x, target, hole, t, noise, process_group):
    """The values of several masked losses of model(x), taken over ``process_group``."""
    pred = model(x)
    lama = IF.lama_loss(hrf_extractor=extractor, process_group=process_group)
    logits = disc(pred)
    terms = lama(pred, target, hole=hole, fake_logits=logits, fake_features=[logits], real_features=[disc(target)])
    pg = dict(process_group=process_group)
    return {
        "charbonnier_all": IF.masked_charbonnier(pred, target, hole=hole, region="all", **pg),
        "perceptual_hole": IF.perceptual_loss(pred, target, extractor=extractor, hole=hole, **pg),
        "generator_hole": IF.generator_loss(logits, hole=hole, loss="hinge", **pg),
        "feature_matching_known": IF.feature_matching_loss([logits], [disc(target)], hole=hole, region="known", **pg),
        "diffusion_weighted": IF.diffusion_loss(disc_like_eps(disc), pred, alphas_cumprod=ABAR, hole=hole, t=t,
                                                noise=noise, weight_hole=4.0, **pg),
        "masked_l1": IF.masked_l1(pred, target, hole=hole, process_group=process_group),
        "masked_l2_known": IF.masked_l2(pred, target, hole=hole, region="known", process_group=process_group),
        "reconstruction_sample": IF.reconstruction_loss(pred, target, hole=hole, normalize="sample",
                                                        process_group=process_group),
        "tv_hole_dilated": IF.total_variation(pred, hole=hole, region="hole_dilated", p=2,
                                              process_group=process_group),
        "tv_module": IF.TVLoss("hole", process_group=process_group)(pred, hole=hole),
        **{f"composite_{k}": v for k, v in IF.CompositeLoss(
            {"rec": 1.0, "tv": 0.1, "perc": 0.5}, perceptual=IF.PerceptualLoss(extractor, region="known"),
            process_group=process_group)(pred, target, hole=hole).items()},
        **{f"lama_{k}": v for k, v in terms.items()},
    }


def worker(rank, world_size, init_file, fail_file):
    try:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
        torch.set_num_threads(1)
        x, target, hole, t, noise = global_batch()
        model, disc, extractor = make_nets()

        expected = losses(model, disc, extractor, x, target, hole, t, noise, None)
        sum(expected.values()).backward()
        expected_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()

        start = sum(SPLITS[world_size][:rank])
        part = slice(start, start + SPLITS[world_size][rank])
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        got = losses(ddp, disc, extractor, x[part], target[part], hole[part], t[part], noise[part], True)
        sum(got.values()).backward()
        for k in expected:
            torch.testing.assert_close(got[k], expected[k], rtol=1e-12, atol=0, msg=k)
        for a, b in zip(model.parameters(), expected_grads):
            torch.testing.assert_close(a.grad, b, rtol=1e-12, atol=1e-15)
        # without process_group each rank's mean differs (the uneven shares hold different hole sizes)
        alone = IF.masked_l1(model(x[part]), target[part], hole=hole[part])
        assert not torch.allclose(alone, expected["masked_l1"], rtol=1e-6)
        dist.destroy_process_group()
    except BaseException as e:  # the parent reads the first failure
        with open(f"{fail_file}.{rank}", "w") as f:
            f.write(f"{type(e).__name__}: {e}")
        raise


@pytest.mark.parametrize("world_size", [2, 4])
def test_masked_means_over_ranks_equal_one_process(world_size, tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    fail = tmp_path / "failed"
    try:
        mp.spawn(worker, args=(world_size, str(tmp_path / "init"), str(fail)), nprocs=world_size, join=True)
    except Exception:
        reports = [p.read_text() for p in sorted(tmp_path.glob("failed.*"))]
        pytest.fail("; ".join(reports) or "a worker failed")


def test_process_group_needs_torch_distributed():
    x = torch.rand(1, 3, 4, 4)
    if dist.is_available() and dist.is_initialized():
        pytest.skip("a process group is initialised in this process")
    with pytest.raises(ValueError, match="needs torch.distributed initialised"):
        IF.masked_l1(x, x, process_group=True)
