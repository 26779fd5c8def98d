"""Temporal smoothing of per-frame masks: a streaming majority vote over a centred window.

Frame ``t``'s smoothed mask keeps a pixel when more than half of the valid frames in
``[t - window // 2, t + window // 2]`` have it (a tie is broken by frame ``t`` itself). Frames whose
subject was not found (``valid=False``) neither vote nor get a mask. A one-frame flicker (a blob
appearing or a hole opening in a single frame) is removed with ``window >= 3``. Output lags input by
``window // 2`` frames; :meth:`TemporalMaskSmoother.finish` releases the tail.

A subject that moves across the image would lose its leading and trailing edges to the vote; when frames
carry an ``anchor`` (the subject's box centre, pixels), each neighbour's mask is first shifted by the
difference of anchors (whole pixels), so the vote compares the subject with itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SmoothedMask", "TemporalMaskSmoother", "shifted"]


@dataclass(frozen=True)
class SmoothedMask:
    """A released frame: ``mask`` (H, W) bool after smoothing, ``valid`` and ``payload`` as pushed."""

    mask: np.ndarray
    valid: bool
    payload: Any


def shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` (H, W) moved by ``dx`` columns and ``dy`` rows (right / down positive), zeros shifted in."""
    height, width = mask.shape
    result = np.zeros_like(mask)
    if abs(dx) >= width or abs(dy) >= height:
        return result
    result[max(0, dy):height + min(0, dy), max(0, dx):width + min(0, dx)] = \
        mask[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
    return result


class TemporalMaskSmoother:
    """Streaming centred majority vote over ``window`` frames (odd, >= 1; 1 passes masks through)."""

    def __init__(self, window: int = 5) -> None:
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be an odd count >= 1, got {window}")
        self.window = int(window)
        self.half = self.window // 2
        self._frames: deque[tuple[np.ndarray, bool, Any, np.ndarray | None]] = deque()  # past + pending
        self._released = 0  # how many of _frames are already released (the past part)
        self._finished = False

    def _vote(self, position: int) -> np.ndarray:
        mask, valid, _, anchor = self._frames[position]
        if not valid:
            return np.zeros_like(mask)
        lo, hi = max(0, position - self.half), min(len(self._frames), position + self.half + 1)
        votes = np.zeros(mask.shape, np.int32)
        count = 0
        for other, other_valid, _, other_anchor in list(self._frames)[lo:hi]:
            if other_valid:
                if anchor is not None and other_anchor is not None:
                    dx, dy = np.rint(anchor - other_anchor).astype(int)
                    other = shifted(other, int(dx), int(dy))
                votes += other
                count += 1
        return (2 * votes > count) | ((2 * votes == count) & mask)

    def _release(self, until: int) -> list[SmoothedMask]:
        """Release frames at positions ``_released`` .. ``until - 1``."""
        released = []
        while self._released < until:
            position = self._released
            _, valid, payload, _ = self._frames[position]
            released.append(SmoothedMask(self._vote(position), valid, payload))
            self._released += 1
        while self._released > self.half:  # keep only the past frames later votes need
            self._frames.popleft()
            self._released -= 1
        return released

    def push(self, mask: np.ndarray, valid: bool = True, payload: Any = None,
             anchor: np.ndarray | None = None) -> list[SmoothedMask]:
        """Add the next frame's ``mask`` (H, W) bool; returns the frames released by it (in order).

        ``anchor``: (2,) ``x, y`` pixels of the subject in this frame (its box centre) for motion-aligned
        voting, or ``None`` (no alignment with this frame). ``payload`` comes back with the frame.
        """
        if self._finished:
            raise RuntimeError("TemporalMaskSmoother.finish() was called; make a new one for another video")
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
        if self._frames and mask.shape != self._frames[0][0].shape:
            raise ValueError(f"mask must keep the video's shape {self._frames[0][0].shape}, got {mask.shape}")
        if anchor is not None:
            anchor = np.asarray(anchor, dtype=np.float64).reshape(-1)
            if anchor.shape != (2,) or not np.all(np.isfinite(anchor)):
                raise ValueError(f"anchor must be two finite numbers x, y, got {anchor}")
        self._frames.append((mask, bool(valid), payload, anchor))
        return self._release(len(self._frames) - self.half)

    def finish(self) -> list[SmoothedMask]:
        """End of the video: release the last ``window // 2`` frames."""
        self._finished = True
        return self._release(len(self._frames))
