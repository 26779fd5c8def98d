"""What the app may read: :class:`DataRoots` refuses ``..``, paths outside the roots and symlinks leading out."""

from __future__ import annotations

import os

import pytest

from pipelines.app import DataRoots, PathRefused, is_inside, stage_fraction


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "data"
    (root / "shards" / "clips").mkdir(parents=True)
    (root / "shards" / "clips" / "manifest.json").write_text("{}")
    (root / "shards" / "loose").mkdir()
    (root / "shards" / "loose" / "a-000000.tar").write_bytes(b"")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "link-out")
    os.symlink(root / "shards", root / "link-in")
    return DataRoots.from_paths([root, "s3://bucket/prefix/"]), root


def test_paths_inside_the_roots_resolve_to_their_real_location(roots):
    data, root = roots
    assert data.resolve("shards/clips") == str(root / "shards" / "clips")
    assert data.resolve(str(root / "shards" / "clips") + "/") == str(root / "shards" / "clips")
    assert data.resolve("link-in/clips") == str(root / "shards" / "clips")  # a symlink that stays inside
    assert data.resolve("s3://bucket/prefix/clips/") == "s3://bucket/prefix/clips"
    assert data.shard_folders() == [str(root / "shards" / "clips"), str(root / "shards" / "loose")]


@pytest.mark.parametrize("typed, message", [
    ("../../etc/passwd", "'..' is not allowed"),
    ("shards/../../outside", "'..' is not allowed"),
    ("/etc/passwd", "not under a data root"),
    ("link-out", "outside its data root"),
    ("link-out/x", "does not exist"),
    ("absent", "does not exist"),
    ("", "no path given"),
    ("s3://bucket/other", "not under a data root"),
    ("s3://bucket/prefix/../other", "'..' is not allowed"),
])
def test_paths_outside_the_roots_are_refused(roots, typed, message):
    data, _ = roots
    with pytest.raises(PathRefused, match=message):
        data.resolve(typed)


def test_roots_must_exist_and_use_a_known_scheme(tmp_path):
    with pytest.raises(ValueError, match="not an existing folder"):
        DataRoots.from_paths([tmp_path / "absent"])
    with pytest.raises(ValueError, match="scheme 'ftp'"):
        DataRoots.from_paths(["ftp://host/data"])
    assert is_inside(tmp_path / "a" / "b", tmp_path) and not is_inside(tmp_path, tmp_path / "a")


def test_progress_follows_the_stages_in_order():
    points = [("queued", 0, 1), ("loading", 0, 1), ("nerf", 1, 2), ("encoding", 1, 1), ("sampling", 1, 3),
              ("sampling", 3, 3), ("decoding", 1, 1), ("writing", 1, 1)]
    fractions = [stage_fraction(*point) for point in points]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert stage_fraction("sampling", 1, 3) == pytest.approx((2 + 1 / 3) / 4)
