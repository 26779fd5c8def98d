"""THuman2.1 on disk: write synthetic subjects in the release's layout, discover and read subjects.

Layout (as distributed: the scans archive ``THuman2.1_Release`` plus the separate SMPL-X archive)::

    <root>/
      model/<id>/<id>.obj          textured scan; ``mtllib material0.mtl``, faces ``f v/vt``
      model/<id>/material0.mtl     one material ``material0`` with ``map_Kd material0.jpeg``
      model/<id>/material0.jpeg    the texture atlas (JPEG)
      smplx/<id>/smplx_param.pkl   real release only: the SMPL-X fit, a pickle of numpy arrays
      _groundtruth/<id>.json       synthetic data only (see :mod:`pipelines.datasets.common`)

``<id>`` is a zero-padded number (``0000`` ... ``2444``). The THuman2.0 layout, with the subject
folders directly under ``<root>`` (``<root>/<id>/<id>.obj``), is read too, and ``smplx_param.pkl`` is
also looked for in ``<root>/THuman2.1_smplx/<id>/`` and in the subject's own folder.

Units and axes: metres, **y up**; subjects stand roughly facing +z (the real scans' facing varies and
is given by the SMPL-X ``global_orient``). The SMPL-X fit maps onto the scan as
``scan ≈ scale * smplx(betas, global_orient, body_pose, ...) + transl`` (``transl`` is called
``translation`` in some copies); keys as shipped: ``betas`` (1, 10), ``global_orient`` (1, 3),
``body_pose`` (1, 63), ``left_hand_pose`` / ``right_hand_pose`` (1, 12 PCA or 45), ``jaw_pose``,
``leye_pose``, ``reye_pose`` (1, 3), ``expression`` (1, 10), ``transl`` (1, 3), ``scale`` (1,).
The reader returns whatever arrays the file holds, unchanged.

Synthetic subjects get **no** ``smplx_param.pkl``: they are made with Anny, and an SMPL-X fit would
need the licensed SMPL-X model to be meaningful. Their ground truth goes to ``_groundtruth/`` instead.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from gas_core.fileio import atomic_directory
from gas_core.synth.humans import SyntheticSubject
from pipelines.datasets.common import (
    RawScan,
    ScanReadError,
    SubjectRef,
    check_mesh_file,
    groundtruth_record,
    load_mesh_file,
    load_body_model_parameters,
    subject_folders,
    write_groundtruth,
)

__all__ = ["DATASET", "MATERIAL_NAME", "write_thuman_subject", "discover_thuman", "read_thuman_subject"]

DATASET = "thuman"
MATERIAL_NAME = "material0"
_MODEL_DIRNAME = "model"
_SMPLX_FILENAME = "smplx_param.pkl"
_HINT = "expected a THuman2.1 subject folder model/<id>/ with <id>.obj, material0.mtl and material0.jpeg"


def _subject_id_is_valid(subject_id: str) -> bool:
    return bool(subject_id) and re.fullmatch(r"[A-Za-z0-9_-]+", subject_id) is not None


def _obj_text(vertices: np.ndarray, uv: np.ndarray, faces: np.ndarray, face_uv: np.ndarray) -> str:
    buffer = io.StringIO()
    buffer.write(f"mtllib {MATERIAL_NAME}.mtl\n")
    np.savetxt(buffer, vertices, fmt="v %.6f %.6f %.6f")
    np.savetxt(buffer, uv, fmt="vt %.6f %.6f")
    buffer.write(f"usemtl {MATERIAL_NAME}\n")
    corners = np.stack([faces + 1, face_uv + 1], axis=-1).reshape(len(faces), 6)
    np.savetxt(buffer, corners, fmt="f %d/%d %d/%d %d/%d")
    return buffer.getvalue()


def _mtl_text() -> str:
    return (
        f"newmtl {MATERIAL_NAME}\n"
        "Ka 1.000000 1.000000 1.000000\n"
        "Kd 1.000000 1.000000 1.000000\n"
        "Ks 0.000000 0.000000 0.000000\n"
        "illum 1\n"
        f"map_Kd {MATERIAL_NAME}.jpeg\n"
    )


def write_thuman_subject(root: Path, subject: SyntheticSubject, subject_id: str, jpeg_quality: int = 95) -> Path:
    """Write one synthetic subject as ``<root>/model/<subject_id>/`` (OBJ + MTL + JPEG), atomically.

    The files go to a hidden temporary folder next to the target that is renamed into place at the
    end, so a crash never leaves a half-written subject. The ground truth is written first to
    ``<root>/_groundtruth/<subject_id>.json``. No SMPL-X file is written (see module docstring).

    Args:
        root: dataset root (created if missing).
        subject: the synthetic subject (world frame: metres, y up).
        subject_id: folder name, letters, digits, ``_`` or ``-`` (e.g. ``"0007"``).
        jpeg_quality: 1-100.

    Returns:
        The subject's folder.

    Raises:
        ValueError: on a bad ``subject_id`` or ``jpeg_quality``.
        FileExistsError: if the subject folder already exists.
    """
    if not _subject_id_is_valid(subject_id):
        raise ValueError(f"subject_id must be letters, digits, '_' or '-', got {subject_id!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    model_dir = Path(root) / _MODEL_DIRNAME
    target = model_dir / subject_id
    if target.exists():
        raise FileExistsError(f"{target} already exists; delete it to write subject {subject_id} again")
    model_dir.mkdir(parents=True, exist_ok=True)
    write_groundtruth(root, subject_id, groundtruth_record(subject))
    with atomic_directory(target) as staging:
        (staging / f"{subject_id}.obj").write_text(
            _obj_text(subject.vertices, subject.uv, subject.faces, subject.face_uv_indices)
        )
        (staging / f"{MATERIAL_NAME}.mtl").write_text(_mtl_text())
        Image.fromarray(subject.texture).save(staging / f"{MATERIAL_NAME}.jpeg", quality=jpeg_quality)
    return target


def discover_thuman(root: Path) -> list[SubjectRef]:
    """All subjects under a THuman root, sorted by id (numeric ids in numeric order).

    A subject is a folder ``<id>`` holding ``<id>.obj``, either under ``<root>/model/`` (THuman2.1)
    or directly under ``<root>`` (THuman2.0). Hidden folders (in-progress writes) are skipped.

    Raises:
        ScanReadError: if ``root`` does not exist or holds no subject in either layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise ScanReadError(f"{root}: dataset root not found; pass the folder that holds model/<id>/<id>.obj")
    base = root / _MODEL_DIRNAME if (root / _MODEL_DIRNAME).is_dir() else root
    refs = subject_folders(DATASET, base, ".obj")
    if not refs:
        raise ScanReadError(
            f"{root}: unknown layout, no <id>/<id>.obj found under {base}; pass the THuman2.1 release folder "
            "(the one holding model/) or a THuman2.0 folder of <id>/<id>.obj"
        )
    return refs


def _referenced_textures(obj_path: Path) -> list[Path]:
    """Check the OBJ's material libraries and their diffuse textures exist; return the textures."""
    libraries = []
    with obj_path.open("r", errors="replace") as stream:
        for line in stream:
            if line.startswith("mtllib"):
                libraries.extend(line.split()[1:])
            elif line.startswith(("v ", "f ")):
                break
    if not libraries:
        raise ScanReadError(f"{obj_path}: no 'mtllib' line, so the scan has no texture; {_HINT}")
    textures = []
    for name in libraries:
        mtl_path = obj_path.parent / name
        if not mtl_path.is_file():
            raise ScanReadError(f"{mtl_path}: material library named by {obj_path.name} is missing; restore it from the release")
        for line in mtl_path.read_text(errors="replace").splitlines():
            parts = line.strip().split()
            if parts and parts[0] == "map_Kd" and len(parts) > 1:
                texture = mtl_path.parent / parts[-1]
                if not texture.is_file():
                    raise ScanReadError(
                        f"{texture}: texture named by {mtl_path.name} (map_Kd) is missing; restore it from the release "
                        f"or fix the map_Kd line in {mtl_path}"
                    )
                textures.append(texture)
    if not textures:
        raise ScanReadError(f"{obj_path.parent}: no map_Kd texture in {', '.join(libraries)}; {_HINT}")
    return textures


def _check_texture_decodes(texture: Path) -> None:
    """Decode a texture image once, so a damaged file is refused by name instead of failing in the renderer.

    Raises:
        ScanReadError: naming ``texture``: truncated (an interrupted download or copy), not an image,
            or otherwise undecodable.
    """
    size = texture.stat().st_size
    try:
        with Image.open(texture) as image:
            image.load()
    # ImportError: once ultralytics is imported, PIL's open retries an unidentified file through pi-heif,
    # which is not installed; the file is still simply not a readable image
    except (OSError, SyntaxError, ValueError, ImportError, Image.DecompressionBombError) as error:
        if isinstance(error, OSError) and str(error).startswith(("image file is truncated", "broken data stream")):
            raise ScanReadError(
                f"{texture}: the texture image is truncated ({size} bytes; the decoder says: {error}): it was cut "
                "short by an interrupted download or copy; re-download it from the release") from error
        raise ScanReadError(
            f"{texture}: the texture image cannot be decoded ({size} bytes; {type(error).__name__}: {error}): it is "
            "not a readable image; re-download it from the release") from error


def _smplx_candidates(ref: SubjectRef) -> list[Path]:
    folder = ref.path
    root = folder.parent.parent if folder.parent.name == _MODEL_DIRNAME else folder.parent
    return [
        root / "smplx" / ref.subject_id / _SMPLX_FILENAME,
        root / "THuman2.1_smplx" / ref.subject_id / _SMPLX_FILENAME,
        folder / _SMPLX_FILENAME,
    ]


def read_thuman_subject(ref: SubjectRef) -> RawScan:
    """Read one THuman subject: the textured OBJ and, when present, its ``smplx_param.pkl``.

    Returns:
        :class:`RawScan` whose mesh carries ``TextureVisuals`` (vertices are split at UV seams by
        trimesh; faces keep the file's order), metres, y up.

    Raises:
        ScanReadError: if the OBJ is missing, empty, corrupt, cut short (faces past the end of the vertex
            or texture-coordinate list, a last record cut, faces missing) or far smaller than a person, its
            MTL or texture is missing, the texture image is truncated or undecodable, or the SMPL-X file is unreadable, incomplete or holds anything
            but finite arrays of SMPL-X sizes; the message names the file and the reason.
    """
    obj_path = Path(ref.path) / f"{ref.subject_id}.obj"
    if not obj_path.is_file():
        raise ScanReadError(f"{obj_path}: scan not found; {_HINT}")
    counts = check_mesh_file(obj_path, _HINT)  # an empty or cut OBJ is named as such before its materials
    textures = _referenced_textures(obj_path)
    for texture in textures:
        _check_texture_decodes(texture)
    mesh = load_mesh_file(obj_path, _HINT, counts=counts)
    if not isinstance(mesh.visual, trimesh.visual.TextureVisuals) or mesh.visual.uv is None:
        raise ScanReadError(f"{obj_path}: faces carry no texture coordinates (f v/vt); {_HINT}")
    if getattr(mesh.visual.material, "image", None) is None:  # every texture file decoded above
        raise ScanReadError(f"{textures[0]}: texture could not be decoded; re-download it from the release")
    sources: list[Path] = [obj_path, *textures]
    params = None
    for candidate in _smplx_candidates(ref):
        if candidate.is_file():
            params = load_body_model_parameters(candidate, "smplx")
            sources.append(candidate)
            break
    return RawScan(
        mesh=mesh,
        subject_id=ref.subject_id,
        dataset=DATASET,
        source_paths=tuple(sources),
        body_model="smplx" if params is not None else None,
        body_model_params=params,
    )
