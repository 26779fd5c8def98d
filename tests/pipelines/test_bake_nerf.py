"""The NeRF bake without Prefect: config, clip specs, one baked clip, rank split, re-runs, crashes, bad input.

Inputs are made by the real preprocess code (tiny preset, 8 views at 128 px, 2 subjects in 2 input
shards) and a random-weight tiny NeRF saved with ``save_pretrained``; no training is needed to test
the plumbing.
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gas_core.body.smpl import BodyModel
from pipelines.bake_nerf import (
    BakeConfig,
    BakeInputError,
    ClipBaker,
    ClipConfig,
    bake,
    describe_checkpoint,
    load_bake_config,
    output_prefix,
    plan_bake,
    resolve_rank,
    subject_clip_source,
    view_clip_specs,
    view_orbit_indices,
    view_reference_indices,
)
from shards.cli import main as shards_cli
from shards.manifest import load_manifest
from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.schema import decode, decode_clip, make_clip_key

NUM_VIEWS = 8
SUBJECT_SIZE = 128
#: The tiny preset made cheaper for whole-bake tests (the plumbing does not depend on sizes).
FAST_OVERRIDES = ("clip.width=32", "clip.height=32", "clip.num_frames=2", "render.reference_size=32",
                  "render.frames_per_batch=4")
#: A tiny NeRF made cheaper still (coarser sampling grid, fewer samples); random weights.
FAST_MODEL = {"grid_cell_size": 0.08, "probes_per_ray": 16, "samples_per_ray": 6, "visibility_resolution": 32,
              "volume_resolution": 12}


def fast_config(*overrides: str) -> BakeConfig:
    return load_bake_config(preset="tiny", overrides=[*FAST_OVERRIDES, *overrides])


# --------------------------------------------------------------------------------------- inputs
def build_bake_inputs(tmp_path_factory, raw_root: Path) -> tuple[Path, Path]:
    """Subject shards (2 subjects, one per shard) and a random-weight tiny NeRF, made once per test session."""
    from gas_core.nerf import GeneralizableHumanNeRF
    from pipelines.preprocess import load_preprocess_config, pack_staged_subjects, plan_subjects, preprocess_subject

    base = tmp_path_factory.getbasetemp() / "bake-inputs"
    subjects, checkpoint = base / "subjects", base / "nerf"
    if not (subjects / "manifest.json").is_file():
        config = load_preprocess_config(preset="tiny", overrides=[
            f"orbit.num_views={NUM_VIEWS}", f"orbit.width={SUBJECT_SIZE}", f"orbit.height={SUBJECT_SIZE}",
            "shards.max_count=1"])
        plan = plan_subjects("thuman", raw_root, subjects, limit=2)
        for ref in plan.todo:
            assert preprocess_subject(ref, config, plan.staging_dir).status == "ok"
        pack_staged_subjects(plan.staging_dir, subjects, config)
    if not (checkpoint / "config.json").is_file():
        torch.manual_seed(0)
        GeneralizableHumanNeRF.from_preset("tiny", **FAST_MODEL).save_pretrained(checkpoint)
    return subjects, checkpoint


@pytest.fixture(scope="module")
def bake_inputs(tmp_path_factory, synthetic_thuman_root):
    return build_bake_inputs(tmp_path_factory, synthetic_thuman_root)


@pytest.fixture(scope="module")
def subject_sample(bake_inputs):
    subjects, _ = bake_inputs
    url = resolve_shard_urls(subjects)[0]
    return url, decode(next(iter_shard_samples(url)))


def all_clip_keys(subjects: Path, config: BakeConfig) -> set[str]:
    keys = set()
    for url in resolve_shard_urls(subjects):
        for raw in iter_shard_samples(url):
            sample = decode(raw)
            for reference in view_reference_indices(sample.n_views, config.clip.num_references):
                keys.add(make_clip_key(sample.meta["dataset"], sample.meta["subject_id"], f"view{reference:03d}"))
    return keys


def weights_sha256(checkpoint: Path) -> str:
    return hashlib.sha256((checkpoint / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------- config
def test_config_presets_yaml_and_overrides(tmp_path):
    paper = BakeConfig.paper()
    assert (paper.clip.width, paper.clip.height, paper.clip.num_frames, paper.clip.num_references) == (512, 512, 20, 4)
    assert paper.render.bf16
    tiny = BakeConfig.tiny()
    assert (tiny.clip.width, tiny.clip.num_frames, tiny.clip.num_references) == (64, 8, 4)
    config_file = tmp_path / "bake.yaml"
    config_file.write_text("clip:\n  width: 96\n  height: 96\nrender:\n  chunk_rays: 1024\n")
    config = load_bake_config(config_file, preset="tiny", overrides=["clip.num_frames=6", "render.device=cpu"])
    assert config.clip == ClipConfig(width=96, height=96, num_frames=6, num_references=4)
    assert config.render.chunk_rays == 1024 and config.render.device == "cpu"
    with pytest.raises(ValueError, match="unknown config field 'nope'"):
        load_bake_config(overrides=["nope=1"])
    with pytest.raises(ValueError, match="clip.num_frames"):
        load_bake_config(overrides=["clip.num_frames=0"])
    with pytest.raises(ValueError, match="shards.prefix"):
        load_bake_config(overrides=["shards.prefix=a.b"])
    with pytest.raises(ValueError, match="preset"):
        load_bake_config(preset="huge")


def test_rank_prefix_and_checkpoint_helpers(tmp_path, monkeypatch, bake_inputs):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert resolve_rank() == (3, 4)
    assert resolve_rank(0, 2) == (0, 2)
    with pytest.raises(ValueError, match="rank"):
        resolve_rank(2, 2)
    assert output_prefix("s3://bucket/subjects/subjects-000003.tar") == "clips-subjects-000003"
    assert output_prefix("/data/a b.tar", "view") == "view-a-b"

    _, checkpoint = bake_inputs
    info = describe_checkpoint(checkpoint)
    assert info.sha256 == weights_sha256(checkpoint)
    training_dir = tmp_path / "checkpoint-100"  # a training checkpoint: weights under model/
    shutil.copytree(checkpoint, training_dir / "model")
    (training_dir / "training_state.pt").write_bytes(b"not weights")
    trained = describe_checkpoint(training_dir)
    assert trained.sha256 == info.sha256 and trained.model_dir == str(training_dir / "model")
    with pytest.raises(ValueError, match="config.json"):
        describe_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="nope does not exist"):
        describe_checkpoint(tmp_path / "nope")


# --------------------------------------------------------------------------------------- specs
def test_view_clip_specs_orbit_from_each_orthogonal_reference(subject_sample):
    assert view_reference_indices(20, 4) == (0, 5, 10, 15)
    assert view_orbit_indices(20, 15, 20)[:6] == (15, 16, 17, 18, 19, 0)
    assert view_orbit_indices(20, 5, 10) == (5, 7, 9, 11, 13, 15, 17, 19, 1, 3)  # fewer frames: the full circle

    url, sample = subject_sample
    source = subject_clip_source(sample, origin={"subject_shard": url})
    specs = view_clip_specs(source, BakeConfig.tiny().clip)
    assert [spec.reference_index for spec in specs] == [0, 2, 4, 6]
    for spec in specs:
        assert spec.mode == "view" and len(spec.frame_indices) == NUM_VIEWS
        assert spec.frame_indices == tuple((spec.reference_index + i) % NUM_VIEWS for i in range(NUM_VIEWS))
        assert spec.frame_indices[0] == spec.reference_index
        first, reference = spec.cameras[0], source.cameras[spec.reference_index]
        assert np.array_equal(first.R, reference.R) and np.array_equal(first.t, reference.t)
        assert spec.key(source) == make_clip_key(sample.meta["dataset"], sample.meta["subject_id"],
                                                 f"view{spec.reference_index:03d}")
    # the four references look at the subject from azimuths 90 degrees apart (front, side, back, side)
    azimuths = [math.degrees(math.atan2(c.center[0], c.center[2])) % 360
                for c in (source.cameras[spec.reference_index] for spec in specs)]
    assert np.allclose(np.diff(azimuths), 90.0, atol=1e-6)
    with pytest.raises(BakeInputError, match="num_frames"):
        view_clip_specs(source, ClipConfig(num_frames=NUM_VIEWS + 1))


# --------------------------------------------------------------------------------------- one clip
@pytest.fixture(scope="module")
def tiny_model(bake_inputs):
    from gas_core.nerf import GeneralizableHumanNeRF

    return GeneralizableHumanNeRF.from_pretrained(str(bake_inputs[1]))


def test_baked_clip_holds_gt_nerf_and_normal_frames(subject_sample, bake_inputs, tiny_model, open_body_model_dir):
    url, sample = subject_sample
    source = subject_clip_source(sample, origin={"subject_shard": url})
    config = BakeConfig.tiny()
    info = describe_checkpoint(bake_inputs[1])
    body_model = BodyModel(open_body_model_dir)
    with ClipBaker(tiny_model, body_model, config, info, torch.device("cpu")) as baker:
        full_spec = view_clip_specs(source, config.clip)[1]
        spec = replace(full_spec, frame_indices=full_spec.frame_indices[:3], cameras=full_spec.cameras[:3],
                       smpl=full_spec.smpl[:3])
        clip = baker.bake(source, spec)
        assert clip.frames.shape == clip.nerf.shape == clip.normals.shape == (3, 64, 64, 3)
        assert clip.masks.shape == clip.nerf_masks.shape == (3, 64, 64)
        assert clip.reference.shape == (64, 64, 3) and set(np.unique(clip.reference_mask)) <= {0, 255}
        assert np.array_equal(clip.reference, clip.frames[0])  # frame 0 is the reference view
        assert clip.meta["extra"]["nerf_checkpoint_sha256"] == info.sha256
        assert clip.meta["frame_indices"] == list(spec.frame_indices) and clip.key.endswith("__view002")
        assert clip.cameras[0]["width"] == 64 and np.allclose(np.asarray(clip.cameras[0]["K"])[0, 0],
                                                               sample.cameras[2]["K"][0, 0] / 2)
        # the NeRF only renders near the body: nothing in the image corners, something on the body
        assert clip.nerf_masks[:, :4, :4].max() == 0 and clip.nerf_masks.max() > 0
        # 128 px subjects at 64 px clips: normal maps rendered at 64, matching the shrunk stored ones
        assert baker.timings.normals_reused == 0
        stored = [Image.fromarray((sample.normals[i][..., 2] > 32).astype(np.uint8) * 255) for i in spec.frame_indices]
        theirs = np.stack([np.asarray(image.resize((64, 64), Image.Resampling.BOX)) >= 128 for image in stored])
        ours = clip.normals[..., 2] > 32
        assert (ours & theirs).sum() / (ours | theirs).sum() > 0.9
        assert baker.timings.mlp_queries > 0

    # at the subjects' own size the stored normal maps are reused, and rendering them again agrees
    full = replace(config, clip=replace(config.clip, width=SUBJECT_SIZE, height=SUBJECT_SIZE))
    with ClipBaker(tiny_model, body_model, full, info, torch.device("cpu")) as baker:
        spec = view_clip_specs(source, full.clip)[0]
        reused = baker.normal_maps(source, spec)
        assert baker.timings.normals_reused == NUM_VIEWS and np.array_equal(reused, sample.normals)
        rendered = baker.normal_maps(replace(source, normals=None), spec)
        ours, theirs = rendered[..., 2] > 32, reused[..., 2] > 32
        assert (ours & theirs).sum() / (ours | theirs).sum() > 0.98
        assert np.abs(rendered.astype(int) - reused.astype(int))[ours & theirs].mean() < 2.0

    wrong_model = replace(source, smpl=tuple({**item, "body_model": "SMPL"} for item in source.smpl))
    with ClipBaker(tiny_model, body_model, config, info, torch.device("cpu")) as baker:
        with pytest.raises(BakeInputError, match="body model"):
            baker.check_source(wrong_model)
        with pytest.raises(BakeInputError, match="aspect"):
            baker.check_source(replace(source, images=source.images[:, :, :100]))


# --------------------------------------------------------------------------------------- whole bakes
def test_two_ranks_write_disjoint_shards_covering_every_subject_and_reruns_skip(tmp_path, bake_inputs):
    subjects, checkpoint = bake_inputs
    out = tmp_path / "clips"
    config = fast_config()
    first = bake(subjects, out, checkpoint, config, rank=0, world_size=2, progress=False)
    second = bake(subjects, out, checkpoint, config, rank=1, world_size=2, progress=False)
    assert first.ok and second.ok, first.problems + second.problems
    files = [{name for shard in report.shards for name in shard.output_shards} for report in (first, second)]
    assert files[0] and files[1] and not files[0] & files[1]
    assert {name.rsplit("-", 1)[0] for name in files[0]} == {"clips-subjects-000000"}
    assert {name.rsplit("-", 1)[0] for name in files[1]} == {"clips-subjects-000001"}
    manifest = load_manifest(out)
    expected = all_clip_keys(subjects, config)
    assert len(expected) == 8 and manifest.keys == expected
    assert first.clips_written + second.clips_written == 8
    assert shards_cli(["verify", str(out)]) == 0
    sha = weights_sha256(checkpoint)
    assert manifest.extra["nerf_checkpoint"] == str(checkpoint) and manifest.extra["nerf_checkpoint_sha256"] == sha
    for url in resolve_shard_urls(out):
        for raw in iter_shard_samples(url):
            assert decode_clip(raw).meta["extra"]["nerf_checkpoint_sha256"] == sha

    # re-run: every input shard is skipped and nothing is written
    files_before = sorted(path.name for path in out.iterdir())
    for rank in (0, 1):
        again = bake(subjects, out, checkpoint, config, rank=rank, world_size=2, progress=False)
        assert again.clips_written == 0 and all(shard.skipped for shard in again.shards)
    assert sorted(path.name for path in out.iterdir()) == files_before

    # a strip of one clip: ground truth, NeRF and normal-map rows (plus masks and reference)
    key = sorted(expected)[0]
    sheet_path = tmp_path / "strip.png"
    assert shards_cli(["show", str(out), key, "--out", str(sheet_path), "--tile", "32"]) == 0
    sheet = np.asarray(Image.open(sheet_path))
    image_rows = 7  # frames, nerf, normals, masks, nerf_masks, reference, reference_mask
    assert sheet.shape[0] == (12 + 4) + image_rows * (12 + 32 + 4) + 4
    assert sheet.shape[1] >= config.clip.num_frames * (32 + 4)


@pytest.mark.slow
def test_two_ranks_bake_from_and_to_s3(tmp_path, bake_inputs, s3_bucket):
    from shards.remote import Folder

    subjects, checkpoint = bake_inputs
    remote_subjects, out = f"{s3_bucket}/subjects", f"{s3_bucket}/clips"
    folder = Folder(remote_subjects)
    for path in sorted(subjects.glob("*.tar")) + [subjects / "manifest.json"]:
        folder.write_atomic(path.name, path.read_bytes())
    config = fast_config()
    reports = [bake(remote_subjects, out, checkpoint, config, rank=rank, world_size=2, progress=False) for rank in (0, 1)]
    assert all(report.ok for report in reports), [report.problems for report in reports]
    assert load_manifest(out).keys == all_clip_keys(subjects, config)  # both ranks' shards listed (locked updates)
    assert shards_cli(["verify", out]) == 0


def test_crash_leaves_no_partial_shard_and_rerun_completes_what_is_missing(tmp_path, bake_inputs, monkeypatch):
    subjects, checkpoint = bake_inputs
    out = tmp_path / "clips"
    config = fast_config("clip.num_references=2")
    seen: list[str] = []
    original = ClipBaker.bake

    def crash_on_second_subject(self, source, spec):
        if source.subject_id not in seen:
            seen.append(source.subject_id)
        if len(seen) == 2 and spec.reference_index == 4:  # one clip of the 2nd subject is already written
            raise RuntimeError("injected crash")
        return original(self, source, spec)

    monkeypatch.setattr(ClipBaker, "bake", crash_on_second_subject)
    with pytest.raises(RuntimeError, match="injected crash"):
        bake(subjects, out, checkpoint, config, progress=False)
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.tar.tmp"))
    manifest = load_manifest(out)
    assert manifest.total_samples == 2 and len(manifest.shards) == 1  # the 1st subject's closed shard only
    assert sorted(path.name for path in out.glob("*.tar")) == [manifest.shards[0].file]
    assert shards_cli(["verify", str(out)]) == 0

    monkeypatch.setattr(ClipBaker, "bake", original)
    report = bake(subjects, out, checkpoint, config, progress=False)
    assert report.ok and report.clips_written == 2 and report.clips_skipped == 2
    assert load_manifest(out).keys == all_clip_keys(subjects, config)
    assert shards_cli(["verify", str(out)]) == 0


def test_other_checkpoint_is_refused_unless_forced(tmp_path, bake_inputs):
    from gas_core.nerf import GeneralizableHumanNeRF

    subjects, checkpoint = bake_inputs
    urls = resolve_shard_urls(subjects)
    other = tmp_path / "other-nerf"
    torch.manual_seed(1)
    GeneralizableHumanNeRF.from_preset("tiny", **FAST_MODEL).save_pretrained(other)
    out = tmp_path / "clips"
    config = fast_config("clip.num_references=2")
    assert bake(urls[1], out, checkpoint, config, progress=False).clips_written == 2
    with pytest.raises(ValueError, match="another NeRF checkpoint.*--force-mixed"):
        plan_bake(urls[0], out, other, config)
    report = bake(urls[0], out, other, config, force_mixed=True, progress=False)
    assert report.clips_written == 2
    extra = load_manifest(out).extra
    assert set(extra["nerf_checkpoints"]) == {weights_sha256(checkpoint), weights_sha256(other)}
    shas = {decode_clip(raw).meta["extra"]["nerf_checkpoint_sha256"]
            for url in resolve_shard_urls(out) for raw in iter_shard_samples(url)}
    assert shas == {weights_sha256(checkpoint), weights_sha256(other)}


def _rewrite_member(shard: Path, target: Path, suffix: str, data: bytes) -> str:
    """Copy ``shard`` to ``target`` with the first sample's ``suffix`` member replaced; returns that sample's key."""
    with tarfile.open(shard) as source, tarfile.open(target, "w") as copy:
        members = source.getmembers()
        key = members[0].name.split(".", 1)[0]
        for member in members:
            payload = source.extractfile(member).read()
            if member.name == f"{key}.{suffix}":
                payload = data
                member.size = len(data)
            copy.addfile(member, io.BytesIO(payload))
    return key


def test_truncated_shard_and_undecodable_subject_are_reported_and_the_rest_completes(tmp_path, bake_inputs):
    subjects, checkpoint = bake_inputs
    good, other = resolve_shard_urls(subjects)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(good, inputs / "subjects-000000.tar")
    bad_key = _rewrite_member(Path(other), inputs / "subjects-000001.tar", "view03.png", b"not a png")
    data = Path(other).read_bytes()
    (inputs / "subjects-000002.tar").write_bytes(data[: len(data) // 2])
    out = tmp_path / "clips"
    report = bake(inputs, out, checkpoint, fast_config("clip.num_references=2"), progress=False)
    assert not report.ok and len(report.problems) == 2
    assert any("subjects-000002.tar" in line and "truncated" in line for line in report.problems)
    assert any(line.startswith(bad_key) and "view03.png" in line for line in report.problems)
    assert report.clips_written == 2  # the good subject
    assert load_manifest(out).total_samples == 2 and shards_cli(["verify", str(out)]) == 0
