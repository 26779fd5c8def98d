"""SMPL parameters and the body model the rest of the project poses: SMPL files read through ``smplx``.

:class:`BodyModel` loads ``SMPL_<GENDER>.pkl`` from :func:`gas_core.settings.body_model_dir` (the
licensed SMPL, or the open Anny-derived model that ``gas body build`` writes) into ``smplx.SMPL`` and
poses it with ``smplx``'s own blend-shape, Rodrigues and kinematic-chain functions, returning what
downstream code needs in one pass: vertices, SMPL's 24 joints and the 24 world joint transforms.

World placement: ``x_world = scale * x_model + transl``, i.e. ``scale`` multiplies about the origin
(the model's own origin, where the open model's pelvis sits in the rest pose) **before** ``transl``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from gas_core.settings import body_model_dir

__all__ = ["NUM_BODY_JOINTS", "MAX_BETAS", "SMPLParams", "BodyOutput", "BodyModel", "SMPL_LABEL"]

logger = logging.getLogger(__name__)

#: SMPL's body joints (the 24 joints minus the root, whose rotation is ``global_orient``).
NUM_BODY_JOINTS = 23
#: Shape coefficients carried by :class:`SMPLParams`.
MAX_BETAS = 10
#: Label of a model file that is not the open body model.
SMPL_LABEL = "SMPL"

_REQUIRED_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")
_FACE_KEYPOINT_NAMES = ("nose", "reye", "leye", "rear", "lear")
_SMPL_VERTEX_COUNT = 6890


def _check_tensor(name: str, value: Any, shape: tuple[int | None, ...]) -> Tensor:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {value.dtype}")
    if value.ndim != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return value


@dataclasses.dataclass(frozen=True)
class SMPLParams:
    """One batch of SMPL parameters (torch tensors, one dtype and device).

    Attributes:
        betas: (B, K) shape coefficients, 0 <= K <= 10 (missing ones count as 0).
        body_pose: (B, 23, 3) axis-angle rotations of joints 1..23 relative to their parents, radians.
        global_orient: (B, 3) axis-angle rotation of the root (pelvis), radians.
        transl: (B, 3) translation, metres, applied last.
        scale: (B,) uniform scale about the origin, applied before ``transl``; default ones.
    """

    betas: Tensor
    body_pose: Tensor
    global_orient: Tensor
    transl: Tensor
    scale: Tensor | None = None

    def __post_init__(self) -> None:
        _check_tensor("body_pose", self.body_pose, (None, NUM_BODY_JOINTS, 3))
        batch = self.body_pose.shape[0]
        _check_tensor("betas", self.betas, (batch, None))
        if self.betas.shape[1] > MAX_BETAS:
            raise ValueError(f"betas must have at most {MAX_BETAS} columns, got {self.betas.shape[1]}")
        _check_tensor("global_orient", self.global_orient, (batch, 3))
        _check_tensor("transl", self.transl, (batch, 3))
        if self.scale is None:
            object.__setattr__(self, "scale", self.body_pose.new_ones(batch))
        _check_tensor("scale", self.scale, (batch,))
        if bool((self.scale <= 0).any()):
            raise ValueError("scale must be positive")
        for name in ("betas", "global_orient", "transl", "scale"):
            value = getattr(self, name)
            if value.dtype != self.body_pose.dtype or value.device != self.body_pose.device:
                raise ValueError(
                    f"{name} must share body_pose's dtype and device ({self.body_pose.dtype}, {self.body_pose.device}), "
                    f"got {value.dtype}, {value.device}"
                )

    @property
    def batch_size(self) -> int:
        return int(self.body_pose.shape[0])

    @classmethod
    def zeros(
        cls,
        batch: int,
        *,
        num_betas: int = MAX_BETAS,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> "SMPLParams":
        """Mean shape, zero pose (the model's rest pose), no translation, unit scale."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if not 0 <= num_betas <= MAX_BETAS:
            raise ValueError(f"num_betas must be in [0, {MAX_BETAS}], got {num_betas}")
        options = {"dtype": dtype, "device": device}
        return cls(
            betas=torch.zeros(batch, num_betas, **options),
            body_pose=torch.zeros(batch, NUM_BODY_JOINTS, 3, **options),
            global_orient=torch.zeros(batch, 3, **options),
            transl=torch.zeros(batch, 3, **options),
            scale=torch.ones(batch, **options),
        )

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any]],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> "SMPLParams":
        """A batch of B from B per-sample records as shards store them: ``betas`` (K,), ``body_pose``
        (23, 3) radians, ``global_orient`` (3,), ``transl`` (3,) metres, ``scale`` (a number, default 1);
        other keys (``body_model``, ...) are ignored."""
        if isinstance(records, Mapping) or len(records) == 0:
            raise ValueError("records must be a non-empty sequence of SMPL parameter mappings")

        def stack(name: str, shape: tuple[int, ...]) -> Tensor:
            try:
                values = np.stack([np.asarray(record[name] if name != "scale" else record.get("scale", 1.0),
                                              dtype=np.float64).reshape(shape) for record in records])
            except KeyError as error:
                raise ValueError(f"records: {error.args[0]} is missing from an SMPL record") from error
            except (TypeError, ValueError) as error:
                raise ValueError(f"records: {name} has the wrong size or is not numeric ({error})") from error
            return torch.as_tensor(values, dtype=dtype, device=device)

        return cls(betas=stack("betas", (-1,)), body_pose=stack("body_pose", (NUM_BODY_JOINTS, 3)),
                   global_orient=stack("global_orient", (3,)), transl=stack("transl", (3,)), scale=stack("scale", ()))

    def to_dict(self) -> dict[str, list]:
        """JSON-ready nested lists, keyed by field name."""
        return {field.name: getattr(self, field.name).detach().cpu().tolist() for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> "SMPLParams":
        """Inverse of :meth:`to_dict`; ``scale`` may be absent (ones)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"data must be a mapping of SMPL parameters, got {type(data).__name__}")
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in data:
                if field.name == "scale":
                    continue
                raise ValueError(f"{field.name} is missing from the SMPL parameters")
            try:
                values[field.name] = torch.as_tensor(np.asarray(data[field.name], dtype=np.float64), dtype=dtype, device=device)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{field.name} is not a numeric array: {error}") from error
        unknown = set(data) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown SMPL parameter fields: {sorted(unknown)}")
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class BodyOutput:
    """A posed batch of bodies in world coordinates (metres).

    Attributes:
        vertices: (B, V, 3) posed vertices.
        joints: (B, 24, 3) posed SMPL joints.
        joint_transforms: (B, 24, 4, 4) world transform of each joint, mapping the shaped rest body to
            the world: ``x_world = sum_j w_vj * joint_transforms[j] @ [x_rest, 1]`` (``scale`` and
            ``transl`` included).
        rest_vertices: (B, V, 3) shaped rest-pose vertices (with pose correctives, if the model has any).
        rest_joints: (B, 24, 3) joints of the shaped rest body.
    """

    vertices: Tensor
    joints: Tensor
    joint_transforms: Tensor
    rest_vertices: Tensor
    rest_joints: Tensor


def _read_model_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as stream:
            data = pickle.load(stream, encoding="latin1")
    except ModuleNotFoundError as error:
        raise ValueError(
            f"{path} needs the Python module {error.name!r} to unpickle (original SMPL files store chumpy "
            f"objects): install it, or convert the file to plain numpy arrays"
        ) from error
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a readable SMPL model file ({error}); rebuild it with `gas body build`") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a dict of SMPL arrays; rebuild it with `gas body build`")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path} lacks the SMPL arrays {missing}; rebuild it with `gas body build`")
    vertices = np.asarray(data["v_template"])
    weights = np.asarray(data["weights"])
    if vertices.ndim != 2 or vertices.shape[1] != 3 or weights.shape != (vertices.shape[0], NUM_BODY_JOINTS + 1):
        raise ValueError(
            f"{path}: v_template must be (V, 3) and weights (V, 24), got {vertices.shape} and {weights.shape}"
        )
    return data


class BodyModel(torch.nn.Module):
    """An SMPL-format body model (licensed SMPL or the open body model), posed with ``smplx``.

    Args:
        model_path: folder holding ``SMPL_<GENDER>.pkl`` or the file itself; default
            ``$GAS_BODY_MODEL_PATH`` or the open model's folder (:func:`gas_core.settings.body_model_dir`).
        gender: "neutral", "male" or "female".
        dtype: floating dtype of the model's buffers.

    Raises:
        FileNotFoundError: the model file is missing (the message names the folder and the fix).
        ValueError: the file is not a readable SMPL model.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        gender: str = "neutral",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if gender not in ("neutral", "male", "female"):
            raise ValueError(f"gender must be 'neutral', 'male' or 'female', got {gender!r}")
        folder = body_model_dir(model_path)
        path = folder / f"SMPL_{gender.upper()}.pkl"
        if not path.is_file():
            raise FileNotFoundError(
                f"no body model file {path.name} in {folder}: set GAS_BODY_MODEL_PATH to a folder holding SMPL "
                f"files, or run `gas body build` to write the open body model there"
            )
        data = _read_model_file(path)
        import smplx
        from smplx.utils import Struct

        num_vertices = int(np.asarray(data["v_template"]).shape[0])
        selector_options: dict[str, Any] = {}
        if num_vertices != _SMPL_VERTEX_COUNT:
            # smplx appends joints picked at SMPL vertex indices; they mean nothing on another topology
            # (and overflow small meshes), so point them at vertex 0. Only the 24 SMPL joints are used.
            selector_options = {
                "vertex_ids": {name: 0 for name in _FACE_KEYPOINT_NAMES},
                "use_hands": False,
                "use_feet_keypoints": False,
            }
        with contextlib.redirect_stdout(io.StringIO()) as smplx_says:  # smplx prints a 10-betas notice
            self.smplx_model = smplx.SMPL(
                model_path=str(folder), data_struct=Struct(**data), gender=gender, dtype=dtype,
                num_betas=MAX_BETAS, **selector_options,
            )
        if smplx_says.getvalue().strip():
            logger.debug("smplx: %s", smplx_says.getvalue().strip())
        for name in ("betas", "body_pose", "global_orient", "transl"):
            getattr(self.smplx_model, name).requires_grad_(False)
        self.path = path
        self._label = str(data.get("open_model_label", SMPL_LABEL))
        self._has_pose_correctives = bool(self.smplx_model.posedirs.abs().max() > 0)
        vt, ft = data.get("vt"), data.get("ft")
        self.register_buffer("texture_coordinates", None if vt is None else torch.as_tensor(np.asarray(vt), dtype=dtype))
        self.register_buffer("texture_faces", None if ft is None else torch.as_tensor(np.asarray(ft), dtype=torch.long))
        logger.info("body model %s loaded from %s (%d vertices)", self._label, path, num_vertices)

    @property
    def label(self) -> str:
        """The open model's label ("open body model (Anny-derived), not SMPL") or "SMPL"."""
        return self._label

    @property
    def is_open_model(self) -> bool:
        return self._label != SMPL_LABEL

    @property
    def faces(self) -> Tensor:
        """(F, 3) long triangle indices."""
        return self.smplx_model.faces_tensor

    @property
    def skinning_weights(self) -> Tensor:
        """(V, 24) linear-blend-skinning weights."""
        return self.smplx_model.lbs_weights

    @property
    def parents(self) -> Tensor:
        """(24,) long parent index of each joint, -1 for the root."""
        return self.smplx_model.parents

    @property
    def num_betas(self) -> int:
        """Shape directions in the file (at most 10 are used)."""
        return int(self.smplx_model.shapedirs.shape[-1])

    @property
    def num_vertices(self) -> int:
        return int(self.smplx_model.v_template.shape[0])

    @property
    def template_vertices(self) -> Tensor:
        """(V, 3) mean-shape rest vertices, metres."""
        return self.smplx_model.v_template

    def forward(self, params: SMPLParams) -> BodyOutput:
        """Pose a batch of bodies (shapes in :class:`BodyOutput`)."""
        from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, vertices2joints

        if not isinstance(params, SMPLParams):
            raise ValueError(f"params must be SMPLParams, got {type(params).__name__}")
        model = self.smplx_model
        dtype, device = model.v_template.dtype, model.v_template.device
        batch = params.batch_size
        betas = params.betas.to(dtype=dtype, device=device)
        if betas.shape[1] > self.num_betas:
            raise ValueError(f"betas has {betas.shape[1]} columns but the model has {self.num_betas} shape directions")
        betas = torch.nn.functional.pad(betas, (0, self.num_betas - betas.shape[1]))
        rest_vertices = model.v_template + blend_shapes(betas, model.shapedirs)
        rest_joints = vertices2joints(model.J_regressor, rest_vertices)
        full_pose = torch.cat([params.global_orient[:, None], params.body_pose], dim=1).to(dtype=dtype, device=device)
        rotations = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(batch, -1, 3, 3)
        if self._has_pose_correctives:
            identity = torch.eye(3, dtype=dtype, device=device)
            pose_feature = (rotations[:, 1:] - identity).reshape(batch, -1)
            rest_vertices = rest_vertices + (pose_feature @ model.posedirs).reshape(batch, -1, 3)
        posed_joints, relative = batch_rigid_transform(rotations, rest_joints, model.parents, dtype=dtype)
        scale = params.scale.to(dtype=dtype, device=device)[:, None, None]
        transl = params.transl.to(dtype=dtype, device=device)[:, None, :]
        world = relative.clone()
        world[..., :3, :] = relative[..., :3, :] * scale[..., None]
        world[..., :3, 3] += transl
        blended = torch.einsum("vj,bjxy->bvxy", model.lbs_weights, world[..., :3, :])
        vertices = torch.einsum("bvxy,bvy->bvx", blended[..., :3], rest_vertices) + blended[..., 3]
        return BodyOutput(
            vertices=vertices,
            joints=posed_joints * scale + transl,
            joint_transforms=world,
            rest_vertices=rest_vertices,
            rest_joints=rest_joints,
        )
