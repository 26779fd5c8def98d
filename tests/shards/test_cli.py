"""``gas-shards`` inspect / ls / show / verify, called through ``main([...])``."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shards.cli import main
from shards.writer import ShardWriter
from tests.shards.samples import make_subject


@pytest.fixture
def shard_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "subjects"
    with ShardWriter(folder, "subjects", max_count=2) as writer:
        for index in range(5):
            dataset = ("thuman21", "2k2k")[index % 2]
            writer.write(make_subject(f"s{index}", dataset=dataset, seed=index, with_optional=index == 1))
    return folder


def test_inspect_from_manifest_and_from_files(shard_folder, capsys):
    assert main(["inspect", str(shard_folder)]) == 0
    text = capsys.readouterr().out
    assert "schema:   subject v1" in text
    assert "shards:   3   samples: 5" in text
    assert "datasets: 2k2k=2, thuman21=3" in text
    assert "subjects-000002.tar" in text and "sha256" in text

    assert main(["inspect", "--json", str(shard_folder / "*.tar")]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["from"] == "scan"
    assert report["samples"] == 5
    assert report["datasets"] == {"2k2k": 2, "thuman21": 3}
    assert [shard["samples"] for shard in report["shards"]] == [2, 2, 1]
    assert "2k2k__s3" in report["keys"]


def test_ls_one_line_per_sample(shard_folder, capsys):
    assert main(["ls", str(shard_folder)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6  # header + 5 samples
    fields = lines[2].split()
    assert fields[:4] == ["2k2k__s1", "2k2k", "s1", "3"]
    assert int(fields[4]) > 1000
    assert fields[5] == "subjects-000000.tar"


def test_show_writes_a_contact_sheet(shard_folder, tmp_path, capsys):
    out = tmp_path / "sheets" / "s1.png"
    assert main(["show", str(shard_folder), "2k2k__s1", "--out", str(out), "--tile", "32"]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        sheet = np.asarray(image)
    # title + rows for views, masks, normals: 3 rows of 3 tiles of 32 px plus labels
    assert sheet.shape[1] >= 3 * 32 and sheet.shape[0] >= 3 * 32 + 12
    assert sheet.shape[0] < 4 * (32 + 12 + 4) + 20
    assert sheet.std() > 10  # real image content, not a blank canvas
    assert main(["show", str(shard_folder), "nobody__x", "--out", str(out)]) == 2


def test_verify_good_folder(shard_folder, capsys):
    assert main(["verify", str(shard_folder)]) == 0
    text = capsys.readouterr().out
    assert text.count("OK ") == 3
    assert "verified 3 shards, 5 samples: all good" in text


def test_verify_truncated_shard_names_it(shard_folder, capsys):
    broken = shard_folder / "subjects-000001.tar"
    with tarfile.open(broken) as archive:
        members = archive.getmembers()
    middle = members[len(members) // 2]
    broken.write_bytes(broken.read_bytes()[: middle.offset_data + middle.size // 2])  # cut inside the data
    assert main(["verify", str(shard_folder)]) == 1
    text = capsys.readouterr().out
    bad_lines = [line for line in text.splitlines() if line.startswith("BAD")]
    assert bad_lines and all("subjects-000001.tar" in line for line in bad_lines)
    assert "manifest says" in text
    # the file alone, without the manifest checks, still fails on decoding
    assert main(["verify", str(broken)]) == 1


def test_verify_catches_changed_bytes_and_bad_samples(shard_folder, capsys):
    target = shard_folder / "subjects-000002.tar"
    with tarfile.open(target) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("view01.png"))
    data = bytearray(target.read_bytes())
    data[member.offset_data + 20] ^= 0xFF  # same size, damaged PNG payload
    target.write_bytes(bytes(data))
    assert main(["verify", str(shard_folder)]) == 1
    text = capsys.readouterr().out
    assert "subjects-000002.tar: sha256 differs" in text
    assert "subjects-000002.tar sample thuman21__s4: view01.png: not a readable PNG" in text


def test_verify_reports_unlisted_and_missing_shards(shard_folder, capsys):
    (shard_folder / "subjects-000000.tar").rename(shard_folder / "stray-000000.tar")
    assert main(["verify", str(shard_folder)]) == 1
    text = capsys.readouterr().out
    assert "stray-000000.tar: shard is not listed in manifest.json" in text
    assert "subjects-000000.tar: listed in manifest.json but missing" in text


def test_bad_path_exits_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.tar")]) == 2
    assert "error:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["frobnicate"])


def test_write_contact_sheets_one_png_per_sample(shard_folder, tmp_path):
    from shards.contact_sheet import write_contact_sheets

    paths = write_contact_sheets(shard_folder, tmp_path / "sheets", tile=16)
    assert [Path(p).name for p in paths] == [
        "thuman21__s0.png", "2k2k__s1.png", "thuman21__s2.png", "2k2k__s3.png", "thuman21__s4.png"
    ]
    with Image.open(paths[1]) as with_normals, Image.open(paths[0]) as without:
        assert with_normals.height > without.height  # the normal-map row is drawn only when present
    assert len(write_contact_sheets(shard_folder, tmp_path / "two", limit=2)) == 2


def test_inspect_clips_reports_modes_maker_and_show_draws_the_strip(tmp_path: Path, capsys):
    from shards.schema import CLIP_SCHEMA
    from tests.shards.samples import make_clip

    folder = tmp_path / "clips"
    with ShardWriter(folder, "clips", schema=CLIP_SCHEMA, manifest_extra={"nerf_checkpoint": "runs/nerf/step-100"}) as writer:
        for index, mode in enumerate(["view", "view", "pose"]):
            writer.write(make_clip(f"s{index}", mode=mode, seed=index))
    assert main(["inspect", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "schema:   clip v1" in text
    assert "modes:    pose=1, view=2" in text
    assert "made by:  nerf_checkpoint=runs/nerf/step-100" in text
    assert main(["verify", str(folder)]) == 0
    capsys.readouterr()
    out = tmp_path / "strip.png"
    assert main(["show", str(folder), "thuman21__s2__pose000", "--out", str(out), "--tile", "16"]) == 0
    strip = np.asarray(Image.open(out))
    # rows: frames, nerf, normals, masks, reference, reference_mask (+ title)
    assert strip.shape[0] >= 6 * 16 and strip.shape[1] >= 4 * 16


def test_inspect_prints_quality_distribution_and_names_outliers(tmp_path: Path, capsys):
    folder = tmp_path / "subjects"
    with ShardWriter(folder, "subjects") as writer:
        for index in range(9):
            sample = make_subject(f"s{index}", seed=index)
            coverage = 0.0017 if index == 4 else 0.12 + 0.002 * index
            bounds = {"mask_coverage_min": [0.01, None], "height_m": [0.8, 1.7]}
            sample.meta["extra"] = {"quality": {"mask_coverage_min": coverage, "height_m": 1.6 + 0.02 * index},
                                    "gates": {"status": "ok", "bounds": bounds}}
            writer.write(sample)
    assert main(["inspect", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "mask_coverage_min" in text and "height_m" in text
    assert "outlier:  thuman21__s4: mask_coverage_min = 0.0017" in text
    assert text.count("outlier:") == 1
    # outside the sample's own gate bounds (packed by an override): named whatever the distribution
    assert "gate:     thuman21__s4: mask_coverage_min = 0.0017 outside its gate (min 0.01" in text
    assert "gate:     thuman21__s8: height_m = 1.76 outside its gate (max 1.7" in text
    assert "gates:    ok=9" in text
    assert main(["inspect", "--json", str(folder)]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["quality"]["height_m"]["n"] == 9 and report["quality"]["height_m"]["outliers"] == []
    assert main(["inspect", "--no-samples", str(folder)]) == 0
    assert "quality:" not in capsys.readouterr().out


def test_too_few_values_name_no_statistical_outlier():
    from shards.cli import OUTLIER_MIN_SAMPLES, quality_summary

    few = [("short", 1.2)] + [(f"k{i}", 1.80 + 0.01 * i) for i in range(OUTLIER_MIN_SAMPLES - 2)]
    assert quality_summary({"height_m": few})["height_m"]["outliers"] == []
    many = few + [("one-more", 1.83)]
    assert [key for key, _ in quality_summary({"height_m": many})["height_m"]["outliers"]] == ["short"]


class _ClosedPipe:
    """A stdout whose reader has gone, as `gas-shards ls DIR | head -3` leaves it."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise ValueError("no file descriptor")


def test_ls_into_a_closed_pipe_ends_quietly(shard_folder, monkeypatch):
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert main(["ls", str(shard_folder)]) == 0  # no BrokenPipeError escapes, no "error:" line is attempted
