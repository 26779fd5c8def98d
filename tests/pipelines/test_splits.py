"""Test splits: the paper's rules, configurable, written and read back as JSON and text split files."""

from __future__ import annotations

import json

import pytest

from pipelines.config import load_config
from pipelines.splits import (
    HoldOut,
    NovelPoseProtocol,
    SplitsConfig,
    TestSplit,
    available_ids,
    choose_reference_frames,
    make_split,
    orthogonal_views,
    read_split,
    write_split,
    write_test_splits,
)

THUMAN_IDS = [f"{i:04d}" for i in range(2445)]


def test_paper_rules_choose_the_documented_ids():
    config = SplitsConfig.paper()
    thuman = make_split("thuman", config, list(reversed(THUMAN_IDS)))
    assert thuman.ids == tuple(f"{i:04d}" for i in range(2345, 2445))
    assert thuman.task == "novel_view" and thuman.available_count == 2445
    assert thuman.protocol["input_views"] == [0, 5, 10, 15] and thuman.protocol["mask_background"] is True
    twok2k = make_split("2k2k", config, [f"{i:05d}" for i in range(2050)])
    assert len(twok2k.ids) == 50 and twok2k.ids[0] == "02000" and twok2k.protocol["mask_background"] is False
    tiktok = make_split("tiktok", config)
    assert tiktok.ids == ("00335", "00336", "00337", "00338", "00339", "00340") and tiktok.task == "novel_pose"
    mvhumannet = make_split("mvhumannet", config, [str(100000 + i) for i in range(944)])
    assert len(mvhumannet.ids) == 48 and mvhumannet.ids[-1] == "100943"


def test_numeric_order_not_text_order():
    assert HoldOut("last", count=2).select(["9", "10", "100", "11"]) == ("11", "100")
    assert HoldOut("first", count=2).select(["9", "10", "100", "11"]) == ("9", "10")


def test_seeded_selection_is_reproducible_and_sorted():
    first = HoldOut("seeded", count=100, seed=3).select(THUMAN_IDS)
    assert first == HoldOut("seeded", count=100, seed=3).select(list(reversed(THUMAN_IDS)))
    assert first != HoldOut("seeded", count=100, seed=4).select(THUMAN_IDS)
    assert list(first) == sorted(first, key=int) and len(set(first)) == 100


def test_range_and_listed_rules_check_the_dataset(tmp_path):
    present = [f"{i:05d}" for i in range(330, 340)]
    with pytest.raises(ValueError, match=r"\[340\]"):
        HoldOut("range", first_id=335, last_id=340).select(present)
    assert HoldOut("range", first_id=335, last_id=336).select(present) == ("00335", "00336")
    (tmp_path / "test.txt").write_text("# the release's test list\n00332\n\n00331\n")
    rule = HoldOut("listed", ids=("00333",), list_file=str(tmp_path / "test.txt"))
    assert rule.select(present) == ("00331", "00332", "00333")
    with pytest.raises(ValueError, match="00999"):
        HoldOut("listed", ids=("00999",)).select(present)


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="selection"):
        HoldOut("random", count=3)
    with pytest.raises(ValueError, match="count"):
        HoldOut("last")
    with pytest.raises(ValueError, match="only 3"):
        HoldOut("last", count=5).select(["1", "2", "3"])
    with pytest.raises(ValueError, match="needs the dataset's ids"):
        HoldOut("last", count=1).select(None)
    with pytest.raises(ValueError, match="multiple of 4"):
        orthogonal_views(10)


def test_config_loads_from_yaml_and_overrides(tmp_path):
    (tmp_path / "splits.yaml").write_text("thuman:\n  holdout:\n    selection: seeded\n    seed: 5\n")
    config = load_config(SplitsConfig, tmp_path / "splits.yaml", preset="paper",
                         overrides=["tiktok.holdout.last_id=336", "twok2k.protocol.input_views=[0, 10]"])
    assert config.thuman.holdout.selection == "seeded" and config.thuman.holdout.seed == 5
    assert config.thuman.holdout.count == 100
    assert make_split("tiktok", config).ids == ("00335", "00336")
    assert config.twok2k.protocol.input_views == (0, 10)
    tiny = load_config(SplitsConfig, preset="tiny")
    assert tiny.thuman.protocol.num_views == 8 and tiny.thuman.protocol.input_views == (0, 2, 4, 6)


def test_reference_frames_leave_the_following_frames():
    protocol = NovelPoseProtocol(frames_after_reference=100, seed=0)
    counts = {"00335": 101, "00336": 350, "00337": 900}
    frames = choose_reference_frames(counts, protocol)
    assert frames["00335"] == 0
    assert all(0 <= frames[s] <= counts[s] - 101 for s in counts)
    assert frames == choose_reference_frames(dict(reversed(list(counts.items()))), protocol)
    assert choose_reference_frames({"00336": 350}, protocol) == {"00336": frames["00336"]}
    with pytest.raises(ValueError, match="00338"):
        choose_reference_frames({"00338": 100}, protocol)


@pytest.mark.parametrize("suffix", [".json", ".txt"])
def test_split_files_round_trip(tmp_path, suffix):
    config = SplitsConfig.paper()
    split = make_split("tiktok", config, frame_counts={f"{i:05d}": 300 + i for i in range(335, 341)})
    path = write_split(split, tmp_path / f"tiktok_test{suffix}")
    assert read_split(path) == split
    assert read_split(path, dataset="tiktok").reference_frames == split.reference_frames
    with pytest.raises(ValueError, match="expected 'thuman'"):
        read_split(path, dataset="thuman")
    again = write_split(make_split("tiktok", config, frame_counts={f"{i:05d}": 300 + i for i in range(335, 341)}),
                        tmp_path / f"again{suffix}")
    assert again.read_bytes() == path.read_bytes()  # no timestamps: same rule, same bytes


def test_plain_id_list_reads_with_a_dataset(tmp_path):
    (tmp_path / "ids.txt").write_text("0002\n0001\n")
    split = read_split(tmp_path / "ids.txt", dataset="thuman")
    assert split.ids == ("0002", "0001") and split.task == "novel_view"
    assert split.sample_keys() == ("thuman__0002", "thuman__0001")
    with pytest.raises(ValueError, match="names no dataset"):
        read_split(tmp_path / "ids.txt")
    (tmp_path / "other.json").write_text(json.dumps({"format": "gas-split", "version": 2}))
    with pytest.raises(ValueError, match="version 2"):
        read_split(tmp_path / "other.json")


def test_write_test_splits_from_raw_folders(tmp_path):
    thuman = tmp_path / "THuman2.1" / "model"
    for subject in ("0000", "0001", "0002"):
        (thuman / subject).mkdir(parents=True)
        (thuman / subject / f"{subject}.obj").write_text("v 0 0 0\n")
    mvhumannet = tmp_path / "MVHumanNet"
    for capture in ("100001", "100002", "_cache"):
        (mvhumannet / capture).mkdir(parents=True)
    assert available_ids("mvhumannet", mvhumannet) == ["100001", "100002"]
    config = load_config(SplitsConfig, preset="tiny")
    written = write_test_splits(config, tmp_path / "splits",
                                {"thuman": tmp_path / "THuman2.1", "mvhumannet": mvhumannet},
                                datasets=("thuman", "tiktok", "mvhumannet"))
    assert read_split(written["thuman"]).ids == ("0002",)
    assert read_split(written["tiktok"]).ids == ("00335",)
    assert read_split(written["mvhumannet"]).ids == ("100002",)
    with pytest.raises(ValueError, match="2k2k: selection 'last' needs the raw dataset folder"):
        write_test_splits(config, tmp_path / "splits", {}, datasets=("2k2k",))
    with pytest.raises(ValueError, match="dataset"):
        TestSplit("kinetics", "novel_pose", ("1",))
