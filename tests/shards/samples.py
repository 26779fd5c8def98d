"""Tiny subject and clip samples for the shard tests (3 views or 4 frames of 16x16 unless asked otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shards.schema import CLIP_SCHEMA, ClipSample, SubjectSample
from shards.writer import ShardWriter


def make_subject(
    subject_id: str = "s0",
    dataset: str = "thuman21",
    *,
    n_views: int = 3,
    size: int = 16,
    seed: int = 0,
    with_optional: bool = False,
) -> SubjectSample:
    """A valid subject with random images, identity-ish cameras and a random SMPL fit."""
    rng = np.random.default_rng(seed)
    views = rng.integers(0, 256, size=(n_views, size, size, 3), dtype=np.uint8)
    masks = (rng.random((n_views, size, size)) > 0.5).astype(np.uint8) * 255
    cameras = []
    for index in range(n_views):
        angle = 2 * np.pi * index / n_views
        rotation = np.array(
            [[np.cos(angle), 0.0, -np.sin(angle)], [0.0, 1.0, 0.0], [np.sin(angle), 0.0, np.cos(angle)]]
        )
        intrinsics = np.array([[20.0, 0.0, size / 2], [0.0, 20.0, size / 2], [0.0, 0.0, 1.0]])
        cameras.append(
            {"K": intrinsics, "R": rotation, "t": np.array([0.0, 0.0, 2.5]), "width": size, "height": size,
             "convention": "opencv"}
        )
    smpl = {
        "betas": rng.normal(size=10),
        "body_pose": rng.normal(scale=0.2, size=(23, 3)),
        "global_orient": rng.normal(scale=0.1, size=3),
        "transl": rng.normal(scale=0.1, size=3),
        "scale": 1.0,
        "body_model": "open body model (Anny-derived), not SMPL",
    }
    sample = SubjectSample(
        views=views,
        masks=masks,
        cameras=cameras,
        smpl=smpl,
        normalization={"center": rng.normal(size=3), "scale": 0.8},
        meta={"dataset": dataset, "subject_id": subject_id, "source": {"scan": f"/raw/{subject_id}.obj"}, "extra": {}},
    )
    if with_optional:
        sample.normals = rng.integers(0, 256, size=(n_views, size, size, 3), dtype=np.uint8)
        sample.keypoints = rng.random((n_views, 17, 3)).astype(np.float32)
    return sample



def make_clip(
    subject_id: str = "s0",
    dataset: str = "thuman21",
    *,
    mode: str = "view",
    reference_index: int = 0,
    n_frames: int = 4,
    size: int = 16,
    seed: int = 0,
    with_latents: bool = False,
) -> ClipSample:
    """A valid clip with random frames, NeRF renderings, normal maps, cameras and SMPL per frame."""
    rng = np.random.default_rng(seed)
    subject = make_subject(subject_id, dataset, n_views=n_frames, size=size, seed=seed)

    def images(channels: int) -> np.ndarray:
        shape = (n_frames, size, size, channels) if channels else (n_frames, size, size)
        return rng.integers(0, 256, size=shape, dtype=np.uint8)

    smpl = [dict(subject.smpl) for _ in range(n_frames)]
    if mode == "pose":
        for item in smpl:
            item["body_pose"] = rng.normal(scale=0.2, size=(23, 3))
    cameras = subject.cameras if mode == "view" else [subject.cameras[0]] * n_frames
    clip = ClipSample(
        frames=images(3),
        nerf=images(3),
        normals=images(3),
        masks=(rng.random((n_frames, size, size)) > 0.5).astype(np.uint8) * 255,
        reference=subject.views[0],
        reference_mask=subject.masks[0],
        cameras=list(cameras),
        reference_camera=subject.cameras[0],
        smpl=smpl,
        reference_smpl=dict(subject.smpl),
        meta={"dataset": dataset, "subject_id": subject_id, "mode": mode, "reference_index": reference_index,
              "frame_indices": list(range(reference_index, reference_index + n_frames)), "extra": {}},
    )
    if with_latents:
        latent = size // 8
        clip.target_latents = rng.normal(size=(n_frames, 4, latent, latent)).astype(np.float16)
        clip.nerf_latents = rng.normal(size=(n_frames, 4, latent, latent)).astype(np.float16)
        clip.reference_latent = rng.normal(size=(4, latent, latent)).astype(np.float16)
        clip.image_embedding = rng.normal(size=(1, 8)).astype(np.float16)
    return clip


def write_clip_shards(folder: Path, modes: Sequence[str], *, size: int = 64, n_frames: int = 4, max_count: int = 4,
                      with_latents: bool = False) -> Path:
    """Clip shards ``clips-*.tar`` in ``folder``: one :func:`make_clip` per entry of ``modes`` (subject ``s{i}``, seed i)."""
    with ShardWriter(folder, "clips", CLIP_SCHEMA, max_count=max_count) as writer:
        for index, mode in enumerate(modes):
            writer.write(make_clip(f"s{index}", mode=mode, size=size, n_frames=n_frames, seed=index, with_latents=with_latents))
    return folder
