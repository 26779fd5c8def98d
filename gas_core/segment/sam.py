"""Box-prompted masks with Segment Anything (the mask half of Grounded-SAM).

:class:`SamMasker` wraps ``segment_anything.SamPredictor``: one box ``x0, y0, x1, y1`` (pixels) in, one
boolean mask (H, W) out. :meth:`SamMasker.from_checkpoint` reads an official checkpoint with
``sam_model_registry``; :func:`build_random_sam` assembles a small random-weight model from the same
upstream classes, so tests and benchmarks run the real model code without weights (its masks mean
nothing).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from gas_core.segment.detect import check_rgb_frame

__all__ = ["SamMasker", "build_random_sam", "SAM_MODEL_TYPES"]

#: Checkpoint kinds ``segment_anything.sam_model_registry`` builds (``vit_h`` is the paper's).
SAM_MODEL_TYPES = ("vit_h", "vit_l", "vit_b")


def build_random_sam(image_size: int = 64, embed_dim: int = 32, depth: int = 1, prompt_dim: int = 32,
                     seed: int = 0) -> torch.nn.Module:
    """A small random-weight ``segment_anything.modeling.Sam`` (for exercising the code path only).

    Args:
        image_size: encoder input side in pixels (multiple of 16; the official models use 1024).
        embed_dim: ViT width; ``depth``: ViT blocks; ``prompt_dim``: prompt/mask-decoder width.
        seed: torch seed for the random weights.

    Returns:
        A ``Sam`` in eval mode whose masks are meaningless (nothing is trained).
    """
    if image_size < 16 or image_size % 16:
        raise ValueError(f"image_size must be a positive multiple of 16, got {image_size}")
    for name, value in (("embed_dim", embed_dim), ("depth", depth), ("prompt_dim", prompt_dim)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        grid = image_size // 16
        encoder = ImageEncoderViT(img_size=image_size, patch_size=16, embed_dim=embed_dim, depth=depth,
                                  num_heads=2 if embed_dim % 2 == 0 else 1, mlp_ratio=2.0, out_chans=prompt_dim,
                                  qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                  use_rel_pos=True, window_size=0, global_attn_indexes=())
        prompt_encoder = PromptEncoder(embed_dim=prompt_dim, image_embedding_size=(grid, grid),
                                       input_image_size=(image_size, image_size), mask_in_chans=8)
        decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=prompt_dim,
                              transformer=TwoWayTransformer(depth=1, embedding_dim=prompt_dim, mlp_dim=2 * prompt_dim,
                                                            num_heads=2),
                              iou_head_depth=2, iou_head_hidden_dim=prompt_dim)
        model = Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=decoder)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


class SamMasker:
    """Segment Anything predictor: a box prompt gives one mask.

    Args:
        model: a ``segment_anything.modeling.Sam`` (see :meth:`from_checkpoint`, :func:`build_random_sam`).
        device: torch device string.
    """

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        from segment_anything import SamPredictor
        from segment_anything.modeling import Sam

        if not isinstance(model, Sam):
            raise ValueError(f"model must be a segment_anything Sam, got {type(model).__name__}")
        self.device = device
        self.predictor = SamPredictor(model.to(device).eval())

    @classmethod
    def from_checkpoint(cls, checkpoint_path: str | Path, model_type: str = "vit_h", device: str = "cpu") -> "SamMasker":
        """Load an official SAM checkpoint (``sam_vit_h_4b8939.pth``...) of ``model_type`` from a local file."""
        if model_type not in SAM_MODEL_TYPES:
            raise ValueError(f"model_type must be one of {SAM_MODEL_TYPES}, got {model_type!r}")
        path = Path(checkpoint_path).expanduser()
        if not path.is_file():
            raise ValueError(f"checkpoint_path must be an existing local file, got {str(path)!r}")
        from segment_anything import sam_model_registry

        return cls(sam_model_registry[model_type](checkpoint=str(path)), device=device)

    @torch.no_grad()
    def mask(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Mask of the object in ``box`` (4,) ``x0, y0, x1, y1`` pixels of ``frame`` (H, W, 3) uint8 RGB.

        Returns:
            (H, W) bool mask (the single-mask output of SAM's decoder).
        """
        frame = check_rgb_frame(frame)
        box = np.asarray(box, dtype=np.float32).reshape(-1)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise ValueError(f"box must be 4 finite numbers x0, y0, x1, y1, got {box}")
        self.predictor.set_image(frame, image_format="RGB")
        masks, _, _ = self.predictor.predict(box=box, multimask_output=False)
        self.predictor.reset_image()
        return np.asarray(masks[0], dtype=bool)
