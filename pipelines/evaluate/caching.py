"""The per-clip result cache: fingerprints, cache paths, reading cached scores and ground-truth I3D features."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipelines.evaluate.metrics import MetricSuite
from pipelines.evaluate.protocols import EvalPlan
from pipelines.evaluate.scoring import ClipScore


_CACHE_FORMAT = "gas-eval-clip"
#: Version of the cached per-clip scores (2: person-box values added); part of every clip's fingerprint.
_SCORE_VERSION = 2


def _settings_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _cache_path(out_dir: Path, plan: EvalPlan, row_id: str, key: str) -> Path:
    return Path(out_dir) / "cache" / plan.name / row_id / f"{key}.json"


def _read_cached(path: Path, fingerprint: str) -> ClipScore | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("format") != _CACHE_FORMAT or record.get("fingerprint") != fingerprint or \
            not record.get("score", {}).get("box_psnr"):
        return None
    return ClipScore.from_json(record["score"])


def _load_target_features(path: Path, target_id: str, metrics: MetricSuite) -> bool:
    """Put the ground truth's cached I3D features into ``metrics.target_features`` when ``path`` holds
    them for ``target_id``; returns whether it did."""
    if metrics.i3d is None or not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if record.get("format") != _CACHE_FORMAT or record.get("fingerprint") != target_id:
        return False
    metrics.target_features[target_id] = tuple(float(v) for v in record["features"])
    return True
