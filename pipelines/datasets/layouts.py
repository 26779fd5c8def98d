"""The raw scan datasets the pipeline reads, by the names used in flows, deployments and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipelines.datasets.common import GROUNDTRUTH_DIRNAME, RawScan, SubjectRef, read_groundtruth as _read_record
from pipelines.datasets.thuman import discover_thuman, read_thuman_subject
from pipelines.datasets.twok2k import discover_twok2k, read_twok2k_subject

__all__ = ["DatasetLayout", "SCAN_LAYOUTS", "dataset_layout", "read_groundtruth"]


@dataclass(frozen=True)
class DatasetLayout:
    """How to find and read the subjects of one raw dataset."""

    name: str
    discover: Callable[[Path], list[SubjectRef]]
    read: Callable[[SubjectRef], RawScan]


#: The 3D-scan datasets of the paper (section 4.1.1).
SCAN_LAYOUTS: tuple[DatasetLayout, ...] = (
    DatasetLayout("thuman", discover_thuman, read_thuman_subject),
    DatasetLayout("2k2k", discover_twok2k, read_twok2k_subject),
)


def dataset_layout(name: str) -> DatasetLayout:
    """The layout called ``name``; ValueError listing the known names otherwise."""
    for layout in SCAN_LAYOUTS:
        if layout.name == name:
            return layout
    raise ValueError(f"dataset must be one of {[layout.name for layout in SCAN_LAYOUTS]}, got {name!r}")


def read_groundtruth(ref: SubjectRef) -> dict[str, Any] | None:
    """Ground truth kept aside for a synthetic subject (``_groundtruth/<id>.json`` at the dataset root), or None.

    Real datasets have none. The dataset root is the nearest ancestor of the subject folder holding
    a ``_groundtruth`` folder (THuman2.1 subjects live in ``<root>/model/<id>``, 2K2K in ``<root>/<id>``).
    """
    for root in Path(ref.path).parents[:2]:
        if (root / GROUNDTRUTH_DIRNAME / f"{ref.subject_id}.json").is_file():
            return _read_record(root, ref.subject_id)
    return None
