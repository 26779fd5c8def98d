"""prefect.yaml declares the deployments that `gas serve` serves and `prefect deploy` deploys."""

from pathlib import Path

import pytest

from flows.deployments import DeploymentSpec, load_deployment_specs

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_declares_the_preprocess_deployments():
    specs = {spec.name: spec for spec in load_deployment_specs(REPO_ROOT / "prefect.yaml")}
    assert set(specs) >= {"thuman", "2k2k", "tiktok", "mvhumannet"}
    for name in ("thuman", "2k2k", "tiktok", "mvhumannet"):
        flow = specs[name].load_flow()
        assert flow.name == "preprocess"
        assert specs[name].parameters["dataset"] == name
        # the declared parameters validate against the flow's signature
        flow.validate_parameters(specs[name].parameters)


def test_deployment_spec_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="entrypoint must look like"):
        DeploymentSpec(name="x", entrypoint="flows.preprocess").module_and_flow
    empty = tmp_path / "prefect.yaml"
    empty.write_text("deployments: []\n")
    with pytest.raises(ValueError, match="declares no deployments"):
        load_deployment_specs(empty)
    with pytest.raises(ValueError, match="not found"):
        load_deployment_specs(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name, flow_name", [("train-nerf", "train-nerf"), ("bake-nerf", "bake-nerf"),
                                             ("train-diffusion", "train-diffusion"), ("evaluate", "evaluate")])
def test_prefect_yaml_declares_the_model_stages_on_the_gpu_pool(name, flow_name):
    import yaml

    document = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    entry = next(item for item in document["deployments"] if item["name"] == name)
    assert entry["work_pool"]["name"] == "gas-gpu"
    spec = next(spec for spec in load_deployment_specs(REPO_ROOT / "prefect.yaml") if spec.name == name)
    flow = spec.load_flow()
    assert flow.name == flow_name
    flow.validate_parameters(spec.parameters)
