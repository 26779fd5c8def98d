"""Serve the deployments declared in ``prefect.yaml`` from one local process (no work pool needed).

``prefect.yaml`` is the single place where deployment names, entrypoints and default parameters
live: ``prefect deploy`` reads it for work pools, and :func:`serve_all` reads it for ``gas serve``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DeploymentSpec", "load_deployment_specs", "serve_all", "default_prefect_yaml"]


@dataclass(frozen=True)
class DeploymentSpec:
    """One entry of ``prefect.yaml``'s ``deployments`` list."""

    name: str
    entrypoint: str  # "flows/preprocess.py:preprocess"
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()

    @property
    def module_and_flow(self) -> tuple[str, str]:
        """``("flows.preprocess", "preprocess")`` for ``flows/preprocess.py:preprocess``."""
        path, _, attribute = self.entrypoint.partition(":")
        if not path.endswith(".py") or not attribute:
            raise ValueError(f"entrypoint must look like 'flows/name.py:flow_function', got {self.entrypoint!r}")
        return path[: -len(".py")].replace("/", "."), attribute

    def load_flow(self):
        module_name, attribute = self.module_and_flow
        return getattr(importlib.import_module(module_name), attribute)


def default_prefect_yaml() -> Path:
    """The repository's ``prefect.yaml`` (``$GAS_PREFECT_YAML`` overrides)."""
    if os.environ.get("GAS_PREFECT_YAML"):
        return Path(os.environ["GAS_PREFECT_YAML"])
    return Path(__file__).resolve().parents[1] / "prefect.yaml"


def load_deployment_specs(path: Path | None = None) -> list[DeploymentSpec]:
    """Parse the ``deployments`` of a ``prefect.yaml``; raises ValueError naming the file when malformed."""
    path = Path(path) if path is not None else default_prefect_yaml()
    if not path.is_file():
        raise ValueError(f"prefect.yaml not found at {path}; pass --prefect-yaml or set GAS_PREFECT_YAML")
    document = yaml.safe_load(path.read_text()) or {}
    entries = document.get("deployments") or []
    if not entries:
        raise ValueError(f"{path} declares no deployments")
    specs = []
    for entry in entries:
        if "name" not in entry or "entrypoint" not in entry:
            raise ValueError(f"{path}: every deployment needs 'name' and 'entrypoint', got {entry}")
        specs.append(DeploymentSpec(
            name=str(entry["name"]),
            entrypoint=str(entry["entrypoint"]),
            parameters=dict(entry.get("parameters") or {}),
            description=str(entry.get("description") or ""),
            tags=tuple(entry.get("tags") or ()),
        ))
    return specs


def serve_all(path: Path | None = None, *, limit: int | None = None) -> None:
    """Register every deployment of ``prefect.yaml`` with the configured Prefect API and run them here.

    Blocks until interrupted. ``limit`` caps concurrent flow runs in this process.
    """
    from prefect import serve
    from prefect.deployments.runner import EntrypointType

    deployments = [
        spec.load_flow().to_deployment(
            name=spec.name,
            parameters=spec.parameters,
            description=spec.description or None,
            tags=list(spec.tags),
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for spec in load_deployment_specs(path)
    ]
    serve(*deployments, limit=limit)
