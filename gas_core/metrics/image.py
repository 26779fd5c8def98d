"""Per-image fidelity metrics: PSNR and SSIM, batched torch implementations.

Images are ``(B, 3, H, W)`` tensors: floating point in ``[0, 1]`` (data range 1), or ``uint8`` in
``[0, 255]`` (divided by 255 first); floating-point input outside ``[0, 1]`` (beyond
:data:`RANGE_TOLERANCE`) is refused with a ``ValueError`` naming the argument unless ``data_range=``
says its scale (the images are then divided by it, as skimage scores with that ``data_range``). Every
function returns one value per image, ``(B,)`` float64, and leaves averaging over images, views and
subjects to the caller. Three regions are supported, the ways papers in this field report them:

- the whole image (Table 1's 2K2K column: outputs scored as they are);
- a **mask** ``(B, 1, H, W)`` of weights in ``[0, 1]``: only the masked pixels count (PSNR: masked mean
  squared error; SSIM: mask-weighted mean of the SSIM map). To score with the background *removed*
  instead (Table 1's THuman column), composite both images onto one background with
  :func:`composite_on_background` and score the whole image;
- a **box** ``(B, 4)`` of integer pixel corners ``x0, y0, x1, y1`` (end exclusive), as SHERF reports
  its numbers "inside the person's bounding box": each image is cropped to its box and scored alone.
  :func:`mask_bounding_box` gives the box of a mask.

SSIM follows Wang et al. (2004) exactly as ``skimage.metrics.structural_similarity(im1, im2,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=0)``
computes it: an 11-tap Gaussian window (sigma 1.5, truncated at 3.5 sigma, normalised), K1 = 0.01,
K2 = 0.03, population (not sample) covariances, the SSIM map kept only where the window lies inside
the image (skimage crops 5 pixels from each border after filtering, which is the same), averaged per
channel and then over the three channels. Both metrics are computed in float64.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = [
    "RANGE_TOLERANCE",
    "SSIM_SIGMA",
    "SSIM_TRUNCATE",
    "SSIM_RADIUS",
    "psnr",
    "ssim",
    "ssim_map",
    "mask_bounding_box",
    "composite_on_background",
]

#: Standard deviation of SSIM's Gaussian window, in pixels (Wang et al. 2004; skimage ``sigma``).
SSIM_SIGMA = 1.5
#: The window is cut at this many standard deviations (skimage's value with ``gaussian_weights``).
SSIM_TRUNCATE = 3.5
#: Radius of the window in pixels, ``int(truncate * sigma + 0.5)`` as scipy.ndimage rounds it: 5 (11 taps).
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
_K1 = 0.01
_K2 = 0.03
#: How far floating-point images may stray outside [0, 1] (rounding in decoders and composites) before
#: they are refused as being on another scale (0-255, [-1, 1]).
RANGE_TOLERANCE = 1e-3


def _check_images(pred: torch.Tensor, target: torch.Tensor) -> None:
    for label, image in (("pred", pred), ("target", target)):
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"{label} must be a (B, 3, H, W) tensor (floating point in [0, 1] or uint8), got {shape}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def _unit_range(image: torch.Tensor, label: str, data_range: float | None) -> torch.Tensor:
    """``image`` on the [0, 1] scale: divided by ``data_range`` when given, uint8 divided by 255 (both
    float64), floating point checked to lie in [0, 1] (within :data:`RANGE_TOLERANCE`) and returned as
    it is. ``label`` names the argument in errors."""
    if data_range is not None:
        if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not math.isfinite(data_range) \
                or data_range <= 0:
            raise ValueError(f"data_range must be a positive finite number, got {data_range!r}")
        return image.to(torch.float64) / float(data_range)
    if image.dtype == torch.uint8:
        return image.to(torch.float64) / 255.0
    if not image.is_floating_point():
        raise ValueError(f"{label} has dtype {image.dtype}; give uint8 (0-255) or floating point in [0, 1] images, "
                         "or pass data_range")
    if image.numel():
        low, high = (float(v) for v in torch.aminmax(image.detach().float()))
        if not (low >= -RANGE_TOLERANCE and high <= 1.0 + RANGE_TOLERANCE):  # also false for NaN
            raise ValueError(f"{label} holds values in [{low:.4g}, {high:.4g}], not in [0, 1]: convert it "
                             "(0-255 images: pass uint8 or data_range=255; [-1, 1]: (x + 1) / 2) or pass data_range")
    return image


def _checked_images(pred: torch.Tensor, target: torch.Tensor,
                    data_range: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``pred`` and ``target`` checked (:func:`_check_images`) and brought to the [0, 1] scale (:func:`_unit_range`)."""
    _check_images(pred, target)
    return _unit_range(pred, "pred", data_range), _unit_range(target, "target", data_range)


def _check_mask(mask: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    batch, _, height, width = images.shape
    if not isinstance(mask, torch.Tensor) or mask.shape not in ((batch, 1, height, width), (batch, height, width)):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a ({batch}, 1, {height}, {width}) tensor of weights in [0, 1], got {shape}")
    mask = mask.reshape(batch, 1, height, width).to(device=images.device, dtype=torch.float64)
    if bool((mask < 0).any()) or bool((mask > 1).any()):
        raise ValueError("mask values must lie in [0, 1]")
    return mask


def _check_box(box: torch.Tensor, images: torch.Tensor, min_size: int) -> list[tuple[int, int, int, int]]:
    batch, _, height, width = images.shape
    if not isinstance(box, torch.Tensor) or tuple(box.shape) != (batch, 4):
        shape = tuple(box.shape) if isinstance(box, torch.Tensor) else type(box).__name__
        raise ValueError(f"box must be a ({batch}, 4) tensor of pixel corners x0, y0, x1, y1, got {shape}")
    corners = [tuple(int(v) for v in row) for row in box.tolist()]
    for index, (x0, y0, x1, y1) in enumerate(corners):
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ValueError(f"box[{index}] = {(x0, y0, x1, y1)} is empty or outside the {width}x{height} image")
        if x1 - x0 < min_size or y1 - y0 < min_size:
            raise ValueError(f"box[{index}] = {(x0, y0, x1, y1)} is smaller than {min_size}x{min_size} pixels")
    return corners


def psnr(pred: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None,
         box: torch.Tensor | None = None, data_range: float | None = None) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB, on the [0, 1] scale: ``10 log10(1 / MSE)``.

    Args:
        pred, target: ``(B, 3, H, W)`` images, floating point in ``[0, 1]`` or uint8 in ``[0, 255]``.
        mask: optional ``(B, 1, H, W)`` weights in ``[0, 1]``; the mean squared error is then
            ``sum(mask * err^2) / (3 * sum(mask))`` over masked pixels of all three channels.
        box: optional ``(B, 4)`` integer corners ``x0, y0, x1, y1`` (end exclusive); each image is
            cropped to its box first. ``mask`` and ``box`` can be combined (the mask is cropped too).
        data_range: the images' full scale (e.g. 255 for 0-255 floats); both are divided by it and
            not range-checked. None: uint8 is divided by 255, floating point must lie in [0, 1].

    Returns:
        ``(B,)`` float64; ``inf`` where the images agree exactly. Equal to
        ``skimage.metrics.peak_signal_noise_ratio(target, pred, data_range=...)`` on the same pixels
        (uint8 input: skimage's default data range 255).

    Raises:
        ValueError: on mismatched shapes, floating-point input outside [0, 1] without ``data_range``
            (naming ``pred`` or ``target``), a bad mask or box, or a mask with no weight in an image.
    """
    pred, target = _checked_images(pred, target, data_range)
    weights = _check_mask(mask, pred) if mask is not None else None
    squared = (pred.to(torch.float64) - target.to(torch.float64)) ** 2
    if box is not None:
        values = []
        for index, (x0, y0, x1, y1) in enumerate(_check_box(box, pred, min_size=1)):
            crop = squared[index:index + 1, :, y0:y1, x0:x1]
            crop_weights = None if weights is None else weights[index:index + 1, :, y0:y1, x0:x1]
            values.append(_psnr_from_squared(crop, crop_weights))
        return torch.cat(values)
    return _psnr_from_squared(squared, weights)


def _psnr_from_squared(squared: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        mse = squared.mean(dim=(1, 2, 3))
    else:
        total = weights.sum(dim=(1, 2, 3)) * squared.shape[1]
        if bool((total <= 0).any()):
            raise ValueError("mask has no weight in at least one image (inside its box, if a box is given)")
        mse = (squared * weights).sum(dim=(1, 2, 3)) / total
    return 10.0 * torch.log10(1.0 / mse)


@functools.lru_cache(maxsize=8)
def _window_band(size: int, device: torch.device) -> torch.Tensor:
    """``(size - 10, size)`` float64 matrix whose row ``i`` holds the 11 normalised Gaussian taps at
    columns ``i .. i + 10``: multiplying by it filters one axis where the window fits."""
    offsets = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    taps = taps / taps.sum()
    width = 2 * SSIM_RADIUS + 1
    band = torch.zeros(size - width + 1, size, dtype=torch.float64)
    for row in range(size - width + 1):
        band[row, row:row + width] = taps
    return band.to(device)


def _filter_valid(images: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of float64 ``(..., H, W)``, kept where the window fits: ``(..., H-10, W-10)``.

    Two banded matrix products (exact to float64 rounding; on CPU faster than a grouped float64
    convolution, on GPU a plain matmul).
    """
    rows = _window_band(images.shape[-2], images.device)
    cols = _window_band(images.shape[-1], images.device)
    return rows @ images @ cols.T


def ssim_map(pred: torch.Tensor, target: torch.Tensor, *, data_range: float | None = None) -> torch.Tensor:
    """The SSIM map per channel where the Gaussian window lies inside the image.

    Args:
        pred, target: ``(B, 3, H, W)`` images, floating point in ``[0, 1]`` or uint8, ``H, W >= 11``.
        data_range: the images' full scale (see :func:`psnr`); None: uint8 / 255 or [0, 1] floats.

    Returns:
        ``(B, 3, H - 10, W - 10)`` float64: pixel ``(i, j)`` is the SSIM at image pixel
        ``(i + 5, j + 5)``, equal to skimage's ``full=True`` map cropped by 5 pixels on each side.
    """
    return _ssim_map_unit(*_checked_images(pred, target, data_range))


def _ssim_map_unit(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`ssim_map` of images already on the [0, 1] scale."""
    if min(pred.shape[-2:]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"images must be at least {2 * SSIM_RADIUS + 1} pixels on each side for SSIM, "
                         f"got {tuple(pred.shape[-2:])}")
    maps = [_ssim_map_float64(pred[start:start + _IMAGES_PER_CHUNK].to(torch.float64),
                              target[start:start + _IMAGES_PER_CHUNK].to(torch.float64))
            for start in range(0, pred.shape[0], _IMAGES_PER_CHUNK)]
    return torch.cat(maps)


#: Images filtered together in :func:`ssim_map` (bounds memory: about 0.1 GB per 512x512 image in flight).
_IMAGES_PER_CHUNK = 4


def _ssim_map_float64(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    stacked = torch.stack([x, y, x * x, y * y, x * y], dim=1)  # (B, 5, 3, H, W)
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = _filter_valid(stacked).unbind(dim=1)
    var_x = mean_xx - mean_x * mean_x
    var_y = mean_yy - mean_y * mean_y
    cov_xy = mean_xy - mean_x * mean_y
    c1 = _K1 ** 2
    c2 = _K2 ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim(pred: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None,
         box: torch.Tensor | None = None, data_range: float | None = None) -> torch.Tensor:
    """Structural similarity per image (Gaussian window, skimage's settings; see the module docstring).

    Args:
        pred, target: ``(B, 3, H, W)`` images, floating point in ``[0, 1]`` or uint8, at least 11x11.
        mask: optional ``(B, 1, H, W)`` weights in ``[0, 1]``: the SSIM map is averaged with these
            weights (cropped like the map, 5 pixels per border) instead of uniformly.
        box: optional ``(B, 4)`` integer corners ``x0, y0, x1, y1`` (end exclusive), each at least
            11 pixels wide and high; each image is cropped to its box and scored alone (the mask, if
            given, is cropped with it).
        data_range: the images' full scale (see :func:`psnr`); None: uint8 / 255 or [0, 1] floats.

    Returns:
        ``(B,)`` float64 in ``[-1, 1]``; without mask and box equal to
        ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1, channel_axis=0)`` per image (uint8 input: ``data_range=255`` on the raw values).

    Raises:
        ValueError: on mismatched shapes, floating-point input outside [0, 1] without ``data_range``
            (naming the argument), images or boxes under 11 pixels, a bad mask, or a mask with no weight
            inside the valid part of the map.
    """
    pred, target = _checked_images(pred, target, data_range)
    weights = _check_mask(mask, pred) if mask is not None else None
    if box is not None:
        values = []
        for index, (x0, y0, x1, y1) in enumerate(_check_box(box, pred, min_size=2 * SSIM_RADIUS + 1)):
            crop_weights = None if weights is None else weights[index:index + 1, :, y0:y1, x0:x1]
            values.append(_mean_ssim(pred[index:index + 1, :, y0:y1, x0:x1],
                                     target[index:index + 1, :, y0:y1, x0:x1], crop_weights))
        return torch.cat(values)
    return _mean_ssim(pred, target, weights)


def _mean_ssim(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    similarity = _ssim_map_unit(pred, target)
    if weights is None:
        return similarity.mean(dim=(1, 2, 3))
    inner = weights[:, :, SSIM_RADIUS:-SSIM_RADIUS, SSIM_RADIUS:-SSIM_RADIUS]
    total = inner.sum(dim=(1, 2, 3))
    if bool((total <= 0).any()):
        raise ValueError("mask has no weight inside the SSIM map (5 pixels in from the border) in at least one image")
    return (similarity * inner).sum(dim=(2, 3)).mean(dim=1) / total


def mask_bounding_box(mask: torch.Tensor, *, threshold: float = 0.5, margin: int = 0) -> torch.Tensor:
    """Tight box around the pixels of each mask above ``threshold``, grown by ``margin`` pixels.

    Args:
        mask: ``(B, 1, H, W)`` or ``(B, H, W)`` mask (any real values; foreground is ``> threshold``).
        threshold: foreground cut.
        margin: pixels added on every side, clipped to the image.

    Returns:
        ``(B, 4)`` int64 corners ``x0, y0, x1, y1`` (end exclusive), the ``box`` argument of
        :func:`psnr`, :func:`ssim` and the LPIPS metric.

    Raises:
        ValueError: on a bad shape, a negative margin, or an image with no foreground pixel.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (3, 4) or (mask.ndim == 4 and mask.shape[1] != 1):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a (B, 1, H, W) or (B, H, W) tensor, got {shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    foreground = mask.reshape(mask.shape[0], *mask.shape[-2:]) > threshold
    height, width = foreground.shape[-2:]
    boxes = []
    for index, image in enumerate(foreground):
        rows = torch.nonzero(image.any(dim=1)).flatten()
        cols = torch.nonzero(image.any(dim=0)).flatten()
        if rows.numel() == 0:
            raise ValueError(f"mask[{index}] has no pixel above {threshold}")
        boxes.append([max(int(cols[0]) - margin, 0), max(int(rows[0]) - margin, 0),
                      min(int(cols[-1]) + 1 + margin, width), min(int(rows[-1]) + 1 + margin, height)])
    return torch.tensor(boxes, dtype=torch.int64)


def composite_on_background(images: torch.Tensor, mask: torch.Tensor, background: float = 1.0) -> torch.Tensor:
    """``images * mask + background * (1 - mask)``: the protocol's background removal.

    Args:
        images: ``(B, 3, H, W)`` in ``[0, 1]``.
        mask: ``(B, 1, H, W)`` weights in ``[0, 1]`` (the ground-truth person mask, applied to both the
            prediction and the ground truth before scoring).
        background: grey level in ``[0, 1]`` of the removed background (1 = white).

    Returns:
        ``(B, 3, H, W)`` in the dtype of ``images``.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}")
    if not 0.0 <= background <= 1.0:
        raise ValueError(f"background must lie in [0, 1], got {background}")
    weights = _check_mask(mask, images).to(images.dtype)
    return images * weights + background * (1 - weights)
