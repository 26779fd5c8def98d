"""Video foreground masks on synthetic videos: mask IoU against the rendered ground truth, and frames/s.

Run from the repository root (about 4 minutes on two CPU cores):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa YOLO_CONFIG_DIR=.cache/ultralytics \
        .venv/bin/python benchmarks/bench_masks.py

Videos: one synthetic subject per motion kind (walk, dance, turn; :mod:`gas_core.synth.motion`) rendered
over the static textured backdrop of :mod:`pipelines.synth_video` by a fixed camera, plus Gaussian sensor
noise; the renderer's mask is the ground truth. Rows:

* ``builtin + GrabCut``: the static-camera background model (:mod:`gas_core.segment.background`) with
  the tracker and the GrabCut completion (:mod:`gas_core.segment.refine`, the default), without
  (window 1) and with temporal smoothing (plain, or with neighbours aligned by the subject's box motion);
  ``builtin, no GrabCut``: the same without the completion (``refine.iterations=0``);
* ``random SAM``: a small random-weight Segment Anything model prompted with the built-in boxes. Its
  IoU is meaningless (no trained weights exist here); the row only shows that the code path runs and
  what it costs.

Frames/s per component are measured on the same frames (CPU, this process's threads).

``--source tiktok --size 128 --frames 40 --seed 3`` scores the videos of
:func:`pipelines.synth_video.synthesize_tiktok` instead (the preprocessing's synthetic TikTok data).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO_ROOT / ".cache" / "ultralytics"))

from gas_core.render.gl import configure_headless_gl  # noqa: E402

configure_headless_gl()

from gas_core.segment import (  # noqa: E402
    BackgroundSubtractor, ForegroundComponents, GrabCutConfig, MaskingConfig,
    grabcut_refine, SamMasker, SubjectTracker, TemporalMaskSmoother,
    UltralyticsPersonDetector, VideoMasker, VideoMasks, build_random_sam)
from gas_core.synth.humans import sample_subject_spec  # noqa: E402
from gas_core.synth.motion import MotionSpec, make_motion  # noqa: E402
from pipelines.synth_video import backdrop, fit_camera, render_motion  # noqa: E402


def synthetic_video(kind: str, index: int, num_frames: int, size: int, noise: float, seed: int):
    """Frames (T, H, W, 3) uint8 and ground-truth masks (T, H, W) bool of one synthetic subject."""
    heading = 90.0 if kind == "walk" else 0.0
    motion = make_motion(sample_subject_spec(seed * 1009 + index),
                         MotionSpec(kind, num_frames=num_frames, fps=30.0, seed=seed + index, walk_speed=0.8,
                                    heading_deg=heading), texture_size=256)
    camera = fit_camera(motion.vertices[:, ::7].reshape(-1, 3), size)
    background = backdrop(size, size, seed * 1009 + index)
    rng = np.random.default_rng([seed, index])
    frames, masks = [], []
    for views in render_motion(motion, [camera], background):
        rgb, mask = views[0][:2]  # the one camera's (rgb over the backdrop, mask, ...)
        noisy = rgb.astype(np.float32) + rng.normal(0.0, noise, rgb.shape)
        frames.append(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))
        masks.append(mask)
    return np.stack(frames), np.stack(masks)


def posed_video(kind: str, index: int, num_frames: int, size: int, noise: float, seed: int):
    """Like :func:`synthetic_video` without :mod:`gas_core.synth.motion`: the subject switches between three
    library poses every 8 frames and either crosses the view (``walk``) or sways in place (other kinds)."""
    import dataclasses

    import trimesh

    from gas_core.render.scan import ScanRenderer
    from gas_core.synth.humans import make_subject

    spec = sample_subject_spec(seed * 1009 + index)
    poses = ("walking", "one_arm_raised", "contrapposto")
    subjects = [make_subject(dataclasses.replace(spec, pose_name=name), texture_size=256) for name in poses]
    steps = np.arange(num_frames) / max(1, num_frames - 1)
    if kind == "walk":
        shifts = np.stack([-0.6 + 1.2 * steps, 0 * steps, 0 * steps], axis=1)
    else:
        shifts = np.stack([0.08 * np.sin(2 * np.pi * 2 * steps), 0 * steps, 0.05 * np.cos(2 * np.pi * steps)], axis=1)
    every = np.concatenate([subject.vertices[::7] for subject in subjects])
    camera = fit_camera((every[None] + shifts[:, None]).reshape(-1, 3), size)
    background = backdrop(size, size, seed * 1009 + index)
    rng = np.random.default_rng([seed, index])
    frames, masks = [], []
    with ScanRenderer(size, size, meshes_per_context=64) as renderer:
        for t in range(num_frames):
            subject = subjects[(t // 8) % len(subjects)]
            renderer.set_mesh(trimesh.Trimesh(subject.vertices + shifts[t], subject.faces,
                                              vertex_colors=subject.vertex_colors, process=False))
            view = renderer.render(camera)
            mask = view.mask > 0
            rgb = np.where(mask[..., None], view.rgb, background).astype(np.float32)
            frames.append(np.clip(np.rint(rgb + rng.normal(0.0, noise, rgb.shape)), 0, 255).astype(np.uint8))
            masks.append(mask)
    return np.stack(frames), np.stack(masks)


def tiktok_videos(num_videos: int, num_frames: int, size: int, seed: int, folder: Path):
    """``(label, frames (T, H, W, 3) uint8, masks (T, H, W) bool)`` of the synthetic TikTok-style videos of
    :func:`pipelines.synth_video.synthesize_tiktok` (subjects dancing, walking, turning in turn), written
    to ``folder`` and read back from their PNG frames and ground truth."""
    from PIL import Image

    from pipelines.synth_video import read_video_groundtruth, synthesize_tiktok

    synthesize_tiktok(folder, num_videos=num_videos, num_frames=num_frames, size=size, seed=seed)
    for number in range(1, num_videos + 1):
        video_id = f"{number:05d}"
        record, arrays = read_video_groundtruth(folder, video_id)
        frames = np.stack([np.asarray(Image.open(path).convert("RGB"))
                           for path in sorted((folder / video_id / "images").glob("*.png"))])
        yield f"tiktok {video_id} ({record['motion']['kind']})", frames, arrays["masks"][0] > 0


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T,) IoU per frame of bool masks (T, H, W); 1 where both are empty."""
    intersection = np.logical_and(predicted, truth).sum(axis=(1, 2))
    union = np.logical_or(predicted, truth).sum(axis=(1, 2))
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def run_masker(frames: np.ndarray, config: MaskingConfig, chunk: int, **components) -> tuple[VideoMasks, float]:
    """Masks of ``frames`` fed in chunks of ``chunk`` and the seconds it took."""
    masker = VideoMasker(config, **components)
    start = time.perf_counter()
    parts = [masker.process(frames[i:i + chunk]) for i in range(0, len(frames), chunk)] + [masker.finish()]
    return VideoMasks.concatenate(parts), time.perf_counter() - start


def component_speeds(frames: np.ndarray, config: MaskingConfig, sam: SamMasker, yolo_path: Path | None) -> list:
    """(component, frames/s) rows measured on ``frames``."""
    rows = []
    start = time.perf_counter()
    subtractor = BackgroundSubtractor(config.background)
    released = [item for frame in frames for item in subtractor.push(frame)] + subtractor.finish()
    rows.append(("background model (median + foreground map)", len(frames) / (time.perf_counter() - start)))
    tracker = SubjectTracker(config.tracking)
    start = time.perf_counter()
    steps, component_masks = [], []
    for item in released:
        components = ForegroundComponents(item.foreground, config.background)
        step = tracker.update(item.frame, components.detections(merge_box=tracker.box))
        steps.append(step)
        component_masks.append(components.mask(step.box) if step.status == "ok" else None)
    rows.append(("components + tracker + component mask", len(frames) / (time.perf_counter() - start)))
    start = time.perf_counter()
    previous = None
    for item, step, mask in zip(released, steps, component_masks):
        previous = None if mask is None else grabcut_refine(item.frame, mask, step.box, config.refine, item.distance,
                                                            previous)
    rows.append((f"GrabCut completion ({config.refine.iterations} iterations)", len(frames) / (time.perf_counter() - start)))
    smoother = TemporalMaskSmoother(5)
    masks = [item.foreground for item in released]
    start = time.perf_counter()
    for mask in masks:
        smoother.push(mask)
    smoother.finish()
    rows.append(("temporal smoothing (window 5)", len(frames) / (time.perf_counter() - start)))
    boxes = [step.box if step.status == "ok" else np.array([0, 0, 8, 8], np.float32) for step in steps]
    start = time.perf_counter()
    for frame, box in zip(frames, boxes):
        sam.mask(frame, box)
    rows.append(("random SAM, 64 px encoder, 1 block (box -> mask)", len(frames) / (time.perf_counter() - start)))
    if yolo_path is not None:
        detector = UltralyticsPersonDetector(yolo_path, score_threshold=0.25, image_size=256)
        detector.detect(frames[0])  # warm-up
        start = time.perf_counter()
        for frame in frames:
            detector.detect(frame)
        rows.append(("random-weight YOLOv8n detector, 256 px", len(frames) / (time.perf_counter() - start)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192, help="square frame side in pixels")
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--noise", type=float, default=3.0, help="sensor noise sigma (8-bit units)")
    parser.add_argument("--chunk", type=int, default=16, help="frames per VideoMasker.process call")
    parser.add_argument("--kinds", default="walk,dance,turn", help="motion kinds, comma separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", choices=("motion", "poses", "tiktok"), default="motion",
                        help="motion: gas_core.synth.motion sequences; poses: library poses + translations; "
                             "tiktok: pipelines.synth_video.synthesize_tiktok videos (no added noise, --kinds ignored)")
    parser.add_argument("--no-yolo", action="store_true", help="skip the random-weight YOLO timing")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    sam = SamMasker(build_random_sam(image_size=64, embed_dim=32, depth=1, prompt_dim=32, seed=0))
    yolo_path = None
    scratch = tempfile.TemporaryDirectory(prefix="bench_masks_")
    if not args.no_yolo:
        from ultralytics import YOLO

        yolo_path = Path(scratch.name) / "random_yolov8n.pt"
        torch.manual_seed(0)
        model = YOLO("yolov8n.yaml")
        model.model.names = {index: ("person" if index == 0 else f"class{index}") for index in range(80)}
        model.save(str(yolo_path))

    base = MaskingConfig(estimator="background")  # the built-in background model: 61-frame median window
    smoothings = [("none (window 1)", 1, False), ("majority, window 3", 3, False), ("majority, window 5", 5, False),
                  ("majority, window 3, box-aligned", 3, True), ("majority, window 5, box-aligned", 5, True)]
    refinements = [("builtin + GrabCut", GrabCutConfig()), ("builtin, no GrabCut", GrabCutConfig(iterations=0))]
    methods = [
        *((masker_name, smoothing, MaskingConfig(estimator="background", smoothing_window=window, smoothing_aligns_motion=aligned,
                                                 refine=refine), {})
          for masker_name, refine in refinements for smoothing, window, aligned in smoothings),
        ("random SAM (meaningless)", "none (window 1)", MaskingConfig(estimator="background", smoothing_window=1),
         {"box_masker": sam}),
        ("MediaPipe Pose (default)", "majority, window 3", MaskingConfig(smoothing_window=3), {}),
    ]
    print(f"# Video masks ({args.source}): {args.frames} frames of {args.size}x{args.size} per video, noise sigma {args.noise}, "
          f"chunks of {args.chunk}\n")
    print("| motion | masker | smoothing | mean IoU | min IoU | frames ok | frames/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    speed_frames = None
    if args.source == "tiktok":
        videos = tiktok_videos(3, args.frames, args.size, args.seed, Path(scratch.name) / "tiktok")
    else:
        make_video = synthetic_video if args.source == "motion" else posed_video
        videos = ((kind, *make_video(kind, index, args.frames, args.size, args.noise, args.seed))
                  for index, kind in enumerate(args.kinds.split(",")))
    while True:
        start = time.perf_counter()
        kind, frames, truth = next(videos, (None, None, None))
        if kind is None:
            break
        render_seconds = time.perf_counter() - start
        if speed_frames is None:
            speed_frames = frames
        for masker_name, smoothing, config, components in methods:
            result, seconds = run_masker(frames, config, args.chunk, **components)
            ious = mask_iou(result.masks > 0, truth)
            ok = sum(status == "ok" for status in result.statuses)
            print(f"| {kind} | {masker_name} | {smoothing} | {ious.mean():.3f} | {ious.min():.3f} | "
                  f"{ok}/{len(result)} | {len(frames) / seconds:.1f} |")
        print(f"<!-- {kind}: synthetic video rendered in {render_seconds:.1f} s -->")

    print("\n# Frames/s per component (CPU)\n")
    print("| component | frames/s |")
    print("| --- | --- |")
    for name, fps in component_speeds(speed_frames, base, sam, yolo_path):
        print(f"| {name} | {fps:.1f} |")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
