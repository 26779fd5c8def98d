"""Writer + manifest: splitting, atomicity, appending, plain-tar and plain-webdataset compatibility."""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from pathlib import Path

import pytest
import webdataset

from shards.manifest import clean_stale_tmp, existing_keys, load_manifest, shard_urls
from shards.cli import main
from shards.reader import make_subject_pipeline, resolve_shard_urls
from shards.schema import Encoding, FieldSpec, SampleSchema, SchemaError, encode
from shards.writer import ShardWriter, tar_member_bytes
from tests.shards.samples import make_subject


def _write(folder: Path, ids, *, prefix: str = "subjects", **kwargs) -> ShardWriter:
    with ShardWriter(folder, prefix, **kwargs) as writer:
        for index, subject_id in enumerate(ids):
            writer.write(make_subject(subject_id, dataset=("thuman21", "2k2k")[index % 2], seed=index))
    return writer


def _tars(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.tar"))


def test_splits_by_max_count_and_manifest_describes_shards(tmp_path):
    writer = _write(tmp_path, [f"s{i}" for i in range(5)], max_count=2)
    assert _tars(tmp_path) == ["subjects-000000.tar", "subjects-000001.tar", "subjects-000002.tar"]
    manifest = load_manifest(tmp_path)
    assert (manifest.schema_name, manifest.schema_version) == ("subject", 1)
    assert [entry.count for entry in manifest.shards] == [2, 2, 1]
    assert manifest.total_samples == 5
    assert manifest.dataset_counts == {"2k2k": 2, "thuman21": 3}
    for entry in manifest.shards:
        data = (tmp_path / entry.file).read_bytes()
        assert entry.size_bytes == len(data)
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.shards[0].keys == ("thuman21__s0", "2k2k__s1")
    assert writer.closed_shards == manifest.shards
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["totals"] == {"shards": 3, "samples": 5, "size_bytes": manifest.total_bytes}
    assert raw["datasets"] == {"2k2k": 2, "thuman21": 3}
    assert not list(tmp_path.glob("*.tmp"))


def test_splits_by_max_size(tmp_path):
    sample_bytes = sum(tar_member_bytes(len(v)) for v in encode(make_subject()).values())
    _write(tmp_path, [f"s{i}" for i in range(4)], max_size=int(sample_bytes * 2.5))
    manifest = load_manifest(tmp_path)
    assert [entry.count for entry in manifest.shards] == [2, 2]
    # a single sample bigger than max_size still gets written, alone in its shard
    _write(tmp_path / "small", ["a", "b"], max_size=100)
    assert [entry.count for entry in load_manifest(tmp_path / "small").shards] == [1, 1]


def test_crash_mid_shard_leaves_no_partial_tar(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path, "subjects", max_count=2) as writer:
            for index in range(3):
                writer.write(make_subject(f"s{index}", seed=index))
            assert (tmp_path / "subjects-000001.tar.tmp").exists()
            raise RuntimeError("boom")
    assert _tars(tmp_path) == ["subjects-000000.tar"]
    assert not list(tmp_path.glob("*.tmp"))
    manifest = load_manifest(tmp_path)
    assert [entry.file for entry in manifest.shards] == ["subjects-000000.tar"]
    assert existing_keys(tmp_path) == {"thuman21__s0", "thuman21__s1"}
    keys = [sample["__key__"] for sample in make_subject_pipeline(tmp_path)]
    assert keys == ["thuman21__s0", "thuman21__s1"]


def test_rerun_appends_and_numbering_continues(tmp_path):
    _write(tmp_path, ["a", "b", "c"], max_count=2)
    done = existing_keys(tmp_path)
    assert done == {"thuman21__a", "2k2k__b", "thuman21__c"}
    # a killed run left a temp file behind; the next writer removes it
    (tmp_path / "subjects-000002.tar.tmp").write_bytes(b"partial")
    with ShardWriter(tmp_path, "subjects", max_count=2) as writer:
        for index, subject_id in enumerate(["a", "b", "c", "d", "e"]):
            sample = make_subject(subject_id, dataset=("thuman21", "2k2k")[index % 2], seed=index)
            if sample.key in done:
                continue
            writer.write(sample)
        with pytest.raises(ValueError, match="already in"):
            writer.write(make_subject("a", dataset="thuman21"))
    assert _tars(tmp_path) == [f"subjects-00000{i}.tar" for i in range(3)]
    manifest = load_manifest(tmp_path)
    assert manifest.total_samples == 5
    assert manifest.shards[2].keys == ("2k2k__d", "thuman21__e")
    assert manifest.created <= manifest.updated
    assert not list(tmp_path.glob("*.tmp"))
    # another prefix in the same folder merges into the same manifest
    _write(tmp_path, ["x"], prefix="extra")
    assert [entry.file for entry in load_manifest(tmp_path).shards][-1] == "subjects-000002.tar"
    assert "extra-000000.tar" in [entry.file for entry in load_manifest(tmp_path).shards]
    assert len(shard_urls(tmp_path)) == 4


def test_clean_stale_tmp(tmp_path):
    (tmp_path / "subjects-000004.tar.tmp").write_bytes(b"x")
    (tmp_path / "other-000000.tar.tmp").write_bytes(b"x")
    (tmp_path / "keep.tar").write_bytes(b"x")
    assert clean_stale_tmp(tmp_path, "subjects") == ["subjects-000004.tar.tmp"]
    assert clean_stale_tmp(tmp_path) == ["other-000000.tar.tmp"]
    assert (tmp_path / "keep.tar").exists()


def test_writer_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="prefix"):
        ShardWriter(tmp_path, "bad.prefix")
    with pytest.raises(ValueError, match="max_count"):
        ShardWriter(tmp_path, "subjects", max_count=0)
    with ShardWriter(tmp_path, "subjects") as writer:
        with pytest.raises(ValueError, match="first dot"):
            writer.write({"__key__": "a.b", **encode(make_subject())})
        bad = make_subject("s9")
        bad.masks = bad.masks[:1]
        with pytest.raises(SchemaError, match="'masks' has 1 views"):
            writer.write(bad)
        assert writer.write({"__key__": "raw_key", **encode(make_subject("r"))}) == "raw_key"
    with pytest.raises(ValueError, match="inside `with"):
        ShardWriter(tmp_path, "subjects").write(make_subject())
    other = SampleSchema("other", 1, (FieldSpec("frames", "frame", Encoding.PNG_RGB, per_view=True),))
    with pytest.raises(ValueError, match="holds shards of schema subject v1"):
        with ShardWriter(tmp_path, "others", other):
            pass


def test_plain_tar_listing_and_no_pickles(tmp_path):
    _write(tmp_path, ["s0"], max_count=4)
    with tarfile.open(tmp_path / "subjects-000000.tar") as archive:
        names = archive.getnames()
        assert all(member.mode == 0o444 for member in archive.getmembers())
    expected = {f"thuman21__s0.{stem}{i:02d}.png" for stem in ("view", "mask") for i in range(3)}
    expected |= {f"thuman21__s0.{name}" for name in ("cameras.json", "smpl.json", "normalization.json", "meta.json", "schema.json")}
    assert set(names) == expected
    assert not any(name.endswith((".pkl", ".pth", ".pyd", ".pickle")) for name in names)


def test_plain_webdataset_reads_the_shards(tmp_path):
    _write(tmp_path, ["s0", "s1", "s2"], max_count=2)
    urls = [str(tmp_path / name) for name in _tars(tmp_path)]
    dataset = webdataset.WebDataset(urls, shardshuffle=False).decode("rgb8")
    samples = list(dataset)
    assert [sample["__key__"] for sample in samples] == ["thuman21__s0", "2k2k__s1", "thuman21__s2"]
    first = samples[0]
    assert first["view02.png"].shape == (16, 16, 3)
    assert first["schema.json"] == {"name": "subject", "version": 1}
    assert len(first["cameras.json"]) == 3


def test_remote_folder_through_fsspec(tmp_path):
    folder = f"memory://gas-tests/{uuid.uuid4().hex}"
    _write(folder, ["s0", "s1", "s2"], max_count=2)
    manifest = load_manifest(folder)
    assert [entry.count for entry in manifest.shards] == [2, 1]
    assert shard_urls(folder)[0] == f"{folder}/subjects-000000.tar"
    # streams through webdataset's gopen -> the fsspec opener registered in shards.remote
    keys = [sample["__key__"] for sample in make_subject_pipeline(folder)]
    assert keys == ["thuman21__s0", "2k2k__s1", "thuman21__s2"]
    assert len(resolve_shard_urls(f"{folder}/*.tar")) == 2
    assert main(["verify", folder]) == 0


def _write_clips(folder: str, prefix: str, start: int) -> None:
    from shards.schema import CLIP_SCHEMA
    from tests.shards.samples import make_clip

    with ShardWriter(folder, prefix, schema=CLIP_SCHEMA, max_count=1, manifest_extra={"nerf_checkpoint": "ckpt-a"}) as writer:
        for index in range(start, start + 6):
            writer.write(make_clip(f"s{index}", seed=index, n_frames=2, size=8))


def test_writers_in_several_processes_share_one_manifest(tmp_path: Path):
    """Ranks of a distributed bake write disjoint prefixes into one folder: no manifest update is lost."""
    import multiprocessing

    from shards.manifest import load_manifest

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_clips, args=(str(tmp_path), f"clips-r{rank}", 10 * rank)) for rank in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    manifest = load_manifest(tmp_path)
    assert len(manifest.shards) == 12 and manifest.total_samples == 12
    assert sorted(entry.file for entry in manifest.shards) == sorted(path.name for path in tmp_path.glob("*.tar"))
    assert manifest.extra == {"nerf_checkpoint": "ckpt-a"}
    assert manifest.schema_name == "clip"


def test_manifest_extra_must_be_json(tmp_path: Path):
    with pytest.raises(TypeError):
        ShardWriter(tmp_path, "subjects", manifest_extra={"checkpoint": object()})
