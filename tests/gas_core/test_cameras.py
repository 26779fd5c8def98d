import math

import numpy as np
import pytest

from gas_core.cameras import Camera, OrbitSpec, look_at, orbit_cameras


def test_orbit_is_uniform_in_azimuth_and_looks_at_target():
    spec = OrbitSpec(num_views=20, distance=2.0, elevation_deg=10.0, width=64, height=48)
    cameras = orbit_cameras(spec)
    assert len(cameras) == 20
    azimuths = [math.atan2(c.center[0], c.center[2]) for c in cameras]
    steps = np.diff(np.unwrap(azimuths))
    np.testing.assert_allclose(steps, 2 * math.pi / 20, atol=1e-9)
    for camera in cameras:
        np.testing.assert_allclose(np.linalg.norm(camera.center), 2.0, atol=1e-9)
        np.testing.assert_allclose(camera.project(np.zeros(3)), [32.0, 24.0], atol=1e-9)


def test_front_view_sees_subject_upright_and_mirrored():
    front = orbit_cameras(OrbitSpec(num_views=4, width=100, height=100))[0]
    head, left_hand = front.project(np.array([[0.0, 0.5, 0.0], [0.3, 0.0, 0.0]]))
    assert head[1] < 50  # y up in the world is up in the image
    assert left_hand[0] > 50  # the subject's left (+x) is on the image's right when facing us


def test_opengl_pose_matches_opencv_projection():
    R, t = look_at(np.array([1.0, 0.5, 2.0]), np.zeros(3))
    camera = Camera(K=Camera.intrinsics_from_fov(45, 80, 60), R=R, t=t, width=80, height=60)
    point = np.array([0.1, 0.2, -0.1])
    pose = camera.opengl_camera_to_world()
    in_gl = np.linalg.inv(pose) @ np.append(point, 1.0)
    assert in_gl[2] < 0  # in front of an OpenGL camera means negative z
    u = camera.K[0, 0] * in_gl[0] / -in_gl[2] + camera.K[0, 2]
    v = camera.K[1, 1] * -in_gl[1] / -in_gl[2] + camera.K[1, 2]
    np.testing.assert_allclose([u, v], camera.project(point), atol=1e-9)


def test_round_trip_and_validation():
    camera = orbit_cameras(OrbitSpec(num_views=3, width=32, height=32))[1]
    again = Camera.from_dict(camera.to_dict())
    np.testing.assert_allclose(again.projection_matrix, camera.projection_matrix)
    assert camera.scaled(0.5).width == 16
    with pytest.raises(ValueError, match="R must be a rotation"):
        Camera(K=np.eye(3), R=np.diag([1.0, 1.0, -1.0]), t=np.zeros(3), width=4, height=4)
    with pytest.raises(ValueError, match="K must have shape"):
        Camera(K=np.eye(2), R=np.eye(3), t=np.zeros(3), width=4, height=4)
    with pytest.raises(ValueError, match="num_views"):
        OrbitSpec(num_views=0)
    with pytest.raises(ValueError, match="missing"):
        Camera.from_dict({"K": np.eye(3).tolist()})
