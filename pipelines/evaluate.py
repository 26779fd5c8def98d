"""Evaluation of GAS checkpoints on the test splits (paper sections 4.1.3-4.4, Tables 1-4): ``gas eval``.

Inputs: baked **clip shards** of the test subjects (the bake of a split's subjects holds, per clip, the
reference image, the NeRF renderings, the SMPL normal maps and the ground-truth frames and masks), one
or more **split files** (:mod:`pipelines.splits`) and one or more named **diffusion checkpoints**
(Table 3's variants). Output, per dataset and task: ``<out>/<dataset>_<task>.md`` / ``.csv`` / ``.json``
(:func:`gas_core.metrics.write_results_table`; the JSON record holds the checkpoint and split hashes,
the settings and every clip's values), one row per checkpoint plus the row "NeRF renderings" (Table 4:
the clips' NeRF frames scored exactly like the diffusion output).

Steps (plain typed functions; :mod:`flows.evaluate` wires them into Prefect, one task per checkpoint x
dataset, never per frame):

1. :func:`plan_evaluation` reads a split file and lists the clips of its subjects that the protocol
   scores: novel views (``novel_view``): the ``view`` clips whose reference is one of the protocol's
   input views (the four orthogonal views 0, 5, 10, 15 of the 20-view orbit), every frame scored;
   novel poses (``novel_pose``): the ``pose`` clips starting at the split's reference frame, the
   ``frames_after_reference`` frames after the reference scored. Each clip is fingerprinted by the
   sha256 of its shard members.
2. :func:`score_nerf_row` / :func:`score_checkpoint_row` score one row over the plan's clips:
   :func:`generate_clip` samples the diffusion model (:func:`gas_core.diffusion.sample_latents`;
   paper guidance by default: the triangular view schedule 1 -> 2 -> 1 over the orbit, 2 for poses;
   sliding windows that keep the reference frame for long pose clips), :func:`score_clip` computes
   PSNR, SSIM and LPIPS per frame and the I3D features of the clip for FVD, under two protocols:

   - **paper protocol** (columns ``PSNR@paper`` …, the paper's numbers): whole frames; for datasets
     whose protocol removes the background (THuman2.1, and the synthetic THuman stand-ins) the
     prediction and the ground truth are both composited onto the protocol's background with the
     ground-truth masks first; 2K2K frames are scored as they are. Painting the prediction's
     background with the TRUE mask hides whatever the model put there, so featureless or noisy
     output can score as well as a real rendering;
   - **person box** (``PSNR@box``, ``SSIM@box``, ``LPIPS@box``): every frame cropped to the bounding
     box of its ground-truth mask (widened to at least :data:`BOX_MIN_SIDE` pixels), nothing painted,
     as SHERF reports "inside the person's box": the model's own pixels around and between the limbs
     count, so noise cannot win.
3. :func:`build_table` turns the rows into a :class:`~gas_core.metrics.ResultsTable` (means over all
   scored frames; FVD between the row's and the ground truth's I3D features over the clips) and
   :func:`write_tables` writes it.

Missing metric weights: without an LPIPS backbone (``metrics.lpips_weights``) or I3D weights
(``metrics.i3d_weights``) the column stays empty, the record's ``settings.missing_metrics`` says why
and a warning is logged; FVD is also left out (with the reason) when a clip has fewer than 9 scored
frames or fewer than 2 clips were scored. Numbers are never made up.

Resumable: every clip's result is cached as ``<out>/cache/<dataset>_<task>/<row>/<clip>.json`` with a
fingerprint of everything that determines it (clip contents, checkpoint hash, sampling and scoring
settings, metric weights); a rerun reuses matching entries and scores only the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from gas_core.diffusion import GASConditions, GASModel, GenerationMode, sample_latents, svd_added_time_ids
from gas_core.diffusion.guidance import pose_guidance_scales, view_guidance_scales
from gas_core.diffusion.model import DENOISER_PARTS
from gas_core.fileio import atomic_write_bytes
from gas_core.metrics import (
    FVD,
    LPIPS,
    PAPER_METRICS,
    PSNR,
    SSIM,
    CheckpointRef,
    I3DFeatureExtractor,
    LPIPSMetric,
    ResultRow,
    ResultsTable,
    composite_on_background,
    describe_checkpoint,
    describe_split,
    frechet_distance,
    load_i3d,
    psnr,
    ssim,
)
from gas_core.metrics.fvd import I3D_MIN_FRAMES
from gas_core.metrics.table import TableFiles, write_results_table
from pipelines.config import load_config
from pipelines.splits import TestSplit, orthogonal_views, read_split
from shards.reader import clip_to_tensors, iter_shard_samples, resolve_shard_urls
from shards.schema import decode_clip

__all__ = [
    "SamplingConfig",
    "ProtocolConfig",
    "MetricsConfig",
    "EvalConfig",
    "load_eval_config",
    "resolve_eval_device",
    "EvalCheckpoint",
    "parse_checkpoint_argument",
    "ClipRef",
    "parse_eval_arguments",
    "EvalPlan",
    "plan_evaluation",
    "load_diffusion_checkpoint",
    "MetricSuite",
    "describe_metrics",
    "load_metrics",
    "clip_conditions",
    "generate_clip",
    "ClipScore",
    "score_clip",
    "RowResult",
    "score_nerf_row",
    "CheckpointLoader",
    "score_checkpoint_row",
    "build_table",
    "write_tables",
    "EvalReport",
    "evaluate",
    "build_parser",
    "main_from_args",
    "NERF_ROW",
    "EVAL_COLUMNS",
    "BOX_MIN_SIDE",
    "person_boxes",
]

logger = logging.getLogger(__name__)

#: Label of Table 4's row: the clips' NeRF renderings scored as they are ("before diffusion").
NERF_ROW = "NeRF renderings"
#: Column regions: the paper's protocol (whole frames, THuman backgrounds painted with the true mask)
#: and the person's box (SHERF's region, nothing painted).
PAPER_REGION, BOX_REGION = "paper", "box"
#: The tables' columns: the paper's four metrics under its protocol, then PSNR, SSIM, LPIPS in the box.
EVAL_COLUMNS = (*(replace(c, region=PAPER_REGION, region_label="paper protocol") for c in PAPER_METRICS),
                *(replace(c, region=BOX_REGION, region_label="person box") for c in (PSNR, SSIM, LPIPS)))
#: Smallest side of a person box in pixels (LPIPS' minimum; SSIM needs 11): narrower boxes are widened.
BOX_MIN_SIDE = 32
_CACHE_FORMAT = "gas-eval-clip"
#: Version of the cached per-clip scores (2: person-box values added); part of every clip's fingerprint.
_SCORE_VERSION = 2
_TASK_TITLES = {"novel_view": "Novel view synthesis", "novel_pose": "Novel pose synthesis"}
_MODE_OF_TASK = {"novel_view": "view", "novel_pose": "pose"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


# ============================================================================================ config
@dataclass(frozen=True)
class SamplingConfig:
    """How the diffusion model generates a clip (section 3.5 of the paper).

    ``num_steps``: Euler steps of the EDM sampler. ``view_guidance_min`` / ``view_guidance_max``: the
    triangular view-mode schedule (reference view -> back view); ``pose_guidance``: the fixed
    pose-mode scale. ``window`` / ``overlap``: frames per denoiser call (reference included) and
    frames shared by consecutive windows, for clips longer than ``window`` (None: all frames at once).
    ``decode_chunk``: frames per VAE decoder call. ``fps`` / ``motion_bucket_id``: SVD's
    micro-conditioning (the release samples with 7 and 127). ``seed``: with each clip's key, seeds
    the clip's initial noise (results do not depend on the clip order). ``bf16``: bfloat16 autocast
    of the denoiser on CUDA (CPU runs float32).
    """

    num_steps: int = 25
    view_guidance_min: float = 1.0
    view_guidance_max: float = 2.0
    pose_guidance: float = 2.0
    window: int | None = 20
    overlap: int = 4
    decode_chunk: int = 20
    fps: int = 7
    motion_bucket_id: int = 127
    seed: int = 0
    bf16: bool = True

    def __post_init__(self) -> None:
        if int(self.num_steps) < 1:
            raise ValueError(f"sampling.num_steps must be >= 1, got {self.num_steps}")
        for name in ("view_guidance_min", "view_guidance_max", "pose_guidance"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"sampling.{name} must be >= 0, got {getattr(self, name)}")
        if self.window is not None and int(self.window) < 2:
            raise ValueError(f"sampling.window must be >= 2 or None, got {self.window}")
        if self.window is not None and not 0 <= int(self.overlap) < int(self.window) - 1:
            raise ValueError(f"sampling.overlap must be in [0, window - 1), got {self.overlap} for window {self.window}")
        if int(self.decode_chunk) < 1:
            raise ValueError(f"sampling.decode_chunk must be >= 1, got {self.decode_chunk}")


@dataclass(frozen=True)
class ProtocolConfig:
    """Which clips and pixels are scored. A split file's own protocol (``mask_background``,
    ``input_views``, ``frames_after_reference``) wins over these defaults, which apply to plain id lists.

    ``mask_background``: None follows the split file, else ``mask_background_datasets``; True / False
    force it for every dataset. ``background``: grey level of the removed background (1 = white).
    ``frames_after_reference``: novel poses, frames after the reference that are scored.
    ``include_nerf_row``: add Table 4's "NeRF renderings" row. ``max_clips``: score at most this many
    clips per dataset (None: all; for quick looks, recorded in the table's settings).
    """

    mask_background: bool | None = None
    mask_background_datasets: tuple[str, ...] = ("thuman",)
    background: float = 1.0
    frames_after_reference: int = 100
    include_nerf_row: bool = True
    max_clips: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.background) <= 1.0:
            raise ValueError(f"protocol.background must lie in [0, 1], got {self.background}")
        if int(self.frames_after_reference) < 1:
            raise ValueError(f"protocol.frames_after_reference must be >= 1, got {self.frames_after_reference}")
        if self.max_clips is not None and int(self.max_clips) < 1:
            raise ValueError(f"protocol.max_clips must be >= 1 or None, got {self.max_clips}")


@dataclass(frozen=True)
class MetricsConfig:
    """Metric weights, all local files (nothing is downloaded).

    ``lpips_weights``: the ImageNet backbone file of :class:`~gas_core.metrics.LPIPSMetric` (None: no
    LPIPS column); ``lpips_network``: ``"vgg"`` or ``"alex"``. ``i3d_weights``: a Kinetics-400 I3D
    state dict for FVD (None: no FVD column); ``i3d_num_classes``: width of its logits layer, the
    FVD features (400 for Kinetics-400); ``i3d_batch_size``: videos per I3D pass.
    """

    lpips_weights: str | None = None
    lpips_network: Literal["vgg", "alex"] = "vgg"
    i3d_weights: str | None = None
    i3d_num_classes: int = 400
    i3d_batch_size: int = 4

    def __post_init__(self) -> None:
        if self.lpips_network not in ("vgg", "alex"):
            raise ValueError(f"metrics.lpips_network must be 'vgg' or 'alex', got {self.lpips_network!r}")
        if int(self.i3d_num_classes) < 1:
            raise ValueError(f"metrics.i3d_num_classes must be >= 1, got {self.i3d_num_classes}")
        if int(self.i3d_batch_size) < 1:
            raise ValueError(f"metrics.i3d_batch_size must be >= 1, got {self.i3d_batch_size}")


@dataclass(frozen=True)
class EvalConfig:
    """Everything ``gas eval`` needs besides its inputs; presets :meth:`paper` and :meth:`tiny`.

    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    Load with ``load_eval_config("eval.yaml", preset="paper", overrides=["sampling.num_steps=50"])``.
    """

    sampling: SamplingConfig = SamplingConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    metrics: MetricsConfig = MetricsConfig()
    device: str = "auto"

    @classmethod
    def paper(cls) -> "EvalConfig":
        """The paper's protocol: 25 Euler steps, triangular view guidance 1 -> 2, pose guidance 2,
        20-frame windows (overlap 4) for the 100-frame pose clips, THuman backgrounds removed."""
        return cls()

    @classmethod
    def tiny(cls) -> "EvalConfig":
        """CPU preset for tests and demos: 2 steps, 4-frame windows, 8 frames after a pose reference."""
        return cls(sampling=SamplingConfig(num_steps=2, window=4, overlap=1, decode_chunk=4, bf16=False),
                   protocol=ProtocolConfig(frames_after_reference=8), device="cpu")


def load_eval_config(path: Path | str | None = None, *, preset: Literal["tiny", "paper"] = "paper",
                     overrides: Sequence[str] = ()) -> EvalConfig:
    """``preset``, then the YAML file's fields, then ``KEY=VALUE`` overrides (``sampling.num_steps=50``)."""
    return load_config(EvalConfig, path, preset=preset, overrides=tuple(overrides))


def resolve_eval_device(device: str) -> torch.device:
    """``config.device`` as a torch device: ``"auto"`` -> CUDA when present, else CPU (ValueError when CUDA is asked for and absent)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a torch device ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r} but no CUDA device is available; use --set device=cpu")
    return resolved


def _settings_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# ============================================================================================ inputs
@dataclass(frozen=True)
class EvalCheckpoint:
    """A named diffusion checkpoint (one table row): ``name`` as printed (``"Ours"``, ``"w.o. NeRF"``),
    ``path`` a :meth:`GASModel.save_pretrained` folder, a training run's ``final/`` or a training
    checkpoint ``checkpoints/step-XXXXXXXX/`` (its EMA weights when it has them)."""

    name: str
    path: str

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("checkpoint name must be non-empty")
        if self.name == NERF_ROW:
            raise ValueError(f"checkpoint name {NERF_ROW!r} is reserved for the NeRF row")

    @property
    def row_id(self) -> str:
        """File-safe id of the row's cache folder."""
        return "ckpt-" + (_SAFE_NAME.sub("_", self.name).strip("_") or "unnamed")


def parse_checkpoint_argument(text: str) -> EvalCheckpoint:
    """``NAME=PATH`` (``"w.o. NeRF=runs/ablation/final"``) or a bare ``PATH`` (named after its folder,
    or after the run folder for ``.../final``)."""
    name, sep, path = text.partition("=")
    if not sep:
        path = text
        folder = Path(text.rstrip("/"))
        name = folder.parent.name if folder.name == "final" and folder.parent.name else folder.name
    if not path:
        raise ValueError(f"--checkpoint must look like NAME=PATH or PATH, got {text!r}")
    return EvalCheckpoint(name.strip(), path.strip())


@dataclass(frozen=True)
class ClipRef:
    """One clip to score: shard ``url`` and sample ``key``, ``subject_id``, ``reference_index``,
    ``num_frames`` (frames to generate: frame 0 up to the last scored one), ``scored_frames`` (their
    positions in the clip), ``digest`` (sha256 over the sample's shard members)."""

    key: str
    url: str
    subject_id: str
    reference_index: int
    num_frames: int
    scored_frames: tuple[int, ...]
    digest: str


@dataclass(frozen=True)
class EvalPlan:
    """The clips of one dataset's test split that the protocol scores, and the protocol used.

    ``mask_background`` / ``background``: background removal with the ground-truth masks;
    ``input_views`` (novel views) / ``frames_after_reference`` (novel poses); ``missing_subjects``:
    split ids without a matching clip; ``notes``: protocol remarks recorded with the table.
    """

    dataset: str
    task: Literal["novel_view", "novel_pose"]
    split_path: str
    split_count: int
    clips: tuple[ClipRef, ...]
    mask_background: bool
    background: float
    input_views: tuple[int, ...] = ()
    frames_after_reference: int | None = None
    missing_subjects: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    clip_sources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``<dataset>_<task>``: the stem of the table files and the cache folder."""
        return f"{self.dataset}_{self.task}"

    def protocol_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"task": self.task, "mask_background": self.mask_background,
                                    "background": self.background if self.mask_background else None}
        if self.task == "novel_view":
            settings["input_views"] = list(self.input_views)
        else:
            settings["frames_after_reference"] = self.frames_after_reference
        return settings


def _clip_digest(raw: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    for suffix in sorted(name for name in raw if not name.startswith("__")):
        digest.update(suffix.encode() + b"\0")
        digest.update(hashlib.sha256(raw[suffix]).digest())
    return digest.hexdigest()


def _scored_positions(meta: Mapping[str, Any], task: str, frames_after_reference: int | None) -> tuple[int, ...]:
    frame_indices = [int(i) for i in meta["frame_indices"]]
    if task == "novel_view":
        return tuple(range(len(frame_indices)))
    if frames_after_reference is None:
        raise ValueError("frames_after_reference is needed for novel-pose clips")
    # a pose clip's frame 0 is the reference frame and the others follow it in time (pipelines.bake_nerf)
    return tuple(range(1, min(len(frame_indices), int(frames_after_reference) + 1)))


def plan_evaluation(clips: str | Path | Sequence[str | Path], split_path: str | Path, config: EvalConfig) -> EvalPlan:
    """The clips of ``split_path``'s subjects in the clip shards ``clips`` that its protocol scores.

    Args:
        clips: clip shards (folder, manifest, glob, ``.tar`` files or a list of them).
        split_path: a split file written by :func:`pipelines.splits.write_split` (a plain ``.txt``
            id list needs the ``# dataset:`` header line).
        config: the protocol defaults and ``protocol.max_clips``.

    Raises:
        ValueError: no clip of the split found (naming the dataset, task and sources), or a bad split.
    """
    split: TestSplit = read_split(Path(split_path))
    protocol = dict(split.protocol)
    task = split.task
    mode = _MODE_OF_TASK[task]
    defaults = config.protocol
    if defaults.mask_background is not None:
        mask_background = bool(defaults.mask_background)
    elif "mask_background" in protocol:
        mask_background = bool(protocol["mask_background"])
    else:
        mask_background = split.dataset in defaults.mask_background_datasets
    background = float(protocol.get("background", defaults.background)) if defaults.mask_background is None \
        else float(defaults.background)
    notes: list[str] = []
    input_views: tuple[int, ...] = ()
    frames_after: int | None = None
    if task == "novel_view":
        if "input_views" in protocol:
            input_views = tuple(int(v) for v in protocol["input_views"])
        else:
            input_views = orthogonal_views(int(protocol.get("num_views", 20)))
            notes.append(f"split file gives no input_views; used the orthogonal views {input_views}")
    else:
        frames_after = int(protocol.get("frames_after_reference", defaults.frames_after_reference))
    wanted_subjects = set(split.ids)
    urls = resolve_shard_urls([str(c) for c in clips] if isinstance(clips, (list, tuple)) else str(clips))
    chosen: dict[str, ClipRef] = {}
    short: list[str] = []
    for url in urls:
        for raw in iter_shard_samples(url):
            if "meta.json" not in raw:
                continue
            meta = json.loads(raw["meta.json"])
            if str(meta.get("dataset")) != split.dataset or str(meta.get("subject_id")) not in wanted_subjects:
                continue
            if meta.get("mode") != mode:
                continue
            subject, reference = str(meta["subject_id"]), int(meta["reference_index"])
            if mode == "pose":  # video clips name their reference by its frame number in the video
                reference = int(meta.get("extra", {}).get("reference_frame", reference))
            if task == "novel_view" and reference not in input_views:
                continue
            if task == "novel_pose" and subject in split.reference_frames and split.reference_frames[subject] != reference:
                continue
            positions = _scored_positions(meta, task, frames_after)
            expected_views = protocol.get("num_views")
            if task == "novel_view" and expected_views is not None and len(positions) != int(expected_views):
                notes.append(f"clip {raw['__key__']} has {len(positions)} frames, the protocol scores "
                             f"{expected_views} views")
            if not positions:
                notes.append(f"clip {raw['__key__']} holds no frame the protocol scores; skipped")
                continue
            if task == "novel_pose" and len(positions) < int(frames_after):
                short.append(f"{raw['__key__']} ({len(positions)} of {frames_after})")
            key = str(raw["__key__"])
            if key in chosen:
                continue
            chosen[key] = ClipRef(key=key, url=url, subject_id=subject, reference_index=reference,
                                  num_frames=max(positions) + 1, scored_frames=positions, digest=_clip_digest(raw))
    if short:
        notes.append("pose clips with fewer scored frames than the protocol asks: " + ", ".join(short))
    if not chosen:
        raise ValueError(f"no {mode} clip of the {split.dataset} test split ({len(split.ids)} ids, task {task}) "
                         f"found in {urls[:3]}{' ...' if len(urls) > 3 else ''}")
    ordered = sorted(chosen.values(), key=lambda ref: ref.key)
    if defaults.max_clips is not None and len(ordered) > int(defaults.max_clips):
        notes.append(f"protocol.max_clips={defaults.max_clips}: scored {defaults.max_clips} of {len(ordered)} clips")
        ordered = ordered[:int(defaults.max_clips)]
    found = {ref.subject_id for ref in chosen.values()}
    missing = tuple(i for i in split.ids if i not in found)
    if missing:
        logger.warning("%s %s: %d of %d test subjects have no clip: %s", split.dataset, task, len(missing),
                       len(split.ids), ", ".join(missing[:10]))
    return EvalPlan(dataset=split.dataset, task=task, split_path=str(split_path), split_count=len(split.ids),
                    clips=tuple(ordered), mask_background=mask_background, background=background,
                    input_views=input_views, frames_after_reference=frames_after, missing_subjects=missing,
                    notes=tuple(notes), clip_sources=tuple(urls))


def _read_clips(plan: EvalPlan, refs: Sequence[ClipRef]) -> Iterator[tuple[ClipRef, dict[str, Any]]]:
    """Decode the clips ``refs`` (shard by shard, in the plan's order within each shard)."""
    by_url: dict[str, dict[str, ClipRef]] = {}
    for ref in refs:
        by_url.setdefault(ref.url, {})[ref.key] = ref
    for url, wanted in by_url.items():
        for raw in iter_shard_samples(url):
            ref = wanted.get(str(raw["__key__"]))
            if ref is None:
                continue
            sample = decode_clip({k: v for k, v in raw.items() if not k.startswith("__")},
                                 where=f"shard {url} sample {ref.key}")
            yield ref, clip_to_tensors(sample)


# ============================================================================================ model and metrics
def load_diffusion_checkpoint(path: str | Path) -> GASModel:
    """A :class:`GASModel` (float32, CPU) from a ``save_pretrained`` folder, a training run folder with
    ``final/``, or a training checkpoint folder (``model/``, ``ema/``, ``training_state.pt``,
    ``config.yaml``: the model is built from the run's config and gets the EMA weights when present).

    Raises:
        FileNotFoundError / ValueError: naming ``path`` when it is none of these.
    """
    from safetensors.torch import load_file

    from pipelines.train_diffusion import load_train_config

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"diffusion checkpoint not found: {path}")
    if (path / "final").is_dir() and not (path / "unet").is_dir():
        path = path / "final"
    if (path / "unet").is_dir() and (path / "vae").is_dir():
        return GASModel.from_pretrained(path)
    if (path / "training_state.pt").is_file() and (path / "config.yaml").is_file():
        run_config = load_train_config(path / "config.yaml")
        model = run_config.model.build()
        weights_dir = path / "ema" if (path / "ema").is_dir() else path / "model"
        weights: dict[str, Tensor] = {}
        for part in DENOISER_PARTS:
            files = sorted((weights_dir / part).glob("*.safetensors"))
            if not files:
                raise ValueError(f"{weights_dir / part} holds no .safetensors weights")
            for file in files:
                weights.update({f"{part}.{key}": value for key, value in load_file(str(file)).items()})
        model.denoiser.load_state_dict(weights, strict=True)
        return model
    raise ValueError(f"{path}: not a GASModel save_pretrained folder, a run folder with final/, nor a training "
                     "checkpoint (model/, training_state.pt, config.yaml)")


@dataclass
class MetricSuite:
    """The loaded metric networks: ``lpips`` / ``i3d`` (None when not configured, with the reason in
    ``missing``: column key -> why), ``weights``: column key -> the weights' checkpoint ref, and the
    ``device`` they run on (scoring moves the frames there)."""

    lpips: LPIPSMetric | None
    i3d: I3DFeatureExtractor | None
    missing: dict[str, str] = field(default_factory=dict)
    weights: dict[str, CheckpointRef] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: I3D features of ground-truth clips already computed in this process (shared by the rows).
    target_features: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        return {key: ref.sha256 for key, ref in sorted(self.weights.items())}


def describe_metrics(config: MetricsConfig) -> tuple[dict[str, str], dict[str, CheckpointRef]]:
    """Without loading any network: ``(missing, weights)``, the columns left out (key -> reason) and the
    configured weight files (key -> hashed ref). Raises FileNotFoundError for a configured file that is absent."""
    missing: dict[str, str] = {}
    weights: dict[str, CheckpointRef] = {}
    if config.lpips_weights:
        weights[LPIPS.key] = describe_checkpoint(Path(config.lpips_weights))
    else:
        missing[LPIPS.key] = (f"no LPIPS-{config.lpips_network} backbone weights configured (metrics.lpips_weights); "
                              "the column is left empty")
    if config.i3d_weights:
        weights[FVD.key] = describe_checkpoint(Path(config.i3d_weights))
    else:
        missing[FVD.key] = "no I3D weights configured (metrics.i3d_weights); the column is left empty"
    return missing, weights


def load_metrics(config: MetricsConfig, device: torch.device | str = "cpu") -> MetricSuite:
    """LPIPS and I3D from ``config``'s local files; a path set to a missing file raises (naming it and
    how to make it), an unset path leaves that metric out with a warning and the reason."""
    lpips_metric = None
    if config.lpips_weights:
        lpips_metric = LPIPSMetric(Path(config.lpips_weights), network=config.lpips_network).to(device)
    extractor = None
    if config.i3d_weights:
        extractor = I3DFeatureExtractor(load_i3d(Path(config.i3d_weights), num_classes=int(config.i3d_num_classes),
                                                 device=device),
                                        batch_size=int(config.i3d_batch_size))
    missing, weights = describe_metrics(config)
    for reason in missing.values():
        logger.warning("evaluation: %s", reason)
    return MetricSuite(lpips=lpips_metric, i3d=extractor, missing=missing, weights=weights, device=torch.device(device))


# ============================================================================================ generation
@torch.no_grad()
def clip_conditions(model: GASModel, clip: Mapping[str, Any], num_frames: int, sampling: SamplingConfig,
                    device: torch.device) -> GASConditions:
    """The conditions of one clip's first ``num_frames`` frames (batch of 1).

    ``clip``: a :func:`shards.reader.clip_to_tensors` dict (``reference`` (3, H, W), ``nerf`` and
    ``normals`` (N, 3, H, W) in [0, 1], ``mode``). The reference and NeRF latents are the VAE's
    UNSCALED ``latent_dist.mode()``; no noise augmentation (strength 0, as the release samples).
    """
    reference = clip["reference"][None].to(device) * 2.0 - 1.0
    nerf = clip["nerf"][:num_frames].to(device) * 2.0 - 1.0
    normals = clip["normals"][:num_frames].to(device)
    reference_latent = model.encode_latents(reference)
    nerf_latents = model.encode_latents(nerf, chunk_size=int(sampling.decode_chunk))
    mode = GenerationMode.VIEW if clip["mode"] == "view" else GenerationMode.POSE
    return GASConditions(
        reference_latent=reference_latent.float(),
        image_embedding=model.encode_image_embedding(reference).float(),
        nerf_latents=nerf_latents.float()[None],
        normal_maps=normals[None].float(),
        mode=mode.one_hot(1, device=device),
        added_time_ids=svd_added_time_ids(1, fps=int(sampling.fps), motion_bucket_id=int(sampling.motion_bucket_id),
                                          device=device),
    )


def _clip_generator_seed(seed: int, key: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 63)


@torch.no_grad()
def generate_clip(model: GASModel, clip: Mapping[str, Any], num_frames: int, sampling: SamplingConfig,
                  device: torch.device, *, key: str = "") -> Tensor:
    """The model's frames for the first ``num_frames`` frames of ``clip``: float32 ``(F, 3, H, W)`` in [0, 1] (CPU).

    Guidance per frame: view clips the triangular schedule (``view_guidance_min`` at the reference,
    ``view_guidance_max`` at the back view), pose clips ``pose_guidance``; windows of
    ``sampling.window`` frames (all holding the reference frame 0) when the clip is longer. The
    initial noise is seeded by ``sampling.seed`` and ``key``.
    """
    if num_frames < 1 or num_frames > int(clip["nerf"].shape[0]):
        raise ValueError(f"num_frames must be in [1, {int(clip['nerf'].shape[0])}], got {num_frames}")
    conditions = clip_conditions(model, clip, num_frames, sampling, device)
    if clip["mode"] == "view":
        scales = view_guidance_scales(num_frames, float(sampling.view_guidance_min), float(sampling.view_guidance_max))
    else:
        scales = pose_guidance_scales(num_frames, float(sampling.pose_guidance))
    generator = torch.Generator(device=device).manual_seed(_clip_generator_seed(sampling.seed, key))
    window = None if sampling.window is None or num_frames <= int(sampling.window) else int(sampling.window)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" and sampling.bf16 \
        else _null_context()
    with autocast:
        latents = sample_latents(model, conditions, num_steps=int(sampling.num_steps), guidance_scales=scales,
                                 window=window, overlap=int(sampling.overlap), generator=generator)
    latents = latents[0].float()
    frames = []
    chunk = int(sampling.decode_chunk)
    for start in range(0, num_frames, chunk):
        part = latents[start:start + chunk]
        frames.append(model.decode_latents(part, num_frames=part.shape[0]).float().cpu())
    return ((torch.cat(frames).clamp(-1, 1) + 1.0) / 2.0)


class _null_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: Any) -> None:
        return None


# ============================================================================================ scoring
@dataclass(frozen=True)
class ClipScore:
    """One clip's numbers for one row: per scored frame ``psnr``, ``ssim``, ``lpips`` (None without
    LPIPS) under the paper's protocol and ``box_psnr``, ``box_ssim``, ``box_lpips`` inside the person's
    box, and the I3D ``features`` (400,) of the scored frames (None without I3D or with fewer than 9
    frames) plus the ground truth's ``target_features``."""

    key: str
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]
    lpips: tuple[float, ...] | None
    features: tuple[float, ...] | None
    target_features: tuple[float, ...] | None
    box_psnr: tuple[float, ...] | None = None
    box_ssim: tuple[float, ...] | None = None
    box_lpips: tuple[float, ...] | None = None

    @property
    def frames(self) -> int:
        return len(self.psnr)

    def frame_values(self) -> dict[str, tuple[float, ...] | None]:
        """Per-frame values by column key (``PSNR@paper`` …, ``LPIPS@box``); None where not computed."""
        return {f"{PSNR.name}@{PAPER_REGION}": self.psnr, f"{SSIM.name}@{PAPER_REGION}": self.ssim,
                f"{LPIPS.name}@{PAPER_REGION}": self.lpips, f"{PSNR.name}@{BOX_REGION}": self.box_psnr,
                f"{SSIM.name}@{BOX_REGION}": self.box_ssim, f"{LPIPS.name}@{BOX_REGION}": self.box_lpips}

    def means(self) -> dict[str, float]:
        """Per-clip means of the per-frame metrics (column key -> value)."""
        return {key: float(np.mean(values)) for key, values in self.frame_values().items() if values is not None}

    def as_json(self) -> dict[str, Any]:
        def listed(values: tuple[float, ...] | None) -> list[float] | None:
            return None if values is None else list(values)
        return {"key": self.key, "psnr": list(self.psnr), "ssim": list(self.ssim), "lpips": listed(self.lpips),
                "box_psnr": listed(self.box_psnr), "box_ssim": listed(self.box_ssim), "box_lpips": listed(self.box_lpips),
                "features": listed(self.features), "target_features": listed(self.target_features)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "ClipScore":
        def floats(name: str) -> tuple[float, ...] | None:
            return None if value.get(name) is None else tuple(float(v) for v in value[name])
        return cls(key=str(value["key"]), psnr=floats("psnr") or (), ssim=floats("ssim") or (), lpips=floats("lpips"),
                   features=floats("features"), target_features=floats("target_features"),
                   box_psnr=floats("box_psnr"), box_ssim=floats("box_ssim"), box_lpips=floats("box_lpips"))


def person_boxes(masks: Tensor, min_side: int = BOX_MIN_SIDE) -> Tensor:
    """The person's box in every frame: the bounding box of the ground-truth mask, widened about its
    centre to at least ``min_side`` pixels a side (within the frame); the whole frame where the mask is empty.

    Args:
        masks: ``(F, 1, H, W)`` ground-truth masks (foreground > 0.5).
        min_side: smallest box side in pixels (capped by the frame size).

    Returns:
        ``(F, 4)`` int64 corners ``x0, y0, x1, y1`` (end exclusive), the ``box`` argument of the metrics.
    """
    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"masks must be (F, 1, H, W), got {tuple(masks.shape)}")
    if isinstance(min_side, bool) or not isinstance(min_side, int) or min_side < 1:
        raise ValueError(f"min_side must be a positive int, got {min_side!r}")
    height, width = masks.shape[-2:]
    boxes = []
    for mask in masks[:, 0] > 0.5:
        rows, cols = torch.nonzero(mask.any(dim=1)).flatten(), torch.nonzero(mask.any(dim=0)).flatten()
        if rows.numel() == 0:
            boxes.append([0, 0, width, height])
            continue
        corners = []
        for low, high, limit in ((int(cols[0]), int(cols[-1]) + 1, width), (int(rows[0]), int(rows[-1]) + 1, height)):
            side = min(max(high - low, min_side), limit)
            start = min(max((low + high - side) // 2, 0), limit - side)
            corners.append((start, start + side))
        (x0, x1), (y0, y1) = corners
        boxes.append([x0, y0, x1, y1])
    return torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4)


def score_clip(pred: Tensor, target: Tensor, masks: Tensor, *, mask_background: bool, background: float,
               metrics: MetricSuite, key: str = "", target_id: str | None = None) -> ClipScore:
    """Score predicted frames against the ground truth.

    Args:
        pred, target: ``(F, 3, H, W)`` in [0, 1] (the scored frames only).
        masks: ``(F, 1, H, W)`` ground-truth masks in [0, 1].
        mask_background: composite both onto ``background`` with ``masks`` before scoring (THuman);
            False scores the frames as they are (2K2K).
        metrics: LPIPS / I3D (either may be None).
        key: the clip's key (kept in the result).
        target_id: identifies the ground-truth video (clip digest and scoring settings): its I3D
            features are computed once per process and reused by the other rows.

    Returns:
        A :class:`ClipScore`: PSNR (dB), SSIM and LPIPS per frame under the paper's protocol (composited
        when ``mask_background``, whole frames) and inside the person's box (:func:`person_boxes` of
        ``masks``; both frames as they are, never composited), and the I3D features of both videos
        (paper protocol) when I3D is loaded and ``F >= 9``.
    """
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"pred and target must be equal (F, 3, H, W) tensors, got {tuple(pred.shape)}, {tuple(target.shape)}")
    if masks.shape != (pred.shape[0], 1, *pred.shape[-2:]):
        raise ValueError(f"masks must be ({pred.shape[0]}, 1, {pred.shape[2]}, {pred.shape[3]}), got {tuple(masks.shape)}")
    device = metrics.device
    pred, target = pred.to(device).float().clamp(0, 1), target.to(device).float().clamp(0, 1)
    masks = masks.to(device).float()
    boxes = person_boxes(masks)
    box_values = {"box_psnr": tuple(float(v) for v in psnr(pred, target, box=boxes)),
                  "box_ssim": tuple(float(v) for v in ssim(pred, target, box=boxes)),
                  "box_lpips": None if metrics.lpips is None else
                  tuple(float(v) for v in metrics.lpips(pred, target, box=boxes).cpu())}
    if mask_background:
        pred = composite_on_background(pred, masks, background)
        target = composite_on_background(target, masks, background)
    lpips_values = None
    if metrics.lpips is not None:
        lpips_values = tuple(float(v) for v in metrics.lpips(pred, target).cpu())
    features = target_features = None
    if metrics.i3d is not None and pred.shape[0] >= I3D_MIN_FRAMES:
        target_features = metrics.target_features.get(target_id) if target_id is not None else None
        if target_features is None:
            both = metrics.i3d(torch.stack([pred, target]))
            target_features = tuple(float(v) for v in both[1])
            if target_id is not None:
                metrics.target_features[target_id] = target_features
        else:
            both = metrics.i3d(pred[None])
        features = tuple(float(v) for v in both[0])
    return ClipScore(key=key, psnr=tuple(float(v) for v in psnr(pred, target)),
                     ssim=tuple(float(v) for v in ssim(pred, target)), lpips=lpips_values,
                     features=features, target_features=target_features, **box_values)


@dataclass
class RowResult:
    """One table row over a plan's clips: ``label`` (printed), ``row_id`` (cache folder), the
    ``checkpoint`` ref, row ``settings``, per-clip ``scores`` in plan order, and how many clips were
    ``scored`` now versus taken from the ``cached`` results of an earlier run."""

    label: str
    row_id: str
    checkpoint: CheckpointRef | None
    settings: dict[str, Any]
    scores: list[ClipScore]
    scored: int = 0
    cached: int = 0


def _cache_path(out_dir: Path, plan: EvalPlan, row_id: str, key: str) -> Path:
    return Path(out_dir) / "cache" / plan.name / row_id / f"{key}.json"


def _read_cached(path: Path, fingerprint: str) -> ClipScore | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("format") != _CACHE_FORMAT or record.get("fingerprint") != fingerprint or \
            not record.get("score", {}).get("box_psnr"):
        return None
    return ClipScore.from_json(record["score"])


def _score_row(plan: EvalPlan, out_dir: Path, *, label: str, row_id: str, checkpoint: CheckpointRef | None,
               row_settings: dict[str, Any], row_identity: Mapping[str, Any], metrics: MetricSuite,
               predict: Callable[[ClipRef, Mapping[str, Any]], Tensor],
               on_clip: Callable[[ClipRef, bool], None] | None = None) -> RowResult:
    scoring = {"mask_background": plan.mask_background, "background": plan.background, "metrics": metrics.fingerprint(),
               "format": 1}
    fingerprints = {ref.key: _settings_digest({"row": row_identity, "scoring": scoring, "clip": ref.digest,
                                               "frames": list(ref.scored_frames), "scores": _SCORE_VERSION})
                    for ref in plan.clips}
    results: dict[str, ClipScore] = {}
    for ref in plan.clips:
        cached = _read_cached(_cache_path(out_dir, plan, row_id, ref.key), fingerprints[ref.key])
        if cached is not None:
            results[ref.key] = cached
            if on_clip:
                on_clip(ref, True)
    todo = [ref for ref in plan.clips if ref.key not in results]
    cached_count = len(results)
    for ref, clip in _read_clips(plan, todo):
        positions = torch.as_tensor(ref.scored_frames)
        pred = predict(ref, clip)[positions]
        target_id = _settings_digest({"scoring": scoring, "clip": ref.digest, "frames": list(ref.scored_frames)})
        target_path = _cache_path(out_dir, plan, "ground_truth", ref.key)
        known = target_id in metrics.target_features or _load_target_features(target_path, target_id, metrics)
        score = score_clip(pred, clip["frames"][positions], clip["masks"][positions],
                           mask_background=plan.mask_background, background=plan.background, metrics=metrics,
                           key=ref.key, target_id=target_id)
        if not known and score.target_features is not None:
            record = {"format": _CACHE_FORMAT, "version": 1, "fingerprint": target_id, "features": list(score.target_features)}
            atomic_write_bytes(target_path, (json.dumps(record) + "\n").encode())
        record = {"format": _CACHE_FORMAT, "version": _SCORE_VERSION, "fingerprint": fingerprints[ref.key], "row": label,
                  "clip": {"key": ref.key, "url": ref.url, "digest": ref.digest, "scored_frames": list(ref.scored_frames)},
                  "score": score.as_json()}
        atomic_write_bytes(_cache_path(out_dir, plan, row_id, ref.key), (json.dumps(record) + "\n").encode())
        results[ref.key] = score
        if on_clip:
            on_clip(ref, False)
    absent = [ref.key for ref in plan.clips if ref.key not in results]
    if absent:
        raise ValueError(f"{plan.name}: clips {absent[:5]} listed in the plan were not found in their shards")
    return RowResult(label=label, row_id=row_id, checkpoint=checkpoint, settings=row_settings,
                     scores=[results[ref.key] for ref in plan.clips], scored=len(todo), cached=cached_count)


def _load_target_features(path: Path, target_id: str, metrics: MetricSuite) -> bool:
    """Put the ground truth's cached I3D features into ``metrics.target_features`` when ``path`` holds
    them for ``target_id``; returns whether it did."""
    if metrics.i3d is None or not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if record.get("format") != _CACHE_FORMAT or record.get("fingerprint") != target_id:
        return False
    metrics.target_features[target_id] = tuple(float(v) for v in record["features"])
    return True


def _nerf_checkpoint_ref(plan: EvalPlan) -> CheckpointRef | None:
    """The NeRF checkpoint the clips were baked with, from the first clip's meta (None when not recorded)."""
    for _, clip in _read_clips(plan, plan.clips[:1]):
        extra = clip["meta"].get("extra") or {}
        if extra.get("nerf_checkpoint"):
            return CheckpointRef(str(extra["nerf_checkpoint"]), None, extra.get("nerf_checkpoint_sha256"))
    return None


def score_nerf_row(plan: EvalPlan, out_dir: str | Path, metrics: MetricSuite, *,
                   on_clip: Callable[[ClipRef, bool], None] | None = None) -> RowResult:
    """Table 4's "NeRF renderings" row: each clip's baked NeRF frames scored like the model's output."""
    return _score_row(plan, Path(out_dir), label=NERF_ROW, row_id="nerf", checkpoint=_nerf_checkpoint_ref(plan),
                      row_settings={"output": "nerf"}, row_identity={"output": "nerf"}, metrics=metrics,
                      predict=lambda ref, clip: clip["nerf"][:ref.num_frames], on_clip=on_clip)


class CheckpointLoader:
    """Loads a checkpoint's model on first use (:meth:`get`) and keeps it, so several datasets share
    one load and fully cached rows load nothing."""

    def __init__(self, checkpoint: EvalCheckpoint, device: torch.device) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self._model: GASModel | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> GASModel:
        if self._model is None:
            logger.info("loading diffusion checkpoint %s (%s)", self.checkpoint.name, self.checkpoint.path)
            model = load_diffusion_checkpoint(self.checkpoint.path)  # float32 on the CPU
            self._model = model if self.device.type == "cpu" else model.to(self.device)
        return self._model


def score_checkpoint_row(plan: EvalPlan, checkpoint: EvalCheckpoint, out_dir: str | Path, config: EvalConfig,
                         metrics: MetricSuite, *, loader: CheckpointLoader | None = None,
                         checkpoint_ref: CheckpointRef | None = None,
                         on_clip: Callable[[ClipRef, bool], None] | None = None) -> RowResult:
    """One checkpoint's row: generate every clip of ``plan`` not cached yet, score it.

    ``loader`` / ``checkpoint_ref``: pass them to share a loaded model and the checkpoint's hash across
    datasets; by default the checkpoint is hashed (:func:`gas_core.metrics.describe_checkpoint`) and
    loaded only when some clip still needs generating.
    """
    device = resolve_eval_device(config.device)
    ref = checkpoint_ref or describe_checkpoint(Path(checkpoint.path))
    sampling = asdict(config.sampling)
    loader = loader or CheckpointLoader(checkpoint, device)

    def predict(clip_ref: ClipRef, clip: Mapping[str, Any]) -> Tensor:
        return generate_clip(loader.get(), clip, clip_ref.num_frames, config.sampling, device, key=clip_ref.key)

    return _score_row(plan, Path(out_dir), label=checkpoint.name, row_id=checkpoint.row_id, checkpoint=ref,
                      row_settings={"output": "diffusion", "sampling": sampling},
                      row_identity={"output": "diffusion", "checkpoint_sha256": ref.sha256, "sampling": sampling},
                      metrics=metrics, predict=predict, on_clip=on_clip)


# ============================================================================================ tables
def _row_values(row: RowResult, missing: dict[str, str]) -> dict[str, float]:
    """Column key -> the row's value: per-frame metrics averaged over all scored frames, FVD over clips."""
    values: dict[str, float] = {}
    frames = sum(score.frames for score in row.scores)
    for key in row.scores[0].frame_values():
        per_clip = [score.frame_values()[key] for score in row.scores]
        if all(clip_values is not None for clip_values in per_clip):
            values[key] = float(sum(sum(clip_values) for clip_values in per_clip) / frames)  # type: ignore[arg-type]
        elif key.startswith(LPIPS.name) and LPIPS.name not in missing:
            missing[LPIPS.name] = f"row {row.label!r}: some clips were scored without LPIPS"
    with_features = [score for score in row.scores if score.features is not None and score.target_features is not None]
    if FVD.name not in missing:
        if len(with_features) != len(row.scores):
            missing[FVD.name] = (f"FVD needs at least {I3D_MIN_FRAMES} scored frames per clip; "
                                 f"min was {min(score.frames for score in row.scores)}")
        elif len(with_features) < 2:
            missing[FVD.name] = f"FVD needs at least 2 clips, {len(with_features)} scored"
        else:
            generated = np.asarray([score.features for score in with_features], dtype=np.float64)
            real = np.asarray([score.target_features for score in with_features], dtype=np.float64)
            values[f"{FVD.name}@{PAPER_REGION}"] = frechet_distance(real, generated)
    return values


def _legend(plan: EvalPlan) -> dict[str, str]:
    """What each column region of ``plan``'s table scores (printed under the table and recorded)."""
    if plan.mask_background:
        shade = {1.0: "white", 0.0: "black"}.get(float(plan.background), f"grey {plan.background:g}")
        paper = (f"whole frames, prediction and ground truth both painted {shade} outside the ground-truth mask (the "
                 "paper's numbers); whatever the model put around the person never counts, so a flat or noisy output "
                 "can score as well as a real rendering")
    else:
        paper = "whole frames as they are, no background removal (the paper's numbers)"
    box = (f"each frame cropped to the bounding box of its ground-truth mask (at least {BOX_MIN_SIDE} px a side), "
           "prediction and ground truth as they are, nothing painted (SHERF's region): the model's own pixels "
           "around and between the limbs count")
    return {PAPER_REGION: paper, BOX_REGION: box}


def _json_value(value: float) -> float | str:
    """``value``, or ``"inf"`` / ``"-inf"`` (PSNR of identical images), as the table's record writes them."""
    return value if np.isfinite(value) else ("inf" if value > 0 else "-inf")


def build_table(plan: EvalPlan, rows: Sequence[RowResult], config: EvalConfig, *,
                metrics: MetricSuite | None = None) -> ResultsTable:
    """The paper-style table of ``rows`` on ``plan``'s clips.

    Means are over all scored frames of all clips (clips of one protocol have equal lengths, so this is
    also the mean of the per-clip means); FVD is the Fréchet distance between the I3D features of the
    row's clips and of the ground-truth clips. Per-clip means go into each row's settings
    (``per_clip``), so the record traces every number. ``metrics``: the suite the rows were scored
    with (default: :func:`describe_metrics` of ``config.metrics``, which loads no network).
    """
    if not rows:
        raise ValueError(f"{plan.name}: rows must hold at least one row")
    missing, weights = (dict(metrics.missing), metrics.weights) if metrics is not None else describe_metrics(config.metrics)
    result_rows = []
    for row in rows:
        values = _row_values(row, missing)
        per_clip = {score.key: {**{k: _json_value(v) for k, v in score.means().items()}, "frames": score.frames}
                    for score in row.scores}
        result_rows.append(ResultRow(row.label, values, row.checkpoint,
                                     {**row.settings, "frames_scored": sum(s.frames for s in row.scores),
                                      "per_clip": per_clip}))
    left_out = {column.key for column in EVAL_COLUMNS if column.name in missing}
    result_rows = [replace(row, values={k: v for k, v in row.values.items() if k not in left_out}) for row in result_rows]
    split = describe_split(f"{plan.dataset}/test", Path(plan.split_path), plan.split_count)
    title = f"{_TASK_TITLES[plan.task]}, {plan.dataset} ({len(plan.clips)} clips)"
    settings = {
        "protocol": plan.protocol_settings(),
        "clips": len(plan.clips),
        "clip_keys": [ref.key for ref in plan.clips],
        "clip_sources": list(plan.clip_sources),
        "missing_subjects": list(plan.missing_subjects),
        "notes": list(plan.notes),
        "missing_metrics": missing,
        "metric_weights": {key: asdict(ref) for key, ref in weights.items()},
        "lpips_network": config.metrics.lpips_network if LPIPS.key in weights else None,
        "max_clips": config.protocol.max_clips,
        "averaging": "mean over all scored frames; FVD over clips (I3D logits of the scored frames)",
        "person_box_min_side": BOX_MIN_SIDE,
    }
    return ResultsTable(title=title, dataset=plan.dataset, task=plan.task, columns=EVAL_COLUMNS,
                        rows=tuple(result_rows), split=split, settings=settings, legend=_legend(plan))


def write_tables(table: ResultsTable, out_dir: str | Path) -> TableFiles:
    """``<out_dir>/<dataset>_<task>.md`` / ``.csv`` / ``.json`` (atomic)."""
    return write_results_table(table, Path(out_dir), f"{table.dataset}_{table.task}")


# ============================================================================================ whole run
@dataclass
class EvalReport:
    """What :func:`evaluate` did: per dataset/task table and files, and clips scored vs cached per row."""

    tables: dict[str, ResultsTable] = field(default_factory=dict)
    files: dict[str, TableFiles] = field(default_factory=dict)
    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = []
        for name, table in self.tables.items():
            lines.append(table.to_markdown())
            counts = ", ".join(f"{row}: {scored} scored, {cached} cached" for row, (scored, cached) in self.counts[name].items())
            lines.append(f"({counts}; files {self.files[name].markdown}, .csv, .json)\n")
        return "\n".join(lines)


def evaluate(clips: str | Path | Sequence[str | Path], splits: Sequence[str | Path], checkpoints: Sequence[EvalCheckpoint],
             out_dir: str | Path, config: EvalConfig) -> EvalReport:
    """Score every checkpoint (and the NeRF row) on every split's clips and write one table per split.

    Each checkpoint is hashed once and loaded at most once (only when some clip is not cached).

    Raises:
        ValueError: no checkpoint and no NeRF row, duplicate names, or a split without clips.
    """
    names = [c.name for c in checkpoints]
    if len(set(names)) != len(names):
        raise ValueError(f"checkpoint names must be distinct, got {names}")
    if not checkpoints and not config.protocol.include_nerf_row:
        raise ValueError("checkpoints is empty and protocol.include_nerf_row is false: nothing to score")
    if not splits:
        raise ValueError("splits must name at least one split file")
    device = resolve_eval_device(config.device)
    metrics = load_metrics(config.metrics, device)
    plans = [plan_evaluation(clips, split, config) for split in splits]
    refs = {c.name: describe_checkpoint(Path(c.path)) for c in checkpoints}
    report = EvalReport()
    rows: dict[str, list[RowResult]] = {plan.name: [] for plan in plans}

    def progress(row: str) -> Callable[[ClipRef, bool], None]:
        return lambda ref, cached: logger.info("%s: %s %s", row, "cached" if cached else "scored", ref.key)

    if config.protocol.include_nerf_row:
        for plan in plans:
            rows[plan.name].append(score_nerf_row(plan, out_dir, metrics, on_clip=progress(NERF_ROW)))
    for checkpoint in checkpoints:
        loader = CheckpointLoader(checkpoint, device)  # one model in memory at a time
        for plan in plans:
            rows[plan.name].append(score_checkpoint_row(plan, checkpoint, out_dir, config, metrics, loader=loader,
                                                        checkpoint_ref=refs[checkpoint.name],
                                                        on_clip=progress(checkpoint.name)))
    for plan in plans:
        table = build_table(plan, rows[plan.name], config, metrics=metrics)
        report.tables[plan.name] = table
        report.files[plan.name] = write_tables(table, out_dir)
        report.counts[plan.name] = {row.label: (row.scored, row.cached) for row in rows[plan.name]}
    return report


# ============================================================================================ command line
def build_parser(prog: str = "gas eval") -> argparse.ArgumentParser:
    """Arguments of ``gas eval`` (shared with :mod:`flows.evaluate`)."""
    parser = argparse.ArgumentParser(prog=prog, description="Score diffusion checkpoints on the test splits "
                                     "(PSNR, SSIM, LPIPS, FVD) and write paper-style tables.")
    parser.add_argument("--clips", action="append", required=True,
                        help="clip shards of the test subjects: folder, manifest, glob or .tar (repeatable)")
    parser.add_argument("--split", action="append", required=True, help="split file, e.g. splits/thuman_test.json (repeatable)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                        help="diffusion checkpoint, optionally named (a table row; repeatable)")
    parser.add_argument("--out", required=True, help="output folder of the tables and the per-clip cache")
    parser.add_argument("--preset", choices=["tiny", "paper"], default="paper")
    parser.add_argument("--config", help="YAML file with EvalConfig fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set metrics.lpips_weights=models/vgg16.pth (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser


def parse_eval_arguments(args: argparse.Namespace) -> tuple[EvalConfig, list[EvalCheckpoint]]:
    """The config and checkpoints of parsed ``gas eval`` arguments (ValueError on bad values)."""
    config = load_eval_config(Path(args.config) if args.config else None, preset=args.preset, overrides=args.set)
    return config, [parse_checkpoint_argument(item) for item in args.checkpoint]


def main_from_args(argv: Sequence[str] | None = None) -> int:
    """``gas eval ...`` without Prefect: prints the tables; exit 0, or 2 on bad arguments or inputs."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config, checkpoints = parse_eval_arguments(args)
        report = evaluate(args.clips, args.split, checkpoints, args.out, config)
    except (ValueError, FileNotFoundError) as error:
        print(f"gas eval: error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main_from_args())
