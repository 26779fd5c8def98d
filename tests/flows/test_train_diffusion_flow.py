"""The ``train-diffusion`` flow: torchrun command lines, log streaming, config transport, submission."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flows import train_diffusion as flow_module
from flows.train_diffusion import resolve_config, stream_process, submit_training, torchrun_command, train_diffusion
from pipelines.train_diffusion import DiffusionTrainConfig, config_to_yaml, load_train_config
from shards.schema import CLIP_SCHEMA
from shards.writer import ShardWriter
from tests.shards.samples import make_clip


def test_torchrun_command_single_and_multi_node(tmp_path):
    single = torchrun_command(tmp_path / "c.yaml", nproc_per_node=8, python="python")
    assert single == ["python", "-m", "torch.distributed.run", "--nproc_per_node", "8", "--standalone",
                      "-m", "pipelines.train_diffusion", "--config", str(tmp_path / "c.yaml")]
    multi = torchrun_command("c.yaml", nproc_per_node=8, nnodes=2, node_rank=1, rdzv_endpoint="node0:29400",
                             rdzv_id="abc", python="python")
    assert multi[multi.index("--nnodes") + 1] == "2" and multi[multi.index("--node_rank") + 1] == "1"
    assert multi[multi.index("--rdzv_endpoint") + 1] == "node0:29400" and "--standalone" not in multi
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        torchrun_command("c.yaml", nproc_per_node=1, nnodes=2, node_rank=0)
    with pytest.raises(ValueError, match="nproc_per_node"):
        torchrun_command("c.yaml", nproc_per_node=0)


def test_stream_process_forwards_lines_as_they_come():
    lines: list[str] = []
    code, tail = stream_process([sys.executable, "-c", "import sys; print('a'); print('b', file=sys.stderr); print('c')"],
                                lines.append)
    assert code == 0 and lines == ["a", "b", "c"] and tail == lines
    code, _ = stream_process([sys.executable, "-c", "raise SystemExit(3)"], lines.append)
    assert code == 3


def test_config_travels_as_yaml_text():
    config = load_train_config(preset="tiny", overrides=["max_steps=7", "data.clips=[x]"])
    again = resolve_config(preset="paper", config_yaml=config_to_yaml(config), overrides=["batch_size=3"], out_dir="elsewhere")
    assert again == DiffusionTrainConfig(**{**config.__dict__, "batch_size": 3, "out_dir": "elsewhere"})


def test_submit_calls_run_deployment_once_per_node(monkeypatch):
    calls = []

    def fake_run_deployment(name, parameters, timeout):
        calls.append((name, parameters, timeout))
        return f"run-{parameters['node_rank']}"

    import prefect.deployments

    monkeypatch.setattr(prefect.deployments, "run_deployment", fake_run_deployment)
    config = load_train_config(preset="tiny", overrides=["max_steps=5"])
    runs = submit_training(config, nnodes=2, rdzv_endpoint="node0:29400", nproc_per_node=4)
    assert runs == ["run-0", "run-1"]
    assert [call[0] for call in calls] == [flow_module.DEPLOYMENT_NAME] * 2
    first, second = calls[0][1], calls[1][1]
    assert (first["node_rank"], second["node_rank"]) == (0, 1) and first["rdzv_id"] == second["rdzv_id"]
    assert first["nnodes"] == 2 and first["nproc_per_node"] == 4 and calls[0][2] == 0
    assert resolve_config(config_yaml=first["config_yaml"]) == config
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        submit_training(config, nnodes=2)


@pytest.mark.slow
def test_flow_runs_torchrun_locally_and_streams_its_log(tmp_path):
    with ShardWriter(tmp_path / "clips", "clips", CLIP_SCHEMA) as writer:
        for index, mode in enumerate(["view", "pose"]):
            writer.write(make_clip(f"s{index}", mode=mode, size=64, n_frames=4, seed=index))
    out_dir = tmp_path / "run"
    state = train_diffusion(preset="tiny", overrides=[f"data.clips=[{tmp_path / 'clips'}]", "max_steps=2",
                                                      "logging.sample_every_steps=0"],
                            out_dir=str(out_dir), nproc_per_node=1, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert Path(result["latest_checkpoint"]).name == "step-00000002"
    assert Path(result["final_dir"]).is_dir()
    assert load_train_config(Path(result["config_file"]), preset="paper").max_steps == 2
