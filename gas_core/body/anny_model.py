"""Loading Anny (the open parametric human from MakeHuman's CC0 assets) and moving it into SMPL's frame.

Anny's frame: metres, **z up**, the body faces **-y**, +x is the body's left.
SMPL's frame (the project's world frame): metres, **y up**, the body faces **+z**, +x is the body's left.
:data:`ANNY_TO_SMPL_ROTATION` maps the first onto the second: ``p_smpl = R @ p_anny``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time

import numpy as np
import torch

from gas_core.settings import anny_cache_dir

__all__ = ["ANNY_TO_SMPL_ROTATION", "load_anny", "quiet_warp", "anny_to_smpl_frame", "PHENOTYPE_NAMES"]

logger = logging.getLogger(__name__)

#: Rotation taking Anny's frame (z up, facing -y) to SMPL's (y up, facing +z); determinant +1.
ANNY_TO_SMPL_ROTATION = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

#: Anny's default phenotype parameters, each in [0, 1] (0.5 is the neutral body).
PHENOTYPE_NAMES = ("gender", "age", "muscle", "weight", "height", "proportions")


def quiet_warp() -> None:
    """Initialise Warp (Anny's kernel compiler) without its device banner and its no-CUDA notice.

    The banner is logged at INFO (raised here to WARNING, so Warp's warnings still show). On a machine
    without the CUDA driver, Warp's native library also writes a "could not load the NVIDIA CUDA driver"
    line straight to file descriptor 2; that one is silenced only where torch sees no CUDA either, so
    a GPU machine whose driver Warp cannot load still says so. Idempotent.
    """
    import warp

    warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)
    if torch.cuda.is_available():
        warp.init()
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        warp.init()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@functools.lru_cache(maxsize=2)
def load_anny(dtype: torch.dtype = torch.float32):
    """Anny's full model (104 bones, 13,718 vertices), built once per process.

    The first build on a machine takes about 70 s and is cached under
    :func:`gas_core.settings.anny_cache_dir`; later builds load in about a second.
    Returns an ``anny.Anny`` module in eval mode on the CPU with ``dtype`` buffers.
    """
    quiet_warp()
    import anny
    import anny.paths

    anny.paths.set_anny_cache_path(anny_cache_dir())
    start = time.perf_counter()
    model = anny.Anny().to(dtype=dtype).eval()
    logger.info("Anny model ready in %.1f s (cache %s)", time.perf_counter() - start, anny_cache_dir())
    return model


def anny_to_smpl_frame(points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Rotate points (..., 3) from Anny's frame into SMPL's frame (no translation, metres kept)."""
    if isinstance(points, torch.Tensor):
        rotation = torch.as_tensor(ANNY_TO_SMPL_ROTATION, dtype=points.dtype, device=points.device)
        return points @ rotation.T
    return np.asarray(points) @ ANNY_TO_SMPL_ROTATION.T
