"""2D body keypoints per view (COCO-17, :data:`gas_core.body.joints.COCO17_NAMES` order).

A keypoint source turns N views (images plus their cameras) into an array ``(N, 17, 3)`` holding
``(u, v, confidence)`` per keypoint: pixel coordinates in the camera convention of
:mod:`gas_core.cameras` and a confidence in ``[0, 1]``, 0 meaning "not seen".

Two sources ship here:

* :class:`UltralyticsPoseDetector` runs an ultralytics pose model (e.g. YOLO-pose) loaded from a
  local weights file; nothing is downloaded.
* :class:`ProjectedKeypoints` projects known 3D keypoints (the ground truth of a synthetic subject)
  into each view, with configurable pixel noise, dropped points and gross outliers, so the fitter
  can be exercised and measured where detector weights are absent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from gas_core.body.joints import COCO17_NAMES
from gas_core.cameras import Camera

__all__ = [
    "NUM_COCO_KEYPOINTS",
    "KeypointSource",
    "UltralyticsPoseDetector",
    "ProjectedKeypoints",
    "validate_keypoints2d",
]

logger = logging.getLogger(__name__)

NUM_COCO_KEYPOINTS = len(COCO17_NAMES)


@runtime_checkable
class KeypointSource(Protocol):
    """Anything that yields COCO-17 keypoints for a set of calibrated views."""

    def detect(self, images: Sequence[np.ndarray], cameras: Sequence[Camera]) -> np.ndarray:
        """Keypoints for N views.

        Args:
            images: N RGB images, each (H, W, 3) uint8 (may be ignored by sources that do not look
                at pixels).
            cameras: the N cameras the images were taken with.

        Returns:
            (N, 17, 3) float array: u, v in pixels and a confidence in [0, 1].
        """
        ...


def validate_keypoints2d(keypoints2d: np.ndarray, num_views: int | None = None, name: str = "keypoints2d") -> np.ndarray:
    """Check and return keypoints as a float64 array (N, K, 3) with finite values and confidences in [0, 1].

    Non-finite coordinates are allowed only where the confidence is 0; they are replaced by 0.
    """
    array = np.asarray(keypoints2d, dtype=np.float64)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, K, 3), got {array.shape}")
    if num_views is not None and array.shape[0] != num_views:
        raise ValueError(f"{name} has {array.shape[0]} views but {num_views} cameras were given")
    confidence = array[..., 2]
    if not np.all(np.isfinite(confidence)) or confidence.min(initial=0.0) < 0.0 or confidence.max(initial=0.0) > 1.0:
        raise ValueError(f"{name} confidences (last channel) must be finite and in [0, 1]")
    bad = ~np.isfinite(array[..., :2]).all(axis=-1)
    if np.any(bad & (confidence > 0)):
        raise ValueError(f"{name} has non-finite pixel coordinates with a positive confidence")
    array = array.copy()
    array[bad, :2] = 0.0
    return array


def _check_views(images: Sequence[np.ndarray] | None, cameras: Sequence[Camera]) -> None:
    if len(cameras) == 0:
        raise ValueError("cameras must hold at least one Camera")
    for index, camera in enumerate(cameras):
        if not isinstance(camera, Camera):
            raise ValueError(f"cameras[{index}] must be a gas_core.cameras.Camera, got {type(camera).__name__}")
    if images is None:
        return
    if len(images) != len(cameras):
        raise ValueError(f"images ({len(images)}) and cameras ({len(cameras)}) must have the same length")
    for index, image in enumerate(images):
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise ValueError(f"images[{index}] must be an (H, W, 3) uint8 RGB array, got {array.shape} {array.dtype}")


class UltralyticsPoseDetector:
    """COCO-17 keypoints from an ultralytics pose model (YOLO-pose family) loaded from a local file.

    Per image the person with the highest ``box confidence x sqrt(box area)`` score is kept
    (so a large, confident person wins over a small background one); an image with no person gives
    17 keypoints at (0, 0) with confidence 0.

    Args:
        weights: path to a ``.pt`` file saved by ultralytics (a pose model, 17 keypoints).
        device: torch device string for inference (``"cpu"``, ``"cuda:0"``).
        image_size: inference size in pixels (the model letterboxes each image to it).
        min_box_confidence: detections below this box confidence are ignored.
    """

    def __init__(self, weights: Path | str, *, device: str = "cpu", image_size: int = 640,
                 min_box_confidence: float = 0.25) -> None:
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise FileNotFoundError(
                f"pose detector weights not found at {weights}: put an ultralytics pose checkpoint "
                "(e.g. yolov8n-pose.pt) there or point the config at it; nothing is downloaded"
            )
        if image_size <= 0 or image_size % 32 != 0:
            raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
        if not 0.0 <= min_box_confidence <= 1.0:
            raise ValueError(f"min_box_confidence must be in [0, 1], got {min_box_confidence}")
        from gas_core.settings import offline_ultralytics

        offline_ultralytics()
        from ultralytics import YOLO

        self.weights = weights
        self.device = device
        self.image_size = int(image_size)
        self.min_box_confidence = float(min_box_confidence)
        try:
            self._model = YOLO(str(weights), task="pose")
        except Exception as error:  # ultralytics raises several types for a corrupt file
            raise ValueError(f"could not load pose detector weights {weights}: {error}") from error
        keypoint_shape = getattr(self._model.model, "kpt_shape", None)
        if keypoint_shape is None or int(keypoint_shape[0]) != NUM_COCO_KEYPOINTS:
            raise ValueError(
                f"{weights} is not a COCO-17 pose model (kpt_shape={keypoint_shape}); use a YOLO-pose checkpoint"
            )

    def detect(self, images: Sequence[np.ndarray], cameras: Sequence[Camera]) -> np.ndarray:
        """(N, 17, 3) keypoints (u, v pixels, confidence in [0, 1]) for N RGB uint8 images."""
        _check_views(images, cameras)
        # ultralytics reads numpy images as BGR (OpenCV order); ours are RGB.
        bgr = [np.ascontiguousarray(np.asarray(image)[..., ::-1]) for image in images]
        results = self._model.predict(
            bgr, imgsz=self.image_size, conf=self.min_box_confidence, device=self.device, verbose=False
        )
        output = np.zeros((len(images), NUM_COCO_KEYPOINTS, 3), dtype=np.float64)
        for index, result in enumerate(results):
            if result.keypoints is None or result.boxes is None or len(result.boxes) == 0:
                continue
            boxes = result.boxes.xyxy.cpu().numpy()
            box_confidence = result.boxes.conf.cpu().numpy()
            area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
            best = int(np.argmax(box_confidence * np.sqrt(area + 1e-6)))
            points = result.keypoints.data[best].cpu().numpy().astype(np.float64)  # (17, 2 or 3)
            output[index, :, :2] = points[:, :2]
            output[index, :, 2] = np.clip(points[:, 2], 0.0, 1.0) if points.shape[1] == 3 else 1.0
        return output


class ProjectedKeypoints:
    """Known 3D keypoints projected into each view, with controlled corruption.

    Stands in for a detector on synthetic subjects whose ground-truth COCO-17 keypoints are known.

    Args:
        points3d: (17, 3) world points in metres, COCO-17 order.
        noise_px: standard deviation of the Gaussian noise added to u and v, in pixels.
        drop_prob: probability that a keypoint is dropped (confidence 0) in a view.
        outlier_prob: probability that a kept keypoint is replaced by a gross outlier (a uniformly
            random pixel inside the image, reported with a random confidence in [0.3, 1]).
        confidence: confidence reported for kept, non-outlier points.
        seed: seed of the random generator (each :meth:`detect` call draws fresh corruption from it).

    Points behind a camera or outside its image get confidence 0 (self-occlusion is not modelled).
    """

    def __init__(self, points3d: np.ndarray, *, noise_px: float = 0.0, drop_prob: float = 0.0,
                 outlier_prob: float = 0.0, confidence: float = 1.0, seed: int = 0) -> None:
        points3d = np.asarray(points3d, dtype=np.float64)
        if points3d.shape != (NUM_COCO_KEYPOINTS, 3) or not np.all(np.isfinite(points3d)):
            raise ValueError(f"points3d must be a finite ({NUM_COCO_KEYPOINTS}, 3) array, got {points3d.shape}")
        if noise_px < 0:
            raise ValueError(f"noise_px must be >= 0, got {noise_px}")
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {drop_prob}")
        if not 0.0 <= outlier_prob <= 1.0:
            raise ValueError(f"outlier_prob must be in [0, 1], got {outlier_prob}")
        if not 0.0 < confidence <= 1.0:
            raise ValueError(f"confidence must be in (0, 1], got {confidence}")
        self.points3d = points3d
        self.noise_px = float(noise_px)
        self.drop_prob = float(drop_prob)
        self.outlier_prob = float(outlier_prob)
        self.confidence = float(confidence)
        self._rng = np.random.default_rng(seed)

    def detect(self, images: Sequence[np.ndarray] | None, cameras: Sequence[Camera]) -> np.ndarray:
        """(N, 17, 3) keypoints for the N cameras; ``images`` is ignored (may be ``None``)."""
        _check_views(images, cameras)
        rng = self._rng
        output = np.zeros((len(cameras), NUM_COCO_KEYPOINTS, 3), dtype=np.float64)
        for index, camera in enumerate(cameras):
            uv = camera.project(self.points3d)
            visible = np.isfinite(uv).all(axis=-1)
            uv = np.where(visible[:, None], uv, 0.0)
            uv = uv + rng.normal(0.0, self.noise_px, size=uv.shape) if self.noise_px > 0 else uv
            visible &= (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
            keep = visible & (rng.random(NUM_COCO_KEYPOINTS) >= self.drop_prob)
            confidence = np.where(keep, self.confidence, 0.0)
            outlier = keep & (rng.random(NUM_COCO_KEYPOINTS) < self.outlier_prob)
            if np.any(outlier):
                count = int(outlier.sum())
                uv[outlier] = rng.random((count, 2)) * np.array([camera.width, camera.height])
                confidence[outlier] = rng.uniform(0.3, 1.0, size=count)
            output[index, :, :2] = np.where(keep[:, None], uv, 0.0)
            output[index, :, 2] = confidence
        return output
