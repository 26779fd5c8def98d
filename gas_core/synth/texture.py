"""Colours for synthetic humans: a texture painted on Anny's UV atlas and matching per-vertex colours.

Every surface point gets a *material* (skin, hair, top, bottom, shoes) and a colour computed from the
material and the point's rest-pose position (Anny's frame, metres), so the texture image and the
per-vertex colours agree wherever they describe the same point:

* skin: the skin tone with faint blotches;
* hair: the hair colour with fine strands (a high-frequency stripe along the height);
* top: plain, horizontal stripes or checks of two colours with a period in metres;
* bottom: plain with a slight weave;
* shoes: one colour, darker soles.

UV convention: ``uv`` in [0, 1]², origin at the image's **bottom-left** (OBJ / OpenGL), so texel row
``r`` of an ``H``-row image holds ``v = 1 - (r + 0.5) / H``. This is what trimesh and OBJ viewers
assume when sampling a texture.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

__all__ = [
    "RGB",
    "Material",
    "Palette",
    "material_colors",
    "rasterize_uv_faces",
    "paint_texture",
    "sample_texture",
]

RGB = tuple[int, int, int]


class Material(IntEnum):
    """What a surface point is made of (drives its colour)."""

    SKIN = 0
    HAIR = 1
    TOP = 2
    BOTTOM = 3
    SHOES = 4


@dataclass(frozen=True)
class Palette:
    """Colours of one subject (RGB, 0-255) and the top's pattern.

    Attributes:
        skin, hair, top, top_accent, bottom, shoes: base colours.
        top_pattern: ``"plain"``, ``"stripes"`` (horizontal) or ``"checks"``.
        pattern_period: stripe / check period, metres.
    """

    skin: RGB
    hair: RGB
    top: RGB
    top_accent: RGB
    bottom: RGB
    shoes: RGB
    top_pattern: Literal["plain", "stripes", "checks"]
    pattern_period: float

    def __post_init__(self) -> None:
        for name in ("skin", "hair", "top", "top_accent", "bottom", "shoes"):
            value = getattr(self, name)
            if len(value) != 3 or any(not 0 <= channel <= 255 for channel in value):
                raise ValueError(f"{name} must be three integers in [0, 255], got {value!r}")
        if self.top_pattern not in ("plain", "stripes", "checks"):
            raise ValueError(f"top_pattern must be 'plain', 'stripes' or 'checks', got {self.top_pattern!r}")
        if not 0.01 <= self.pattern_period <= 0.5:
            raise ValueError(f"pattern_period must be in [0.01, 0.5] metres, got {self.pattern_period}")


def material_colors(materials: np.ndarray, rest_points: np.ndarray, palette: Palette) -> np.ndarray:
    """Colour of surface points.

    Args:
        materials: (N,) :class:`Material` values.
        rest_points: (N, 3) rest-pose positions, Anny's frame (z up), metres.
        palette: the subject's colours.

    Returns:
        (N, 3) uint8 RGB.
    """
    materials = np.asarray(materials)
    p = np.asarray(rest_points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) != len(materials):
        raise ValueError(f"rest_points must be (N, 3) with N = len(materials), got {p.shape} and {materials.shape}")
    colors = np.zeros((len(p), 3), dtype=np.float64)

    def put(material: Material, values: np.ndarray) -> None:
        mask = materials == material
        colors[mask] = values[mask] if values.ndim == 2 else values

    blotch = 0.04 * np.sin(23.0 * p[:, 0] + 3.0 * np.sin(17.0 * p[:, 2])) * np.sin(19.0 * p[:, 2] + 11.0 * p[:, 1])
    put(Material.SKIN, np.asarray(palette.skin, dtype=np.float64)[None] * (1.0 + blotch[:, None]))
    strands = 0.12 * np.sin(2.0 * np.pi * (p[:, 0] * 90.0 + 6.0 * np.sin(40.0 * p[:, 2])))
    put(Material.HAIR, np.asarray(palette.hair, dtype=np.float64)[None] * (1.0 + strands[:, None]))
    phase_z = p[:, 2] / palette.pattern_period
    if palette.top_pattern == "stripes":
        accent = (np.floor(phase_z) % 2) == 1
    elif palette.top_pattern == "checks":
        accent = ((np.floor(phase_z) + np.floor((p[:, 0] + p[:, 1]) / palette.pattern_period)) % 2) == 1
    else:
        accent = np.zeros(len(p), dtype=bool)
    top = np.where(accent[:, None], np.asarray(palette.top_accent, float)[None], np.asarray(palette.top, float)[None])
    put(Material.TOP, top)
    weave = 0.05 * np.sin(2.0 * np.pi * 120.0 * (p[:, 0] + p[:, 2]))
    put(Material.BOTTOM, np.asarray(palette.bottom, dtype=np.float64)[None] * (1.0 + weave[:, None]))
    lowest = p[:, 2].min() if len(p) else 0.0
    sole = np.where(p[:, 2] < lowest + 0.02, 0.45, 1.0) if len(p) else np.ones(0)
    put(Material.SHOES, np.asarray(palette.shoes, dtype=np.float64)[None] * sole[:, None])
    return np.clip(np.rint(colors), 0, 255).astype(np.uint8)


def rasterize_uv_faces(uv: np.ndarray, face_uv_indices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which face covers each texel, and the texel's barycentric coordinates in that face.

    Args:
        uv: (Vt, 2) texture coordinates in [0, 1] (origin bottom-left).
        face_uv_indices: (F, 3) indices into ``uv``.
        size: texture side in pixels.

    Returns:
        ``(face_index (size, size) int64, -1 where no face; barycentric (size, size, 3) float64)``.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    uv = np.asarray(uv, dtype=np.float64)
    corners = uv[np.asarray(face_uv_indices)]  # (F, 3, 2)
    pixels = np.stack([corners[..., 0] * size, (1.0 - corners[..., 1]) * size], axis=-1)
    canvas = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for face, triangle in enumerate(pixels):
        code = face + 1
        draw.polygon([tuple(point) for point in triangle], fill=(code & 255, (code >> 8) & 255, (code >> 16) & 255))
    codes = np.asarray(canvas, dtype=np.int64)
    face_index = (codes[..., 0] | (codes[..., 1] << 8) | (codes[..., 2] << 16)) - 1
    rows, cols = np.nonzero(face_index >= 0)
    centres = np.stack([cols + 0.5, rows + 0.5], axis=-1)
    tri = pixels[face_index[rows, cols]]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    rel = centres - tri[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    b1 = (rel[:, 0] * e2[:, 1] - rel[:, 1] * e2[:, 0]) / det
    b2 = (e1[:, 0] * rel[:, 1] - e1[:, 1] * rel[:, 0]) / det
    bary = np.clip(np.stack([1.0 - b1 - b2, b1, b2], axis=-1), 0.0, 1.0)
    bary /= np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)
    barycentric = np.zeros((size, size, 3))
    barycentric[rows, cols] = bary
    return face_index, barycentric


def paint_texture(
    faces: np.ndarray,
    uv: np.ndarray,
    face_uv_indices: np.ndarray,
    vertex_materials: np.ndarray,
    rest_vertices: np.ndarray,
    palette: Palette,
    size: int = 1024,
) -> np.ndarray:
    """Paint the subject's texture image on its UV atlas.

    Args:
        faces: (F, 3) vertex indices.
        uv: (Vt, 2) texture coordinates.
        face_uv_indices: (F, 3) indices into ``uv``.
        vertex_materials: (V,) :class:`Material` per vertex.
        rest_vertices: (V, 3) rest-pose positions (Anny's frame), metres.
        palette: the subject's colours.
        size: texture side in pixels.

    Returns:
        (size, size, 3) uint8 RGB image; texels outside every face take the colour of the nearest
        painted texel, so sampling just across a UV seam stays on the right colour.
    """
    faces = np.asarray(faces)
    face_index, barycentric = rasterize_uv_faces(uv, face_uv_indices, size)
    painted = face_index >= 0
    hit_faces = faces[face_index[painted]]  # (N, 3)
    bary = barycentric[painted]
    points = np.einsum("nk,nkd->nd", bary, np.asarray(rest_vertices, dtype=np.float64)[hit_faces])
    nearest_corner = hit_faces[np.arange(len(hit_faces)), bary.argmax(axis=1)]
    colors = material_colors(np.asarray(vertex_materials)[nearest_corner], points, palette)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[painted] = colors
    if painted.any() and not painted.all():
        _, (rows, cols) = ndimage.distance_transform_edt(~painted, return_indices=True)
        image = image[rows, cols]
    return image


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest-texel colours (N, 3) uint8 of a (H, W, 3) texture at uv (N, 2) (origin bottom-left)."""
    texture = np.asarray(texture)
    height, width = texture.shape[:2]
    uv = np.asarray(uv, dtype=np.float64)
    cols = np.clip((uv[:, 0] * width).astype(np.int64), 0, width - 1)
    rows = np.clip(((1.0 - uv[:, 1]) * height).astype(np.int64), 0, height - 1)
    return texture[rows, cols]
