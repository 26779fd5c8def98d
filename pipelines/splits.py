"""Test splits of the paper's evaluation (section 4.1.1), written to and read from split files.

========================  ==========================================================================
dataset                   test split (paper)                   → default rule here (``paper()``)
========================  ==========================================================================
THuman2.1 (``thuman``)    100 of 2,445 subjects held out at     the **last 100 ids in numeric order**
                          random (ids not published)            (``2345``–``2444`` of the release)
2K2K (``2k2k``)           its 50 test subjects (the paper's     the **last 50 ids in numeric order**;
                          2,000 / 50 partition; no list here)   use ``listed`` + ``list_file`` with
                                                                the release's own test list if you
                                                                have it
TikTok (``tiktok``)       sequences 335–340                     ids ``00335``–``00340`` (inclusive)
MVHumanNet                48 of 944 captures held out (ids not  the **last 48 ids in numeric order**
(``mvhumannet``)          published)
========================  ==========================================================================

"Last in numeric order" is used where the paper does not list its ids because it is reproducible
from the folder listing alone, with no random-number implementation involved; ``selection=seeded``
(a seeded sample without replacement, ``numpy.random.default_rng(seed)``) is the alternative closer
to "randomly sampled". Every rule is configurable (:class:`HoldOut`), per dataset, through
:class:`SplitsConfig` (YAML file and ``key.sub=value`` overrides via :func:`pipelines.config.load_config`).

Each split file also records the evaluation protocol it is meant for (Tables 1 and 2):

- novel views (THuman2.1, 2K2K): four orthogonal input views per subject — with the 20-view orbit of
  :func:`gas_core.cameras.orbit_cameras` (view 0 faces the subject) views 0, 5, 10, 15, i.e. front,
  left side, back, right side — and all 20 views scored; backgrounds removed with the ground-truth
  masks for THuman2.1 (``mask_background``), not for 2K2K;
- novel poses (TikTok, MVHumanNet): one reference frame per sequence drawn at random (seeded per
  sequence id) among those followed by ``frames_after_reference`` = 100 frames, which are generated
  and scored. The frames are chosen when frame counts are given (:func:`choose_reference_frames`).

File formats (:func:`write_split` / :func:`read_split`, chosen by suffix): ``.json`` (one object:
format, dataset, task, ids, rule, protocol, reference frames) or ``.txt`` (one id per line; ``#``
header lines carry the same fields as JSON values; other ``#`` lines are comments). Split files
carry no timestamp, so the same rule and listing always give the same bytes (and sha256).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from gas_core.fileio import atomic_write_bytes
from gas_core.presets import PaperDefaults
from pipelines.datasets.common import ScanReadError, numeric_first
from pipelines.datasets.layouts import dataset_layout
from shards.schema import make_key

__all__ = [
    "SPLIT_DATASETS",
    "SPLIT_FORMAT",
    "HoldOut",
    "NovelViewProtocol",
    "NovelPoseProtocol",
    "ScanSplitConfig",
    "VideoSplitConfig",
    "SplitsConfig",
    "TestSplit",
    "orthogonal_views",
    "available_ids",
    "choose_reference_frames",
    "make_split",
    "write_split",
    "read_split",
    "write_test_splits",
]

#: Datasets with a test split, by the names used in shards, flows and the CLI.
SPLIT_DATASETS = ("thuman", "2k2k", "tiktok", "mvhumannet")
#: ``format`` of a JSON split file (version 1); first header line of a text split file.
SPLIT_FORMAT = "gas-split"

Selection = Literal["last", "first", "seeded", "range", "listed"]
Task = Literal["novel_view", "novel_pose"]
_SELECTIONS = ("last", "first", "seeded", "range", "listed")


@dataclass(frozen=True)
class HoldOut:
    """Which ids of a dataset form its test split.

    Attributes:
        selection: ``"last"`` / ``"first"``: the last / first ``count`` ids in numeric order (numeric
            ids by value, then others by name); ``"seeded"``: ``count`` ids sampled without
            replacement with ``numpy.random.default_rng(seed)`` from the ids in that order;
            ``"range"``: numeric ids ``first_id``..``last_id`` inclusive (all must be present when the
            dataset's ids are known; written with ``id_width`` zero-padded digits when they are not);
            ``"listed"``: ``ids`` plus the ids in ``list_file`` (one per line, ``#`` comments).
        count, seed, first_id, last_id, id_width, ids, list_file: the parameters of those rules.
    """

    selection: Selection = "last"
    count: int = 0
    seed: int = 0
    first_id: int = 0
    last_id: int = 0
    id_width: int = 0
    ids: tuple[str, ...] = ()
    list_file: str | None = None

    def __post_init__(self) -> None:
        if self.selection not in _SELECTIONS:
            raise ValueError(f"selection must be one of {_SELECTIONS}, got {self.selection!r}")
        if self.selection in ("last", "first", "seeded") and self.count < 1:
            raise ValueError(f"count must be >= 1 for selection {self.selection!r}, got {self.count}")
        if self.selection == "range" and not 0 <= self.first_id <= self.last_id:
            raise ValueError(f"first_id..last_id must be a non-empty range of ids >= 0, got {self.first_id}..{self.last_id}")
        if self.id_width < 0:
            raise ValueError(f"id_width must be >= 0, got {self.id_width}")
        if self.selection == "listed" and not self.ids and self.list_file is None:
            raise ValueError("selection 'listed' needs ids or a list_file")

    @property
    def needs_listing(self) -> bool:
        """Whether the dataset's ids must be known to apply the rule."""
        return self.selection in ("last", "first", "seeded")

    def select(self, available: Sequence[str] | None = None) -> tuple[str, ...]:
        """The test ids, in numeric order, chosen from ``available`` (the dataset's ids, any order).

        Raises:
            ValueError: ``available`` missing for a rule that needs it, too few ids, ids of a range
                or list missing from ``available``, or duplicate ids.
        """
        pool = None if available is None else sorted(set(available), key=numeric_first)
        if pool is not None and len(pool) != len(available):
            raise ValueError("available ids contain duplicates")
        if self.needs_listing:
            if pool is None:
                raise ValueError(f"selection {self.selection!r} needs the dataset's ids (pass available or a root)")
            if self.count > len(pool):
                raise ValueError(f"count={self.count} test ids requested but the dataset has only {len(pool)}")
            if self.selection == "last":
                return tuple(pool[-self.count:])
            if self.selection == "first":
                return tuple(pool[:self.count])
            chosen = np.random.default_rng(self.seed).choice(len(pool), size=self.count, replace=False)
            return tuple(sorted((pool[int(i)] for i in chosen), key=numeric_first))
        if self.selection == "range":
            numbers = range(self.first_id, self.last_id + 1)
            if pool is None:
                return tuple(f"{n:0{self.id_width}d}" for n in numbers)
            by_number = {int(name): name for name in pool if name.isdigit()}
            missing = [n for n in numbers if n not in by_number]
            if missing:
                raise ValueError(f"ids {missing} of the range {self.first_id}..{self.last_id} are not in the dataset")
            return tuple(by_number[n] for n in numbers)
        listed = list(self.ids) + (_read_id_lines(Path(self.list_file)) if self.list_file is not None else [])
        if len(set(listed)) != len(listed):
            raise ValueError("listed ids contain duplicates")
        if pool is not None:
            absent = sorted(set(listed) - set(pool), key=numeric_first)
            if absent:
                raise ValueError(f"listed ids not in the dataset: {absent[:10]}")
        return tuple(sorted(listed, key=numeric_first))


def _read_id_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"list_file not found: {path}")
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def orthogonal_views(num_views: int) -> tuple[int, ...]:
    """Indices of the front, left, back and right views of a uniform ``num_views`` orbit (a multiple of 4)."""
    if num_views < 4 or num_views % 4:
        raise ValueError(f"num_views must be a positive multiple of 4, got {num_views}")
    return tuple(i * num_views // 4 for i in range(4))


@dataclass(frozen=True)
class NovelViewProtocol:
    """Table 1's protocol: ``input_views`` of a ``num_views`` orbit each serve once as the single input
    image, all ``num_views`` views are scored; ``mask_background``: ground-truth masks remove the
    background (composited onto grey level ``background``) before scoring."""

    num_views: int = 20
    input_views: tuple[int, ...] = (0, 5, 10, 15)
    mask_background: bool = False
    background: float = 1.0

    def __post_init__(self) -> None:
        if self.num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {self.num_views}")
        if not self.input_views or len(set(self.input_views)) != len(self.input_views) or \
                not all(0 <= v < self.num_views for v in self.input_views):
            raise ValueError(f"input_views must be distinct view indices below num_views={self.num_views}, "
                             f"got {self.input_views}")
        if not 0.0 <= self.background <= 1.0:
            raise ValueError(f"background must lie in [0, 1], got {self.background}")


@dataclass(frozen=True)
class NovelPoseProtocol:
    """Table 2's protocol: per sequence a reference frame drawn at random (``seed``, mixed with the
    sequence id) among those followed by ``frames_after_reference`` frames, which are scored."""

    frames_after_reference: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames_after_reference < 1:
            raise ValueError(f"frames_after_reference must be >= 1, got {self.frames_after_reference}")


@dataclass(frozen=True)
class ScanSplitConfig:
    """Test split of a 3D-scan dataset: which subjects, and the novel-view protocol."""

    holdout: HoldOut
    protocol: NovelViewProtocol = NovelViewProtocol()


@dataclass(frozen=True)
class VideoSplitConfig:
    """Test split of a video dataset: which sequences, and the novel-pose protocol."""

    holdout: HoldOut
    protocol: NovelPoseProtocol = NovelPoseProtocol()


@dataclass(frozen=True)
class SplitsConfig(PaperDefaults):
    """The test splits of all four datasets; presets :meth:`paper` and :meth:`tiny`.

    Load with ``pipelines.config.load_config(SplitsConfig, "splits.yaml", preset="paper",
    overrides=["thuman.holdout.selection=seeded", "thuman.holdout.seed=3"])``.

    Preset ``paper()`` (the defaults): the paper's splits (see the module docstring for the ids chosen where
    it lists none).
    """

    thuman: ScanSplitConfig = ScanSplitConfig(HoldOut("last", count=100), NovelViewProtocol(mask_background=True))
    twok2k: ScanSplitConfig = ScanSplitConfig(HoldOut("last", count=50), NovelViewProtocol(mask_background=False))
    tiktok: VideoSplitConfig = VideoSplitConfig(HoldOut("range", first_id=335, last_id=340, id_width=5))
    mvhumannet: VideoSplitConfig = VideoSplitConfig(HoldOut("last", count=48))

    @classmethod
    def tiny(cls) -> "SplitsConfig":
        """One subject or sequence per dataset, the 8-view orbit of the tiny preprocessing preset, 8 frames."""
        view = NovelViewProtocol(num_views=8, input_views=orthogonal_views(8))
        pose = NovelPoseProtocol(frames_after_reference=8)
        return cls(
            thuman=ScanSplitConfig(HoldOut("last", count=1), NovelViewProtocol(8, orthogonal_views(8), mask_background=True)),
            twok2k=ScanSplitConfig(HoldOut("last", count=1), view),
            tiktok=VideoSplitConfig(HoldOut("range", first_id=335, last_id=335, id_width=5), pose),
            mvhumannet=VideoSplitConfig(HoldOut("last", count=1), pose),
        )

    def for_dataset(self, dataset: str) -> ScanSplitConfig | VideoSplitConfig:
        """The split config of ``dataset`` (one of :data:`SPLIT_DATASETS`)."""
        if dataset not in SPLIT_DATASETS:
            raise ValueError(f"dataset must be one of {SPLIT_DATASETS}, got {dataset!r}")
        return getattr(self, "twok2k" if dataset == "2k2k" else dataset)


@dataclass(frozen=True)
class TestSplit:
    """One dataset's test split as written in a split file.

    Attributes:
        dataset: one of :data:`SPLIT_DATASETS`.
        task: ``"novel_view"`` (scan datasets) or ``"novel_pose"`` (video datasets).
        ids: test subject / sequence ids in numeric order.
        holdout: the rule that chose them (a JSON-style mapping: tuples as lists).
        protocol: the evaluation protocol's fields (a JSON-style mapping).
        available_count: how many ids the rule chose from (None when it did not need the listing).
        reference_frames: novel poses only: sequence id -> 0-based reference frame index (empty until
            frame counts are known).
    """

    __test__ = False  # not a pytest test class despite the name

    dataset: str
    task: Task
    ids: tuple[str, ...]
    holdout: Mapping[str, Any] = field(default_factory=dict)
    protocol: Mapping[str, Any] = field(default_factory=dict)
    available_count: int | None = None
    reference_frames: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dataset not in SPLIT_DATASETS:
            raise ValueError(f"dataset must be one of {SPLIT_DATASETS}, got {self.dataset!r}")
        if self.task not in ("novel_view", "novel_pose"):
            raise ValueError(f"task must be 'novel_view' or 'novel_pose', got {self.task!r}")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"ids of the {self.dataset} split contain duplicates")
        unknown = sorted(set(self.reference_frames) - set(self.ids))
        if unknown:
            raise ValueError(f"reference_frames name ids outside the split: {unknown[:5]}")

    def sample_keys(self) -> tuple[str, ...]:
        """Shard sample keys of the split's subjects (``shards.schema.make_key(dataset, id)``)."""
        return tuple(make_key(self.dataset, subject_id) for subject_id in self.ids)

    def as_dict(self) -> dict[str, Any]:
        return {"format": SPLIT_FORMAT, "version": 1, "dataset": self.dataset, "task": self.task,
                "count": len(self.ids), "ids": list(self.ids), "holdout": _plain(self.holdout),
                "protocol": _plain(self.protocol), "available_count": self.available_count,
                "reference_frames": {k: int(v) for k, v in self.reference_frames.items()}}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def available_ids(dataset: str, root: Path) -> list[str]:
    """The ids present in a raw dataset folder, in numeric order.

    THuman2.1 and 2K2K through their readers (``pipelines.datasets``: ``<root>/model/<id>/<id>.obj``,
    ``<root>/<id>/<id>.ply``); TikTok and MVHumanNet as the names of the folders directly under
    ``root`` (``TikTok_dataset/00335/``, ``MVHumanNet/<id>/``), hidden and ``_`` folders skipped.

    Raises:
        ValueError: unknown dataset, or a root that does not exist or holds no subject.
    """
    if dataset not in SPLIT_DATASETS:
        raise ValueError(f"dataset must be one of {SPLIT_DATASETS}, got {dataset!r}")
    root = Path(root)
    if dataset in ("thuman", "2k2k"):
        try:
            return [ref.subject_id for ref in dataset_layout(dataset).discover(root)]
        except ScanReadError as error:
            raise ValueError(str(error)) from error
    if not root.is_dir():
        raise ValueError(f"{root}: dataset root not found")
    names = sorted((p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))), key=numeric_first)
    if not names:
        raise ValueError(f"{root}: no sequence folders found")
    return names


def choose_reference_frames(frame_counts: Mapping[str, int], protocol: NovelPoseProtocol) -> dict[str, int]:
    """Per sequence, a reference frame index in ``[0, count - frames_after_reference - 1]``, uniformly at
    random with ``numpy.random.default_rng([protocol.seed, crc32(id)])`` (so each sequence's choice
    depends only on its own id and the seed).

    Raises:
        ValueError: naming a sequence shorter than ``frames_after_reference + 1`` frames.
    """
    chosen = {}
    for sequence, count in frame_counts.items():
        last_start = int(count) - protocol.frames_after_reference - 1
        if last_start < 0:
            raise ValueError(f"sequence {sequence!r} has {count} frames; the protocol needs a reference frame and "
                             f"{protocol.frames_after_reference} after it (lower frames_after_reference)")
        rng = np.random.default_rng([protocol.seed, zlib.crc32(sequence.encode())])
        chosen[sequence] = int(rng.integers(0, last_start + 1))
    return chosen


def make_split(dataset: str, config: SplitsConfig, available: Sequence[str] | None = None, *,
               frame_counts: Mapping[str, int] | None = None) -> TestSplit:
    """Apply ``config``'s rule for ``dataset`` to its ``available`` ids (needed by last/first/seeded).

    ``frame_counts`` (novel-pose datasets): frames per test sequence; when given, the reference
    frames are chosen (:func:`choose_reference_frames`) for every test sequence (all must be listed).
    """
    split_config = config.for_dataset(dataset)
    ids = split_config.holdout.select(available)
    reference_frames: dict[str, int] = {}
    if isinstance(split_config, VideoSplitConfig):
        task: Task = "novel_pose"
        if frame_counts is not None:
            missing = [i for i in ids if i not in frame_counts]
            if missing:
                raise ValueError(f"frame_counts lacks test sequences {missing}")
            reference_frames = choose_reference_frames({i: frame_counts[i] for i in ids}, split_config.protocol)
    else:
        task = "novel_view"
        if frame_counts is not None:
            raise ValueError(f"frame_counts applies to the novel-pose datasets, not {dataset!r}")
    return TestSplit(dataset, task, ids, _plain(asdict(split_config.holdout)), _plain(asdict(split_config.protocol)),
                     None if available is None or not split_config.holdout.needs_listing else len(set(available)),
                     reference_frames)


_HEADER_FIELDS = ("dataset", "task", "holdout", "protocol", "available_count", "reference_frames")


def write_split(split: TestSplit, path: Path) -> Path:
    """Write ``split`` atomically as ``.json`` or ``.txt`` (by ``path``'s suffix); returns ``path``."""
    path = Path(path)
    record = split.as_dict()
    if path.suffix == ".json":
        data = json.dumps(record, indent=2) + "\n"
    elif path.suffix == ".txt":
        header = [f"# {SPLIT_FORMAT} v1"] + [f"# {name}: {json.dumps(record[name])}" for name in _HEADER_FIELDS]
        data = "\n".join(header + list(split.ids)) + "\n"
    else:
        raise ValueError(f"path must end in .json or .txt, got {path.name!r}")
    atomic_write_bytes(path, data.encode())
    return path


def read_split(path: Path, *, dataset: str | None = None) -> TestSplit:
    """Read a split file written by :func:`write_split`, or a plain list of ids (one per line).

    ``dataset`` names the dataset of a plain ``.txt`` list without header (and must match the file's
    own when it has one). A plain list is taken as the dataset's default task.

    Raises:
        ValueError: missing file, unknown format or version, or a dataset mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"split file not found: {path}")
    if path.suffix == ".json":
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or record.get("format") != SPLIT_FORMAT:
            raise ValueError(f"{path}: not a {SPLIT_FORMAT} JSON file")
        if record.get("version") != 1:
            raise ValueError(f"{path}: split file version {record.get('version')!r} is not known (known: 1)")
    else:
        record = {}
        ids = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                name, sep, value = line[1:].strip().partition(":")
                if sep and name.strip() in _HEADER_FIELDS:
                    record[name.strip()] = json.loads(value)
                continue
            ids.append(line)
        record["ids"] = ids
    name = record.get("dataset", dataset)
    if name is None:
        raise ValueError(f"{path}: the file names no dataset; pass dataset=")
    if dataset is not None and name != dataset:
        raise ValueError(f"{path}: split of dataset {name!r}, expected {dataset!r}")
    task = record.get("task") or ("novel_view" if name in ("thuman", "2k2k") else "novel_pose")
    return TestSplit(name, task, tuple(str(i) for i in record["ids"]), record.get("holdout") or {},
                     record.get("protocol") or {}, record.get("available_count"),
                     {str(k): int(v) for k, v in (record.get("reference_frames") or {}).items()})


def write_test_splits(config: SplitsConfig, out_dir: Path, roots: Mapping[str, Path] | None = None, *,
                      frame_counts: Mapping[str, Mapping[str, int]] | None = None,
                      datasets: Sequence[str] = SPLIT_DATASETS) -> dict[str, Path]:
    """Write ``<out_dir>/<dataset>_test.json`` for each of ``datasets``.

    ``roots``: raw dataset folders, needed for the rules that choose from the listing (THuman2.1,
    2K2K and MVHumanNet by default); a range or list rule without a root is written from the config
    alone. ``frame_counts``: per dataset, frames per sequence (novel-pose datasets).

    Returns:
        dataset -> path written.

    Raises:
        ValueError: a dataset whose rule needs its listing and has no root (named), or any rule error.
    """
    roots = dict(roots or {})
    frame_counts = dict(frame_counts or {})
    written = {}
    for dataset in datasets:
        split_config = config.for_dataset(dataset)
        root = roots.get(dataset)
        if root is None and split_config.holdout.needs_listing:
            raise ValueError(f"{dataset}: selection {split_config.holdout.selection!r} needs the raw dataset folder "
                             f"(roots[{dataset!r}])")
        available = available_ids(dataset, Path(root)) if root is not None else None
        split = make_split(dataset, config, available, frame_counts=frame_counts.get(dataset))
        written[dataset] = write_split(split, Path(out_dir) / f"{dataset}_test.json")
    return written
