"""Person detectors: candidate boxes for the subject of a video frame.

Every detector takes one RGB frame ``(H, W, 3)`` uint8 and returns :class:`Detections`: boxes
``(K, 4)`` float32 ``x0, y0, x1, y1`` in pixels and scores ``(K,)`` float32 in ``[0, 1]``.

* :class:`UltralyticsPersonDetector` (the default): a YOLO detection model read from a local weights
  file (class ``"person"``); nothing is downloaded.
* :class:`GroundingDINODetector`: the open-vocabulary detector of Grounded-SAM prompted with
  ``"person"``; needs the ``groundingdino`` package, imported only when the detector is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Detections",
    "PersonDetector",
    "UltralyticsPersonDetector",
    "GroundingDINODetector",
    "check_rgb_frame",
]


def check_rgb_frame(frame: np.ndarray, name: str = "frame") -> np.ndarray:
    """Return ``frame`` as a contiguous (H, W, 3) uint8 array; ValueError naming ``name`` otherwise."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB image, got shape {frame.shape} dtype {frame.dtype}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {frame.shape}")
    return np.ascontiguousarray(frame)


@dataclass(frozen=True)
class Detections:
    """Candidate people in one frame: ``boxes`` (K, 4) float32 ``x0, y0, x1, y1`` pixels, ``scores`` (K,)
    float32 in [0, 1] (detector confidence)."""

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4) if np.size(self.boxes) else np.zeros((0, 4), np.float32)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"scores must have one entry per box: {scores.shape[0]} scores for {boxes.shape[0]} boxes")
        if not np.all(np.isfinite(boxes)):
            raise ValueError("boxes must be finite")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls) -> "Detections":
        """No candidate."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that finds people: ``detect(frame (H, W, 3) uint8 RGB) -> Detections``."""

    def detect(self, frame: np.ndarray) -> Detections: ...


def _existing_file(path: str | Path, name: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{name} must be an existing local file, got {str(path)!r} (weights are never downloaded)")
    return path


class UltralyticsPersonDetector:
    """YOLO detection model (ultralytics) from a local weights file, keeping class ``"person"``.

    Args:
        weights_path: a local ``.pt`` file of an ultralytics detection model (for example
            ``yolov8x.pt``) whose class names include ``"person"``.
        score_threshold: detections below this confidence are dropped, in [0, 1].
        image_size: inference size in pixels (ultralytics ``imgsz``; multiple of 32).
        device: torch device string (``"cpu"``, ``"cuda:0"``).

    Raises:
        ValueError: missing file, a model without a ``"person"`` class, bad threshold or size.
    """

    def __init__(self, weights_path: str | Path, score_threshold: float = 0.25, image_size: int = 640,
                 device: str = "cpu") -> None:
        path = _existing_file(weights_path, "weights_path")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if image_size < 32 or image_size % 32:
            raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
        from gas_core.settings import offline_ultralytics

        offline_ultralytics()
        from ultralytics import YOLO

        self.model = YOLO(str(path), task="detect")
        names = self.model.names
        person_ids = [int(index) for index, label in names.items() if str(label).lower() == "person"]
        if not person_ids:
            raise ValueError(f"weights_path {str(path)!r} has no 'person' class (classes: {list(names.values())[:10]}...)")
        self.person_class = person_ids[0]
        self.score_threshold = float(score_threshold)
        self.image_size = int(image_size)
        self.device = device

    def detect(self, frame: np.ndarray) -> Detections:
        """People in ``frame`` (H, W, 3) uint8 RGB: boxes (K, 4) xyxy pixels, scores (K,)."""
        frame = check_rgb_frame(frame)
        bgr = np.ascontiguousarray(frame[..., ::-1])  # ultralytics reads numpy images as BGR
        result = self.model.predict(bgr, imgsz=self.image_size, conf=self.score_threshold, classes=[self.person_class],
                                    device=self.device, verbose=False)[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return Detections.empty()
        return Detections(boxes.xyxy.detach().cpu().numpy(), boxes.conf.detach().cpu().numpy())


class GroundingDINODetector:
    """Grounding DINO prompted with a text (``"person"``): the detector half of Grounded-SAM.

    Args:
        config_path: the model's python config file (``GroundingDINO_SwinT_OGC.py``).
        weights_path: its local checkpoint (``groundingdino_swint_ogc.pth``).
        prompt: text prompt; boxes whose phrase does not contain it are dropped.
        box_threshold, text_threshold: Grounding DINO's thresholds in [0, 1].
        device: torch device string.

    Raises:
        ImportError: when the ``groundingdino`` package is not installed (message says how to install it).
        ValueError: missing files or thresholds outside [0, 1].
    """

    INSTALL_HINT = ("GroundingDINODetector needs the 'groundingdino' package: "
                    "pip install git+https://github.com/IDEA-Research/GroundingDINO.git "
                    "(it builds a CUDA/C++ extension), or use UltralyticsPersonDetector instead")

    def __init__(self, config_path: str | Path, weights_path: str | Path, prompt: str = "person",
                 box_threshold: float = 0.35, text_threshold: float = 0.25, device: str = "cpu") -> None:
        try:
            from groundingdino.util import inference as gd_inference
            import groundingdino.datasets.transforms as gd_transforms
        except ImportError as error:
            raise ImportError(self.INSTALL_HINT) from error
        config = _existing_file(config_path, "config_path")
        weights = _existing_file(weights_path, "weights_path")
        for name, value in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not prompt.strip():
            raise ValueError("prompt must not be empty")
        self._inference = gd_inference
        self._transform = gd_transforms.Compose([
            gd_transforms.RandomResize([800], max_size=1333),
            gd_transforms.ToTensor(),
            gd_transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])
        self.model = gd_inference.load_model(str(config), str(weights), device=device)
        self.prompt = prompt.strip().lower()
        self.box_threshold = float(box_threshold)
        self.text_threshold = float(text_threshold)
        self.device = device

    def detect(self, frame: np.ndarray) -> Detections:
        """People in ``frame`` (H, W, 3) uint8 RGB: boxes (K, 4) xyxy pixels, scores (K,)."""
        from PIL import Image

        frame = check_rgb_frame(frame)
        height, width = frame.shape[:2]
        image, _ = self._transform(Image.fromarray(frame), None)
        boxes, logits, phrases = self._inference.predict(
            model=self.model, image=image, caption=self.prompt, box_threshold=self.box_threshold,
            text_threshold=self.text_threshold, device=self.device)
        keep = [index for index, phrase in enumerate(phrases) if self.prompt in str(phrase).lower()]
        if not keep:
            return Detections.empty()
        cxcywh = boxes[keep].detach().cpu().numpy() * np.array([width, height, width, height], np.float32)
        xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
        return Detections(xyxy, logits[keep].detach().cpu().numpy())
