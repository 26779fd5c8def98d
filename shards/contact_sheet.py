"""Contact sheets: one PNG per sample with a labelled row per image field (views, masks, normal maps, ...)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tqdm import tqdm

from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.remote import Folder, write_bytes_atomic
from shards.schema import SampleSchema, read_schema_tag, schema_for

__all__ = ["make_contact_sheet", "save_png_atomic", "write_contact_sheets"]

_LABEL_HEIGHT = 12
_GAP = 4
_BACKGROUND = (32, 32, 32)
_TEXT = (235, 235, 235)


def _tile(image: np.ndarray, tile: int) -> Image.Image:
    """Image scaled to ``tile`` pixels high (nearest neighbour when enlarging, so pixels stay visible)."""
    picture = Image.fromarray(image).convert("RGB")
    width = max(1, round(picture.width * tile / picture.height))
    resample = Image.Resampling.NEAREST if tile >= picture.height else Image.Resampling.BILINEAR
    return picture.resize((width, tile), resample)


def make_contact_sheet(
    schema: SampleSchema, values: Mapping[str, Any], *, title: str = "", tile: int = 128
) -> np.ndarray:
    """Labelled contact sheet of every image field present in ``values``.

    Args:
        schema: the sample's schema (gives the image fields and their order).
        values: decoded field values (:meth:`SampleSchema.decode_members` output): per-view images
            uint8 (N, H, W[, 3]), single images (H, W[, 3]).
        title: text on the first line (usually the sample key).
        tile: height of each image tile in pixels (>= 8).

    Returns:
        uint8 (H, W, 3) RGB image: one row per image field, each tile labelled with its member name.
    """
    if tile < 8:
        raise ValueError(f"tile must be >= 8 pixels, got {tile}")
    rows: list[list[tuple[str, Image.Image]]] = []
    for spec in schema.image_fields():
        value = values.get(spec.name)
        if value is None:
            continue
        array = np.asarray(value)
        if spec.repeated:
            count = len(array)
            row = [(spec.member_name(i, count).rsplit(".", 1)[0], _tile(array[i], tile)) for i in range(count)]
        else:
            row = [(spec.member.rsplit(".", 1)[0], _tile(array, tile))]
        rows.append(row)
    if not rows:
        raise ValueError(f"values hold no image field of schema {schema.name} v{schema.version}")
    font = ImageFont.load_default()
    title_height = _LABEL_HEIGHT + _GAP if title else 0
    row_height = _LABEL_HEIGHT + tile + _GAP
    width = max(sum(picture.width + _GAP for _, picture in row) for row in rows) + _GAP
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    if title:
        width = max(width, int(measure.textlength(title, font=font)) + 2 * _GAP)
    sheet = Image.new("RGB", (width, title_height + row_height * len(rows) + _GAP), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((_GAP, _GAP // 2), title, fill=_TEXT, font=font)
    top = title_height + _GAP
    for row in rows:
        left = _GAP
        for label, picture in row:
            draw.text((left, top), label, fill=_TEXT, font=font)
            sheet.paste(picture, (left, top + _LABEL_HEIGHT))
            left += picture.width + _GAP
        top += row_height
    return np.asarray(sheet)


def save_png_atomic(image: np.ndarray, path: str | os.PathLike[str]) -> str:
    """Write ``image`` (uint8 (H, W, 3) or (H, W)) as PNG through a temp name; returns the path."""
    location = os.fspath(path)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
    write_bytes_atomic(location, buffer.getvalue())
    return location



def write_contact_sheets(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    tile: int = 128,
    limit: int | None = None,
) -> list[str]:
    """Write ``{out_dir}/{key}.png`` for every sample of ``source`` (folder, manifest, glob, shards).

    Each sample is decoded against the schema its ``schema.json`` names (unknown versions are
    refused). ``limit`` caps the number of sheets. Returns the written paths in shard order.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    written: list[str] = []
    folder = Folder(out_dir)
    for url in tqdm(resolve_shard_urls(source), desc="contact sheets", disable=None):
        for raw in iter_shard_samples(url):
            if limit is not None and len(written) >= limit:
                return written
            key = raw["__key__"]
            where = f"{url} sample {key}"
            name, version = read_schema_tag(raw, where=where)
            schema = schema_for(name, version, where=where)
            values = schema.decode_members(raw, where=where)
            sheet = make_contact_sheet(schema, values, title=f"{key}  ({name} v{version})", tile=tile)
            written.append(save_png_atomic(sheet, folder.join(f"{key}.png")))
    return written
