"""Streaming reader: tensors, shuffling, resampled epochs, DataLoader workers, refusals and corrupt shards."""

from __future__ import annotations

import json
import logging
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset

from shards.reader import (
    ReadAheadShard,
    ShardReadError,
    iter_shard_samples,
    iter_shards,
    make_subject_pipeline,
    resolve_shard_urls,
)
from shards.schema import SchemaVersionError, SubjectSample, encode
from shards.writer import ShardWriter
from tests.shards.samples import make_subject

ALL_KEYS = [f"thuman21__s{i}" for i in range(6)]


@pytest.fixture
def shard_folder(tmp_path: Path) -> Path:
    """6 subjects in 3 shards of 2."""
    with ShardWriter(tmp_path, "subjects", max_count=2) as writer:
        for index in range(6):
            writer.write(make_subject(f"s{index}", seed=index, with_optional=index == 0))
    return tmp_path


def test_tensors_match_the_written_sample(shard_folder):
    samples = list(make_subject_pipeline(shard_folder))
    assert [s["__key__"] for s in samples] == ALL_KEYS
    first, original = samples[0], make_subject("s0", seed=0, with_optional=True)
    assert first["views"].shape == (3, 3, 16, 16) and first["views"].dtype == torch.float32
    expected_views = torch.from_numpy(original.views).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(first["views"], expected_views)
    assert first["masks"].shape == (3, 1, 16, 16)
    assert set(first["masks"].unique().tolist()) <= {0.0, 1.0}
    assert first["normals"].shape == (3, 3, 16, 16)
    assert first["keypoints"].shape == (3, 17, 3)
    assert first["K"].shape == (3, 3, 3) and first["R"].shape == (3, 3, 3) and first["t"].shape == (3, 3)
    torch.testing.assert_close(first["R"][1], torch.as_tensor(original.cameras[1]["R"], dtype=torch.float32))
    assert first["smpl"]["body_pose"].shape == (23, 3)
    assert first["smpl"]["scale"].shape == ()
    assert first["body_model"].startswith("open body model")
    assert (first["dataset"], first["subject_id"]) == ("thuman21", "s0")
    assert first["__url__"].endswith("subjects-000000.tar")
    assert "normals" not in samples[1]
    raw = list(make_subject_pipeline(shard_folder, decode_to_tensors=False))
    assert isinstance(raw[0], SubjectSample) and raw[0].views.dtype == np.uint8


def test_sources_resolve_the_same_shards(shard_folder):
    expected = [str(shard_folder / f"subjects-00000{i}.tar") for i in range(3)]
    assert resolve_shard_urls(shard_folder) == expected
    assert resolve_shard_urls(shard_folder / "manifest.json") == expected
    assert resolve_shard_urls(str(shard_folder / "*.tar")) == expected
    assert resolve_shard_urls(str(shard_folder / "subjects-{000000..000002}.tar")) == expected
    assert resolve_shard_urls(expected[:2]) == expected[:2]
    with pytest.raises(ValueError, match="names no shards"):
        resolve_shard_urls(str(shard_folder / "nothing-*.tar"))


def test_sources_resolve_alike_on_an_fsspec_url_and_relative_to_the_working_directory(shard_folder, monkeypatch):
    import fsspec

    url = f"memory://reader-{shard_folder.name}/subjects"
    fs, root = fsspec.core.url_to_fs(url)
    for index in range(3):
        fs.put_file(str(shard_folder / f"subjects-00000{index}.tar"), f"{root}/subjects-00000{index}.tar")
    expected = [f"{url}/subjects-00000{i}.tar" for i in range(3)]
    assert resolve_shard_urls(url) == expected  # no manifest: the folder's .tar files
    assert resolve_shard_urls(f"{url}/*.tar") == expected
    assert resolve_shard_urls(f"memory://reader-{shard_folder.name}/*/subjects-00000[01].tar") == expected[:2]
    fs.put_file(str(shard_folder / "manifest.json"), f"{root}/manifest.json")
    assert resolve_shard_urls(url) == expected  # from the manifest
    monkeypatch.chdir(shard_folder)
    assert resolve_shard_urls("*.tar") == [f"subjects-00000{i}.tar" for i in range(3)]
    assert [raw["__key__"] for raw in iter_shard_samples(expected[0])] == ALL_KEYS[:2]


def test_shuffle_permutes_and_is_seeded(shard_folder):
    def keys(seed: int) -> list[str]:
        return [s["__key__"] for s in make_subject_pipeline(shard_folder, shuffle=8, seed=seed)]

    orders = [keys(seed) for seed in range(4)]
    assert all(sorted(order) == ALL_KEYS for order in orders)
    assert any(order != ALL_KEYS for order in orders)
    assert keys(3) == orders[3]


def test_resampled_epochs_have_fixed_length(shard_folder):
    pipeline = make_subject_pipeline(shard_folder, resampled=True, epoch_length=5, shuffle=4)
    for _ in range(2):
        keys = [s["__key__"] for s in pipeline]
        assert len(keys) == 5
        assert set(keys) <= set(ALL_KEYS)


def test_dataloader_two_workers_yields_each_sample_once(shard_folder):
    pipeline = make_subject_pipeline(shard_folder, shuffle=4)
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=2, multiprocessing_context="spawn")  # spawn, as CUDA training uses; fork after GL or Prefect threads is unsafe
    for _ in range(2):  # two epochs
        keys = [sample["__key__"] for sample in loader]
        assert sorted(keys) == ALL_KEYS
        assert Counter(keys).most_common(1)[0][1] == 1


def test_dataloader_resampled_epoch_is_per_worker(shard_folder):
    pipeline = make_subject_pipeline(shard_folder, resampled=True, epoch_length=3)
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    keys = [sample["__key__"] for sample in loader]
    assert len(keys) == 6 and set(keys) <= set(ALL_KEYS)


def test_unknown_schema_version_is_refused_with_shard_and_sample(tmp_path):
    members = encode(make_subject("s0"))
    newer = dict(encode(make_subject("s1")), **{"schema.json": json.dumps({"name": "subject", "version": 2}).encode()})
    path = tmp_path / "future-000000.tar"
    with open(path, "wb") as stream, webdataset.TarWriter(stream, encoder=False) as writer:
        writer.write({"__key__": "thuman21__s0", **members})
        writer.write({"__key__": "thuman21__s1", **newer})
    pipeline = iter(make_subject_pipeline(path))
    assert next(pipeline)["__key__"] == "thuman21__s0"
    with pytest.raises(SchemaVersionError) as caught:
        next(pipeline)
    message = str(caught.value)
    assert str(path) in message and "thuman21__s1" in message and "version 2 is not known" in message


def _truncate_inside_data(path: Path) -> None:
    with tarfile.open(path) as archive:
        member = archive.getmembers()[-3]
    data = path.read_bytes()
    path.write_bytes(data[: member.offset_data + member.size // 2])


def test_truncated_shard_raises_or_is_skipped(shard_folder, caplog):
    broken = shard_folder / "subjects-000001.tar"
    _truncate_inside_data(broken)
    with pytest.raises(ShardReadError, match="subjects-000001.tar: truncated or corrupt"):
        list(iter_shard_samples(broken))
    with pytest.raises(ShardReadError, match="subjects-000001.tar"):
        list(make_subject_pipeline(shard_folder))
    with caplog.at_level(logging.WARNING, logger="shards.reader"):
        keys = [s["__key__"] for s in make_subject_pipeline(shard_folder, skip_corrupt=True)]
    assert keys[:2] == ALL_KEYS[:2] and keys[-2:] == ALL_KEYS[-2:]
    assert "thuman21__s3" not in keys
    assert any("subjects-000001.tar" in record.getMessage() for record in caplog.records)


def test_read_ahead_gives_the_same_samples_in_order_and_names_a_missing_shard(shard_folder, caplog):
    urls = resolve_shard_urls(shard_folder)
    plain = [raw for url in urls for raw in iter_shard_samples(url)]
    for prefetch in (0, 1, 2):
        assert list(iter_shards(urls, prefetch=prefetch)) == plain
    chunked = ReadAheadShard(urls[0], chunk_bytes=1000, ahead_chunks=2)  # many chunks, a partial last one
    with chunked:
        assert chunked.read() == Path(urls[0]).read_bytes()
    missing = str(shard_folder / "subjects-000009.tar")
    with pytest.raises(ShardReadError, match="subjects-000009.tar: cannot open shard"):
        list(iter_shards([urls[0], missing, urls[1]]))
    with caplog.at_level(logging.WARNING, logger="shards.reader"):
        keys = [raw["__key__"] for raw in iter_shards([urls[0], missing, urls[1]], skip_corrupt=True)]
    assert keys == ALL_KEYS[:4] and any("subjects-000009.tar" in r.getMessage() for r in caplog.records)


def test_stopping_early_stops_the_read_ahead_threads(shard_folder):
    import threading
    import time

    stream = iter_shards(resolve_shard_urls(shard_folder) * 20, prefetch=2)
    next(stream)
    stream.close()
    deadline = time.monotonic() + 10
    while any(t.name.startswith("read-ahead") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("read-ahead") for t in threading.enumerate())


def test_argument_checks(shard_folder):
    with pytest.raises(ValueError, match="shuffle"):
        make_subject_pipeline(shard_folder, shuffle=-1)
    with pytest.raises(ValueError, match="epoch_length"):
        make_subject_pipeline(shard_folder, epoch_length=0)
    with pytest.raises(ValueError, match="prefetch"):
        make_subject_pipeline(shard_folder, prefetch=-1)
    with pytest.raises(ValueError, match="chunk_bytes"):
        ReadAheadShard(shard_folder / "subjects-000000.tar", chunk_bytes=0)


def test_set_epoch_changes_draws_reproducibly_across_dataloader_epochs(shard_folder):
    pipeline = make_subject_pipeline(shard_folder, resampled=True, epoch_length=6, shuffle=4, seed=5)
    loader = torch.utils.data.DataLoader(pipeline, batch_size=None, num_workers=2, multiprocessing_context="spawn")

    def epoch_keys(epoch: int) -> list[str]:
        pipeline.set_epoch(epoch)
        return [sample["__key__"] for sample in loader]

    first, second, first_again = epoch_keys(0), epoch_keys(1), epoch_keys(0)
    assert len(first) == len(second) == 12
    assert first == first_again
    assert first != second
    with pytest.raises(ValueError, match="epoch"):
        pipeline.set_epoch(-1)


def test_uniform_samples_batch_with_default_collate(tmp_path):
    with ShardWriter(tmp_path, "subjects", max_count=3) as writer:
        for index in range(4):
            writer.write(make_subject(f"s{index}", seed=index))
    loader = torch.utils.data.DataLoader(make_subject_pipeline(tmp_path), batch_size=2, num_workers=0)
    batches = list(loader)
    assert len(batches) == 2
    assert batches[0]["views"].shape == (2, 3, 3, 16, 16)
    assert batches[0]["K"].shape == (2, 3, 3, 3)
    assert batches[0]["smpl"]["betas"].shape == (2, 10)
    assert batches[1]["__key__"] == ["thuman21__s2", "thuman21__s3"]
