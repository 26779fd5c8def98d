"""Ways raw files get damaged (cut downloads, broken exports), for the reader and pipeline tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def cut_file(path: Path, fraction: float) -> None:
    """Keep the first ``fraction`` of the file's bytes, as an interrupted download or copy leaves it."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])


def cut_file_at_line_end(path: Path, fraction: float) -> None:
    """Cut the file just after the last end of line before ``fraction`` of its bytes (no partial line)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: data.rindex(b"\n", 0, int(len(data) * fraction)) + 1])


def _obj_records(path: Path) -> tuple[list[bytes], np.ndarray, list[bytes], list[bytes]]:
    lines = Path(path).read_bytes().split(b"\n")
    vertices = np.array([[float(x) for x in line.split()[1:4]] for line in lines if line.startswith(b"v ")])
    uvs = [line for line in lines if line.startswith(b"vt ")]
    faces = [line for line in lines if line.startswith(b"f ")]
    header = [line for line in lines if line.startswith((b"mtllib", b"usemtl"))]
    return header, vertices, uvs, faces


def set_obj_face_index(path: Path, index: int, *, texture: bool = False) -> None:
    """Make the first face's first corner point at vertex (or texture coordinate) ``index`` (1-based)."""
    lines = Path(path).read_bytes().split(b"\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(b"f "))
    corners = lines[first].split()
    parts = corners[1].split(b"/")
    parts[1 if texture else 0] = str(index).encode()
    corners[1] = b"/".join(parts)
    lines[first] = b" ".join(corners)
    Path(path).write_bytes(b"\n".join(lines))


def keep_obj_faces(path: Path, keep: Callable[[np.ndarray], np.ndarray]) -> None:
    """Rewrite an ``f v/vt`` OBJ keeping only the faces ``keep`` selects, without unused vertices.

    ``keep`` maps the (F, 3, 3) corner positions of every face to an (F,) bool mask.
    """
    header, vertices, uvs, faces = _obj_records(path)
    corners = np.array([[[int(i) for i in corner.split(b"/")] for corner in face.split()[1:]] for face in faces]) - 1
    chosen = corners[keep(vertices[corners[..., 0]])]
    used_v, new_v = np.unique(chosen[..., 0], return_inverse=True)
    used_t, new_t = np.unique(chosen[..., 1], return_inverse=True)
    new_v, new_t = new_v.reshape(-1, 3) + 1, new_t.reshape(-1, 3) + 1
    out = [line for line in header if line.startswith(b"mtllib")]
    out += [b"v %.6f %.6f %.6f" % tuple(v) for v in vertices[used_v]]
    out += [uvs[i] for i in used_t]
    out += [line for line in header if line.startswith(b"usemtl")]
    out += [b"f " + b" ".join(b"%d/%d" % (v, t) for v, t in zip(fv, ft)) for fv, ft in zip(new_v, new_t)]
    Path(path).write_bytes(b"\n".join(out) + b"\n")


def torso_only(corners: np.ndarray) -> np.ndarray:
    """Faces of a standing person (y up, metres, any position) between the hips and the shoulders,
    within 22 cm of the body's vertical axis: a torso without head, arms or legs."""
    points = corners.reshape(-1, 3)
    low, high = points[:, 1].min(), points[:, 1].max()
    centre = np.median(points[:, [0, 2]], axis=0)
    height = high - low
    y = corners[..., 1]
    radial = np.linalg.norm(corners[..., [0, 2]] - centre, axis=-1)
    return np.all((y > low + 0.47 * height) & (y < low + 0.80 * height) & (radial < 0.22), axis=1)


def scale_obj(path: Path, factor: float) -> None:
    """Multiply every ``v`` record of an OBJ by ``factor`` (a re-export in other units: 1000 for millimetres)."""
    out = []
    for line in Path(path).read_bytes().split(b"\n"):
        if line.startswith(b"v "):
            x, y, z = (float(value) * factor for value in line.split()[1:4])
            line = b"v %.6f %.6f %.6f" % (x, y, z)
        out.append(line)
    Path(path).write_bytes(b"\n".join(out))


def scale_binary_ply(path: Path, factor: float) -> None:
    """Rewrite a PLY (binary, colours and faces kept) with its vertex coordinates multiplied by ``factor``."""
    import trimesh

    mesh = trimesh.load(path, process=False)
    mesh.vertices = np.asarray(mesh.vertices) * factor
    Path(path).write_bytes(mesh.export(file_type="ply", encoding="binary"))
