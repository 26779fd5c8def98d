"""Learning check of the diffusion trainer: the tiny model learns to denoise and learns to use its conditions.

Run from the repository root (about 20 minutes on two CPU cores, 12-15 of them training; longer when
the cores are busy; a finished run in ``--work`` is reused, ``--fresh`` retrains):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/bench_diffusion_learning.py
        [--subjects 8] [--holdout 2] [--steps 900] [--work out/bench_diffusion_learning] [--fresh]

Data (synthetic, built here; no real NeRF bake is used): ``--subjects`` synthetic THuman2.1 subjects
(``pipelines.synth``) are preprocessed with the ``tiny`` preset (8 orbit views at 256 px, body-model
fit, the fitted body's normal maps; quality gates recorded, not enforced), then turned into **view
clips** of 4 frames at 64x64: one clip per reference view, frames = the orbit starting at the
reference (``pipelines.bake_nerf.view_orbit_indices``), normal maps = the fitted body's normal maps
of those views, and, **as a stand-in for the NeRF renderings, a degraded copy of the ground-truth
frames** (4x down- and up-sampled, per-subject colour gains, pixel noise, black background). Latents
are cached with the tiny model's VAE (``pipelines.cache_latents``), whose scaling factor is first set
to 1 / std of the training frames' latents (how Stable Diffusion's 0.18215 was chosen): the random
tiny VAE's latents are otherwise about 20x smaller than the unit variance that EDM with
sigma_data = 1 assumes, and the clip-specific signal then drowns in the smallest noise levels. The last ``--holdout`` subjects
are not trained on. Only view clips exist here (each synthetic subject has one pose).

Training: ``pipelines.train_diffusion.train`` with the ``tiny`` preset (random-weight tiny model),
batch 2, AdamW 5e-4, EMA 0.995, no reference noise augmentation (so cached reference latents are
used), condition dropout 0.1 / 0.1 as in training proper.

Evaluation (the exported EMA model, and the untrained model), on the training clips and on the
held-out clips, at fixed noise levels sigma with fixed noise and no dropout: the mean EDM loss with
the true conditions, and with the NeRF latents and/or normal maps shuffled across clips (each clip
gets those of the next subject's clip whose reference is a quarter turn further, so the borrowed
frames show another body from another direction). Table 1 gives the loss per sigma, Table 2 a summary.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gas_core.diffusion import GASModel  # noqa: E402
from pipelines.bake_nerf import view_orbit_indices  # noqa: E402
from pipelines.cache_latents import CacheLatentsConfig, cache_clip_latents  # noqa: E402
from pipelines.preprocess import PreprocessConfig, pack_staged_subjects, plan_subjects, preprocess_subject  # noqa: E402
from pipelines.quality import QualityGates  # noqa: E402
from pipelines.synth import synthesize_dataset  # noqa: E402
from gas_core.diffusion.edm import add_noise, append_dims, denoise, edm_loss_weight, edm_preconditioning  # noqa: E402
from pipelines.train_diffusion import ClipCollator, TrainingNoise, encode_batch, load_train_config, train  # noqa: E402
from shards.reader import make_clip_pipeline, make_subject_pipeline  # noqa: E402
from shards.schema import CLIP_SCHEMA, ClipSample  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402

SIZE, FRAMES = 64, 4
EVAL_SIGMAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def make_subject_shards(work: Path, num_subjects: int, seed: int) -> Path:
    """Synthetic THuman2.1 subjects, preprocessed with the tiny preset (8 views at 256 px) into subject shards."""
    raw, out = work / "raw" / "thuman", work / "subjects"
    if (out / "manifest.json").is_file():
        return out
    synthesize_dataset("thuman", raw, num_subjects=num_subjects, seed=seed, texture_size=256)
    # Every synthetic subject is used: the quality gates are recorded, not enforced (they are tuned for the paper preset).
    config = replace(PreprocessConfig.tiny(), gates=replace(QualityGates(), enforce=False))
    plan = plan_subjects("thuman", raw, out, gates=config.gates)
    for ref in plan.todo:
        report = preprocess_subject(ref, config, plan.staging_dir)
        print(f"  preprocessed {ref.subject_id}: {report.status} {report.error}")
    pack_staged_subjects(plan.staging_dir, out, config)
    return out


def _resize(images: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    return np.stack([cv2.resize(image, (SIZE, SIZE), interpolation=interpolation) for image in images])


def subject_crop(masks: np.ndarray, margin: float = 0.08) -> tuple[int, int, int]:
    """``(left, top, side)`` of one square crop holding the subject in every view (union of the masks
    plus a margin), inside the image: the subject then fills most of the 64 px frame."""
    union = (masks > 127).any(axis=0)
    rows, cols = np.nonzero(union)
    height, width = union.shape
    side = int(min(max(np.ptp(rows), np.ptp(cols)) * (1 + 2 * margin) + 1, height, width))
    top = int(np.clip((rows.min() + rows.max()) // 2 - side // 2, 0, height - side))
    left = int(np.clip((cols.min() + cols.max()) // 2 - side // 2, 0, width - side))
    return left, top, side


def nerf_stand_in(frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A degraded copy of the ground truth standing in for NeRF renderings: blurred (4x down/up), colour
    gains per subject, pixel noise, black background. uint8 (N, H, W, 3) -> same."""
    small = np.stack([cv2.resize(frame, (SIZE // 4, SIZE // 4), interpolation=cv2.INTER_AREA) for frame in frames])
    blurred = np.stack([cv2.resize(frame, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for frame in small]).astype(np.float32)
    gains = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    noisy = blurred * gains + rng.normal(0.0, 8.0, size=blurred.shape).astype(np.float32)
    foreground = (masks > 127)[..., None]
    return np.clip(noisy * foreground, 0, 255).astype(np.uint8)


def make_clips(subject_dir: Path, clip_dir: Path, subject_ids: set[str], seed: int) -> int:
    """One view clip per reference view of each subject in ``subject_ids``; returns the number of clips."""
    if (clip_dir / "manifest.json").is_file():
        return sum(1 for _ in make_clip_pipeline(clip_dir, decode_to_tensors=False))
    count = 0
    with ShardWriter(clip_dir, "clips", CLIP_SCHEMA, max_count=32) as writer:
        for subject in make_subject_pipeline(subject_dir, decode_to_tensors=False):
            if subject.meta["subject_id"] not in subject_ids:
                continue
            rng = np.random.default_rng([seed, int(subject.meta["subject_id"])])
            left, top, side = subject_crop(subject.masks)
            crop = (slice(None), slice(top, top + side), slice(left, left + side))
            views, masks, normals = (_resize(array[crop]) for array in (subject.views, subject.masks, subject.normals))
            masks = np.where(masks > 127, 255, 0).astype(np.uint8)
            scale = SIZE / side
            cameras = []
            for camera in subject.cameras:  # the crop shifts the principal point, the resize scales K
                intrinsics = np.array(camera["K"], dtype=np.float64).copy()
                intrinsics[0, 2] -= left
                intrinsics[1, 2] -= top
                intrinsics[:2] *= scale
                cameras.append({**camera, "K": intrinsics, "width": SIZE, "height": SIZE})
            nerf_all = nerf_stand_in(views, masks, rng)
            for reference in range(len(views)):
                order = list(view_orbit_indices(len(views), reference, FRAMES))
                writer.write(ClipSample(
                    frames=views[order], nerf=nerf_all[order], normals=normals[order], masks=masks[order],
                    reference=views[reference], reference_mask=masks[reference],
                    cameras=[cameras[i] for i in order], reference_camera=cameras[reference],
                    smpl=[dict(subject.smpl) for _ in order], reference_smpl=dict(subject.smpl),
                    meta={"dataset": subject.meta["dataset"], "subject_id": subject.meta["subject_id"], "mode": "view",
                          "reference_index": reference, "frame_indices": order,
                          "extra": {"nerf": "stand-in: degraded copy of the ground-truth frames"}},
                ))
                count += 1
    return count


@torch.no_grad()
def calibrated_tiny_model(clip_dir: Path) -> GASModel:
    """The tiny model (seed 0, what the tiny training config builds) with its VAE scaling factor set to
    1 / std of the latents of the training frames, the way Stable Diffusion's 0.18215 was chosen: EDM
    with sigma_data = 1 expects unit-variance targets, and the random tiny VAE's latents are much smaller."""
    model = GASModel.from_preset("tiny", seed=0)
    frames = torch.cat([torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 127.5 - 1
                        for clip in make_clip_pipeline(clip_dir, decode_to_tensors=False)])
    model.scaling_factor = float(1.0 / model.encode_latents(frames).std())
    return model


def load_eval_batch(clip_dir: Path):
    """All clips (sorted by subject and reference view) as one :class:`ClipBatch` with cached latents, and their dicts."""
    samples = sorted(make_clip_pipeline(clip_dir), key=lambda sample: (sample["subject_id"], sample["reference_index"]))
    return ClipCollator(num_frames=FRAMES)(samples), samples


def shuffled_indices(samples) -> list[int]:
    """For each clip, the clip of the next subject whose reference view is a quarter turn further
    (another body and another viewing direction, so the borrowed NeRF frames and normal maps differ)."""
    subjects = sorted({sample["subject_id"] for sample in samples})
    views = 1 + max(sample["reference_index"] for sample in samples)
    where = {(s["subject_id"], s["reference_index"]): i for i, s in enumerate(samples)}
    return [where[(subjects[(subjects.index(s["subject_id"]) + 1) % len(subjects)], (s["reference_index"] + views // 4) % views)]
            for s in samples]


@torch.no_grad()
def evaluate(model: GASModel, batch, masks: torch.Tensor, config, permutation: list[int] | None, *, shuffle_nerf: bool,
             shuffle_normals: bool, chunk: int = 8) -> tuple[dict[float, float], dict[float, float]]:
    """Mean EDM loss per sigma over all clips with fixed noise, on the whole latent and on the subject's
    latent cells only (``masks`` ``(B, F, 1, H, W)`` max-pooled to latent size); optionally with the NeRF
    latents / normal maps permuted across clips."""
    model.denoiser.eval()
    if permutation is not None:
        index = torch.tensor(permutation)
        batch = replace(batch, nerf_latents=batch.nerf_latents[index] if shuffle_nerf else batch.nerf_latents,
                        normals=batch.normals[index] if shuffle_normals else batch.normals)
    quiet = replace(config.conditioning, embedding_dropout=0.0, reference_latent_dropout=0.0, noise_augmentation=False)
    whole: dict[float, float] = {}
    subject: dict[float, float] = {}
    for sigma in EVAL_SIGMAS:
        total = foreground = cells = 0.0
        for start in range(0, batch.batch_size, chunk):
            rows = list(range(start, min(start + chunk, batch.batch_size)))
            part = batch.select(rows)
            size = part.batch_size
            generator = torch.Generator().manual_seed(1000 + start)
            noise = TrainingNoise(sigmas=torch.full((size,), sigma), noise=torch.randn(part.target_latents.shape, generator=generator),
                                  drop_embedding=torch.zeros(size, dtype=torch.bool),
                                  drop_reference_latent=torch.zeros(size, dtype=torch.bool),
                                  aug_strengths=torch.zeros(size), aug_noise=torch.zeros(part.reference.shape))
            targets, conditions = encode_batch(model, part, noise, quiet)
            noisy = add_noise(targets, noise.noise, noise.sigmas)
            pre = edm_preconditioning(noise.sigmas)
            output = model.denoiser(append_dims(pre.c_in, 5) * noisy, pre.c_noise, conditions)
            error = edm_loss_weight(noise.sigmas).view(-1, 1, 1, 1, 1) * (denoise(output, noisy, pre) - targets) ** 2
            total += float(error.flatten(1).mean(1).sum())
            cell_mask = torch.nn.functional.max_pool2d(masks[rows].flatten(0, 1), 8).view(size, -1, 1, *error.shape[-2:])
            foreground += float((error * cell_mask).sum())
            cells += float(cell_mask.sum()) * error.shape[2]
        whole[sigma] = total / batch.batch_size
        subject[sigma] = foreground / cells
    return whole, subject


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--holdout", type=int, default=2, help="subjects kept out of training (evaluated apart)")
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--work", default="out/bench_diffusion_learning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="retrain even when a finished run exists")
    args = parser.parse_args()
    if not 1 <= args.holdout < args.subjects - 1:
        raise SystemExit("need 1 <= --holdout < --subjects - 1")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pipelines.train_diffusion").setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    started = time.perf_counter()
    subject_dir = make_subject_shards(work, args.subjects, args.seed)
    ids = sorted({subject.meta["subject_id"] for subject in make_subject_pipeline(subject_dir, decode_to_tensors=False)})
    splits = {"train": set(ids[:-args.holdout]), "held-out": set(ids[-args.holdout:])}
    folders, counts = {}, {}
    for split, members in splits.items():
        name = "train" if split == "train" else "heldout"
        counts[split] = make_clips(subject_dir, work / f"clips_{name}", members, args.seed)
    encoder = calibrated_tiny_model(work / "clips_train")
    print(f"tiny VAE scaling factor calibrated on the training frames: {encoder.scaling_factor:.3f} (preset: 0.18215)")
    for split in splits:
        name = "train" if split == "train" else "heldout"
        folders[split] = work / f"clips_{name}_cached"
        if not (folders[split] / "manifest.json").is_file():
            cache_clip_latents(work / f"clips_{name}", folders[split], CacheLatentsConfig.tiny(), model=encoder)
    data_seconds = time.perf_counter() - started
    print(f"data: {len(ids)} subjects -> {counts['train']} training and {counts['held-out']} held-out view clips of "
          f"{FRAMES} frames at {SIZE}x{SIZE} ({data_seconds:.0f} s; NeRF frames = degraded ground truth stand-in)")

    run_dir = work / "run"
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    config = load_train_config(preset="tiny", overrides=[
        f"data.clips=[{folders['train']}]", f"out_dir={run_dir}", f"max_steps={args.steps}", "data.view_fraction=1.0",
        f"data.epoch_length={counts['train']}", "data.shuffle=32", "batch_size=2", "optimizer.learning_rate=5e-4",
        "optimizer.warmup_steps=20", "ema.decay=0.995", "conditioning.noise_augmentation=false",
        "checkpoints.every_steps=100", "checkpoints.keep_last=1", "logging.every_steps=25",
        "logging.sample_every_steps=300", "logging.sample_steps=8", f"seed={args.seed}"])
    result = train(config)
    print(f"trained {result.step} steps in {result.seconds:.0f} s this call ({result.seconds_per_step:.2f} s/step); "
          f"resumed from {result.resumed_from}")

    untrained = GASModel.from_preset("tiny", seed=config.model.seed)
    trained = GASModel.from_pretrained(run_dir / "final")
    rows, means = [], {}
    for split, folder in folders.items():
        batch, samples = load_eval_batch(folder)
        masks = torch.stack([sample["masks"][:FRAMES] for sample in samples])
        permutation = shuffled_indices(samples)
        settings = [("untrained", untrained, False, False, None), ("trained", trained, False, False, None),
                    ("trained, NeRF+normals shuffled", trained, True, True, permutation),
                    ("trained, NeRF shuffled", trained, True, False, permutation),
                    ("trained, normals shuffled", trained, False, True, permutation)]
        for name, model, nerf, normals, order in settings:
            whole, subject = evaluate(model, batch, masks, config, order, shuffle_nerf=nerf, shuffle_normals=normals)
            rows.append((f"{split}: {name}", whole, subject))
            means[(split, name)] = (float(np.mean(list(whole.values()))), float(np.mean(list(subject.values()))))
    for title, column in (("whole latent", 1), ("subject's latent cells only", 2)):
        print(f"\nTable 1{'ab'[column - 1]}: mean EDM loss per noise level sigma, {title} "
              "(fixed noise, no dropout; trained = exported EMA weights)")
        print("| clips: model, conditions | " + " | ".join(f"σ={sigma:g}" for sigma in EVAL_SIGMAS) + " | mean |")
        print("|" + " --- |" * (len(EVAL_SIGMAS) + 2))
        for row in rows:
            values = [row[column][sigma] for sigma in EVAL_SIGMAS]
            print(f"| {row[0]} | " + " | ".join(f"{value:.4f}" for value in values) + f" | {np.mean(values):.4f} |")
    print("\nTable 2: summary")
    print("| quantity | value |\n| --- | --- |")
    print(f"| subjects: training / held out | {len(splits['train'])} / {len(splits['held-out'])} |")
    print(f"| training steps (batch 2) | {result.step} ({result.seconds:.0f} s this call, {result.seconds_per_step:.2f} s/step) |")
    if result.losses:
        print(f"| training loss: first step / mean of last 25 | {result.losses[0]:.4f} / {np.mean(result.losses[-25:]):.4f} |")
    for split in folders:
        for label, column in (("whole", 0), ("subject cells", 1)):
            untrained_loss = means[(split, "untrained")][column]
            true_loss = means[(split, "trained")][column]
            shuffled = means[(split, "trained, NeRF+normals shuffled")][column]
            print(f"| {split}, {label}: loss untrained -> trained | {untrained_loss:.4f} -> {true_loss:.4f} |")
            print(f"| {split}, {label}: trained, true vs shuffled NeRF+normals | {true_loss:.4f} vs {shuffled:.4f} "
                  f"(x{shuffled / true_loss:.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
