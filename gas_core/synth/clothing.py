"""Clothing-like geometry for synthetic humans: garments as displaced shells, plus a hanging skirt.

Garments are painted onto the body as smooth per-vertex weights in [0, 1] computed in the subject's
**rest pose** (Anny's frame: metres, z up, the body faces −y, +x is the body's left), so a sleeve or a
trouser leg keeps its extent whatever the pose:

* top (shirt): the torso above the hem and each arm up to ``sleeve_length`` (fraction of the
  shoulder→wrist segment; 0 sleeveless, 1 down to the wrist);
* bottom: trousers cover the pelvis below the waist and each leg down to ``bottom_length`` (fraction
  of the hip→ankle height); a skirt covers the hips and upper thighs as a shell and adds a separate
  open tube (:func:`skirt_tube`) that hangs around both legs down to its hem;
* hair: a cap over the scalp (``long`` hair also covers the back of the neck);
* shoes: the feet and ankles.

The posed body is then pushed out along its vertex normals by ``weight * thickness``; thickness varies
smoothly over the body (a few low-frequency sinusoids of the rest position, seeded), which gives loose,
uneven garments rather than a uniform offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

__all__ = [
    "GarmentSpec",
    "BodyLayout",
    "GarmentWeights",
    "garment_weights",
    "smooth_noise",
    "vertex_normals",
    "displace_along_normals",
    "skirt_tube",
]

#: SMPL joint indices (``gas_core.body.joints.SMPL_JOINT_NAMES``) grouped into body parts.
_TORSO_PARTS = (0, 3, 6, 9, 13, 14)
_NECK_HEAD_PARTS = (12, 15)
_ARM_PARTS = (16, 17, 18, 19, 20, 21, 22, 23)
_HAND_PARTS = (20, 21, 22, 23)
_LEG_PARTS = (1, 2, 4, 5)
_FOOT_PARTS = (7, 8, 10, 11)


@dataclass(frozen=True)
class GarmentSpec:
    """What a subject wears. Lengths are fractions, thicknesses metres.

    Attributes:
        sleeve_length: 0 (sleeveless) to 1 (down to the wrist), fraction of shoulder→wrist.
        bottom_style: ``"trousers"`` or ``"skirt"``.
        bottom_length: trousers: fraction of hip→ankle height they reach (0.3 shorts, 1 full length);
            skirt: where its hem hangs, same scale (0.3 mini, 0.9 ankle length).
        top_thickness: mean offset of the top from the skin, metres.
        bottom_thickness: mean offset of trousers / the skirt's waistband, metres.
        looseness: relative amplitude of the thickness variation, 0 (uniform) to 1.
        skirt_flare: how much the skirt widens per metre of drop (radius gain, metres per metre).
        hair_style: ``"short"`` (scalp cap) or ``"long"`` (also covers the back of the neck).
        hair_thickness: metres.
        shoe_thickness: metres.
    """

    sleeve_length: float
    bottom_style: Literal["trousers", "skirt"]
    bottom_length: float
    top_thickness: float
    bottom_thickness: float
    looseness: float
    skirt_flare: float
    hair_style: Literal["short", "long"]
    hair_thickness: float
    shoe_thickness: float

    def __post_init__(self) -> None:
        for name in ("sleeve_length", "bottom_length", "looseness"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("top_thickness", "bottom_thickness", "hair_thickness", "shoe_thickness"):
            value = getattr(self, name)
            if not 0.0 <= value <= 0.1:
                raise ValueError(f"{name} must be in [0, 0.1] metres, got {value}")
        if not 0.0 <= self.skirt_flare <= 1.0:
            raise ValueError(f"skirt_flare must be in [0, 1] metres per metre, got {self.skirt_flare}")
        if self.bottom_style not in ("trousers", "skirt"):
            raise ValueError(f"bottom_style must be 'trousers' or 'skirt', got {self.bottom_style!r}")
        if self.hair_style not in ("short", "long"):
            raise ValueError(f"hair_style must be 'short' or 'long', got {self.hair_style!r}")


@dataclass(frozen=True)
class BodyLayout:
    """Rest-pose facts about one body that garments are placed with.

    Attributes:
        rest_vertices: (V, 3) rest-pose vertices, Anny's frame, metres.
        vertex_part: (V,) SMPL joint index owning each vertex (dominant skinning bone).
        landmarks: rest-pose bone heads (3,) by Anny bone name; needs ``root``, ``spine03``,
            ``neck01``, ``head``, ``eye.L``, ``eye.R``, ``upperarm01.L/R``, ``wrist.L/R``,
            ``upperleg01.L/R``, ``foot.L/R``.
    """

    rest_vertices: np.ndarray
    vertex_part: np.ndarray
    landmarks: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class GarmentWeights:
    """Per-vertex coverage in [0, 1] by each garment, each (V,) float64."""

    top: np.ndarray
    bottom: np.ndarray
    hair: np.ndarray
    shoes: np.ndarray


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1`` (edges may be in either order), smooth in between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _in_parts(vertex_part: np.ndarray, parts: tuple[int, ...]) -> np.ndarray:
    return np.isin(vertex_part, parts)


def _segment_coordinate(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Position of each point's projection along start→end: 0 at ``start``, 1 at ``end``."""
    axis = end - start
    return (points - start) @ axis / float(axis @ axis)


def garment_weights(layout: BodyLayout, garments: GarmentSpec, blend: float = 0.02) -> GarmentWeights:
    """Coverage of each garment per vertex, from the rest pose.

    Args:
        layout: the body's rest-pose vertices, parts and landmarks.
        garments: what the subject wears.
        blend: width of the soft edge of each garment, metres (fractions are converted using the
            limb length).

    Returns:
        :class:`GarmentWeights`, each (V,) in [0, 1].
    """
    v = np.asarray(layout.rest_vertices, dtype=np.float64)
    part = np.asarray(layout.vertex_part)
    marks = {name: np.asarray(value, dtype=np.float64) for name, value in layout.landmarks.items()}
    z = v[:, 2]
    torso = _in_parts(part, _TORSO_PARTS)
    waist_z = float(marks["spine03"][2])
    hip_z = 0.5 * float(marks["upperleg01.L"][2] + marks["upperleg01.R"][2])
    ankle_z = 0.5 * float(marks["foot.L"][2] + marks["foot.R"][2])
    leg_length = hip_z - ankle_z
    neck_z = float(marks["neck01"][2])

    # Top: torso from a little below the waist up to the neck base, plus sleeves.
    top = torso * _smoothstep(hip_z - 0.02, hip_z + blend, z) * _smoothstep(neck_z + 0.01, neck_z - blend, z)
    sleeve = np.zeros_like(z)
    for side in ("L", "R"):
        shoulder, wrist = marks[f"upperarm01.{side}"], marks[f"wrist.{side}"]
        arm_length = float(np.linalg.norm(wrist - shoulder))
        on_side = (v[:, 0] > 0) if side == "L" else (v[:, 0] < 0)
        t = _segment_coordinate(v, shoulder, wrist)
        reach = max(garments.sleeve_length, 0.08)  # even a sleeveless top covers the armhole
        edge = blend / arm_length
        sleeve_side = _smoothstep(reach + edge, reach - edge, t) * _in_parts(part, _ARM_PARTS) * on_side
        sleeve = np.maximum(sleeve, sleeve_side * ~_in_parts(part, _HAND_PARTS))
    top = np.maximum(top, sleeve)

    # Bottom: pelvis below the waist plus legs down to the hem (the skirt's shell stops high).
    shell_length = garments.bottom_length if garments.bottom_style == "trousers" else min(garments.bottom_length, 0.25)
    hem_z = hip_z - shell_length * leg_length
    pelvis = torso * _smoothstep(waist_z + blend, waist_z - blend, z)
    legs = _in_parts(part, _LEG_PARTS + _FOOT_PARTS) * _smoothstep(hem_z - blend, hem_z + blend, z)
    bottom = np.maximum(pelvis, legs)

    # Hair: above a hairline that sits on the forehead at the front and lower at the back.
    eyes = 0.5 * (marks["eye.L"] + marks["eye.R"])
    head_centre_y = float(marks["head"][1])
    backness = _smoothstep(float(eyes[1]) + 0.03, head_centre_y + 0.03, v[:, 1])  # 0 at the face, 1 behind
    back_drop = 0.12 if garments.hair_style == "long" else 0.03
    hairline = (eyes[2] + 0.05) * (1.0 - backness) + (eyes[2] - back_drop) * backness
    head_or_neck = _in_parts(part, _NECK_HEAD_PARTS) | (torso & (z > neck_z - 0.05) & (garments.hair_style == "long"))
    hair = head_or_neck * _smoothstep(hairline - 0.5 * blend, hairline + 0.5 * blend, z)
    if garments.hair_style == "long":
        hair = hair * _smoothstep(neck_z - 0.06, neck_z - 0.02, z)

    # Shoes: feet and the ankles just above them.
    feet = _in_parts(part, _FOOT_PARTS).astype(np.float64)
    ankle_band = _in_parts(part, _LEG_PARTS) * _smoothstep(ankle_z + 0.05, ankle_z + 0.02, z)
    shoes = np.maximum(feet, ankle_band)
    return GarmentWeights(top=top, bottom=bottom, hair=hair.astype(np.float64), shoes=shoes)


def smooth_noise(points: np.ndarray, seed: int, wavelength: float = 0.25, terms: int = 6) -> np.ndarray:
    """A smooth random field in [-1, 1] evaluated at points (N, 3) metres.

    A sum of ``terms`` plane waves with random directions, wavelengths around ``wavelength`` metres and
    phases drawn from ``seed``. Returns (N,) float64.
    """
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(terms, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    frequencies = 2.0 * np.pi / (wavelength * rng.uniform(0.6, 1.6, size=terms))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=terms)
    waves = np.sin(np.asarray(points, dtype=np.float64) @ (directions * frequencies[:, None]).T + phases)
    return waves.sum(axis=1) / np.sqrt(terms * 0.5) / 2.0


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) of a triangle mesh (vertices (V, 3), faces (F, 3))."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(lengths, 1e-12)


def displace_along_normals(
    vertices: np.ndarray,
    faces: np.ndarray,
    weights: GarmentWeights,
    garments: GarmentSpec,
    rest_vertices: np.ndarray,
    seed: int,
) -> np.ndarray:
    """Push each garment's vertices out along the posed normals.

    Args:
        vertices: (V, 3) posed body vertices, metres.
        faces: (F, 3) triangles.
        weights: garment coverage per vertex.
        garments: thicknesses and looseness.
        rest_vertices: (V, 3) rest-pose vertices, used to evaluate the thickness variation so it
            follows the body whatever the pose.
        seed: seeds the thickness variation.

    Returns:
        (V, 3) float64 displaced vertices.
    """
    noise = smooth_noise(rest_vertices, seed)
    variation = np.clip(1.0 + garments.looseness * noise, 0.2, 2.0)
    offset = np.maximum.reduce(
        [
            weights.top * garments.top_thickness * variation,
            weights.bottom * garments.bottom_thickness * variation,
            weights.hair * garments.hair_thickness * np.clip(1.0 + 0.5 * noise, 0.3, 1.7),
            weights.shoes * garments.shoe_thickness,
        ]
    )
    return np.asarray(vertices, dtype=np.float64) + vertex_normals(vertices, faces) * offset[:, None]


def skirt_tube(
    vertices: np.ndarray,
    covered: np.ndarray,
    top_height: float,
    hem_height: float,
    centre: np.ndarray,
    flare: float,
    clearance: float = 0.012,
    rings: int = 14,
    segments: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """An open tube hanging from ``top_height`` down to ``hem_height`` around the covered vertices.

    Works in a y-up frame (the project's world frame). At each ring height the tube's radius at each
    angle about ``centre`` is the farthest covered vertex in that angular sector plus ``clearance``,
    never less than the ring above (so it drapes over the legs) and growing by ``flare`` per metre of
    drop; radii are smoothed around the ring.

    Args:
        vertices: (V, 3) posed vertices (y up), metres.
        covered: (V,) bool, the vertices the skirt must enclose (hips and legs).
        top_height: y of the waistband ring; must be above ``hem_height``.
        hem_height: y of the hem ring.
        centre: (3,) point whose x and z give the tube's axis.
        flare: radius gain per metre of drop.
        clearance: gap between the tube and the body, metres.
        rings, segments: tube resolution (rings >= 2, segments >= 8).

    Returns:
        ``(tube_vertices (rings*segments, 3) float64, tube_faces (2*(rings-1)*segments, 3) int64)``;
        faces are wound so their normals point away from the axis.

    Raises:
        ValueError: if ``top_height <= hem_height``, ``rings < 2`` or ``segments < 8``.
    """
    if top_height <= hem_height:
        raise ValueError(f"top_height ({top_height}) must be above hem_height ({hem_height})")
    if rings < 2 or segments < 8:
        raise ValueError(f"rings must be >= 2 and segments >= 8, got rings={rings}, segments={segments}")
    points = np.asarray(vertices, dtype=np.float64)[np.asarray(covered, dtype=bool)]
    cx, cz = float(centre[0]), float(centre[2])
    angles = np.arctan2(points[:, 0] - cx, points[:, 2] - cz)
    radial = np.hypot(points[:, 0] - cx, points[:, 2] - cz)
    sector = ((angles + np.pi) / (2.0 * np.pi) * segments).astype(np.int64) % segments
    heights = np.linspace(top_height, hem_height, rings)
    band = max((top_height - hem_height) / (rings - 1), 0.02)
    kernel = np.array([0.25, 0.5, 0.25])
    radii = np.zeros((rings, segments))
    previous = np.zeros(segments)
    for ring, height in enumerate(heights):
        in_band = np.abs(points[:, 1] - height) < band
        extent = np.zeros(segments)
        np.maximum.at(extent, sector[in_band], radial[in_band])
        if ring == 0 and not extent.any():
            extent[:] = 0.12
        drop = 0.0 if ring == 0 else heights[ring - 1] - height
        ring_radius = np.maximum(extent + clearance, previous + flare * drop)
        if ring == 0:
            ring_radius = np.maximum(ring_radius, np.median(ring_radius))
        for _ in range(3):
            ring_radius = np.maximum(
                ring_radius,
                kernel[0] * np.roll(ring_radius, 1) + kernel[1] * ring_radius + kernel[2] * np.roll(ring_radius, -1),
            )
        radii[ring] = ring_radius
        previous = ring_radius
    theta = (np.arange(segments) + 0.5) / segments * 2.0 * np.pi - np.pi
    tube = np.stack(
        [
            cx + radii * np.sin(theta)[None, :],
            np.repeat(heights[:, None], segments, axis=1),
            cz + radii * np.cos(theta)[None, :],
        ],
        axis=-1,
    ).reshape(-1, 3)
    ring_index = np.arange(rings - 1)[:, None] * segments
    column = np.arange(segments)[None, :]
    a = ring_index + column
    b = ring_index + (column + 1) % segments
    c = a + segments
    d = b + segments
    faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    return tube, faces.astype(np.int64)
