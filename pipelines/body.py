"""Body-model step: write the open (Anny-derived) body model in SMPL's file format."""

from __future__ import annotations

from pathlib import Path

from gas_core.body.open_model import build_open_body_model, ensure_open_body_model

__all__ = ["build_body_model"]


def build_body_model(out_dir: Path | None = None, *, force: bool = False) -> Path:
    """Folder holding ``SMPL_NEUTRAL.pkl`` of the open body model; built when missing or ``force``.

    ``out_dir`` defaults to ``$GAS_CACHE_DIR/body_models/open``. The file is labelled
    "open body model (Anny-derived), not SMPL"; point ``GAS_BODY_MODEL_PATH`` at licensed SMPL
    files to use SMPL instead.
    """
    if force:
        if out_dir is None:
            from gas_core.settings import default_body_model_dir

            out_dir = default_body_model_dir()
        return build_open_body_model(Path(out_dir))
    return ensure_open_body_model(out_dir)
