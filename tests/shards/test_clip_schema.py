"""The clip schema (``clip`` v1): round trips, refusals, keys, the streaming clip pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shards.reader import make_clip_pipeline, make_subject_pipeline
from shards.schema import (
    CLIP_SCHEMA,
    ClipSample,
    SchemaError,
    SchemaVersionError,
    decode,
    decode_clip,
    decode_sample,
    encode,
    make_clip_key,
)
from shards.writer import ShardWriter
from tests.shards.samples import make_clip, make_subject


def test_clip_round_trip_keeps_every_field():
    clip = make_clip(mode="pose", reference_index=7, with_latents=True)
    members = encode(clip)
    assert "frame03.png" in members and "nerf00.png" in members and "normal02.png" in members
    assert "reference.png" in members and "reference_mask.png" in members and "target_latents.npy" in members
    back = decode_clip(members, where="test")
    assert isinstance(back, ClipSample)
    for name in ("frames", "nerf", "normals", "masks", "reference", "reference_mask", "target_latents", "reference_latent"):
        np.testing.assert_array_equal(getattr(back, name), getattr(clip, name), err_msg=name)
    assert back.mode == "pose" and back.meta["reference_index"] == 7
    np.testing.assert_allclose(back.smpl[2]["body_pose"], clip.smpl[2]["body_pose"])
    np.testing.assert_allclose(back.reference_camera["K"], clip.reference_camera["K"])
    assert back.key == "thuman21__s0__pose007"
    assert isinstance(decode_sample(members), ClipSample)


def test_clip_and_subject_decoders_refuse_each_other():
    with pytest.raises(SchemaVersionError, match="not a subject sample"):
        decode(encode(make_clip()), where="x")
    with pytest.raises(SchemaVersionError, match="not a clip sample"):
        decode_clip(encode(make_subject()), where="x")


def test_unknown_clip_version_is_refused():
    members = encode(make_clip())
    members["schema.json"] = json.dumps({"name": "clip", "version": 99}).encode()
    with pytest.raises(SchemaVersionError, match="version 99 is not known"):
        decode_sample(members, where="shard x sample y")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: setattr(c, "nerf", c.nerf[:3]), "has 3 views, expected N=4"),
        (lambda c: c.meta.update(mode="orbit"), "must be one of"),
        (lambda c: c.meta.update(frame_indices=[0, 1]), r"frame_indices must have shape \(4,\)"),
        (lambda c: c.meta.pop("reference_index"), "missing key 'reference_index'"),
        (lambda c: setattr(c, "smpl", c.smpl[:2]), "list of N=4 dicts"),
        (lambda c: setattr(c, "target_latents", c.target_latents.astype(np.float32)), "dtype float16"),
        (lambda c: setattr(c, "reference", c.reference[..., 0]), r"must be uint8 \(H, W, 3\)"),
    ],
)
def test_bad_clips_are_refused_with_the_field_named(change, message):
    clip = make_clip(with_latents=True)
    change(clip)
    with pytest.raises(SchemaError, match=message):
        encode(clip)


def test_clip_keys_are_dot_free_and_distinct():
    assert make_clip_key("THuman2.1", "0001", "view.05") == "THuman2-1__0001__view-05"
    with pytest.raises(ValueError, match="label"):
        make_clip_key("thuman", "0001", "...")
    assert CLIP_SCHEMA.match_member("nerf_mask03.png")[0].name == "nerf_masks"
    assert CLIP_SCHEMA.match_member("nerf03.png")[0].name == "nerf"


def test_clip_pipeline_yields_tensors_and_filters_modes(tmp_path: Path):
    with ShardWriter(tmp_path, "clips", schema=CLIP_SCHEMA, max_count=2) as writer:
        for index in range(5):
            writer.write(make_clip(f"s{index}", mode="view" if index % 2 == 0 else "pose", seed=index,
                                   with_latents=index == 0))
    samples = list(make_clip_pipeline(tmp_path))
    assert len(samples) == 5
    first = samples[0]
    assert first["frames"].shape == (4, 3, 16, 16) and first["nerf"].dtype == torch.float32
    assert first["masks"].shape == (4, 1, 16, 16) and first["reference"].shape == (3, 16, 16)
    assert first["smpl"]["body_pose"].shape == (4, 23, 3) and first["reference_smpl"]["betas"].shape == (10,)
    assert first["K"].shape == (4, 3, 3) and first["reference_K"].shape == (3, 3)
    assert first["mode"] == "view" and first["mode_one_hot"].tolist() == [0.0, 1.0]
    assert first["target_latents"].shape == (4, 4, 2, 2) and first["target_latents"].dtype == torch.float32
    original = make_clip("s0", seed=0)
    torch.testing.assert_close(first["nerf"], torch.from_numpy(original.nerf).permute(0, 3, 1, 2).float() / 255)
    poses = list(make_clip_pipeline(tmp_path, modes=("pose",)))
    assert [s["subject_id"] for s in poses] == ["s1", "s3"]
    assert all(s["mode_one_hot"].tolist() == [1.0, 0.0] for s in poses)
    endless = make_clip_pipeline(tmp_path, modes=("view",), resampled=True, epoch_length=7)
    assert len(list(endless)) == 7
    with pytest.raises(ValueError, match="modes"):
        make_clip_pipeline(tmp_path, modes=("orbit",))
    with pytest.raises(SchemaVersionError, match="not a subject sample"):
        list(make_subject_pipeline(tmp_path))
