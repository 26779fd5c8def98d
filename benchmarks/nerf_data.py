"""Synthetic subject shards for the NeRF benchmarks (``pipelines.synth`` subjects through ``pipelines.preprocess``),
and the posed bodies' silhouettes the NeRF is judged against (:func:`body_silhouettes`).

Imported by ``bench_nerf.py``, ``bench_nerf_quality.py`` and ``bench_nerf_holes.py``; runnable alone to
prepare the data:

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/nerf_data.py OUT --subjects 24 --seed 11
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from repo_setup import REPO_ROOT  # noqa: F401 - first: the repository on sys.path, GAS_CACHE_DIR's default, headless GL

import torch  # noqa: E402

from gas_core.body.smpl import BodyModel  # noqa: E402
from gas_core.nerf import GeneralizableHumanNeRF  # noqa: E402
from gas_core.render.normals import NormalMapRenderer  # noqa: E402
from nerf_unseen import shrink_subject  # noqa: E402
from pipelines.config import override_field  # noqa: E402
from pipelines.preprocess import PreprocessConfig, pack_staged_subjects, plan_subjects, preprocess_subject  # noqa: E402
from pipelines.synth import synthesize_dataset  # noqa: E402
from pipelines.train_nerf import PairBatch, pair_batch, subject_views  # noqa: E402
from shards.reader import make_subject_pipeline  # noqa: E402


def make_synthetic_shards(out_dir: Path, *, subjects: int, seed: int, config: PreprocessConfig | None = None,
                          texture_size: int = 256) -> Path:
    """Synthesise ``subjects`` THuman-layout subjects with ``seed`` and preprocess them into ``out_dir/shards``.

    Re-running skips what exists. Returns the shard folder.
    """
    config = config or PreprocessConfig.tiny()
    raw = Path(out_dir) / "raw"
    shards = Path(out_dir) / "shards"
    synthesize_dataset("thuman", raw, num_subjects=subjects, seed=seed, texture_size=texture_size)
    plan = plan_subjects("thuman", raw, shards)
    for ref in plan.todo:
        report = preprocess_subject(ref, config, plan.staging_dir)
        logging.info("%s: %s (fit %.1f s)", ref.subject_id, report.status, report.fit_s)
    pack_staged_subjects(plan.staging_dir, shards, config)
    return shards


def body_silhouettes(batch, renderer: NormalMapRenderer) -> torch.Tensor:
    """(B, H, W) bool: the posed target bodies of a NeRF training ``batch`` rasterised in their target cameras."""
    masks = []
    for b, camera in enumerate(batch.target_camera.to_cameras()):
        normals = renderer.render_views(batch.target_body.vertices[b].numpy(), batch.target_body.faces.numpy(), [camera])
        masks.append(torch.from_numpy(normals[0].max(axis=-1) > 0))
    return torch.stack(masks)


def reference_pair_batches(shards: Path, image_size: int, body_model: BodyModel, *, shrink: float | None = None,
                           max_subjects: int | None = None) -> Iterator[PairBatch]:
    """Per subject of ``shards``, one batch of its view 0 as the reference for each of views 1..N-1 (N - 1 pairs).

    ``shrink``: shrink every view about the image centre by this factor first (small-in-frame subjects);
    ``max_subjects``: the first subjects only.
    """
    subjects = 0
    for sample in make_subject_pipeline(shards, split_by_node=False, split_by_worker=False):
        subject = subject_views(sample, image_size)
        if shrink is not None:
            subject = shrink_subject(subject, shrink)
        views = subject.views.shape[0]
        yield pair_batch([subject] * (views - 1), [(0, j) for j in range(1, views)], body_model)
        subjects += 1
        if max_subjects is not None and subjects >= max_subjects:
            return


def with_settings(model: GeneralizableHumanNeRF, assignments: list[str]) -> GeneralizableHumanNeRF:
    """``model``'s weights under its settings with ``KEY=VALUE`` ``assignments`` replaced (render-time fields)."""
    settings = model.settings
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"a render setting must look like KEY=VALUE, got {item!r}")
        settings = override_field(settings, key.strip(), value)
    copy = GeneralizableHumanNeRF.from_settings(settings)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-count", type=int, default=8, help="samples per shard")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from dataclasses import replace

    config = PreprocessConfig.tiny()
    config = replace(config, shards=replace(config.shards, max_count=args.max_count))
    start = time.perf_counter()
    shards = make_synthetic_shards(args.out, subjects=args.subjects, seed=args.seed, config=config)
    print(f"{shards}: ready in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
