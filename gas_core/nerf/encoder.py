"""Image encoder of the reference view: a torchvision ResNet giving a global code and a feature map.

The masked reference image (background set to black) is normalised with ImageNet statistics and run
through a ResNet. ``global_code`` is the average-pooled last stage; ``feature_map`` fuses the stem
(1/2 resolution), ``layer1`` (1/4) and ``layer2`` (1/8), upsampled to 1/2 resolution and mixed by a
1x1 convolution, for the point- and pixel-level features. Weights can be initialised from a local
torchvision state-dict file (nothing is downloaded).

Batch-norm statistics are frozen: the layers always normalise with their running statistics (ImageNet's
when initialised from weights, the identity otherwise) and only their affine parameters train. Training
batches hold 1-4 reference images, too few for batch statistics, and frozen statistics keep
data-parallel processes identical.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

__all__ = ["ImageEncoder"]

logger = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _output_channels(stage: nn.Module) -> int:
    """Channels a ResNet stage outputs (its last batch norm's width)."""
    return [module for module in stage.modules() if isinstance(module, nn.BatchNorm2d)][-1].num_features


class ImageEncoder(nn.Module):
    """ResNet encoder.

    Args:
        backbone: a torchvision ResNet name ("resnet18", "resnet34", "resnet50", ...).
        feature_channels: channels of the fused feature map.
    """

    def __init__(self, backbone: str, feature_channels: int) -> None:
        super().__init__()
        if feature_channels < 1:
            raise ValueError(f"feature_channels must be >= 1, got {feature_channels}")
        if backbone not in torchvision.models.list_models(module=torchvision.models):
            raise ValueError(f"backbone must be a torchvision model name, got {backbone!r}")
        network = torchvision.models.get_model(backbone, weights=None)
        if not all(hasattr(network, name) for name in ("conv1", "bn1", "maxpool", "layer1", "layer4", "fc")):
            raise ValueError(f"backbone must be a torchvision ResNet, got {backbone!r}")
        self.global_channels = int(network.fc.in_features)
        network.fc = nn.Identity()
        self.backbone = network
        layer1_channels, layer2_channels = (_output_channels(network.layer1), _output_channels(network.layer2))
        self.fuse = nn.Conv2d(64 + layer1_channels + layer2_channels, feature_channels, kernel_size=1)
        self.feature_channels = feature_channels
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "ImageEncoder":
        """Set training mode, keeping every batch-norm layer in eval mode (frozen statistics)."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def load_backbone_weights(self, path: str | os.PathLike[str]) -> None:
        """Initialise the ResNet from a local torchvision state dict (``fc.*`` entries are ignored).

        Raises FileNotFoundError when the file is missing, ValueError when its tensors do not fit.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file {path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        try:
            missing, unexpected = self.backbone.load_state_dict(state, strict=False)
        except RuntimeError as error:  # tensors of the wrong shape
            raise ValueError(f"{path} does not match the ResNet: {error}") from error
        if missing or unexpected:
            raise ValueError(f"{path} does not match the ResNet: missing {missing[:5]}, unexpected {unexpected[:5]}")
        logger.info("image encoder initialised from %s", path)

    def forward(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Encode images (B, 3, H, W) in [0, 1] with masks (B, 1, H, W).

        Returns:
            global_code (B, global_channels) and feature_map (B, feature_channels, ceil(H/2), ceil(W/2)).
        """
        net = self.backbone
        x = ((image * mask) - self.mean) / self.std
        stem = net.relu(net.bn1(net.conv1(x)))
        layer1 = net.layer1(net.maxpool(stem))
        layer2 = net.layer2(layer1)
        layer4 = net.layer4(net.layer3(layer2))
        size = stem.shape[-2:]
        fused = torch.cat([
            stem,
            nn.functional.interpolate(layer1, size=size, mode="bilinear", align_corners=False),
            nn.functional.interpolate(layer2, size=size, mode="bilinear", align_corners=False),
        ], dim=1)
        return layer4.mean(dim=(2, 3)), self.fuse(fused)
