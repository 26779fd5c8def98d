"""Scan preprocessing throughput, shard I/O throughput and memory over many subjects.

Run from the repository root (two idle CPU cores: ``--quick`` under a minute, the default about 2.5 minutes;
several times longer when the cores are busy):

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/bench_preprocess.py [--quick]
        [--subjects N] [--preset tiny|paper ...] [--memory-subjects N] [--threads T]

Synthetic THuman2.1 subjects (``pipelines.synth.synthesize_dataset``, 1024 px textures) are written to a
temporary folder and preprocessed with the steps of ``pipelines.preprocess``. Keypoints are the
subjects' ground truth projected into the views (no detector weights here), so "fit" excludes detection.

Table 1, preprocessing per preset (paper: 20 views at 1024x1024; tiny: 8 views at 256x256):
    subj/min is subjects divided by the wall time of the measured loop (scan reading, rendering, fitting,
    staging) plus packing. render = scan views + body normal maps; fit = keypoints + body fit (mean and
    max); stage = encoding PNGs and writing the staged folder; pack = ``pack_staged_subjects`` per
    subject (read staged files, validate, write tar shards); other = the rest of the loop (mostly reading
    the scan). One warm-up subject per preset (GL contexts, body model) is run first and shown as "setup".

Table 2, shard throughput: the first packed sample of each preset is written ``copies`` times under new
keys with ``ShardWriter`` (which validates every member, decoding its PNGs), then read back whole through
``make_subject_pipeline`` (decoded to torch tensors, or to ``SubjectSample`` numpy arrays) and as raw
bytes through ``iter_shard_samples``. MB is 10^6 bytes of shard files; reads come from the page cache.

Table 3, memory: a fresh child process preprocesses and packs tiny-preset subjects one after another and
reports its resident memory (now, and the peak so far) after 1, 2, 4, 8, ... subjects (``--memory-subjects``,
default 24). It should stay flat: each column is flagged when its last value exceeds its value after the second
subject by more than 10% + 50 MiB. (``ScanRenderer`` starts a fresh OpenGL context every ``meshes_per_context``
scans, 50 by default, so memory retained per context shows as a slope up to that count.)

Timings are wall-clock on a shared machine: expect noise of tens of percent between runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("GAS_CACHE_DIR", str(REPO_ROOT / ".cache"))
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO_ROOT / ".cache" / "ultralytics"))

from gas_core.render.gl import configure_headless_gl  # noqa: E402

configure_headless_gl()

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import torch  # noqa: E402

from pipelines.preprocess import (  # noqa: E402
    PreprocessConfig,
    load_preprocess_config,
    pack_staged_subjects,
    plan_subjects,
    preprocess_subject,
)
from pipelines.synth import synthesize_dataset  # noqa: E402
from shards.reader import iter_shard_samples, make_subject_pipeline  # noqa: E402
from shards.writer import ShardWriter  # noqa: E402

MB = 1e6
DATASET = "thuman"


def describe(config: PreprocessConfig) -> str:
    """``"20 x 1024x1024"``: views and image size of a preset."""
    return f"{config.orbit.num_views} x {config.orbit.width}x{config.orbit.height}"


def bench_preprocess(preset: str, raw_root: Path, work: Path, subjects: int) -> tuple[str, Path]:
    """Preprocess ``subjects`` subjects with ``preset``; returns the table row and the shard folder."""
    config = load_preprocess_config(preset=preset)
    out_dir = work / f"shards-{preset}"
    plan = plan_subjects(DATASET, raw_root, out_dir, limit=subjects)
    warm_up_dir = work / f"warm-up-{preset}"
    warm_up_dir.mkdir()
    start = time.perf_counter()
    preprocess_subject(plan.todo[0], config, warm_up_dir)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    reports = [preprocess_subject(ref, config, plan.staging_dir) for ref in plan.todo]
    loop = time.perf_counter() - start
    start = time.perf_counter()
    pack_staged_subjects(plan.staging_dir, out_dir, config)
    pack = time.perf_counter() - start

    count = len(reports)
    render, fit, stage = (np.array([getattr(r, name) for r in reports]) for name in ("render_s", "fit_s", "write_s"))
    other = loop / count - render.mean() - fit.mean() - stage.mean()
    row = (f"{preset:<6} {describe(config):<14} {count:>4} {60 * count / (loop + pack):>9.1f} "
           f"{render.mean():>8.2f} {fit.mean():>7.2f} {fit.max():>7.2f} {stage.mean():>7.2f} {pack / count:>7.2f} "
           f"{other:>7.2f} {setup:>7.1f}")
    return row, out_dir


def shard_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.glob("*.tar"))


def bench_shards(preset: str, packed_dir: Path, work: Path, copies: int) -> list[str]:
    """Write ``copies`` copies of one packed sample, read them back three ways; returns table rows."""
    first_shard = sorted(packed_dir.glob("*.tar"))[0]
    raw = next(iter_shard_samples(first_shard))
    members = {suffix: data for suffix, data in raw.items() if not suffix.startswith("__")}
    folder = work / f"copies-{preset}"
    start = time.perf_counter()
    with ShardWriter(folder, "bench", max_count=64) as writer:
        for index in range(copies):
            writer.write({"__key__": f"{raw['__key__']}-copy{index:04d}", **members})
    timings = [("write  ShardWriter (validates)", time.perf_counter() - start, copies)]

    for label, to_tensors in (("read   pipeline -> tensors", True), ("read   pipeline -> SubjectSample", False)):
        start = time.perf_counter()
        count = sum(1 for _ in make_subject_pipeline(folder, decode_to_tensors=to_tensors))
        timings.append((label, time.perf_counter() - start, count))
    start = time.perf_counter()
    count = sum(1 for shard in sorted(folder.glob("*.tar")) for _ in iter_shard_samples(shard))
    timings.append(("read   iter_shard_samples (raw)", time.perf_counter() - start, count))

    total_mb = shard_bytes(folder) / MB
    return [f"{preset:<6} {label:<34} {count:>7} {total_mb / copies:>9.2f} {count / seconds:>9.1f} "
            f"{total_mb * count / copies / seconds:>8.1f}" for label, seconds, count in timings]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (``VmHWM``; unlike ``ru_maxrss`` it is not inherited
    from the parent of a spawned child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def memory_curve(raw_root: str, work: str, points: list[int], threads: int) -> list[tuple[int, float, float]]:
    """In a fresh process: (subjects done, RSS now MiB, peak RSS MiB) after each count in ``points``."""
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(threads)
    config = PreprocessConfig.tiny()
    out_dir = Path(work) / "shards-memory"
    plan = plan_subjects(DATASET, Path(raw_root), out_dir, limit=points[-1])
    process = psutil.Process()
    curve = []
    for done, ref in enumerate(plan.todo, start=1):
        preprocess_subject(ref, config, plan.staging_dir)
        pack_staged_subjects(plan.staging_dir, out_dir, config)
        if done in points:
            curve.append((done, process.memory_info().rss / 2**20, peak_rss_mb()))
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=None, help="subjects per preset (default 8, 2 with --quick)")
    parser.add_argument("--preset", choices=("tiny", "paper"), action="append",
                        help="preset(s) for tables 1 and 2 (repeatable; default both)")
    parser.add_argument("--quick", action="store_true", help="small counts (under a minute on 2 idle cores)")
    parser.add_argument("--memory-subjects", type=int, default=None,
                        help="subjects of the memory run (default 24, 4 with --quick)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    subjects = args.subjects if args.subjects is not None else (2 if args.quick else 8)
    if subjects < 1:
        raise ValueError(f"--subjects must be >= 1, got {subjects}")
    presets = args.preset or ["tiny", "paper"]
    memory_subjects = args.memory_subjects if args.memory_subjects is not None else (4 if args.quick else 24)
    if memory_subjects < 2:
        raise ValueError(f"--memory-subjects must be >= 2, got {memory_subjects}")
    powers_of_two = {2**k for k in range(memory_subjects.bit_length()) if 2**k < memory_subjects}
    memory_points = sorted(powers_of_two | {memory_subjects})
    copies = {"tiny": 16 if args.quick else 64, "paper": 4 if args.quick else 12}
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    total = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as temp:
        work = Path(temp)
        raw_root = work / "raw"
        synthesize_dataset(DATASET, raw_root, max(subjects, memory_points[-1]), seed=1, texture_size=1024)
        preprocess_rows, shard_rows = [], []
        for preset in presets:
            row, packed_dir = bench_preprocess(preset, raw_root, work, subjects)
            preprocess_rows.append(row)
            shard_rows += bench_shards(preset, packed_dir, work, copies[preset])
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            curve = pool.submit(memory_curve, str(raw_root), temp, memory_points, args.threads).result()

    print(f"\nplatform: {os.environ.get('PYOPENGL_PLATFORM', '?')}, cores: {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} (shared machine: timings are noisy)")
    print("\n1. preprocessing (seconds per subject unless stated)")
    header = (f"{'preset':<6} {'views x px':<14} {'subj':>4} {'subj/min':>9} {'render':>8} {'fit':>7} {'fit max':>7} "
              f"{'stage':>7} {'pack':>7} {'other':>7} {'setup':>7}")
    print(header + "\n" + "-" * len(header) + "\n" + "\n".join(preprocess_rows))

    print("\n2. shard write / read throughput")
    header = f"{'preset':<6} {'operation':<34} {'samples':>7} {'MB/sample':>9} {'samples/s':>9} {'MB/s':>8}"
    print(header + "\n" + "-" * len(header) + "\n" + "\n".join(shard_rows))

    print("\n3. memory of one process over many subjects (tiny preset, child process)")
    header = f"{'subjects':>8} {'RSS now MiB':>11} {'peak RSS MiB':>12}"
    print(header + "\n" + "-" * len(header))
    for done, now, peak in curve:
        print(f"{done:>8} {now:>11.0f} {peak:>12.0f}")
    if len(curve) >= 2:
        for column, name in ((1, "RSS now"), (2, "peak RSS")):
            second, last = curve[1][column], curve[-1][column]
            verdict = "GREW by more than 10% + 50 MiB" if last > 1.10 * second + 50 else "flat: within 10% + 50 MiB"
            print(f"{name} after {curve[1][0]} -> {curve[-1][0]} subjects: {second:.0f} -> {last:.0f} MiB ({verdict})")
    print(f"\nbenchmark process peak RSS {peak_rss_mb():.0f} MiB; torch threads {args.threads}; "
          f"wall time {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
