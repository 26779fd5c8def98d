"""Fréchet Video Distance (Unterthiner et al. 2018): I3D features of real and generated videos, and the
Fréchet distance between their Gaussian fits.

The network is Inception-v1 inflated to 3D (I3D, Carreira & Zisserman 2017), RGB stream, written here in
plain torch with the layer names of the widely used PyTorch port (``Conv3d_1a_7x7``,
``MaxPool3d_2a_3x3``, …, ``Mixed_3b`` … ``Mixed_5c``, ``logits``; units hold ``conv3d`` and ``bn``,
inception blocks ``b0``, ``b1a``, ``b1b``, ``b2a``, ``b2b``, ``b3a`` (pool), ``b3b``). Converted
Kinetics-400 checkpoints in that layout — for example ``i3d_pretrained_400.pt``, the state dict used
by the VideoGPT / TATS family of FVD scripts — load strictly with :func:`load_i3d`. TensorFlow's
"SAME" padding is reproduced (zero padding, split front/back as TF does).

Feature choice: **the 400 Kinetics logits**, averaged over the remaining time steps, as the original
FVD and the VideoGPT-style implementations use (not the 1024-d pooled features;
:meth:`InceptionI3d.pooled_features` gives those for other uses). Preprocessing
(:class:`I3DFeatureExtractor`): frames in ``[0, 1]`` are resized so the shorter side is 224 (bilinear,
``align_corners=False``, no antialiasing, as those scripts do), centre-cropped to 224x224 and mapped to
``[-1, 1]``. The network needs at least 9 frames (its temporal strides leave 2 steps for the final
2x7x7 average pool); the paper's clips have 20.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "I3D_INPUT_SIZE",
    "I3D_MIN_FRAMES",
    "InceptionI3d",
    "load_i3d",
    "I3DFeatureExtractor",
    "preprocess_for_i3d",
    "FrechetStatistics",
    "feature_statistics",
    "frechet_distance",
]

#: Spatial size of I3D's input (frames are resized and centre-cropped to it).
I3D_INPUT_SIZE = 224
#: Fewest frames the network accepts (temporal strides 2, 2, 2 must leave 2 steps for the 2x7x7 pool).
I3D_MIN_FRAMES = 9


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one axis: (front, back), front = total // 2."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    pads: list[int] = []
    for axis in (2, 1, 0):  # F.pad takes the last axis first: W, H, T
        pads.extend(_same_padding(x.shape[2 + axis], kernel[axis], stride[axis]))
    return F.pad(x, pads)


class _Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm3d + ReLU with TF "SAME" padding; the logits layer has a bias and no BN/ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1), *, batch_norm_eps: float, classifier: bool = False) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.classifier = classifier
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=classifier)
        if not classifier:
            self.bn = nn.BatchNorm3d(out_channels, eps=batch_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.classifier:
            return x
        return F.relu(self.bn(x))


class _SamePool3d(nn.Module):
    """Max pooling with TF "SAME" zero padding (inputs follow a ReLU, so zeros never win over data)."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int]) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class _InceptionBlock(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max pool -> 1x1; concatenated on channels."""

    def __init__(self, in_channels: int, widths: Sequence[int], *, batch_norm_eps: float) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3b = widths
        self.b0 = _Unit3D(in_channels, b0, batch_norm_eps=batch_norm_eps)
        self.b1a = _Unit3D(in_channels, b1a, batch_norm_eps=batch_norm_eps)
        self.b1b = _Unit3D(b1a, b1b, (3, 3, 3), batch_norm_eps=batch_norm_eps)
        self.b2a = _Unit3D(in_channels, b2a, batch_norm_eps=batch_norm_eps)
        self.b2b = _Unit3D(b2a, b2b, (3, 3, 3), batch_norm_eps=batch_norm_eps)
        self.b3a = _SamePool3d((3, 3, 3), (1, 1, 1))
        self.b3b = _Unit3D(in_channels, b3b, batch_norm_eps=batch_norm_eps)
        self.out_channels = b0 + b1b + b2b + b3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


#: Inception block widths (b0, b1a, b1b, b2a, b2b, b3b) of Inception-v1, by block name.
_BLOCK_WIDTHS: dict[str, tuple[int, ...]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


#: The trunk's modules in the order they run (the public port's end points up to Mixed_5c).
_TRUNK_ORDER = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
    "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
)


class InceptionI3d(nn.Module):
    """I3D (Inception-v1 inflated), RGB, with the public PyTorch port's module names.

    Args:
        num_classes: width of the ``logits`` layer (400 for Kinetics-400 checkpoints).
        batch_norm_eps: BatchNorm epsilon. 1e-5 is what the VideoGPT-family FVD code runs
            ``i3d_pretrained_400.pt`` with; the original TensorFlow I3D used 1e-3.

    Input ``(B, 3, T, 224, 224)`` in ``[-1, 1]`` with ``T >= 9``.
    """

    def __init__(self, num_classes: int = 400, *, batch_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        eps = batch_norm_eps
        self.Conv3d_1a_7x7 = _Unit3D(3, 64, (7, 7, 7), (2, 2, 2), batch_norm_eps=eps)
        self.MaxPool3d_2a_3x3 = _SamePool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = _Unit3D(64, 64, batch_norm_eps=eps)
        self.Conv3d_2c_3x3 = _Unit3D(64, 192, (3, 3, 3), batch_norm_eps=eps)
        self.MaxPool3d_3a_3x3 = _SamePool3d((1, 3, 3), (1, 2, 2))
        channels = 192
        pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
                 "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2))}
        for name, widths in _BLOCK_WIDTHS.items():
            if name in pools:
                pool_name, kernel, stride = pools[name]
                self.add_module(pool_name, _SamePool3d(kernel, stride))
            block = _InceptionBlock(channels, widths, batch_norm_eps=eps)
            self.add_module(name, block)
            channels = block.out_channels
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.logits = _Unit3D(channels, num_classes, classifier=True, batch_norm_eps=eps)
        self.feature_channels = channels  # 1024

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> Mixed_5c output ``(B, 1024, ceil(T/8), ceil(H/32), ceil(W/32))``
        (``(B, 1024, ceil(T/8), 7, 7)`` at 224x224)."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"x must be a (B, 3, T, H, W) tensor, got {tuple(x.shape)}")
        if x.shape[2] < I3D_MIN_FRAMES:
            raise ValueError(f"I3D needs at least {I3D_MIN_FRAMES} frames, got {x.shape[2]}")
        for name in _TRUNK_ORDER:
            x = getattr(self, name)(x)
        return x

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (I3D_INPUT_SIZE, I3D_INPUT_SIZE):
            raise ValueError(f"I3D's classifier needs {I3D_INPUT_SIZE}x{I3D_INPUT_SIZE} frames, got "
                             f"{tuple(x.shape[-2:])} (resize with preprocess_for_i3d)")
        return self.avg_pool(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics logits averaged over time: ``(B, 3, T, 224, 224)`` in ``[-1, 1]`` -> ``(B, num_classes)``."""
        return self.logits(self.dropout(self._pooled(x))).mean(dim=(2, 3, 4))

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 1024-d average-pooled trunk features, averaged over time: ``(B, 1024)`` (not used for FVD here)."""
        return self._pooled(x).mean(dim=(2, 3, 4))


def load_i3d(path: Path, *, num_classes: int = 400, batch_norm_eps: float = 1e-5,
             device: torch.device | str = "cpu") -> InceptionI3d:
    """An :class:`InceptionI3d` in eval mode with weights loaded **strictly** from a local state dict.

    A leading ``module.`` on every key (saved from ``DataParallel``) is dropped; otherwise the keys
    must be exactly the network's (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1a.bn.running_mean``,
    ``logits.conv3d.bias``, …).

    Raises:
        FileNotFoundError: naming ``path`` and where such files come from, when it is missing.
        ValueError: when keys are missing or unexpected, or shapes differ (the first few named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"I3D weights not found at {path}; put a Kinetics-400 I3D state dict in the PyTorch-port layout "
            "there (for example i3d_pretrained_400.pt, the file VideoGPT-style FVD scripts download), "
            "copied from a machine with internet access")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    network = InceptionI3d(num_classes, batch_norm_eps=batch_norm_eps)
    result = network.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path}: not an I3D state dict in the expected layout; missing keys "
                         f"{result.missing_keys[:5]} ({len(result.missing_keys)} in all), unexpected keys "
                         f"{result.unexpected_keys[:5]} ({len(result.unexpected_keys)} in all)")
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network.eval().to(device)


def preprocess_for_i3d(videos: torch.Tensor) -> torch.Tensor:
    """``(B, F, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, F, 224, 224)`` in ``[-1, 1]``.

    Shorter side resized to 224 (bilinear, ``align_corners=False``, no antialiasing; the longer side
    rounded up), then a centre crop of 224x224.
    """
    if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or videos.shape[2] != 3:
        shape = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
        raise ValueError(f"videos must be a (B, F, 3, H, W) tensor in [0, 1], got {shape}")
    batch, frames, _, height, width = videos.shape
    scale = I3D_INPUT_SIZE / min(height, width)
    size = (I3D_INPUT_SIZE, math.ceil(width * scale)) if height <= width else (math.ceil(height * scale), I3D_INPUT_SIZE)
    flat = videos.reshape(batch * frames, 3, height, width).float()
    resized = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    top = (resized.shape[-2] - I3D_INPUT_SIZE) // 2
    left = (resized.shape[-1] - I3D_INPUT_SIZE) // 2
    cropped = resized[..., top:top + I3D_INPUT_SIZE, left:left + I3D_INPUT_SIZE]
    cropped = cropped.reshape(batch, frames, 3, I3D_INPUT_SIZE, I3D_INPUT_SIZE).transpose(1, 2)
    return cropped * 2.0 - 1.0


class I3DFeatureExtractor:
    """FVD features of videos: I3D Kinetics-400 logits, ``(B, F, 3, H, W)`` in ``[0, 1]`` -> ``(B, 400)``.

    Args:
        network: a loaded :class:`InceptionI3d` (see :func:`load_i3d`); used in eval mode.
        batch_size: videos per forward pass (memory bound: about 0.5 GB of activations per 20-frame
            video on CPU in float32).
    """

    def __init__(self, network: InceptionI3d, *, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.network = network.eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        """``(B, F, 3, H, W)`` in ``[0, 1]``, ``F >= 9`` -> ``(B, 400)`` float32 on the CPU."""
        if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or videos.shape[2] != 3:
            shape = tuple(videos.shape) if isinstance(videos, torch.Tensor) else type(videos).__name__
            raise ValueError(f"videos must be a (B, F, 3, H, W) tensor in [0, 1], got {shape}")
        if videos.shape[1] < I3D_MIN_FRAMES:
            raise ValueError(f"videos need at least {I3D_MIN_FRAMES} frames for I3D, got {videos.shape[1]}")
        device = next(self.network.parameters()).device
        outputs = []
        for start in range(0, videos.shape[0], self.batch_size):
            chunk = preprocess_for_i3d(videos[start:start + self.batch_size].to(device))
            outputs.append(self.network(chunk).float().cpu())
        return torch.cat(outputs)


@dataclass(frozen=True)
class FrechetStatistics:
    """Gaussian fit of a feature set: ``mean`` (D,), ``covariance`` (D, D) with ``ddof=1``, ``count`` N (float64).

    Keep the statistics of a fixed ground-truth set to compare many methods against it.
    """

    mean: np.ndarray
    covariance: np.ndarray
    count: int


def feature_statistics(features: np.ndarray | torch.Tensor) -> FrechetStatistics:
    """Mean and sample covariance (``ddof=1``, as ``np.cov``) of ``(N, D)`` features, N >= 2, in float64."""
    array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"features must be an (N, D) array with N >= 2, got shape {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("features contain NaN or infinite values")
    return FrechetStatistics(array.mean(axis=0), np.cov(array, rowvar=False, ddof=1).reshape(array.shape[1], -1),
                             int(array.shape[0]))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: FrechetStatistics | np.ndarray | torch.Tensor,
                     b: FrechetStatistics | np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussian fits: ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    ``a`` and ``b`` are ``(N, D)`` feature arrays or their :class:`FrechetStatistics`. The trace of the
    matrix square root is computed without ``sqrtm`` of the non-symmetric product:
    ``tr (S_a S_b)^(1/2) = tr (S_a^(1/2) S_b S_a^(1/2))^(1/2)``, a symmetric positive semi-definite
    matrix, so two symmetric eigen-decompositions in float64 (negative rounding eigenvalues clipped
    at 0) give it without complex parts, also when N < D makes the covariances singular. The result
    is clipped at 0 (identical sets give a rounding-level value).
    """
    first = a if isinstance(a, FrechetStatistics) else feature_statistics(a)
    second = b if isinstance(b, FrechetStatistics) else feature_statistics(b)
    if first.mean.shape != second.mean.shape:
        raise ValueError(f"feature dimensions differ: {first.mean.shape[0]} and {second.mean.shape[0]}")
    root_first = _psd_sqrt(first.covariance)
    inner = root_first @ second.covariance @ root_first
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())
    difference = first.mean - second.mean
    distance = float(difference @ difference + np.trace(first.covariance) + np.trace(second.covariance) - 2 * trace_root)
    return max(distance, 0.0)
