"""Where the project keeps its caches and finds its body model.

Every location can be overridden by an environment variable so that a laptop, a CI runner and a
cluster worker can point the same code at different disks:

==========================  =====================================================================
``GAS_CACHE_DIR``           root of all caches (default ``~/.cache/gas``); the Makefile points it
                            at ``<repo>/.cache``
``GAS_BODY_MODEL_PATH``     a folder holding ``SMPL_NEUTRAL.pkl`` (licensed SMPL, or the open
                            body model that ``gas body build`` writes); default
                            ``$GAS_CACHE_DIR/body_models/open``
``ANNY_CACHE_DIR``          Anny's own model cache (default ``$GAS_CACHE_DIR/anny``)
``YOLO_AUTOINSTALL``        ultralytics' run-time ``pip install`` of missing extras; set to
                            ``false`` by :func:`offline_ultralytics` before ultralytics is imported
                            (workers are offline, and a failed install replaces a clear error)
==========================  =====================================================================
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "anny_cache_dir", "default_body_model_dir", "body_model_dir", "offline_ultralytics"]


def offline_ultralytics() -> None:
    """Stop ultralytics from installing packages at run time (``YOLO_AUTOINSTALL=false`` unless set).

    Importing ultralytics patches ``PIL.Image.open``: an unreadable image then triggers an install of
    ``pi-heif``, which fails offline with ``ModuleNotFoundError`` instead of PIL's own error. Call this
    before the first ``import ultralytics``.
    """
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")


def cache_dir() -> Path:
    """Root cache folder (``$GAS_CACHE_DIR`` or ``~/.cache/gas``); created on first use."""
    path = Path(os.environ.get("GAS_CACHE_DIR", Path.home() / ".cache" / "gas")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def anny_cache_dir() -> Path:
    """Folder for Anny's cached model builds (``$ANNY_CACHE_DIR`` or ``<cache>/anny``)."""
    env = os.environ.get("ANNY_CACHE_DIR")
    path = Path(env).expanduser() if env else cache_dir() / "anny"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_body_model_dir() -> Path:
    """Where ``gas body build`` writes the open body model by default."""
    return cache_dir() / "body_models" / "open"


def body_model_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the body-model folder: explicit argument, else ``$GAS_BODY_MODEL_PATH``, else default.

    The folder is expected to hold ``SMPL_NEUTRAL.pkl`` (and optionally ``SMPL_MALE.pkl`` /
    ``SMPL_FEMALE.pkl``) in SMPL's file format. A path to the ``.pkl`` file itself is accepted too.
    """
    if configured is not None:
        path = Path(configured).expanduser()
    elif os.environ.get("GAS_BODY_MODEL_PATH"):
        path = Path(os.environ["GAS_BODY_MODEL_PATH"]).expanduser()
    else:
        path = default_body_model_dir()
    return path.parent if path.suffix == ".pkl" else path
