"""NeRF bake throughput at the paper's clip size, MLP queries per frame, and memory over many subjects.

Run from the repository root (on two busy CPU cores the default takes several minutes, mostly the 512 px
NeRF frames):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/bench_bake.py
        [--frames 2] [--device cpu|cuda] [--memory-subjects 6] [--memory-size 64]

Inputs: one synthetic THuman2.1 subject preprocessed by ``pipelines.preprocess`` (20 views at 512 px,
short fit), and random-weight NeRFs (``GeneralizableHumanNeRF.from_preset``) saved with ``save_pretrained``;
the bake code is the real one (``ClipBaker``, ``bake_input_shard``). Random weights cost what trained ones
cost: the renderer samples only near the posed body, so the work does not depend on the weights.

Table 1 (printed second), paper sizes: one view clip of ``--frames`` frames (512x512, paper NeRF preset, paper
``BakeConfig`` with ``render.device`` from ``--device``) from a 512 px reference. frames/s is frames over
the wall time of ``ClipBaker.bake`` (after a one-frame warm-up); nerf and normals are the seconds per
frame spent in the NeRF render and in the normal maps (reused from the 512 px subject shard here);
"normals rendered" times ``NormalMapRenderer`` drawing the same frames instead; MLP queries are the network
queries the render reports per frame (samples near the body; rays that miss the body cost none); peak RSS is the process's
peak after this table (it includes Table 2's run), peak CUDA the allocator's peak on a GPU.

Table 2 (run first, so that its peak is its own), memory: the subject written ``--memory-subjects`` times under new ids into one input shard, baked
with the ``tiny`` NeRF at ``--memory-size`` px clips (tiny ``BakeConfig``, 8 frames, 4 references) by one
``bake_input_shard`` call; resident memory of the process (now, and the peak so far) after each subject.
It should stay flat: a column is flagged when its last value exceeds its value after the second subject
by more than 10% + 50 MiB.

Timings are wall-clock on a shared machine: expect noise of tens of percent between runs.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import repo_setup  # noqa: E402, F401 - first: the repository on sys.path, GAS_CACHE_DIR's default, headless GL

import psutil  # noqa: E402
import torch  # noqa: E402

from gas_core.nerf import GeneralizableHumanNeRF  # noqa: E402
from pipelines.bake_nerf import (  # noqa: E402
    BakeConfig,
    ClipBaker,
    bake_input_shard,
    config_with_device,
    load_bake_config,
    plan_bake,
    subject_clip_source,
    view_clip_specs,
)
from pipelines.preprocess import load_preprocess_config, pack_staged_subjects, plan_subjects, preprocess_subject  # noqa: E402
from pipelines.synth import synthesize_dataset  # noqa: E402
from shards.reader import iter_shard_samples, resolve_shard_urls  # noqa: E402
from shards.schema import decode  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402

MIB = 1 << 20


def _table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    print("  ".join(str(cell).rjust(width) for cell, width in zip(header, widths)))
    for row in rows:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))


def _subject(work: Path, size: int):
    """One synthetic subject preprocessed to 20 views at ``size`` px (short fit): its decoded sample and shard."""
    raw, shards = work / "raw", work / "subjects"
    synthesize_dataset("thuman", raw, num_subjects=1, seed=11, texture_size=512)
    config = load_preprocess_config(preset="tiny", overrides=[
        "orbit.num_views=20", f"orbit.width={size}", f"orbit.height={size}"])
    plan = plan_subjects("thuman", raw, shards)
    for ref in plan.todo:
        preprocess_subject(ref, config, plan.staging_dir)
    pack_staged_subjects(plan.staging_dir, shards, config)
    url = resolve_shard_urls(shards)[0]
    return url, decode(next(iter_shard_samples(url)))


def _checkpoint(work: Path, preset: str) -> Path:
    folder = work / f"nerf-{preset}"
    torch.manual_seed(0)
    GeneralizableHumanNeRF.from_preset(preset).save_pretrained(folder)
    return folder


def bench_paper_clip(work: Path, url: str, sample, frames: int, device: str) -> None:
    config = config_with_device(BakeConfig.paper(), device)
    source = subject_clip_source(sample, origin={"subject_shard": url})
    with ClipBaker.open(_checkpoint(work, "paper"), config) as baker:
        spec = view_clip_specs(source, config.clip)[0]

        def first(count: int):
            return replace(spec, frame_indices=spec.frame_indices[:count], cameras=spec.cameras[:count],
                           smpl=spec.smpl[:count])

        baker.bake(source, first(1))  # warm-up: GL context, allocator, kernels
        before = replace(baker.timings)
        started = time.perf_counter()
        baker.bake(source, first(frames))
        seconds = time.perf_counter() - started
        after = replace(baker.timings)
        # the 512 px subject carries its normal maps, so the clip reused them; time rendering them too
        started = time.perf_counter()
        baker.normal_maps(replace(source, normals=None), first(frames))
        rendered_normals = (time.perf_counter() - started) / frames
    rays = config.clip.width * config.clip.height
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    gpu_peak = f"{torch.cuda.max_memory_allocated() / MIB:.0f}" if baker.device.type == "cuda" else "-"
    queries = (after.mlp_queries - before.mlp_queries) / frames
    _table(f"Table 1: paper sizes ({config.clip.width}x{config.clip.height}, paper NeRF, device {baker.device}, "
           f"{frames} frames, {torch.get_num_threads()} torch threads)",
           ["frames/s", "s/frame", "nerf s/frame", "normals s/frame", "normals rendered s/frame", "MLP queries/frame",
            "queries/ray", "peak RSS MiB", "peak CUDA MiB"],
           [[f"{frames / seconds:.3f}", f"{seconds / frames:.2f}", f"{(after.nerf_s - before.nerf_s) / frames:.2f}",
             f"{(after.normals_s - before.normals_s) / frames:.3f}", f"{rendered_normals:.3f}", f"{queries:,.0f}",
             f"{queries / rays:.2f}", f"{peak:.0f}", gpu_peak]])


def bench_memory(work: Path, sample, subjects: int, size: int) -> None:
    folder = work / "memory-subjects"
    with ShardWriter(folder, "subjects") as writer:
        for index in range(subjects):
            copy = replace(sample, meta={**sample.meta, "subject_id": f"copy{index:03d}"})
            writer.write(copy)
    config = load_bake_config(preset="tiny", overrides=[f"clip.width={size}", f"clip.height={size}"])
    plan = plan_bake(folder, work / "memory-clips", _checkpoint(work, "tiny"), config)
    process = psutil.Process()
    rows: list[list[object]] = []

    def record(report) -> None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        rows.append([len(rows) + 1, report.status, f"{report.seconds:.1f}", f"{process.memory_info().rss / MIB:.0f}",
                     f"{peak:.0f}"])

    with ClipBaker.open(plan.checkpoint, config) as baker:
        for shard in plan.todo:
            bake_input_shard(baker, shard, plan, on_subject=record)
    flags = []
    if len(rows) >= 3:
        for column, name in ((3, "RSS"), (4, "peak")):
            second, last = float(rows[1][column]), float(rows[-1][column])
            if last > second * 1.1 + 50:
                flags.append(f"{name} grew from {second:.0f} to {last:.0f} MiB")
    _table(f"Table 2: memory over subjects (tiny NeRF, {size}x{size} clips, {config.clip.num_frames} frames, "
           f"{config.clip.num_references} clips per subject)",
           ["subjects", "status", "s", "RSS MiB", "peak MiB"], rows)
    print("memory flat" if not flags else "NOT FLAT: " + "; ".join(flags))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2, help="frames of the 512 px clip (default 2)")
    parser.add_argument("--device", default="cpu", help="torch device of the NeRF (default cpu)")
    parser.add_argument("--memory-subjects", type=int, default=6)
    parser.add_argument("--memory-size", type=int, default=64, help="clip size of the memory run (default 64)")
    parser.add_argument("--subject-size", type=int, default=512, help="pixels of the preprocessed views (default 512)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-bake-") as temporary:
        work = Path(temporary)
        started = time.perf_counter()
        url, sample = _subject(work, args.subject_size)
        print(f"subject preprocessed in {time.perf_counter() - started:.1f} s "
              f"({sample.n_views} views at {sample.views.shape[2]} px)")
        bench_memory(work, sample, args.memory_subjects, args.memory_size)  # first: its peak is its own
        bench_paper_clip(work, url, sample, args.frames, args.device)


if __name__ == "__main__":
    main()
