"""NeRF rendering cost: MLP queries per frame (ours against SHERF's sampling), rays per second, peak memory.

Run from the repository root:

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nerf.py
        [--work DIR] [--subjects 4] [--threads 1] [--skip-paper-timing]

Bodies and cameras: fitted bodies of synthetic subjects (``benchmarks/nerf_data.py``, seed 29) seen by their
8 orbit views (3 m away, 40 degree vertical field of view), at 512x512.

Table 1, MLP queries per 512x512 frame (geometry only, so weights do not matter):
* ours: ``samples_per_ray`` samples on each ray that enters the band around the posed body (paper preset:
  24 samples, 5 cm band, 64 occupancy probes that cost grid lookups, not network queries);
* SHERF as configured: 48 uniform samples on every ray through the posed body's box grown by 5 cm;
* SHERF after its own skip of samples farther than 5 cm from the posed surface (distance to the nearest
  vertex), i.e. what its MLP really evaluates.

Table 2, full renders (``model.render``, untrained weights; the cost does not depend on them): rays per second
(all pixels of the frame / wall time, including reference encoding), MLP queries per second, and peak
memory (CUDA: ``max_memory_allocated``; CPU: growth of the process's peak resident set during the render).
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# nerf_data puts the repository on sys.path, sets GAS_CACHE_DIR's default and configures headless GL.
from nerf_data import REPO_ROOT, make_synthetic_shards  # noqa: E402

import torch  # noqa: E402

from gas_core.body.smpl import BodyModel  # noqa: E402
from gas_core.nerf import GeneralizableHumanNeRF, NeRFModelConfig  # noqa: E402
from gas_core.nerf.sampling import (  # noqa: E402
    SurfaceProximityGrid,
    camera_rays,
    pixel_centers,
    ray_box_intersection,
    sample_near_surface,
)
from pipelines.train_nerf import pair_batch, subject_views  # noqa: E402
from shards.reader import make_subject_pipeline  # noqa: E402

SHERF_SAMPLES = 48
SHERF_MARGIN = 0.05


def query_counts(batch, settings: NeRFModelConfig) -> dict[str, float]:
    """Mean MLP queries per frame of the batch's target views: ours, SHERF as configured, SHERF after skipping."""
    camera, body = batch.target_camera, batch.target_body
    frames, pixels = camera.batch_size, camera.width * camera.height
    origins, directions = camera_rays(camera, pixel_centers(camera.width, camera.height)[None].expand(frames, -1, -1))
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    batch_index = torch.arange(frames).repeat_interleave(pixels)
    ours_grid = SurfaceProximityGrid(body.vertices, band=settings.surface_band, cell_size=settings.grid_cell_size)
    ours = 0
    for start in range(0, origins.shape[0], 65536):
        part = slice(start, start + 65536)
        samples = sample_near_surface(origins[part], directions[part], batch_index[part], ours_grid,
                                      probes_per_ray=settings.probes_per_ray, samples_per_ray=settings.samples_per_ray,
                                      window_depth=settings.window_depth,
                                      surface_crossings=settings.surface_crossings)
        ours += samples.num_rays * settings.samples_per_ray
    box_min = body.vertices.amin(dim=1) - SHERF_MARGIN
    box_max = body.vertices.amax(dim=1) + SHERF_MARGIN
    entry, exit_ = ray_box_intersection(origins, directions, box_min[batch_index], box_max[batch_index])
    in_box = exit_ > entry
    sherf = int(in_box.sum()) * SHERF_SAMPLES
    # SHERF's skip: of its 48 uniform samples, those within 5 cm of the posed surface reach the MLP
    skip_grid = SurfaceProximityGrid(body.vertices, band=SHERF_MARGIN, cell_size=0.01)
    rays = torch.nonzero(in_box).squeeze(-1)
    kept = 0
    depths_unit = (torch.arange(SHERF_SAMPLES).float() + 0.5) / SHERF_SAMPLES
    for start in range(0, rays.shape[0], 16384):
        chosen = rays[start:start + 16384]
        depths = entry[chosen, None] + depths_unit[None] * (exit_[chosen] - entry[chosen])[:, None]
        points = origins[chosen, None] + depths[..., None] * directions[chosen, None]
        distance = skip_grid.distance(points.reshape(-1, 3), batch_index[chosen].repeat_interleave(SHERF_SAMPLES))
        kept += int((distance <= SHERF_MARGIN).sum())
    return {"ours": ours / frames, "sherf": sherf / frames, "sherf_skip": kept / frames,
            "rays_in_box": float(in_box.sum()) / frames, "rays_sampled_ours": ours / settings.samples_per_ray / frames}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_render(model: GeneralizableHumanNeRF, batch, frames: int, device: torch.device) -> dict[str, float]:
    """Render ``frames`` target views one at a time from one encoded reference; rays/s, queries/s, peak memory."""
    batch = batch.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _peak_rss_mib()
    model.render(batch.reference.index(0), batch.target_camera.index(0), batch.target_body.index(0))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    queries = 0
    for frame in range(frames):
        result = model.render(batch.reference.index(frame), batch.target_camera.index(frame),
                              batch.target_body.index(frame))
        queries += result.mlp_queries
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    pixels = frames * batch.target_camera.width * batch.target_camera.height
    peak = (torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda"
            else max(0.0, _peak_rss_mib() - rss_before))
    return {"seconds_per_frame": seconds / frames, "rays_per_s": pixels / seconds, "queries_per_s": queries / seconds,
            "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "out" / "bench_nerf_quality")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=2, help="frames timed per preset")
    parser.add_argument("--skip-paper-timing", action="store_true", help="count queries only for the paper preset")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shards = make_synthetic_shards(args.work / "heldout", subjects=args.subjects, seed=29)
    body_model = BodyModel()
    subjects = [subject_views(sample, 512) for sample in
                make_subject_pipeline(shards, split_by_node=False, split_by_worker=False)][:args.subjects]
    batches = [pair_batch([s] * (s.views.shape[0] - 1), [(0, j) for j in range(1, s.views.shape[0])], body_model)
               for s in subjects]

    paper = NeRFModelConfig.paper()
    counts = [query_counts(batch, paper) for batch in batches]
    mean = {key: sum(c[key] for c in counts) / len(counts) for key in counts[0]}
    frames = sum(b.target_camera.batch_size for b in batches)
    print(f"\nMLP queries per 512x512 frame (mean of {frames} views of {len(batches)} fitted synthetic bodies)\n")
    print("| sampling | rays sampled | samples per ray | MLP queries per frame | vs ours |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| ours (paper preset: {paper.surface_band * 100:.0f} cm band, {paper.samples_per_ray} samples) "
          f"| {mean['rays_sampled_ours']:,.0f} | {paper.samples_per_ray} | {mean['ours']:,.0f} | 1.0x |")
    print(f"| SHERF: 48 uniform in the body box (+5 cm) | {mean['rays_in_box']:,.0f} | 48 | {mean['sherf']:,.0f} "
          f"| {mean['sherf'] / mean['ours']:.1f}x |")
    print(f"| SHERF after skipping samples > 5 cm from the surface | {mean['rays_in_box']:,.0f} | <= 48 "
          f"| {mean['sherf_skip']:,.0f} | {mean['sherf_skip'] / mean['ours']:.1f}x |")

    print(f"\nFull renders on {device.type} ({args.threads} CPU thread(s)), untrained weights, one frame per call\n")
    print("| preset | size | s / frame | rays / s | MLP queries / s | peak memory (MiB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, size in (("tiny", 128), ("paper", 512)):
        if name == "paper" and args.skip_paper_timing:
            continue
        model = GeneralizableHumanNeRF.from_preset(name).to(device).eval()
        scale = size / 512
        batch = batches[0]
        resized = type(batch)(
            reference=type(batch.reference)(
                image=torch.nn.functional.interpolate(batch.reference.image, size=(size, size), mode="area"),
                mask=torch.nn.functional.interpolate(batch.reference.mask, size=(size, size), mode="area"),
                camera=batch.reference.camera.scaled(scale), body=batch.reference.body),
            target_camera=batch.target_camera.scaled(scale), target_body=batch.target_body,
            target_rgb=batch.target_rgb, target_mask=batch.target_mask)
        timing = time_render(model, resized, args.frames, device)
        peak = f"{timing['peak_mib']:,.0f}" if timing["peak_mib"] > 0 else "not above the process's earlier peak"
        print(f"| {name} | {size} | {timing['seconds_per_frame']:.2f} | {timing['rays_per_s']:,.0f} "
              f"| {timing['queries_per_s']:,.0f} | {peak} |")


if __name__ == "__main__":
    main()
