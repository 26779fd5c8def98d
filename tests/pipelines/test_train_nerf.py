"""NeRF training without Prefect: config, pairs, windows, metrics, a short run, checkpoint and resume, torchrun."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gas_core.body.smpl import BodyModel
from gas_core.nerf import load_nerf
from pipelines.preprocess import load_preprocess_config, pack_staged_subjects, plan_subjects, preprocess_subject
from pipelines.train_nerf import (
    CHECKPOINT_DIRNAME,
    NeRFAugmentConfig,
    NeRFTrainConfig,
    augment_subject,
    box_metrics,
    build_arg_parser,
    config_to_yaml,
    iterate_pair_batches,
    load_train_nerf_config,
    main_from_args,
    pair_batch,
    subject_views,
    target_windows,
    torchrun_command,
    train_nerf,
    zoom_subject,
)
from shards.reader import make_subject_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]

#: a run small enough for a test: 48 px, two pairs per step, 16 px patches
SMALL = ["data.image_size=48", "model.image_size=48", "data.batch_size=2", "data.pairs_per_subject=2",
         "data.subjects_per_epoch=2", "data.shuffle=0", "optim.patch_size=16", "optim.max_steps=3",
         "model.triplane_resolution=8", "model.volume_resolution=8", "model.samples_per_ray=6",
         "model.probes_per_ray=16", "log.log_every=1", "log.val_every=2", "log.val_pairs=1", "log.checkpoint_every=2",
         "loss.lpips=0", "threads=1"]


@pytest.fixture(scope="module")
def subject_shards(tmp_path_factory, synthetic_thuman_root, open_body_model_dir) -> Path:
    """Three subjects (4 views at 64 px), one per shard."""
    config = load_preprocess_config(preset="tiny", overrides=[
        "orbit.num_views=4", "orbit.width=64", "orbit.height=64", "shards.max_count=1", "gates.enforce=false",
        f"body_model_path={open_body_model_dir}"])
    out = tmp_path_factory.mktemp("nerf") / "shards"
    plan = plan_subjects("thuman", synthetic_thuman_root, out)
    for ref in plan.todo:
        assert preprocess_subject(ref, config, plan.staging_dir).status == "ok"
    pack_staged_subjects(plan.staging_dir, out, config)
    return out


def test_config_presets_yaml_round_trip_and_overrides(tmp_path):
    paper = NeRFTrainConfig.paper()
    assert (paper.loss.rgb, paper.loss.mask, paper.loss.ssim, paper.loss.lpips) == (100.0, 10.0, 1.0, 1.0)
    assert paper.optim.betas == (0.0, 0.99) and paper.optim.learning_rate == 2e-3 and paper.model.image_size == 512
    tiny = load_train_nerf_config(preset="tiny", overrides=["model.samples_per_ray=5", "optim.betas=[0.5, 0.9]"])
    assert tiny.model.samples_per_ray == 5 and tiny.optim.betas == (0.5, 0.9) and tiny.data.image_size <= 128
    path = tmp_path / "run.yaml"
    path.write_text(config_to_yaml(tiny, notes=["a note"]))
    assert path.read_text().startswith("# a note\n")
    assert load_train_nerf_config(path, preset="paper") == tiny
    partial = tmp_path / "partial.yaml"
    partial.write_text("optim:\n  max_steps: 7\nlpips_weights: /weights/vgg16.pth\n")
    loaded = load_train_nerf_config(partial, preset="tiny")
    assert loaded.optim.max_steps == 7 and loaded.lpips_weights == "/weights/vgg16.pth"
    with pytest.raises(ValueError, match="unknown config field"):
        load_train_nerf_config(overrides=["optim.speed=1"])
    with pytest.raises(ValueError, match="patch_size"):
        load_train_nerf_config(overrides=["optim.patch_size=2"])
    with pytest.raises(ValueError, match="preset"):
        load_train_nerf_config(preset="huge")


def test_pairs_windows_and_metrics(subject_shards, open_body_model_dir):
    body_model = BodyModel(open_body_model_dir)
    samples = list(make_subject_pipeline(subject_shards, split_by_node=False, split_by_worker=False))
    subjects = [subject_views(sample, 32) for sample in samples]
    assert subjects[0].views.shape == (4, 3, 32, 32) and subjects[0].cameras.width == 32
    assert subjects[0].views[subjects[0].masks.expand(-1, 3, -1, -1) == 0].abs().max() == 0  # black background
    batches = list(iterate_pair_batches(iter(subjects), body_model, batch_size=2, pairs_per_subject=3,
                                        rng=random.Random(0)))
    assert len(batches) == 3  # the third subject does not fill a group
    batch = batches[0]
    assert batch.reference.image.shape == (2, 3, 32, 32) and batch.target_rgb.shape == (2, 3, 32, 32)
    assert not torch.equal(batch.reference.camera.R, batch.target_camera.R)  # observation and target views differ
    corners, height, width = target_windows(batch.target_camera, batch.target_body, 16, random.Random(0))
    assert (height, width) == (16, 16) and corners.shape == (2, 2)
    assert bool((corners >= 0).all()) and bool((corners + 16 <= 32).all())
    corners, height, width = target_windows(batch.target_camera, batch.target_body, None, random.Random(0))
    inside = batch.target_mask[:, :, corners[0, 1]:corners[0, 1] + height, corners[0, 0]:corners[0, 0] + width]
    assert inside[0].sum() >= 0.95 * batch.target_mask[0].sum()  # the body box holds the person
    perfect = box_metrics(batch.target_rgb, batch.target_mask, batch.target_rgb, batch.target_mask)
    assert bool((perfect["psnr"] > 60).all()) and torch.allclose(perfect["mask_iou"], torch.ones(2))
    blank = box_metrics(torch.zeros_like(batch.target_rgb), torch.zeros_like(batch.target_mask), batch.target_rgb,
                        batch.target_mask)
    assert bool((blank["psnr"] < perfect["psnr"]).all()) and bool((blank["mask_iou"] == 0).all())


def _mask_box(mask: torch.Tensor) -> torch.Tensor:
    """(x0, y0, x1, y1) pixel box of mask > 0.5 of a (1, H, W) mask."""
    rows = torch.nonzero(mask[0].amax(dim=1) > 0.5).squeeze(-1)
    cols = torch.nonzero(mask[0].amax(dim=0) > 0.5).squeeze(-1)
    return torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=torch.float32)


def test_zoom_subject_shrinks_views_and_cameras_alike(subject_shards, open_body_model_dir):
    body_model = BodyModel(open_body_model_dir)
    sample = next(iter(make_subject_pipeline(subject_shards, split_by_node=False, split_by_worker=False)))
    subject = subject_views(sample, 48)
    zoomed = zoom_subject(subject, 0.5, (3, 20))  # 24 px views at x = 3, y = 20
    assert zoomed.views.shape == subject.views.shape and zoomed.masks.shape == subject.masks.shape
    outside = torch.ones(48, 48, dtype=torch.bool)
    outside[20:44, 3:27] = False
    assert zoomed.views[..., outside].abs().max() == 0 and zoomed.masks[..., outside].abs().max() == 0
    # the shrunk mask's box is the original box mapped by u -> offset + u / 2 (to a pixel of area resampling)
    for view in range(subject.views.shape[0]):
        expected = _mask_box(subject.masks[view]) * 0.5 + torch.tensor([3.0, 20.0, 3.0, 20.0])
        assert (_mask_box(zoomed.masks[view]) - expected).abs().max() <= 1.0
    # the cameras follow: the posed body projects to the same place under the new cameras
    batch = pair_batch([subject] * 4, [(0, j) for j in range(4)], body_model)
    zoomed_batch = pair_batch([zoomed] * 4, [(0, j) for j in range(4)], body_model)
    uv, _ = batch.target_camera.project(batch.target_body.vertices)
    zoomed_uv, _ = zoomed_batch.target_camera.project(zoomed_batch.target_body.vertices)
    assert torch.allclose(zoomed_uv, uv * 0.5 + torch.tensor([3.0, 20.0]), atol=1e-3)
    centred = zoom_subject(subject, 0.5)
    assert torch.allclose(centred.cameras.K[:, :2, 2], subject.cameras.K[:, :2, 2] * 0.5 + 12.0)
    with pytest.raises(ValueError, match="factor"):
        zoom_subject(subject, 0.0)
    with pytest.raises(ValueError, match="offset"):
        zoom_subject(subject, 0.5, (25, 0))


def test_augment_subject_zooms_out_at_random_within_its_range(subject_shards):
    sample = next(iter(make_subject_pipeline(subject_shards, split_by_node=False, split_by_worker=False)))
    subject = subject_views(sample, 48)
    rng = random.Random(0)
    state = rng.getstate()
    assert augment_subject(subject, NeRFAugmentConfig(), rng) is subject
    assert rng.getstate() == state  # off: no random numbers drawn, so a run is as before it existed
    config = NeRFAugmentConfig(zoom_probability=1.0, min_zoom=0.4)
    area = subject.masks.sum()
    ratios = torch.stack([augment_subject(subject, config, rng).masks.sum() / area for _ in range(20)])
    assert bool((ratios > 0.4 ** 2 * 0.8).all()) and bool((ratios < 1.05).all())  # area scales by factor^2
    assert float(ratios.max() - ratios.min()) > 0.1  # the factor is drawn, not fixed
    half = NeRFAugmentConfig(zoom_probability=0.5)
    kept = sum(augment_subject(subject, half, rng) is subject for _ in range(200))
    assert 60 < kept < 140
    for bad in ({"zoom_probability": 1.5}, {"min_zoom": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            NeRFAugmentConfig(**bad)
    assert load_train_nerf_config(preset="tiny", overrides=["augment.min_zoom=0.5"]).augment.min_zoom == 0.5


def test_training_runs_checkpoints_and_resumes(tmp_path, subject_shards, open_body_model_dir, caplog):
    config = load_train_nerf_config(preset="tiny", overrides=SMALL + [f"data.body_model_path={open_body_model_dir}",
                                                                     "loss.lpips=1", "lpips_weights=/missing/vgg.pth"])
    out = tmp_path / "run"
    report = train_nerf(config, subject_shards, out)
    assert report.steps == 3 and report.steps_this_run == 3 and not report.lpips_used
    assert "LPIPS term skipped" in caplog.text
    for name in ("rgb_mse", "mask_mse", "ssim", "total"):
        assert torch.isfinite(torch.tensor(report.losses[name]))
    assert set(report.validation) == {"psnr", "ssim", "mask_iou"}
    checkpoint = out / CHECKPOINT_DIRNAME
    recorded = yaml.safe_load((checkpoint / "config.yaml").read_text())
    assert recorded["loss"]["lpips"] == 0.0 and "LPIPS term is skipped" in (checkpoint / "config.yaml").read_text()
    state = torch.load(checkpoint / "training_state.pt", weights_only=False)
    assert state["step"] == 3 and state["optimizer"]["state"]
    assert any((out / "tensorboard").iterdir())
    model = load_nerf(checkpoint)
    assert model.settings.image_size == 48
    # resume: continues at step 3 with the saved weights and optimizer, up to the new limit
    more = load_train_nerf_config(preset="tiny", overrides=SMALL + [f"data.body_model_path={open_body_model_dir}",
                                                                   "optim.max_steps=5"])
    resumed = train_nerf(more, subject_shards, out)
    assert resumed.steps == 5 and resumed.steps_this_run == 2
    assert torch.load(checkpoint / "training_state.pt", weights_only=False)["step"] == 5
    fresh = train_nerf(more, subject_shards, tmp_path / "other", resume=False)
    assert fresh.steps_this_run == 5


def test_command_line_arguments():
    args = build_arg_parser().parse_args(["shards", "out", "--preset", "tiny", "--set", "optim.max_steps=3",
                                          "--set", "log.log_every=1", "--no-resume"])
    assert (args.shards, args.out_dir, args.preset, args.no_resume) == ("shards", "out", "tiny", True)
    assert args.set == ["optim.max_steps=3", "log.log_every=1"]
    with pytest.raises(ValueError, match="unknown config field"):
        main_from_args(["shards", "out", "--set", "optim.nope=1"])


def test_torchrun_command_runs_the_module():
    command = torchrun_command(["shards", "out", "--preset", "tiny"], processes=2, python="py")
    assert command[:3] == ["py", "-m", "torch.distributed.run"] and "--nproc_per_node=2" in command
    assert command[-6:] == ["-m", "pipelines.train_nerf", "shards", "out", "--preset", "tiny"]
    with pytest.raises(ValueError, match="processes"):
        torchrun_command([], processes=0)


_RANK_SCRIPT = """
import os
import sys

import torch

sys.path.insert(0, {repo!r})
import pipelines.train_nerf as training

models = {{}}
construct = training.GeneralizableHumanNeRF.from_settings


def keep(settings):  # remember the model this rank trains, and its initial weights
    models["model"] = construct(settings)
    models["initial"] = {{k: v.detach().clone() for k, v in models["model"].state_dict().items()}}
    return models["model"]


training.GeneralizableHumanNeRF.from_settings = keep
config = training.load_train_nerf_config(preset="tiny", overrides={overrides!r})
report = training.train_nerf(config, {shards!r}, {out!r})
rank = int(os.environ["RANK"])
final = {{k: v.detach().cpu() for k, v in models["model"].state_dict().items()}}
torch.save({{"final": final, "initial": models["initial"], "steps": report.steps}}, {folder!r} + f"/rank{{rank}}.pt")
"""


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path, subject_shards, open_body_model_dir):
    out = tmp_path / "ddp"
    overrides = SMALL + [f"data.body_model_path={open_body_model_dir}", "optim.max_steps=4"]
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT.format(repo=str(REPO_ROOT), overrides=overrides, shards=str(subject_shards),
                                          out=str(out), folder=str(tmp_path)))
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                str(script)], cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                               timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    first, second = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert first["steps"] == second["steps"] == 4
    assert first["final"].keys() == second["final"].keys()
    for name in first["final"]:
        assert torch.equal(first["final"][name], second["final"][name]), name
    assert any(not torch.equal(first["final"][name], first["initial"][name]) for name in first["final"])
    saved = load_nerf(out / CHECKPOINT_DIRNAME).state_dict()  # rank 0 wrote the checkpoint of those weights
    for name in first["final"]:
        torch.testing.assert_close(saved[name], first["final"][name])


def test_a_step_with_a_non_finite_or_stalled_gradient_stops_the_run_before_it_is_applied(
        tmp_path, subject_shards, open_body_model_dir, monkeypatch):
    from pipelines.train_nerf import TrainingDiverged, loop

    real_losses = loop.reconstruction_losses
    config = load_train_nerf_config(preset="tiny", overrides=SMALL + [f"data.body_model_path={open_body_model_dir}",
                                                                     "optim.max_steps=6", "optim.stalled_steps=3"])

    def nan_loss(*args, **kwargs):
        terms = real_losses(*args, **kwargs)
        return {**terms, "total": terms["total"] * float("nan")}

    monkeypatch.setattr(loop, "reconstruction_losses", nan_loss)
    with pytest.raises(TrainingDiverged, match=r"step 1: the loss \(nan\).*no checkpoint was written yet"):
        train_nerf(config, subject_shards, tmp_path / "nan")
    assert not (tmp_path / "nan" / CHECKPOINT_DIRNAME / "training_state.pt").exists()

    calls = []

    def dead_after_two_steps(rgb, *args, **kwargs):  # from the third step on, the loss ignores the rendering
        terms = real_losses(rgb, *args, **kwargs)
        calls.append(1)
        if len(calls) > 2:
            terms = {**terms, "total": rgb.sum() * 0.0 + 1.0}
        return terms

    monkeypatch.setattr(loop, "reconstruction_losses", dead_after_two_steps)
    out = tmp_path / "stalled"
    with pytest.raises(TrainingDiverged, match=r"step 5: the gradient has been exactly zero for 3 steps in a row"):
        train_nerf(config, subject_shards, out)
    # checkpoint_every=2: the step-2 and step-4 checkpoints were written; the failing step 5 was not applied
    assert torch.load(out / CHECKPOINT_DIRNAME / "training_state.pt", weights_only=False)["step"] == 4
    with pytest.raises(ValueError, match="optim.stalled_steps"):
        load_train_nerf_config(preset="tiny", overrides=["optim.stalled_steps=-1"])
