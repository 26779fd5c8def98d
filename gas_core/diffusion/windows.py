"""Long sequences with a fixed-length video model: overlapping windows that all keep the reference frame.

A window holds ``window`` frame indices: the reference frame 0 first, then ``window - 1``
consecutive frames. Consecutive windows share ``overlap`` frames besides the reference; the last
window is moved back to end on the last frame. At every denoising step each window is denoised
with the others' shared frames, and the predictions of a frame are averaged with triangular
weights (small at the window's edges, largest in its middle), as MimicMotion does, so seams fade
in and out instead of jumping. Memory depends on ``window``, never on the sequence length.

Two conventions name the overlap (``convention`` of :func:`sliding_windows`):

* ``"project"`` (the default): ``overlap`` counts the frames shared by consecutive windows BESIDES
  the reference frame 0.
* ``"official"``: the GAS release's ``tile_overlap``, which COUNTS the shared reference frame, so it is
  the project's overlap plus one. The release's tile 8, overlap 3 over 20 frames gives
  ``[0,1..7] [0,6..12] [0,11..17] [0,13..19]``, the project's ``sliding_windows(20, 8, 2)``.
  :func:`tiled_initial_noise` draws the release's initial noise (one window of noise repeated in time).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["WINDOW_CONVENTIONS", "overlap_range", "project_overlap", "sliding_windows", "tiled_initial_noise", "triangular_weights",
           "blend_windows"]

#: Names of the overlap conventions (see the module docstring).
WINDOW_CONVENTIONS = ("project", "official")


def overlap_range(window: int, convention: str = "project") -> tuple[int, int]:
    """The allowed ``overlap`` values ``[low, high)`` for windows of ``window`` frames in ``convention``:
    ``[0, window - 1)`` for ``"project"``, ``[1, window)`` for ``"official"`` (it counts the reference)."""
    if convention not in WINDOW_CONVENTIONS:
        raise ValueError(f"convention must be one of {WINDOW_CONVENTIONS}, got {convention!r}")
    return (1, window) if convention == "official" else (0, window - 1)


def project_overlap(window: int, overlap: int, convention: str = "project") -> int:
    """``overlap`` given in ``convention`` as the project's overlap (shared frames besides the reference).

    ``"project"``: ``0 <= overlap < window - 1``, returned as is. ``"official"`` (the release's
    ``tile_overlap``, reference included): ``1 <= overlap < window``, returned minus one.
    """
    if not isinstance(window, int) or isinstance(window, bool) or window < 2:
        raise ValueError(f"window must be an int >= 2, got {window!r}")
    low, high = overlap_range(window, convention)  # validates convention
    if convention == "official":
        if not isinstance(overlap, int) or isinstance(overlap, bool) or not low <= overlap < high:
            raise ValueError(f"overlap must be an int in [1, window) = [1, {window}) with the official convention "
                             f"(it counts the shared reference frame), got {overlap!r}")
        return overlap - 1
    return overlap


def sliding_windows(num_frames: int, window: int, overlap: int, *, convention: str = "project") -> list[list[int]]:
    """Frame indices of each window: lists of ``min(window, num_frames)`` ints, each starting with 0.

    Args:
        num_frames: frames in the sequence including the reference frame 0 (>= 1).
        window: frames per window including the reference (>= 2 unless ``num_frames`` is 1).
        overlap: frames shared by consecutive windows: besides the reference with ``convention``
            ``"project"`` (``0 <= overlap < window - 1``); counting the reference with ``"official"``,
            the release's ``tile_overlap`` (``1 <= overlap < window``).
        convention: ``"project"`` or ``"official"`` (see the module docstring).

    Every frame is in at least one window, and consecutive windows share at least the project's
    overlap of frames besides frame 0.
    """
    if convention not in WINDOW_CONVENTIONS:
        raise ValueError(f"convention must be one of {WINDOW_CONVENTIONS}, got {convention!r}")
    if convention == "official":
        overlap = project_overlap(window, overlap, convention)
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


def tiled_initial_noise(shape: tuple[int, ...], tile: int, *, generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> Tensor:
    """Standard normal float32 noise of ``shape`` ``(B, F, ...)`` that repeats along time with period ``tile``.

    As the release draws its initial latents: noise for ``tile`` frames is drawn once (one ``randn``
    call with ``generator``) and repeated along dim 1 until it covers the ``F`` frames (cut to ``F``;
    with ``F < tile`` only its first ``F`` frames are kept).
    """
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1:
        raise ValueError(f"tile must be a positive int, got {tile!r}")
    if len(shape) < 2:
        raise ValueError(f"shape must be (B, F, ...), got {tuple(shape)}")
    frames = shape[1]
    noise = torch.randn((shape[0], tile, *shape[2:]), generator=generator, device=device)
    repeats = -(-frames // tile)
    return noise.repeat(1, repeats, *([1] * (len(shape) - 2)))[:, :frames]


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
