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

Package layout (one job per module): :mod:`~pipelines.evaluate.config` (:class:`EvalConfig`, rows and
columns), :mod:`~pipelines.evaluate.checkpoints` (named checkpoints, loading),
:mod:`~pipelines.evaluate.protocols` (which clips and frames are scored), :mod:`~pipelines.evaluate.metrics`
(LPIPS / I3D networks), :mod:`~pipelines.evaluate.generation` (sampling a clip),
:mod:`~pipelines.evaluate.scoring` (scoring a clip), :mod:`~pipelines.evaluate.caching` (the per-clip
cache), :mod:`~pipelines.evaluate.rows` (a table row), :mod:`~pipelines.evaluate.tables` (tables and
their files), :mod:`~pipelines.evaluate.run` (:func:`evaluate`) and :mod:`~pipelines.evaluate.cli`
(``gas eval`` without Prefect, ``python -m pipelines.evaluate``).
"""

from __future__ import annotations

from pipelines.evaluate.checkpoints import (
    CheckpointLoader,
    EvalCheckpoint,
    load_diffusion_checkpoint,
    parse_checkpoint_argument,
)
from pipelines.evaluate.cli import build_parser, main_from_args, parse_eval_arguments
from pipelines.evaluate.config import (
    BOX_MIN_SIDE,
    BOX_REGION,
    EVAL_COLUMNS,
    NERF_ROW,
    PAPER_REGION,
    EvalConfig,
    MetricsConfig,
    ProtocolConfig,
    SamplingConfig,
    load_eval_config,
    resolve_eval_device,
)
from pipelines.evaluate.generation import clip_conditions, generate_clip
from pipelines.evaluate.metrics import MetricSuite, describe_metrics, load_metrics
from pipelines.evaluate.protocols import ClipRef, EvalPlan, plan_evaluation
from pipelines.evaluate.rows import RowResult, score_checkpoint_row, score_nerf_row
from pipelines.evaluate.run import EvalReport, evaluate
from pipelines.evaluate.scoring import ClipScore, person_boxes, score_clip
from pipelines.evaluate.tables import build_table, write_tables

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
