"""``gas demo``: the whole pipeline, as far as it exists, on synthetic data with the embedded defaults.

1. build the open body model (Anny-derived, SMPL file format) when missing;
2. synthesise a few THuman2.1 and 2K2K subjects in the real on-disk layouts;
3. preprocess both datasets through the Prefect flow ``preprocess`` (render 20 views, fit, shard);
4. print the shard summary and the fit errors, and write one contact sheet per subject
   (views, masks, and the fitted body's normal maps).
"""

from __future__ import annotations

import time
from pathlib import Path

from flows.preprocess import preprocess
from pipelines.body import build_body_model
from pipelines.preprocess import load_preprocess_config
from pipelines.synth import synthesize_dataset
from shards.cli import main as shards_cli
from shards.contact_sheet import write_contact_sheets

__all__ = ["run_demo"]

DATASETS = ("thuman", "2k2k")


def run_demo(out: Path, *, num_subjects: int = 2, preset: str = "paper") -> int:
    """Run the demo into ``out``; returns a process exit code (0 when every subject succeeded)."""
    if num_subjects < 1:
        raise ValueError(f"num_subjects must be >= 1, got {num_subjects}")
    out = Path(out)
    started = time.perf_counter()
    body_dir = build_body_model()
    print(f"[1/4] body model: {body_dir / 'SMPL_NEUTRAL.pkl'} (open body model (Anny-derived), not SMPL)")

    for index, dataset in enumerate(DATASETS):
        refs = synthesize_dataset(dataset, out / "raw" / dataset, num_subjects=num_subjects, seed=1000 * (index + 1))
        print(f"[2/4] synthetic {dataset}: {len(refs)} subjects in {out / 'raw' / dataset}")

    config = load_preprocess_config(preset=preset)
    shard_dir = out / "shards" / "subjects"
    exit_code = 0
    for dataset in DATASETS:
        state = preprocess(dataset=dataset, raw_root=str(out / "raw" / dataset), out_dir=str(shard_dir),
                           config=config, return_state=True)
        summary = state.result(raise_on_failure=False)
        if not state.is_completed():
            exit_code = 1
            print(f"[3/4] preprocess {dataset}: {state.name}: {state.message}")
            continue
        print(f"[3/4] preprocess {dataset}: {summary['processed']} processed, {summary['skipped']} skipped, "
              f"{len(summary['failed'])} failed")
        for row in summary.get("reports", []):
            print(f"        {row['subject_id']}: joint error {row['joint_error_cm']} cm, "
                  f"keypoint error {row['keypoint_error_px']} px, render {row['render_s']} s, fit {row['fit_s']} s")

    print("[4/4] shards:")
    shards_cli(["inspect", str(shard_dir)])
    sheets = write_contact_sheets(shard_dir, out / "contact_sheets")
    for path in sheets:
        print(f"        contact sheet: {path}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s; outputs in {out}")
    return exit_code
