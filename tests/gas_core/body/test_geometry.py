"""Rotation and rigid-body maths on SMPL parameters (``gas_core.body.geometry``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gas_core.body.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    origin_transl_from_pelvis,
    pelvis_positions,
    pelvis_transl_from_origin,
    rotation_about_y,
    turn_bodies,
)
from gas_core.body.smpl import BodyModel


def test_axis_angle_round_trip_keeps_leading_shape():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 5, 3)) * 0.8
    matrices = axis_angle_to_matrix(vectors)
    assert matrices.shape == (4, 5, 3, 3)
    np.testing.assert_allclose(matrices @ np.swapaxes(matrices, -1, -2), np.broadcast_to(np.eye(3), matrices.shape),
                               atol=1e-12)
    np.testing.assert_allclose(matrix_to_axis_angle(matrices), vectors, atol=1e-9)
    assert axis_angle_to_matrix([0.0, 0.0, 0.0]).shape == (3, 3)
    with pytest.raises(ValueError, match="vectors"):
        axis_angle_to_matrix(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="matrices"):
        matrix_to_axis_angle(np.zeros((2, 3)))


def test_rotation_about_y_turns_z_towards_x():
    quarter = rotation_about_y(math.pi / 2)
    np.testing.assert_allclose(quarter @ [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(quarter, axis_angle_to_matrix([0.0, math.pi / 2, 0.0]), atol=1e-12)
    assert rotation_about_y(np.linspace(0, 1, 7)).shape == (7, 3, 3)


def test_origin_and_pelvis_translations_are_inverse_and_place_the_body_alike():
    rng = np.random.default_rng(1)
    orient, transl, pelvis = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)), np.array([0.01, -0.22, 0.03])
    origin = origin_transl_from_pelvis(orient, transl, pelvis)
    np.testing.assert_allclose(pelvis_transl_from_origin(orient, origin, pelvis), transl, atol=1e-12)
    point = np.array([0.3, 0.5, -0.1])  # a rest-pose point lands at the same world place in both conventions
    rotations = axis_angle_to_matrix(orient)
    about_pelvis = rotations @ (point - pelvis) + pelvis + transl
    np.testing.assert_allclose(rotations @ point + origin, about_pelvis, atol=1e-12)


@pytest.fixture(scope="module")
def body_model(open_body_model_dir) -> BodyModel:
    return BodyModel(open_body_model_dir)


def _body(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"betas": rng.normal(size=10) * 0.5, "body_pose": rng.normal(size=(23, 3)) * 0.2,
            "global_orient": rng.normal(size=3), "transl": rng.normal(size=3), "scale": np.array([1.1])}


def test_turn_bodies_about_own_pelvis_and_about_a_pivot(body_model):
    bodies = [_body(2), _body(3)]
    turn = rotation_about_y(0.7) @ axis_angle_to_matrix([0.3, 0.0, 0.0])
    before = pelvis_positions(body_model, bodies)
    in_place = turn_bodies(body_model, bodies, turn)
    np.testing.assert_allclose(pelvis_positions(body_model, in_place), before, atol=1e-5)
    for body, turned in zip(bodies, in_place):
        np.testing.assert_allclose(axis_angle_to_matrix(turned["global_orient"]),
                                   turn @ axis_angle_to_matrix(body["global_orient"]), atol=1e-9)
        assert turned["betas"] is body["betas"] and turned["body_pose"] is body["body_pose"]
    pivot = np.array([0.5, 0.0, -1.0])
    about_pivot = turn_bodies(body_model, bodies, turn, pivot=pivot)
    np.testing.assert_allclose(pelvis_positions(body_model, about_pivot), pivot + (before - pivot) @ turn.T, atol=1e-5)
    # the whole mesh moves rigidly: every vertex turns about the pivot
    from gas_core.body.smpl import SMPLParams

    vertices = body_model(SMPLParams.from_records(bodies)).vertices.double().numpy()
    moved = body_model(SMPLParams.from_records(about_pivot)).vertices.double().numpy()
    np.testing.assert_allclose(moved, pivot + (vertices - pivot) @ turn.T, atol=1e-4)
    with pytest.raises(ValueError, match="rotation"):
        turn_bodies(body_model, bodies, np.diag([1.0, 1.0, -1.0]))
