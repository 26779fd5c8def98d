"""Checks that a raw mesh file is complete before it is read: damaged files are refused, not half-read.

An interrupted download or copy leaves a file cut at an arbitrary byte. Mesh loaders read such a file
without complaint (trimesh keeps the vertices and faces before the cut), so a scan of a third of a
person would go on to be rendered, fitted and packed. The checks here read the file's own structure:

* OBJ (:func:`check_obj_file`): the file must hold vertices and faces (an empty file is named as
  such), every face corner must index an existing vertex and texture
  coordinate, every face must have at least three corners in one corner format, a last line without
  an end-of-line must be a complete record, and nearly every vertex must belong to a face (a face list
  cut short leaves the later vertices unused);
* PLY (:func:`check_ply_file`): the header must be complete and its declared element counts must be
  present in full (binary: the byte length, reported as "truncated: expected N bytes for the declared
  vertices and faces, found M"; ASCII: the records), face indices must lie within the declared vertex
  count, and nearly every vertex must belong to a face;
* after loading (:func:`check_loaded_mesh`): the loader kept every face the file declares, the
  coordinates are finite, and the mesh is not far smaller than a person.

Every refusal is a :class:`pipelines.datasets.common.ScanReadError` naming the file and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.datasets.errors import ScanReadError

__all__ = [
    "MeshFileCounts",
    "MAX_UNREFERENCED_VERTEX_FRACTION",
    "MIN_PERSON_EXTENT",
    "check_obj_file",
    "check_ply_file",
    "check_loaded_mesh",
]

#: Refuse a file when more than this fraction of its vertices belongs to no face (a cut face list).
MAX_UNREFERENCED_VERTEX_FRACTION = 0.02

#: Refuse a mesh whose largest bounding-box side is below this, in the file's units. A person is at
#: least about 0.5 in metres (and hundreds in centimetres or millimetres), so anything smaller is a
#: fragment, whatever the units.
MIN_PERSON_EXTENT = 0.4

_REDOWNLOAD = "re-download or re-copy it from the release"


@dataclass(frozen=True)
class MeshFileCounts:
    """What a mesh file declares.

    Attributes:
        vertices: vertex records in the file.
        triangles: triangles its faces make (a polygon of k corners makes k - 2).
        texture_coordinates: texture-coordinate records (OBJ ``vt``; 0 for PLY).
    """

    vertices: int
    triangles: int
    texture_coordinates: int = 0


def _unreferenced_check(path: Path, used_vertices: np.ndarray, num_vertices: int) -> None:
    used = np.zeros(num_vertices, dtype=bool)
    used[used_vertices] = True
    unused = int(num_vertices - used.sum())
    if unused > MAX_UNREFERENCED_VERTEX_FRACTION * num_vertices:
        raise ScanReadError(
            f"{path}: {unused} of {num_vertices} vertices belong to no face, so the face list is incomplete "
            f"(a file cut short by an interrupted download or copy); {_REDOWNLOAD}"
        )


# ------------------------------------------------------------------------------------------------ OBJ
_NUMBER = re.compile(rb"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(nan|inf|infinity)$", re.IGNORECASE)


def _is_number(token: bytes) -> bool:
    return _NUMBER.match(token) is not None


def _corner_format(corner: bytes) -> tuple[bool, bool]:
    """(has texture index, has normal index) of one OBJ face corner, e.g. ``b"3/7"`` -> (True, False)."""
    parts = corner.split(b"/")
    return len(parts) > 1 and parts[1] != b"", len(parts) > 2 and parts[2] != b""


def _last_record_is_complete(line: bytes, corner_format: tuple[bool, bool] | None) -> bool:
    """Whether an OBJ line that ends the file without an end-of-line is a whole record."""
    tokens = line.split()
    if not tokens:
        return True
    kind, values = tokens[0], tokens[1:]
    if kind == b"v":
        return len(values) in (3, 4, 6, 7) and all(_is_number(value) for value in values)
    if kind in (b"vt", b"vn"):
        return len(values) in ((2, 3) if kind == b"vt" else (3,)) and all(_is_number(value) for value in values)
    if kind == b"f":
        return len(values) >= 3 and all(
            _corner_format(value) == corner_format and all(part.lstrip(b"-").isdigit() for part in value.split(b"/") if part)
            for value in values
        )
    return True  # comments, groups, materials: any text is a record


def _resolve(path: Path, indices: np.ndarray, count: int, noun: str, counted: str, listed: str) -> np.ndarray:
    """OBJ indices (1-based; negative counts back from the end) into ``count`` records -> 0-based.

    An index out of range refuses the file: "faces index {noun} that do not exist (index i, the file has
    {count} {counted}): part of the {listed} list is missing".
    """
    resolved = np.where(indices > 0, indices - 1, count + indices)
    valid = (indices != 0) & (resolved >= 0) & (resolved < count)
    if not np.all(valid):
        raise ScanReadError(
            f"{path}: faces index {noun} that do not exist (index {indices[np.flatnonzero(~valid)[0]]}, the file has "
            f"{count} {counted}): part of the {listed} list is missing; {_REDOWNLOAD}"
        )
    return resolved


def check_obj_file(path: Path) -> MeshFileCounts:
    """Check a Wavefront OBJ file is whole; returns what it declares.

    Negative (relative) indices are resolved against the file's total counts, which is exact when the
    vertices precede the faces (as every exporter writes them).

    Raises:
        ScanReadError: naming ``path``: faces indexing missing vertices or texture coordinates, a face
            with fewer than three corners or mixed corner formats, a last line cut mid-record, no
            faces, or vertices left out of every face.
    """
    path = Path(path)
    data = path.read_bytes()
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    ends_with_newline = lines[-1] == b""
    if ends_with_newline:
        lines.pop()
    vertex_lines = [line for line in lines if line.startswith((b"v ", b"v\t"))]
    num_vertices = len(vertex_lines)
    num_uv = sum(1 for line in lines if line.startswith((b"vt ", b"vt\t")))
    face_lines = [line for line in lines if line.startswith((b"f ", b"f\t"))]
    if not face_lines and num_vertices == 0:
        raise ScanReadError(
            f"{path}: empty mesh: the file has no vertices and no faces ({len(data)} bytes"
            f"{', nothing but comments or material lines' if data.strip() else ''}); it was exported empty or "
            f"cut before its first vertex; {_REDOWNLOAD}"
        )
    if not face_lines:
        raise ScanReadError(
            f"{path}: no faces ({num_vertices} vertices and no 'f' records), so the file is empty or cut before "
            f"its face list; {_REDOWNLOAD}"
        )
    first_corner = face_lines[0].split()[1:2]
    corner_format = _corner_format(first_corner[0]) if first_corner else (False, False)
    if not ends_with_newline and not _last_record_is_complete(lines[-1], corner_format):
        raise ScanReadError(
            f"{path}: the last line is cut mid-record ({lines[-1][:60]!r}, no end of line): the file was cut "
            f"short by an interrupted download or copy; {_REDOWNLOAD}"
        )
    corners_per_face = np.fromiter((len(line.split()) - 1 for line in face_lines), dtype=np.int64, count=len(face_lines))
    short = np.flatnonzero(corners_per_face < 3)
    if len(short):
        raise ScanReadError(
            f"{path}: {len(short)} faces have fewer than three corners (first: {face_lines[short[0]][:60]!r}); "
            f"the file is damaged, {_REDOWNLOAD}"
        )
    corners = b" ".join(line[2:] for line in face_lines).split()
    slashes_per_corner = {(False, False): 0, (True, False): 1, (False, True): 2, (True, True): 2}[corner_format]
    block = b" ".join(corners)
    if block.count(b"/") != slashes_per_corner * len(corners) or (
            corner_format == (False, True)) != (block.count(b"//") == len(corners)):
        raise ScanReadError(
            f"{path}: face corners mix formats (v, v/vt, v/vt/vn, v//vn) or are cut mid-index; the file is "
            f"damaged, {_REDOWNLOAD}"
        )
    fields_per_corner = 1 + int(corner_format[0]) + int(corner_format[1])
    try:
        numbers = np.array(block.replace(b"//", b" ").replace(b"/", b" ").split()).astype(np.int64)
    except ValueError as error:
        raise ScanReadError(f"{path}: a face index is not an integer ({error}); the file is damaged, {_REDOWNLOAD}") from error
    numbers = numbers.reshape(len(corners), fields_per_corner)
    vertex_index = _resolve(path, numbers[:, 0], num_vertices, "vertices", "vertices", "vertex")
    if corner_format[0]:
        _resolve(path, numbers[:, 1], num_uv, "texture coordinates", "'vt' records", "texture-coordinate")
    _unreferenced_check(path, vertex_index, num_vertices)
    return MeshFileCounts(vertices=num_vertices, triangles=int((corners_per_face - 2).sum()), texture_coordinates=num_uv)


# ------------------------------------------------------------------------------------------------ PLY
_PLY_TYPES = {
    b"char": "i1", b"int8": "i1", b"uchar": "u1", b"uint8": "u1", b"short": "i2", b"int16": "i2",
    b"ushort": "u2", b"uint16": "u2", b"int": "i4", b"int32": "i4", b"uint": "u4", b"uint32": "u4",
    b"float": "f4", b"float32": "f4", b"double": "f8", b"float64": "f8",
}


@dataclass(frozen=True)
class _PlyProperty:
    name: str
    dtype: str  # numpy type code without byte order
    count_dtype: str | None = None  # list properties: type of the length prefix


@dataclass(frozen=True)
class _PlyElement:
    name: str
    count: int
    properties: tuple[_PlyProperty, ...]


def _parse_ply_header(path: Path, data: bytes) -> tuple[str, tuple[_PlyElement, ...], int]:
    """(format, elements, offset of the body) of a PLY file."""
    if not data.strip():
        raise ScanReadError(f"{path}: empty file ({len(data)} bytes): no header, no vertices, no faces; {_REDOWNLOAD}")
    if not data.startswith(b"ply"):
        raise ScanReadError(f"{path}: not a PLY file (it does not start with 'ply'); {_REDOWNLOAD}")
    end = data.find(b"end_header")
    if end < 0:
        raise ScanReadError(f"{path}: the PLY header has no 'end_header': the file is cut inside its header; {_REDOWNLOAD}")
    newline = data.find(b"\n", end)
    if newline < 0:
        raise ScanReadError(f"{path}: the file ends right after its header; {_REDOWNLOAD}")
    file_format, elements = None, []
    current: list | None = None
    for raw in data[:end].split(b"\n"):
        tokens = raw.strip().split()
        if not tokens or tokens[0] in (b"comment", b"obj_info", b"ply"):
            continue
        if tokens[0] == b"format" and len(tokens) >= 2:
            file_format = tokens[1].decode("ascii", "replace")
        elif tokens[0] == b"element" and len(tokens) == 3 and tokens[2].isdigit():
            current = [tokens[1].decode("ascii", "replace"), int(tokens[2]), []]
            elements.append(current)
        elif tokens[0] == b"property" and current is not None:
            if len(tokens) == 5 and tokens[1] == b"list" and tokens[2] in _PLY_TYPES and tokens[3] in _PLY_TYPES:
                current[2].append(_PlyProperty(tokens[4].decode("ascii", "replace"), _PLY_TYPES[tokens[3]],
                                               _PLY_TYPES[tokens[2]]))
            elif len(tokens) == 3 and tokens[1] in _PLY_TYPES:
                current[2].append(_PlyProperty(tokens[2].decode("ascii", "replace"), _PLY_TYPES[tokens[1]]))
            else:
                raise ScanReadError(f"{path}: unreadable PLY header line {raw.strip()[:60]!r}; {_REDOWNLOAD}")
        else:
            raise ScanReadError(f"{path}: unreadable PLY header line {raw.strip()[:60]!r}; {_REDOWNLOAD}")
    if file_format not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ScanReadError(f"{path}: unknown PLY format {file_format!r}; expected ascii or binary; {_REDOWNLOAD}")
    parsed = tuple(_PlyElement(name, count, tuple(props)) for name, count, props in elements)
    return file_format, parsed, newline + 1


def _binary_row(data: bytes, start: int, element: _PlyElement, order: str, *, available: int | None = None,
                missing_length: int | None = None) -> tuple[list[tuple[_PlyProperty, int, int]], int, bool]:
    """Walk one binary row of ``element`` that begins at byte ``start``.

    Returns its lists as (property, offset of the first item, length), the offset where the row ends, and
    whether every list count could be read. A count that ends past ``available`` bytes (default: all of
    ``data``) stops the walk there (the end is then where that count would end), or, with
    ``missing_length``, is taken to be that length and the walk goes on.
    """
    available = len(data) if available is None else available
    lists, position, complete = [], start, True
    for prop in element.properties:
        size = np.dtype(prop.dtype).itemsize
        if prop.count_dtype is None:
            position += size
            continue
        count_dtype = np.dtype(order + prop.count_dtype)
        if position + count_dtype.itemsize <= available:
            length = int(np.frombuffer(data, count_dtype, 1, position)[0])
        elif missing_length is None:
            return lists, position + count_dtype.itemsize, False
        else:
            length, complete = missing_length, False
        position += count_dtype.itemsize
        lists.append((prop, position, length))
        position += length * size
    return lists, position, complete


def _binary_face_indices(path: Path, data: bytes, offset: int, element: _PlyElement, order: str
                         ) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """Walk a binary element with list properties: (vertex indices, corners per face, bytes used).

    Fast path: every list has the length of the first row (all triangles), read as one structured array.
    """
    if element.count == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
    # Lengths of the first row's lists, to try the fixed-layout fast path.
    first_lists, end, complete = _binary_row(data, offset, element, order)
    if not complete:
        return None, None, end - offset
    lengths = [length for _, _, length in first_lists]
    fields, list_index = [], 0
    for number, prop in enumerate(element.properties):
        if prop.count_dtype is None:
            fields.append((f"p{number}", order + prop.dtype))
        else:
            fields.append((f"n{number}", order + prop.count_dtype))
            fields.append((f"p{number}", order + prop.dtype, (lengths[list_index],)))
            list_index += 1
    row = np.dtype(fields)
    needed = row.itemsize * element.count
    indices_name = next((f"p{n}" for n, p in enumerate(element.properties)
                         if p.count_dtype is not None and p.name in ("vertex_indices", "vertex_index")), None)
    if offset + needed <= len(data):
        table = np.frombuffer(data, row, element.count, offset)
        list_numbers = [n for n, p in enumerate(element.properties) if p.count_dtype is not None]
        if all(np.all(table[f"n{n}"] == lengths[i]) for i, n in enumerate(list_numbers)):
            if indices_name is None:
                return None, None, needed
            corners = np.full(element.count, table[indices_name].shape[1], np.int64)
            return table[indices_name].reshape(-1).astype(np.int64), corners, needed
    # Lists of varying length, or a file too short for the first row's layout: walk row by row.
    position, indices, corners = offset, [], []
    for _ in range(element.count):
        lists, end, complete = _binary_row(data, position, element, order)
        for prop, start, length in lists:
            items_end = start + length * np.dtype(prop.dtype).itemsize
            if items_end > len(data):
                return None, None, items_end - offset
            if prop.name in ("vertex_indices", "vertex_index"):
                indices.append(np.frombuffer(data, order + prop.dtype, length, start).astype(np.int64))
                corners.append(length)
        if not complete:
            return None, None, end - offset
        position = end
    return (np.concatenate(indices) if indices else np.zeros(0, np.int64)), np.asarray(corners, np.int64), position - offset


def _binary_expected_size(data: bytes, offset: int, elements: tuple[_PlyElement, ...], order: str) -> tuple[int, bool]:
    """Bytes the elements of a binary PLY body take: (size, whether it is only a lower bound).

    Rows of an element with list properties are taken to have the lists of its first row (exact for a
    mesh of triangles only, the scans' case). When the first row is not in the file, lists are taken
    to hold 3 items (a face has at least three corners), which gives a lower bound.
    """
    position, lower_bound = offset, False
    for element in elements:
        # An element without rows has no first row to read its lists from.
        _, end, complete = _binary_row(data, position, element, order, available=len(data) if element.count else 0,
                                       missing_length=3)
        lower_bound = lower_bound or not complete
        position += element.count * (end - position)
    return position - offset, lower_bound


def _truncated_error(path: Path, vertex: _PlyElement, face: _PlyElement, expected: int, lower_bound: bool,
                     found: int) -> ScanReadError:
    return ScanReadError(
        f"{path}: the file is truncated: expected {'at least ' if lower_bound else ''}{expected} bytes for the "
        f"{vertex.count} vertices and {face.count} faces its header declares, found {found} "
        f"({expected - found} missing): it was cut short by an interrupted download or copy; {_REDOWNLOAD}")


def check_ply_file(path: Path) -> MeshFileCounts:
    """Check a PLY file holds everything its header declares; returns what it declares.

    Raises:
        ScanReadError: naming ``path``: a missing or unreadable header, fewer bytes (binary) or records
            (ASCII) than the declared vertex and face counts need, no faces, faces indexing vertices
            past the declared count, or vertices left out of every face.
    """
    path = Path(path)
    data = path.read_bytes()
    file_format, elements, offset = _parse_ply_header(path, data)
    names = [element.name for element in elements]
    if "vertex" not in names or "face" not in names:
        raise ScanReadError(f"{path}: the PLY header declares no {'vertex' if 'vertex' not in names else 'face'} "
                            f"element; a scan needs both; {_REDOWNLOAD}")
    vertex = elements[names.index("vertex")]
    face = elements[names.index("face")]
    if face.count == 0 or vertex.count == 0:
        raise ScanReadError(f"{path}: empty mesh: the header declares {vertex.count} vertices and {face.count} faces; "
                            f"a scan needs both; {_REDOWNLOAD}")
    face_indices = corners = None
    if file_format == "ascii":
        records = data[offset:].split(b"\n")
        if records and records[-1].strip() == b"":
            records.pop()
        position = 0
        for element in elements:
            rows = records[position:position + element.count]
            position += element.count
            if len(rows) < element.count:
                raise ScanReadError(
                    f"{path}: the file is truncated: the header declares {vertex.count} vertices and {face.count} "
                    f"faces, but the file holds only {len(rows)} of its {element.count} {element.name} records: it "
                    f"was cut short by an interrupted download or copy; {_REDOWNLOAD}")
            if element.name == "face":
                try:
                    parsed = [np.array(row.split(), dtype=np.int64) for row in rows]
                except ValueError as error:
                    raise ScanReadError(f"{path}: a face record is not integers ({error}); {_REDOWNLOAD}") from error
                if any(len(row) == 0 or len(row) != row[0] + 1 for row in parsed):
                    raise ScanReadError(f"{path}: a face record is cut short or malformed; {_REDOWNLOAD}")
                corners = np.array([row[0] for row in parsed], np.int64)
                face_indices = np.concatenate([row[1:] for row in parsed])
            else:
                scalars = sum(1 for prop in element.properties if prop.count_dtype is None)
                if element.properties and all(prop.count_dtype is None for prop in element.properties) and (
                        len(rows[-1].split()) != scalars):
                    raise ScanReadError(f"{path}: the last {element.name} record is cut short; {_REDOWNLOAD}")
    else:
        order = "<" if file_format == "binary_little_endian" else ">"
        expected, lower_bound = _binary_expected_size(data, offset, elements, order)
        if offset + expected > len(data):
            raise _truncated_error(path, vertex, face, offset + expected, lower_bound, len(data))
        position = offset
        for element in elements:
            if all(prop.count_dtype is None for prop in element.properties):
                used = element.count * sum(np.dtype(prop.dtype).itemsize for prop in element.properties)
            else:
                indices, counts, used = _binary_face_indices(path, data, position, element, order)
                if element.name == "face":
                    face_indices, corners = indices, counts
            if position + used > len(data):
                # Lists longer than the first row's (mixed polygons): the file needs more than estimated.
                raise _truncated_error(path, vertex, face, max(offset + expected, position + used), True, len(data))
            position += used
    if face_indices is None or corners is None:
        raise ScanReadError(f"{path}: the face element has no 'vertex_indices' list; {_REDOWNLOAD}")
    if np.any(corners < 3):
        raise ScanReadError(f"{path}: faces with fewer than three corners; the file is damaged, {_REDOWNLOAD}")
    outside = (face_indices < 0) | (face_indices >= vertex.count)
    if np.any(outside):
        raise ScanReadError(
            f"{path}: faces index vertices that do not exist (index {int(face_indices[outside][0])}, the header "
            f"declares {vertex.count} vertices); the file is damaged, {_REDOWNLOAD}")
    _unreferenced_check(path, face_indices, vertex.count)
    return MeshFileCounts(vertices=vertex.count, triangles=int((corners - 2).sum()))


# ------------------------------------------------------------------------------------------ after load
def check_loaded_mesh(mesh, path: Path, counts: MeshFileCounts) -> None:
    """Check a loaded ``trimesh.Trimesh`` against what its file declares and against a person's size.

    Raises:
        ScanReadError: naming ``path``: faces dropped by the loader, non-finite coordinates, or a mesh
            whose largest side is below :data:`MIN_PERSON_EXTENT` (in the file's units).
    """
    vertices = np.asarray(mesh.vertices)
    if len(mesh.faces) != counts.triangles:
        raise ScanReadError(
            f"{path}: the file declares {counts.triangles} triangles but only {len(mesh.faces)} could be read; "
            f"the file is damaged, {_REDOWNLOAD}")
    if not np.isfinite(vertices).all():
        raise ScanReadError(f"{path}: mesh has non-finite (NaN or infinite) vertex coordinates; re-export it or {_REDOWNLOAD}")
    extent = float((vertices.max(axis=0) - vertices.min(axis=0)).max())
    if extent < MIN_PERSON_EXTENT:
        raise ScanReadError(
            f"{path}: the mesh is {extent:.3g} units across at most, far smaller than a person in metres, "
            f"centimetres or millimetres: it is a fragment or was exported at the wrong scale; {_REDOWNLOAD}")
