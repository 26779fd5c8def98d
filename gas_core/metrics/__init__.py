"""Evaluation metrics of the paper (section 4.1.3): PSNR, SSIM, LPIPS per image, FVD per video set,
and paper-style results tables with a JSON record per table.

- :mod:`gas_core.metrics.image`: :func:`psnr`, :func:`ssim` (skimage-equivalent Gaussian SSIM), mask
  and bounding-box regions, background compositing;
- :mod:`gas_core.metrics.lpips`: :class:`LPIPSMetric`, the ``lpips`` package with local weights;
- :mod:`gas_core.metrics.fvd`: the I3D network, its feature extractor and :func:`frechet_distance`;
- :mod:`gas_core.metrics.table`: :class:`ResultsTable` and :func:`write_results_table`.
"""

from gas_core.metrics.fvd import (
    FrechetStatistics,
    I3DFeatureExtractor,
    InceptionI3d,
    feature_statistics,
    frechet_distance,
    load_i3d,
    preprocess_for_i3d,
)
from gas_core.metrics.image import composite_on_background, mask_bounding_box, psnr, ssim, ssim_map
from gas_core.metrics.lpips import LPIPSMetric
from gas_core.metrics.table import (
    FVD,
    LPIPS,
    PAPER_METRICS,
    PSNR,
    SSIM,
    CheckpointRef,
    MetricColumn,
    ResultRow,
    ResultsTable,
    SplitRef,
    describe_checkpoint,
    describe_split,
    grouped_columns,
    write_results_table,
)

__all__ = [
    "psnr",
    "ssim",
    "ssim_map",
    "mask_bounding_box",
    "composite_on_background",
    "LPIPSMetric",
    "InceptionI3d",
    "load_i3d",
    "I3DFeatureExtractor",
    "preprocess_for_i3d",
    "FrechetStatistics",
    "feature_statistics",
    "frechet_distance",
    "MetricColumn",
    "PSNR",
    "SSIM",
    "LPIPS",
    "FVD",
    "PAPER_METRICS",
    "grouped_columns",
    "CheckpointRef",
    "describe_checkpoint",
    "SplitRef",
    "describe_split",
    "ResultRow",
    "ResultsTable",
    "write_results_table",
]
