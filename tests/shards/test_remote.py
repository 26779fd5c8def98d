"""The storage seam: a file's folder and name, glob patterns, on a local disk and an fsspec URL alike."""

from __future__ import annotations

import pytest

from shards.remote import Folder, glob_locations, split_location, write_bytes_atomic


@pytest.mark.parametrize("base", ["local", "memory"])
def test_files_are_found_and_named_the_same_way_on_both_storages(base, tmp_path):
    root = str(tmp_path / "data") if base == "local" else f"memory://seam-{tmp_path.name}/data"
    folder = Folder(root)
    for name in ("a/one.tar", "a/two.tar", "b/three.tar", "b/note.txt"):
        write_bytes_atomic(folder.join(*name.split("/")), name.encode())
    parent, name = split_location(folder.join("a", "two.tar"))
    assert name == "two.tar" and parent.location == folder.join("a") and parent.read_bytes(name) == b"a/two.tar"
    assert glob_locations(folder.join("*", "*.tar")) == [folder.join("a", "one.tar"), folder.join("a", "two.tar"),
                                                          folder.join("b", "three.tar")]
    assert glob_locations(folder.join("b", "t*")) == [folder.join("b", "three.tar")]
    assert glob_locations(folder.join("c", "*.tar")) == []
    assert folder.child("a").glob("*.tar") == ["one.tar", "two.tar"]


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="location"):
        split_location("memory://bucket/folder/")
    with pytest.raises(ValueError, match="pattern"):
        glob_locations("memory://bucket/folder/file.tar")


def test_iter_chunks_on_memory_and_local_storage(tmp_path):
    data = bytes(range(256)) * 50
    for location in (f"memory://chunks-{tmp_path.name}", str(tmp_path / "chunks")):
        folder = Folder(location)
        folder.makedirs()
        folder.write_atomic("blob.bin", data)
        assert folder._open_streamed("blob.bin") is None  # no streamed back end: plain reads
        chunks = list(folder.iter_chunks("blob.bin", 5000))
        assert b"".join(chunks) == data
        assert [len(chunk) for chunk in chunks] == [5000, 5000, 2800]
    with pytest.raises(ValueError, match="chunk_bytes"):
        Folder(str(tmp_path)).iter_chunks("blob.bin", 0)
