"""Scale-out figures: preprocess on 1 vs 2 Dask workers, shard streaming from S3 vs local disk, Prefect overhead.

Run from the repository root (it starts its own moto S3 server and Dask processes on 127.0.0.1):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa PYTHONPATH=. .venv/bin/python benchmarks/bench_scale.py
        [--subjects N] [--shards N] [--repeats N] [--s3-server thread|process] [--no-preload]
        [--skip-dask] [--skip-overhead]

Table 1, streaming: ``--shards`` subject shards and clip shards (random 256 px samples) are written to a
local folder and to a bucket of the moto S3 server, then read back whole: as raw samples (bytes, no
decoding) by ``iter_shards`` (chunks of 8 MiB read by background threads, the next shard started
while the current one is parsed) and by ``iter_shard_samples`` (one shard at a time, no read-ahead);
and decoded (PNGs to arrays) by the training pipeline (``make_subject_pipeline`` /
``make_clip_pipeline``, ``decode_to_tensors=False``) with ``prefetch=1`` and ``prefetch=0``. Rates
are shard bytes (the manifest's sizes) per second. Local and S3 passes alternate, ``--repeats`` times each; the table gives the
median MB/s of shard bytes, the S3/local ratio, and the CPU time of this process per MB (all its
threads: a CPU-bound reader's rate on an idle machine is about 1000 / (CPU ms/MB)). Target: S3 >= 0.8x local. The local reads come
from the page cache. ``--s3-server thread`` (default) runs moto in a thread of this process, so its
CPU time and its share of the GIL are charged to the reader; ``process`` runs it in its own process,
as a real server would be.

Table 2, Dask: the ``preprocess`` flow on ``--subjects`` synthetic THuman2.1 subjects (a preset smaller
than ``tiny``: 4 views of 96 px, short fits) through a Dask cluster of 1, then 2 single-thread workers
(started with ``--preload flows.dask_worker`` unless ``--no-preload``), twice on each cluster:
``cold`` is the first run on fresh workers (each worker's first subject pays its first-call costs,
and without preload its imports), ``warm`` the next run on the same workers (a long-lived cluster).
Subjects/min over the flow's wall time (scheduler and workers already running). Target: 2 workers
>= 1.7x 1 worker on 2 idle cores.

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


def bench_dask(raw: Path, work: Path, subjects: int, preload: bool) -> list[list[object]]:
    """Two runs of the flow on each cluster: the first on fresh workers (cold), the second right after
    on the same workers (warm: imports done, first-call costs paid)."""
    from flows.preprocess import preprocess
    from tests.dask_cluster import DaskCluster

    rows = []
    for workers in (1, 2):
        seconds = {}
        with DaskCluster(workers, preload=("flows.dask_worker",) if preload else ()) as cluster:
            for run in ("cold", "warm"):
                start = time.perf_counter()
                state = preprocess(dataset="thuman", raw_root=str(raw), out_dir=str(work / f"dask{workers}-{run}"),
                                   config=quick_config(), dask_address=cluster.address, limit=subjects, return_state=True)
                seconds[run] = time.perf_counter() - start
                if not state.is_completed():
                    raise RuntimeError(f"preprocess on {workers} worker(s) failed: {state.message}")
        rows.append([workers, subjects, round(seconds["cold"], 1), round(60 * subjects / seconds["cold"], 2),
                     round(seconds["warm"], 1), round(60 * subjects / seconds["warm"], 2)])
    for column in (2, 4):
        rows[0].append("1.00x")
        rows[1].append(f"{rows[0][column] / rows[1][column]:.2f}x")
    return [row[:4] + [row[6]] + row[4:6] + [row[7]] for row in rows]


class _MotoProcess:
    """moto's S3 server in its own process (as a real server would be: its CPU is not this process's)."""

    def __init__(self) -> None:
        import subprocess

        from tests.s3 import S3Server, free_port

        self.server = S3Server(free_port())
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.server.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._saved = {name: os.environ.get(name) for name in self.server.env}
        os.environ.update(self.server.env)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.bucket = self.server.create_bucket()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        from tests.s3 import reset_s3_clients

        self.process.terminate()
        self.process.wait(timeout=20)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_s3_clients()


def bench_streaming(work: Path, n_shards: int, server_kind: str, repeats: int) -> list[list[object]]:
    """Raw samples of every shard, read the pipeline's way (``iter_shards``, one shard read ahead) and
    one shard at a time with no read-ahead (``iter_shard_samples``); local and S3 runs interleaved,
    ``repeats`` times, median rate reported."""
    import statistics

    from shards.reader import iter_shard_samples, iter_shards, resolve_shard_urls
    from shards.schema import CLIP_SCHEMA, SUBJECT_SCHEMA
    from shards.writer import ShardWriter
    from tests.s3 import S3Server
    from tests.shards.samples import make_clip, make_subject

    if server_kind == "process":
        server = _MotoProcess()
        bucket = server.bucket
    else:
        server = S3Server().start()
        bucket = server.create_bucket()
    from shards.manifest import load_manifest
    from shards.reader import make_clip_pipeline, make_subject_pipeline

    def decoded(kind: str, prefetch: int):
        make = make_subject_pipeline if kind == "subject" else make_clip_pipeline
        return lambda folder: make(folder, decode_to_tensors=False, prefetch=prefetch)

    readers = {"raw, read-ahead": lambda kind: lambda folder: iter_shards(resolve_shard_urls(folder), prefetch=1),
               "raw, one at a time": lambda kind: lambda folder: (
                   raw for url in resolve_shard_urls(folder) for raw in iter_shard_samples(url)),
               "decoded, read-ahead": lambda kind: decoded(kind, 1),
               "decoded, one at a time": lambda kind: decoded(kind, 0)}
    rows = []
    try:
        for kind, schema, make in (("subject", SUBJECT_SCHEMA, lambda i: make_subject(f"s{i}", n_views=8, size=256, seed=i)),
                                   ("clip", CLIP_SCHEMA, lambda i: make_clip(f"s{i}", n_frames=8, size=256, seed=i))):
            samples = [make(i) for i in range(4 * n_shards)]
            folders = {"local": str(work / f"{kind}s"), "s3": f"{bucket}/{kind}s"}
            for folder in folders.values():
                with ShardWriter(folder, f"{kind}s", schema, max_count=4) as writer:
                    for sample in samples:
                        writer.write(sample)
            size = load_manifest(folders["local"]).total_bytes
            for reader_name, make_reader in readers.items():
                reader = make_reader(kind)
                rates: dict[str, list[float]] = {"local": [], "s3": []}
                cpu: dict[str, list[float]] = {"local": [], "s3": []}
                for _ in range(repeats):
                    for where, folder in folders.items():
                        start, start_cpu = time.perf_counter(), time.process_time()
                        count = sum(1 for _ in reader(folder))
                        if count != 4 * n_shards:
                            raise RuntimeError(f"{reader_name} read {count} samples from {folder}, expected {4 * n_shards}")
                        rates[where].append(size / 1e6 / (time.perf_counter() - start))
                        cpu[where].append(1e3 * (time.process_time() - start_cpu) / (size / 1e6))
                local, s3 = statistics.median(rates["local"]), statistics.median(rates["s3"])
                rows.append([kind, reader_name, n_shards, round(size / 1e6, 1), round(local, 1), round(s3, 1),
                             f"{s3 / local:.2f}x", round(statistics.median(cpu["local"]), 2),
                             round(statistics.median(cpu["s3"]), 2)])
    finally:
        server.stop()
        if server_kind != "process":
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
    parser.add_argument("--no-preload", action="store_true",
                        help="start the Dask workers without --preload flows.dask_worker (imports in the first subject)")
    parser.add_argument("--s3-server", choices=["thread", "process"], default="thread",
                        help="moto in a thread of this process (its CPU time counts here) or in its own process")
    parser.add_argument("--repeats", type=int, default=3, help="streaming passes per storage (median reported)")
    args = parser.parse_args()
    os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.synth import synthesize_dataset

    with tempfile.TemporaryDirectory() as temp, prefect_test_harness(server_startup_timeout=180):
        work = Path(temp)
        print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        table(f"Shard streaming, S3 (moto, {args.s3_server}) vs local disk, median of {args.repeats}",
              ["kind", "reader", "shards", "MB", "local MB/s", "S3 MB/s", "S3/local", "local CPU ms/MB", "S3 CPU ms/MB"],
              bench_streaming(work, args.shards, args.s3_server, args.repeats))
        if not (args.skip_dask and args.skip_overhead):
            raw = work / "raw"
            synthesize_dataset("thuman", raw, num_subjects=args.subjects, seed=7, texture_size=128)
        if not args.skip_dask:
            table(f"preprocess on Dask (quick preset, workers {'without' if args.no_preload else 'with'} preload)",
                  ["workers", "subjects", "cold s", "cold subj/min", "cold speed-up", "warm s", "warm subj/min",
                   "warm speed-up"], bench_dask(raw, work, args.subjects, not args.no_preload))
        if not args.skip_overhead:
            table("Prefect flow overhead (quick preset, one thread)", ["subjects", "direct s", "flow s", "overhead s/subject"],
                  bench_overhead(raw, work, args.subjects))
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
