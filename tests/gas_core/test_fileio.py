import pytest

from gas_core.fileio import atomic_directory, atomic_write_bytes


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_atomic_directory_publishes_only_on_success(tmp_path):
    target = tmp_path / "subject"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as folder:
            (folder / "a.txt").write_text("half")
            raise RuntimeError("killed halfway")
    assert not target.exists() and not list(tmp_path.iterdir())
    with atomic_directory(target) as folder:
        (folder / "a.txt").write_text("whole")
    assert (target / "a.txt").read_text() == "whole"
    with pytest.raises(OSError):
        with atomic_directory(target) as folder:
            (folder / "b.txt").write_text("new")
    with atomic_directory(target, replace_existing=True) as folder:
        (folder / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["subject"]
