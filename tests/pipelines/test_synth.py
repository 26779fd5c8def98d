"""synthesize_dataset: both layouts, determinism, skipping existing subjects, argument checks."""

from __future__ import annotations

import time

import pytest

from pipelines.datasets.thuman import discover_thuman, read_thuman_subject
from pipelines.datasets.twok2k import discover_twok2k, read_twok2k_subject
from pipelines.synth import synthesize_dataset


def test_thuman_dataset_is_written_readable_and_resumable(tmp_path):
    start = time.perf_counter()
    refs = synthesize_dataset("thuman", tmp_path, num_subjects=2, seed=5, texture_size=32)
    print(f"\nthuman synthesis: {(time.perf_counter() - start) / 2:.2f} s per subject at 32px")
    assert [ref.subject_id for ref in refs] == ["0000", "0001"]
    assert discover_thuman(tmp_path) == refs
    assert sorted(p.name for p in (tmp_path / "_groundtruth").iterdir()) == ["0000.json", "0001.json"]
    obj = tmp_path / "model" / "0001" / "0001.obj"
    stamp = obj.stat().st_mtime_ns
    more = synthesize_dataset("thuman", tmp_path, num_subjects=3, seed=5, texture_size=32)
    assert [ref.subject_id for ref in more] == ["0000", "0001", "0002"]
    assert obj.stat().st_mtime_ns == stamp  # existing subjects are skipped
    assert len(read_thuman_subject(more[2]).mesh.faces) > 0


def test_same_seed_same_files_different_seed_different_files(tmp_path):
    synthesize_dataset("2k2k", tmp_path / "a", num_subjects=1, seed=2)
    synthesize_dataset("2k2k", tmp_path / "b", num_subjects=1, seed=2)
    synthesize_dataset("2k2k", tmp_path / "c", num_subjects=1, seed=3)
    read = lambda root: (root / "00000" / "00000.ply").read_bytes()  # noqa: E731
    assert read(tmp_path / "a") == read(tmp_path / "b")
    assert read(tmp_path / "a") != read(tmp_path / "c")
    (ref,) = discover_twok2k(tmp_path / "a")
    assert read_twok2k_subject(ref).mesh.visual.kind == "vertex"


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        synthesize_dataset("renderpeople", tmp_path, 1)
    with pytest.raises(ValueError, match="num_subjects"):
        synthesize_dataset("thuman", tmp_path, 0)
    with pytest.raises(ValueError, match="seed"):
        synthesize_dataset("thuman", tmp_path, 1, seed=-1)
