"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, with every weight read from local files.

``lpips.LPIPS(net=..., pretrained=True, pnet_rand=True)`` builds the metric with a *randomly
initialised* backbone (so torchvision downloads nothing) and the package's own calibrated linear
layers (``lpips/weights/v0.1/<net>.pth``, shipped inside the wheel). :class:`LPIPSMetric` then loads
the ImageNet backbone from ``backbone_weights``, a local file holding either

- torchvision's whole-model state dict (``features.0.weight``, …, ``classifier.*`` ignored) — the file
  torchvision caches as ``~/.cache/torch/hub/checkpoints/vgg16-397923af.pth`` /
  ``alexnet-owt-7be5be79.pth``, or
- the state dict of the ``features`` part alone (``0.weight``, ``0.bias``, ``2.weight``, …).

Every backbone tensor LPIPS uses must be in the file with its exact shape (strict loading).

To make the file on a machine with internet access::

    python -c "import torch, torchvision; torch.save(torchvision.models.vgg16(weights='IMAGENET1K_V1')
    .features.state_dict(), 'vgg16_features.pth')"

(``alexnet(weights='IMAGENET1K_V1')`` for the AlexNet variant), then copy it to the configured path.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import lpips as lpips_package
import torch
from torch import nn

from gas_core.metrics.image import _check_box, _checked_images

__all__ = ["LPIPS_BACKBONES", "LPIPSMetric", "backbone_weights_hint", "load_backbone_state"]

#: Backbones this wrapper supports and the torchvision constructor whose weights each needs.
LPIPS_BACKBONES = {"vgg": "vgg16", "alex": "alexnet"}

#: Smallest image side LPIPS accepts here (AlexNet's and VGG's five feature stages need 32 pixels).
_MIN_SIDE = 32


def backbone_weights_hint(network: str, path: Path) -> str:
    """How to produce the backbone file for ``network`` at ``path`` (used in error messages)."""
    constructor = LPIPS_BACKBONES.get(network, "vgg16")
    return (
        f"put torchvision's ImageNet {constructor} weights there: on a machine with internet access run "
        f"python -c \"import torch, torchvision; torch.save(torchvision.models.{constructor}"
        f"(weights='IMAGENET1K_V1').features.state_dict(), '{Path(path).name}')\" and copy the file to {path} "
        f"(torchvision's cached whole-model file from ~/.cache/torch/hub/checkpoints/ works too)"
    )


def load_backbone_state(path: Path, network: str) -> dict[str, torch.Tensor]:
    """Read a backbone file into a ``features`` state dict (keys ``"<index>.<param>"``).

    Raises:
        FileNotFoundError: naming ``path`` and how to make the file, when it does not exist.
        ValueError: if the file is not a state dict of torchvision's ``features`` layers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS backbone weights not found at {path}; {backbone_weights_hint(network, path)}")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (torchvision {LPIPS_BACKBONES.get(network)})")
    features: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in raw.items():
        if key.startswith("classifier."):
            continue
        name = key.removeprefix("features.")
        index = name.partition(".")[0]
        if not index.isdigit():
            unknown.append(key)
            continue
        features[name] = value
    if unknown:
        raise ValueError(f"{path}: keys that are not torchvision feature layers: {unknown[:5]}")
    return features


class LPIPSMetric(nn.Module):
    """LPIPS distance per image pair, inputs in ``[0, 1]`` (or uint8); lower is more similar.

    Args:
        backbone_weights: local file of the ImageNet backbone (see the module docstring).
        network: ``"vgg"`` (VGG16, the common choice for reporting, used by SHERF) or ``"alex"``.
        linear_weights: the calibrated linear layers; default: the file shipped in the ``lpips``
            package (``lpips/weights/v0.1/<network>.pth``).

    Raises:
        ValueError: unknown ``network``, or a backbone file whose tensors do not match it.
        FileNotFoundError: a missing ``backbone_weights`` or ``linear_weights`` file, named.
    """

    def __init__(self, backbone_weights: Path, *, network: Literal["vgg", "alex"] = "vgg",
                 linear_weights: Path | None = None) -> None:
        super().__init__()
        if network not in LPIPS_BACKBONES:
            raise ValueError(f"network must be one of {sorted(LPIPS_BACKBONES)}, got {network!r}")
        if linear_weights is not None and not Path(linear_weights).is_file():
            raise FileNotFoundError(f"LPIPS linear-layer weights not found at {linear_weights}; pass the "
                                    f"lpips package's weights/v0.1/{network}.pth or leave linear_weights unset")
        features = load_backbone_state(Path(backbone_weights), network)
        self.network = network
        self.backbone_weights = Path(backbone_weights)
        with warnings.catch_warnings():
            # lpips 0.1.4 still passes torchvision's deprecated ``pretrained=False``; nothing is downloaded.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models\._utils")
            self.model = lpips_package.LPIPS(net=network, pretrained=True, pnet_rand=True, verbose=False,
                                             model_path=None if linear_weights is None else str(linear_weights))
        # The package's slices keep torchvision's layer indices as module names (slice2.5 = features[5]).
        remapped: dict[str, torch.Tensor] = {}
        for name in self.model.net.state_dict():
            _, _, feature_name = name.partition(".")
            if feature_name not in features:
                raise ValueError(f"{backbone_weights}: missing backbone tensor {feature_name!r} for LPIPS-{network}; "
                                 f"{backbone_weights_hint(network, Path(backbone_weights))}")
            remapped[name] = features[feature_name]
        try:
            self.model.net.load_state_dict(remapped, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{backbone_weights}: backbone tensors do not fit LPIPS-{network}: {error}") from error
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def forward(self, pred: torch.Tensor, target: torch.Tensor, *, box: torch.Tensor | None = None,
                data_range: float | None = None) -> torch.Tensor:
        """LPIPS per image.

        Args:
            pred, target: ``(B, 3, H, W)``, floating point in ``[0, 1]`` or uint8, at least 32x32.
            box: optional ``(B, 4)`` integer corners ``x0, y0, x1, y1`` (end exclusive, at least 32
                pixels each way); each pair is cropped to its box and scored alone.
            data_range: the images' full scale (see :func:`gas_core.metrics.psnr`); None: uint8 / 255,
                floating point must lie in [0, 1].

        Returns:
            ``(B,)`` float32 distances on the device of the metric.

        Raises:
            ValueError: bad shapes or boxes, or floating-point input outside [0, 1] without ``data_range``.
        """
        pred, target = _checked_images(pred, target, data_range)
        if min(pred.shape[-2:]) < _MIN_SIDE:
            raise ValueError(f"images must be at least {_MIN_SIDE} pixels on each side for LPIPS, got {tuple(pred.shape[-2:])}")
        parameter = next(self.model.parameters())
        pred = pred.to(device=parameter.device, dtype=parameter.dtype)
        target = target.to(device=parameter.device, dtype=parameter.dtype)
        if box is not None:
            values = [
                self.model(pred[i:i + 1, :, y0:y1, x0:x1], target[i:i + 1, :, y0:y1, x0:x1], normalize=True).flatten()
                for i, (x0, y0, x1, y1) in enumerate(_check_box(box, pred, min_size=_MIN_SIDE))
            ]
            return torch.cat(values)
        return self.model(pred, target, normalize=True).flatten()
