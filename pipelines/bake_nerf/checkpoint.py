"""The NeRF checkpoint of a bake: find and hash its weights, and keep one output folder to one checkpoint."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shards.manifest import load_manifest
from shards.schema import CLIP_SCHEMA

_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class CheckpointInfo:
    """The NeRF checkpoint a bake uses: ``path`` as given (absolute for local paths), the folder holding
    the ``save_pretrained`` weights, and ``sha256`` of the weights file(s)."""

    path: str
    model_dir: str
    sha256: str

    def clip_extra(self) -> dict[str, str]:
        """What every clip's ``meta["extra"]`` records about the checkpoint."""
        return {"nerf_checkpoint": self.path, "nerf_checkpoint_sha256": self.sha256}


def describe_checkpoint(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Find the weights of a NeRF checkpoint and hash them.

    ``path``: a ``save_pretrained`` folder, or a training checkpoint directory (weights in ``path/model``).
    The digest is the sha256 of the weights file (``*.safetensors`` / ``*.bin``); for several files,
    of their contents in name order. Raises ValueError naming the folder when there are no weights.
    """
    folder = Path(path).expanduser().absolute()
    if not folder.exists():
        raise ValueError(f"checkpoint {folder} does not exist; pass the folder written by save_pretrained or train-nerf")
    model_dir = folder if (folder / "config.json").is_file() else folder / "model"  # as load_nerf resolves it
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"checkpoint {folder} has no config.json (neither a save_pretrained folder nor a training "
                         "checkpoint with model/); pass the folder written by save_pretrained or train-nerf")
    weights = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not weights:
        raise ValueError(f"checkpoint {model_dir} holds no weights file (*.safetensors or *.bin)")
    digest = hashlib.sha256()
    for weight_file in weights:
        with weight_file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return CheckpointInfo(path=str(folder), model_dir=str(model_dir), sha256=digest.hexdigest())


def _checkpoint_manifest_extra(out_dir: str, checkpoint: CheckpointInfo, force_mixed: bool) -> dict[str, Any]:
    """The manifest ``extra`` of this bake; refuses to mix checkpoints in one folder unless ``force_mixed``."""
    manifest = load_manifest(out_dir)
    baked_with: dict[str, str] = {}
    if manifest is not None:
        if (manifest.schema_name, manifest.schema_version) != (CLIP_SCHEMA.name, CLIP_SCHEMA.version):
            raise ValueError(f"{out_dir} holds {manifest.schema_name} v{manifest.schema_version} shards, not clips; "
                             "bake into another folder")
        baked_with = {str(k): str(v) for k, v in dict(manifest.extra.get("nerf_checkpoints") or {}).items()}
        if manifest.extra.get("nerf_checkpoint_sha256"):
            baked_with.setdefault(str(manifest.extra["nerf_checkpoint_sha256"]),
                                  str(manifest.extra.get("nerf_checkpoint", "?")))
    others = {sha: where for sha, where in baked_with.items() if sha != checkpoint.sha256}
    if others and not force_mixed:
        listed = "; ".join(f"{where} (sha256 {sha[:12]}...)" for sha, where in sorted(others.items()))
        raise ValueError(
            f"{out_dir} was baked with another NeRF checkpoint: {listed}; this run uses {checkpoint.path} "
            f"(sha256 {checkpoint.sha256[:12]}...). Bake into another folder, or pass --force-mixed "
            "(force_mixed=True) to add clips of both checkpoints to it")
    baked_with[checkpoint.sha256] = checkpoint.path
    return {"nerf_checkpoint": checkpoint.path, "nerf_checkpoint_sha256": checkpoint.sha256,
            "nerf_checkpoints": dict(sorted(baked_with.items()))}
