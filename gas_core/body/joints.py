"""SMPL's 24-joint skeleton and its mapping onto Anny's 104-bone rig.

This module is the single place where the correspondence between the two skeletons is declared.
It is used to build the open body model (skinning weights, joint regressor targets) and to compute
the ground-truth SMPL joints of synthetic subjects made with Anny's full model.

Mapping rule (one table, :data:`ANNY_JOINT_TABLE`):

* each SMPL joint's **location** is the mean of the heads of its ``anchors`` (Anny bones);
* each SMPL joint **owns** the skinning weights of the Anny bones listed in ``owns``;
* every Anny bone that no row lists goes to the joint that owns its nearest listed ancestor
  (so ``toe1-2.L`` follows ``toe1-1.L``), see :func:`anny_bone_to_smpl_joint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

__all__ = [
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "NUM_SMPL_JOINTS",
    "AnnyJointRow",
    "ANNY_JOINT_TABLE",
    "anny_bone_to_smpl_joint",
    "COCO17_NAMES",
]

#: SMPL's 24 joints in SMPL's order.
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)

#: SMPL's kinematic tree: parent index of each joint (-1 for the root), as in ``kintree_table[0]``.
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)

NUM_SMPL_JOINTS = len(SMPL_JOINT_NAMES)

#: COCO-17 keypoint names in COCO's order (what pose detectors such as YOLO-pose return).
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)


@dataclass(frozen=True)
class AnnyJointRow:
    """One SMPL joint: where it sits (``anchors``) and whose skinning weights it takes (``owns``)."""

    smpl_joint: str
    anchors: tuple[str, ...]
    owns: tuple[str, ...]


def _sided(side: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{name}.{side}" for name in names)


def _rows_for_side(side: str, prefix: str) -> list[AnnyJointRow]:
    toes = [f"toe{i}-1" for i in range(1, 6)]
    knuckles = [f"finger{i}-1" for i in range(2, 6)]
    fingers = ["finger1-1"] + knuckles
    return [
        AnnyJointRow(f"{prefix}_hip", _sided(side, "upperleg01"), _sided(side, "upperleg01", "upperleg02")),
        AnnyJointRow(f"{prefix}_knee", _sided(side, "lowerleg01"), _sided(side, "lowerleg01", "lowerleg02")),
        AnnyJointRow(f"{prefix}_ankle", _sided(side, "foot"), _sided(side, "foot")),
        AnnyJointRow(f"{prefix}_foot", _sided(side, *toes), _sided(side, *toes)),
        AnnyJointRow(f"{prefix}_collar", _sided(side, "clavicle"), _sided(side, "clavicle", "shoulder01")),
        AnnyJointRow(f"{prefix}_shoulder", _sided(side, "upperarm01"), _sided(side, "upperarm01", "upperarm02")),
        AnnyJointRow(f"{prefix}_elbow", _sided(side, "lowerarm01"), _sided(side, "lowerarm01", "lowerarm02")),
        AnnyJointRow(
            f"{prefix}_wrist", _sided(side, "wrist"),
            _sided(side, "wrist", "metacarpal1", "metacarpal2", "metacarpal3", "metacarpal4"),
        ),
        AnnyJointRow(f"{prefix}_hand", _sided(side, *knuckles), _sided(side, *fingers)),
    ]


_CENTRAL_ROWS = [
    AnnyJointRow("pelvis", ("root",), ("root", "pelvis.L", "pelvis.R", "spine05", "spine04")),
    AnnyJointRow("spine1", ("spine03",), ("spine03",)),
    AnnyJointRow("spine2", ("spine02",), ("spine02",)),
    AnnyJointRow("spine3", ("spine01",), ("spine01",)),
    AnnyJointRow("neck", ("neck01",), ("neck01", "neck02", "neck03")),
    AnnyJointRow("head", ("head",), ("head", "eye.L", "eye.R")),
]

_ROWS_BY_NAME = {row.smpl_joint: row for row in _CENTRAL_ROWS + _rows_for_side("L", "left") + _rows_for_side("R", "right")}

#: The mapping table, one row per SMPL joint in SMPL's order.
ANNY_JOINT_TABLE: tuple[AnnyJointRow, ...] = tuple(_ROWS_BY_NAME[name] for name in SMPL_JOINT_NAMES)


def anny_bone_to_smpl_joint(bone_labels: Sequence[str], bone_parents: Sequence[int]) -> list[int]:
    """SMPL joint index owning each Anny bone.

    Args:
        bone_labels: Anny's bone names, length B (``model.bone_labels``).
        bone_parents: parent index of each bone, length B, -1 for the root (``model.bone_parents``).

    Returns:
        A list of B SMPL joint indices in ``[0, 24)``.

    Raises:
        ValueError: if a bone named in the table is missing from ``bone_labels``, or a bone has no
            listed ancestor.
    """
    if len(bone_labels) != len(bone_parents):
        raise ValueError(
            f"bone_labels and bone_parents must have the same length, got {len(bone_labels)} and {len(bone_parents)}"
        )
    index_of = {label: i for i, label in enumerate(bone_labels)}
    owner: dict[int, int] = {}
    for joint_index, row in enumerate(ANNY_JOINT_TABLE):
        for bone in row.owns + row.anchors:
            if bone not in index_of:
                raise ValueError(f"Anny bone {bone!r} (for SMPL joint {row.smpl_joint!r}) is not in bone_labels")
        for bone in row.owns:
            owner[index_of[bone]] = joint_index
    result = []
    for bone_index in range(len(bone_labels)):
        cursor = bone_index
        while cursor not in owner:
            cursor = int(bone_parents[cursor])
            if cursor < 0:
                raise ValueError(f"Anny bone {bone_labels[bone_index]!r} has no ancestor in ANNY_JOINT_TABLE")
        result.append(owner[cursor])
    return result
