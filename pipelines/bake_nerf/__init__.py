"""Bake generalizable-NeRF renderings and SMPL normal maps into clip shards (the diffusion model's input).

For every scan subject of the subject shards, and each of its ``clip.num_references`` orthogonal
reference views (front, side, back, side for 4), one **view clip**: the orbit of
``clip.num_frames`` views starting at the reference (frame 0 is the reference view itself), with the
ground-truth frames and masks, the NeRF rendering of every frame from the reference image, the
fitted body's normal map of every frame (official GAS encoding), per-frame cameras and SMPL.
For every segment of a video subject (``video`` shards), **pose clips**: a reference frame and the
frames after it under the reference frame's camera (:func:`pose_clip_specs`; for multi-view video also
seen from another camera).

Steps (plain functions, wired into Prefect by :mod:`flows.bake_nerf`):

1. :func:`plan_bake` lists the input shards, keeps this rank's share (every ``world_size``-th shard),
   checks that the output folder was baked with the same NeRF checkpoint (``--force-mixed`` to mix),
   and notes which clips the output manifest already holds;
2. :class:`ClipBaker` holds the NeRF, the body model and the normal-map renderer and bakes any
   :class:`ClipSpec` of a :class:`ClipSource`. A source is what clips draw frames from (a scan
   subject's views, or a video segment's frames); :func:`view_clip_specs` and :func:`pose_clip_specs`
   turn a source into clip specs;
3. :func:`bake_input_shard` bakes the missing clips of one input shard into output shards named after
   it (``subjects-000003.tar`` -> ``clips-subjects-000003-000000.tar``, so ranks never collide), closing
   an output shard every ``shards.subjects_per_shard`` subjects; :func:`bake` runs the whole loop.

Re-runs skip clips whose key is in the output manifest, so a crash loses at most the open output
shard (the writer removes it; a killed process leaves a ``.tmp`` that the next run removes). Bad
input (a truncated shard, a sample that fails to decode, a subject that cannot make a clip) is
reported with the reason and the rest completes.

Package layout (one job per module): :mod:`~pipelines.bake_nerf.config` (config, device, rank),
:mod:`~pipelines.bake_nerf.checkpoint` (NeRF checkpoint identity), :mod:`~pipelines.bake_nerf.specs`
(clip sources and specs), :mod:`~pipelines.bake_nerf.baker` (:class:`ClipBaker`),
:mod:`~pipelines.bake_nerf.plan` (:func:`plan_bake`), :mod:`~pipelines.bake_nerf.reports` (outcome reports)
and :mod:`~pipelines.bake_nerf.run` (:func:`bake_input_shard`, :func:`bake`).
"""

from __future__ import annotations

from pipelines.bake_nerf.baker import BakeTimings, ClipBaker
from pipelines.bake_nerf.checkpoint import CheckpointInfo, describe_checkpoint
from pipelines.bake_nerf.config import (
    BakeConfig,
    BakeShardConfig,
    ClipConfig,
    NeRFRenderConfig,
    config_with_device,
    load_bake_config,
    resolve_device,
    resolve_rank,
)
from pipelines.bake_nerf.plan import BakePlan, InputShard, output_prefix, plan_bake
from pipelines.bake_nerf.reports import BakeReport, ShardBakeReport, SubjectBakeReport
from pipelines.bake_nerf.run import bake, bake_input_shard, skip_input_shard
from pipelines.bake_nerf.specs import (
    BakeInputError,
    ClipSource,
    ClipSpec,
    clip_label,
    pose_clip_label,
    pose_clip_labels,
    pose_clip_specs,
    pose_reference_frames,
    segment_clip_id,
    subject_clip_source,
    video_clip_source,
    view_clip_labels,
    view_clip_specs,
    view_orbit_indices,
    view_reference_indices,
)

__all__ = [
    "BakeConfig",
    "BakeInputError",
    "BakePlan",
    "BakeReport",
    "BakeShardConfig",
    "CheckpointInfo",
    "ClipBaker",
    "ClipConfig",
    "ClipSource",
    "ClipSpec",
    "InputShard",
    "NeRFRenderConfig",
    "ShardBakeReport",
    "SubjectBakeReport",
    "bake",
    "bake_input_shard",
    "config_with_device",
    "skip_input_shard",
    "describe_checkpoint",
    "load_bake_config",
    "output_prefix",
    "plan_bake",
    "resolve_device",
    "resolve_rank",
    "pose_clip_labels",
    "pose_clip_specs",
    "pose_reference_frames",
    "subject_clip_source",
    "video_clip_source",
    "view_clip_specs",
    "view_orbit_indices",
    "view_reference_indices",
]
