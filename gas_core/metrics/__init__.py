"""Evaluation metrics of the paper (section 4.1.3): PSNR, SSIM, LPIPS per image, FVD per video set,
and paper-style results tables with a JSON record per table.

- :mod:`gas_core.metrics.image`: :func:`psnr`, :func:`ssim` (skimage-equivalent Gaussian SSIM), mask
  and bounding-box regions, background compositing;
- :mod:`gas_core.metrics.lpips`: :class:`LPIPSMetric`, the ``lpips`` package with local weights;
- :mod:`gas_core.metrics.fvd`: the I3D network, its feature extractor and :func:`frechet_distance`;
- :mod:`gas_core.metrics.table`: :class:`ResultsTable` and :func:`write_results_table`.

The package exports its submodules' public names (their ``__all__``) but for the few listed in
``_SUBMODULE_ONLY`` (tuning constants, backbone-file helpers, the table's file layout), which are
imported from their submodule.
"""

from gas_core.metrics import fvd, image, lpips, table
from gas_core.metrics.fvd import *  # noqa: F403
from gas_core.metrics.image import *  # noqa: F403
from gas_core.metrics.lpips import *  # noqa: F403
from gas_core.metrics.table import *  # noqa: F403

#: Public names of the submodules that the package does not re-export.
_SUBMODULE_ONLY = frozenset({
    "I3D_INPUT_SIZE", "I3D_MIN_FRAMES",  # fvd
    "RANGE_TOLERANCE", "SSIM_SIGMA", "SSIM_TRUNCATE", "SSIM_RADIUS",  # image
    "LPIPS_BACKBONES", "backbone_weights_hint", "load_backbone_state",  # lpips
    "TableFiles", "RECORD_FORMAT",  # table
})

__all__ = [name for module in (image, lpips, fvd, table) for name in module.__all__ if name not in _SUBMODULE_ONLY]
