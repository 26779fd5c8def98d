"""Outcome reports of a bake: per subject, per input shard and per rank."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class SubjectBakeReport:
    """Outcome of one subject: ``status`` "baked", "skipped" (all clips existed) or "failed"."""

    input_shard: str
    key: str
    status: str
    clips_written: int = 0
    clips_skipped: int = 0
    error: str = ""
    seconds: float = 0.0

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["seconds"] = round(self.seconds, 3)
        return row


class _ClipTotals:
    """``clips_written`` and ``clips_skipped`` of a report: the sums over the reports in its field ``_PARTS``."""

    _PARTS: ClassVar[str]

    @property
    def clips_written(self) -> int:
        return sum(part.clips_written for part in getattr(self, self._PARTS))

    @property
    def clips_skipped(self) -> int:
        return sum(part.clips_skipped for part in getattr(self, self._PARTS))


@dataclass
class ShardBakeReport(_ClipTotals):
    """Outcome of one input shard: its subjects, the output shards written and, when the input shard
    could not be read to the end, ``error`` (subjects read before the damage are kept)."""

    input_shard: str
    prefix: str
    subjects: list[SubjectBakeReport] = field(default_factory=list)
    output_shards: list[str] = field(default_factory=list)
    error: str = ""
    skipped: bool = False

    _PARTS = "subjects"

    @property
    def failed(self) -> list[SubjectBakeReport]:
        return [report for report in self.subjects if report.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.error and not self.failed


@dataclass
class BakeReport(_ClipTotals):
    """Outcome of one rank's bake."""

    rank: int
    world_size: int
    shards: list[ShardBakeReport] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0

    _PARTS = "shards"

    @property
    def problems(self) -> list[str]:
        """One line per unreadable input shard or failed subject."""
        lines = [shard.error if shard.error.startswith(shard.input_shard) else f"{shard.input_shard}: {shard.error}"
                 for shard in self.shards if shard.error]
        lines += [f"{subject.key}: {subject.error}" for shard in self.shards for subject in shard.failed]
        return lines

    @property
    def ok(self) -> bool:
        return not self.problems

    def rows(self) -> list[dict[str, Any]]:
        """One row per subject (and per unreadable shard) for tables and artifacts."""
        rows = [subject.as_row() for shard in self.shards for subject in shard.subjects]
        rows += [{"input_shard": shard.input_shard, "key": "-", "status": "unreadable", "error": shard.error}
                 for shard in self.shards if shard.error]
        return rows

    def summary(self) -> str:
        skipped = sum(1 for shard in self.shards if shard.skipped)
        text = (f"rank {self.rank}/{self.world_size}: {self.clips_written} clips baked ({self.frames} frames), "
                f"{self.clips_skipped} already present, {len(self.shards)} input shards ({skipped} already done)")
        return text + (f"; {len(self.problems)} problem(s)" if self.problems else "")
