"""The ``evaluate`` flow: one task per row and split, tables on disk and a table artifact; failing rows reported."""

from __future__ import annotations

import json

import pytest

from flows.evaluate import evaluate_flow, main_from_args
from pipelines.evaluate import NERF_ROW, load_eval_config
from tests.pipelines.test_evaluate import metric_overrides, write_eval_inputs

pytestmark = [pytest.mark.filterwarnings("ignore:Arguments other than a weight enum:UserWarning"),
              pytest.mark.filterwarnings("ignore:The parameter 'pretrained' is deprecated:UserWarning"),
              pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_eval_inputs(tmp_path_factory.mktemp("eval-flow-inputs"))


def _latest_table_artifact(key: str) -> list[dict]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        latest = max(artifacts, key=lambda artifact: artifact.created)
        return json.loads(latest.data) if isinstance(latest.data, str) else latest.data

    return asyncio.run(read())


def test_flow_writes_the_table_and_its_artifact_and_reports_a_bad_checkpoint(inputs, tmp_path):
    config = load_eval_config(preset="tiny", overrides=metric_overrides(inputs, i3d=False))
    state = evaluate_flow(clips=[str(inputs.clips)], splits=[str(inputs.thuman_split)], out_dir=str(tmp_path),
                          checkpoints=[f"Ours={inputs.checkpoint}", f"Broken={tmp_path / 'absent'}"], config=config,
                          return_state=True)
    assert state.is_failed() and "Broken" in state.message and "absent" in state.message
    summary = state.result(raise_on_failure=False)["thuman_novel_view"]
    assert set(summary["rows"]) == {NERF_ROW, "Ours"}
    assert set(summary["rows"]["Ours"]) == {"PSNR@paper", "SSIM@paper", "LPIPS@paper", "PSNR@box", "SSIM@box",
                                            "LPIPS@box"} and "FVD" in summary["missing_metrics"]
    assert (tmp_path / "thuman_novel_view.md").is_file() and (tmp_path / "thuman_novel_view.json").is_file()
    rows = _latest_table_artifact("eval-thuman-novel-view")
    assert [row["method"] for row in rows] == [NERF_ROW, "Ours"]
    assert rows[1]["PSNR ↑ (paper protocol)"] == pytest.approx(summary["rows"]["Ours"]["PSNR@paper"])
    assert rows[1]["PSNR ↑ (person box)"] == pytest.approx(summary["rows"]["Ours"]["PSNR@box"])
    assert rows[1]["FVD ↓ (paper protocol)"] is None

    # the CLI entry runs the same flow; everything is cached now, so nothing is generated again
    argv = ["--clips", str(inputs.clips), "--split", str(inputs.thuman_split), "--checkpoint", f"Ours={inputs.checkpoint}",
            "--out", str(tmp_path), "--preset", "tiny"]
    for item in metric_overrides(inputs, i3d=False):
        argv += ["--set", item]
    assert main_from_args(argv) == 0
    record = json.loads((tmp_path / "thuman_novel_view.json").read_text())
    assert record["rows"][1]["values"]["PSNR@box"] == summary["rows"]["Ours"]["PSNR@box"]
    assert main_from_args([*argv, "--no-prefect"]) == 0  # the plain pipeline, same cache
    assert main_from_args([*argv, "--set", "sampling.num_steps=0"]) == 2
