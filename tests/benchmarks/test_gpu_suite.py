"""benchmarks/gpu_suite.py: the dry run completes every stage on the CPU; without CUDA a real run refuses at once."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SUITE = REPO_ROOT / "benchmarks" / "gpu_suite.py"
DRY_RUN_STAGES = {"device", "normals_osmesa", "ddp", "nerf_bake", "train_step", "generate"}
ROW_KEYS = {"stage", "value", "unit", "target", "met", "seconds", "status", "note", "details"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def test_dry_run_completes_every_stage(tmp_path: Path, open_body_model_dir: Path):
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, str(SUITE), "--dry-run", "--out", str(out), "--setup-seconds", "12.5"],
                          cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["dry_run"] is True
    stages = report["stages"]
    assert set(stages) == DRY_RUN_STAGES | {"setup"}
    for name, row in stages.items():
        assert set(row) == ROW_KEYS, name
        assert row["stage"] == name
        assert row["status"] == "ok", (name, row["status"])
        assert isinstance(row["value"], float) and math.isfinite(row["value"]) and row["value"] >= 0, (name, row)
        assert isinstance(row["seconds"], float) and row["seconds"] >= 0, (name, row)
        assert row["met"] is None  # targets are for paper sizes on a GPU, not judged in a dry run
    assert stages["setup"]["value"] == 12.5
    assert stages["ddp"]["details"]["backend"] == "gloo"
    assert stages["normals_osmesa"]["details"]["platform"] == "osmesa"
    # the printed table: a header, its rule and one row per stage
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| stage | value | unit | target | met? | seconds |")
    assert {line.split("|")[1].strip() for line in table[2:]} == set(stages)
    assert report["table"] == "\n".join(table)


@pytest.mark.skipif(_cuda_available(), reason="this machine has CUDA: a real run would start measuring")
def test_refuses_without_cuda(tmp_path: Path):
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, str(SUITE), "--out", str(out)], cwd=REPO_ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    message = (done.stdout + done.stderr).strip()
    assert len(message.splitlines()) == 1 and "no CUDA" in message, message
    assert "Traceback" not in message
    assert not out.exists()


@pytest.mark.parametrize("arguments, name", [(["--budget", "0"], "--budget"), (["--stages", "nope"], "--stages"),
                                             (["--setup-seconds", "-1"], "--setup-seconds")])
def test_bad_arguments_name_the_argument(arguments: list[str], name: str):
    sys.path.insert(0, str(SUITE.parent))
    import gpu_suite

    with pytest.raises(ValueError, match=name):
        gpu_suite.main(["--dry-run", *arguments])
