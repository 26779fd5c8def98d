"""What the input files leave out, estimated: the person mask (segmenter), the SMPL and camera (monocular fit)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gas_core.body.smpl import MAX_BETAS, BodyModel
from gas_core.cameras import Camera
from pipelines.generate.config import EstimatorConfig
from pipelines.generate.files import GenerateInputError

logger = logging.getLogger(__name__)


class ReferenceEstimator:
    """Fills in what the input files leave out: the person mask (:mod:`gas_core.segment`: person boxes, then
    a box-prompted SAM mask) and the SMPL fit with its camera (COCO-17 keypoints, then
    :func:`gas_core.body.fit.monocular.fit_smpl_monocular`).

    The models are built from ``config`` on first use; ready ones may be passed instead: ``person_detector``
    (``detect(frame) -> Detections``), ``box_masker`` (``mask(frame, box) -> (H, W) bool``) and
    ``keypoint_detector`` (a callable ``(image (H, W, 3) uint8, box (4,)) -> (17, 3)`` u, v, confidence).
    """

    def __init__(self, config: EstimatorConfig, body_model: BodyModel, *, person_detector: Any = None,
                 box_masker: Any = None, keypoint_detector: Any = None) -> None:
        self.config = config
        self.body_model = body_model
        self.person_detector = person_detector
        self.box_masker = box_masker
        self.keypoint_detector = keypoint_detector

    def mask(self, image: np.ndarray, image_path: Path) -> np.ndarray:
        """Person mask uint8 (H, W) 0/255 of ``image`` (H, W, 3) uint8 RGB."""
        from gas_core.segment.video import VideoMasker

        masking = replace(self.config.masking, smoothing_window=1)
        has_detector = self.person_detector is not None or masking.detector_weights is not None or \
            masking.grounding_dino_config is not None
        has_masker = self.box_masker is not None or masking.sam_checkpoint is not None
        if not (has_detector and has_masker):
            raise GenerateInputError(
                f"no mask file was given for {image_path}; segmenting one image needs a person detector and SAM: set "
                "estimators.masking.detector_weights (or grounding_dino_config/_weights) and "
                "estimators.masking.sam_checkpoint to local weight files, or pass --mask")
        try:
            masker = VideoMasker(masking, detector=self.person_detector, box_masker=self.box_masker)
            masks = [masker.process(image[None]), masker.finish()]
        except (ValueError, FileNotFoundError, OSError) as error:
            raise GenerateInputError(f"segmenting {image_path} failed: {error}") from error
        found = [part.masks for part in masks if len(part)]
        mask = found[0][0] if found else np.zeros(image.shape[:2], np.uint8)
        if not mask.any():
            raise GenerateInputError(f"no person was found in {image_path}; pass --mask")
        return np.where(mask > 0, 255, 0).astype(np.uint8)

    def smpl_and_camera(self, image: np.ndarray, mask: np.ndarray, image_path: Path) -> tuple[dict[str, Any], Camera]:
        """SMPL dict (world = camera frame) and camera of the person in ``image``, from a monocular fit."""
        from gas_core.body.fit.monocular import detect_video_keypoints, fit_smpl_monocular

        rows, cols = np.nonzero(mask)
        box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float64)
        if self.keypoint_detector is not None:
            keypoints = np.asarray(self.keypoint_detector(image, box), dtype=np.float64)[None]
        elif self.config.keypoint_weights is not None:
            try:
                keypoints = detect_video_keypoints(self.config.keypoint_weights, [image], box[None],
                                                   device=self.config.monocular.device)
            except (ValueError, FileNotFoundError, OSError) as error:
                raise GenerateInputError(f"keypoints of {image_path}: {error}") from error
        else:
            raise GenerateInputError(
                f"no SMPL and camera files were given for {image_path}; the monocular fit needs a keypoint detector: set "
                "estimators.keypoint_weights to a local ultralytics pose checkpoint, or pass --smpl and --camera")
        try:
            fit = fit_smpl_monocular(self.body_model, keypoints, (image.shape[1], image.shape[0]), self.config.monocular)
        except ValueError as error:
            raise GenerateInputError(f"the monocular body fit of {image_path} failed: {error}") from error
        params = fit.params
        smpl = {"betas": params.betas[0].detach().cpu().double().numpy(),
                "body_pose": params.body_pose[0].detach().cpu().double().numpy(),
                "global_orient": params.global_orient[0].detach().cpu().double().numpy(),
                "transl": params.transl[0].detach().cpu().double().numpy(),
                "scale": float(params.scale[0]), "body_model": self.body_model.label}
        smpl["betas"] = np.pad(smpl["betas"], (0, MAX_BETAS - smpl["betas"].size))
        logger.info("monocular fit of %s: reprojection error %.1f px", image_path, float(np.nanmean(fit.reprojection_error_px)))
        return smpl, fit.camera
