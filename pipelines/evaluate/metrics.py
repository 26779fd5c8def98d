"""The metric networks of a run (LPIPS, I3D) loaded from local weight files, or the reason a column stays empty."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gas_core.metrics import FVD, LPIPS, CheckpointRef, I3DFeatureExtractor, LPIPSMetric, describe_checkpoint, load_i3d
from pipelines.evaluate.config import MetricsConfig

logger = logging.getLogger(__name__)


@dataclass
class MetricSuite:
    """The loaded metric networks: ``lpips`` / ``i3d`` (None when not configured, with the reason in
    ``missing``: column key -> why), ``weights``: column key -> the weights' checkpoint ref, and the
    ``device`` they run on (scoring moves the frames there)."""

    lpips: LPIPSMetric | None
    i3d: I3DFeatureExtractor | None
    missing: dict[str, str] = field(default_factory=dict)
    weights: dict[str, CheckpointRef] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: I3D features of ground-truth clips already computed in this process (shared by the rows).
    target_features: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        return {key: ref.sha256 for key, ref in sorted(self.weights.items())}


def describe_metrics(config: MetricsConfig) -> tuple[dict[str, str], dict[str, CheckpointRef]]:
    """Without loading any network: ``(missing, weights)``, the columns left out (key -> reason) and the
    configured weight files (key -> hashed ref). Raises FileNotFoundError for a configured file that is absent."""
    missing: dict[str, str] = {}
    weights: dict[str, CheckpointRef] = {}
    if config.lpips_weights:
        weights[LPIPS.key] = describe_checkpoint(Path(config.lpips_weights))
    else:
        missing[LPIPS.key] = (f"no LPIPS-{config.lpips_network} backbone weights configured (metrics.lpips_weights); "
                              "the column is left empty")
    if config.i3d_weights:
        weights[FVD.key] = describe_checkpoint(Path(config.i3d_weights))
    else:
        missing[FVD.key] = "no I3D weights configured (metrics.i3d_weights); the column is left empty"
    return missing, weights


def load_metrics(config: MetricsConfig, device: torch.device | str = "cpu") -> MetricSuite:
    """LPIPS and I3D from ``config``'s local files; a path set to a missing file raises (naming it and
    how to make it), an unset path leaves that metric out with a warning and the reason."""
    lpips_metric = None
    if config.lpips_weights:
        lpips_metric = LPIPSMetric(Path(config.lpips_weights), network=config.lpips_network).to(device)
    extractor = None
    if config.i3d_weights:
        extractor = I3DFeatureExtractor(load_i3d(Path(config.i3d_weights), num_classes=int(config.i3d_num_classes),
                                                 device=device),
                                        batch_size=int(config.i3d_batch_size))
    missing, weights = describe_metrics(config)
    for reason in missing.values():
        logger.warning("evaluation: %s", reason)
    return MetricSuite(lpips=lpips_metric, i3d=extractor, missing=missing, weights=weights, device=torch.device(device))
