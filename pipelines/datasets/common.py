"""Shared pieces of the raw scan datasets (THuman2.1, 2K2K): scan records, errors, safe loaders.

Ground truth of synthetic subjects is kept apart from the dataset's own files, in
``<root>/_groundtruth/<subject_id>.json`` (see :func:`write_groundtruth`); real datasets have no such
folder and readers never need it.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import trimesh

from gas_core.fileio import atomic_write_bytes
from pipelines.datasets.errors import ScanReadError

if TYPE_CHECKING:
    from gas_core.synth.humans import SyntheticSubject
    from pipelines.datasets.integrity import MeshFileCounts

__all__ = [
    "RawScan",
    "SubjectRef",
    "ScanReadError",
    "GROUNDTRUTH_DIRNAME",
    "atomic_write_bytes",
    "numeric_first",
    "subject_folders",
    "check_mesh_file",
    "load_mesh_file",
    "load_parameter_file",
    "load_body_model_parameters",
    "write_groundtruth",
    "read_groundtruth",
    "groundtruth_record",
]

#: Folder under a dataset root that holds synthetic subjects' ground truth, one JSON per subject.
GROUNDTRUTH_DIRNAME = "_groundtruth"


@dataclass(frozen=True)
class SubjectRef:
    """Where one subject of a raw dataset lives.

    Attributes:
        dataset: ``"thuman"`` or ``"2k2k"``.
        subject_id: the dataset's own id (folder name, e.g. ``"0042"`` or ``"00042"``).
        path: the subject's folder.
    """

    dataset: str
    subject_id: str
    path: Path


@dataclass
class RawScan:
    """One scan as read from a raw dataset.

    Attributes:
        mesh: the scan in the file's own units and axes (both datasets: metres, y up; re-exports may
            be in centimetres or millimetres, see :mod:`pipelines.datasets.units`), with a
            texture (``TextureVisuals``) or per-vertex colours (``ColorVisuals``).
        subject_id: the dataset's id of the subject.
        dataset: ``"thuman"`` or ``"2k2k"``.
        source_paths: the files the scan was read from.
        body_model: name of the parametric model of ``body_model_params`` (``"smplx"`` / ``"smpl"``),
            ``None`` when the dataset ships none for this subject.
        body_model_params: the dataset's own fit as plain numpy arrays (for THuman2.1's
            ``smplx_param.pkl``: ``betas``, ``global_orient``, ``body_pose``, ``transl``, ``scale``, ...).
    """

    mesh: trimesh.Trimesh
    subject_id: str
    dataset: str
    source_paths: tuple[Path, ...]
    body_model: str | None = None
    body_model_params: dict[str, np.ndarray] | None = field(default=None)


def numeric_first(name: str) -> tuple[int, int, str]:
    """Sort key putting numeric ids first, in numeric order (``"2"`` before ``"10"``), then the rest by name."""
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def subject_folders(dataset: str, base: Path, suffix: str) -> list[SubjectRef]:
    """The subjects of a scan dataset: folders ``<id>`` under ``base`` holding ``<id><suffix>``, sorted by id.

    Numeric ids come first in numeric order (:func:`numeric_first`); folders starting with ``.`` or ``_``
    (in-progress writes, ground truth) are skipped. An empty list when there is none.
    """
    refs = [
        SubjectRef(dataset, folder.name, folder)
        for folder in Path(base).iterdir()
        if folder.is_dir() and not folder.name.startswith((".", "_")) and (folder / f"{folder.name}{suffix}").is_file()
    ]
    return sorted(refs, key=lambda ref: numeric_first(ref.subject_id))


def check_mesh_file(path: Path, dataset_hint: str) -> "MeshFileCounts | None":
    """Check that a mesh file is whole before it is loaded; returns what it declares (None for types not checked).

    OBJ and PLY files go through :mod:`pipelines.datasets.integrity` (empty files, cut files, faces past
    the end of the vertex list, ...); other types are only checked to exist.

    Raises:
        ScanReadError: naming the file and the reason (``dataset_hint`` says what the file should be).
    """
    from pipelines.datasets.integrity import check_obj_file, check_ply_file

    path = Path(path)
    if not path.is_file():
        raise ScanReadError(f"{path}: file not found; {dataset_hint}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            return check_obj_file(path)
        if suffix == ".ply":
            return check_ply_file(path)
    except ScanReadError as error:
        raise ScanReadError(f"{error} ({dataset_hint})") from None
    return None


def load_mesh_file(path: Path, dataset_hint: str, *, counts: "MeshFileCounts | None" = None) -> trimesh.Trimesh:
    """Load one mesh file as a single ``trimesh.Trimesh`` (faces and visuals kept, no merging).

    OBJ and PLY files are first checked to be whole (:func:`check_mesh_file`: faces index existing
    vertices and texture coordinates, declared counts are present, no record is cut, no vertex is left
    out of every face), and the loaded mesh is checked to hold every declared face, finite coordinates
    and a person's size. ``counts``: what :func:`check_mesh_file` returned for this file when the caller
    already checked it (the check is not repeated).

    Raises:
        ScanReadError: if the file is missing, empty, damaged (cut short, faces past the end of the
            vertex list, ...), not a mesh, has no faces or is far smaller than a person; the message
            names the file and the reason, and ``dataset_hint`` says what the file should be.
    """
    from pipelines.datasets.integrity import check_loaded_mesh

    path = Path(path)
    if counts is None:
        counts = check_mesh_file(path, dataset_hint)
    elif not path.is_file():
        raise ScanReadError(f"{path}: file not found; {dataset_hint}")
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as error:  # trimesh raises many types for corrupt files
        raise ScanReadError(f"{path}: cannot be parsed as a mesh ({error}); re-export or re-download it. {dataset_hint}") from error
    if isinstance(loaded, trimesh.Scene):
        geometries = [geometry for geometry in loaded.geometry.values() if isinstance(geometry, trimesh.Trimesh)]
        if len(geometries) != 1:
            raise ScanReadError(
                f"{path}: holds {len(geometries)} triangle meshes, expected exactly one (an empty or corrupt "
                f"file reads as none); re-export or re-download it. {dataset_hint}"
            )
        loaded = geometries[0]
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0 or len(loaded.vertices) == 0:
        raise ScanReadError(f"{path}: empty mesh: no vertices or no faces could be read; the file is empty or truncated, "
                            f"re-download it. {dataset_hint}")
    if counts is not None:
        try:
            check_loaded_mesh(loaded, path, counts)
        except ScanReadError as error:
            raise ScanReadError(f"{error} ({dataset_hint})") from None
    elif not np.isfinite(np.asarray(loaded.vertices)).all():
        raise ScanReadError(f"{path}: mesh has non-finite vertex coordinates; re-export it. {dataset_hint}")
    return loaded


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays, scalars and builtin containers only."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol-2 pickles store array bytes through it
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays and dicts are allowed)")


def _as_arrays(raw: Any, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(raw, dict):
        raise ScanReadError(f"{path}: expected a dict of arrays, found {type(raw).__name__}; use the dataset's own parameter file")
    result = {}
    for key, value in raw.items():
        try:
            result[str(key)] = np.asarray(value)
        except Exception as error:
            raise ScanReadError(f"{path}: entry {key!r} is not array-like ({error}); use the dataset's own parameter file") from error
    return result


def load_parameter_file(path: Path) -> dict[str, np.ndarray]:
    """Read a body-model parameter file safely into a dict of numpy arrays.

    Accepts ``.pkl`` (pickles of dicts of numpy arrays only — anything else is refused; latin-1 for
    old Python 2 pickles), ``.npz`` (no pickled objects) and ``.json`` (lists of numbers).

    Raises:
        ScanReadError: naming the file, if it is missing, of another type, corrupt, or holds anything
            but arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise ScanReadError(f"{path}: parameter file not found; place the dataset's fit there or remove the reference")
    suffix = path.suffix.lower()
    try:
        if suffix == ".pkl":
            with path.open("rb") as stream:
                raw = _NumpyOnlyUnpickler(stream, encoding="latin1").load()
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                raw = {key: archive[key] for key in archive.files}
        elif suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            raise ScanReadError(f"{path}: unsupported parameter file type {suffix!r}; expected .pkl, .npz or .json")
    except ScanReadError:
        raise
    except Exception as error:
        raise ScanReadError(
            f"{path}: cannot read body-model parameters ({error}); it must hold a dict of numpy arrays — "
            "re-download the dataset's parameter file"
        ) from error
    return _as_arrays(raw, path)


#: Element counts a body-model parameter may have (axis-angle, or 3x3 rotation matrices per joint).
_PARAMETER_SIZES: dict[str, tuple[int, ...]] = {
    "global_orient": (3, 9),
    "transl": (3,),
    "translation": (3,),
    "scale": (1,),
}
_BODY_POSE_SIZES = {"smplx": (63, 189), "smpl": (69, 207)}
_REQUIRED_PARAMETERS = ("betas", "global_orient", "body_pose")
#: Shape coefficients a fit may carry (SMPL/SMPL-X ship 10 to 300).
_BETAS_SIZES = (10, 400)


def load_body_model_parameters(path: Path, model: str) -> dict[str, np.ndarray]:
    """Read an SMPL / SMPL-X fit (:func:`load_parameter_file`) and check it is a whole, usable fit.

    Args:
        path: the parameter file (``.pkl``, ``.npz`` or ``.json``).
        model: ``"smplx"`` or ``"smpl"`` (decides the expected ``body_pose`` size: 21 or 23 joints).

    Returns:
        The file's arrays, unchanged.

    Raises:
        ScanReadError: naming the file: unreadable or cut short, ``betas`` / ``global_orient`` /
            ``body_pose`` missing, an array of the wrong size, not numeric, or not finite.
        ValueError: if ``model`` is not ``"smplx"`` or ``"smpl"``.
    """
    if model not in _BODY_POSE_SIZES:
        raise ValueError(f"model must be one of {sorted(_BODY_POSE_SIZES)}, got {model!r}")
    params = load_parameter_file(path)
    fix = f"re-download the dataset's {model.upper()} fit or remove the file"
    missing = [key for key in _REQUIRED_PARAMETERS if key not in params]
    if missing:
        raise ScanReadError(f"{path}: no {', '.join(missing)} in this {model.upper()} fit (keys: {sorted(params)}); {fix}")
    for key, value in params.items():
        if value.dtype.kind not in "fiub" or value.size == 0:
            raise ScanReadError(f"{path}: entry {key!r} is not a non-empty numeric array (dtype {value.dtype}, "
                                f"shape {value.shape}); {fix}")
        if not np.all(np.isfinite(value)):
            raise ScanReadError(f"{path}: entry {key!r} holds NaN or infinite values; {fix}")
    sizes = dict(_PARAMETER_SIZES, body_pose=_BODY_POSE_SIZES[model])
    for key, allowed in sizes.items():
        if key in params and params[key].size not in allowed:
            raise ScanReadError(f"{path}: {key!r} has {params[key].size} values (shape {params[key].shape}), a "
                                f"{model.upper()} fit has {' or '.join(map(str, allowed))}; {fix}")
    betas = params["betas"].size
    if not _BETAS_SIZES[0] <= betas <= _BETAS_SIZES[1]:
        raise ScanReadError(f"{path}: 'betas' has {betas} values, a {model.upper()} fit has "
                            f"{_BETAS_SIZES[0]} to {_BETAS_SIZES[1]}; {fix}")
    return params


def write_groundtruth(root: Path, subject_id: str, record: dict[str, Any]) -> Path:
    """Write a synthetic subject's ground truth to ``<root>/_groundtruth/<subject_id>.json`` atomically.

    ``record`` values may be numpy arrays (written as nested lists) or JSON types.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        if isinstance(value, dict):
            return {str(key): convert(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        return value

    path = Path(root) / GROUNDTRUTH_DIRNAME / f"{subject_id}.json"
    atomic_write_bytes(path, json.dumps(convert(record), indent=1).encode("utf-8"))
    return path


def read_groundtruth(root: Path, subject_id: str) -> dict[str, Any]:
    """Read ``<root>/_groundtruth/<subject_id>.json``; ``joints24`` and ``coco17`` become float arrays.

    Raises:
        ScanReadError: if the file is missing (real datasets have no ground truth) or corrupt.
    """
    path = Path(root) / GROUNDTRUTH_DIRNAME / f"{subject_id}.json"
    if not path.is_file():
        raise ScanReadError(f"{path}: no ground truth; only synthetic datasets written by pipelines.synth have it")
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise ScanReadError(f"{path}: corrupt JSON ({error}); delete it and re-run the synthesis") from error
    for key in ("joints24", "coco17"):
        if key in record:
            record[key] = np.asarray(record[key], dtype=np.float64)
    return record


def groundtruth_record(subject: "SyntheticSubject") -> dict[str, Any]:
    """The ground truth kept aside for a synthetic subject (world frame: metres, y up, facing +z).

    Keys: ``joints24`` (24, 3), ``coco17`` (17, 3), ``phenotype`` (name -> value), ``pose_name``,
    ``perturbation_scale``, ``seed``, ``garments`` (bottom style and lengths), ``frame``.
    """
    spec = subject.spec
    return {
        "joints24": subject.joints24,
        "coco17": subject.coco17,
        "phenotype": spec.phenotype.as_dict(),
        "pose_name": spec.pose_name,
        "perturbation_scale": spec.perturbation_scale,
        "seed": spec.seed,
        "garments": {
            "bottom_style": spec.garments.bottom_style,
            "bottom_length": spec.garments.bottom_length,
            "sleeve_length": spec.garments.sleeve_length,
        },
        "frame": "metres, y up, facing +z (SMPL frame); joints24 in SMPL order, coco17 in COCO order",
    }
