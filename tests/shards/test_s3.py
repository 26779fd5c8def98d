"""Shards on a real S3 API server (moto, :mod:`tests.s3`): writer, manifest, lock, reader and ``gas-shards``."""

from __future__ import annotations

import json
import threading

import pytest

from shards.cli import main
from shards.manifest import ShardEntry, load_manifest, record_shard
from shards.reader import iter_shard_samples, resolve_shard_urls
from shards.remote import Folder, StorageError
from shards.schema import SUBJECT_SCHEMA, decode
from shards.writer import ShardWriter
from tests.shards.samples import make_subject


def test_write_read_and_gas_shards_on_s3(s3_bucket, tmp_path, capsys):
    url = f"{s3_bucket}/subjects"
    with ShardWriter(url, "subjects", max_count=2) as writer:
        for index in range(5):
            writer.write(make_subject(f"s{index}", seed=index))
    manifest = load_manifest(url)
    assert [entry.count for entry in manifest.shards] == [2, 2, 1]
    urls = resolve_shard_urls(url)
    assert urls == [f"{url}/subjects-00000{i}.tar" for i in range(3)]
    keys = [decode(sample).key for shard in urls for sample in iter_shard_samples(shard)]
    assert keys == [f"thuman21__s{i}" for i in range(5)]

    assert main(["inspect", "--json", url]) == 0
    assert json.loads(capsys.readouterr().out)[0]["samples"] == 5
    assert main(["verify", url]) == 0
    assert "BAD" not in capsys.readouterr().out
    sheet = tmp_path / "sheet.png"
    assert main(["show", url, "thuman21__s3", "--out", str(sheet)]) == 0
    assert sheet.stat().st_size > 0

    # a shard that the manifest does not list is named by verify
    Folder(url).fs.copy(f"{url}/subjects-000000.tar", f"{url}/subjects-000009.tar")
    assert main(["verify", url]) == 1
    assert "subjects-000009.tar: shard is not listed in manifest.json" in capsys.readouterr().out


def test_interrupted_upload_leaves_nothing_listed(s3_bucket):
    url = f"{s3_bucket}/subjects"
    with pytest.raises(RuntimeError, match="connection lost"):
        with ShardWriter(url, "subjects", max_count=2) as writer:
            for index in range(3):
                writer.write(make_subject(f"s{index}", seed=index))
            raise RuntimeError("connection lost")  # mid-shard: the second shard holds one sample
    folder = Folder(url)
    assert [entry.file for entry in load_manifest(url).shards] == ["subjects-000000.tar"]
    assert folder.list() == ["manifest.json", "subjects-000000.tar"]

    # a killed writer leaves a temporary object at worst: the next writer removes it and continues
    with folder.open("subjects-000001.tar.tmp", "wb") as stream:
        stream.write(b"partial")
    with ShardWriter(url, "subjects", max_count=2) as writer:
        writer.write(make_subject("s2", seed=2))
    assert folder.list() == ["manifest.json", "subjects-000000.tar", "subjects-000001.tar"]
    assert main(["verify", url]) == 0


def test_manifest_updates_from_concurrent_writers_are_all_kept(s3_bucket):
    url = f"{s3_bucket}/clips"
    entries = [ShardEntry(f"rank{rank}-000000.tar", 1, 10, "0" * 64, (f"k{rank}",)) for rank in range(6)]
    threads = [threading.Thread(target=record_shard, args=(Folder(url), entry, SUBJECT_SCHEMA)) for entry in entries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(entry.file for entry in load_manifest(url).shards) == sorted(entry.file for entry in entries)
    assert ".manifest.lock" not in Folder(url).list()


def test_preflight_names_a_missing_bucket_and_bad_credentials(s3_server, s3_bucket, monkeypatch):
    with pytest.raises(StorageError, match=r"s3://no-such-bucket-here/out: cannot write here \(the bucket does not exist"):
        Folder("s3://no-such-bucket-here/out").check_writable()
    import moto.settings

    from tests.s3 import reset_s3_clients

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server checks keys from now on
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
    reset_s3_clients()
    try:
        with pytest.raises(StorageError, match=rf"{s3_bucket}/out: cannot write here \(access denied, check the credentials"):
            Folder(f"{s3_bucket}/out").check_writable()
    finally:
        monkeypatch.undo()
        reset_s3_clients()
    Folder(f"{s3_bucket}/out").check_writable()


def test_iter_chunks_streams_one_request_and_keeps_chunk_sizes(s3_bucket):
    folder = Folder(f"{s3_bucket}/blobs")
    data = bytes(range(256)) * 4000 + b"tail"  # 1,024,004 bytes
    folder.write_atomic("blob.bin", data)
    assert folder._open_streamed("blob.bin") is not None  # s3fs streams: one GET for the whole object
    chunks = list(folder.iter_chunks("blob.bin", 100_000))
    assert b"".join(chunks) == data
    assert [len(chunk) for chunk in chunks[:-1]] == [100_000] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= 100_000
    with pytest.raises(FileNotFoundError):
        next(folder.iter_chunks("missing.bin", 1000))


def test_iter_chunks_reads_on_with_ranged_requests_when_the_stream_breaks(s3_bucket, monkeypatch, caplog):
    folder = Folder(f"{s3_bucket}/blobs")
    data = bytes(range(251)) * 2000
    folder.write_atomic("blob.bin", data)
    opened = folder._open_streamed

    def breaking(name):
        stream = opened(name)
        original, delivered = stream.read, [0]

        async def read(length=-1):  # the connection drops once 100,000 bytes have come through
            if delivered[0] >= 100_000:
                raise ConnectionResetError("peer went away")
            data = await original(min(length, 100_000 - delivered[0]))
            delivered[0] += len(data)
            return data
        stream.read = read
        return stream

    monkeypatch.setattr(folder, "_open_streamed", breaking)
    with caplog.at_level("WARNING", logger="shards.remote"):
        chunks = list(folder.iter_chunks("blob.bin", 100_000))
    assert b"".join(chunks) == data  # the first 100,000 bytes streamed, the rest from ranged reads
    assert len(chunks[0]) == 100_000
    assert "stream broke at byte 100000" in caplog.text
