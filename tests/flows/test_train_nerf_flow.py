"""The ``train-nerf`` flow: config transport and one short in-process run on a tiny subject shard."""

from __future__ import annotations

import pytest

from flows.train_nerf import resolve_config, train_nerf_flow
from pipelines.train_nerf import config_to_yaml, load_train_nerf_config
from shards.schema import SubjectSample, encode
from shards.writer import ShardWriter


def test_resolve_config_reads_yaml_text_and_overrides():
    tiny = load_train_nerf_config(preset="tiny", overrides=["optim.max_steps=9"])
    resolved = resolve_config("paper", config_to_yaml(tiny), ["log.log_every=3"])
    assert resolved.optim.max_steps == 9 and resolved.log.log_every == 3 and resolved.model == tiny.model
    with pytest.raises(ValueError, match="unknown config field"):
        resolve_config("tiny", None, ["nope=1"])


def test_flow_trains_a_few_steps(tmp_path, open_body_model_dir):
    import numpy as np

    from gas_core.body.smpl import BodyModel
    from gas_core.cameras import OrbitSpec, orbit_cameras

    # one subject: the open body model's rest pose seen by 3 views, masks where it is (no scan needed)
    body = BodyModel(open_body_model_dir)
    cameras = orbit_cameras(OrbitSpec(num_views=3, width=32, height=32))
    masks = np.zeros((3, 32, 32), np.uint8)
    masks[:, 4:28, 10:22] = 255
    views = np.stack([np.full((32, 32, 3), 90 + 40 * i, np.uint8) for i in range(3)])
    smpl = {"betas": [0.0] * 10, "body_pose": [[0.0] * 3] * 23, "global_orient": [0.0] * 3, "transl": [0.0] * 3,
            "scale": 1.0, "body_model": body.label}
    sample = SubjectSample(views=views, masks=masks, cameras=[c.to_dict() for c in cameras], smpl=smpl,
                           normalization={"center": [0.0, 0.0, 0.0], "scale": 1.0},
                           meta={"dataset": "thuman", "subject_id": "0000", "source": []})
    with ShardWriter(tmp_path / "shards", "subjects") as writer:
        writer.write({"__key__": sample.key, **encode(sample)})
    overrides = ["data.image_size=32", "model.image_size=32", "data.batch_size=1", "data.pairs_per_subject=2",
                 "data.subjects_per_epoch=1", "data.shuffle=0", "optim.patch_size=16", "optim.max_steps=2",
                 "model.triplane_resolution=8", "model.volume_resolution=8", "model.samples_per_ray=4",
                 "model.probes_per_ray=8", "log.val_pairs=1", "loss.lpips=0", "threads=1",
                 f"data.body_model_path={open_body_model_dir}"]
    summary = train_nerf_flow(shards=str(tmp_path / "shards"), out_dir=str(tmp_path / "run"), preset="tiny",
                              overrides=overrides)
    assert summary["steps"] == 2 and (tmp_path / "run" / "checkpoint" / "model" / "config.json").is_file()
