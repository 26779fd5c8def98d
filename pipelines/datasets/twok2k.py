"""2K2K on disk: write synthetic subjects in the release's layout, discover and read subjects.

Layout (as the release's own loader reads it: ``<data>/obj/2K2K/<id>/<id>.ply``)::

    <root>/
      <id>/<id>.ply              scan with per-vertex colours (binary PLY: float x y z,
                                 uchar red green blue [alpha], int face lists)
      <id>/<id>_smplx.pkl        optional body-model fit (also <id>_smpl.pkl, .npz or .json, or
                                 smplx_param.pkl): read when present, as plain numpy arrays
      _groundtruth/<id>.json     synthetic data only (see :mod:`pipelines.datasets.common`)

``<id>`` is a zero-padded number (``00001`` ...). The release ships ~1M-vertex and 50K-vertex
versions of each scan in the same per-subject form; the root is whichever folder holds the subject
folders. Parametric fits were announced for later releases without a documented file name, hence the
tolerant lookup above.

Units and axes: synthetic subjects are metres, **y up**, facing +z. The public material about the
release does not state its units (its loader normalises every scan by its extent), so the reader
returns the vertices unchanged; preprocessing settles the unit from the height or the ``units``
setting (:mod:`pipelines.datasets.units`).

Synthetic subjects get no parameter file: they are made with Anny, not SMPL/SMPL-X.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import trimesh

from gas_core.fileio import atomic_directory
from gas_core.synth.humans import SyntheticSubject
from pipelines.datasets.common import (
    RawScan,
    ScanReadError,
    SubjectRef,
    groundtruth_record,
    load_mesh_file,
    load_body_model_parameters,
    subject_folders,
    write_groundtruth,
)

__all__ = ["DATASET", "write_twok2k_subject", "discover_twok2k", "read_twok2k_subject"]

DATASET = "2k2k"
_HINT = "expected a 2K2K subject folder <id>/ holding <id>.ply with per-vertex colours"


def write_twok2k_subject(root: Path, subject: SyntheticSubject, subject_id: str) -> Path:
    """Write one synthetic subject as ``<root>/<subject_id>/<subject_id>.ply`` (vertex colours), atomically.

    The folder is written under a hidden temporary name and renamed into place; the ground truth is
    written first to ``<root>/_groundtruth/<subject_id>.json``.

    Args:
        root: dataset root (created if missing).
        subject: the synthetic subject (world frame: metres, y up).
        subject_id: folder name, letters, digits, ``_`` or ``-`` (e.g. ``"00007"``).

    Returns:
        The subject's folder.

    Raises:
        ValueError: on a bad ``subject_id``.
        FileExistsError: if the subject folder already exists.
    """
    if not subject_id or re.fullmatch(r"[A-Za-z0-9_-]+", subject_id) is None:
        raise ValueError(f"subject_id must be letters, digits, '_' or '-', got {subject_id!r}")
    root = Path(root)
    target = root / subject_id
    if target.exists():
        raise FileExistsError(f"{target} already exists; delete it to write subject {subject_id} again")
    root.mkdir(parents=True, exist_ok=True)
    write_groundtruth(root, subject_id, groundtruth_record(subject))
    mesh = trimesh.Trimesh(
        vertices=subject.vertices,
        faces=subject.faces,
        vertex_colors=np.concatenate(
            [subject.vertex_colors, np.full((len(subject.vertex_colors), 1), 255, np.uint8)], axis=1
        ),
        process=False,
    )
    with atomic_directory(target) as staging:
        (staging / f"{subject_id}.ply").write_bytes(mesh.export(file_type="ply", encoding="binary"))
    return target


def discover_twok2k(root: Path) -> list[SubjectRef]:
    """All subjects (folders ``<id>`` holding ``<id>.ply``) under a 2K2K root, sorted by id.

    Raises:
        ScanReadError: if ``root`` does not exist or holds no subject.
    """
    root = Path(root)
    if not root.is_dir():
        raise ScanReadError(f"{root}: dataset root not found; pass the folder that holds <id>/<id>.ply")
    refs = subject_folders(DATASET, root, ".ply")
    if not refs:
        raise ScanReadError(
            f"{root}: unknown layout, no <id>/<id>.ply found; pass the 2K2K folder whose subfolders are the scans"
        )
    return refs


def _parameter_file(ref: SubjectRef) -> tuple[Path, str] | None:
    folder = Path(ref.path)
    for stem, model in ((f"{ref.subject_id}_smplx", "smplx"), ("smplx_param", "smplx"), (f"{ref.subject_id}_smpl", "smpl")):
        for suffix in (".pkl", ".npz", ".json"):
            candidate = folder / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate, model
    return None


def read_twok2k_subject(ref: SubjectRef) -> RawScan:
    """Read one 2K2K subject: the vertex-coloured PLY and, when present, its parameter file.

    Returns:
        :class:`RawScan` whose mesh carries ``ColorVisuals`` with per-vertex RGBA colours; vertices
        and faces in the file's order.

    Raises:
        ScanReadError: if the PLY is missing, corrupt, empty, has fewer vertices or faces than its
            header declares, faces past the declared vertex count, no vertex colours, or is far smaller
            than a person, or the parameter file is unreadable, incomplete or holds anything but finite
            arrays of SMPL / SMPL-X sizes; the message names the file and the reason.
    """
    ply_path = Path(ref.path) / f"{ref.subject_id}.ply"
    mesh = load_mesh_file(ply_path, _HINT)
    if mesh.visual.kind != "vertex":
        raise ScanReadError(
            f"{ply_path}: has no per-vertex colours (red/green/blue properties); use the release's coloured PLY, "
            "not a geometry-only export"
        )
    sources: list[Path] = [ply_path]
    params, model = None, None
    found = _parameter_file(ref)
    if found is not None:
        path, model = found
        params = load_body_model_parameters(path, model)
        sources.append(path)
    return RawScan(
        mesh=mesh,
        subject_id=ref.subject_id,
        dataset=DATASET,
        source_paths=tuple(sources),
        body_model=model,
        body_model_params=params,
    )
