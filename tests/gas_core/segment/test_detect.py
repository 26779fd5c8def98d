import numpy as np
import pytest

from gas_core.segment.detect import Detections, GroundingDINODetector, PersonDetector, UltralyticsPersonDetector


def test_tiny_yolo_loads_from_a_local_file_and_detects(tiny_yolo_weights):
    detector = UltralyticsPersonDetector(tiny_yolo_weights, score_threshold=0.0, image_size=96)
    assert isinstance(detector, PersonDetector)
    assert detector.person_class == 0 and detector.model.names[0] == "person"
    frame = np.random.default_rng(0).integers(0, 255, (72, 96, 3), dtype=np.uint8)
    detections = detector.detect(frame)
    assert detections.boxes.dtype == np.float32 and detections.boxes.shape == (len(detections), 4)
    assert detections.scores.shape == (len(detections),)
    assert np.all((detections.scores >= 0) & (detections.scores <= 1))
    if len(detections):
        assert np.all(detections.boxes[:, 2] >= detections.boxes[:, 0])
        assert np.all((detections.boxes[:, [0, 2]] >= 0) & (detections.boxes[:, [0, 2]] <= 96))


def test_ultralytics_detector_never_downloads(tmp_path):
    with pytest.raises(ValueError, match="weights_path"):
        UltralyticsPersonDetector(tmp_path / "yolov8n.pt")


def test_ultralytics_detector_validates_arguments(tiny_yolo_weights):
    with pytest.raises(ValueError, match="score_threshold"):
        UltralyticsPersonDetector(tiny_yolo_weights, score_threshold=2.0)
    with pytest.raises(ValueError, match="image_size"):
        UltralyticsPersonDetector(tiny_yolo_weights, image_size=100)


def test_grounding_dino_missing_package_says_how_to_install(tmp_path):
    import importlib.util

    if importlib.util.find_spec("groundingdino") is not None:  # not installable here; only the message is checked
        pytest.skip("groundingdino is installed")
    with pytest.raises(ImportError, match="pip install .*GroundingDINO"):
        GroundingDINODetector(tmp_path / "config.py", tmp_path / "weights.pth")


def test_detections_validate_shapes():
    assert len(Detections.empty()) == 0
    with pytest.raises(ValueError, match="scores"):
        Detections(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        Detections(np.full((1, 4), np.nan), np.zeros(1))


def test_model_without_person_class_is_rejected(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "numbers.pt"
    YOLO("yolov8n.yaml").save(str(path))  # class names "0".."79"
    with pytest.raises(ValueError, match="person"):
        UltralyticsPersonDetector(path)
