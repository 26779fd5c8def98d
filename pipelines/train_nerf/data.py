"""Training data: subjects streamed from shards and resized, (observation, target) view pairs, the validation batch."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.nerf import CameraBatch, PosedBody, ReferenceView
from pipelines.distributed import DistributedContext
from pipelines.train_nerf.config import NeRFAugmentConfig, NeRFTrainConfig
from shards.reader import make_subject_pipeline


@dataclass(frozen=True)
class SubjectViews:
    """One subject resized for training: views (N, 3, S, S) masked to black, masks (N, 1, S, S), cameras, body params."""

    key: str
    views: Tensor
    masks: Tensor
    cameras: CameraBatch
    smpl: dict[str, Tensor]
    body_model: str


def subject_views(sample: dict[str, Any], image_size: int) -> SubjectViews:
    """A :func:`shards.reader.subject_to_tensors` dict -> :class:`SubjectViews` at ``image_size`` pixels."""
    views, masks = sample["views"], sample["masks"]
    height, width = views.shape[-2:]
    if height != width:
        raise ValueError(f"subject {sample.get('__key__', '?')}: views must be square, got {width}x{height}")
    factor = image_size / width
    if image_size != width:
        views = F.interpolate(views, size=(image_size, image_size), mode="area")
        masks = F.interpolate(masks, size=(image_size, image_size), mode="area")
    cameras = CameraBatch(K=sample["K"], R=sample["R"], t=sample["t"], width=width, height=height).scaled(factor)
    return SubjectViews(key=str(sample.get("__key__", sample.get("subject_id", "?"))), views=views * masks, masks=masks,
                        cameras=cameras, smpl=sample["smpl"], body_model=str(sample["body_model"]))


def zoom_subject(subject: SubjectViews, factor: float, offset: tuple[int, int] | None = None) -> SubjectViews:
    """``subject`` with every view shrunk by ``factor`` (0, 1] and placed at ``offset``, black around it.

    The shrunk views are ``inner = round(S * factor)`` pixels wide (at least 2; ``S`` the view size),
    area-resampled, with their top-left corner at pixel ``offset`` = (x, y) (whole pixels, each in
    [0, S - inner]; None: centred, ``(S - inner) // 2``). The cameras follow exactly: a pixel ``u``
    moves to ``offset + u * inner / S``, so ``K``'s first two rows are scaled by ``inner / S`` and the
    principal point shifted by ``offset``; ``R``, ``t`` and the body are unchanged.
    """
    if not 0 < factor <= 1:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    size = subject.views.shape[-1]
    inner = max(2, int(round(size * factor)))
    if offset is None:
        offset = ((size - inner) // 2, (size - inner) // 2)
    x, y = (int(value) for value in offset)
    if not (0 <= x <= size - inner and 0 <= y <= size - inner):
        raise ValueError(f"offset must lie in [0, {size - inner}] on both axes for factor {factor}, got {offset}")
    exact = inner / size
    pad = (x, size - inner - x, y, size - inner - y)
    views = F.pad(F.interpolate(subject.views, size=(inner, inner), mode="area"), pad)
    masks = F.pad(F.interpolate(subject.masks, size=(inner, inner), mode="area"), pad)
    K = subject.cameras.K.clone()
    K[:, :2, :] *= exact
    K[:, 0, 2] += x
    K[:, 1, 2] += y
    cameras = CameraBatch(K=K, R=subject.cameras.R, t=subject.cameras.t, width=size, height=size)
    return SubjectViews(key=subject.key, views=views, masks=masks, cameras=cameras, smpl=subject.smpl,
                        body_model=subject.body_model)


def augment_subject(subject: SubjectViews, config: NeRFAugmentConfig, rng: random.Random) -> SubjectViews:
    """``subject`` zoomed out at random as ``config`` says (see :class:`NeRFAugmentConfig`); unchanged otherwise."""
    if config.zoom_probability <= 0 or rng.random() >= config.zoom_probability:
        return subject
    factor = rng.uniform(config.min_zoom, 1.0)
    size = subject.views.shape[-1]
    free = size - max(2, int(round(size * factor)))
    return zoom_subject(subject, factor, (rng.randint(0, free), rng.randint(0, free)))


@dataclass(frozen=True)
class PairBatch:
    """B (observation, target) pairs: the reference views and the target views to reproduce."""

    reference: ReferenceView
    target_camera: CameraBatch
    target_body: PosedBody
    target_rgb: Tensor  # (B, 3, S, S) masked to black
    target_mask: Tensor  # (B, 1, S, S)

    def to(self, device: torch.device) -> "PairBatch":
        return PairBatch(reference=self.reference.to(device), target_camera=self.target_camera.to(device),
                         target_body=self.target_body.to(device), target_rgb=self.target_rgb.to(device),
                         target_mask=self.target_mask.to(device))


def pair_batch(subjects: Sequence[SubjectViews], pairs: Sequence[tuple[int, int]], body_model: BodyModel) -> PairBatch:
    """A batch of (observation view, target view) index ``pairs``, one per entry of ``subjects``, posed with ``body_model``."""
    params = SMPLParams(**{name: torch.stack([subject.smpl[name].reshape(shape) for subject in subjects])
                           for name, shape in (("betas", (-1,)), ("body_pose", (23, 3)), ("global_orient", (3,)),
                                               ("transl", (3,)), ("scale", ()))})
    body = PosedBody.from_body_model(body_model, params)

    def cameras(indices: Sequence[int]) -> CameraBatch:
        chosen = [subject.cameras.index(index) for subject, index in zip(subjects, indices)]
        return CameraBatch(K=torch.cat([c.K for c in chosen]), R=torch.cat([c.R for c in chosen]),
                           t=torch.cat([c.t for c in chosen]), width=chosen[0].width, height=chosen[0].height)

    observed = [pair[0] for pair in pairs]
    target = [pair[1] for pair in pairs]
    reference = ReferenceView(image=torch.stack([s.views[i] for s, i in zip(subjects, observed)]),
                              mask=torch.stack([s.masks[i] for s, i in zip(subjects, observed)]),
                              camera=cameras(observed), body=body)
    return PairBatch(reference=reference, target_camera=cameras(target), target_body=body,
                     target_rgb=torch.stack([s.views[j] for s, j in zip(subjects, target)]),
                     target_mask=torch.stack([s.masks[j] for s, j in zip(subjects, target)]))


def iterate_pair_batches(subjects: Iterator[SubjectViews], body_model: BodyModel, *, batch_size: int,
                         pairs_per_subject: int, rng: random.Random,
                         augment: NeRFAugmentConfig | None = None) -> Iterator[PairBatch]:
    """Group ``batch_size`` subjects and yield ``pairs_per_subject`` batches from them, one random pair of
    distinct views per subject in each; an incomplete last group is dropped (every rank yields as many).
    ``augment``: each subject is first passed through :func:`augment_subject` (None: as streamed)."""
    group: list[SubjectViews] = []
    for subject in subjects:
        if subject.body_model != body_model.label:
            raise ValueError(f"subject {subject.key} was fitted with {subject.body_model!r} but the loaded body model "
                             f"is {body_model.label!r}; set data.body_model_path")
        if subject.views.shape[0] < 2:
            raise ValueError(f"subject {subject.key} has {subject.views.shape[0]} view(s); pairs need at least 2")
        group.append(subject if augment is None else augment_subject(subject, augment, rng))
        if len(group) < batch_size:
            continue
        for _ in range(pairs_per_subject):
            pairs = [tuple(rng.sample(range(s.views.shape[0]), 2)) for s in group]
            yield pair_batch(group, pairs, body_model)
        group = []


def _subject_stream(shards: Any, config: NeRFTrainConfig, process: DistributedContext, epoch: int, *,
                    resampled: bool) -> Iterator[SubjectViews]:
    pipeline = make_subject_pipeline(shards, shuffle=config.data.shuffle, resampled=resampled,
                                     epoch_length=config.data.subjects_per_epoch, seed=config.seed)
    pipeline.set_epoch(epoch)
    if config.data.num_workers > 0:
        loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=config.data.num_workers,
                                             multiprocessing_context="spawn")
    else:
        loader = pipeline
    for sample in loader:
        yield subject_views(sample, config.data.image_size)


def _validation_batch(source: Any, config: NeRFTrainConfig, body_model: BodyModel) -> PairBatch | None:
    """A fixed batch of ``log.val_pairs`` pairs (first subjects of ``source``, views 0 -> middle view)."""
    if config.log.val_pairs < 1:
        return None
    pipeline = make_subject_pipeline(source, split_by_node=False, split_by_worker=False)
    subjects = []
    for sample in pipeline:
        subjects.append(subject_views(sample, config.data.image_size))
        if len(subjects) == config.log.val_pairs:
            break
    if not subjects:
        return None
    pairs = [(0, s.views.shape[0] // 2) for s in subjects]
    return pair_batch(subjects, pairs, body_model)
