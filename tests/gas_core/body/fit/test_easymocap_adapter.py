"""EasyMocap adapter: availability, the clear error when missing, and the conversions it relies on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from gas_core.body.fit import easymocap_adapter
from gas_core.body.fit.easymocap_adapter import (
    EasyMocapUnavailableError,
    coco17_to_body25,
    easymocap_to_smpl_params,
    fit_with_easymocap,
    is_available,
    keypoint_boxes,
)
from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import OrbitSpec, orbit_cameras


def test_missing_easymocap_raises_with_install_instructions(tmp_path):
    if is_available():
        pytest.skip("easymocap is installed here")
    cameras = orbit_cameras(OrbitSpec(num_views=2))
    with pytest.raises(EasyMocapUnavailableError, match="pip install -e EasyMocap"):
        fit_with_easymocap(None, cameras, np.zeros((2, 17, 3)), model_path=tmp_path)


def test_coco_to_body25_mapping():
    coco = np.zeros((17, 3))
    coco[:, 0] = np.arange(17)
    coco[:, 2] = np.linspace(0.2, 1.0, 17)
    body25 = coco17_to_body25(coco)
    assert body25.shape == (25, 3)
    assert body25[0, 0] == 0  # nose
    assert body25[2, 0] == 6 and body25[5, 0] == 5  # right / left shoulder
    assert body25[9, 0] == 12 and body25[12, 0] == 11  # right / left hip
    assert body25[15, 0] == 2 and body25[18, 0] == 3  # right eye, left ear
    assert body25[1, 0] == pytest.approx(5.5) and body25[1, 2] == pytest.approx(coco[5, 2])
    assert body25[8, 0] == pytest.approx(11.5)
    assert np.all(body25[19:, 2] == 0.0)
    assert coco17_to_body25(np.zeros((4, 17, 4))).shape == (4, 25, 4)
    with pytest.raises(ValueError, match="keypoints"):
        coco17_to_body25(np.zeros((18, 3)))


def test_keypoint_boxes():
    keypoints = np.zeros((2, 17, 3))
    keypoints[0, :, 0] = np.linspace(10, 110, 17)
    keypoints[0, :, 1] = np.linspace(20, 220, 17)
    keypoints[0, :, 2] = 0.5
    boxes = keypoint_boxes(keypoints, margin=0.0)
    np.testing.assert_allclose(boxes[0], [10, 20, 110, 220, 0.5])
    np.testing.assert_allclose(boxes[1], 0.0)


def test_easymocap_parameters_convert_to_the_same_mesh(open_body_model_dir):
    body = BodyModel(open_body_model_dir)
    rng = np.random.default_rng(0)
    betas = rng.normal(0, 0.5, size=(1, 10))
    body_pose = rng.normal(0, 0.2, size=(1, 23, 3))
    rh, th = np.array([0.2, 1.1, -0.3]), np.array([0.3, -0.1, 0.5])
    # EasyMocap's convention: pose with a zero root about the model origin, then v = R(Rh) v + Th.
    model_frame = SMPLParams(
        betas=torch.as_tensor(betas, dtype=torch.float32),
        body_pose=torch.as_tensor(body_pose, dtype=torch.float32),
        global_orient=torch.zeros(1, 3), transl=torch.zeros(1, 3),
    )
    with torch.no_grad():
        expected = body(model_frame).vertices[0].numpy() @ Rotation.from_rotvec(rh).as_matrix().T + th
    result = {"poses": np.concatenate([np.zeros((1, 3)), body_pose.reshape(1, 69)], axis=1),
              "shapes": betas, "Rh": rh[None], "Th": th[None]}
    params = easymocap_to_smpl_params(result, body)
    with torch.no_grad():
        converted = body(params).vertices[0].numpy()
    np.testing.assert_allclose(converted, expected, atol=1e-4)
    with pytest.raises(ValueError, match="Th"):
        easymocap_to_smpl_params({"poses": result["poses"], "shapes": betas, "Rh": rh[None]}, body)


def test_availability_matches_import():
    import importlib.util

    assert easymocap_adapter.is_available() == (importlib.util.find_spec("easymocap") is not None)
