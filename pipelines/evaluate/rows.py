"""One table row over a plan's clips: the NeRF row and a checkpoint's row, each clip scored or taken from the cache."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gas_core.diffusion.official import is_official_checkpoint
from gas_core.fileio import atomic_write_bytes
from gas_core.metrics import CheckpointRef, describe_checkpoint
from pipelines.evaluate.caching import (
    _CACHE_FORMAT,
    _SCORE_VERSION,
    _cache_path,
    _load_target_features,
    _read_cached,
    _settings_digest,
)
from pipelines.evaluate.checkpoints import CheckpointLoader, EvalCheckpoint
from pipelines.evaluate.config import NERF_ROW, EvalConfig, resolve_eval_device
from pipelines.evaluate.generation import generate_clip
from pipelines.evaluate.metrics import MetricSuite
from pipelines.evaluate.protocols import ClipRef, EvalPlan, _read_clips
from pipelines.evaluate.scoring import ClipScore, score_clip

#: Sampling options added to reproduce the release (``sampling.window_convention``, ``sampling.tiled_noise``)
#: with their default values.
_RELEASE_SAMPLING_DEFAULTS: dict[str, Any] = {"window_convention": "project", "tiled_noise": False}


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
    # the release-comparison options at their defaults stay out of the identity: earlier caches remain valid
    identity_sampling = {name: value for name, value in sampling.items()
                         if not (name in _RELEASE_SAMPLING_DEFAULTS and value == _RELEASE_SAMPLING_DEFAULTS[name])}
    identity: dict[str, Any] = {"output": "diffusion", "checkpoint_sha256": ref.sha256, "sampling": identity_sampling}
    if is_official_checkpoint(checkpoint.path):  # the base folder supplies the VAE and CLIP encoder
        identity["base_svd_dir"] = config.model.base_svd_dir
    loader = loader or CheckpointLoader(checkpoint, device, base_svd_dir=config.model.base_svd_dir)

    def predict(clip_ref: ClipRef, clip: Mapping[str, Any]) -> Tensor:
        return generate_clip(loader.get(), clip, clip_ref.num_frames, config.sampling, device, key=clip_ref.key)

    return _score_row(plan, Path(out_dir), label=checkpoint.name, row_id=checkpoint.row_id, checkpoint=ref,
                      row_settings={"output": "diffusion", "sampling": sampling},
                      row_identity=identity,
                      metrics=metrics, predict=predict, on_clip=on_clip)
