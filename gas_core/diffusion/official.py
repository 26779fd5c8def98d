"""The official GAS release's checkpoint layout: ``unet.pth``, ``pose_net.pth``, ``nerf_net.pth``.

Each file is a plain ``state_dict`` (no key prefix) that the release loads strictly into its own
modules (``inference_novel_views.py``: ``UNetSpatioTemporalConditionModel`` from its
``models/unet_spatio_temporal_condition.py``, ``PoseNet`` from ``models/smpl_encoder.py``, ``NeRFNet``
from ``models/nerf_encoder.py``). Our modules hold the same tensors under a few different names:

| part      | release key prefix | ours                  |
| --------- | ------------------ | --------------------- |
| unet      | ``class_embedding.`` | ``mode_embedding.`` (the switcher MLP; every other key is SVD's, unchanged) |
| pose_net, nerf_net | ``conv_layers.`` | ``layers.`` (same ``nn.Sequential`` indices) |
| pose_net, nerf_net | ``final_proj.``  | ``output_projection.`` |
| pose_net, nerf_net | ``scale``        | ``output_scale`` (shape ``(1,)``) |

Loading is strict: a key missing, unexpected or of another shape raises ``ValueError`` naming the file
and the key (under the release's name).
:func:`load_official_model` builds the whole model: the frozen parts and network sizes from an
SVD-xt 1.1 base folder (:meth:`GASModel.from_base_svd`), the denoiser from the release's files.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor, nn

from gas_core.fileio import atomic_write_bytes

__all__ = ["OFFICIAL_FILES", "official_to_ours", "ours_to_official", "is_official_checkpoint", "load_official_denoiser",
           "load_official_model", "save_official_denoiser"]

OFFICIAL_FILES = {"unet": "unet.pth", "pose_net": "pose_net.pth", "nerf_net": "nerf_net.pth"}

# (release prefix, our prefix) per part; a prefix ending without "." matches the whole key only.
_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "unet": (("class_embedding.", "mode_embedding."),),
    "pose_net": (("conv_layers.", "layers."), ("final_proj.", "output_projection."), ("scale", "output_scale")),
    "nerf_net": (("conv_layers.", "layers."), ("final_proj.", "output_projection."), ("scale", "output_scale")),
}


def _rename(key: str, pairs: tuple[tuple[str, str], ...], reverse: bool) -> str:
    for official, ours in pairs:
        source, target = (ours, official) if reverse else (official, ours)
        if source.endswith("."):
            if key.startswith(source):
                return target + key[len(source):]
        elif key == source:
            return target
    return key


def _check_part(part: str) -> tuple[tuple[str, str], ...]:
    if part not in _RENAMES:
        raise ValueError(f"part must be one of {sorted(_RENAMES)}, got {part!r}")
    return _RENAMES[part]


def official_to_ours(part: str, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a release state dict of ``part`` (``"unet"``, ``"pose_net"``, ``"nerf_net"``) to our parameter names."""
    pairs = _check_part(part)
    return {_rename(key, pairs, reverse=False): value for key, value in state_dict.items()}


def ours_to_official(part: str, state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename our state dict of ``part`` to the release's parameter names."""
    pairs = _check_part(part)
    return {_rename(key, pairs, reverse=True): value for key, value in state_dict.items()}


def _load_strict(module: nn.Module, state_dict: dict[str, Tensor], source: Path, part: str | None = None) -> None:
    """Load strictly; keys in the error are named as in the file (the release's names when ``part`` is given)."""
    expected = module.state_dict()

    def named(key: str) -> str:
        return key if part is None else _rename(key, _RENAMES[part], reverse=True)

    missing = sorted(named(key) for key in set(expected) - set(state_dict))
    unexpected = sorted(named(key) for key in set(state_dict) - set(expected))
    mismatched = [f"{named(key)}: file {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
                  for key in sorted(set(expected) & set(state_dict)) if state_dict[key].shape != expected[key].shape]
    if missing or unexpected or mismatched:
        def listed(keys: list[str]) -> str:
            return f"{keys[:8]}{' ...' if len(keys) > 8 else ''}"

        raise ValueError(f"{source} does not fit {type(module).__name__}: missing {listed(missing)}, "
                         f"unexpected {listed(unexpected)}, mismatched {listed(mismatched)}")
    module.load_state_dict(state_dict, strict=True)


def load_official_denoiser(denoiser: nn.Module, checkpoint_dir: str | Path) -> None:
    """Load ``checkpoint_dir/{unet,pose_net,nerf_net}.pth`` (release layout) strictly into ``denoiser``'s parts, in place.

    ``denoiser``: a :class:`~gas_core.diffusion.model.GASDenoiser` of the release's sizes (SVD-xt
    UNet, encoders projecting to 320 channels). Tensors are cast to each part's dtype.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint_dir {checkpoint_dir} is not a folder")
    for part, filename in OFFICIAL_FILES.items():
        path = checkpoint_dir / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (the release layout holds {sorted(OFFICIAL_FILES.values())})")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping):
            raise ValueError(f"{path} must hold a plain state dict, got {type(state).__name__}")
        _load_strict(getattr(denoiser, part), official_to_ours(part, state), path, part)


def is_official_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` is in the release's layout: it holds ``unet.pth``, ``pose_net.pth`` or ``nerf_net.pth``.

    Any one of the three files marks the layout, so that a folder missing the others is reported by
    :func:`load_official_denoiser` (naming the missing file) rather than taken for another layout.
    """
    folder = Path(folder)
    return folder.is_dir() and any((folder / filename).is_file() for filename in OFFICIAL_FILES.values())


def load_official_model(checkpoint_dir: str | Path, base_svd_dir: str | Path, *,
                        torch_dtype: torch.dtype | None = None):
    """A :class:`~gas_core.diffusion.model.GASModel` from the release's files and an SVD-xt 1.1 base folder.

    ``base_svd_dir`` (a diffusers folder with ``unet/``, ``vae/``, ``image_encoder/``) supplies the VAE,
    the CLIP image encoder and the UNet's sizes (:meth:`GASModel.from_base_svd`); ``checkpoint_dir``'s
    ``unet.pth``, ``pose_net.pth``, ``nerf_net.pth`` are then loaded strictly into the denoiser.

    Raises:
        FileNotFoundError: naming a missing release file or base sub-folder.
        ValueError: naming the file and the keys that do not fit.
    """
    from gas_core.diffusion.model import GASModel

    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint_dir {checkpoint_dir} is not a folder")
    for filename in OFFICIAL_FILES.values():  # before the (large) base model is read
        if not (checkpoint_dir / filename).is_file():
            raise FileNotFoundError(f"{checkpoint_dir / filename} is missing (the release layout holds "
                                    f"{sorted(OFFICIAL_FILES.values())})")
    base = GASModel.from_base_svd(base_svd_dir, torch_dtype=torch_dtype)
    return GASModel.load_official(base, checkpoint_dir)


def save_official_denoiser(denoiser: nn.Module, checkpoint_dir: str | Path) -> None:
    """Write ``denoiser``'s parts as ``unet.pth``, ``pose_net.pth``, ``nerf_net.pth`` in the release's layout (atomic files)."""
    checkpoint_dir = Path(checkpoint_dir)
    for part, filename in OFFICIAL_FILES.items():
        state = {key: value.detach().cpu().contiguous() for key, value in getattr(denoiser, part).state_dict().items()}
        buffer = io.BytesIO()
        torch.save(ours_to_official(part, state), buffer)
        atomic_write_bytes(checkpoint_dir / filename, buffer.getvalue())
