"""``gas demo``: the whole pipeline, as far as it exists, on synthetic data with the embedded defaults.

1. build the open body model (Anny-derived, SMPL file format) when missing;
2. synthesise a few THuman2.1 and 2K2K subjects in the real on-disk layouts;
3. preprocess both datasets through the Prefect flow ``preprocess`` (render 20 views, fit, shard),
   and one synthetic dance video (masks, per-frame SMPL, video segments);
4. print the shard summary and the fit errors, and write one contact sheet per subject
   (views, masks, and the fitted body's normal maps);
5. train the ``tiny`` generalizable NeRF briefly on the subject shards;
6. bake view clips (NeRF renderings + normal maps of 20-view orbits) and the dance video's pose clips
   into clip shards and write one strip image per clip (ground truth, NeRF, normal map per frame);
7. train the ``tiny`` GAS video diffusion model for a few steps on the clip shards;
8. ``gas generate``: a 20-view orbit of the held-out THuman subject from one of its images, with the
   demo's tiny models (MP4, frames, strip);
9. ``gas eval``: bake the held-out subject's view clips and score the diffusion model and the NeRF
   renderings on them (markdown, CSV and JSON tables).

The model stages are short on purpose: they show the whole path running, not trained models.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from flows.evaluate import evaluate_flow
from flows.preprocess import preprocess
from pipelines.bake_nerf import bake, load_bake_config
from pipelines.body import build_body_model
from pipelines.datasets.common import GROUNDTRUTH_DIRNAME
from pipelines.generate import GenerateInputs, generate, load_generate_config
from pipelines.preprocess import load_preprocess_config
from pipelines.splits import HoldOut, SplitsConfig, make_split, write_split
from pipelines.synth import synthesize_dataset
from pipelines.synth_video import synthesize_tiktok
from pipelines.train_diffusion import load_train_config, train
from pipelines.train_nerf import load_train_nerf_config, train_nerf
from shards.cli import main as shards_cli
from shards.contact_sheet import write_contact_sheets
from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.schema import decode

__all__ = ["run_demo"]

DATASETS = ("thuman", "2k2k")
#: Short model stages: NeRF optimizer steps, bake settings, diffusion optimizer steps.
NERF_OVERRIDES = ("optim.max_steps=120", "log.val_every=60", "log.checkpoint_every=60")
BAKE_OVERRIDES = ("clip.num_frames=20", "clip.num_references=4")
DIFFUSION_OVERRIDES = ("max_steps=6", "checkpoints.every_steps=6", "logging.sample_every_steps=6")
#: The demo's dance video: frames, size, and how it is cut (two 20-frame segments) and cropped.
DEMO_VIDEO_FRAMES = 40
DEMO_VIDEO_SIZE = 256
VIDEO_OVERRIDES = ("video.segment_frames=20", "video.min_segment_frames=20", "video.crop_size=128",
                   "video.fit.global_iterations=60", "video.fit.iterations=300")  # the paper's fit: 0.1 s per frame
#: Pose clips of the video segments: 8 frames from 2 reference frames per segment, 64x64.
POSE_BAKE_OVERRIDES = ("clip.pose_frames=8", "clip.pose_references=2")
#: Generation: a 20-view orbit at the clips' 64 px with the tiny models.
GENERATE_OVERRIDES = ("num_views=20",)


def run_demo(out: Path, *, num_subjects: int = 2, preset: str = "paper") -> int:
    """Run the demo into ``out``; returns a process exit code (0 when every subject succeeded)."""
    if num_subjects < 1:
        raise ValueError(f"num_subjects must be >= 1, got {num_subjects}")
    out = Path(out)
    started = time.perf_counter()
    body_dir = build_body_model()
    print(f"[1/9] body model: {body_dir / 'SMPL_NEUTRAL.pkl'} (open body model (Anny-derived), not SMPL)")

    for index, dataset in enumerate(DATASETS):
        extra = 1 if dataset == "thuman" else 0  # one more THuman subject, held out for generation and evaluation
        refs = synthesize_dataset(dataset, out / "raw" / dataset, num_subjects=num_subjects + extra, seed=1000 * (index + 1))
        if extra:
            heldout_id = _hold_out(refs[-1], out / "raw" / "heldout" / dataset)
        print(f"[2/9] synthetic {dataset}: {len(refs) - extra} subjects in {out / 'raw' / dataset}"
              + (f", subject {heldout_id} held out in {out / 'raw' / 'heldout' / dataset}" if extra else ""))

    config = load_preprocess_config(preset=preset)
    shard_dir = out / "shards" / "subjects"
    exit_code = 0
    for dataset in DATASETS:
        state = preprocess(dataset=dataset, raw_root=str(out / "raw" / dataset), out_dir=str(shard_dir),
                           config=config, return_state=True)
        summary = state.result(raise_on_failure=False)
        if not state.is_completed():
            exit_code = 1
            print(f"[3/9] preprocess {dataset}: {state.name}: {state.message}")
            continue
        print(f"[3/9] preprocess {dataset}: {summary['processed']} processed, {summary['skipped']} skipped, "
              f"{len(summary['failed'])} failed")
        for row in summary.get("reports", []):
            print(f"        {row['subject_id']}: joint error {row['joint_error_cm']} cm, "
                  f"keypoint error {row['keypoint_error_px']} px, render {row['render_s']} s, fit {row['fit_s']} s")

    print("[4/9] shards:")
    shards_cli(["inspect", str(shard_dir)])
    sheets = write_contact_sheets(shard_dir, out / "contact_sheets")
    for path in sheets:
        print(f"        contact sheet: {path}")

    video_root = out / "raw" / "tiktok"
    synthesize_tiktok(video_root, num_videos=1, num_frames=DEMO_VIDEO_FRAMES, size=DEMO_VIDEO_SIZE, seed=5)
    video_dir = out / "shards" / "videos"
    video_config = load_preprocess_config(preset="tiny", overrides=VIDEO_OVERRIDES)
    state = preprocess(dataset="tiktok", raw_root=str(video_root), out_dir=str(video_dir), config=video_config,
                       return_state=True)
    summary = state.result(raise_on_failure=False)
    if not state.is_completed():
        exit_code = 1
        print(f"[4/9] preprocess tiktok: {state.name}: {state.message}")
    else:
        for row in summary.get("reports", []):
            print(f"[4/9] preprocess tiktok {row['subject_id']}: {row['frames']} frames, {row['segments']} segments packed, "
                  f"mask IoU {row['mask_iou']}, PA-MPJPE {row['pa_mpjpe_mm']} mm, keypoint error "
                  f"{row['keypoint_error_px']} px")
        for row in summary.get("rejected", []):
            print(f"[4/9] WARNING rejected tiktok {row['video']} {row['reason']}")

    nerf_config = load_train_nerf_config(preset="tiny", overrides=NERF_OVERRIDES)
    nerf = train_nerf(nerf_config, shard_dir, out / "nerf")
    print(f"[5/9] NeRF (tiny): {nerf.steps} steps in {nerf.wall_s:.0f} s; losses {_rounded(nerf.losses)}; "
          f"validation {_rounded(nerf.validation)}; checkpoint {nerf.checkpoint}")

    clip_dir = out / "shards" / "clips"
    baked = bake(shard_dir, clip_dir, nerf.checkpoint, load_bake_config(preset="tiny", overrides=BAKE_OVERRIDES))
    print(f"[6/9] bake: {baked.summary()}")
    has_pose_clips = False
    if (video_dir / "manifest.json").is_file():
        posed = bake(video_dir, clip_dir, nerf.checkpoint, load_bake_config(preset="tiny", overrides=POSE_BAKE_OVERRIDES))
        print(f"[6/9] bake pose clips of the dance video: {posed.summary()}")
        baked.shards.extend(posed.shards)
        has_pose_clips = posed.clips_written + posed.clips_skipped > 0
    for line in baked.problems:
        exit_code = 1
        print(f"        problem: {line}")
    shards_cli(["inspect", str(clip_dir)])
    for path in write_contact_sheets(clip_dir, out / "strips", tile=64):
        print(f"        strip: {path}")

    diffusion_config = load_train_config(preset="tiny", overrides=(
        f"data.clips=[{clip_dir}]", f"out_dir={out / 'diffusion'}", *DIFFUSION_OVERRIDES,
        *(() if has_pose_clips else ("data.view_fraction=1.0",))))
    trained = train(diffusion_config)
    losses = ", ".join(f"{loss:.3f}" for loss in trained.losses)
    print(f"[7/9] diffusion (tiny): {trained.step} steps, losses {losses or '-'}; model {trained.final_dir}")

    heldout_shards = out / "shards" / "heldout"
    state = preprocess(dataset="thuman", raw_root=str(out / "raw" / "heldout" / "thuman"), out_dir=str(heldout_shards),
                       config=config, return_state=True)
    if not state.is_completed():
        print(f"[8/9] preprocess of the held-out subject: {state.name}: {state.message}")
        return 1
    inputs = write_generation_inputs(heldout_shards, out / "generate" / "inputs", view=0)
    result = generate(inputs, out / "generate", nerf_checkpoint=nerf.checkpoint, diffusion_checkpoint=trained.final_dir,
                      config=load_generate_config(preset="tiny", overrides=GENERATE_OVERRIDES))
    print(f"[8/9] generate: a {result.num_frames}-view orbit of held-out subject {heldout_id} from one image "
          f"({result.seconds_per_frame:.1f} s per frame): {result.video}, strip {result.strip}")

    heldout_clips = out / "shards" / "heldout_clips"
    baked = bake(heldout_shards, heldout_clips, nerf.checkpoint, load_bake_config(preset="tiny", overrides=BAKE_OVERRIDES))
    split = write_split(make_split("thuman", replace(SplitsConfig.paper(), thuman=replace(
        SplitsConfig.paper().thuman, holdout=HoldOut("listed", ids=(heldout_id,))))), out / "splits" / "thuman_test.json")
    state = evaluate_flow(clips=[str(heldout_clips)], splits=[str(split)], out_dir=str(out / "eval"),
                          checkpoints=[f"demo tiny {trained.step} steps={trained.final_dir}"], preset="tiny",
                          return_state=True)
    summary = state.result(raise_on_failure=False)
    if not state.is_completed():
        exit_code = 1
        print(f"[9/9] eval: {state.name}: {state.message}")
    for name, item in (summary.items() if isinstance(summary, dict) else ()):
        print(f"[9/9] eval {name} ({baked.clips_written + baked.clips_skipped} clips of subject {heldout_id}): "
              f"table {item['markdown']}, {item['csv']}, record {item['record']}")
        print(Path(item["markdown"]).read_text())
    print(f"demo finished in {time.perf_counter() - started:.0f} s; outputs in {out}")
    print(f"open the app on its outputs: gas app --data-root {out} --nerf {nerf.checkpoint} "
          f"--diffusion {trained.final_dir} --preset tiny --out {out / 'app'}")
    return exit_code


def _hold_out(ref, root: Path) -> str:
    """Move a synthetic THuman subject (its folder and ground truth) to another dataset root; returns its id."""
    target = root / "model" / ref.subject_id
    if target.exists():  # held out by an earlier run; this run synthesised the same subject again
        shutil.rmtree(ref.path, ignore_errors=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(ref.path), str(target))
    truth = Path(ref.path).parents[1] / GROUNDTRUTH_DIRNAME / f"{ref.subject_id}.json"
    if truth.exists():
        (root / GROUNDTRUTH_DIRNAME).mkdir(parents=True, exist_ok=True)
        shutil.move(str(truth), str(root / GROUNDTRUTH_DIRNAME / truth.name))
    return ref.subject_id


def write_generation_inputs(subjects: Path, folder: Path, view: int = 0) -> GenerateInputs:
    """The image, mask, SMPL and camera files of one view of the first subject in ``subjects``."""
    sample = decode(next(iter_shard_samples(resolve_shard_urls(subjects)[0])))
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample.views[view]).save(folder / "image.png")
    Image.fromarray(sample.masks[view]).save(folder / "mask.png")
    smpl = {key: np.asarray(value).tolist() if not isinstance(value, str) else value for key, value in sample.smpl.items()}
    (folder / "smpl.json").write_text(json.dumps(smpl))
    camera = {key: np.asarray(value).tolist() if not isinstance(value, str) else value
              for key, value in sample.cameras[view].items()}
    (folder / "camera.json").write_text(json.dumps(camera))
    return GenerateInputs(image=folder / "image.png", mask=folder / "mask.png", smpl=folder / "smpl.json",
                          camera=folder / "camera.json")


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(float(value), 4) for key, value in values.items()}
