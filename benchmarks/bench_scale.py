"""Scale-out figures: preprocess on 1 vs 2 Dask workers, shard streaming from S3 vs local disk, Prefect overhead.

Run from the repository root (it starts its own moto S3 server and Dask processes on 127.0.0.1):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa PYTHONPATH=. .venv/bin/python benchmarks/bench_scale.py
        [--subjects N] [--shards N] [--skip-dask] [--skip-overhead]

Table 1, Dask: the ``preprocess`` flow on ``--subjects`` synthetic THuman2.1 subjects (a preset smaller
than ``tiny``: 4 views of 96 px, short fits) through a Dask cluster of 1, then 2 single-thread workers;
subjects/min over the flow's wall time (scheduler and workers already running; the workers' first
subject includes their imports and GL set-up). Target: 2 workers >= 1.7x 1 worker on 2 idle cores.

Table 2, streaming: ``--shards`` subject shards and clip shards (random 256 px samples) are written to a
local folder and to a bucket of the moto S3 server, then read back whole with ``iter_shard_samples``
(raw bytes, no decoding); MB/s of shard bytes and the S3/local ratio. Target: S3 >= 0.8x local. The
local reads come from the page cache; moto runs in this process (its CPU time is charged here too).

Table 3, Prefect overhead: the same subjects through the steps called directly (plan, one
``preprocess_subject`` each, pack) and through the ``preprocess`` flow with one thread; the
difference per subject is the cost of the flow run (task runs, state updates, artifacts).

Timings are wall-clock: on a shared machine they vary by tens of percent between runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def quick_config():
    from pipelines.preprocess import PreprocessConfig

    config = PreprocessConfig.tiny()
    return replace(config, orbit=replace(config.orbit, num_views=4, width=96, height=96),
                   fit=replace(config.fit, keypoint_iterations=40, surface_iterations=5),
                   gates=replace(config.gates, enforce=False))


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).rjust(width) for cell, width in zip(line, widths)))


def bench_dask(raw: Path, work: Path, subjects: int) -> list[list[object]]:
    from flows.preprocess import preprocess
    from tests.dask_cluster import DaskCluster

    rows = []
    for workers in (1, 2):
        out = work / f"dask{workers}"
        with DaskCluster(workers) as cluster:
            start = time.perf_counter()
            state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(out), config=quick_config(),
                               dask_address=cluster.address, limit=subjects, return_state=True)
            seconds = time.perf_counter() - start
        if not state.is_completed():
            raise RuntimeError(f"preprocess on {workers} worker(s) failed: {state.message}")
        rows.append([workers, subjects, round(seconds, 1), round(60 * subjects / seconds, 2)])
    rows[1].append(f"{rows[0][2] / rows[1][2]:.2f}x")
    rows[0].append("1.00x")
    return rows


def bench_streaming(work: Path, n_shards: int) -> list[list[object]]:
    from shards.reader import iter_shard_samples, resolve_shard_urls
    from shards.schema import CLIP_SCHEMA, SUBJECT_SCHEMA
    from shards.writer import ShardWriter
    from tests.s3 import S3Server
    from tests.shards.samples import make_clip, make_subject

    server = S3Server().start()
    bucket = server.create_bucket()
    rows = []
    try:
        for kind, schema, make in (("subject", SUBJECT_SCHEMA, lambda i: make_subject(f"s{i}", n_views=8, size=256, seed=i)),
                                   ("clip", CLIP_SCHEMA, lambda i: make_clip(f"s{i}", n_frames=8, size=256, seed=i))):
            samples = [make(i) for i in range(4 * n_shards)]
            rates = {}
            for where, folder in (("local", str(work / f"{kind}s")), ("s3", f"{bucket}/{kind}s")):
                with ShardWriter(folder, f"{kind}s", schema, max_count=4) as writer:
                    for sample in samples:
                        writer.write(sample)
                urls = resolve_shard_urls(folder)
                start = time.perf_counter()
                size = 0
                for url in urls:
                    for raw in iter_shard_samples(url):
                        size += sum(len(v) for k, v in raw.items() if not k.startswith("__"))
                seconds = time.perf_counter() - start
                rates[where] = size / 1e6 / seconds
                rows.append([kind, where, len(urls), round(size / 1e6, 1), round(seconds, 2), round(rates[where], 1), ""])
            rows[-1][-1] = f"{rates['s3'] / rates['local']:.2f}x"
    finally:
        server.stop()
        server.restore_env()
    return rows


def bench_overhead(raw: Path, work: Path, subjects: int) -> list[list[object]]:
    from flows.preprocess import preprocess
    from pipelines.preprocess import pack_staged_subjects, plan_subjects, preprocess_subject

    config = quick_config()
    out = work / "direct"
    plan_subjects("thuman", raw, out, limit=subjects, gates=config.gates)  # warm-up: imports, body model
    warm = plan_subjects("thuman", raw, work / "warm", limit=1, gates=config.gates)
    preprocess_subject(warm.todo[0], config, warm.staging_dir, warm.rejected_dir)
    start = time.perf_counter()
    plan = plan_subjects("thuman", raw, out, limit=subjects, gates=config.gates)
    for ref in plan.todo:
        preprocess_subject(ref, config, plan.staging_dir, plan.rejected_dir)
    pack_staged_subjects(plan.staging_dir, out, config)
    direct = time.perf_counter() - start
    start = time.perf_counter()
    state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(work / "flow"), config=config,
                       limit=subjects, return_state=True)
    flow = time.perf_counter() - start
    if not state.is_completed():
        raise RuntimeError(f"preprocess flow failed: {state.message}")
    return [[subjects, round(direct, 1), round(flow, 1), round((flow - direct) / subjects, 2)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.synth import synthesize_dataset

    with tempfile.TemporaryDirectory() as temp, prefect_test_harness(server_startup_timeout=180):
        work = Path(temp)
        print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        table("Shard streaming, S3 (moto) vs local disk", ["kind", "storage", "shards", "MB", "s", "MB/s", "S3/local"],
              bench_streaming(work, args.shards))
        if not (args.skip_dask and args.skip_overhead):
            raw = work / "raw"
            synthesize_dataset("thuman", raw, num_subjects=args.subjects, seed=7, texture_size=128)
        if not args.skip_dask:
            table("preprocess on Dask (quick preset)", ["workers", "subjects", "s", "subj/min", "speed-up"],
                  bench_dask(raw, work, args.subjects))
        if not args.skip_overhead:
            table("Prefect flow overhead (quick preset, one thread)", ["subjects", "direct s", "flow s", "overhead s/subject"],
                  bench_overhead(raw, work, args.subjects))
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
