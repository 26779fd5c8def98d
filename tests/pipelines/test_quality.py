"""Quality values and gates: masks, residuals against a known surface, gate verdicts and overrides."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from pipelines.quality import QualityGates, QualityValues, evaluate_gates, mask_statistics, measure_quality


def _values(**changes) -> QualityValues:
    good = dict(mask_coverage_min=0.08, mask_coverage_mean=0.1, visible_view_fraction=1.0, reprojection_px=2.0,
                scan_residual_cm=0.9, body_to_scan_cm=0.5, silhouette_iou_min=0.8, height_m=1.7, betas_abs_max=1.2)
    return QualityValues(**{**good, **changes})


def test_mask_statistics_coverage_and_whole_body_in_view():
    masks = np.zeros((3, 10, 20), np.uint8)
    masks[0, 2:8, 5:10] = 255  # inside the image
    masks[1, 0:8, 5:10] = 255  # touches the top border: cut off
    coverage, whole = mask_statistics(masks)  # view 2 is empty
    np.testing.assert_allclose(coverage, [30 / 200, 40 / 200, 0.0])
    assert whole.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="masks"):
        mask_statistics(np.zeros((10, 20)))


def test_measure_quality_on_a_known_body_and_scan():
    body = trimesh.creation.icosphere(subdivisions=4, radius=0.85)  # 1.7 m "tall"
    shell = trimesh.creation.icosphere(subdivisions=4, radius=0.87)  # 2 cm of clothing all round
    band = shell.copy()
    band.update_faces(np.all(np.abs(band.vertices[band.faces][..., 1]) < 0.15, axis=1))  # a torso-like band
    band.remove_unreferenced_vertices()
    masks = np.zeros((2, 16, 16), bool)
    masks[:, 2:14, 5:11] = True
    common = dict(scan_masks=masks, body_masks=masks, reprojection_px=1.5, body_vertices=body.vertices,
                  body_faces=body.faces, rest_body_vertices=body.vertices, betas=np.array([[0.5, -2.5, 0.0]]))
    clothed = measure_quality(scan_vertices=shell.vertices, scan_faces=shell.faces, **common)
    assert clothed.scan_residual_cm == pytest.approx(2.0, abs=0.1)
    assert clothed.body_to_scan_cm == pytest.approx(2.0, abs=0.1)
    assert clothed.height_m == pytest.approx(1.7) and clothed.betas_abs_max == 2.5
    assert clothed.silhouette_iou_min == 1.0 and clothed.mask_coverage_min == pytest.approx(72 / 256)
    assert clothed.visible_view_fraction == 1.0 and clothed.reprojection_px == 1.5
    partial = measure_quality(scan_vertices=band.vertices, scan_faces=band.faces, **common)
    assert partial.scan_residual_cm == pytest.approx(2.0, abs=0.1)  # what there is lies on the body...
    assert partial.body_to_scan_cm > 20.0  # ...but most of the body is far from it
    half = masks.copy()
    half[:, 8:] = False
    assert measure_quality(scan_vertices=shell.vertices, scan_faces=shell.faces,
                           **{**common, "scan_masks": half}).silhouette_iou_min == pytest.approx(0.5)


def test_gates_name_every_value_outside_its_bounds():
    gates = QualityGates()
    assert evaluate_gates(_values(), gates, "0001").passed
    outcome = evaluate_gates(_values(silhouette_iou_min=0.3, height_m=0.5, reprojection_px=float("nan")), gates, "0001")
    assert set(outcome.failed) == {"silhouette_iou_min", "height_m", "reprojection_px"}
    assert outcome.failed["reprojection_px"] is None and not outcome.accepted
    text = outcome.describe()
    assert "silhouette_iou_min=0.3 (min 0.5)" in text and "height_m=0.5 (min 0.8, max 2.3)" in text
    assert "reprojection_px=not measured" in text
    record = outcome.as_dict()
    assert record["passed"] is False and record["bounds"]["height_m"] == [0.8, 2.3]
    assert record["bounds"]["scan_residual_cm"] == [None, 5.0]


def test_gates_can_be_disabled_relaxed_or_overridden():
    low = _values(silhouette_iou_min=0.3)
    assert evaluate_gates(low, QualityGates(min_silhouette_iou=None), "0001").passed
    assert evaluate_gates(low, QualityGates(min_silhouette_iou=0.2), "0001").passed
    by_id = evaluate_gates(low, QualityGates(accept_subjects=("0001",)), "0001")
    assert by_id.accepted and not by_id.passed and by_id.accepted_because == "subject accepted by id"
    assert not evaluate_gates(low, QualityGates(accept_subjects=("0002",)), "0001").accepted
    unenforced = evaluate_gates(low, QualityGates(enforce=False), "0001")
    assert unenforced.accepted and unenforced.accepted_because == "gates not enforced"


def test_quality_values_round_trip_and_gate_validation():
    values = _values(reprojection_px=float("nan"))
    record = values.as_dict()
    assert record["reprojection_px"] is None and all(isinstance(v, float) for k, v in record.items() if k != "reprojection_px")
    again = QualityValues.from_dict(record)
    assert math.isnan(again.reprojection_px) and again.height_m == values.height_m
    with pytest.raises(ValueError, match="min_mask_coverage"):
        QualityGates(min_mask_coverage=-0.1)
    with pytest.raises(ValueError, match="min_height_m"):
        QualityGates(min_height_m=2.5, max_height_m=2.0)
    with pytest.raises(ValueError, match="accept_subjects"):
        QualityGates(accept_subjects="0001")
    with pytest.raises(ValueError, match="enforce"):
        QualityGates(enforce="no")
