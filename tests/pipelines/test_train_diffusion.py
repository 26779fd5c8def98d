"""The diffusion trainer: condition dropout, data mixing, one-step maths, cached latents, loop, resume, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from gas_core.diffusion import GASConditions, GASModel, GenerationMode, svd_added_time_ids
from gas_core.diffusion.edm import edm_loss_weight
from pipelines.cache_latents import CacheLatentsConfig, cache_clip_latents, encode_clip_latents
from pipelines.train_diffusion import (
    ClipCollator,
    DiffusionTrainConfig,
    MixedClipStream,
    apply_condition_dropout,
    condition_dropout_masks,
    config_to_yaml,
    draw_training_noise,
    encode_batch,
    latent_shape_of,
    latest_checkpoint,
    load_train_config,
    train,
    training_loss,
)
from shards.reader import clip_to_tensors
from tests.shards.samples import make_clip, write_clip_shards

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model() -> GASModel:
    return GASModel.from_preset("tiny", seed=0)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    return write_clip_shards(tmp_path_factory.mktemp("clips"), ["view", "pose", "view", "pose"])


@pytest.fixture(scope="module")
def cached_clip_dir(tmp_path_factory, clip_dir) -> Path:
    """The same clips with latents baked by the tiny model (seed 0, the one the tiny config trains)."""
    out = tmp_path_factory.mktemp("cached") / "clips"
    report = cache_clip_latents(clip_dir, out, CacheLatentsConfig.tiny(), device="cpu")
    assert report.clips_written == 4
    return out


def _tiny_config(out_dir: Path, clips: Path, **changes) -> DiffusionTrainConfig:
    config = load_train_config(preset="tiny", overrides=[f"data.clips=[{clips}]", f"out_dir={out_dir}"])
    return replace(config, **changes)


def _batch(seeds=(0, 1), modes=("view", "pose")):
    samples = [clip_to_tensors(make_clip(f"s{seed}", mode=mode, size=64, n_frames=4, seed=seed)) for seed, mode in zip(seeds, modes)]
    return ClipCollator(num_frames=4)(samples)


# ------------------------------------------------------------------------------------------- condition dropout
def test_condition_dropout_rates_are_honoured_and_independent():
    generator = torch.Generator().manual_seed(0)
    drop_embedding, drop_latent = condition_dropout_masks(40000, embedding_rate=0.1, reference_latent_rate=0.3,
                                                          generator=generator)
    assert drop_embedding.dtype == torch.bool and drop_embedding.shape == (40000,)
    assert drop_embedding.float().mean().item() == pytest.approx(0.1, abs=0.006)
    assert drop_latent.float().mean().item() == pytest.approx(0.3, abs=0.008)
    both = (drop_embedding & drop_latent).float().mean().item()
    assert both == pytest.approx(0.1 * 0.3, abs=0.004)  # independent: P(both) = product
    never, always = condition_dropout_masks(100, embedding_rate=0.0, reference_latent_rate=1.0)
    assert not never.any() and always.all()


def test_dropped_conditions_are_zeros_and_the_rest_is_kept():
    generator = torch.Generator().manual_seed(1)
    conditions = GASConditions(
        reference_latent=torch.randn(4, 4, 8, 8, generator=generator) + 3.0,
        image_embedding=torch.randn(4, 1, 32, generator=generator) + 3.0,
        nerf_latents=torch.randn(4, 2, 4, 8, 8, generator=generator),
        normal_maps=torch.rand(4, 2, 3, 64, 64, generator=generator),
        mode=GenerationMode.POSE.one_hot(4),
        added_time_ids=svd_added_time_ids(4),
    )
    drop_embedding = torch.tensor([True, False, True, False])
    drop_latent = torch.tensor([True, True, False, False])
    dropped = apply_condition_dropout(conditions, drop_embedding, drop_latent)
    for index in range(4):
        embedding_zero = bool((dropped.image_embedding[index] == 0).all())
        latent_zero = bool((dropped.reference_latent[index] == 0).all())
        assert embedding_zero == bool(drop_embedding[index])
        assert latent_zero == bool(drop_latent[index])
        if not drop_embedding[index]:
            assert torch.equal(dropped.image_embedding[index], conditions.image_embedding[index])
        if not drop_latent[index]:
            assert torch.equal(dropped.reference_latent[index], conditions.reference_latent[index])
    for name in ("nerf_latents", "normal_maps", "mode", "added_time_ids"):
        assert torch.equal(getattr(dropped, name), getattr(conditions, name))
    with pytest.raises(ValueError, match="drop_embedding"):
        apply_condition_dropout(conditions, drop_embedding.float(), drop_latent)


def test_encode_batch_applies_configured_dropout(tiny_model):
    batch = _batch()
    config = DiffusionTrainConfig.tiny()
    always = replace(config, conditioning=replace(config.conditioning, embedding_dropout=1.0, reference_latent_dropout=0.0))
    noise = draw_training_noise(batch, latent_shape_of(tiny_model, batch), always, torch.Generator().manual_seed(0))
    _, conditions = encode_batch(tiny_model, batch, noise, always.conditioning)
    assert bool((conditions.image_embedding == 0).all())
    assert bool((conditions.reference_latent != 0).any(dim=(1, 2, 3)).all())
    # the augmentation strength reaches SVD's third added time id; fps is passed as fps - 1
    torch.testing.assert_close(conditions.added_time_ids[:, 2], noise.aug_strengths)
    assert conditions.added_time_ids[0, 0].item() == config.conditioning.fps - 1


# ------------------------------------------------------------------------------------------- one step
def test_training_loss_is_the_weighted_denoising_error(tiny_model):
    """A fresh tiny model: the loss matches lambda(sigma) * mean((D - x)^2) recomputed by hand."""
    batch = _batch()
    config = DiffusionTrainConfig.tiny()
    noise = draw_training_noise(batch, latent_shape_of(tiny_model, batch), config, torch.Generator().manual_seed(4))
    loss = training_loss(tiny_model, tiny_model.denoiser, batch, noise, config)
    assert loss.shape == (2,) and bool(torch.isfinite(loss).all())
    targets, conditions = encode_batch(tiny_model, batch, noise, config.conditioning)
    sigma = noise.sigmas.view(-1, 1, 1, 1, 1)
    noisy = targets + sigma * noise.noise
    with torch.no_grad():
        output = tiny_model.denoiser(noisy / (sigma**2 + 1).sqrt(), noise.sigmas.log() / 4, conditions)
    denoised = noisy / (sigma**2 + 1) - sigma / (sigma**2 + 1).sqrt() * output
    expected = edm_loss_weight(noise.sigmas) * ((denoised - targets) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-6)


def test_loss_decreases_on_a_fixed_batch():
    model = GASModel.from_preset("tiny", seed=3)
    clip = make_clip("s0", mode="view", size=64, n_frames=4, seed=0)
    clip = replace(clip, **vars(encode_clip_latents(model, clip)))  # cached: the steps below run no VAE
    batch = ClipCollator(num_frames=4)([clip_to_tensors(clip)])
    config = DiffusionTrainConfig.tiny()
    config = replace(config, conditioning=replace(config.conditioning, noise_augmentation=False))
    optimizer = torch.optim.AdamW(model.denoiser.parameters(), lr=2e-3)
    losses = []
    for _ in range(10):
        noise = draw_training_noise(batch, latent_shape_of(model, batch), config, torch.Generator().manual_seed(7))
        loss = training_loss(model, model.denoiser, batch, noise, config).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("augment", [False, True])
def test_cached_latents_give_the_same_loss_as_the_vae_path(tiny_model, augment):
    clips = [make_clip(f"s{seed}", mode="view", size=64, n_frames=4, seed=seed) for seed in (0, 1)]
    cached = [replace(clip, **vars(encode_clip_latents(tiny_model, clip))) for clip in clips]
    plain_batch = ClipCollator(num_frames=4)([clip_to_tensors(clip) for clip in clips])
    cached_batch = ClipCollator(num_frames=4)([clip_to_tensors(clip) for clip in cached])
    assert cached_batch.has_cached_latents and not plain_batch.has_cached_latents
    assert not ClipCollator(num_frames=4, use_cached_latents=False)([clip_to_tensors(c) for c in cached]).has_cached_latents
    config = DiffusionTrainConfig.tiny()
    config = replace(config, conditioning=replace(config.conditioning, noise_augmentation=augment,
                                                  embedding_dropout=0.0, reference_latent_dropout=0.0))
    model = GASModel.from_preset("tiny", seed=0)
    with torch.no_grad():  # make the zero-initialised condition encoders matter
        for module in (model.denoiser.pose_net, model.denoiser.nerf_net):
            module.output_projection.weight.normal_(0, 0.5)
    losses = []
    for batch in (plain_batch, cached_batch):
        noise = draw_training_noise(batch, latent_shape_of(model, batch), config, torch.Generator().manual_seed(11))
        with torch.no_grad():
            losses.append(training_loss(model, model.denoiser, batch, noise, config))
    # float16 storage of the cached latents is the only difference
    torch.testing.assert_close(losses[1], losses[0], rtol=2e-3, atol=1e-5)


def test_collator_checks_frame_counts():
    sample = clip_to_tensors(make_clip("s0", size=64, n_frames=4))
    with pytest.raises(ValueError, match="num_frames"):
        ClipCollator(num_frames=6)([sample])
    batch = ClipCollator(num_frames=2)([sample])
    assert batch.frames.shape == (1, 2, 3, 64, 64) and batch.reference.shape == (1, 3, 64, 64)
    torch.testing.assert_close(batch.mode, torch.tensor([[0.0, 1.0]]))


# ------------------------------------------------------------------------------------------- data mixing
def test_stream_mixes_modes_at_the_ratio_with_a_fixed_epoch_length(tmp_path):
    folder = write_clip_shards(tmp_path / "clips", ["view", "pose"] * 4, size=8, n_frames=1)
    stream = MixedClipStream([str(folder)], view_fraction=0.75, epoch_length=120, shuffle=4, seed=0)
    stream.set_epoch(0)
    modes = [clip["mode"] for clip in stream]
    assert len(modes) == 120
    assert modes.count("view") / 120 == pytest.approx(0.75, abs=0.12)  # 3 binomial standard deviations
    shorter = MixedClipStream([str(folder)], view_fraction=0.75, epoch_length=15, shuffle=4, seed=0)
    shorter.set_epoch(0)
    assert [clip["mode"] for clip in shorter] == modes[:15]  # reproducible per (seed, epoch, rank, worker)
    shorter.set_epoch(1)
    assert [clip["mode"] for clip in shorter] != modes[:15]
    only_view = MixedClipStream([str(folder)], view_fraction=1.0, epoch_length=6)
    assert {clip["mode"] for clip in only_view} == {"view"}


def test_stream_names_a_missing_mode(tmp_path):
    folder = write_clip_shards(tmp_path / "clips", ["view", "view"], size=8, n_frames=1)
    stream = MixedClipStream([str(folder)], view_fraction=0.5, epoch_length=20, max_mode_wait=10)
    with pytest.raises(ValueError, match="no 'pose' clip"):
        list(stream)


# ------------------------------------------------------------------------------------------- config
def test_config_yaml_round_trip_and_overrides(tmp_path):
    config = load_train_config(preset="tiny", overrides=["optimizer.learning_rate=1e-5", "data.view_fraction=0.25",
                                                         "data.clips=[a, b]", "mixed_precision=bf16"])
    assert config.optimizer.learning_rate == 1e-5 and isinstance(config.optimizer.learning_rate, float)
    assert config.data.clips == ("a", "b") and config.mixed_precision == "bf16"
    path = tmp_path / "run.yaml"
    path.write_text(config_to_yaml(config))
    assert load_train_config(path, preset="paper") == config
    paper = DiffusionTrainConfig.paper()
    assert (paper.optimizer.learning_rate, paper.data.num_frames, paper.max_steps) == (1e-5, 20, 150_000)
    assert (paper.noise.log_mean, paper.noise.log_std) == (0.7, 1.6)


@pytest.mark.parametrize("override, name", [
    ("data.view_fraction=1.5", "view_fraction"),
    ("conditioning.embedding_dropout=-0.1", "embedding_dropout"),
    ("optimizer.learning_rate=abc", "learning_rate"),
    ("mixed_precision=fp8", "mixed_precision"),
    ("batch_size=0", "batch_size"),
    ("nonsense=1", "nonsense"),
    ("out_dir=s3://bucket/run", "out_dir"),
])
def test_bad_config_values_raise_value_error_naming_them(override, name):
    with pytest.raises(ValueError, match=name):
        load_train_config(preset="tiny", overrides=[override])


# ------------------------------------------------------------------------------------------- loop + resume
def test_checkpoint_resume_continues_identically(tmp_path, cached_clip_dir):
    """Train 3 steps in one go; resume from its step-2 checkpoint: step 3's loss and the weights are the same."""
    config = _tiny_config(tmp_path / "full", cached_clip_dir, max_steps=3, gradient_accumulation_steps=2, batch_size=1)
    config = replace(config, checkpoints=replace(config.checkpoints, every_steps=2, keep_last=5),
                     logging=replace(config.logging, sample_every_steps=3, sample_steps=2),
                     conditioning=replace(config.conditioning, noise_augmentation=False))
    full = train(config)
    assert full.step == 3 and len(full.losses) == 3 and full.resumed_from is None
    # tensorboard logs and a sample grid were written; the final model folder loads
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "full" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3]
    grid = events.Images("samples/reference_nerf_normals_truth_sample")[-1]
    assert grid.step == 3 and grid.width == 4 * 64 + 5 * 2  # one column per frame, 2 px padding
    exported = GASModel.from_pretrained(full.final_dir)
    assert isinstance(exported.denoiser, torch.nn.Module)

    resumed_dir = tmp_path / "resumed"
    step2 = tmp_path / "full" / "checkpoints" / "step-00000002"
    shutil.copytree(step2, resumed_dir / "checkpoints" / step2.name)
    saved_config = load_train_config(step2 / "config.yaml", preset="tiny")
    assert saved_config == config  # the checkpoint carries the resolved config
    resumed = train(replace(config, out_dir=str(resumed_dir)))
    assert resumed.resumed_from == str(resumed_dir / "checkpoints" / step2.name)
    assert resumed.step == 3 and len(resumed.losses) == 1
    assert resumed.losses[0] == pytest.approx(full.losses[2], rel=1e-5)
    first = torch.load(latest_checkpoint(tmp_path / "full") / "training_state.pt", weights_only=True)
    second = torch.load(latest_checkpoint(resumed_dir) / "training_state.pt", weights_only=True)
    assert first["state"] == second["state"]
    weights = [GASModel.from_pretrained(path).denoiser.state_dict() for path in (full.final_dir, resumed.final_dir)]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_process_gloo_run_keeps_ranks_identical(tmp_path, clip_dir):
    """torchrun, 2 CPU processes on gloo, on-the-fly VAE path: both ranks end with identical weights."""
    out_dir = tmp_path / "ddp"
    out_dir.mkdir()
    overrides = [f"data.clips=[{clip_dir}]", f"out_dir={out_dir / 'run'}", "max_steps=3", "logging.sample_every_steps=0",
                 "logging.tensorboard=false", "checkpoints.every_steps=100"]
    script = tmp_path / "ddp_worker.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, torch
        sys.path.insert(0, {str(REPO_ROOT)!r})
        torch.set_num_threads(1)
        import pipelines.train_diffusion as trainer
        config = trainer.load_train_config(preset="tiny", overrides={overrides!r})
        result = trainer.train(config)
        rank = int(os.environ["RANK"])
        model = result.model
        torch.save({{"losses": result.losses,
                    "weights": {{k: v.detach().cpu() for k, v in model.denoiser.state_dict().items()}}}},
                   os.path.join({str(out_dir)!r}, f"rank{{rank}}.pt"))
    """))
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    ranks = [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert len(ranks[0]["losses"]) == 3 and ranks[0]["losses"] == ranks[1]["losses"]
    for key, value in ranks[0]["weights"].items():
        assert torch.equal(ranks[1]["weights"][key], value), key
    initial = GASModel.from_preset("tiny", seed=0).denoiser.state_dict()
    assert any(not torch.equal(initial[key], value) for key, value in ranks[0]["weights"].items())
    assert json.loads(json.dumps(ranks[0]["losses"]))  # plain floats
