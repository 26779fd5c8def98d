"""Tests of gas_core.diffusion.sampler: EDM Euler sampling with batched guidance and sliding windows."""

from __future__ import annotations

import pytest
import torch

from gas_core.diffusion import GASConditions, GASModel, sample_latents
from gas_core.diffusion.guidance import view_guidance_scales
from tests.gas_core.diffusion.helpers import BATCH, FRAMES, LATENT, perturb_, random_conditions

STEPS = 3


@pytest.fixture()
def model(tiny_model: GASModel) -> GASModel:
    """The tiny model with non-zero condition encoders, so every condition changes the output."""
    perturb_(tiny_model.denoiser.pose_net, seed=5, std=0.05)
    perturb_(tiny_model.denoiser.nerf_net, seed=6, std=0.05)
    return tiny_model


class DenoiserCalls:
    """Records (noisy latents shape, conditions) of every denoiser forward call."""

    def __init__(self, model: GASModel):
        self.shapes: list[tuple[int, ...]] = []
        self.conditions: list[GASConditions] = []
        self._handle = model.denoiser.register_forward_hook(self._record)

    def _record(self, module, args, output) -> None:
        self.shapes.append(tuple(args[0].shape))
        self.conditions.append(args[2])

    def remove(self) -> None:
        self._handle.remove()


def _sample(model: GASModel, conditions: GASConditions, *, seed: int = 0, **options) -> torch.Tensor:
    return sample_latents(model, conditions, num_steps=STEPS, generator=torch.Generator().manual_seed(seed), **options)


def test_shape_finite_and_deterministic(model):
    conditions = random_conditions(model)
    first = _sample(model, conditions, guidance_scales=view_guidance_scales(FRAMES))
    again = _sample(model, conditions, guidance_scales=view_guidance_scales(FRAMES))
    other_seed = _sample(model, conditions, seed=1, guidance_scales=view_guidance_scales(FRAMES))
    assert first.shape == (BATCH, FRAMES, 4, LATENT, LATENT)
    assert torch.isfinite(first).all()
    assert torch.equal(first, again)
    assert not torch.allclose(first, other_seed)
    assert model.denoiser.training  # the tiny preset starts in train mode; the sampler restores it


def test_unit_guidance_skips_unconditional_pass_and_guided_call_is_batched(model):
    conditions = random_conditions(model)
    calls = DenoiserCalls(model)
    unguided = _sample(model, conditions)
    unit = _sample(model, conditions, guidance_scales=torch.ones(BATCH, FRAMES))
    assert calls.shapes == [(BATCH, FRAMES, 4, LATENT, LATENT)] * (2 * STEPS)
    assert torch.equal(unguided, unit)

    calls.shapes.clear()
    calls.conditions.clear()
    guided = _sample(model, conditions, guidance_scales=torch.full((FRAMES,), 2.0))
    calls.remove()
    assert calls.shapes == [(2 * BATCH, FRAMES, 4, LATENT, LATENT)] * STEPS  # one call per step, batch 2B
    batched = calls.conditions[0]
    assert torch.equal(batched.reference_latent[:BATCH], conditions.reference_latent)
    assert torch.equal(batched.image_embedding[:BATCH], conditions.image_embedding)
    assert not batched.reference_latent[BATCH:].any() and not batched.image_embedding[BATCH:].any()
    for name in ("nerf_latents", "normal_maps", "mode", "added_time_ids"):  # kept in the unconditional half
        value = getattr(conditions, name)
        assert torch.equal(getattr(batched, name), torch.cat([value, value]))
    assert torch.isfinite(guided).all()
    assert not torch.allclose(guided, unguided)


def test_zero_guidance_is_the_unconditional_branch(model):
    conditions = random_conditions(model)
    zero_scale = _sample(model, conditions, guidance_scales=torch.zeros(FRAMES))
    unconditional = _sample(model, conditions.without_reference())
    torch.testing.assert_close(zero_scale, unconditional, rtol=1e-4, atol=1e-4)


def test_window_covering_all_frames_equals_unwindowed(model):
    conditions = random_conditions(model)
    scales = view_guidance_scales(FRAMES)
    unwindowed = _sample(model, conditions, guidance_scales=scales)
    windowed = _sample(model, conditions, guidance_scales=scales, window=FRAMES, overlap=1)
    assert torch.equal(unwindowed, windowed)


def test_sliding_windows_bound_frames_per_call(model):
    frames, window = 7, 4  # windows [0,1,2,3], [0,3,4,5], [0,4,5,6]
    conditions = random_conditions(model, batch=1, frames=frames)
    calls = DenoiserCalls(model)
    latents = _sample(model, conditions, guidance_scales=view_guidance_scales(frames), window=window, overlap=1)
    calls.remove()
    assert latents.shape == (1, frames, 4, LATENT, LATENT)
    assert torch.isfinite(latents).all()
    assert len(calls.shapes) == 3 * STEPS
    assert all(shape[0] == 2 and shape[1] <= window for shape in calls.shapes)
    # Each window sees its own frames' conditions (the second window: frames 0, 3, 4, 5).
    second = calls.conditions[1]
    expected = conditions.nerf_latents[:, [0, 3, 4, 5]]
    assert torch.equal(second.nerf_latents[:1], expected) and torch.equal(second.nerf_latents[1:], expected)
    # Windowed denoising really differs from one pass over all frames.
    whole = _sample(model, conditions, guidance_scales=view_guidance_scales(frames))
    assert not torch.allclose(latents, whole)


def _first_step_inputs(model: GASModel, conditions: GASConditions, **options) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The denoiser inputs of a sampling run's calls (c_in-scaled noisy latents) and its result."""
    inputs: list[torch.Tensor] = []
    handle = model.denoiser.register_forward_hook(lambda module, args, output: inputs.append(args[0].clone()))
    try:
        latents = _sample(model, conditions, **options)
    finally:
        handle.remove()
    return inputs, latents


def test_default_initial_noise_is_one_independent_draw_per_frame(model):
    """The default path is unchanged: the first call sees c_in * sigma_max * randn(B, F, ...) of the generator."""
    from gas_core.diffusion.edm import edm_preconditioning, karras_sigmas

    conditions = random_conditions(model)
    inputs, latents = _first_step_inputs(model, conditions)
    sigma = karras_sigmas(STEPS)[0]
    noise = torch.randn((BATCH, FRAMES, 4, LATENT, LATENT), generator=torch.Generator().manual_seed(0))
    c_in = edm_preconditioning(sigma.reshape(1)).c_in
    torch.testing.assert_close(inputs[0], c_in * (noise * sigma))
    explicit = _sample(model, conditions, window_convention="project", tiled_noise=False)
    assert torch.equal(latents, explicit)


def test_official_windows_and_tiled_noise(model):
    frames, window = 7, 4  # windows [0,1,2,3], [0,3,4,5], [0,4,5,6]: official overlap 2 = project overlap 1
    conditions = random_conditions(model, batch=1, frames=frames)
    project = _sample(model, conditions, window=window, overlap=1)
    official = _sample(model, conditions, window=window, overlap=2, window_convention="official")
    assert torch.equal(project, official)
    inputs, tiled = _first_step_inputs(model, conditions, window=window, overlap=1, tiled_noise=True)
    first, second, third = inputs[:3]  # the first step's three windows
    noise = {0: first[0, 0], 1: first[0, 1], 2: first[0, 2], 3: first[0, 3], 4: second[0, 2], 5: second[0, 3],
             6: third[0, 3]}
    for index in range(window, frames):  # periodic in time with the window length
        assert torch.equal(noise[index], noise[index - window])
    assert not torch.equal(noise[1], noise[2])
    assert not torch.allclose(tiled, project)  # the default noise is not periodic
    with pytest.raises(ValueError, match="window_convention"):
        _sample(model, conditions, window=window, window_convention="release")
    with pytest.raises(ValueError, match="overlap"):
        _sample(model, conditions, window=window, overlap=0, window_convention="official")


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"num_steps": 0}, "num_steps"),
        ({"guidance_scales": torch.ones(FRAMES + 1)}, "guidance_scales"),
        ({"guidance_scales": torch.ones(BATCH + 1, FRAMES)}, "guidance_scales"),
        ({"guidance_scales": torch.tensor([1.0, float("nan"), 1.0])}, "guidance_scales"),
        ({"window": 1}, "window"),
        ({"window": 3, "overlap": 2}, "overlap"),
        ({"sigma_min": 1.0, "sigma_max": 0.5}, "sigma_min"),
    ],
)
def test_bad_arguments_raise(model, options, name):
    conditions = random_conditions(model)
    with pytest.raises(ValueError, match=name):
        sample_latents(model, conditions, **{"num_steps": STEPS, **options})
