"""Loading any stage's config dataclass: a preset, then a YAML file, then ``KEY=VALUE`` overrides.

Every stage has one frozen dataclass with ``tiny()`` and ``paper()`` presets (for example
:class:`pipelines.preprocess.PreprocessConfig`, :class:`pipelines.bake_nerf.BakeConfig`).
:func:`load_config` builds one the same way for all of them; field assignment (``orbit.width`` into
nested dataclasses, YAML-parsed values, lists to tuples) is :func:`override_field`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["PRESETS", "ModelConfig", "load_config", "override_field", "yaml_assignments"]

#: Preset names every stage config provides as classmethods.
PRESETS = ("tiny", "paper")

ConfigT = TypeVar("ConfigT")


def override_field(config: Any, dotted: str, raw_value: str) -> Any:
    """Return ``config`` with the field at ``dotted`` (``orbit.width``) set to YAML-parsed ``raw_value``.

    Lists become tuples (configs are frozen dataclasses). Raises ValueError naming an unknown field.
    """
    head, _, rest = dotted.partition(".")
    names = {f.name for f in fields(config)}
    if head not in names:
        raise ValueError(f"unknown config field {head!r} in {dotted!r}; known: {sorted(names)}")
    current = getattr(config, head)
    if rest:
        if not is_dataclass(current):
            raise ValueError(f"config field {head!r} has no sub-fields (in {dotted!r})")
        return replace(config, **{head: override_field(current, rest, raw_value)})
    value = yaml.safe_load(raw_value)
    if isinstance(value, list):
        value = tuple(value)
    return replace(config, **{head: value})


def yaml_assignments(path: Path) -> list[tuple[str, str]]:
    """``(dotted.key, yaml_value)`` pairs of a YAML file of nested config fields, in file order."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping of config fields")
    assignments: list[tuple[str, str]] = []

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                flatten(f"{prefix}.{key}" if prefix else str(key), sub)
        else:
            text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            assignments.append((prefix, text))

    flatten("", document)
    return assignments


def load_config(config_class: type[ConfigT], path: Path | str | None = None, *, preset: str = "paper",
                overrides: list[str] | tuple[str, ...] = ()) -> ConfigT:
    """Build a ``config_class``: its ``preset`` (``"tiny"`` or ``"paper"``), then the YAML file's fields
    (nested mappings), then ``KEY=VALUE`` overrides (``clip.width=256``).

    Raises ValueError naming the bad preset, override or field.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    factory = getattr(config_class, preset, None)
    if factory is None:
        raise ValueError(f"config_class {config_class.__name__} has no {preset}() preset")
    config = factory()
    assignments = yaml_assignments(Path(path)) if path is not None else []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override must look like KEY=VALUE, got {item!r}")
        assignments.append((key.strip(), value))
    for key, value in assignments:
        config = override_field(config, key, value)
    return config


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` section of ``gas generate`` and ``gas eval``: the frozen parts of a diffusion checkpoint
    in the official release's layout.

    ``base_svd_dir``: a local diffusers folder of SVD-xt 1.1 img2vid (``unet/`` config, ``vae/``,
    ``image_encoder/``) that supplies the VAE, the CLIP image encoder and the network sizes when a
    checkpoint folder holds ``unet.pth``, ``pose_net.pth``, ``nerf_net.pth``; unused otherwise.
    """

    base_svd_dir: str | None = None

    def __post_init__(self) -> None:
        if self.base_svd_dir is not None and (not isinstance(self.base_svd_dir, str) or not self.base_svd_dir.strip()):
            raise ValueError(f"model.base_svd_dir must be a folder path or null, got {self.base_svd_dir!r}")
