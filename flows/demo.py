"""``gas demo``: the whole pipeline, as far as it exists, on synthetic data with the embedded defaults.

1. build the open body model (Anny-derived, SMPL file format) when missing;
2. synthesise a few THuman2.1 and 2K2K subjects in the real on-disk layouts;
3. preprocess both datasets through the Prefect flow ``preprocess`` (render 20 views, fit, shard);
4. print the shard summary and the fit errors, and write one contact sheet per subject
   (views, masks, and the fitted body's normal maps);
5. train the ``tiny`` generalizable NeRF briefly on the subject shards;
6. bake view clips (NeRF renderings + normal maps of 20-view orbits) into clip shards and write one
   strip image per clip (ground truth, NeRF, normal map per frame);
7. train the ``tiny`` GAS video diffusion model for a few steps on the clip shards.

The model stages are short on purpose: they show the whole path running, not trained models.
"""

from __future__ import annotations

import time
from pathlib import Path

from flows.preprocess import preprocess
from pipelines.bake_nerf import bake, load_bake_config
from pipelines.body import build_body_model
from pipelines.preprocess import load_preprocess_config
from pipelines.synth import synthesize_dataset
from pipelines.train_diffusion import load_train_config, train
from pipelines.train_nerf import load_train_nerf_config, train_nerf
from shards.cli import main as shards_cli
from shards.contact_sheet import write_contact_sheets

__all__ = ["run_demo"]

DATASETS = ("thuman", "2k2k")
#: Short model stages: NeRF optimizer steps, bake settings, diffusion optimizer steps.
NERF_OVERRIDES = ("optim.max_steps=120", "log.val_every=60", "log.checkpoint_every=60")
BAKE_OVERRIDES = ("clip.num_frames=20", "clip.num_references=4")
DIFFUSION_OVERRIDES = ("max_steps=6", "data.view_fraction=1.0", "checkpoints.every_steps=6", "logging.sample_every_steps=6")


def run_demo(out: Path, *, num_subjects: int = 2, preset: str = "paper") -> int:
    """Run the demo into ``out``; returns a process exit code (0 when every subject succeeded)."""
    if num_subjects < 1:
        raise ValueError(f"num_subjects must be >= 1, got {num_subjects}")
    out = Path(out)
    started = time.perf_counter()
    body_dir = build_body_model()
    print(f"[1/7] body model: {body_dir / 'SMPL_NEUTRAL.pkl'} (open body model (Anny-derived), not SMPL)")

    for index, dataset in enumerate(DATASETS):
        refs = synthesize_dataset(dataset, out / "raw" / dataset, num_subjects=num_subjects, seed=1000 * (index + 1))
        print(f"[2/7] synthetic {dataset}: {len(refs)} subjects in {out / 'raw' / dataset}")

    config = load_preprocess_config(preset=preset)
    shard_dir = out / "shards" / "subjects"
    exit_code = 0
    for dataset in DATASETS:
        state = preprocess(dataset=dataset, raw_root=str(out / "raw" / dataset), out_dir=str(shard_dir),
                           config=config, return_state=True)
        summary = state.result(raise_on_failure=False)
        if not state.is_completed():
            exit_code = 1
            print(f"[3/7] preprocess {dataset}: {state.name}: {state.message}")
            continue
        print(f"[3/7] preprocess {dataset}: {summary['processed']} processed, {summary['skipped']} skipped, "
              f"{len(summary['failed'])} failed")
        for row in summary.get("reports", []):
            print(f"        {row['subject_id']}: joint error {row['joint_error_cm']} cm, "
                  f"keypoint error {row['keypoint_error_px']} px, render {row['render_s']} s, fit {row['fit_s']} s")

    print("[4/7] shards:")
    shards_cli(["inspect", str(shard_dir)])
    sheets = write_contact_sheets(shard_dir, out / "contact_sheets")
    for path in sheets:
        print(f"        contact sheet: {path}")

    nerf_config = load_train_nerf_config(preset="tiny", overrides=NERF_OVERRIDES)
    nerf = train_nerf(nerf_config, shard_dir, out / "nerf")
    print(f"[5/7] NeRF (tiny): {nerf.steps} steps in {nerf.wall_s:.0f} s; losses {_rounded(nerf.losses)}; "
          f"validation {_rounded(nerf.validation)}; checkpoint {nerf.checkpoint}")

    clip_dir = out / "shards" / "clips"
    baked = bake(shard_dir, clip_dir, nerf.checkpoint, load_bake_config(preset="tiny", overrides=BAKE_OVERRIDES))
    print(f"[6/7] bake: {baked.summary()}")
    for line in baked.problems:
        exit_code = 1
        print(f"        problem: {line}")
    shards_cli(["inspect", str(clip_dir)])
    for path in write_contact_sheets(clip_dir, out / "strips", tile=64):
        print(f"        strip: {path}")

    diffusion_config = load_train_config(preset="tiny", overrides=(
        f"data.clips=[{clip_dir}]", f"out_dir={out / 'diffusion'}", *DIFFUSION_OVERRIDES))
    trained = train(diffusion_config)
    losses = ", ".join(f"{loss:.3f}" for loss in trained.losses)
    print(f"[7/7] diffusion (tiny): {trained.step} steps, losses {losses or '-'}; model {trained.final_dir}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s; outputs in {out}")
    return exit_code


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(float(value), 4) for key, value in values.items()}
