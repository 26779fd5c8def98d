"""Versioned sample schemas: declared once, used by the writer, the reader and the CLI alike.

A webdataset sample is a group of tar members that share a key: ``{key}.{field}`` where the key
ends at the first dot of the member's base name. Field names are therefore ``view07.png``,
``cameras.json`` and so on, and keys never contain dots (see :func:`make_key`).

A schema (:class:`SampleSchema`) lists its fields (:class:`FieldSpec`):

* an *image* field is PNG, either one image (``ref.png``) or one per view/frame
  (``view00.png``, ``view01.png``, ...), RGB (``uint8 (H, W, 3)``) or single channel
  (``uint8 (H, W)``); per-view fields decode to a stacked array ``(N, H, W[, 3])``;
* an *array* field is ``.npy`` (loaded with ``allow_pickle=False``) with a declared dtype and a
  shape whose entries are an int, ``None`` (any size) or ``"N"`` (the number of views);
* a *JSON* field is ``.json``: a dict, or a list of N dicts (``per_view=True``), whose entries are
  checked by :class:`JsonKey` rules (arrays with shapes, numbers, strings, allowed choices).

Every sample also carries ``schema.json`` = ``{"name": ..., "version": ...}``; a reader refuses a
name or version it does not know (:class:`SchemaVersionError`), naming the shard and the sample.

Shards hold PNG, ``.npy``, ``.json`` (and ``.mp4``) only, never pickles.

:data:`SUBJECT_SCHEMA` (``subject`` v1) is the hand-off of the preprocess stage;
:data:`VIDEO_SCHEMA` (``video`` v1) is the hand-off of the video preprocessing (monocular and multi-view
video: frames, masks, per-frame cameras and SMPL, cut into segments);
:data:`CLIP_SCHEMA` (``clip`` v1) is the hand-off of the NeRF bake to the diffusion trainer (a
reference image, target frames with their NeRF renderings and SMPL normal maps, in ``view`` or
``pose`` mode). All are listed in :data:`KNOWN_SCHEMAS`.
"""

from __future__ import annotations

import enum
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = [
    "ALLOWED_EXTENSIONS",
    "Encoding",
    "FieldSpec",
    "JsonKey",
    "JsonKind",
    "CLIP_MODES",
    "CLIP_SCHEMA",
    "ClipSample",
    "KNOWN_SCHEMAS",
    "SCHEMA_MEMBER",
    "SUBJECT_SCHEMA",
    "SampleSchema",
    "SchemaError",
    "SchemaVersionError",
    "SubjectSample",
    "VIDEO_KINDS",
    "VIDEO_SCHEMA",
    "VideoSample",
    "decode",
    "decode_clip",
    "decode_sample",
    "decode_video",
    "encode",
    "make_clip_key",
    "make_key",
    "make_video_key",
    "read_schema_tag",
    "schema_for",
    "split_member_name",
]

#: Member suffixes a shard may hold; anything else (pickles above all) is refused.
ALLOWED_EXTENSIONS = (".png", ".npy", ".json", ".mp4")
#: Name of the member that carries ``{"name": ..., "version": ...}`` in every sample.
SCHEMA_MEMBER = "schema.json"
#: PNG compression level used when writing (0-9; 3 is a good speed/size trade-off).
PNG_COMPRESSION = 3

_KEY_PART = re.compile(r"[^A-Za-z0-9_-]+")


class SchemaError(ValueError):
    """A sample does not match its schema; the message names the field (and shard/sample when known)."""


class SchemaVersionError(SchemaError):
    """A sample declares a schema name or version this reader does not know."""


class Encoding(enum.Enum):
    """How one field is stored in the tar."""

    PNG_RGB = "png_rgb"  # uint8 (H, W, 3)
    PNG_GRAY = "png_gray"  # uint8 (H, W)
    NPY = "npy"  # numpy array, no pickles
    JSON = "json"  # dict, or list of dicts when per_view

    @property
    def extension(self) -> str:
        return {"png_rgb": ".png", "png_gray": ".png", "npy": ".npy", "json": ".json"}[self.value]

    @property
    def is_image(self) -> bool:
        return self in (Encoding.PNG_RGB, Encoding.PNG_GRAY)


class JsonKind(enum.Enum):
    """Type of one entry inside a JSON field."""

    ARRAY = "array"  # numbers with a shape; decoded to float64 numpy arrays
    NUMBER = "number"  # int or float
    INTEGER = "integer"
    STRING = "string"
    OBJECT = "object"  # any JSON dict
    ANY = "any"  # any JSON value


@dataclass(frozen=True)
class JsonKey:
    """One entry of a JSON field: ``key`` of ``kind``, with ``shape`` (ARRAY) or ``choices`` (STRING)."""

    key: str
    kind: JsonKind
    shape: tuple[int | str | None, ...] | None = None
    choices: tuple[str, ...] | None = None
    required: bool = True


@dataclass(frozen=True)
class FieldSpec:
    """One field of a schema.

    ``name`` is the attribute name in decoded samples (``views``); ``member`` the tar suffix:
    for per-view fields the stem before the index (``view`` -> ``view07.png``), otherwise the
    full suffix (``cameras.json``). ``dtype``/``shape`` apply to NPY fields (``"N"`` in a shape
    means the number of views), ``json_keys`` to JSON fields.
    """

    name: str
    member: str
    encoding: Encoding
    per_view: bool = False
    required: bool = True
    dtype: str | None = None
    shape: tuple[int | str | None, ...] | None = None
    json_keys: tuple[JsonKey, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if self.per_view and self.encoding is Encoding.NPY:
            raise ValueError(f"field {self.name!r}: per-view NPY fields are not supported; use one (N, ...) array")
        if self.repeated and not re.fullmatch(r"[a-z][a-z_]*", self.member):
            raise ValueError(f"member of per-view image field {self.name!r} must be a bare stem, got {self.member!r}")
        if not self.repeated and not self.member.endswith(self.encoding.extension):
            raise ValueError(f"member {self.member!r} of field {self.name!r} must end in {self.encoding.extension}")

    @property
    def repeated(self) -> bool:
        """True for per-view images: one tar member per view (``view00.png``, ``view01.png``, ...).

        A per-view JSON field is one member holding a list of N dicts.
        """
        return self.per_view and self.encoding.is_image

    def member_name(self, index: int | None = None, n_views: int = 1) -> str:
        """Tar suffix of this field (``view07.png``) for view ``index`` of ``n_views``."""
        if not self.repeated:
            return self.member
        if index is None:
            raise ValueError(f"field {self.name!r} is per-view: index is required")
        digits = max(2, len(str(max(n_views - 1, 0))))
        return f"{self.member}{index:0{digits}d}{self.encoding.extension}"


@dataclass(frozen=True)
class SampleSchema:
    """A named, versioned list of fields; the first required per-view image field defines N (>= 1)."""

    name: str
    version: int
    fields: tuple[FieldSpec, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"schema name must be lower-case identifier, got {self.name!r}")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"schema version must be a positive int, got {self.version!r}")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"schema {self.name}: duplicate field names in {names}")
        if not any(f.repeated and f.required for f in self.fields):
            raise ValueError(f"schema {self.name}: needs at least one required per-view image field to define N")

    @property
    def tag(self) -> dict[str, Any]:
        """``{"name": ..., "version": ...}``, stored as ``schema.json`` in every sample."""
        return {"name": self.name, "version": self.version}

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(f"schema {self.name} v{self.version} has no field {name!r}")

    def image_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.encoding.is_image)

    def match_member(self, suffix: str) -> tuple[FieldSpec, int | None] | None:
        """Which field a tar suffix (``view07.png``) belongs to, and its view index; None if none."""
        for spec in self.fields:
            if spec.repeated:
                match = re.fullmatch(re.escape(spec.member) + r"(\d+)" + re.escape(spec.encoding.extension), suffix)
                if match:
                    return spec, int(match.group(1))
            elif suffix == spec.member:
                return spec, None
        return None

    # ------------------------------------------------------------------ encode
    def encode_fields(self, values: Mapping[str, Any], *, where: str = "") -> dict[str, bytes]:
        """Encode decoded field values into tar members ``{suffix: bytes}`` (``schema.json`` included).

        ``values`` maps field names to: per-view images ``uint8 (N, H, W, 3)`` / ``(N, H, W)``,
        single images ``(H, W, 3)`` / ``(H, W)``, arrays, dicts (JSON) or lists of N dicts.
        Missing optional fields (absent or None) are skipped. Raises :class:`SchemaError`.
        """
        self.validate_fields(values, where=where)
        n_views = self._n_views(values, where)
        members: dict[str, bytes] = {SCHEMA_MEMBER: _json_bytes(self.tag)}
        for spec in self.fields:
            value = values.get(spec.name)
            if value is None:
                continue
            if spec.repeated:
                for index in range(n_views):
                    members[spec.member_name(index, n_views)] = _encode_png(value[index], spec, where)
            elif spec.encoding.is_image:
                members[spec.member] = _encode_png(value, spec, where)
            elif spec.encoding is Encoding.NPY:
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
                members[spec.member] = buffer.getvalue()
            else:
                members[spec.member] = _json_bytes(_to_jsonable(value))
        return members

    # ------------------------------------------------------------------ decode
    def decode_members(self, members: Mapping[str, bytes], *, where: str = "") -> dict[str, Any]:
        """Decode tar members ``{suffix: bytes}`` into field values (the inverse of :meth:`encode_fields`).

        Checks the ``schema.json`` tag, refuses unknown or pickle members, requires per-view
        indices ``0..N-1`` without gaps, and validates every field. JSON arrays stay lists here;
        :meth:`validate_fields` checks their shapes. Raises :class:`SchemaError`.
        """
        tag = read_schema_tag(members, where=where)
        if tag != (self.name, self.version):
            raise SchemaVersionError(
                f"{where}: sample has schema {tag[0]!r} v{tag[1]}, expected {self.name!r} v{self.version}"
            )
        per_view: dict[str, dict[int, bytes]] = {}
        values: dict[str, Any] = {}
        for suffix, data in members.items():
            if suffix.startswith("__") or suffix == SCHEMA_MEMBER:
                continue
            _check_extension(suffix, where)
            matched = self.match_member(suffix)
            if matched is None:
                raise SchemaError(f"{where}: member {suffix!r} is not a field of schema {self.name} v{self.version}")
            spec, index = matched
            if index is not None:
                per_view.setdefault(spec.name, {})[index] = data
            elif spec.encoding.is_image:
                values[spec.name] = _decode_png(data, spec, f"{where}: {suffix}")
            elif spec.encoding is Encoding.NPY:
                values[spec.name] = _decode_npy(data, f"{where}: {suffix}")
            else:
                try:
                    values[spec.name] = json.loads(data)
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise SchemaError(f"{where}: {suffix} is not valid JSON ({exc})") from exc
        for name, frames in per_view.items():
            spec = self.field(name)
            indices = sorted(frames)
            if indices != list(range(len(indices))):
                raise SchemaError(f"{where}: field {name!r} has view indices {indices}, expected 0..{len(indices) - 1}")
            images = [_decode_png(frames[i], spec, f"{where}: {spec.member_name(i, len(indices))}") for i in indices]
            shapes = {image.shape for image in images}
            if len(shapes) != 1:
                raise SchemaError(f"{where}: field {name!r} has images of different sizes {sorted(shapes)}")
            values[name] = np.stack(images)
        self.validate_fields(values, where=where)
        return values

    # ------------------------------------------------------------------ validate
    def validate_fields(self, values: Mapping[str, Any], *, where: str = "") -> None:
        """Check presence, dtypes, shapes and JSON structure of decoded field values; N must agree."""
        unknown = set(values) - {f.name for f in self.fields}
        if unknown:
            raise SchemaError(f"{where}: unknown fields {sorted(unknown)} for schema {self.name} v{self.version}")
        for spec in self.fields:
            if values.get(spec.name) is None and spec.required:
                raise SchemaError(f"{where}: required field {spec.name!r} ({_member_hint(spec)}) is missing")
        n_views = self._n_views(values, where)
        image_size: tuple[int, int] | None = None
        for spec in self.fields:
            value = values.get(spec.name)
            if value is None:
                continue
            label = f"{where}: field {spec.name!r}"
            if spec.encoding.is_image:
                array = np.asarray(value)
                channels = (3,) if spec.encoding is Encoding.PNG_RGB else ()
                expected_ndim = (1 if spec.per_view else 0) + 2 + len(channels)
                if array.dtype != np.uint8 or array.ndim != expected_ndim or array.shape[expected_ndim - len(channels):] != channels:
                    lead = "(N, H, W" if spec.per_view else "(H, W"
                    tail = ", 3)" if channels else ")"
                    raise SchemaError(f"{label} must be uint8 {lead}{tail}, got {array.dtype} {array.shape}")
                if spec.per_view:
                    if array.shape[0] != n_views:
                        raise SchemaError(f"{label} has {array.shape[0]} views, expected N={n_views}")
                    size = (int(array.shape[1]), int(array.shape[2]))
                    if image_size is None:
                        image_size = size
                    elif size != image_size:
                        raise SchemaError(f"{label} has image size {size}, other per-view fields have {image_size}")
            elif spec.encoding is Encoding.NPY:
                array = np.asarray(value)
                if spec.dtype is not None and array.dtype != np.dtype(spec.dtype):
                    raise SchemaError(f"{label} must have dtype {spec.dtype}, got {array.dtype}")
                if spec.shape is not None:
                    _check_shape(array.shape, spec.shape, n_views, label)
            elif spec.per_view:
                if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) != n_views:
                    got = len(value) if isinstance(value, Sequence) else type(value).__name__
                    raise SchemaError(f"{label} must be a list of N={n_views} dicts, got {got}")
                for index, item in enumerate(value):
                    _check_json_keys(item, spec.json_keys, n_views, f"{label}[{index}]")
            else:
                _check_json_keys(value, spec.json_keys, n_views, label)
        if image_size is not None:
            self._check_camera_sizes(values, image_size, where)

    def _check_camera_sizes(self, values: Mapping[str, Any], image_size: tuple[int, int], where: str) -> None:
        """JSON per-view dicts with ``width``/``height`` must match the per-view image size (H, W)."""
        for spec in self.fields:
            if spec.encoding is not Encoding.JSON or not spec.per_view or values.get(spec.name) is None:
                continue
            keys = {rule.key for rule in spec.json_keys}
            if not {"width", "height"} <= keys:
                continue
            for index, item in enumerate(values[spec.name]):
                if (int(item["height"]), int(item["width"])) != image_size:
                    raise SchemaError(
                        f"{where}: field {spec.name!r}[{index}] is {item['width']}x{item['height']} (WxH) but the "
                        f"images are {image_size[1]}x{image_size[0]}"
                    )

    def _n_views(self, values: Mapping[str, Any], where: str) -> int:
        """N from the first required per-view field (>= 1)."""
        spec = next(f for f in self.fields if f.repeated and f.required)
        value = values.get(spec.name)
        n_views = len(value) if value is not None else 0
        if n_views < 1:
            raise SchemaError(f"{where}: field {spec.name!r} needs at least one view, got {n_views}")
        return n_views


def _member_hint(spec: FieldSpec) -> str:
    return f"{spec.member}00{spec.encoding.extension}.." if spec.repeated else spec.member


def _check_extension(suffix: str, where: str) -> None:
    if not suffix.endswith(ALLOWED_EXTENSIONS):
        raise SchemaError(f"{where}: member {suffix!r} has a forbidden type; shards hold only {ALLOWED_EXTENSIONS}")


def _check_shape(shape: tuple[int, ...], rule: tuple[int | str | None, ...], n_views: int, label: str) -> None:
    expected = tuple(n_views if dim == "N" else dim for dim in rule)
    if len(shape) != len(expected) or any(e is not None and e != s for s, e in zip(shape, expected)):
        readable = "(" + ", ".join("*" if e is None else str(e) for e in expected) + (",)" if len(expected) == 1 else ")")
        raise SchemaError(f"{label} must have shape {readable}, got {tuple(shape)}")


def _check_json_keys(value: Any, rules: tuple[JsonKey, ...], n_views: int, label: str) -> None:
    if not isinstance(value, Mapping):
        raise SchemaError(f"{label} must be a JSON object, got {type(value).__name__}")
    for rule in rules:
        if rule.key not in value or value[rule.key] is None:
            if rule.required:
                raise SchemaError(f"{label} is missing key {rule.key!r}")
            continue
        item = value[rule.key]
        where = f"{label}.{rule.key}"
        if rule.kind is JsonKind.ARRAY:
            try:
                array = np.asarray(item, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise SchemaError(f"{where} must be numeric, got {item!r:.80}") from exc
            if not np.all(np.isfinite(array)):
                raise SchemaError(f"{where} must be finite")
            if rule.shape is not None:
                _check_shape(array.shape, rule.shape, n_views, where)
        elif rule.kind is JsonKind.NUMBER:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, float, np.number)) or not np.isfinite(item):
                raise SchemaError(f"{where} must be a finite number, got {item!r}")
        elif rule.kind is JsonKind.INTEGER:
            if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
                raise SchemaError(f"{where} must be an integer, got {item!r}")
        elif rule.kind is JsonKind.STRING:
            if not isinstance(item, str):
                raise SchemaError(f"{where} must be a string, got {item!r}")
            if rule.choices is not None and item not in rule.choices:
                raise SchemaError(f"{where} must be one of {rule.choices}, got {item!r}")
        elif rule.kind is JsonKind.OBJECT and not isinstance(item, Mapping):
            raise SchemaError(f"{where} must be a JSON object, got {type(item).__name__}")


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _encode_png(image: np.ndarray, spec: FieldSpec, where: str) -> bytes:
    array = np.ascontiguousarray(image)
    if spec.encoding is Encoding.PNG_RGB:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise SchemaError(f"{where}: field {spec.name!r}: PNG encoding failed for shape {array.shape}")
    return buffer.tobytes()


def _decode_png(data: bytes, spec: FieldSpec, where: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None:
        raise SchemaError(f"{where}: not a readable PNG ({len(data)} bytes)")
    if image.dtype != np.uint8:
        raise SchemaError(f"{where}: PNG must be 8-bit, got {image.dtype}")
    if spec.encoding is Encoding.PNG_RGB:
        if image.ndim != 3 or image.shape[2] != 3:
            raise SchemaError(f"{where}: expected an RGB PNG, got shape {image.shape}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim != 2:
        raise SchemaError(f"{where}: expected a single-channel PNG, got shape {image.shape}")
    return image


def _decode_npy(data: bytes, where: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise SchemaError(f"{where}: not a plain .npy array (pickled objects are refused): {exc}") from exc


def read_schema_tag(members: Mapping[str, bytes], *, where: str = "") -> tuple[str, int]:
    """``(name, version)`` from a sample's ``schema.json``; raises :class:`SchemaError` if absent or malformed."""
    if SCHEMA_MEMBER not in members:
        raise SchemaError(f"{where}: sample has no {SCHEMA_MEMBER}; it was not written by shards.ShardWriter")
    try:
        tag = json.loads(members[SCHEMA_MEMBER])
        return str(tag["name"]), int(tag["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SchemaError(f"{where}: malformed {SCHEMA_MEMBER}: {members[SCHEMA_MEMBER][:80]!r}") from exc


def split_member_name(name: str) -> tuple[str, str] | None:
    """Split a tar member name into ``(key, suffix)`` the way webdataset does (first dot of the base name)."""
    match = re.fullmatch(r"((?:.*/)?[^./]+)\.([^/]*)", name)
    if match is None:
        return None
    return match.group(1), match.group(2).lower()


def make_key(dataset: str, subject_id: str) -> str:
    """A dot-free, filesystem-safe sample key ``{dataset}__{subject}``.

    Characters outside ``[A-Za-z0-9_-]`` (dots, slashes, spaces) become ``-``, so
    ``make_key("THuman2.1", "0001")`` is ``"THuman2-1__0001"``. The writer refuses duplicate keys,
    so two ids that sanitise alike cannot overwrite each other silently.
    """
    parts = []
    for label, value in (("dataset", dataset), ("subject_id", subject_id)):
        if not isinstance(value, str):
            raise ValueError(f"{label} must be a string, got {type(value).__name__}")
        cleaned = _KEY_PART.sub("-", value.strip()).strip("-")
        cleaned = re.sub(r"_{2,}", "_", cleaned)
        if not cleaned:
            raise ValueError(f"{label} {value!r} has no usable characters for a key")
        parts.append(cleaned)
    return "__".join(parts)


# ====================================================================== declared schemas

_META_KEYS = (
    JsonKey("dataset", JsonKind.STRING),
    JsonKey("subject_id", JsonKind.STRING),
    JsonKey("source", JsonKind.ANY, required=False),
    JsonKey("extra", JsonKind.OBJECT, required=False),
)

_CAMERA_KEYS = (
    JsonKey("K", JsonKind.ARRAY, shape=(3, 3)),
    JsonKey("R", JsonKind.ARRAY, shape=(3, 3)),
    JsonKey("t", JsonKind.ARRAY, shape=(3,)),
    JsonKey("width", JsonKind.INTEGER),
    JsonKey("height", JsonKind.INTEGER),
    JsonKey("convention", JsonKind.STRING, choices=("opencv",)),
)

_SMPL_KEYS = (
    JsonKey("betas", JsonKind.ARRAY, shape=(10,)),
    JsonKey("body_pose", JsonKind.ARRAY, shape=(23, 3)),
    JsonKey("global_orient", JsonKind.ARRAY, shape=(3,)),
    JsonKey("transl", JsonKind.ARRAY, shape=(3,)),
    JsonKey("scale", JsonKind.NUMBER),
    JsonKey("body_model", JsonKind.STRING),
)


def _png(name: str, description: str, *, stem: str | None = None, gray: bool = False, required: bool = True) -> FieldSpec:
    """A PNG field, RGB or single channel (``gray``): one image per view named ``{stem}07.png`` when
    ``stem`` is given, else one image ``{name}.png``."""
    encoding = Encoding.PNG_GRAY if gray else Encoding.PNG_RGB
    if stem is None:
        return FieldSpec(name, f"{name}.png", encoding, required=required, description=description)
    return FieldSpec(name, stem, encoding, per_view=True, required=required, description=description)


def _json(name: str, json_keys: tuple[JsonKey, ...], description: str, *, per_view: bool = False) -> FieldSpec:
    """A JSON field ``{name}.json``: one dict, or a list of N dicts when ``per_view``."""
    return FieldSpec(name, f"{name}.json", Encoding.JSON, per_view=per_view, json_keys=json_keys, description=description)


def _optional_npy(name: str, dtype: str, shape: tuple[int | str | None, ...], description: str) -> FieldSpec:
    """An optional ``.npy`` field ``{name}.npy`` of ``dtype`` and ``shape``."""
    return FieldSpec(name, f"{name}.npy", Encoding.NPY, required=False, dtype=dtype, shape=shape, description=description)


SUBJECT_SCHEMA = SampleSchema(
    name="subject",
    version=1,
    description="One subject seen from N calibrated views, with masks, SMPL fit and normalisation.",
    fields=(
        _png("views", "RGB views, uint8 (N, H, W, 3)", stem="view"),
        _png("masks", "foreground masks, uint8 (N, H, W), 0/255", stem="mask", gray=True),
        _json("cameras", _CAMERA_KEYS, "OpenCV cameras: K pixels, world-to-camera R, t metres", per_view=True),
        _json("smpl", _SMPL_KEYS, "SMPL parameters (axis-angle radians, metres) and the body model that produced them"),
        _json(
            "normalization",
            (JsonKey("center", JsonKind.ARRAY, shape=(3,)), JsonKey("scale", JsonKind.NUMBER)),
            "world -> normalised frame: x_norm = (x - center) * scale",
        ),
        _json("meta", _META_KEYS, "dataset, subject_id, source paths, extra"),
        _png("normals", "optional SMPL normal maps per view, uint8 (N, H, W, 3), n = rgb / 127.5 - 1", stem="normal",
             required=False),
        _optional_npy("keypoints", "float32", ("N", None, 3),
                      "optional 2D keypoints per view, float32 (N, J, 3): x, y pixels and confidence"),
    ),
)

#: Clip modes: ``view`` (an orbit of novel views of one pose) and ``pose`` (novel poses under one camera).
CLIP_MODES = ("view", "pose")

CLIP_SCHEMA = SampleSchema(
    name="clip",
    version=1,
    description=(
        "One training clip for the video diffusion model: a reference image and N target frames with "
        "their NeRF renderings and SMPL normal maps, per-frame cameras and SMPL, in view or pose mode."
    ),
    fields=(
        _png("frames", "ground-truth target frames, uint8 (N, H, W, 3)", stem="frame"),
        _png("nerf", "generalizable-NeRF renderings of the target frames, uint8 (N, H, W, 3), black background",
             stem="nerf"),
        _png("normals", "SMPL normal maps of the target frames (official GAS encoding), uint8 (N, H, W, 3)",
             stem="normal"),
        _png("masks", "ground-truth foreground masks of the target frames, uint8 (N, H, W), 0/255", stem="mask",
             gray=True),
        _png("nerf_masks", "optional NeRF accumulated opacity per frame, uint8 (N, H, W), 0..255", stem="nerf_mask",
             gray=True, required=False),
        _png("reference", "the reference (input) image, uint8 (H, W, 3)"),
        _png("reference_mask", "foreground mask of the reference image, uint8 (H, W), 0/255", gray=True),
        _json("cameras", _CAMERA_KEYS, "per-frame OpenCV cameras: K pixels, world-to-camera R, t metres", per_view=True),
        _json("reference_camera", _CAMERA_KEYS, "camera of the reference image"),
        _json("smpl", _SMPL_KEYS, "per-frame SMPL parameters (identical for all frames of a view clip)", per_view=True),
        _json("reference_smpl", _SMPL_KEYS, "SMPL parameters of the reference image"),
        _json(
            "meta",
            _META_KEYS + (
                JsonKey("mode", JsonKind.STRING, choices=CLIP_MODES),
                JsonKey("reference_index", JsonKind.INTEGER),
                JsonKey("frame_indices", JsonKind.ARRAY, shape=("N",)),
            ),
            "dataset, subject_id, mode, reference_index, frame_indices, source, extra",
        ),
        _optional_npy("target_latents", "float16", ("N", 4, None, None),
                      "optional cached VAE latents of the frames, float16 (N, 4, H/8, W/8), SCALED by the VAE factor"),
        _optional_npy("nerf_latents", "float16", ("N", 4, None, None),
                      "optional cached VAE latents of the NeRF frames, float16 (N, 4, H/8, W/8), UNSCALED"),
        _optional_npy("reference_latent", "float16", (4, None, None),
                      "optional cached VAE latent of the reference image, float16 (4, H/8, W/8), UNSCALED"),
        _optional_npy("image_embedding", "float16", (1, None),
                      "optional cached CLIP image embedding of the reference, float16 (1, D)"),
    ),
)

#: Where a video sample comes from: one monocular video (``monocular``) or synchronised cameras (``multiview``).
VIDEO_KINDS = ("monocular", "multiview")

VIDEO_SCHEMA = SampleSchema(
    name="video",
    version=1,
    description=(
        "One segment of a video subject: T consecutive frames seen by C synchronised cameras (C = 1 for "
        "monocular video), with foreground masks, a camera and SMPL parameters per image. Images are stored "
        "camera-major: image i is camera i // T at frame i % T (N = C * T)."
    ),
    fields=(
        _png("frames", "video frames, uint8 (N, H, W, 3), N = C * T, camera-major", stem="frame"),
        _png("masks", "foreground masks of the frames, uint8 (N, H, W), 0/255 (0 everywhere: no person found)",
             stem="mask", gray=True),
        _json("cameras", _CAMERA_KEYS, "OpenCV camera of every image: K pixels, world-to-camera R, t metres", per_view=True),
        _json("smpl", _SMPL_KEYS, "SMPL parameters of every image (equal for the C images of one frame)", per_view=True),
        _json(
            "video",
            (
                JsonKey("kind", JsonKind.STRING, choices=VIDEO_KINDS),
                JsonKey("num_cameras", JsonKind.INTEGER),
                JsonKey("num_frames", JsonKind.INTEGER),
                JsonKey("fps", JsonKind.NUMBER),
                JsonKey("segment", JsonKind.INTEGER),
                JsonKey("source_frames", JsonKind.ARRAY, shape=(None,)),
                JsonKey("camera_names", JsonKind.ANY, required=False),
            ),
            "layout of the segment: kind, cameras C, frames T, fps, segment index, source frame numbers",
        ),
        _json("meta", _META_KEYS, "dataset, subject_id (the sequence), source paths, extra (status per frame, quality)"),
        _png("normals", "optional SMPL normal maps per image, uint8 (N, H, W, 3), official GAS encoding", stem="normal",
             required=False),
        _optional_npy("keypoints", "float32", ("N", None, 3),
                      "optional 2D keypoints per image, float32 (N, J, 3): x, y pixels and confidence"),
    ),
)

#: Every schema this code can read; a sample tagged with anything else is refused.
KNOWN_SCHEMAS: tuple[SampleSchema, ...] = (SUBJECT_SCHEMA, CLIP_SCHEMA, VIDEO_SCHEMA)


def schema_for(name: str, version: int, *, where: str = "") -> SampleSchema:
    """The declared schema with this name and version, or :class:`SchemaVersionError` naming ``where``."""
    for schema in KNOWN_SCHEMAS:
        if schema.name == name and schema.version == version:
            return schema
    known = ", ".join(f"{s.name} v{s.version}" for s in KNOWN_SCHEMAS)
    raise SchemaVersionError(
        f"{where}: schema {name!r} version {version} is not known to this reader (known: {known}); "
        "upgrade the gas-pipeline package or re-write the shard with this version"
    )


# ====================================================================== typed samples


@dataclass
class SubjectSample:
    """One subject (schema ``subject`` v1) in memory.

    Arrays: ``views`` uint8 (N, H, W, 3) RGB; ``masks`` uint8 (N, H, W) (0 background, 255
    foreground); optional ``normals`` uint8 (N, H, W, 3); optional ``keypoints`` float32 (N, J, 3).
    ``cameras``: N dicts with ``K`` (3, 3) pixels, ``R`` (3, 3), ``t`` (3,) metres (OpenCV,
    world-to-camera), ``width``, ``height``, ``convention="opencv"``. ``smpl``: ``betas`` (10,),
    ``body_pose`` (23, 3), ``global_orient`` (3,), ``transl`` (3,), ``scale`` and ``body_model`` (label of
    the model, e.g. ``"open body model (Anny-derived), not SMPL"``). ``normalization``: ``center`` (3,),
    ``scale``. ``meta``: ``dataset``, ``subject_id``, optional ``source`` and ``extra``.
    After :func:`decode`, JSON arrays are numpy float64 arrays.
    """

    views: np.ndarray
    masks: np.ndarray
    cameras: list[dict[str, Any]]
    smpl: dict[str, Any]
    normalization: dict[str, Any]
    meta: dict[str, Any]
    normals: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    schema = SUBJECT_SCHEMA

    @property
    def key(self) -> str:
        """Sample key from ``meta["dataset"]`` and ``meta["subject_id"]`` (see :func:`make_key`)."""
        return make_key(str(self.meta.get("dataset", "")), str(self.meta.get("subject_id", "")))

    @property
    def n_views(self) -> int:
        return int(len(self.views))

    def fields(self) -> dict[str, Any]:
        """Field values by schema field name."""
        return {spec.name: getattr(self, spec.name) for spec in self.schema.fields}


@dataclass
class ClipSample:
    """One clip (schema ``clip`` v1) in memory.

    Arrays: ``frames``, ``nerf``, ``normals`` uint8 (N, H, W, 3) (ground truth, NeRF rendering,
    SMPL normal map of each target frame); ``masks`` uint8 (N, H, W) 0/255; optional ``nerf_masks``
    uint8 (N, H, W); ``reference`` uint8 (H, W, 3) and ``reference_mask`` uint8 (H, W).
    ``cameras``: N camera dicts (as in :class:`SubjectSample`), ``reference_camera`` one dict.
    ``smpl``: N SMPL dicts, ``reference_smpl`` one (keys as in :class:`SubjectSample`).
    ``meta``: ``dataset``, ``subject_id``, ``mode`` (``"view"`` or ``"pose"``), ``reference_index``
    (index of the reference among the source's views or frames), ``frame_indices`` (N,) source
    index of each target frame, optional ``source`` and ``extra`` (e.g. the NeRF checkpoint).
    Optional cached latents: ``target_latents`` float16 (N, 4, h, w) scaled, ``nerf_latents``
    float16 (N, 4, h, w) unscaled, ``reference_latent`` float16 (4, h, w) unscaled,
    ``image_embedding`` float16 (1, D). After :func:`decode_clip`, JSON arrays are float64 arrays.
    """

    frames: np.ndarray
    nerf: np.ndarray
    normals: np.ndarray
    masks: np.ndarray
    reference: np.ndarray
    reference_mask: np.ndarray
    cameras: list[dict[str, Any]]
    reference_camera: dict[str, Any]
    smpl: list[dict[str, Any]]
    reference_smpl: dict[str, Any]
    meta: dict[str, Any]
    nerf_masks: np.ndarray | None = None
    target_latents: np.ndarray | None = None
    nerf_latents: np.ndarray | None = None
    reference_latent: np.ndarray | None = None
    image_embedding: np.ndarray | None = None

    schema = CLIP_SCHEMA

    @property
    def key(self) -> str:
        """Sample key: ``{dataset}__{subject}__{mode}{reference_index:03d}`` (see :func:`make_clip_key`),
        or ``meta["clip_id"]`` appended instead of mode/index when the meta names one."""
        meta = self.meta
        label = meta.get("clip_id") or f"{meta.get('mode', '')}{int(meta.get('reference_index', 0)):03d}"
        return make_clip_key(str(meta.get("dataset", "")), str(meta.get("subject_id", "")), str(label))

    @property
    def mode(self) -> str:
        return str(self.meta["mode"])

    @property
    def n_frames(self) -> int:
        return int(len(self.frames))

    def fields(self) -> dict[str, Any]:
        """Field values by schema field name."""
        return {spec.name: getattr(self, spec.name) for spec in self.schema.fields}


@dataclass
class VideoSample:
    """One video segment (schema ``video`` v1) in memory.

    ``frames`` uint8 (N, H, W, 3) and ``masks`` uint8 (N, H, W) hold C cameras x T frames, camera-major
    (image ``c * T + t``); ``cameras`` and ``smpl`` hold N dicts (as in :class:`SubjectSample`).
    ``video``: ``kind`` (``"monocular"`` / ``"multiview"``), ``num_cameras`` C, ``num_frames`` T, ``fps``,
    ``segment`` (index of this segment in its video), ``source_frames`` (T,) frame number of each frame
    in the video as read at ``fps``, optional ``camera_names`` (C strings). ``meta``: ``dataset``,
    ``subject_id`` (the sequence or video name), optional ``source`` and ``extra``. The key is
    ``{dataset}__{subject}__seg{segment:03d}`` (see :func:`make_video_key`).
    """

    frames: np.ndarray
    masks: np.ndarray
    cameras: list[dict[str, Any]]
    smpl: list[dict[str, Any]]
    video: dict[str, Any]
    meta: dict[str, Any]
    normals: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    schema = VIDEO_SCHEMA

    def __post_init__(self) -> None:
        cameras, frames = int(self.video.get("num_cameras", 0)), int(self.video.get("num_frames", 0))
        if cameras < 1 or frames < 1 or cameras * frames != len(self.frames):
            raise SchemaError(f"video {self.meta.get('dataset', '?')}/{self.meta.get('subject_id', '?')}: "
                              f"num_cameras={cameras} x num_frames={frames} must equal the {len(self.frames)} images")
        if len(np.asarray(self.video.get("source_frames", ()))) != frames:
            raise SchemaError(f"video {self.meta.get('subject_id', '?')}: source_frames must hold num_frames={frames} entries")

    @property
    def key(self) -> str:
        return make_video_key(str(self.meta.get("dataset", "")), str(self.meta.get("subject_id", "")),
                              int(self.video.get("segment", 0)))

    @property
    def num_cameras(self) -> int:
        return int(self.video["num_cameras"])

    @property
    def num_frames(self) -> int:
        return int(self.video["num_frames"])

    def image_index(self, camera: int, frame: int) -> int:
        """Index into ``frames`` / ``masks`` / ``cameras`` / ``smpl`` of ``camera`` at ``frame``."""
        if not 0 <= camera < self.num_cameras:
            raise ValueError(f"camera must be in [0, {self.num_cameras}), got {camera}")
        if not 0 <= frame < self.num_frames:
            raise ValueError(f"frame must be in [0, {self.num_frames}), got {frame}")
        return camera * self.num_frames + frame

    def fields(self) -> dict[str, Any]:
        """Field values by schema field name."""
        return {spec.name: getattr(self, spec.name) for spec in self.schema.fields}


def make_video_key(dataset: str, subject_id: str, segment: int) -> str:
    """Key ``{dataset}__{subject}__seg{segment:03d}`` of one segment of a video subject."""
    if isinstance(segment, bool) or not isinstance(segment, (int, np.integer)) or segment < 0:
        raise ValueError(f"segment must be an int >= 0, got {segment!r}")
    return make_clip_key(dataset, subject_id, f"seg{int(segment):03d}")


def make_clip_key(dataset: str, subject_id: str, label: str) -> str:
    """A dot-free key ``{dataset}__{subject}__{label}`` for one clip of a subject (label e.g. ``view005``)."""
    if not isinstance(label, str):
        raise ValueError(f"label must be a string, got {type(label).__name__}")
    cleaned = re.sub(r"_{2,}", "_", _KEY_PART.sub("-", label.strip()).strip("-"))
    if not cleaned:
        raise ValueError(f"label {label!r} has no usable characters for a key")
    return f"{make_key(dataset, subject_id)}__{cleaned}"


_SAMPLE_TYPES: dict[tuple[str, int], type] = {
    (SUBJECT_SCHEMA.name, SUBJECT_SCHEMA.version): SubjectSample,
    (CLIP_SCHEMA.name, CLIP_SCHEMA.version): ClipSample,
    (VIDEO_SCHEMA.name, VIDEO_SCHEMA.version): VideoSample,
}


def _json_array_keys(schema: SampleSchema) -> dict[str, tuple[str, ...]]:
    return {
        spec.name: tuple(rule.key for rule in spec.json_keys if rule.kind is JsonKind.ARRAY)
        for spec in schema.fields
        if spec.encoding is Encoding.JSON
    }


def encode(sample: SubjectSample | ClipSample | VideoSample) -> dict[str, bytes]:
    """Tar members ``{suffix: bytes}`` of a sample (without ``__key__``); raises :class:`SchemaError`."""
    meta = sample.meta if isinstance(sample.meta, Mapping) else {}
    where = f"sample {meta.get('dataset', '?')}/{meta.get('subject_id', '?')}"
    return sample.schema.encode_fields(sample.fields(), where=where)


def decode_sample(members: Mapping[str, bytes], *, where: str = "") -> SubjectSample | ClipSample | VideoSample:
    """The typed sample (:class:`SubjectSample`, :class:`ClipSample` or :class:`VideoSample`) its ``schema.json`` names.

    Refuses unknown schema names/versions with :class:`SchemaVersionError` naming ``where``.
    """
    name, version = read_schema_tag(members, where=where)
    schema = schema_for(name, version, where=where)
    values = schema.decode_members(members, where=where)
    for name_, keys in _json_array_keys(schema).items():
        value = values.get(name_)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            for key in keys:
                if item.get(key) is not None:
                    item[key] = np.asarray(item[key], dtype=np.float64)
    return _SAMPLE_TYPES[(schema.name, schema.version)](**values)


def decode(members: Mapping[str, bytes], *, where: str = "") -> SubjectSample:
    """A :class:`SubjectSample` from tar members; refuses other schemas and unknown versions (naming ``where``)."""
    sample = decode_sample(members, where=where)
    if not isinstance(sample, SubjectSample):
        raise SchemaVersionError(f"{where}: sample has schema {sample.schema.name!r} v{sample.schema.version}, not a subject sample")
    return sample


def decode_video(members: Mapping[str, bytes], *, where: str = "") -> VideoSample:
    """A :class:`VideoSample` from tar members; refuses other schemas and unknown versions (naming ``where``)."""
    sample = decode_sample(members, where=where)
    if not isinstance(sample, VideoSample):
        raise SchemaVersionError(f"{where}: sample has schema {sample.schema.name!r} v{sample.schema.version}, not a video sample")
    return sample


def decode_clip(members: Mapping[str, bytes], *, where: str = "") -> ClipSample:
    """A :class:`ClipSample` from tar members; refuses other schemas and unknown versions (naming ``where``)."""
    sample = decode_sample(members, where=where)
    if not isinstance(sample, ClipSample):
        raise SchemaVersionError(f"{where}: sample has schema {sample.schema.name!r} v{sample.schema.version}, not a clip sample")
    return sample
