"""MVHumanNet on disk: the release's layout, a writer for synthetic captures and a streaming reader.

Layout of one capture (one outfit performing one motion), as released::

    <root>/<outfit_id>/                        e.g. 100001
      images_lr/<camera>/<tick>_img.jpg        half-resolution RGB; <tick> is 0005, 0010, ... (step 5)
      fmask_lr/<camera>/<tick>_img_fmask.png   foreground mask, same size (0 background, 255 person)
      camera_intrinsics.json                   {"intrinsics": 3x3 K at FULL resolution, "dist": [...]}
      camera_extrinsics.json                   {"1_<camera>.png": {"rotation": 3x3, "translation": [3] mm,
                                                 "camera_pos": [3] mm, "focal_length": [2],
                                                 "image_center": [2], "quaternion": [4]}, ...}
      camera_scale.pkl                         a pickled float (120/65 or 100/65, per capture studio)
      smplx/smpl/<index>.json                  per-frame body fit, EasyMocap format (below)
      smplx/keypoints3d/, smplx/smplx_mesh/, smpl_param/, annots/, openpose/   (not read here)

``<index>`` (6 digits) is ``tick / 5 - 1``. Camera names look like ``CC32871A004``.

Camera convention and the conversion to :class:`gas_core.cameras.Camera` (OpenCV):

* ``rotation`` is world-to-camera (OpenCV axes: x right, y down, z forward) and ``translation`` is
  world-to-camera in millimetres **before** the capture's scale: ``t = translation / 1000 * camera_scale``
  metres, ``X_cam = R X_world + t`` (``camera_pos = -R^T translation``, in the same unscaled mm);
* the shared ``intrinsics`` are for the full-resolution sensor (4096x3000 or 2448x2048); the ``_lr``
  images are half that size, so ``K_lr = diag(0.5, 0.5, 1) K`` (the principal point is halved as is);
* the world frame is the capture's own (the studio's vertical is not +y); it is kept unchanged, and the
  body parameters live in the same frame and units (metres).

Body fits (``smplx/smpl/<index>.json``) are EasyMocap records, a list with one dict per person:
``Rh`` (1, 3) axis-angle and ``Th`` (1, 3) metres place the model as ``x = R(Rh) x_model + Th``
(rotation about the **model origin**, unlike SMPL's ``global_orient``, which turns about the pelvis);
``poses`` (1, 72) for SMPL (3 root values, usually zero, then 23 joints) or (1, 87) for SMPL-X with
6-component hand PCA (3 root, 21 body joints, then hands and face); ``shapes`` (1, 10); SMPL-X adds
``expression``. :func:`read_mvhumannet_smpl` returns them as the project's SMPL dict, values as stored:
``betas`` (10,), ``body_pose`` (23, 3) (for SMPL-X the 21 body joints, SMPL's two hand joints zero and
the rest of ``poses`` kept as ``extra_pose``), ``global_orient`` (3,) = ``Rh``, ``transl`` (3,) = ``Th``,
``scale`` (1,) ones, ``body_model`` (a label) and ``transl_about`` = ``"model origin"``;
:func:`pelvis_centred_transl` converts ``transl`` to SMPL's convention given the model's rest pelvis.

Synthetic captures (:func:`write_mvhumannet_capture`) follow the same layout with the project's world
frame (y up), SMPL-length ``poses`` of the open body model, and a ``body_model`` key naming it.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from gas_core.body.geometry import pelvis_transl_from_origin
from gas_core.cameras import Camera
from gas_core.fileio import atomic_write_bytes
from pipelines.datasets.errors import ScanReadError

__all__ = [
    "DATASET",
    "MultiViewVideoRef",
    "MultiViewVideo",
    "MultiViewChunk",
    "discover_mvhumannet",
    "read_mvhumannet_cameras",
    "read_mvhumannet_video",
    "read_mvhumannet_smpl",
    "iter_mvhumannet_chunks",
    "pelvis_centred_transl",
    "write_mvhumannet_capture",
    "frame_tick",
    "camera_name",
    "LOW_RES_FACTOR",
]

logger = logging.getLogger(__name__)

DATASET = "mvhumannet"
#: Size of the ``images_lr`` frames relative to the calibrated sensor.
LOW_RES_FACTOR = 0.5
#: Frame ticks advance by this step; the body-fit index is ``tick / step - 1``.
TICK_STEP = 5
_IMAGES, _MASKS, _SMPL = "images_lr", "fmask_lr", Path("smplx") / "smpl"
_INTRINSICS, _EXTRINSICS, _SCALE = "camera_intrinsics.json", "camera_extrinsics.json", "camera_scale.pkl"
_IMAGE_NAME = re.compile(r"^(\d+)_img\.jpg$")
_HINT = "expected an MVHumanNet capture <root>/<outfit_id>/ with images_lr/, fmask_lr/, camera_*.json, camera_scale.pkl"
_SMPL_POSES, _SMPLX_POSES = 72, 87


def frame_tick(index: int) -> str:
    """Four-digit tick of frame ``index`` (0 -> ``"0005"``)."""
    if index < 0:
        raise ValueError(f"index must be non-negative, got {index}")
    return f"{TICK_STEP * (index + 1):04d}"


def camera_name(index: int) -> str:
    """A camera name in the release's style for synthetic camera ``index``."""
    return f"CC32871A{index + 4:03d}"


def _fit_index(tick: str) -> int:
    return int(tick) // TICK_STEP - 1


@dataclass(frozen=True)
class MultiViewVideoRef:
    """One capture folder found by :func:`discover_mvhumannet` (nothing read yet)."""

    dataset: str
    video_id: str
    path: Path

    @property
    def subject_id(self) -> str:
        """The capture's id (the name every other reference type uses for its sample id)."""
        return self.video_id


@dataclass(frozen=True)
class MultiViewVideo:
    """A capture's cameras and synchronised frames.

    Attributes:
        ref: where it lives.
        cameras: camera name -> :class:`Camera` (OpenCV, metres, sized like the ``_lr`` images), sorted by name.
        ticks: synchronised frame ticks (present for every camera), sorted.
        width, height: image size in pixels.
    """

    ref: MultiViewVideoRef
    cameras: dict[str, Camera]
    ticks: tuple[str, ...]
    width: int
    height: int

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(self.cameras)

    def image_path(self, camera: str, tick: str) -> Path:
        return self.ref.path / _IMAGES / camera / f"{tick}_img.jpg"

    def mask_path(self, camera: str, tick: str) -> Path:
        return self.ref.path / _MASKS / camera / f"{tick}_img_fmask.png"

    def smpl_path(self, tick: str) -> Path:
        return self.ref.path / _SMPL / f"{_fit_index(tick):06d}.json"


@dataclass(frozen=True)
class MultiViewChunk:
    """Consecutive synchronised frames of every camera.

    Attributes:
        ticks: the t frame ticks.
        images: (C, t, H, W, 3) uint8 RGB, cameras in :attr:`MultiViewVideo.camera_names` order.
        masks: (C, t, H, W) bool foreground.
        smpl: t SMPL dicts (:func:`read_mvhumannet_smpl`).
    """

    ticks: tuple[str, ...]
    images: np.ndarray
    masks: np.ndarray
    smpl: list[dict]


def discover_mvhumannet(root: Path) -> list[MultiViewVideoRef]:
    """Capture folders under ``root`` (those holding ``images_lr/``), sorted by id.

    Raises:
        ScanReadError: if ``root`` is not a folder or holds no capture.
    """
    root = Path(root)
    if not root.is_dir():
        raise ScanReadError(f"{root}: not a folder; {_HINT}")
    refs = [MultiViewVideoRef(DATASET, folder.name, folder) for folder in sorted(root.iterdir())
            if folder.is_dir() and not folder.name.startswith("_") and (folder / _IMAGES).is_dir()]
    if not refs:
        raise ScanReadError(f"{root}: no capture folder with {_IMAGES}/ found; {_HINT}")
    return refs


def _read_json(path: Path):
    if not path.is_file():
        raise ScanReadError(f"{path}: missing; {_HINT}")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ScanReadError(f"{path}: not valid JSON ({error}); re-download the capture's camera files") from error


def _read_scale(path: Path) -> float:
    if not path.is_file():
        raise ScanReadError(f"{path}: missing; {_HINT}")
    try:
        with path.open("rb") as stream:
            value = _FloatUnpickler(stream).load()
        scale = float(value)
    except Exception as error:
        raise ScanReadError(f"{path}: cannot read the camera scale ({error}); it must be a pickled number") from error
    if not np.isfinite(scale) or scale <= 0:
        raise ScanReadError(f"{path}: camera scale must be a positive number, got {scale}")
    return scale


class _FloatUnpickler(pickle.Unpickler):
    """Unpickles plain numbers only (numpy scalars included)."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (camera_scale.pkl holds a number)")


def _matrix(value, shape: tuple[int, ...], path: Path, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ScanReadError(f"{path}: {what} is not numeric ({error})") from error
    if array.size != int(np.prod(shape)) or not np.all(np.isfinite(array)):
        raise ScanReadError(f"{path}: {what} must hold {int(np.prod(shape))} finite numbers, got shape {array.shape}")
    return array.reshape(shape)


def read_mvhumannet_cameras(ref: MultiViewVideoRef, width: int, height: int) -> dict[str, Camera]:
    """Every calibrated camera of a capture, converted to :class:`Camera` for ``width`` x ``height`` ``_lr`` images.

    Raises:
        ScanReadError: naming the file: a camera file missing or unreadable, a non-rotation matrix.
    """
    intrinsics_path = ref.path / _INTRINSICS
    extrinsics_path = ref.path / _EXTRINSICS
    intrinsics = _read_json(intrinsics_path)
    extrinsics = _read_json(extrinsics_path)
    scale = _read_scale(ref.path / _SCALE)
    if not isinstance(intrinsics, dict) or "intrinsics" not in intrinsics:
        raise ScanReadError(f"{intrinsics_path}: no 'intrinsics' matrix; re-download the capture's camera files")
    K = _matrix(intrinsics["intrinsics"], (3, 3), intrinsics_path, "'intrinsics'")
    K_lr = K.copy()
    K_lr[:2] *= LOW_RES_FACTOR
    if not isinstance(extrinsics, dict) or not extrinsics:
        raise ScanReadError(f"{extrinsics_path}: expected a dict of cameras, found {type(extrinsics).__name__}")
    cameras = {}
    for key, entry in extrinsics.items():
        name = str(key).split(".")[0].split("_")[-1]
        if not isinstance(entry, dict) or "rotation" not in entry or "translation" not in entry:
            raise ScanReadError(f"{extrinsics_path}: camera {key!r} lacks 'rotation' or 'translation'")
        R = _matrix(entry["rotation"], (3, 3), extrinsics_path, f"rotation of {key!r}")
        t = _matrix(entry["translation"], (3,), extrinsics_path, f"translation of {key!r}") / 1000.0 * scale
        try:
            cameras[name] = Camera(K=K_lr, R=R, t=t, width=width, height=height)
        except ValueError as error:
            raise ScanReadError(f"{extrinsics_path}: camera {key!r}: {error}") from error
    return dict(sorted(cameras.items()))


def _ticks(folder: Path) -> list[str]:
    return sorted(match.group(1) for match in (_IMAGE_NAME.match(p.name) for p in folder.iterdir()) if match)


def read_mvhumannet_video(ref: MultiViewVideoRef, *, allow_partial: bool = False) -> MultiViewVideo:
    """Cameras and the synchronised frame list of a capture (reads one image for the size, no other pixels).

    Args:
        ref: from :func:`discover_mvhumannet`.
        allow_partial: if True, cameras with missing frames are tolerated and only the frames every
            camera has (the intersection) are kept; if False (default) they are an error.

    Raises:
        ScanReadError: naming the file or folder: no camera folders, a camera folder without calibration,
            cameras with different frame lists (unless ``allow_partial``), no frame common to all, an
            unreadable first image.
    """
    images = ref.path / _IMAGES
    camera_folders = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
    if not camera_folders:
        raise ScanReadError(f"{images}: no camera folders; {_HINT}")
    frames = {camera: _ticks(images / camera) for camera in camera_folders}
    common = sorted(set.intersection(*(set(ticks) for ticks in frames.values())))
    uneven = {camera: len(ticks) for camera, ticks in frames.items() if len(ticks) != len(common)}
    if uneven and not allow_partial:
        camera, count = next(iter(uneven.items()))
        raise ScanReadError(
            f"{images / camera}: {count} frames while the cameras share only {len(common)} "
            f"(frame counts per camera: {uneven}); cameras must have the same frames — restore the missing "
            f"images or read with allow_partial=True"
        )
    if uneven:
        logger.warning("%s: cameras %s have extra frames; keeping the %d frames common to all", ref.path, sorted(uneven), len(common))
    if not common:
        raise ScanReadError(f"{images}: no frame is present for every camera; {_HINT}")
    width, height = _image_size(images / camera_folders[0] / f"{common[0]}_img.jpg")
    calibrated = read_mvhumannet_cameras(ref, width, height)
    missing = [camera for camera in camera_folders if camera not in calibrated]
    if missing:
        raise ScanReadError(f"{ref.path / _EXTRINSICS}: no calibration for camera folders {missing}; "
                            f"re-download the camera files or remove those folders")
    cameras = {camera: calibrated[camera] for camera in camera_folders}
    return MultiViewVideo(ref=ref, cameras=cameras, ticks=tuple(common), width=width, height=height)


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except Exception as error:
        raise ScanReadError(f"{path}: unreadable image ({error}); re-download the capture") from error


def _load_image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            array = np.asarray(image.convert(mode))
    except FileNotFoundError as error:
        raise ScanReadError(f"{path}: missing; every synchronised frame needs an image and a mask") from error
    except Exception as error:
        raise ScanReadError(f"{path}: unreadable image ({error}); re-download the capture") from error
    if (array.shape[1], array.shape[0]) != size:
        raise ScanReadError(f"{path}: image is {array.shape[1]}x{array.shape[0]}, the capture's frames are {size[0]}x{size[1]}")
    return array


def read_mvhumannet_smpl(video: MultiViewVideo, tick: str) -> dict:
    """The body fit of frame ``tick`` as the project's SMPL dict (see module docstring; values as stored).

    Raises:
        ScanReadError: naming the file: missing, not JSON, no person, wrong sizes or non-finite values.
    """
    path = video.smpl_path(tick)
    if not path.is_file():
        raise ScanReadError(f"{path}: no body fit for frame {tick}; every synchronised frame needs smplx/smpl/<index>.json")
    record = _read_json(path)
    if not isinstance(record, list) or not record or not isinstance(record[0], dict):
        raise ScanReadError(f"{path}: expected a list with one EasyMocap person record")
    person = record[0]
    missing = [key for key in ("Rh", "Th", "poses", "shapes") if key not in person]
    if missing:
        raise ScanReadError(f"{path}: the person record lacks {missing}")
    poses = _matrix(person["poses"], (np.asarray(person["poses"]).size,), path, "'poses'")
    if poses.size not in (_SMPL_POSES, _SMPLX_POSES):
        raise ScanReadError(f"{path}: 'poses' has {poses.size} values; SMPL has {_SMPL_POSES}, SMPL-X (6-PCA hands) {_SMPLX_POSES}")
    shapes = _matrix(person["shapes"], (np.asarray(person["shapes"]).size,), path, "'shapes'")
    if shapes.size < 10:
        raise ScanReadError(f"{path}: 'shapes' has {shapes.size} values, expected at least 10")
    Rh = _matrix(person["Rh"], (3,), path, "'Rh'")
    Th = _matrix(person["Th"], (3,), path, "'Th'")
    is_smpl = poses.size == _SMPL_POSES
    body_pose = np.zeros((23, 3))
    body_pose[: 23 if is_smpl else 21] = poses[3: 72 if is_smpl else 66].reshape(-1, 3)
    root = poses[:3]
    global_orient = Rh if not np.any(root) else (Rotation.from_rotvec(Rh) * Rotation.from_rotvec(root)).as_rotvec()
    label = person.get("body_model", "SMPL (MVHumanNet fit)" if is_smpl else "SMPL-X (MVHumanNet fit)")
    params = {
        "betas": shapes[:10],
        "body_pose": body_pose,
        "global_orient": global_orient,
        "transl": Th,
        "scale": np.ones(1),
        "body_model": str(label),
        "transl_about": "model origin",
    }
    if not is_smpl:
        params["extra_pose"] = poses[66:]
    return params


def pelvis_centred_transl(params: Mapping[str, np.ndarray], rest_pelvis: np.ndarray) -> np.ndarray:
    """SMPL-convention translation (rotation about the pelvis) from an EasyMocap ``transl`` (about the origin).

    ``transl_smpl = Th - J0 + R(global_orient) J0`` with ``J0`` = ``rest_pelvis`` (3,), the body model's
    pelvis joint for ``params["betas"]`` in the rest pose (metres).
    """
    return pelvis_transl_from_origin(params["global_orient"], params["transl"], rest_pelvis)


def iter_mvhumannet_chunks(video: MultiViewVideo, chunk_frames: int, *,
                           cameras: Sequence[str] | None = None) -> Iterator[MultiViewChunk]:
    """Synchronised frames in chunks of ``chunk_frames`` (the last may be shorter); one chunk in memory at a time.

    Args:
        video: from :func:`read_mvhumannet_video`.
        chunk_frames: frames per chunk (>= 1).
        cameras: camera names to read (default all, in :attr:`MultiViewVideo.camera_names` order).

    Raises:
        ValueError: bad ``chunk_frames`` or an unknown camera name.
        ScanReadError: naming the file: a missing or unreadable image or mask, a missing body fit.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    names = list(video.camera_names if cameras is None else cameras)
    unknown = [name for name in names if name not in video.cameras]
    if unknown:
        raise ValueError(f"cameras names {unknown}, which are not in the capture ({list(video.camera_names)})")
    size = (video.width, video.height)
    for start in range(0, len(video.ticks), chunk_frames):
        ticks = video.ticks[start:start + chunk_frames]
        images = np.empty((len(names), len(ticks), video.height, video.width, 3), dtype=np.uint8)
        masks = np.empty((len(names), len(ticks), video.height, video.width), dtype=bool)
        for c, name in enumerate(names):
            for f, tick in enumerate(ticks):
                images[c, f] = _load_image(video.image_path(name, tick), "RGB", size)
                masks[c, f] = _load_image(video.mask_path(name, tick), "L", size) > 127
        yield MultiViewChunk(ticks=tuple(ticks), images=images, masks=masks,
                             smpl=[read_mvhumannet_smpl(video, tick) for tick in ticks])


# ----------------------------------------------------------------------------- writer (synthetic captures)
def _encode(image: np.ndarray, format_name: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": 95} if format_name == "JPEG" else {}
    Image.fromarray(image).save(buffer, format=format_name, **options)
    return buffer.getvalue()


def write_mvhumannet_capture(
    folder: Path,
    cameras: Mapping[str, Camera],
    frames: Iterable[Mapping[str, tuple[np.ndarray, np.ndarray]]],
    smpl: Sequence[Mapping[str, np.ndarray]],
    *,
    camera_scale: float = 120.0 / 65.0,
    body_model_label: str,
) -> None:
    """Write one capture in MVHumanNet's layout (see module docstring).

    Args:
        folder: the capture folder ``<root>/<outfit_id>``.
        cameras: camera name -> :class:`Camera` for the ``_lr`` images; all must share one ``K``.
        frames: per frame, camera name -> ``(rgb (H, W, 3) uint8, mask (H, W) bool)``; consumed one
            frame at a time (a generator keeps one frame in memory).
        smpl: per frame, an EasyMocap record's values: ``Rh`` (3,), ``Th`` (3,), ``poses`` (72,), ``shapes`` (10,).
        camera_scale: written to ``camera_scale.pkl``; translations are stored divided by it, in mm.
        body_model_label: stored with every body fit (``body_model`` key).

    Raises:
        ValueError: cameras with different intrinsics, or ``frames`` and ``smpl`` of different lengths
            (checked when ``frames`` runs out).
    """
    folder = Path(folder)
    shared = next(iter(cameras.values())).K
    if any(not np.array_equal(camera.K, shared) for camera in cameras.values()):
        raise ValueError("cameras must share one K (MVHumanNet stores one intrinsics matrix per capture)")
    K_full = shared.copy()
    K_full[:2] /= LOW_RES_FACTOR
    atomic_write_bytes(folder / _INTRINSICS, json.dumps({"intrinsics": K_full.tolist(), "dist": []}, indent=4).encode())
    extrinsics = {}
    for name, camera in cameras.items():
        translation = camera.t * 1000.0 / camera_scale
        x, y, z, w = Rotation.from_matrix(camera.R).as_quat()
        extrinsics[f"1_{name}.png"] = {
            "focal_length": [K_full[0, 0], K_full[1, 1]],
            "image_center": [K_full[0, 2], K_full[1, 2]],
            "translation": translation.tolist(),
            "camera_pos": (-camera.R.T @ translation).tolist(),
            "quaternion": [w, x, y, z],
            "rotation": camera.R.tolist(),
        }
    atomic_write_bytes(folder / _EXTRINSICS, json.dumps(extrinsics, indent=4).encode())
    atomic_write_bytes(folder / _SCALE, pickle.dumps(float(camera_scale)))
    count = 0
    for index, views in enumerate(frames):
        if index >= len(smpl):
            raise ValueError(f"frames holds more than the {len(smpl)} frames smpl has")
        count, fit, tick = index + 1, smpl[index], frame_tick(index)
        for name, (rgb, mask) in views.items():
            atomic_write_bytes(folder / _IMAGES / name / f"{tick}_img.jpg", _encode(rgb, "JPEG"))
            atomic_write_bytes(folder / _MASKS / name / f"{tick}_img_fmask.png",
                               _encode(np.where(mask, 255, 0).astype(np.uint8), "PNG"))
        record = [{
            "id": 0,
            "Rh": [np.asarray(fit["Rh"], dtype=np.float64).tolist()],
            "Th": [np.asarray(fit["Th"], dtype=np.float64).tolist()],
            "poses": [np.asarray(fit["poses"], dtype=np.float64).tolist()],
            "shapes": [np.asarray(fit["shapes"], dtype=np.float64).tolist()],
            "body_model": body_model_label,
        }]
        atomic_write_bytes(folder / _SMPL / f"{_fit_index(tick):06d}.json", json.dumps(record).encode())
    if count != len(smpl):
        raise ValueError(f"frames and smpl must have the same length, got {count} and {len(smpl)}")
