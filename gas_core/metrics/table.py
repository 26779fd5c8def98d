"""Results tables like the paper's: one row per method or checkpoint, one column per metric.

A :class:`ResultsTable` is written by :func:`write_results_table` as three files side by side, each
atomically (temporary name, then rename), the record last:

- ``<stem>.md``: a markdown table (values rounded as the paper prints them: PSNR 2 decimals, SSIM and
  LPIPS 3, FVD 1; arrows give the better direction; the best value per column in bold);
- ``<stem>.csv``: the same numbers at full precision, plus each row's checkpoint;
- ``<stem>.json``: the record that makes every number traceable — dataset, task, the split file
  (path, sha256, number of ids), the shared settings, and per row the checkpoint (path, size,
  sha256), the row's own settings (e.g. ``{"output": "nerf"}`` for Table 4's "before diffusion"),
  and the values; plus the sha256 of the markdown and CSV files written with it.

Columns may carry a ``group`` (a dataset or a task) to build the paper's wide layouts, e.g. Table 1's
``PSNR/THuman`` and ``PSNR/2K2K``, and a ``region``: which pixels the metric scored when a table
reports one metric under two protocols (``PSNR@paper`` with the heading "PSNR ↑ (paper protocol)"
next to ``PSNR@box``, "PSNR ↑ (person box)"); the table's ``legend`` explains each region under the
markdown table and in the record. A value is keyed by :attr:`MetricColumn.key`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gas_core.fileio import atomic_write_bytes

__all__ = [
    "MetricColumn",
    "PSNR",
    "SSIM",
    "LPIPS",
    "FVD",
    "PAPER_METRICS",
    "grouped_columns",
    "CheckpointRef",
    "describe_checkpoint",
    "SplitRef",
    "describe_split",
    "ResultRow",
    "ResultsTable",
    "TableFiles",
    "write_results_table",
    "RECORD_FORMAT",
]

#: ``format`` field of the JSON record, with ``version`` 1.
RECORD_FORMAT = "gas-results"


@dataclass(frozen=True)
class MetricColumn:
    """One metric column.

    Attributes:
        name: the metric as printed (``"PSNR"``).
        higher_is_better: direction of improvement (arrow in the header, which value is bold).
        decimals: digits after the point in the markdown table.
        group: optional sub-heading (dataset or task, e.g. ``"THuman"``, ``"NVS"``).
        region: optional id of the pixels scored (``"paper"``, ``"box"``; letters, digits, ``_``, ``-``).
        region_label: how the heading names the region (default: ``region``), e.g. ``"person box"``.
    """

    name: str
    higher_is_better: bool
    decimals: int
    group: str = ""
    region: str = ""
    region_label: str = ""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or "@" in self.name:
            raise ValueError(f"name must be non-empty and without '/' or '@', got {self.name!r}")
        if self.decimals < 0:
            raise ValueError(f"decimals must be >= 0, got {self.decimals}")
        if self.region and not self.region.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"region must hold only letters, digits, '_' and '-', got {self.region!r}")
        if self.region_label and not self.region:
            raise ValueError(f"region_label {self.region_label!r} needs a region")

    @property
    def key(self) -> str:
        """``name``, ``name/group``, ``name@region`` or ``name/group@region``: the key of this column's
        values in :attr:`ResultRow.values`."""
        key = f"{self.name}/{self.group}" if self.group else self.name
        return f"{key}@{self.region}" if self.region else key

    @property
    def heading(self) -> str:
        arrow = "↑" if self.higher_is_better else "↓"
        heading = f"{self.name} {arrow} {self.group}".rstrip()
        return f"{heading} ({self.region_label or self.region})" if self.region else heading


PSNR = MetricColumn("PSNR", higher_is_better=True, decimals=2)
SSIM = MetricColumn("SSIM", higher_is_better=True, decimals=3)
LPIPS = MetricColumn("LPIPS", higher_is_better=False, decimals=3)
FVD = MetricColumn("FVD", higher_is_better=False, decimals=1)
#: The four metrics of the paper's tables, in its order.
PAPER_METRICS = (PSNR, SSIM, LPIPS, FVD)


def grouped_columns(groups: tuple[str, ...], metrics: tuple[MetricColumn, ...] = PAPER_METRICS) -> tuple[MetricColumn, ...]:
    """Columns metric by metric, each split by group, as Tables 1, 3 and 4 lay them out
    (``grouped_columns(("THuman", "2K2K"))`` -> PSNR/THuman, PSNR/2K2K, SSIM/THuman, …); regions are kept."""
    if not groups:
        raise ValueError("groups must name at least one group")
    return tuple(dataclasses.replace(m, group=group) for m in metrics for group in groups)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointRef:
    """Which weights produced a row: ``path``, total ``size_bytes`` and ``sha256`` (None when not hashed).

    For a checkpoint folder (``save_pretrained`` layout) the hash is over the sorted relative paths and
    the sha256 of every file in it.
    """

    path: str
    size_bytes: int | None = None
    sha256: str | None = None


def describe_checkpoint(path: Path, *, hash_contents: bool = True) -> CheckpointRef:
    """A :class:`CheckpointRef` of a checkpoint file or folder (hashing reads every byte: about 1 s/GB).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    if path.is_file():
        return CheckpointRef(str(path), path.stat().st_size, _sha256_file(path) if hash_contents else None)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    size = sum(p.stat().st_size for p in files)
    if not hash_contents:
        return CheckpointRef(str(path), size, None)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\0{_sha256_file(file)}\n".encode())
    return CheckpointRef(str(path), size, digest.hexdigest())


@dataclass(frozen=True)
class SplitRef:
    """The split a table was scored on: ``name`` (``"thuman/test"``), the split file's ``path`` and
    ``sha256``, and the number of ids in it (``count``)."""

    name: str
    path: str
    sha256: str
    count: int


def describe_split(name: str, path: Path, count: int) -> SplitRef:
    """A :class:`SplitRef` of a split file (hashes it). Raises FileNotFoundError if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return SplitRef(name, str(path), _sha256_file(path), count)


@dataclass(frozen=True)
class ResultRow:
    """One method's numbers.

    Attributes:
        method: row label (``"Ours"``, ``"w.o. geo. cue"``, ``"Before diffusion"``).
        values: column key -> value; a column without a value prints as ``–``. NaN is refused.
        checkpoint: the weights, or None (e.g. a baseline's published numbers).
        settings: what differs for this row from the table's settings (JSON-serialisable).
    """

    method: str
    values: Mapping[str, float]
    checkpoint: CheckpointRef | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.method:
            raise ValueError("method must be a non-empty row label")
        for key, value in self.values.items():
            if not isinstance(value, (int, float)) or math.isnan(float(value)):
                raise ValueError(f"values[{key!r}] must be a number (leave the key out when missing), got {value!r}")


@dataclass(frozen=True)
class ResultsTable:
    """A paper-style table for one dataset and task.

    Attributes:
        title: caption (``"Novel view synthesis, THuman2.1"``).
        dataset: dataset name(s) as in the split files (``"thuman"``).
        task: ``"novel_view"`` / ``"novel_pose"`` or an ablation name.
        columns: metric columns in print order.
        rows: one per method / checkpoint, in print order.
        split: the split scored, or None.
        settings: protocol settings shared by all rows (input views, background, resolution, …).
        legend: region id -> what that region's columns score; printed under the markdown table (every
            column with a region must have an entry).
    """

    title: str
    dataset: str
    task: str
    columns: tuple[MetricColumn, ...]
    rows: tuple[ResultRow, ...]
    split: SplitRef | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    legend: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError("columns must hold at least one metric column")
        keys = [column.key for column in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"columns must have distinct keys, got {keys}")
        methods = [row.method for row in self.rows]
        if len(set(methods)) != len(methods):
            raise ValueError(f"rows must have distinct method labels, got {methods}")
        for row in self.rows:
            unknown = sorted(set(row.values) - set(keys))
            if unknown:
                raise ValueError(f"row {row.method!r} has values for unknown columns {unknown}; columns: {keys}")
        unexplained = sorted({column.region for column in self.columns if column.region} - set(self.legend))
        if unexplained:
            raise ValueError(f"legend must explain every column region, missing {unexplained}")

    def best(self, column: MetricColumn) -> float | None:
        """Best value of ``column`` over the rows (None if no row has one)."""
        values = [row.values[column.key] for row in self.rows if column.key in row.values]
        if not values:
            return None
        return max(values) if column.higher_is_better else min(values)

    def to_markdown(self, *, mark_best: bool = True) -> str:
        """The table as markdown, a caption line above and the split below."""
        lines = [f"**{self.title}**", "", "| Method | " + " | ".join(c.heading for c in self.columns) + " |",
                 "| --- |" + " ---: |" * len(self.columns)]
        best = {column.key: self.best(column) for column in self.columns}
        for row in self.rows:
            cells = []
            for column in self.columns:
                if column.key not in row.values:
                    cells.append("–")
                    continue
                value = float(row.values[column.key])
                text = f"{value:.{column.decimals}f}"
                cells.append(f"**{text}**" if mark_best and len(self.rows) > 1 and value == best[column.key] else text)
            lines.append(f"| {row.method} | " + " | ".join(cells) + " |")
        labels = {column.region: column.region_label or column.region for column in self.columns if column.region}
        if self.legend:
            lines.append("")
            lines += [f"- *{labels.get(region, region)}*: {text}" for region, text in self.legend.items()]
        if self.split is not None:
            lines += ["", f"Split `{self.split.name}` ({self.split.count} ids, sha256 {self.split.sha256[:12]}); "
                          f"record: the JSON file next to this table."]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The table as CSV: ``method``, ``checkpoint``, then one column per metric key, full precision."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["method", "checkpoint", *(column.key for column in self.columns)])
        for row in self.rows:
            values = [repr(float(row.values[c.key])) if c.key in row.values else "" for c in self.columns]
            writer.writerow([row.method, row.checkpoint.path if row.checkpoint else "", *values])
        return buffer.getvalue()

    def record(self) -> dict[str, Any]:
        """The JSON-ready record (without the file hashes that :func:`write_results_table` adds)."""
        return {
            "format": RECORD_FORMAT,
            "version": 1,
            "title": self.title,
            "dataset": self.dataset,
            "task": self.task,
            "columns": [{"key": c.key, "name": c.name, "group": c.group, "region": c.region,
                         "region_label": c.region_label or c.region, "heading": c.heading,
                         "higher_is_better": c.higher_is_better, "decimals": c.decimals} for c in self.columns],
            "legend": dict(self.legend),
            "split": None if self.split is None else vars(self.split).copy(),
            "settings": _jsonable(self.settings, "settings"),
            "rows": [{"method": row.method,
                      "checkpoint": None if row.checkpoint is None else vars(row.checkpoint).copy(),
                      "settings": _jsonable(row.settings, f"rows[{row.method!r}].settings"),
                      "values": {key: _json_number(value) for key, value in row.values.items()}}
                     for row in self.rows],
        }


def _json_number(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _jsonable(value: Any, label: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{label} must be JSON-serialisable: {error}") from error


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class TableFiles:
    """Paths of the three files written for one table."""

    markdown: Path
    csv: Path
    record: Path


def write_results_table(table: ResultsTable, out_dir: Path, stem: str) -> TableFiles:
    """Write ``<out_dir>/<stem>.md``, ``.csv`` and ``.json`` atomically (the record last).

    Raises:
        ValueError: on a ``stem`` with a path separator, or settings that are not JSON-serialisable.
    """
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise ValueError(f"stem must be a plain file name without extension, got {stem!r}")
    out_dir = Path(out_dir)
    markdown = table.to_markdown().encode()
    table_csv = table.to_csv().encode()
    record = table.record()  # validates settings before anything is written
    files = TableFiles(out_dir / f"{stem}.md", out_dir / f"{stem}.csv", out_dir / f"{stem}.json")
    record["files"] = {
        "markdown": {"name": files.markdown.name, "sha256": hashlib.sha256(markdown).hexdigest()},
        "csv": {"name": files.csv.name, "sha256": hashlib.sha256(table_csv).hexdigest()},
    }
    record["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    atomic_write_bytes(files.markdown, markdown)
    atomic_write_bytes(files.csv, table_csv)
    atomic_write_bytes(files.record, (json.dumps(record, indent=2, allow_nan=False) + "\n").encode())
    return files
