"""Input files of a generation: reading and checking the image, mask, SMPL, camera and pose-sequence files."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from gas_core.body.smpl import MAX_BETAS, BodyModel
from gas_core.cameras import Camera

logger = logging.getLogger(__name__)


class GenerateInputError(ValueError):
    """An input file (image, mask, SMPL, camera, pose sequence, checkpoint) is missing or unusable; the
    message names the file and the reason."""


@dataclass(frozen=True)
class GenerateInputs:
    """Input files of one generation: ``image``; optional ``mask``, ``smpl`` + ``camera`` (estimated when
    absent) and, for pose mode, ``poses`` (the driving sequence)."""

    image: str | Path
    mask: str | Path | None = None
    smpl: str | Path | None = None
    camera: str | Path | None = None
    poses: str | Path | None = None


def _require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise GenerateInputError(f"{what} file {path} does not exist (or is not a file)")
    return path


def read_image_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference image: uint8 (H, W, 3) RGB, and its alpha channel uint8 (H, W) when it has one."""
    path = _require_file(path, "image")
    try:
        with Image.open(path) as image:
            image.load()
            alpha = np.asarray(image.getchannel("A")) if image.mode in ("RGBA", "LA", "PA") else None
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, ImportError) as error:  # ultralytics' PIL patch raises ImportError
        raise GenerateInputError(f"image file {path} is not a readable image ({error})") from error
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise GenerateInputError(f"image file {path} is {rgb.shape[1]}x{rgb.shape[0]} pixels; at least 8x8 is needed")
    return np.ascontiguousarray(rgb), alpha


def read_mask_file(path: str | Path, size: tuple[int, int], threshold: float = 0.5) -> np.ndarray:
    """A person mask uint8 (H, W) 0/255 from a grey, RGB(A) or binary image of ``size`` = (width, height)."""
    path = _require_file(path, "mask")
    try:
        with Image.open(path) as image:
            image.load()
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, ImportError) as error:
        raise GenerateInputError(f"mask file {path} is not a readable image ({error})") from error
    if (grey.shape[1], grey.shape[0]) != tuple(size):
        raise GenerateInputError(f"mask file {path} is {grey.shape[1]}x{grey.shape[0]} but the image is {size[0]}x{size[1]}")
    mask = np.where(grey >= threshold, 255, 0).astype(np.uint8)
    if not mask.any():
        raise GenerateInputError(f"mask file {path} marks no pixel as the person")
    return mask


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GenerateInputError(f"{what} file {path} is not valid JSON ({error})") from error


def read_smpl_file(path: str | Path, body_model: BodyModel | None = None) -> dict[str, Any]:
    """The project's SMPL dict from a JSON file: ``betas`` (<= 10,), ``body_pose`` (23, 3), ``global_orient``
    (3,), ``transl`` (3,) metres, ``scale`` (default 1), ``body_model`` label.

    Returns the dict with numpy float64 arrays (betas padded to 10). When ``body_model`` is given, the
    file's label must name it (a file without a label gets the model's, with a warning).
    """
    path = _require_file(path, "SMPL")
    data = _read_json(path, "SMPL")
    if isinstance(data, Mapping) and "smpl" in data and isinstance(data["smpl"], Mapping):
        data = data["smpl"]
    if not isinstance(data, Mapping):
        raise GenerateInputError(f"SMPL file {path} must hold a JSON object of SMPL parameters, got {type(data).__name__}")
    try:
        smpl = _smpl_arrays(data, batch_shape=())
    except ValueError as error:
        raise GenerateInputError(f"SMPL file {path}: {error}") from error
    label = data.get("body_model")
    if body_model is not None:
        if label is None:
            logger.warning("SMPL file %s names no body model; assuming %r", path, body_model.label)
            label = body_model.label
        elif str(label) != body_model.label:
            raise GenerateInputError(f"SMPL file {path} was fitted with body model {label!r}, but the loaded body model "
                                     f"is {body_model.label!r}; set body_model_path to the model it was fitted with")
    smpl["body_model"] = str(label) if label is not None else ""
    return smpl


def _smpl_arrays(data: Mapping[str, Any], batch_shape: tuple[int, ...]) -> dict[str, Any]:
    """Validated float64 arrays of SMPL fields with a leading ``batch_shape`` (``()`` or ``(T,)``)."""
    shapes = {"body_pose": (23, 3), "global_orient": (3,), "transl": (3,)}
    out: dict[str, Any] = {}
    for name, shape in shapes.items():
        if name not in data:
            raise ValueError(f"{name} is missing")
        out[name] = _finite_array(data[name], name)
        expected = batch_shape + shape
        if name == "body_pose" and out[name].shape == batch_shape + (69,):
            out[name] = out[name].reshape(expected)
        if out[name].shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {out[name].shape}")
    if "betas" in data:
        betas = _finite_array(data["betas"], "betas").reshape(-1)
        if betas.size > MAX_BETAS:
            raise ValueError(f"betas must have at most {MAX_BETAS} values, got {betas.size}")
        out["betas"] = np.pad(betas, (0, MAX_BETAS - betas.size))
    elif not batch_shape:
        raise ValueError("betas is missing")
    scale = _finite_array(data.get("scale", 1.0), "scale").reshape(-1)
    if scale.size < 1 or float(scale[0]) <= 0:
        raise ValueError(f"scale must be a positive number, got {data.get('scale')!r}")
    out["scale"] = float(scale[0])
    return out


def _finite_array(value: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not a numeric array ({error})") from error
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds non-finite values")
    return array


def read_camera_file(path: str | Path) -> Camera:
    """A :class:`Camera` from the project's camera JSON (``K``, ``R``, ``t``, ``width``, ``height``, OpenCV);
    a list holding one camera, or an object with a ``camera`` entry, are accepted too."""
    path = _require_file(path, "camera")
    data = _read_json(path, "camera")
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, Mapping) and isinstance(data.get("camera"), Mapping):
        data = data["camera"]
    if not isinstance(data, Mapping):
        raise GenerateInputError(f"camera file {path} must hold one camera object (K, R, t, width, height)")
    try:
        return Camera.from_dict(dict(data))
    except (ValueError, TypeError) as error:
        raise GenerateInputError(f"camera file {path}: {error}") from error


@dataclass(frozen=True)
class PoseSequence:
    """A driving pose sequence of T frames: ``body_pose`` (T, 23, 3) and ``global_orient`` (T, 3) axis-angle
    radians, ``transl`` (T, 3) metres; optional ``betas`` (10,) and ``scale`` of the driver; ``source`` file."""

    body_pose: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    betas: np.ndarray | None = None
    scale: float | None = None
    source: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.body_pose.shape[0])


def read_pose_sequence(path: str | Path) -> PoseSequence:
    """Per-frame SMPL parameters from a JSON or NPZ file.

    JSON: an object of arrays (``body_pose`` (T, 23, 3) or (T, 69), ``global_orient`` (T, 3), ``transl``
    (T, 3), optional ``betas`` (10,) or (T, 10) — the first frame's is used — and ``scale``), or a list of
    per-frame SMPL dicts (also under a ``frames`` key). NPZ: the same arrays. Raises
    :class:`GenerateInputError` naming the file.
    """
    path = _require_file(path, "pose sequence")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                data: Any = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError) as error:
            raise GenerateInputError(f"pose sequence file {path} is not a readable NPZ archive ({error})") from error
    else:
        data = _read_json(path, "pose sequence")
    if isinstance(data, Mapping) and isinstance(data.get("frames"), list):
        data = data["frames"]
    if isinstance(data, list):
        if not data or not all(isinstance(item, Mapping) for item in data):
            raise GenerateInputError(f"pose sequence file {path} must list per-frame SMPL objects")
        try:
            data = {name: [item[name] for item in data] for name in ("body_pose", "global_orient", "transl")} | (
                {"betas": data[0]["betas"]} if "betas" in data[0] else {}) | (
                {"scale": data[0]["scale"]} if "scale" in data[0] else {})
        except KeyError as error:
            raise GenerateInputError(f"pose sequence file {path}: a frame lacks {error.args[0]!r}") from error
    if not isinstance(data, Mapping):
        raise GenerateInputError(f"pose sequence file {path} must hold per-frame SMPL arrays")
    try:
        if "body_pose" not in data:
            raise ValueError("body_pose is missing")
        frames = int(np.shape(data["body_pose"])[0]) if np.ndim(data["body_pose"]) >= 2 else 0
        if frames < 1:
            raise ValueError(f"body_pose must be (T, 23, 3) with T >= 1, got shape {np.shape(data['body_pose'])}")
        fields = dict(data)
        if "betas" in fields and np.ndim(fields["betas"]) == 2:
            fields["betas"] = np.asarray(fields["betas"])[0]
        has_betas = "betas" in fields
        has_scale = "scale" in fields
        arrays = _smpl_arrays(fields, batch_shape=(frames,))
    except ValueError as error:
        raise GenerateInputError(f"pose sequence file {path}: {error}") from error
    return PoseSequence(body_pose=arrays["body_pose"], global_orient=arrays["global_orient"], transl=arrays["transl"],
                        betas=arrays["betas"] if has_betas else None, scale=arrays["scale"] if has_scale else None,
                        source=str(path))
