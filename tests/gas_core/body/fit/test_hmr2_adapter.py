"""HMR2.0 adapter: the not-installed message and the pure conversions (camera, rotations)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gas_core.body.fit import hmr2_adapter
from gas_core.body.fit.hmr2_adapter import (
    Hmr2UnavailableError,
    hmr2_focal_length,
    hmr2_to_smpl_params,
    run_hmr2,
    weak_perspective_to_translation,
)


@pytest.mark.skipif(hmr2_adapter.is_available(), reason="hmr2 is installed here")
def test_run_hmr2_names_how_to_install_when_absent(tmp_path):
    assert hmr2_adapter.is_available() is False
    frames = [np.zeros((64, 48, 3), dtype=np.uint8)]
    with pytest.raises(Hmr2UnavailableError, match="4D-Humans") as caught:
        run_hmr2(frames, np.array([[0.0, 0.0, 40.0, 60.0]]), checkpoint=tmp_path / "hmr2.ckpt")
    assert "pip install -e 4D-Humans" in str(caught.value)
    assert "fit_smpl_monocular" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)


def test_weak_perspective_to_translation_hand_case():
    # s b = 0.8 * 300 = 240 px per 2 m; T_z = 2 * 2000 / 240; T_x = 0.1 + 2 * (600 - 500) / 240; T_y = -0.2 + 0.
    translation = weak_perspective_to_translation(np.array([[0.8, 0.1, -0.2]]), np.array([[600.0, 400.0]]),
                                                  np.array([300.0]), (1000, 800), 2000.0)
    np.testing.assert_allclose(translation, [[0.1 + 200.0 / 240.0, -0.2, 4000.0 / 240.0]])


def test_weak_perspective_and_full_camera_agree_on_the_body_plane():
    rng = np.random.default_rng(0)
    count = 5
    crop_camera = np.column_stack([rng.uniform(0.5, 1.2, count), rng.uniform(-0.2, 0.2, (count, 2))])
    centre = rng.uniform([200.0, 300.0], [800.0, 1500.0], size=(count, 2))
    size = rng.uniform(200.0, 600.0, count)
    image_size, focal = (1080, 1920), 3000.0
    translation = weak_perspective_to_translation(crop_camera, centre, size, image_size, focal)
    point = rng.normal(0.0, 0.4, size=(count, 2))  # body points at the body's depth (z = 0 in the body frame)
    crop_pixels = centre + crop_camera[:, :1] * (point + crop_camera[:, 1:]) * size[:, None] / 2.0
    full_pixels = focal * (point + translation[:, :2]) / translation[:, 2:] + np.array(image_size) / 2.0
    np.testing.assert_allclose(full_pixels, crop_pixels, rtol=1e-10)


def test_hmr2_to_smpl_params_converts_rotation_matrices():
    rng = np.random.default_rng(1)
    orient = rng.normal(0.0, 0.8, size=(3, 3))
    pose = rng.normal(0.0, 0.4, size=(3, 23, 3))
    params = hmr2_to_smpl_params(Rotation.from_rotvec(orient).as_matrix()[:, None],
                                 Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(3, 23, 3, 3),
                                 rng.normal(size=(3, 10)), np.ones((3, 3)))
    np.testing.assert_allclose(params.global_orient.numpy(), orient, atol=1e-5)
    np.testing.assert_allclose(params.body_pose.numpy(), pose, atol=1e-5)
    assert params.batch_size == 3 and params.scale.tolist() == [1.0, 1.0, 1.0]
    # (N, 3, 3) root matrices are accepted too.
    again = hmr2_to_smpl_params(Rotation.from_rotvec(orient).as_matrix(),
                                Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(3, 23, 3, 3),
                                np.zeros((3, 10)), np.zeros((3, 3)))
    np.testing.assert_allclose(again.global_orient.numpy(), orient, atol=1e-5)


def test_focal_length_and_bad_arguments():
    assert hmr2_focal_length((1080, 1920)) == pytest.approx(5000.0 / 256.0 * 1920.0)
    with pytest.raises(ValueError, match="image_size"):
        hmr2_focal_length((0, 10))
    with pytest.raises(ValueError, match="crop_camera"):
        weak_perspective_to_translation(np.ones((2, 2)), np.ones((2, 2)), np.ones(2), (10, 10), 100.0)
    with pytest.raises(ValueError, match="box_center"):
        weak_perspective_to_translation(np.ones((2, 3)), np.ones((3, 2)), np.ones(2), (10, 10), 100.0)
    with pytest.raises(ValueError, match="box_size"):
        weak_perspective_to_translation(np.ones((2, 3)), np.ones((2, 2)), np.array([1.0, -1.0]), (10, 10), 100.0)
    with pytest.raises(ValueError, match="focal_length_px"):
        weak_perspective_to_translation(np.ones((2, 3)), np.ones((2, 2)), np.ones(2), (10, 10), 0.0)
    with pytest.raises(ValueError, match="crop_camera scales"):
        weak_perspective_to_translation(-np.ones((2, 3)), np.ones((2, 2)), np.ones(2), (10, 10), 100.0)
    with pytest.raises(ValueError, match="body_pose"):
        hmr2_to_smpl_params(np.tile(np.eye(3), (2, 1, 1)), np.zeros((2, 22, 3, 3)), np.zeros((2, 10)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="betas"):
        hmr2_to_smpl_params(np.tile(np.eye(3), (2, 1, 1)), np.tile(np.eye(3), (2, 23, 1, 1)), np.zeros((2, 11)),
                            np.zeros((2, 3)))
