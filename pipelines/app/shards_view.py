"""The Shards tab's work: what ``gas-shards inspect`` / ``verify`` report, the sample list, a sample's
contact sheet and ``meta.json``, and a histogram per quality value. Locations are already checked
(:meth:`pipelines.app.paths.DataRoots.resolve`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from shards.cli import inspect_reports, verify_paths
from shards.contact_sheet import make_contact_sheet, save_png_atomic
from shards.reader import iter_shard_samples, read_sample, resolve_shard_urls
from shards.schema import read_schema_tag, schema_for

__all__ = ["SampleRow", "histogram_image", "inspect_location", "list_samples", "sample_sheet", "verify_location"]


@dataclass(frozen=True)
class SampleRow:
    """One sample of the list: its key, dataset, subject, clip mode, shard file and quality values."""

    key: str
    dataset: str
    subject: str
    mode: str
    shard: str
    quality: dict[str, float] = field(default_factory=dict)

    def matches(self, query: str) -> bool:
        """Case-insensitive substring search over key, dataset, subject, mode and shard."""
        text = query.strip().lower()
        return not text or any(text in value.lower() for value in (self.key, self.dataset, self.subject, self.mode,
                                                                   self.shard))


def inspect_location(location: str) -> dict[str, Any]:
    """``gas-shards inspect --json LOCATION``'s report (counts, schema, datasets, modes, quality summary)."""
    return inspect_reports([location])[0]


def verify_location(location: str) -> tuple[bool, str]:
    """``gas-shards verify LOCATION``: (all good, its report text)."""
    return verify_paths([location])


def _meta(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(raw.get("meta.json", b"{}"))
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def list_samples(location: str, limit: int = 5000) -> list[SampleRow]:
    """The first ``limit`` samples of the shards at ``location``, in shard order."""
    rows: list[SampleRow] = []
    for url in resolve_shard_urls(location):
        for raw in iter_shard_samples(url):
            meta = _meta(raw)
            extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
            quality = extra.get("quality") if isinstance(extra.get("quality"), dict) else {}
            values = {str(name): float(value) for name, value in quality.items()
                      if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}
            rows.append(SampleRow(key=str(raw["__key__"]), dataset=str(meta.get("dataset", "?")),
                                  subject=str(meta.get("subject_id", "?")), mode=str(meta.get("mode", "-")),
                                  shard=url.rstrip("/").rsplit("/", 1)[-1], quality=values))
            if len(rows) >= limit:
                return rows
    return rows


def sample_sheet(location: str, key: str, out_dir: Path, tile: int = 96) -> tuple[Path, dict[str, Any]]:
    """The contact sheet PNG of sample ``key`` (every image field, a row each; clips show their frames)
    written into ``out_dir``, and the sample's ``meta.json``. KeyError when no sample has that key."""
    raw = read_sample(resolve_shard_urls(location), key)
    where = f"{raw['__url__']} sample {key}"
    name, version = read_schema_tag(raw, where=where)
    schema = schema_for(name, version, where=where)
    values = schema.decode_members(raw, where=where)
    sheet = make_contact_sheet(schema, values, title=f"{key}  ({name} v{version})", tile=tile)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    path = Path(save_png_atomic(sheet, Path(out_dir) / f"{safe}.png"))
    return path, _meta(raw)


def histogram_image(values: dict[str, Sequence[float]], bins: int = 20, width: int = 360, height: int = 120) -> np.ndarray:
    """uint8 (H, W, 3) image: one labelled histogram (``bins`` bars) per quality value, stacked vertically.

    Raises ValueError when ``values`` holds no value.
    """
    named = {name: np.asarray(list(items), dtype=np.float64) for name, items in sorted(values.items()) if len(items)}
    if not named:
        raise ValueError("values holds no quality value to draw")
    font = ImageFont.load_default()
    label, gap = 14, 8
    panel = label + height + label + gap
    image = Image.new("RGB", (width + 2 * gap, panel * len(named) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    top = gap
    for name, numbers in named.items():
        low, high = float(numbers.min()), float(numbers.max())
        counts, _ = np.histogram(numbers, bins=bins, range=(low, high) if high > low else (low - 0.5, high + 0.5))
        draw.text((gap, top), f"{name}  (n={len(numbers)})", fill=(20, 20, 20), font=font)
        base = top + label + height
        bar = width / bins
        peak = max(int(counts.max()), 1)
        for index, count in enumerate(counts):
            x0 = gap + index * bar
            draw.rectangle([x0 + 1, base - height * count / peak, x0 + bar - 1, base], fill=(234, 88, 12))
        draw.line([gap, base, gap + width, base], fill=(90, 90, 90))
        draw.text((gap, base + 2), f"{low:.4g}", fill=(60, 60, 60), font=font)
        right = f"{high:.4g}"
        draw.text((gap + width - draw.textlength(right, font=font), base + 2), right, fill=(60, 60, 60), font=font)
        top += panel
    return np.asarray(image)
