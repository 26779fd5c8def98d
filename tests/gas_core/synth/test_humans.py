"""Synthetic humans from Anny's full model: determinism, variety, poses, garments, colours, ground truth."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gas_core.body.joints import NUM_SMPL_JOINTS
from gas_core.synth.clothing import GarmentSpec, skirt_tube
from gas_core.synth.humans import Phenotype, SubjectSpec, make_subject, sample_subject_spec
from gas_core.synth.texture import Palette, sample_texture

TEXTURE = 64


def winding_numbers(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalized winding number of a triangle mesh at points (P, 3) (Van Oosterom-Strackee solid angles)."""
    a, b, c = (vertices[faces[:, k]][None] - points[:, None] for k in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    dot = lambda x, y: np.einsum("pfi,pfi->pf", x, y)  # noqa: E731
    numerator = dot(a, np.cross(b, c))
    denominator = la * lb * lc + dot(a, b) * lc + dot(b, c) * la + dot(c, a) * lb
    return 2.0 * np.arctan2(numerator, denominator).sum(axis=1) / (4.0 * np.pi)


@pytest.fixture(scope="module")
def subjects():
    start = time.perf_counter()
    made = [make_subject(sample_subject_spec(seed), texture_size=TEXTURE) for seed in range(4)]
    print(f"\nsynthesis: {(time.perf_counter() - start) / len(made):.2f} s per subject at {TEXTURE}px")
    return made


def test_same_seed_gives_identical_arrays(subjects):
    again = make_subject(sample_subject_spec(1), texture_size=TEXTURE)
    first = subjects[1]
    assert sample_subject_spec(1) == first.spec
    for name in ("vertices", "faces", "uv", "face_uv_indices", "texture", "vertex_colors", "joints24", "coco17"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)


def test_shapes_and_types(subjects):
    for subject in subjects:
        assert subject.vertices.dtype == np.float32 and subject.vertices.shape[1] == 3
        assert subject.faces.max() < len(subject.vertices)
        assert subject.face_uv_indices.shape == subject.faces.shape
        assert subject.face_uv_indices.max() < len(subject.uv)
        assert subject.texture.shape == (TEXTURE, TEXTURE, 3) and subject.texture.dtype == np.uint8
        assert subject.vertex_colors.shape == (len(subject.vertices), 3)
        assert subject.joints24.shape == (NUM_SMPL_JOINTS, 3)
        assert subject.coco17.shape == (17, 3)


def test_subjects_vary_in_phenotype_and_size():
    specs = [sample_subject_spec(seed) for seed in range(12)]
    heights = [spec.phenotype.height for spec in specs]
    assert np.ptp(heights) > 0.15 and np.ptp([s.phenotype.weight for s in specs]) > 0.3
    assert len({spec.pose_name for spec in specs}) >= 4
    assert all(0.62 <= spec.phenotype.age <= 0.98 for spec in specs)
    # Same pose for all, so statures and widths compare the bodies themselves.
    statures, widths = [], []
    for spec in specs[:3]:
        standing = dataclasses.replace(spec, pose_name="a_pose", perturbation_scale=0.0)
        body = make_subject(standing, texture_size=16).body_vertices
        statures.append(np.ptp(body[:, 1]))
        widths.append(np.ptp(body[np.abs(body[:, 1]) < 0.1, 2]))
    assert np.ptp(statures) > 0.04
    assert all(1.4 < stature < 2.1 for stature in statures)
    assert np.ptp(widths) > 0.01


def test_world_frame_is_y_up_facing_plus_z(subjects):
    for subject in subjects:
        joints = subject.joints24.astype(np.float64)
        head, pelvis = joints[15], joints[0]
        assert head[1] - pelvis[1] > 0.4
        assert joints[1, 0] > joints[2, 0]  # left hip on +x
        nose = subject.coco17[0]
        assert nose[2] > joints[15, 2]  # the nose is in front of the head joint (+z)


def test_posed_subjects_differ_from_rest(subjects):
    posed = next(s for s in subjects if s.spec.pose_name not in ("a_pose",))
    rest = make_subject(dataclasses.replace(posed.spec, pose_name="a_pose", perturbation_scale=0.0), texture_size=16)
    assert np.abs(posed.body_vertices - rest.body_vertices).max() > 0.05
    assert np.abs(posed.joints24 - rest.joints24).max() > 0.03


def test_groundtruth_joints_lie_inside_the_body_and_keypoints_near_its_surface(subjects):
    for subject in subjects:
        body = subject.body_vertices.astype(np.float64)
        faces = subject.faces[: subject.num_body_faces]
        assert np.all(winding_numbers(subject.joints24.astype(np.float64), body, faces) > 0.5)
        distance, _ = cKDTree(body).query(subject.coco17)
        assert distance[:5].max() < 0.02  # nose, eyes, ears sit on the skin
        assert distance.max() < 0.12  # limb keypoints are inside, close to the surface


def test_garments_push_the_surface_outwards_only_a_little(subjects):
    for subject in subjects:
        body = subject.body_vertices
        shell = subject.vertices[: len(body)]
        offset = np.linalg.norm(shell - body, axis=1)
        assert offset.max() < 0.1
        assert (offset > 0.003).mean() > 0.3  # most of the body is covered


def test_texture_and_vertex_colours_agree(subjects):
    for subject in subjects:
        faces = subject.faces[: subject.num_body_faces]
        sampled = sample_texture(subject.texture, subject.uv[subject.face_uv_indices[: subject.num_body_faces].ravel()])
        expected = subject.vertex_colors[faces.ravel()]
        difference = np.abs(sampled.astype(int) - expected.astype(int)).max(axis=1)
        assert np.median(difference) <= 4
        assert (difference < 20).mean() > 0.85
        assert len(np.unique(subject.vertex_colors, axis=0)) > 20  # skin, garments, hair, shoes


def test_skirt_hangs_around_both_legs():
    spec = sample_subject_spec(0)
    skirted = dataclasses.replace(
        spec,
        pose_name="a_pose",
        perturbation_scale=0.0,
        garments=dataclasses.replace(spec.garments, bottom_style="skirt", bottom_length=0.6),
    )
    subject = make_subject(skirted, texture_size=16)
    assert len(subject.faces) > subject.num_body_faces
    tube = subject.vertices[len(subject.body_vertices):]
    knees = subject.joints24[[4, 5]]
    hips = subject.joints24[[1, 2]]
    assert tube[:, 1].min() < hips[:, 1].min() - 0.2  # hangs well below the hips
    # At knee height the skirt's ring encloses both knees.
    ring = tube[np.abs(tube[:, 1] - knees[:, 1].mean()) < 0.05]
    assert len(ring) > 0
    assert ring[:, 0].max() > knees[0, 0] and ring[:, 0].min() < knees[1, 0]


def test_skirt_tube_rejects_bad_heights():
    points = np.zeros((4, 3))
    with pytest.raises(ValueError, match="top_height"):
        skirt_tube(points, np.ones(4, bool), top_height=0.0, hem_height=0.5, centre=np.zeros(3), flare=0.1)


def test_specs_validate_their_fields():
    with pytest.raises(ValueError, match="height"):
        Phenotype(gender=0.5, age=0.8, muscle=0.5, weight=0.5, height=1.5, proportions=0.5)
    spec = sample_subject_spec(2)
    with pytest.raises(ValueError, match="pose_name"):
        dataclasses.replace(spec, pose_name="cartwheel")
    with pytest.raises(ValueError, match="sleeve_length"):
        dataclasses.replace(spec.garments, sleeve_length=2.0)
    with pytest.raises(ValueError, match="top_pattern"):
        dataclasses.replace(spec.palette, top_pattern="paisley")
    with pytest.raises(ValueError, match="seed"):
        sample_subject_spec(-1)
    with pytest.raises(ValueError, match="texture_size"):
        make_subject(spec, texture_size=4)
    assert isinstance(spec, SubjectSpec) and isinstance(spec.garments, GarmentSpec) and isinstance(spec.palette, Palette)


def test_edge_subject_specs_lie_in_their_region_and_are_deterministic():
    from gas_core.body.anny_model import PHENOTYPE_NAMES
    from gas_core.body.open_model import EDGE_PHENOTYPE_REGIONS
    from gas_core.synth.humans import sample_edge_subject_spec

    for region in EDGE_PHENOTYPE_REGIONS:
        low, high = region.bounds()
        for seed in range(3):
            spec = sample_edge_subject_spec(seed, region)
            values = np.array([spec.phenotype.as_dict()[name] for name in PHENOTYPE_NAMES])
            assert np.all(values >= low) and np.all(values <= high), region.name
            assert spec == sample_edge_subject_spec(seed, region)
            assert spec.pose_name == sample_subject_spec(seed).pose_name  # only the body changes
    with pytest.raises(ValueError, match="seed"):
        sample_edge_subject_spec(-1, EDGE_PHENOTYPE_REGIONS[0])
