"""Test-wide settings: headless OpenGL, a shared cache for Anny and the open body model, offline Prefect."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Before anything imports pyrender / PyOpenGL / prefect.
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
os.environ.setdefault("GAS_CACHE_DIR", str(REPO_ROOT / ".cache"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")  # loaded CI machines start slowly
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO_ROOT / ".cache" / "ultralytics"))

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests when no CUDA device is present (they run on a GPU worker)."""
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module of small-model tests (fastest, and the machine is shared): use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def open_body_model_dir() -> Path:
    """Folder with the open (Anny-derived) body model's ``SMPL_NEUTRAL.pkl``, built once and cached."""
    from gas_core.body.open_model import ensure_open_body_model

    return ensure_open_body_model()


@pytest.fixture(scope="session")
def synthetic_thuman_root(tmp_path_factory, open_body_model_dir) -> Path:
    """Three synthetic THuman2.1 subjects (made once per test session; copy before modifying)."""
    from pipelines.synth import synthesize_dataset

    root = tmp_path_factory.mktemp("raw") / "thuman"
    synthesize_dataset("thuman", root, num_subjects=3, seed=7, texture_size=128)
    return root


@pytest.fixture(scope="session")
def synthetic_tiktok_root(tmp_path_factory, open_body_model_dir) -> Path:
    """Two synthetic TikTok sequences (a dance and a walk), 20 frames of 96 px (copy before modifying)."""
    from pipelines.synth_video import synthesize_tiktok

    root = tmp_path_factory.mktemp("raw") / "tiktok"
    synthesize_tiktok(root, num_videos=2, num_frames=20, size=96, seed=3)
    return root


@pytest.fixture(scope="session")
def synthetic_mvhumannet_root(tmp_path_factory, open_body_model_dir) -> Path:
    """One synthetic MVHumanNet capture: 3 cameras x 10 frames of 96 px (copy before modifying)."""
    from pipelines.synth_video import synthesize_mvhumannet

    root = tmp_path_factory.mktemp("raw") / "mvhumannet"
    synthesize_mvhumannet(root, num_subjects=1, num_cameras=3, num_frames=10, size=96, seed=3)
    return root


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API server (moto) on 127.0.0.1 for the whole session; the AWS_* variables point at it."""
    from tests.s3 import S3Server

    server = S3Server().start()
    yield server
    server.stop()
    server.restore_env()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh bucket on :func:`s3_server`, as ``s3://name``."""
    return s3_server.create_bucket()
