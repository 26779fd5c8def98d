"""Long sequences with a fixed-length video model: overlapping windows that all keep the reference frame.

A window holds ``window`` frame indices: the reference frame 0 first, then ``window - 1``
consecutive frames. Consecutive windows share ``overlap`` frames besides the reference; the last
window is moved back to end on the last frame. At every denoising step each window is denoised
with the others' shared frames, and the predictions of a frame are averaged with triangular
weights (small at the window's edges, largest in its middle), as MimicMotion does, so seams fade
in and out instead of jumping. Memory depends on ``window``, never on the sequence length.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sliding_windows", "triangular_weights", "blend_windows"]


def sliding_windows(num_frames: int, window: int, overlap: int) -> list[list[int]]:
    """Frame indices of each window: lists of ``min(window, num_frames)`` ints, each starting with 0.

    Args:
        num_frames: frames in the sequence including the reference frame 0 (>= 1).
        window: frames per window including the reference (>= 2 unless ``num_frames`` is 1).
        overlap: frames (besides the reference) shared by consecutive windows, 0 <= overlap < window - 1.

    Every frame is in at least one window, and consecutive windows share at least ``overlap``
    frames besides frame 0.
    """
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be an int >= 2, got {window!r}")
    if not isinstance(overlap, int) or not 0 <= overlap < window - 1:
        raise ValueError(f"overlap must be an int in [0, window - 1) = [0, {window - 1}), got {overlap!r}")
    if num_frames <= window:
        return [list(range(num_frames))]
    span = window - 1  # frames after the reference in one window
    stride = span - overlap
    starts = list(range(1, num_frames - span + 1, stride))
    if starts[-1] + span < num_frames:
        starts.append(num_frames - span)
    return [[0, *range(start, start + span)] for start in starts]


def triangular_weights(window: int) -> Tensor:
    """float32 (window,) blending weights, ``min(w, 2 - w)`` with ``w = (k + 0.5) * 2 / window``: peak 1 mid-window."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    position = (torch.arange(window, dtype=torch.float32) + 0.5) * 2.0 / window
    return torch.minimum(position, 2.0 - position)


def blend_windows(predictions: list[Tensor], windows: list[list[int]], num_frames: int) -> Tensor:
    """Weighted average of per-window predictions (B, len(window), ...) into (B, num_frames, ...).

    Each window's frames get :func:`triangular_weights` of its length; a frame's result is the
    weighted mean over the windows that hold it.
    """
    if len(predictions) != len(windows) or not predictions:
        raise ValueError(f"predictions and windows must be non-empty and of equal length, got {len(predictions)}, {len(windows)}")
    first = predictions[0]
    total = first.new_zeros((first.shape[0], num_frames, *first.shape[2:]))
    weight_sum = first.new_zeros((num_frames,))
    for prediction, indices in zip(predictions, windows):
        if prediction.shape[1] != len(indices):
            raise ValueError(f"a prediction has {prediction.shape[1]} frames for a window of {len(indices)}")
        weights = triangular_weights(len(indices)).to(device=first.device, dtype=first.dtype)
        index = torch.as_tensor(indices, device=first.device)
        shape = (1, len(indices)) + (1,) * (prediction.ndim - 2)
        total.index_add_(1, index, prediction * weights.view(shape))
        weight_sum.index_add_(0, index, weights)
    if bool((weight_sum <= 0).any()):
        missing = torch.nonzero(weight_sum <= 0).flatten().tolist()
        raise ValueError(f"frames {missing} are in no window")
    return total / weight_sum.view((1, num_frames) + (1,) * (first.ndim - 2))
