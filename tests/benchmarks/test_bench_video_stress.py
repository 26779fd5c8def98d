"""bench_video_stress: the segment bookkeeping (broken, packed, rejected), the seed rule, and a --quick run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_video_stress.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_video_stress", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_broken_segments_are_counted_packed_or_rejected(bench):
    Score = bench.SegmentScore
    scores = [
        Score("1", packed=True, mask_iou=0.9, pa_mpjpe_mm=40.0, accel_error=3.0, accel_truth=5.0, identity_kept=1.0),
        Score("1", packed=True, mask_iou=0.3, pa_mpjpe_mm=90.0, accel_error=3.0, accel_truth=5.0, identity_kept=1.0),
        Score("2", packed=False, mask_iou=0.95, pa_mpjpe_mm=50.0, accel_error=3.0, accel_truth=5.0, identity_kept=0.5),
        Score("2", packed=False, mask_iou=0.9, pa_mpjpe_mm=50.0, accel_error=3.0, accel_truth=5.0, identity_kept=1.0),
        Score("3", packed=False),  # dropped by the video path: not scored
    ]
    assert [s.broken for s in scores[:4]] == [False, True, True, False]
    summary = bench.summary(scores)
    assert summary["segments"] == 5 and summary["broken_packed"] == 1
    assert summary["broken_rejected"] == 1  # the rejected switch
    assert summary["unscored_rejected"] == 1  # the segment turned down before a fit: counted apart
    assert summary["healthy_rejected"] == pytest.approx(50.0)
    assert summary["worst_iou"] == pytest.approx(0.3)
    assert summary["identity_kept"] == pytest.approx(100 * 3.5 / 4)


def test_rejected_segments_are_listed_with_their_reason(bench, capsys):
    Score = bench.SegmentScore
    bench.print_rejected([
        Score("stress/00001", packed=True, mask_iou=0.9, identity_kept=1.0),
        Score("stress/00002", packed=False, mask_iou=0.93, identity_kept=1.0,
              reason="segment 0 (frames 0-23): rejected by the quality gates (area_jump 0.4 > 0.3: a mask jump)"),
        Score("stress/00003", packed=False, reason="segment 1 (frames 24-47): rejected, 3 of 24 frames without a single clear person"),
    ])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| stress/")]
    assert len(rows) == 2  # the packed segment is not listed
    assert rows[0].startswith("| stress/00002 | 0.930 | yes | rejected by the quality gates (area_jump")
    assert rows[1].startswith("| stress/00003 | nan |  | rejected, 3 of 24 frames")


def test_tuning_seeds_are_refused(bench, tmp_path):
    with pytest.raises(SystemExit, match="tuned"):
        bench.write_sets(tmp_path, 1, 4, 32, seed=bench.TUNING_SEEDS[0])


def test_set_overrides_reach_the_config(bench):
    args = bench.parse_args(["--quick", "--set", "video.masks.mediapipe.motion_search_iou=0.25",
                             "--set", "video.gates.enforce=false"])
    config = bench.bench_config(args)
    assert config.video.masks.mediapipe.motion_search_iou == pytest.approx(0.25)
    assert config.video.gates.enforce is False
    assert config.video.segment_frames == 24 and config.video.max_side == 128  # --quick's sizes stay
    with pytest.raises(ValueError, match="motion_search_iou"):
        bench.bench_config(bench.parse_args(["--set", "video.masks.mediapipe.motion_search_iou=2"]))


@pytest.mark.slow
def test_quick_run_prints_the_table_and_targets(bench, open_body_model_dir, capsys):
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "| own | true keypoints | 2 |" in out and "| stress | true keypoints | 2 |" in out
    assert "zero broken segments packed" in out and "stress/own PA-MPJPE" in out
