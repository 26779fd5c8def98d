"""The Kubernetes base job templates of the ``gas-cpu`` and ``gas-gpu`` work pools (docker/k8s/*.json).

Each is checked against the default template that ``prefect-kubernetes`` generates (every default variable
kept, the same job_configuration keys), accepted by a Prefect API as a work pool's base job template (what
``prefect work-pool create --base-job-template FILE`` does), and rendered into a Job manifest with the
worker's own code, which must carry the image, the storage Secret, the shared /data claim and, on the GPU
pool, the GPU limit.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

K8S_DIR = Path(__file__).resolve().parents[1] / "docker" / "k8s"
POOLS = ("gas-cpu", "gas-gpu")
IMAGE = "registry.example.org/gas/{pool}:test"


def load(pool: str) -> dict[str, Any]:
    return json.loads((K8S_DIR / f"{pool}.json").read_text(encoding="utf-8"))


async def _create_pools_and_render() -> dict[str, dict[str, Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.objects import FlowRun

    manifests = {}
    async with get_client() as client:
        for pool in POOLS:
            template = load(pool)
            # Server-side validation: every {{ placeholder }} of job_configuration is a declared variable.
            name = f"{pool}-{uuid.uuid4().hex[:8]}"
            await client.create_work_pool(WorkPoolCreate(name=name, type="kubernetes", base_job_template=template))
            try:
                stored = (await client.read_work_pool(name)).base_job_template
                config = await KubernetesWorkerJobConfiguration.from_template_and_values(
                    stored, {"image": IMAGE.format(pool=pool)}, client=client)
                config.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="test-run", flow_id=uuid.uuid4()))
                manifests[pool] = config.job_manifest
            finally:
                await client.delete_work_pool(name)
    return manifests


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    return asyncio.run(_create_pools_and_render())


@pytest.mark.parametrize("pool", POOLS)
def test_template_keeps_the_default_schema(pool: str):
    default = KubernetesWorker.get_default_base_job_template()
    template = load(pool)
    assert set(template) == set(default)
    assert set(template["job_configuration"]) == set(default["job_configuration"])
    properties = template["variables"]["properties"]
    missing = sorted(set(default["variables"]["properties"]) - set(properties))
    assert not missing, f"{pool}: default variables dropped: {missing}"
    for name, schema in default["variables"]["properties"].items():
        ours = {key: value for key, value in properties[name].items() if key not in ("default", "description")}
        theirs = {key: value for key, value in schema.items() if key not in ("default", "description")}
        assert ours == theirs, f"{pool}: variable {name!r} changed type"
    assert template["variables"]["definitions"] == default["variables"]["definitions"]
    assert properties["image"]["default"] == f"{pool}:latest"


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    assert manifest["kind"] == "Job"
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("pool", POOLS)
def test_rendered_job_has_image_secret_and_shared_volume(manifests, pool: str):
    manifest = manifests[pool]
    container = _container(manifest)
    assert container["image"] == IMAGE.format(pool=pool)
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert {"secretRef": {"name": "gas-storage"}} in container["envFrom"]
    pod = manifest["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"] == {"claimName": "gas-data"}
    assert manifest["metadata"]["namespace"] == "gas"
    assert "{{" not in json.dumps(manifest), "a placeholder was left unrendered"


def test_gpu_limit_only_on_the_gpu_pool(manifests):
    gpu = _container(manifests["gas-gpu"])["resources"]
    assert int(gpu["limits"]["nvidia.com/gpu"]) == 1
    cpu = _container(manifests["gas-cpu"])["resources"]
    assert "nvidia.com/gpu" not in cpu.get("limits", {})
    assert cpu["requests"]["cpu"] == "4"


def test_gpu_count_is_a_job_variable():
    async def render() -> dict[str, Any]:
        config = await KubernetesWorkerJobConfiguration.from_template_and_values(load("gas-gpu"), {"gpu_count": 8})
        return config.job_manifest

    assert int(_container(asyncio.run(render()))["resources"]["limits"]["nvidia.com/gpu"]) == 8
