"""``gas demo``'s hold-out step: a second run in the same folder leaves the held-out subject out of the training root."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from flows.demo import _hold_out


def _synthesise(root: Path, subject_id: str) -> SimpleNamespace:
    folder = root / "model" / subject_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{subject_id}.obj").write_text("v 0 0 0\n")
    (root / "_groundtruth").mkdir(exist_ok=True)
    (root / "_groundtruth" / f"{subject_id}.json").write_text("{}")
    return SimpleNamespace(subject_id=subject_id, path=folder)


def test_hold_out_twice_in_the_same_folder_leaves_no_subject_without_ground_truth(tmp_path):
    raw, heldout = tmp_path / "raw" / "thuman", tmp_path / "raw" / "heldout" / "thuman"
    for _ in range(2):  # the second run synthesises the held-out subject again, as a rerun of the demo does
        assert _hold_out(_synthesise(raw, "0002"), heldout) == "0002"
        assert not (raw / "model" / "0002").exists()
        assert not (raw / "_groundtruth" / "0002.json").exists()
        assert (heldout / "model" / "0002" / "0002.obj").is_file()
        assert (heldout / "_groundtruth" / "0002.json").is_file()
