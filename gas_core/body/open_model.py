"""The open body model: an SMPL-format model file built from Anny, loadable by ``smplx`` unchanged.

The licensed SMPL files cannot be shipped, so the project's default body model is derived from Anny
(MakeHuman's CC0 assets, Apache-2.0 code) and written as ``SMPL_NEUTRAL.pkl``. It keeps SMPL's
conventions and parameter shapes and is labelled :data:`OPEN_BODY_MODEL_LABEL` everywhere.

How each part of the file is made
---------------------------------
* **Frame and rest pose.** SMPL's frame (metres, y up, facing +z, +x the body's left):
  ``p = ANNY_TO_SMPL_ROTATION @ p_anny + translation``. The rest pose is a **T-pose**: Anny's rest is an
  A-pose (arms about 45 degrees down, forearms pointing forward), so :func:`anny_t_pose_parameters`
  computes, per phenotype, the Anny pose parameters that swing the upper arms, forearms and hands
  straight out along +-x with the smallest rotations (no twist); the legs are left as they are.
  ``translation`` puts the neutral body's pelvis joint at the origin (Anny's posed root already sits
  at the origin, so it is zero up to rounding; it is stored anyway).
* **Template** ``v_template`` (V, 3): the T-posed neutral Anny mesh (every phenotype value 0.5; Anny's
  age 0.5 is about 18 years, see :data:`ADULT_PHENOTYPE_RANGES`).
* **Skinning** ``weights`` (V, 24): Anny's per-bone vertex weights summed onto SMPL's 24 joints through
  :func:`gas_core.body.joints.anny_bone_to_smpl_joint`; rows sum to 1.
* **Shape** ``shapedirs`` (V, 3, 10): principal directions of T-posed Anny bodies sampled over the
  phenotype space, taken about the template (not about the sample mean), each scaled by the RMS of
  its coefficient so that the sampled bodies have betas of unit second moment (betas ~ N(0, 1)). The
  samples are adults over the whole of Anny's ranges (:data:`ADULT_PHENOTYPE_RANGES`) plus **edge
  bodies** (:data:`EDGE_PHENOTYPE_REGIONS`: children, very short and very tall adults, extreme
  proportions), so the shape space and the joints follow leg and trunk proportions there too.
* **Joint regressor** ``J_regressor`` (24, V): for each SMPL joint, vertex weights summing to 1 over the
  vertices nearest to the joint (among those skinned to it, its parent or children), fitted by
  Tikhonov-regularised least squares across the sampled bodies so that the regressed joint follows
  Anny's joint (the mean of the joint's ``anchors`` bone heads in
  :data:`gas_core.body.joints.ANNY_JOINT_TABLE`) as the shape changes. The weights are signed: Anny's
  knee bone slides along the leg relative to the skin as stature and proportions change (by up to
  5 cm at the edges of the phenotype space), which no convex combination of nearby vertices follows,
  while a signed one does (errors of a few millimetres). Rows stay affine (sum 1), so joints follow
  any rigid motion and scale of the mesh.
* **Pose correctives** ``posedirs`` (V, 3, 207): **all zeros**. The model is plain linear blend
  skinning; Anny has no pose-dependent blend shapes to carry over.
* ``kintree_table`` (2, 24): SMPL's tree (:data:`gas_core.body.joints.SMPL_PARENTS`).

Extra keys, ignored by ``smplx``: ``vt`` (T, 2) and ``ft`` (F, 3) texture coordinates and per-face
texture indices, ``open_model_label``, ``anny_version``, ``anny_to_smpl_rotation`` (3, 3),
``anny_to_smpl_translation`` (3,), ``template_phenotype`` (6,) and ``phenotype_names``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import scipy.linalg
from tqdm import tqdm

from gas_core.body.anny_model import ANNY_TO_SMPL_ROTATION, PHENOTYPE_NAMES, load_anny
from gas_core.body.joints import (
    ANNY_JOINT_TABLE,
    NUM_SMPL_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    anny_bone_to_smpl_joint,
)
from gas_core.fileio import atomic_write_bytes
from gas_core.settings import default_body_model_dir

__all__ = [
    "OPEN_BODY_MODEL_LABEL",
    "OPEN_MODEL_FORMAT_VERSION",
    "SMPL_MODEL_FILENAME",
    "METADATA_FILENAME",
    "NUM_SHAPE_COMPONENTS",
    "NUM_POSE_BLEND_FEATURES",
    "TEMPLATE_PHENOTYPE",
    "ADULT_PHENOTYPE_RANGES",
    "PhenotypeRegion",
    "EDGE_PHENOTYPE_REGIONS",
    "sample_edge_phenotypes",
    "TPosedAnny",
    "anny_t_pose_parameters",
    "t_posed_anny",
    "smpl_joint_anchor_matrix",
    "smpl_skinning_weights",
    "sample_adult_phenotypes",
    "fit_joint_regressor",
    "build_open_body_model",
    "ensure_open_body_model",
]

logger = logging.getLogger(__name__)

#: Label carried by the open model wherever it is used (file, metadata, :class:`BodyModel.label`).
OPEN_BODY_MODEL_LABEL = "open body model (Anny-derived), not SMPL"

#: Bumped whenever the builder changes what it writes; :func:`ensure_open_body_model` rebuilds older files.
OPEN_MODEL_FORMAT_VERSION = 2  # 2: edge bodies in the shape space, signed joint regressor

SMPL_MODEL_FILENAME = "SMPL_NEUTRAL.pkl"
METADATA_FILENAME = "open_body_model.json"
NUM_SHAPE_COMPONENTS = 10
#: SMPL's pose-corrective feature count: 23 joints x 9 rotation-matrix entries.
NUM_POSE_BLEND_FEATURES = 207

#: Phenotype of the template (zero betas), in :data:`PHENOTYPE_NAMES` order: Anny's neutral body.
TEMPLATE_PHENOTYPE: tuple[float, ...] = (0.5,) * len(PHENOTYPE_NAMES)

#: Ranges adult bodies of the shape space are sampled from (uniformly). Anny's age interpolates
#: between anchors at -1/3 (newborn), 0 (baby, ~1 year), 1/3 (child, ~11 years), 2/3 (young adult,
#: ~25 years) and 1 (old, ~90 years), so 0.5 is about 18 years: adults are age in [0.5, 1]. Every
#: other phenotype covers Anny's whole range (height 0 to 1 is about 1.0 to 2.3 m).
ADULT_PHENOTYPE_RANGES: dict[str, tuple[float, float]] = {
    "gender": (0.0, 1.0),
    "age": (0.5, 1.0),
    "muscle": (0.0, 1.0),
    "weight": (0.0, 1.0),
    "height": (0.0, 1.0),
    "proportions": (0.0, 1.0),
}


@dataclasses.dataclass(frozen=True)
class PhenotypeRegion:
    """A corner of the phenotype space: :data:`ADULT_PHENOTYPE_RANGES` with some ranges replaced.

    Attributes:
        name: what the bodies there are (for reports).
        ranges: phenotype name -> (low, high) replacing the adult range.
    """

    name: str
    ranges: tuple[tuple[str, tuple[float, float]], ...]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low (6,), high (6,)) in :data:`PHENOTYPE_NAMES` order."""
        ranges = dict(ADULT_PHENOTYPE_RANGES, **dict(self.ranges))
        return (np.array([ranges[name][0] for name in PHENOTYPE_NAMES]),
                np.array([ranges[name][1] for name in PHENOTYPE_NAMES]))


#: Edge bodies, built into the shape space and the joint regressor and tested on: children (age 0.2
#: to 0.45 is about 7 to 16 years), the shortest and tallest adults, and both ends of Anny's
#: proportions (leg and trunk lengths relative to stature).
EDGE_PHENOTYPE_REGIONS: tuple[PhenotypeRegion, ...] = (
    PhenotypeRegion("child", (("age", (0.2, 0.45)),)),
    PhenotypeRegion("very short adult", (("height", (0.0, 0.08)),)),
    PhenotypeRegion("very tall adult", (("height", (0.92, 1.0)),)),
    PhenotypeRegion("proportions near 0", (("proportions", (0.0, 0.08)),)),
    PhenotypeRegion("proportions near 1", (("proportions", (0.92, 1.0)),)),
)

#: Fraction of the shape-space samples that are edge bodies.
_EDGE_FRACTION = 0.35

# Anny bones swung into the T-pose, per side: (bone to rotate, bones whose mean head is the segment's
# far end). The segment starts at the rotated bone's head.
_T_POSE_SEGMENTS = (
    ("upperarm01", ("lowerarm01",)),
    ("lowerarm01", ("wrist",)),
    ("wrist", ("finger2-1", "finger3-1", "finger4-1", "finger5-1")),
)
_SIDE_DIRECTIONS_ANNY = {"L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0)}  # Anny's +x is the body's left
_ANNY_BATCH = 32
_REGRESSOR_CANDIDATES = 1024
_REGRESSOR_RIDGE = 0.03
_HELD_OUT_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class TPosedAnny:
    """T-posed Anny bodies in SMPL's frame (already translated).

    Attributes:
        vertices: (B, V, 3) metres.
        joints: (B, 24, 3) metres, SMPL joints as anchor-bone head means.
        phenotypes: (B, 6) the phenotype values used, in :data:`PHENOTYPE_NAMES` order.
    """

    vertices: np.ndarray
    joints: np.ndarray
    phenotypes: np.ndarray


def _rotation_between(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smallest rotation (..., 3, 3) turning directions ``source`` (..., 3) onto ``target`` (..., 3)."""
    a = source / source.norm(dim=-1, keepdim=True)
    b = target / target.norm(dim=-1, keepdim=True)
    axis = torch.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1)
    cos = (a * b).sum(-1)
    if bool((cos < -0.999).any()):
        raise ValueError("source and target directions are opposite; the smallest rotation is ambiguous")
    angle = torch.atan2(sin, cos)
    unit = axis / sin.clamp_min(1e-12)[..., None]
    zero = torch.zeros_like(angle)
    skew = torch.stack(
        [zero, -unit[..., 2], unit[..., 1], unit[..., 2], zero, -unit[..., 0], -unit[..., 1], unit[..., 0], zero],
        dim=-1,
    ).reshape(*angle.shape, 3, 3)
    eye = torch.eye(3, dtype=source.dtype, device=source.device).expand_as(skew)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return eye + s * skew + (1.0 - c) * skew @ skew


def _phenotype_tensor(model, phenotypes: np.ndarray | torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(np.asarray(phenotypes), dtype=model.dtype)
    if values.ndim != 2 or values.shape[1] != len(PHENOTYPE_NAMES):
        raise ValueError(f"phenotypes must have shape (B, {len(PHENOTYPE_NAMES)}), got {tuple(values.shape)}")
    if list(model.phenotype_labels) != list(PHENOTYPE_NAMES):
        raise ValueError(f"Anny's phenotype labels {model.phenotype_labels} differ from {PHENOTYPE_NAMES}")
    return values


@torch.no_grad()
def anny_t_pose_parameters(model, phenotypes: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Anny pose parameters ("local-ref", (B, bones, 4, 4)) that put each body in SMPL's T-pose.

    In "local-ref", a bone's delta rotation ``D_c`` acts in world-aligned axes after its parent's
    accumulated delta ``G_p``: ``G_c = G_p D_c``. For each arm segment (upper arm, forearm, hand) the
    smallest rotation taking the segment, as already moved by its parents, onto +-x is composed on, so
    the arms end straight out sideways without twist. Everything else keeps the identity delta.

    Args:
        model: an ``anny.Anny`` model (:func:`gas_core.body.anny_model.load_anny`).
        phenotypes: (B, 6) values in :data:`PHENOTYPE_NAMES` order.

    Returns:
        (B, bones, 4, 4) pose parameters in the model's dtype.
    """
    values = _phenotype_tensor(model, phenotypes)
    batch = values.shape[0]
    labels = list(model.bone_labels)
    parents = [int(p) for p in model.bone_parents]
    identity = torch.eye(4, dtype=model.dtype).expand(batch, len(labels), 4, 4).clone()
    reference = model(pose_parameters=identity, phenotype_kwargs=values)["bone_poses"]
    heads = reference[..., :3, 3]
    deltas = identity.clone()
    accumulated: dict[int, torch.Tensor] = {}

    def accumulated_rotation(bone: int) -> torch.Tensor:
        """G_bone = G_parent D_bone, (B, 3, 3)."""
        if bone < 0:
            return torch.eye(3, dtype=model.dtype).expand(batch, 3, 3)
        if bone not in accumulated:
            accumulated[bone] = accumulated_rotation(parents[bone]) @ deltas[:, bone, :3, :3]
        return accumulated[bone]

    for side, direction in _SIDE_DIRECTIONS_ANNY.items():
        target = torch.tensor(direction, dtype=model.dtype).expand(batch, 3)
        for bone_name, end_names in _T_POSE_SEGMENTS:
            bone = labels.index(f"{bone_name}.{side}")
            end = torch.stack([heads[:, labels.index(f"{name}.{side}")] for name in end_names]).mean(0)
            parent_rotation = accumulated_rotation(parents[bone])
            current = (parent_rotation @ (end - heads[:, bone])[..., None])[..., 0]
            correction = _rotation_between(current, target)
            deltas[:, bone, :3, :3] = parent_rotation.transpose(-1, -2) @ correction @ parent_rotation
            accumulated.clear()
    return deltas


def smpl_joint_anchor_matrix(bone_labels: list[str]) -> np.ndarray:
    """(24, bones) matrix averaging each SMPL joint's anchor-bone heads (rows sum to 1)."""
    index_of = {label: i for i, label in enumerate(bone_labels)}
    matrix = np.zeros((NUM_SMPL_JOINTS, len(bone_labels)))
    for joint, row in enumerate(ANNY_JOINT_TABLE):
        for bone in row.anchors:
            if bone not in index_of:
                raise ValueError(f"anchor bone {bone!r} of SMPL joint {row.smpl_joint!r} is not in bone_labels")
            matrix[joint, index_of[bone]] = 1.0 / len(row.anchors)
    return matrix


def smpl_skinning_weights(model) -> np.ndarray:
    """Anny's per-bone vertex weights summed onto SMPL's 24 joints, (V, 24) float64, rows summing to 1."""
    owner = np.asarray(anny_bone_to_smpl_joint(list(model.bone_labels), [int(p) for p in model.bone_parents]))
    bone_indices = model.vertex_bone_indices.cpu().numpy().astype(np.int64)
    bone_weights = model.vertex_bone_weights.cpu().numpy().astype(np.float64)
    weights = np.zeros((bone_indices.shape[0], NUM_SMPL_JOINTS))
    rows = np.repeat(np.arange(bone_indices.shape[0]), bone_indices.shape[1])
    np.add.at(weights, (rows, owner[bone_indices.ravel()]), bone_weights.ravel())
    totals = weights.sum(1, keepdims=True)
    if np.any(totals <= 0):
        raise ValueError(f"{int((totals <= 0).sum())} Anny vertices have no skinning weight")
    return weights / totals


@torch.no_grad()
def t_posed_anny(
    model,
    phenotypes: np.ndarray,
    translation: np.ndarray | None = None,
    *,
    show_progress: bool = False,
) -> TPosedAnny:
    """Run Anny in the T-pose for each phenotype and move the result into SMPL's frame.

    Args:
        model: an ``anny.Anny`` model.
        phenotypes: (B, 6) phenotype values in :data:`PHENOTYPE_NAMES` order.
        translation: (3,) metres added after rotating into SMPL's frame (default zero).
        show_progress: show a tqdm bar over batches.

    Returns:
        :class:`TPosedAnny` with float64 arrays.
    """
    phenotypes = np.asarray(phenotypes, dtype=np.float64)
    _phenotype_tensor(model, phenotypes)
    offset = np.zeros(3) if translation is None else np.asarray(translation, dtype=np.float64).reshape(3)
    anchors = smpl_joint_anchor_matrix(list(model.bone_labels))
    vertices, joints = [], []
    starts = range(0, len(phenotypes), _ANNY_BATCH)
    for start in tqdm(starts, desc="T-posed Anny bodies", disable=not show_progress):
        chunk = torch.as_tensor(phenotypes[start:start + _ANNY_BATCH], dtype=model.dtype)
        output = model(pose_parameters=anny_t_pose_parameters(model, chunk), phenotype_kwargs=chunk)
        chunk_vertices = output["vertices"].double().numpy()
        chunk_heads = output["bone_poses"][..., :3, 3].double().numpy()
        vertices.append(chunk_vertices @ ANNY_TO_SMPL_ROTATION.T + offset)
        joints.append(np.einsum("jb,nbc->njc", anchors, chunk_heads) @ ANNY_TO_SMPL_ROTATION.T + offset)
    return TPosedAnny(vertices=np.concatenate(vertices), joints=np.concatenate(joints), phenotypes=phenotypes)


def sample_adult_phenotypes(count: int, generator: np.random.Generator) -> np.ndarray:
    """(count, 6) phenotypes drawn uniformly from :data:`ADULT_PHENOTYPE_RANGES`."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    low = np.array([ADULT_PHENOTYPE_RANGES[name][0] for name in PHENOTYPE_NAMES])
    high = np.array([ADULT_PHENOTYPE_RANGES[name][1] for name in PHENOTYPE_NAMES])
    return low + (high - low) * generator.random((count, len(PHENOTYPE_NAMES)))


def sample_edge_phenotypes(count: int, generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` edge bodies cycling through :data:`EDGE_PHENOTYPE_REGIONS`, each uniform in its region.

    Returns:
        (phenotypes (count, 6) in :data:`PHENOTYPE_NAMES` order, region index (count,) into
        :data:`EDGE_PHENOTYPE_REGIONS`).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    regions = np.arange(count) % len(EDGE_PHENOTYPE_REGIONS)
    phenotypes = np.empty((count, len(PHENOTYPE_NAMES)))
    for index, region in enumerate(EDGE_PHENOTYPE_REGIONS):
        rows = np.flatnonzero(regions == index)
        low, high = region.bounds()
        phenotypes[rows] = low + (high - low) * generator.random((len(rows), len(PHENOTYPE_NAMES)))
    return phenotypes, regions


def fit_joint_regressor(
    vertices: np.ndarray,
    joints: np.ndarray,
    template_vertices: np.ndarray,
    template_joints: np.ndarray,
    skinning_weights: np.ndarray,
    parents: tuple[int, ...] = SMPL_PARENTS,
    *,
    num_candidates: int = _REGRESSOR_CANDIDATES,
    template_weight: float = 10.0,
    sum_weight: float = 100.0,
    ridge: float = _REGRESSOR_RIDGE,
) -> np.ndarray:
    """Joint regressor fitted across many bodies of one mesh topology (signed, local, affine weights).

    For joint j the candidates are the ``num_candidates`` template vertices nearest to the template
    joint among those skinned to j, its parent or its children (so the neighbourhood surrounds the
    joint instead of lying on the nearest skin only). The weights w minimise
    ``sum_n |V_n[cand]^T w - J_nj|^2`` plus the template body (weighted ``template_weight``) plus
    ``sum_weight^2 * (sum w - 1)^2`` plus ``ridge^2 * |w|^2`` (Tikhonov: keeps the weights small, so
    vertex deviations outside the sampled shapes are not amplified), then are renormalised to sum
    exactly to 1.

    Args:
        vertices: (N, V, 3) training bodies, metres.
        joints: (N, J, 3) their target joints.
        template_vertices: (V, 3) the template body.
        template_joints: (J, 3) its joints.
        skinning_weights: (V, J) skinning weights of the topology.
        parents: parent joint of each joint (-1 for the root).

    Returns:
        (J, V) float64 regressor, rows summing to 1, non-zero only on each joint's candidates.
    """
    if vertices.ndim != 3 or joints.ndim != 3 or vertices.shape[0] != joints.shape[0]:
        raise ValueError(f"vertices (N,V,3) and joints (N,J,3) must agree, got {vertices.shape}, {joints.shape}")
    num_joints, num_vertices = joints.shape[1], vertices.shape[1]
    if skinning_weights.shape != (num_vertices, num_joints) or len(parents) != num_joints:
        raise ValueError(
            f"skinning_weights must be ({num_vertices}, {num_joints}) and parents of length {num_joints}, "
            f"got {skinning_weights.shape} and {len(parents)}"
        )
    if num_candidates < 1 or not ridge > 0:
        raise ValueError(f"num_candidates must be >= 1 and ridge > 0, got {num_candidates} and {ridge}")
    regressor = np.zeros((num_joints, num_vertices))
    for joint in range(num_joints):
        family = [joint] + [p for p in (parents[joint],) if p >= 0] + [c for c, p in enumerate(parents) if p == joint]
        pool = np.nonzero(skinning_weights[:, family].sum(1) > 0)[0]
        distances = np.linalg.norm(template_vertices[pool] - template_joints[joint], axis=1)
        candidates = pool[np.argsort(distances)[:num_candidates]]
        # Rows: x, y, z of every training body, then the template (weighted), then the sum constraint.
        design = np.concatenate(
            [
                vertices[:, candidates, :].transpose(0, 2, 1).reshape(-1, len(candidates)),
                template_weight * template_vertices[candidates].T,
                sum_weight * np.ones((1, len(candidates))),
            ]
        )
        target = np.concatenate(
            [joints[:, joint, :].reshape(-1), template_weight * template_joints[joint], [sum_weight]]
        )
        # Ridge solution; through the smaller of the two Gram matrices (the same w either way).
        if design.shape[0] < design.shape[1]:
            gram = design @ design.T + ridge**2 * np.eye(design.shape[0])
            weights = design.T @ scipy.linalg.solve(gram, target, assume_a="pos")
        else:
            gram = design.T @ design + ridge**2 * np.eye(design.shape[1])
            weights = scipy.linalg.solve(gram, design.T @ target, assume_a="pos")
        if not abs(weights.sum()) > 1e-6:
            raise ValueError(f"joint regressor fit for joint {joint} found no weights")
        regressor[joint, candidates] = weights / weights.sum()
    return regressor


def build_open_body_model(out_dir: Path, *, num_shape_samples: int = 320, seed: int = 0) -> Path:
    """Build the open body model and write ``SMPL_NEUTRAL.pkl`` + ``open_body_model.json`` into ``out_dir``.

    ``num_shape_samples`` phenotypes are drawn with ``seed``: a share :data:`_EDGE_FRACTION` of edge
    bodies (:func:`sample_edge_phenotypes`) and adults (:data:`ADULT_PHENOTYPE_RANGES`) for the rest.
    :data:`_HELD_OUT_FRACTION` of each (at least one) are held out and only used to measure the shape
    space's reconstruction error and the joint regressor's error, overall and per edge region (in the
    metadata file). Both files are written atomically. Takes about 10-40 s on two CPU cores once Anny
    is cached (most of it running Anny on the samples).

    Returns:
        ``out_dir``.
    """
    if num_shape_samples < 24:
        raise ValueError(f"num_shape_samples must be >= 24 (10 shape directions, edge bodies and held-out "
                         f"bodies), got {num_shape_samples}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    model = load_anny()
    generator = np.random.default_rng(seed)
    num_edge = max(len(EDGE_PHENOTYPE_REGIONS), int(round(_EDGE_FRACTION * num_shape_samples)))
    edge_samples, edge_regions = sample_edge_phenotypes(num_edge, generator)
    adult_samples = sample_adult_phenotypes(num_shape_samples - num_edge, generator)
    # Held-out bodies: the last _HELD_OUT_FRACTION of each group (both groups are in random order).
    held_edge = max(1, int(round(_HELD_OUT_FRACTION * num_edge)))
    held_adult = max(1, int(round(_HELD_OUT_FRACTION * len(adult_samples))))
    samples = np.concatenate([adult_samples[:-held_adult], edge_samples[:-held_edge],
                              adult_samples[-held_adult:], edge_samples[-held_edge:]])
    held_regions = np.concatenate([np.full(held_adult, -1), edge_regions[-held_edge:]])
    num_held_out = held_adult + held_edge
    num_train = num_shape_samples - num_held_out

    template_phenotype = np.asarray(TEMPLATE_PHENOTYPE)[None]
    neutral = t_posed_anny(model, template_phenotype)
    translation = -neutral.joints[0, 0]  # pelvis to the origin
    template_vertices = neutral.vertices[0] + translation
    template_joints = neutral.joints[0] + translation
    bodies = t_posed_anny(model, samples, translation, show_progress=True)
    train_vertices, held_vertices = bodies.vertices[:num_train], bodies.vertices[num_train:]
    train_joints, held_joints = bodies.joints[:num_train], bodies.joints[num_train:]

    # Shape space: principal directions of the offsets from the template.
    offsets = (train_vertices - template_vertices).reshape(num_train, -1)
    _, singular_values, directions = np.linalg.svd(offsets, full_matrices=False)
    scales = singular_values[:NUM_SHAPE_COMPONENTS] / np.sqrt(num_train)
    basis = directions[:NUM_SHAPE_COMPONENTS]  # (10, V*3), orthonormal rows
    shapedirs = (basis * scales[:, None]).T.reshape(-1, 3, NUM_SHAPE_COMPONENTS)
    explained = singular_values[:NUM_SHAPE_COMPONENTS] ** 2 / np.sum(singular_values**2)
    held_offsets = (held_vertices - template_vertices).reshape(num_held_out, -1)
    reconstructed = (held_offsets @ basis.T) @ basis
    pca_errors = np.linalg.norm((held_offsets - reconstructed).reshape(num_held_out, -1, 3), axis=-1)

    weights = smpl_skinning_weights(model)
    regressor = fit_joint_regressor(train_vertices, train_joints, template_vertices, template_joints, weights)
    held_regressed = np.einsum("jv,nvc->njc", regressor, held_vertices)
    joint_errors = np.linalg.norm(held_regressed - held_joints, axis=-1)
    template_joint_error = np.linalg.norm(regressor @ template_vertices - template_joints, axis=-1)
    # The same on held-out bodies as the fitter can express them: projected onto the 10 directions.
    held_projected = template_vertices + reconstructed.reshape(num_held_out, -1, 3)
    projected_errors = np.linalg.norm(np.einsum("jv,nvc->njc", regressor, held_projected) - held_joints, axis=-1)
    per_region = {}
    for index, region in [(-1, None), *enumerate(EDGE_PHENOTYPE_REGIONS)]:
        rows = held_regions == index
        if not rows.any():
            continue
        per_region["adult" if region is None else region.name] = {
            "bodies": int(rows.sum()),
            "shape_mean_vertex_error_mm": float(1000 * pca_errors[rows].mean()),
            "joint_mean_error_mm": float(1000 * joint_errors[rows].mean()),
            "worst_joint": SMPL_JOINT_NAMES[int(joint_errors[rows].mean(0).argmax())],
            "worst_joint_mean_error_mm": float(1000 * joint_errors[rows].mean(0).max()),
            "in_shape_space_worst_joint_mean_error_mm": float(1000 * projected_errors[rows].mean(0).max()),
            "betas_abs_max": float(np.abs(held_offsets[rows] @ basis.T / scales).max()),
        }

    faces = model.faces.cpu().numpy().astype(np.int64)
    num_vertices = template_vertices.shape[0]
    parents = np.asarray(SMPL_PARENTS, dtype=np.int64)
    contents = {
        "v_template": template_vertices,
        "f": faces,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((num_vertices, 3, NUM_POSE_BLEND_FEATURES), dtype=np.float32),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.stack([parents, np.arange(NUM_SMPL_JOINTS, dtype=np.int64)]),
        "vt": model.texture_coordinates.cpu().numpy().astype(np.float64),
        "ft": model.face_texture_coordinate_indices.cpu().numpy().astype(np.int64),
        "open_model_label": OPEN_BODY_MODEL_LABEL,
        "open_model_format_version": OPEN_MODEL_FORMAT_VERSION,
        "anny_version": importlib.metadata.version("anny"),
        "anny_to_smpl_rotation": np.asarray(ANNY_TO_SMPL_ROTATION, dtype=np.float64),
        "anny_to_smpl_translation": translation,
        "template_phenotype": np.asarray(TEMPLATE_PHENOTYPE),
        "phenotype_names": list(PHENOTYPE_NAMES),
    }
    pkl_path = out_dir / SMPL_MODEL_FILENAME
    atomic_write_bytes(pkl_path, pickle.dumps(contents, protocol=pickle.HIGHEST_PROTOCOL))
    build_seconds = time.perf_counter() - start
    metadata = {
        "label": OPEN_BODY_MODEL_LABEL,
        "format_version": OPEN_MODEL_FORMAT_VERSION,
        "anny_version": contents["anny_version"],
        "num_vertices": int(num_vertices),
        "num_faces": int(faces.shape[0]),
        "num_shape_samples": int(num_shape_samples),
        "num_held_out": int(num_held_out),
        "seed": int(seed),
        "template_phenotype": dict(zip(PHENOTYPE_NAMES, TEMPLATE_PHENOTYPE)),
        "phenotype_ranges": {name: list(ADULT_PHENOTYPE_RANGES[name]) for name in PHENOTYPE_NAMES},
        "edge_regions": {region.name: {name: list(bounds) for name, bounds in region.ranges}
                         for region in EDGE_PHENOTYPE_REGIONS},
        "num_edge_samples": int(num_edge),
        "anny_to_smpl_rotation": ANNY_TO_SMPL_ROTATION.tolist(),
        "anny_to_smpl_translation": translation.tolist(),
        "shape_explained_variance": explained.tolist(),
        "shape_explained_variance_total": float(explained.sum()),
        "shape_held_out_mean_vertex_error_mm": float(1000 * pca_errors.mean()),
        "shape_held_out_max_vertex_error_mm": float(1000 * pca_errors.max()),
        "joint_regressor_held_out_mean_error_mm": float(1000 * joint_errors.mean()),
        "joint_regressor_held_out_max_error_mm": float(1000 * joint_errors.max()),
        "joint_regressor_held_out_mean_error_mm_per_joint": {
            name: float(1000 * error) for name, error in zip(SMPL_JOINT_NAMES, joint_errors.mean(0))
        },
        "joint_regressor_template_max_error_mm": float(1000 * template_joint_error.max()),
        "joint_regressor_nonzeros_per_joint": [int(n) for n in (regressor != 0).sum(1)],
        "joint_regressor_abs_weight_sum_max": float(np.abs(regressor).sum(1).max()),
        "held_out_by_region": per_region,
        "build_seconds": float(build_seconds),
    }
    atomic_write_bytes(out_dir / METADATA_FILENAME, json.dumps(metadata, indent=2).encode())
    logger.info(
        "open body model written to %s in %.1f s: shape space explains %.4f of the variance, "
        "held-out joint regressor error %.2f mm mean / %.2f mm max",
        pkl_path, build_seconds, explained.sum(), metadata["joint_regressor_held_out_mean_error_mm"],
        metadata["joint_regressor_held_out_max_error_mm"],
    )
    return out_dir


def _is_current(folder: Path) -> bool:
    metadata_path = folder / METADATA_FILENAME
    if not (folder / SMPL_MODEL_FILENAME).is_file() or not metadata_path.is_file():
        return False
    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return metadata.get("format_version") == OPEN_MODEL_FORMAT_VERSION and metadata.get("label") == OPEN_BODY_MODEL_LABEL


def ensure_open_body_model(out_dir: Path | None = None) -> Path:
    """Folder holding the open body model, building it first when it is missing or out of date.

    Args:
        out_dir: target folder; default :func:`gas_core.settings.default_body_model_dir`.

    Returns:
        The folder (it holds ``SMPL_NEUTRAL.pkl`` and ``open_body_model.json``).
    """
    folder = Path(out_dir) if out_dir is not None else default_body_model_dir()
    if not _is_current(folder):
        logger.info("building the open body model into %s", folder)
        build_open_body_model(folder)
    return folder
