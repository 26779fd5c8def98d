"""Write a small synthetic stand-in for THuman2.1 or 2K2K in the real dataset's on-disk layout.

Subject ``i`` of a run with seed ``s`` is made from :func:`gas_core.synth.humans.sample_subject_spec`
with seed ``s * 100003 + i`` and stored under the id ``f"{i:04d}"`` (THuman) or ``f"{i:05d}"`` (2K2K),
so re-running with a larger ``num_subjects`` adds subjects and keeps the existing ones. Subjects whose
folder already exists are skipped; each subject is written atomically by the dataset's writer.
Ground truth goes to ``<out_dir>/_groundtruth/<id>.json``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from gas_core.synth.humans import make_subject, sample_subject_spec
from pipelines.datasets.common import SubjectRef
from pipelines.datasets.thuman import write_thuman_subject
from pipelines.datasets.twok2k import write_twok2k_subject

__all__ = ["synthesize_dataset", "subject_seed", "subject_id_for", "check_at_least"]

logger = logging.getLogger(__name__)

_SEED_STRIDE = 100003


def subject_seed(seed: int, index: int) -> int:
    """Seed of subject ``index`` in a run seeded with ``seed``."""
    return seed * _SEED_STRIDE + index


def check_at_least(**bounds: tuple[int, int]) -> None:
    """Raise ValueError naming the first ``name=(value, minimum)`` whose value is below its minimum (in the given order)."""
    for name, (value, minimum) in bounds.items():
        if value < minimum:
            raise ValueError(f"{name} must be {'non-negative' if minimum == 0 else f'at least {minimum}'}, got {value}")


def subject_id_for(kind: Literal["thuman", "2k2k"], index: int) -> str:
    """The dataset id of subject ``index``: 4 digits for THuman, 5 for 2K2K."""
    return f"{index:04d}" if kind == "thuman" else f"{index:05d}"


def _subject_folder(kind: Literal["thuman", "2k2k"], out_dir: Path, subject_id: str) -> Path:
    return out_dir / "model" / subject_id if kind == "thuman" else out_dir / subject_id


def synthesize_dataset(
    kind: Literal["thuman", "2k2k"],
    out_dir: Path,
    num_subjects: int,
    seed: int = 0,
    texture_size: int = 1024,
) -> list[SubjectRef]:
    """Make ``num_subjects`` synthetic humans and write them in ``kind``'s layout under ``out_dir``.

    Args:
        kind: ``"thuman"`` (OBJ + MTL + JPEG texture) or ``"2k2k"`` (PLY with vertex colours).
        out_dir: dataset root; created if missing.
        num_subjects: how many subjects (>= 1).
        seed: run seed (>= 0); the same seed gives the same subjects.
        texture_size: texture side in pixels for THuman (ignored by 2K2K, whose colours are per vertex).

    Returns:
        One :class:`SubjectRef` per subject, in id order, including subjects that already existed.

    Raises:
        ValueError: on an unknown ``kind`` or a bad count, seed or texture size.
    """
    if kind not in ("thuman", "2k2k"):
        raise ValueError(f"kind must be 'thuman' or '2k2k', got {kind!r}")
    check_at_least(num_subjects=(num_subjects, 1), seed=(seed, 0), texture_size=(texture_size, 8))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs: list[SubjectRef] = []
    made, seconds = 0, 0.0
    for index in tqdm(range(num_subjects), desc=f"synth {kind}", unit="subject"):
        subject_id = subject_id_for(kind, index)
        folder = _subject_folder(kind, out_dir, subject_id)
        if not folder.exists():
            start = time.perf_counter()
            subject = make_subject(sample_subject_spec(subject_seed(seed, index)), texture_size=texture_size)
            if kind == "thuman":
                write_thuman_subject(out_dir, subject, subject_id)
            else:
                write_twok2k_subject(out_dir, subject, subject_id)
            made += 1
            seconds += time.perf_counter() - start
        else:
            logger.debug("subject %s exists in %s, skipped", subject_id, out_dir)
        refs.append(SubjectRef(kind, subject_id, folder))
    if made:
        logger.info("wrote %d %s subjects to %s in %.1f s (%.2f s each)", made, kind, out_dir, seconds, seconds / made)
    return refs
