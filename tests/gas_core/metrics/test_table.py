"""Results tables: markdown / CSV like the paper's, and a JSON record that traces every number."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest

from gas_core.metrics.table import (
    FVD,
    LPIPS,
    PAPER_METRICS,
    PSNR,
    SSIM,
    ResultRow,
    ResultsTable,
    describe_checkpoint,
    describe_split,
    grouped_columns,
    write_results_table,
)


@pytest.fixture()
def checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "unet.pth").write_bytes(b"weights")
    (folder / "config.json").write_text("{}")
    return folder


def _table(tmp_path, checkpoint) -> ResultsTable:
    split_file = tmp_path / "thuman_test.json"
    split_file.write_text('{"ids": ["0001", "0002"]}')
    ours = describe_checkpoint(checkpoint)
    rows = (
        ResultRow("Before diffusion", {"PSNR": 24.2512, "SSIM": 0.92512, "LPIPS": 0.0731, "FVD": 517.74}, ours,
                  {"output": "nerf"}),
        ResultRow("After diffusion", {"PSNR": 28.8249, "SSIM": 0.9541, "LPIPS": 0.0392, "FVD": 191.26}, ours,
                  {"output": "diffusion"}),
        ResultRow("Champ (published)", {"PSNR": 20.96, "SSIM": 0.909}),
    )
    return ResultsTable("Novel view synthesis, THuman2.1", "thuman", "novel_view", PAPER_METRICS, rows,
                        describe_split("thuman/test", split_file, 2), {"input_views": (0, 5, 10, 15), "resolution": 512})


def test_markdown_rounds_like_the_paper_and_marks_the_best(tmp_path, checkpoint):
    markdown = _table(tmp_path, checkpoint).to_markdown()
    lines = markdown.splitlines()
    assert lines[2] == "| Method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | FVD ↓ |"
    assert lines[4] == "| Before diffusion | 24.25 | 0.925 | 0.073 | 517.7 |"
    assert lines[5] == "| After diffusion | **28.82** | **0.954** | **0.039** | **191.3** |"
    assert lines[6] == "| Champ (published) | 20.96 | 0.909 | – | – |"
    assert "thuman/test" in markdown and "2 ids" in markdown


def test_files_and_record_trace_every_number(tmp_path, checkpoint):
    table = _table(tmp_path, checkpoint)
    files = write_results_table(table, tmp_path / "results", "table4_nvs")
    record = json.loads(files.record.read_text())
    assert record["format"] == "gas-results" and record["dataset"] == "thuman" and record["task"] == "novel_view"
    assert record["split"]["sha256"] == hashlib.sha256((tmp_path / "thuman_test.json").read_bytes()).hexdigest()
    assert record["settings"] == {"input_views": [0, 5, 10, 15], "resolution": 512}
    before = record["rows"][0]
    assert before["settings"] == {"output": "nerf"} and before["values"]["PSNR"] == 24.2512
    assert before["checkpoint"]["path"] == str(checkpoint) and len(before["checkpoint"]["sha256"]) == 64
    assert record["rows"][2]["checkpoint"] is None
    assert record["files"]["markdown"]["sha256"] == hashlib.sha256(files.markdown.read_bytes()).hexdigest()
    assert record["files"]["csv"]["sha256"] == hashlib.sha256(files.csv.read_bytes()).hexdigest()
    rows = list(csv.DictReader(io.StringIO(files.csv.read_text())))
    assert rows[1]["method"] == "After diffusion" and float(rows[1]["FVD"]) == 191.26
    assert rows[2]["LPIPS"] == "" and rows[2]["checkpoint"] == ""
    assert not list((tmp_path / "results").glob(".*.tmp"))


def test_checkpoint_hash_follows_contents(tmp_path, checkpoint):
    before = describe_checkpoint(checkpoint)
    (checkpoint / "unet.pth").write_bytes(b"other weights")
    after = describe_checkpoint(checkpoint)
    assert before.sha256 != after.sha256 and after.size_bytes == len(b"other weights") + 2
    assert describe_checkpoint(checkpoint / "unet.pth").sha256 == hashlib.sha256(b"other weights").hexdigest()
    assert describe_checkpoint(checkpoint, hash_contents=False).sha256 is None
    with pytest.raises(FileNotFoundError):
        describe_checkpoint(tmp_path / "absent")


def test_grouped_columns_give_the_wide_paper_layout():
    columns = grouped_columns(("THuman", "2K2K"))
    assert [c.key for c in columns[:4]] == ["PSNR/THuman", "PSNR/2K2K", "SSIM/THuman", "SSIM/2K2K"]
    table = ResultsTable("Table 1", "thuman+2k2k", "novel_view", columns,
                         (ResultRow("Ours", {"PSNR/THuman": 26.77, "PSNR/2K2K": 28.82}),))
    assert "| Method | PSNR ↑ THuman | PSNR ↑ 2K2K | SSIM ↑ THuman |" in table.to_markdown()
    assert "| Ours | 26.77 | 28.82 | – |" in table.to_markdown()  # one row: nothing to mark as best


def test_bad_tables_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown columns"):
        ResultsTable("t", "d", "x", (PSNR,), (ResultRow("a", {"SSIM": 0.9}),))
    with pytest.raises(ValueError, match="distinct method"):
        ResultsTable("t", "d", "x", (PSNR,), (ResultRow("a", {}), ResultRow("a", {})))
    with pytest.raises(ValueError, match="values"):
        ResultRow("a", {"PSNR": float("nan")})
    table = ResultsTable("t", "d", "x", (SSIM, LPIPS, FVD), (ResultRow("a", {"FVD": 1.0}, settings={"f": object()}),))
    with pytest.raises(ValueError, match="JSON"):
        write_results_table(table, tmp_path, "t")
    assert not list(tmp_path.iterdir())  # nothing written when the record cannot be
    with pytest.raises(ValueError, match="stem"):
        write_results_table(ResultsTable("t", "d", "x", (PSNR,), ()), tmp_path, "../t")


def test_region_columns_are_labelled_and_their_legend_is_required():
    from dataclasses import replace

    box = replace(PSNR, region="box", region_label="person box")
    paper = replace(PSNR, region="paper", region_label="paper protocol")
    assert (box.key, box.heading) == ("PSNR@box", "PSNR ↑ (person box)")
    assert grouped_columns(("THuman",), (box,))[0].key == "PSNR/THuman@box"
    rows = (ResultRow("A", {"PSNR@paper": 21.0, "PSNR@box": 14.0}), ResultRow("B", {"PSNR@paper": 20.0, "PSNR@box": 15.0}))
    with pytest.raises(ValueError, match="legend must explain every column region, missing \\['box', 'paper'\\]"):
        ResultsTable("t", "thuman", "novel_view", (paper, box), rows)
    table = ResultsTable("t", "thuman", "novel_view", (paper, box), rows,
                         legend={"paper": "background painted", "box": "inside the mask's box"})
    lines = table.to_markdown().splitlines()
    assert lines[2] == "| Method | PSNR ↑ (paper protocol) | PSNR ↑ (person box) |"
    assert lines[4:6] == ["| A | **21.00** | 14.00 |", "| B | 20.00 | **15.00** |"]
    assert "- *person box*: inside the mask's box" in lines
    assert table.record()["legend"] == {"paper": "background painted", "box": "inside the mask's box"}
    with pytest.raises(ValueError, match="region must hold only"):
        replace(PSNR, region="person box")
