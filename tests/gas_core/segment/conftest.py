"""Synthetic blob scenes for the segmentation tests: figure-like shapes over a textured static background."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


def textured_background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 static background: smooth colour noise plus stripes (never black)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(70, 190, size=(height // 8 + 1, width // 8 + 1, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    stripes = 20 * np.sin(np.arange(width, dtype=np.float32) / 3.0)[None, :, None]
    return np.clip(smooth + stripes, 0, 255).astype(np.uint8)


def draw_figure(frame: np.ndarray, mask: np.ndarray, center_x: float, color: tuple[int, int, int],
                scale: float = 1.0) -> None:
    """Paint a standing figure (body ellipse, head disc) of ``color`` centred at ``center_x`` in place."""
    height = frame.shape[0]
    layer = np.zeros(frame.shape[:2], np.uint8)
    cx = int(round(center_x))
    cy = int(height * 0.6)
    cv2.ellipse(layer, (cx, cy), (int(9 * scale), int(20 * scale)), 0, 0, 360, 255, -1)
    cv2.circle(layer, (cx, cy - int(27 * scale)), int(7 * scale), 255, -1)
    inside = layer > 0
    frame[inside] = color
    mask |= inside


@pytest.fixture
def blob_scene():
    """Factory: ``scene(num_frames, figures)`` -> frames (T, H, W, 3) uint8, masks (T, H, W) bool of figure 0.

    ``figures``: list of ``(start_x, velocity_x, color, first_frame)``; figure 0 is the subject.
    """

    def scene(num_frames: int, figures, height: int = 96, width: int = 128, noise: float = 2.0, seed: int = 0):
        rng = np.random.default_rng(seed)
        background = textured_background(height, width, seed)
        frames = np.empty((num_frames, height, width, 3), np.uint8)
        subject_masks = np.zeros((num_frames, height, width), bool)
        for t in range(num_frames):
            frame = background.copy()
            for number, (start_x, velocity, color, first) in enumerate(figures):
                if t < first:
                    continue
                figure_mask = np.zeros((height, width), bool)
                draw_figure(frame, figure_mask, start_x + velocity * t, color)
                if number == 0:
                    subject_masks[t] = figure_mask
            noisy = frame.astype(np.float32) + rng.normal(0, noise, frame.shape)
            frames[t] = np.clip(noisy, 0, 255).astype(np.uint8)
        return frames, subject_masks

    return scene


def mask_iou(first: np.ndarray, second: np.ndarray) -> float:
    """IoU of two boolean masks (1 when both are empty)."""
    union = np.logical_or(first, second).sum()
    return 1.0 if union == 0 else float(np.logical_and(first, second).sum() / union)


@pytest.fixture(scope="session")
def tiny_yolo_weights(tmp_path_factory):
    """A random-weight YOLOv8n detector built from its yaml (no download), its class 0 named "person"
    saved as a local .pt."""
    import torch
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("yolo") / "tiny_yolo.pt"
    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml")
    model.model.names = {index: ("person" if index == 0 else f"thing{index}") for index in range(80)}
    model.save(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_sam():
    """A random-weight Segment Anything model built from the upstream classes (masks are meaningless)."""
    from gas_core.segment.sam import build_random_sam

    return build_random_sam(image_size=64, embed_dim=32, depth=1, prompt_dim=32, seed=0)
