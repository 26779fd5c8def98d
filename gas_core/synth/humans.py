"""Synthetic clothed humans made with Anny's full model (104 bones), with ground-truth joints kept aside.

A subject is fully described by a :class:`SubjectSpec` (phenotype, pose, garments, colours, seed);
:func:`sample_subject_spec` draws one from an integer seed and :func:`make_subject` builds it. The same
spec always gives the same arrays.

Output frame — the project's world frame (SMPL's): metres, **y up**, the subject faces **+z**, +x is
the subject's left. A point is taken from Anny's frame (z up, facing −y) by
``p_world = ANNY_TO_SMPL_ROTATION @ p_anny`` with no translation; Anny's posed root bone (the pelvis)
sits at the origin, so the feet are near y = −0.9 m for an average adult (they are not moved to y = 0).

Ground truth (not part of any dataset file):

* ``joints24``: SMPL's 24 joints, each the mean of the posed heads of its anchor bones in
  :data:`gas_core.body.joints.ANNY_JOINT_TABLE`;
* ``coco17``: Anny's COCO keypoint regressor applied to the *unclothed* posed body, first 17 points,
  in :data:`gas_core.body.joints.COCO17_NAMES` order;
* ``body_vertices``: the unclothed posed body (same vertex order as the first ``V_body`` vertices).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from gas_core.body.anny_model import ANNY_TO_SMPL_ROTATION, PHENOTYPE_NAMES, load_anny
from gas_core.body.joints import ANNY_JOINT_TABLE, COCO17_NAMES, anny_bone_to_smpl_joint
from gas_core.synth.clothing import (
    BodyLayout,
    GarmentSpec,
    displace_along_normals,
    garment_weights,
    skirt_tube,
)
from gas_core.synth.poses import POSE_NAMES, perturbed_bone_angles, pose_by_name, pose_parameters
from gas_core.synth.texture import Material, Palette, material_colors, paint_texture

__all__ = [
    "Phenotype",
    "SubjectSpec",
    "SyntheticSubject",
    "sample_subject_spec",
    "sample_edge_subject_spec",
    "sample_stress_subject_spec",
    "STRESS_BODY_RANGES",
    "make_subject",
    "PosedSequence",
    "pose_subject",
    "ADULT_AGE_RANGE",
]

logger = logging.getLogger(__name__)

#: Anny's age parameter range used for adults (0.33 is a child, 0.67 a young adult, 1.0 elderly).
ADULT_AGE_RANGE = (0.62, 0.98)

_LANDMARK_BONES = (
    "root", "spine03", "neck01", "head", "eye.L", "eye.R", "upperarm01.L", "upperarm01.R",
    "wrist.L", "wrist.R", "upperleg01.L", "upperleg01.R", "foot.L", "foot.R",
)

_SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (255, 224, 196), (241, 194, 167), (224, 172, 138), (198, 134, 94), (161, 102, 66), (110, 68, 42), (80, 51, 33),
)
_HAIR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (28, 24, 22), (58, 40, 28), (101, 67, 33), (196, 164, 108), (140, 62, 32), (165, 165, 160),
)
_GARMENT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (30, 40, 90), (235, 235, 228), (170, 32, 42), (40, 110, 62), (120, 120, 126), (26, 26, 30),
    (200, 180, 140), (62, 86, 132), (222, 190, 62), (220, 150, 172), (32, 128, 128), (110, 60, 120),
)


@dataclass(frozen=True)
class Phenotype:
    """Anny's phenotype parameters, each in [0, 1] (0.5 is the neutral body).

    ``gender`` 0 is male and 1 female; ``age`` in :data:`ADULT_AGE_RANGE` gives adults.
    """

    gender: float
    age: float
    muscle: float
    weight: float
    height: float
    proportions: float

    def __post_init__(self) -> None:
        for name in PHENOTYPE_NAMES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")

    def as_dict(self) -> dict[str, float]:
        """Phenotype name -> value, in :data:`gas_core.body.anny_model.PHENOTYPE_NAMES` order."""
        return {name: float(getattr(self, name)) for name in PHENOTYPE_NAMES}


@dataclass(frozen=True)
class SubjectSpec:
    """Everything that defines one synthetic subject.

    Attributes:
        seed: seeds the pose perturbation and the garment thickness variation.
        phenotype: body shape.
        pose_name: one of :data:`gas_core.synth.poses.POSE_NAMES`.
        perturbation_scale: random deviation from the library pose (0 none, 1 full amplitude).
        garments: clothing geometry.
        palette: colours.
    """

    seed: int
    phenotype: Phenotype
    pose_name: str
    perturbation_scale: float
    garments: GarmentSpec
    palette: Palette

    def __post_init__(self) -> None:
        if self.pose_name not in POSE_NAMES:
            raise ValueError(f"pose_name must be one of {', '.join(POSE_NAMES)}; got {self.pose_name!r}")
        if not 0.0 <= self.perturbation_scale <= 3.0:
            raise ValueError(f"perturbation_scale must be in [0, 3], got {self.perturbation_scale}")


@dataclass(frozen=True, eq=False)
class SyntheticSubject:
    """A clothed, textured synthetic human in the world frame (metres, y up, facing +z).

    Attributes:
        vertices: (V, 3) float32 clothed surface (body shell, then the skirt tube if any).
        faces: (F, 3) int64 triangles; the first ``num_body_faces`` are Anny's topology.
        uv: (Vt, 2) float32 texture coordinates (origin bottom-left).
        face_uv_indices: (F, 3) int64 indices into ``uv`` per face corner.
        texture: (H, W, 3) uint8 RGB image painted on ``uv``.
        vertex_colors: (V, 3) uint8 RGB per vertex (same colours as the texture).
        body_vertices: (V_body, 3) float32 unclothed posed body (indexes ``faces[:num_body_faces]``).
        num_body_faces: number of faces belonging to the body shell.
        joints24: (24, 3) float32 SMPL joints (ground truth).
        coco17: (17, 3) float32 COCO keypoints of the unclothed body (ground truth).
        spec: the spec this subject was made from.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    face_uv_indices: np.ndarray
    texture: np.ndarray
    vertex_colors: np.ndarray
    body_vertices: np.ndarray
    num_body_faces: int
    joints24: np.ndarray
    coco17: np.ndarray
    spec: SubjectSpec = field(repr=False)


def _pick(rng: np.random.Generator, options: tuple, jitter: int = 0) -> tuple[int, int, int]:
    colour = np.asarray(options[int(rng.integers(len(options)))], dtype=np.int64)
    if jitter:
        colour = colour + rng.integers(-jitter, jitter + 1, size=3)
    return tuple(int(c) for c in np.clip(colour, 0, 255))


def sample_subject_spec(seed: int) -> SubjectSpec:
    """Draw a varied adult subject from ``seed`` (same seed, same spec).

    Phenotypes are uniform over broad adult ranges; the pose is one of the library's; about a third
    of subjects (more of them female) wear a skirt, which hangs below the hips.

    Raises:
        ValueError: if ``seed`` is negative.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    rng = np.random.default_rng([seed, 0x5EED])
    phenotype = Phenotype(
        gender=float(rng.uniform(0.0, 1.0)),
        age=float(rng.uniform(*ADULT_AGE_RANGE)),
        muscle=float(rng.uniform(0.1, 0.9)),
        weight=float(rng.uniform(0.1, 0.9)),
        height=float(rng.uniform(0.28, 0.62)),  # about 1.55-2.0 m standing
        proportions=float(rng.uniform(0.2, 0.8)),
    )
    skirt_probability = 0.15 + 0.45 * phenotype.gender
    bottom_style: Literal["trousers", "skirt"] = "skirt" if rng.uniform() < skirt_probability else "trousers"
    garments = GarmentSpec(
        sleeve_length=float(rng.choice([0.0, 0.3, 0.55, 0.95])),
        bottom_style=bottom_style,
        bottom_length=float(rng.uniform(0.35, 0.85) if bottom_style == "skirt" else rng.choice([0.35, 0.75, 0.97])),
        top_thickness=float(rng.uniform(0.004, 0.02)),
        bottom_thickness=float(rng.uniform(0.004, 0.018)),
        looseness=float(rng.uniform(0.2, 0.8)),
        skirt_flare=float(rng.uniform(0.05, 0.35)),
        hair_style="long" if rng.uniform() < 0.2 + 0.5 * phenotype.gender else "short",
        hair_thickness=float(rng.uniform(0.004, 0.025)),
        shoe_thickness=float(rng.uniform(0.004, 0.012)),
    )
    top, accent = rng.choice(len(_GARMENT_COLOURS), size=2, replace=False)
    palette = Palette(
        skin=_pick(rng, _SKIN_TONES, jitter=8),
        hair=_pick(rng, _HAIR_COLOURS, jitter=6),
        top=_GARMENT_COLOURS[int(top)],
        top_accent=_GARMENT_COLOURS[int(accent)],
        bottom=_pick(rng, _GARMENT_COLOURS, jitter=10),
        shoes=_pick(rng, _GARMENT_COLOURS, jitter=5),
        top_pattern=str(rng.choice(["plain", "stripes", "checks"])),
        pattern_period=float(rng.uniform(0.03, 0.12)),
    )
    return SubjectSpec(
        seed=int(seed),
        phenotype=phenotype,
        pose_name=str(rng.choice(POSE_NAMES)),
        perturbation_scale=float(rng.uniform(0.3, 1.0)),
        garments=garments,
        palette=palette,
    )


def sample_edge_subject_spec(seed: int, region) -> SubjectSpec:
    """A subject like :func:`sample_subject_spec` (pose, garments, colours from ``seed``) whose body lies
    at an edge of the phenotype space: drawn uniformly from ``region``.

    Args:
        seed: non-negative; the same seed and region give the same spec.
        region: a :class:`gas_core.body.open_model.PhenotypeRegion`, e.g. one of
            :data:`gas_core.body.open_model.EDGE_PHENOTYPE_REGIONS` (children, very short or very tall
            adults, extreme proportions).

    Raises:
        ValueError: if ``seed`` is negative.
    """
    spec = sample_subject_spec(seed)
    low, high = region.bounds()
    rng = np.random.default_rng([seed, 0xED6E])
    values = low + (high - low) * rng.random(len(PHENOTYPE_NAMES))
    phenotype = Phenotype(**{name: float(np.clip(value, 0.0, 1.0)) for name, value in zip(PHENOTYPE_NAMES, values)})
    return dataclasses.replace(spec, phenotype=phenotype)


#: Body kinds of stress sets: phenotype ranges replacing the adult ones of :func:`sample_subject_spec`.
STRESS_BODY_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "heavy": {"weight": (0.9, 1.0), "muscle": (0.2, 0.5)},
    "tall": {"height": (0.85, 0.95)},  # about 2.1-2.2 m
    "short": {"height": (0.03, 0.12)},  # about 1.05-1.25 m adults
    "child": {"age": (0.28, 0.4)},  # about 8-13 years
}


def sample_stress_subject_spec(seed: int, body: str) -> SubjectSpec:
    """A subject like :func:`sample_subject_spec` (pose, garments, colours from ``seed``) with a body of
    kind ``body`` (a key of :data:`STRESS_BODY_RANGES`): the listed phenotype values are drawn uniformly
    from their ranges, the others kept.

    Raises:
        ValueError: if ``seed`` is negative or ``body`` unknown.
    """
    if body not in STRESS_BODY_RANGES:
        raise ValueError(f"body must be one of {', '.join(STRESS_BODY_RANGES)}; got {body!r}")
    spec = sample_subject_spec(seed)
    rng = np.random.default_rng([seed, 0xB0D1])
    values = spec.phenotype.as_dict()
    for name, (low, high) in STRESS_BODY_RANGES[body].items():
        values[name] = float(rng.uniform(low, high))
    return dataclasses.replace(spec, phenotype=Phenotype(**values))


@functools.lru_cache(maxsize=1)
def _model_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, object]:
    """Faces, UVs, face UV indices, per-vertex SMPL part and the COCO regressor of Anny's full model."""
    import anny.keypoints

    model = load_anny()
    faces = model.faces.detach().cpu().numpy().astype(np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        faces = np.asarray(model.get_triangular_faces().cpu().numpy(), dtype=np.int64)
    uv = model.texture_coordinates.detach().cpu().numpy().astype(np.float32)
    face_uv = model.face_texture_coordinate_indices.detach().cpu().numpy().astype(np.int64)
    weights = model.vertex_bone_weights.detach().cpu().numpy()
    indices = model.vertex_bone_indices.detach().cpu().numpy()
    dominant_bone = indices[np.arange(len(indices)), weights.argmax(axis=1)]
    bone_to_joint = np.asarray(anny_bone_to_smpl_joint(model.bone_labels, model.bone_parents))
    regressor = anny.keypoints.KeypointsRegressor.coco(model)
    if tuple(regressor.labels[:17]) != COCO17_NAMES:
        raise ValueError(f"Anny's COCO regressor labels {regressor.labels[:17]} do not match COCO17_NAMES")
    return faces, uv, face_uv, bone_to_joint[dominant_bone], regressor


def _vertex_materials(weights) -> np.ndarray:
    materials = np.full(len(weights.top), int(Material.SKIN), dtype=np.int64)
    for material, coverage in (
        (Material.BOTTOM, weights.bottom),
        (Material.TOP, weights.top),
        (Material.HAIR, weights.hair),
        (Material.SHOES, weights.shoes),
    ):
        materials[coverage > 0.5] = int(material)
    return materials


def _anny_forward(phenotype: Phenotype, bone_angles: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, np.ndarray]:
    """Anny's full model posed once per entry of ``bone_angles`` (Anny's frame, float64).

    Returns ``posed`` (B, V, 3), ``posed_heads`` (B, bones, 3), ``coco`` (B, 17, 3), and the pose-free
    ``rest`` (V, 3) and ``rest_heads`` (bones, 3).
    """
    model = load_anny()
    regressor = _model_tables()[4]
    labels = list(model.bone_labels)
    dtype = model.dtype
    batch = len(bone_angles)
    with torch.no_grad():
        pose = torch.cat([pose_parameters(labels, angles, dtype=dtype) for angles in bone_angles])
        output = model(
            pose_parameters=pose,
            phenotype_kwargs={name: torch.full((batch,), value, dtype=dtype) for name, value in phenotype.as_dict().items()},
        )
        coco = regressor(output)[:, :17].cpu().numpy().astype(np.float64)
    return {
        "posed": output["vertices"].cpu().numpy().astype(np.float64),
        "posed_heads": output["bone_poses"][:, :, :3, 3].cpu().numpy().astype(np.float64),
        "coco": coco,
        "rest": output["rest_vertices"][0].cpu().numpy().astype(np.float64),
        "rest_heads": output["rest_bone_heads"][0].cpu().numpy().astype(np.float64),
    }


@dataclass(frozen=True, eq=False)
class _Outfit:
    """The pose-independent part of a dressed subject: garment coverage, materials and colours."""

    layout: BodyLayout
    weights: object
    materials: np.ndarray
    body_colors: np.ndarray
    index_of: dict[str, int]


def _outfit(spec: SubjectSpec, rest: np.ndarray, rest_heads: np.ndarray) -> _Outfit:
    model = load_anny()
    vertex_part = _model_tables()[3]
    index_of = {label: i for i, label in enumerate(model.bone_labels)}
    layout = BodyLayout(
        rest_vertices=rest,
        vertex_part=vertex_part,
        landmarks={bone: rest_heads[index_of[bone]] for bone in _LANDMARK_BONES},
    )
    weights = garment_weights(layout, spec.garments)
    materials = _vertex_materials(weights)
    return _Outfit(layout, weights, materials, material_colors(materials, rest, spec.palette), index_of)


def _dress(
    spec: SubjectSpec, outfit: _Outfit, rest: np.ndarray, posed: np.ndarray, posed_heads: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clothed surface of one pose in the world frame: ``(vertices, faces, face_uv, colors)``."""
    faces, _, face_uv, _, _ = _model_tables()
    clothed = displace_along_normals(posed, faces, outfit.weights, spec.garments, rest, spec.seed)
    rotation = np.asarray(ANNY_TO_SMPL_ROTATION)
    clothed_world = clothed @ rotation.T
    if spec.garments.bottom_style != "skirt":
        return clothed_world, faces, face_uv, outfit.body_colors
    tube_vertices, tube_faces, tube_face_uv, tube_colors = _skirt(
        spec, outfit.layout, rest, clothed_world, posed_heads @ rotation.T, outfit.index_of, outfit.materials,
        faces, face_uv, outfit.body_colors,
    )
    return (
        np.concatenate([clothed_world, tube_vertices]),
        np.concatenate([faces, tube_faces + len(clothed_world)]),
        np.concatenate([face_uv, tube_face_uv]),
        np.concatenate([outfit.body_colors, tube_colors]),
    )


def _joints24_anny(posed_heads: np.ndarray, index_of: dict[str, int]) -> np.ndarray:
    """(..., 24, 3) SMPL joints as anchor-bone head means, from posed heads (..., bones, 3)."""
    return np.stack([posed_heads[..., [index_of[b] for b in row.anchors], :].mean(axis=-2) for row in ANNY_JOINT_TABLE], axis=-2)


def make_subject(spec: SubjectSpec, texture_size: int = 1024) -> SyntheticSubject:
    """Build the subject ``spec`` describes (deterministic).

    Args:
        spec: the subject.
        texture_size: side of the square texture in pixels (>= 8).

    Returns:
        :class:`SyntheticSubject` in the world frame (see module docstring).

    Raises:
        ValueError: if ``texture_size`` < 8.
    """
    if texture_size < 8:
        raise ValueError(f"texture_size must be at least 8, got {texture_size}")
    faces, uv, face_uv, _, _ = _model_tables()
    angles = perturbed_bone_angles(pose_by_name(spec.pose_name), spec.perturbation_scale, spec.seed)
    anny = _anny_forward(spec.phenotype, [angles])
    rest, posed, posed_heads = anny["rest"], anny["posed"][0], anny["posed_heads"][0]
    outfit = _outfit(spec, rest, anny["rest_heads"])
    texture = paint_texture(faces, uv, face_uv, outfit.materials, rest, spec.palette, size=texture_size)
    all_vertices, all_faces, all_face_uv, all_colors = _dress(spec, outfit, rest, posed, posed_heads)
    rotation = np.asarray(ANNY_TO_SMPL_ROTATION)
    return SyntheticSubject(
        vertices=all_vertices.astype(np.float32),
        faces=all_faces.astype(np.int64),
        uv=uv.copy(),
        face_uv_indices=all_face_uv.astype(np.int64),
        texture=texture,
        vertex_colors=all_colors.astype(np.uint8),
        body_vertices=(posed @ rotation.T).astype(np.float32),
        num_body_faces=len(faces),
        joints24=(_joints24_anny(posed_heads, outfit.index_of) @ rotation.T).astype(np.float32),
        coco17=(anny["coco"][0] @ rotation.T).astype(np.float32),
        spec=spec,
    )


@dataclass(frozen=True, eq=False)
class PosedSequence:
    """A subject's clothed surface in a sequence of poses, world frame (metres, y up, facing +z).

    Every frame shares :class:`SyntheticSubject`'s faces, UVs and texture (same vertex order).

    Attributes:
        vertices: (T, V, 3) float32 clothed surface (body shell, then the skirt tube if any).
        body_vertices: (T, V_body, 3) float32 unclothed posed body.
        joints24: (T, 24, 3) float32 SMPL joints (anchor-bone head means, ground truth).
        coco17: (T, 17, 3) float32 COCO keypoints of the unclothed body (ground truth).
    """

    vertices: np.ndarray
    body_vertices: np.ndarray
    joints24: np.ndarray
    coco17: np.ndarray


def pose_subject(
    spec: SubjectSpec, bone_angles: Sequence[Mapping[str, Sequence[float]]], *, batch_size: int = 8
) -> PosedSequence:
    """Pose and dress the subject ``spec`` in each of ``bone_angles`` (same garments as :func:`make_subject`).

    Args:
        spec: the subject (its ``pose_name`` is not used: the poses come from ``bone_angles``).
        bone_angles: T >= 1 poses, each Anny bone name -> Euler degrees (see :mod:`gas_core.synth.poses`).
        batch_size: poses per Anny forward pass (>= 1); bounds memory.

    Returns:
        :class:`PosedSequence` with T frames.

    Raises:
        ValueError: if ``bone_angles`` is empty, ``batch_size`` < 1 or a bone name is unknown.
    """
    if len(bone_angles) == 0:
        raise ValueError("bone_angles must hold at least one pose")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rotation = np.asarray(ANNY_TO_SMPL_ROTATION)
    outfit = None
    vertices, bodies, joints, coco = [], [], [], []
    for start in range(0, len(bone_angles), batch_size):
        anny = _anny_forward(spec.phenotype, list(bone_angles[start:start + batch_size]))
        if outfit is None:
            outfit = _outfit(spec, anny["rest"], anny["rest_heads"])
        for posed, heads in zip(anny["posed"], anny["posed_heads"]):
            vertices.append(_dress(spec, outfit, anny["rest"], posed, heads)[0].astype(np.float32))
        bodies.append((anny["posed"] @ rotation.T).astype(np.float32))
        joints.append((_joints24_anny(anny["posed_heads"], outfit.index_of) @ rotation.T).astype(np.float32))
        coco.append((anny["coco"] @ rotation.T).astype(np.float32))
    return PosedSequence(
        vertices=np.stack(vertices),
        body_vertices=np.concatenate(bodies),
        joints24=np.concatenate(joints),
        coco17=np.concatenate(coco),
    )


def _skirt(
    spec: SubjectSpec,
    layout: BodyLayout,
    rest: np.ndarray,
    clothed_world: np.ndarray,
    posed_heads_world: np.ndarray,
    index_of: dict[str, int],
    materials: np.ndarray,
    faces: np.ndarray,
    face_uv: np.ndarray,
    body_colors: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Skirt tube (world frame) with a flat colour per face taken from the nearest bottom-garment vertex."""
    marks = layout.landmarks
    hip_rest_z = 0.5 * float(marks["upperleg01.L"][2] + marks["upperleg01.R"][2])
    leg_length = hip_rest_z - 0.5 * float(marks["foot.L"][2] + marks["foot.R"][2])
    hem_rest_z = hip_rest_z - spec.garments.bottom_length * leg_length
    lower_body = np.isin(layout.vertex_part, (0, 1, 2, 4, 5))
    covered = lower_body & (rest[:, 2] >= hem_rest_z - 0.03) & (rest[:, 2] <= float(marks["spine03"][2]))
    hips_world = 0.5 * (posed_heads_world[index_of["upperleg01.L"]] + posed_heads_world[index_of["upperleg01.R"]])
    top_height = float(posed_heads_world[index_of["spine03"]][1]) - 0.03
    hem_height = float(hips_world[1]) - spec.garments.bottom_length * leg_length
    tube_vertices, tube_faces = skirt_tube(
        clothed_world,
        covered,
        top_height=top_height,
        hem_height=min(hem_height, top_height - 0.1),
        centre=posed_heads_world[index_of["root"]],
        flare=spec.garments.skirt_flare,
        clearance=spec.garments.bottom_thickness + 0.01,
    )
    garment = np.flatnonzero(materials == int(Material.BOTTOM))
    if len(garment) == 0:
        garment = np.flatnonzero(lower_body)
    tree = cKDTree(clothed_world[garment])
    _, nearest_vertex = tree.query(tube_vertices)
    tube_colors = body_colors[garment[nearest_vertex]]
    uv_of_vertex = np.zeros(len(clothed_world), dtype=np.int64)
    uv_of_vertex[faces.ravel()] = face_uv.ravel()
    _, nearest_to_face = tree.query(tube_vertices[tube_faces].mean(axis=1))
    tube_face_uv = np.repeat(uv_of_vertex[garment[nearest_to_face]][:, None], 3, axis=1)
    return tube_vertices, tube_faces, tube_face_uv, tube_colors
