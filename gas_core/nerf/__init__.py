"""Generalizable human NeRF from a single image (SHERF-style), rendering only near the posed body.

Public API: :class:`CameraBatch`, :class:`PosedBody`, :class:`ReferenceView`, :class:`NeRFRender`,
:class:`GeneralizableHumanNeRF` (``from_preset("tiny" | "paper")``, ``render``, ``save_pretrained``,
``from_pretrained``) and :func:`load_nerf` (a saved model or a training checkpoint folder).
"""

from gas_core.nerf.model import GeneralizableHumanNeRF, NeRFModelConfig, PixelRender, ReferenceEncoding, load_nerf
from gas_core.nerf.types import CameraBatch, NeRFRender, PosedBody, ReferenceView

__all__ = [
    "CameraBatch",
    "GeneralizableHumanNeRF",
    "NeRFModelConfig",
    "NeRFRender",
    "PixelRender",
    "PosedBody",
    "ReferenceEncoding",
    "ReferenceView",
    "load_nerf",
]
