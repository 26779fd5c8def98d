import pytest

from gas_core.body.joints import ANNY_JOINT_TABLE, SMPL_JOINT_NAMES, SMPL_PARENTS, anny_bone_to_smpl_joint


def test_table_is_in_smpl_order_and_tree_is_valid():
    assert [row.smpl_joint for row in ANNY_JOINT_TABLE] == list(SMPL_JOINT_NAMES)
    assert SMPL_PARENTS[0] == -1
    assert all(0 <= parent < child for child, parent in enumerate(SMPL_PARENTS) if child)


def test_unlisted_bones_follow_their_nearest_listed_ancestor():
    labels = ["root", "spine03", "toe1-1.L", "toe1-2.L"]
    parents = [-1, 0, 0, 2]
    with pytest.raises(ValueError, match="not in bone_labels"):
        anny_bone_to_smpl_joint(labels, parents)
