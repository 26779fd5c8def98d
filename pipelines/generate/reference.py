"""The reference of a generation: image, mask, SMPL and camera read (or estimated) and checked, then cut to a square."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gas_core.body.smpl import BodyModel
from gas_core.cameras import Camera
from pipelines.generate.config import GenerateConfig, ReferenceConfig
from pipelines.generate.driving import _check_driving_video, is_driving_video
from pipelines.generate.estimators import ReferenceEstimator
from pipelines.generate.files import (
    GenerateInputError,
    GenerateInputs,
    read_camera_file,
    read_image_file,
    read_mask_file,
    read_pose_sequence,
    read_smpl_file,
)


@dataclass(frozen=True)
class ReferenceInputs:
    """The reference after :func:`read_generation_inputs`: ``image`` uint8 (H, W, 3), ``mask`` uint8 (H, W)
    0/255, ``camera`` of that size, ``smpl`` (the project's SMPL dict), and where each came from."""

    image: np.ndarray
    mask: np.ndarray
    camera: Camera
    smpl: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)


def prepare_reference(image: np.ndarray, mask: np.ndarray, camera: Camera, size: int,
                      config: ReferenceConfig = ReferenceConfig()) -> tuple[np.ndarray, np.ndarray, Camera]:
    """Square ``size`` x ``size`` reference (uint8 (size, size, 3), mask (size, size) 0/255) and its camera.

    A square image is only resized. A non-square one is first cut to a square around the mask's box
    (side: the box's longer side times ``1 + crop_margin``, at least the image's shorter side), padded
    with the background where the square leaves the image; ``K`` moves with the crop. With
    ``composite_background`` the pixels outside the mask become ``background``.
    """
    import cv2

    height, width = mask.shape
    if (camera.width, camera.height) != (width, height):
        raise ValueError(f"camera is {camera.width}x{camera.height} but the image is {width}x{height}")
    background = np.asarray(config.background, dtype=np.uint8)
    if config.composite_background:
        image = np.where(mask[..., None] > 0, image, background[None, None]).astype(np.uint8)
    if width != height:
        rows, cols = np.nonzero(mask)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        side = int(math.ceil(max(bottom - top, right - left) * (1.0 + float(config.crop_margin))))
        side = max(side, min(width, height))
        x0 = int(round((left + right) / 2.0 - side / 2.0))
        y0 = int(round((top + bottom) / 2.0 - side / 2.0))
        canvas = np.empty((side, side, 3), dtype=np.uint8)
        canvas[:] = background
        mask_canvas = np.zeros((side, side), dtype=np.uint8)
        src_x0, src_y0 = max(x0, 0), max(y0, 0)
        src_x1, src_y1 = min(x0 + side, width), min(y0 + side, height)
        canvas[src_y0 - y0:src_y1 - y0, src_x0 - x0:src_x1 - x0] = image[src_y0:src_y1, src_x0:src_x1]
        mask_canvas[src_y0 - y0:src_y1 - y0, src_x0 - x0:src_x1 - x0] = mask[src_y0:src_y1, src_x0:src_x1]
        K = camera.K.copy()
        K[0, 2] -= x0
        K[1, 2] -= y0
        image, mask = canvas, mask_canvas
        camera = Camera(K=K, R=camera.R, t=camera.t, width=side, height=side)
    factor = size / camera.width
    if camera.width != size:
        interpolation = cv2.INTER_AREA if camera.width > size else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=interpolation)
        mask = np.where(cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR) >= 128, 255, 0).astype(np.uint8)
        camera = camera.scaled(factor)
        camera = Camera(K=camera.K, R=camera.R, t=camera.t, width=size, height=size)
    if not mask.any():
        raise ValueError("the person mask is empty after resizing the reference")
    return np.ascontiguousarray(image), np.ascontiguousarray(mask), camera


def read_generation_inputs(image_path: str | Path, *, mask_path: str | Path | None = None,
                           smpl_path: str | Path | None = None, camera_path: str | Path | None = None,
                           body_model: BodyModel, config: GenerateConfig = GenerateConfig(),
                           estimator: ReferenceEstimator | None = None) -> ReferenceInputs:
    """Read and check the reference image, mask, SMPL and camera files (or estimate what is missing).

    The mask comes from ``mask_path``, else the image's alpha channel, else ``estimator`` (default: a
    :class:`ReferenceEstimator` of ``config.estimators``: :mod:`gas_core.segment`). SMPL and camera come from
    their files (both or neither), else the estimator's monocular fit. The camera is scaled when its size
    differs from the image's with the same aspect ratio. Raises :class:`GenerateInputError`.
    """
    if estimator is None:
        estimator = ReferenceEstimator(config.estimators, body_model)
    image_path = Path(image_path)
    image, alpha = read_image_file(image_path)
    size = (image.shape[1], image.shape[0])
    sources = {"image": str(image_path)}
    mask = _given_mask(image_path, alpha, mask_path, size, float(config.reference.mask_threshold))
    if mask is not None:
        sources["mask"] = str(mask_path) if mask_path is not None else f"{image_path} (alpha channel)"
    else:
        mask = estimator.mask(image, image_path)
        sources["mask"] = "gas_core.segment"
    _check_fit_pair(smpl_path, camera_path)
    if smpl_path is not None:
        smpl = read_smpl_file(smpl_path, body_model)
        camera = _camera_for_image(read_camera_file(camera_path), size, camera_path, image_path)
        sources["smpl"], sources["camera"] = str(smpl_path), str(camera_path)
    else:
        smpl, camera = estimator.smpl_and_camera(image, mask, image_path)
        sources["smpl"] = sources["camera"] = "gas_core.body.fit.monocular"
    return ReferenceInputs(image=image, mask=mask, camera=camera, smpl=smpl, sources=sources)


def _given_mask(image_path: Path, alpha: np.ndarray | None, mask_path: str | Path | None, size: tuple[int, int],
                threshold: float) -> np.ndarray | None:
    """The mask uint8 (H, W) 0/255 from ``mask_path``, else the image's alpha channel, else None (to estimate)."""
    if mask_path is not None:
        return read_mask_file(mask_path, size, threshold)
    if alpha is None or not (alpha < 255).any():
        return None
    mask = np.where(alpha.astype(np.float32) / 255.0 >= threshold, 255, 0).astype(np.uint8)
    if not mask.any():
        raise GenerateInputError(f"image file {image_path}: its alpha channel marks no pixel as the person")
    return mask


def _check_fit_pair(smpl_path: str | Path | None, camera_path: str | Path | None) -> None:
    if (smpl_path is None) != (camera_path is None):
        missing = "camera" if camera_path is None else "SMPL"
        raise GenerateInputError(f"give both an SMPL and a camera file, or neither (the {missing} file is missing); "
                                 "they must come from one fit")


def _camera_for_image(camera: Camera, size: tuple[int, int], camera_path: str | Path, image_path: str | Path) -> Camera:
    """``camera`` for an image of ``size`` = (width, height): rescaled when only the scale differs."""
    if (camera.width, camera.height) == size:
        return camera
    if camera.width * size[1] != camera.height * size[0]:
        raise GenerateInputError(f"camera file {camera_path} is for {camera.width}x{camera.height} images but "
                                 f"image file {image_path} is {size[0]}x{size[1]}")
    camera = camera.scaled(size[0] / camera.width)
    return Camera(K=camera.K, R=camera.R, t=camera.t, width=size[0], height=size[1])


def check_input_files(inputs: "GenerateInputs", config: GenerateConfig) -> None:
    """Read and check every input file of ``inputs`` without loading any model (a second, not the minutes
    the models and a driving video's preprocessing take), so that :func:`generate` fails on a bad file first.

    Checked: the image decodes; the mask decodes, has the image's size and marks the person (or the
    image's alpha channel does); SMPL and camera are given together, parse, and the camera has the image's
    aspect ratio; pose mode: a pose file parses, a driving video exists and its first frame decodes, and
    its monocular fit has keypoints (``driver.keypoints.detector_weights`` or the video's ground truth).
    The SMPL file's body-model label is checked later, against the loaded body model.

    Raises:
        GenerateInputError: naming the file (or the setting) and the reason.
    """
    if config.mode == "pose" and inputs.poses is None:
        raise GenerateInputError("pose mode needs a pose sequence file (--poses)")
    image_path = Path(inputs.image)
    image, alpha = read_image_file(image_path)
    size = (image.shape[1], image.shape[0])
    _given_mask(image_path, alpha, inputs.mask, size, float(config.reference.mask_threshold))
    _check_fit_pair(inputs.smpl, inputs.camera)
    if inputs.smpl is not None:
        read_smpl_file(inputs.smpl)
        _camera_for_image(read_camera_file(inputs.camera), size, inputs.camera, image_path)
    if config.mode == "pose":
        if is_driving_video(inputs.poses):
            _check_driving_video(Path(inputs.poses), config)
        else:
            read_pose_sequence(inputs.poses)
