"""Bodies the NeRF never saw, in groups: children, elders, heavy, tall and short bodies, in poses outside the
pose library (arms overhead, a deep squat, a twisted torso, a side bend), and scans placed small in the frame.

Used by ``bench_nerf_quality.py``; runnable alone to prepare the data:

    GAS_CACHE_DIR=.cache PYOPENGL_PLATFORM=osmesa .venv/bin/python benchmarks/nerf_unseen.py OUT --per-group 3

Seeds. ``pipelines.synth`` makes subject ``i`` of a run seeded ``s`` from seed ``s * 100003 + i``; the
quality benchmark trains on run seed 11 (24 subjects) and holds out run seed 29 (6 subjects). Unseen
subjects use run seed :data:`UNSEEN_RUN_SEED` (4242): seeds ``4242 * 100003 + 1000 * g + i`` for group
``g``, none of which a training or held-out subject uses. Garments and colours come from
:func:`gas_core.synth.humans.sample_edge_subject_spec` with those seeds; the body is drawn from the
group's phenotype region (outside the adult training ranges or at their edge) and posed with this
module's poses, which are not in :data:`gas_core.synth.poses.POSE_LIBRARY`.

The "small in frame" group is not a separate set of scans: it is the first subject of every body group
with each view shrunk about the image centre (cameras and images alike), so that the person covers
about 1-3 % of the image (see :func:`shrink_subject`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from repo_setup import REPO_ROOT  # noqa: F401 - first: the repository on sys.path, GAS_CACHE_DIR's default, headless GL


from gas_core.body.open_model import PhenotypeRegion  # noqa: E402
from gas_core.synth.humans import make_subject, pose_subject, sample_edge_subject_spec  # noqa: E402
from gas_core.synth.poses import mirror_degrees  # noqa: E402
from pipelines.datasets.errors import ScanReadError  # noqa: E402
from pipelines.datasets.thuman import write_thuman_subject  # noqa: E402
from pipelines.preprocess import PreprocessConfig, pack_staged_subjects, plan_subjects, preprocess_subject  # noqa: E402
from pipelines.synth import subject_id_for, subject_seed  # noqa: E402
from pipelines.train_nerf import SubjectViews, zoom_subject  # noqa: E402

UNSEEN_RUN_SEED = 4242
TRAIN_RUN_SEED, HELDOUT_RUN_SEED = 11, 29


def _both(stem: str, left: tuple[float, float, float]) -> dict[str, tuple[float, float, float]]:
    return {f"{stem}.L": left, f"{stem}.R": mirror_degrees(left)}


_SPINE = ("spine05", "spine04", "spine03", "spine02", "spine01")

#: Poses outside the training library: Anny bone name -> Euler degrees.
UNSEEN_POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "arms_overhead": {**_both("upperarm01", (0.0, -125.0, 0.0)), **_both("lowerarm01", (-10.0, 0.0, 0.0))},
    "deep_squat": {**_both("upperleg01", (-85.0, -8.0, 0.0)), **_both("lowerleg01", (115.0, 0.0, 0.0)),
                   **_both("foot", (-35.0, 0.0, 0.0)), "spine03": (25.0, 0.0, 0.0),
                   **_both("upperarm01", (-60.0, 20.0, 0.0))},
    "twist": {**{bone: (0.0, 0.0, 9.0) for bone in _SPINE}, "head": (0.0, 0.0, 15.0),
              **_both("upperarm01", (0.0, -40.0, 0.0))},
    "side_bend": {**{bone: (0.0, 7.0, 0.0) for bone in _SPINE}, "upperarm01.L": (0.0, -120.0, 0.0),
                  "upperarm01.R": mirror_degrees((0.0, 35.0, 0.0))},
}


@dataclass(frozen=True)
class UnseenGroup:
    """A body group: its phenotype region (ranges replacing the adult training ranges)."""

    name: str
    region: PhenotypeRegion


UNSEEN_GROUPS: tuple[UnseenGroup, ...] = (
    UnseenGroup("child", PhenotypeRegion("child", (("age", (0.15, 0.4)),))),
    UnseenGroup("elder", PhenotypeRegion("elder", (("age", (0.99, 1.0)), ("height", (0.1, 0.3))))),
    UnseenGroup("heavy", PhenotypeRegion("heavy", (("weight", (0.95, 1.0)), ("muscle", (0.0, 0.3))))),
    UnseenGroup("tall", PhenotypeRegion("tall", (("height", (0.95, 1.0)), ("weight", (0.0, 0.2))))),
    UnseenGroup("short", PhenotypeRegion("short", (("height", (0.0, 0.05)),))),
)
SMALL_GROUP = "small in frame"


#: Run seed of the group used to choose the body prior's render settings (margin, softness); never reported.
TUNING_RUN_SEED = 777


def unseen_seed(group_index: int, index: int, run_seed: int = UNSEEN_RUN_SEED) -> int:
    """Seed of subject ``index`` of group ``group_index`` (disjoint from the training and held-out seeds)."""
    return subject_seed(run_seed, 1000 * group_index + index)


def make_unseen_shards(out_dir: Path, group_index: int, *, subjects: int, config: PreprocessConfig | None = None,
                       texture_size: int = 256, run_seed: int = UNSEEN_RUN_SEED) -> Path:
    """Synthesise ``subjects`` bodies of group ``group_index`` (poses cycling through :data:`UNSEEN_POSES`)
    and preprocess them into ``out_dir/shards``. Re-running skips what exists; returns the shard folder."""
    config = config or PreprocessConfig.tiny()
    group = UNSEEN_GROUPS[group_index]
    raw, shards = Path(out_dir) / "raw", Path(out_dir) / "shards"
    poses = list(UNSEEN_POSES)
    for index in range(subjects):
        subject_id = subject_id_for("thuman", index)
        if (raw / subject_id).exists() or (raw / "model" / subject_id).exists():
            continue
        spec = sample_edge_subject_spec(unseen_seed(group_index, index, run_seed), group.region)
        subject = make_subject(spec, texture_size=texture_size)
        posed = pose_subject(spec, [UNSEEN_POSES[poses[(index + group_index) % len(poses)]]])
        subject = dataclasses.replace(subject, vertices=posed.vertices[0], body_vertices=posed.body_vertices[0],
                                      joints24=posed.joints24[0], coco17=posed.coco17[0])
        write_thuman_subject(raw, subject, subject_id)
    plan = plan_subjects("thuman", raw, shards)
    for ref in plan.todo:
        try:
            report = preprocess_subject(ref, config, plan.staging_dir)
        except ScanReadError as error:  # e.g. arms overhead make a tall body over the reader's 2.6 m
            logging.warning("%s/%s left out: %s", group.name, ref.subject_id, error)
            continue
        logging.info("%s/%s: %s", group.name, ref.subject_id, report.status)
    pack_staged_subjects(plan.staging_dir, shards, config)
    return shards


def shrink_subject(subject: SubjectViews, factor: float) -> SubjectViews:
    """``subject`` with every view shrunk by ``factor`` (0, 1] about the image centre, black around it.

    The cameras follow exactly (:func:`pipelines.train_nerf.zoom_subject`, centred): a pixel ``u`` moves to
    ``offset + factor' * u`` with the shrunk size rounded to whole pixels (``factor'`` = shrunk size / size)
    and ``offset`` the whole-pixel margin.
    """
    return zoom_subject(subject, factor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-group", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    for index, group in enumerate(UNSEEN_GROUPS):
        make_unseen_shards(args.out / group.name, index, subjects=args.per_group)
    print(f"{args.out}: ready in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
