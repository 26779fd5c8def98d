"""The app under test: tiny random-weight models, a data root with clip shards, the server on a free
loopback port (module scope: started once per test module)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipelines.generate import load_generate_config
from shards.schema import CLIP_SCHEMA
from shards.writer import ShardWriter
from tests.pipelines.test_generate import body_model, checkpoints, reference_files  # noqa: F401  (fixtures)
from tests.shards.samples import make_clip

#: Generation settings of the app under test: the tiny preset made cheaper still.
APP_OVERRIDES = ("sampling.steps=2", "nerf.reference_size=32", "num_views=4")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_clip_folder(folder: Path, count: int = 5) -> Path:
    """``count`` clip samples (view and pose modes) with a quality value each, 2 per shard."""
    with ShardWriter(folder, "clips", CLIP_SCHEMA, max_count=2) as writer:
        for index in range(count):
            clip = make_clip(f"s{index}", mode=("view", "pose")[index % 2], size=16, n_frames=3, seed=index)
            clip.meta["extra"] = {"quality": {"mask_iou": 0.5 + 0.1 * index, "sharpness": 10.0 - index}}
            writer.write(clip)
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_clip_folder(root / "shards" / "clips")
    return root


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, data_root, checkpoints):  # noqa: F811
    """(the launched Blocks, its URL, the output folder)."""
    from pipelines.app import AppSettings, close_app, launch_app

    nerf_dir, gas_dir = checkpoints
    out_dir = tmp_path_factory.mktemp("app-out")
    settings = AppSettings(port=free_port(), data_roots=(str(data_root),), out_dir=out_dir, nerf=nerf_dir,
                           diffusion=gas_dir, config=load_generate_config(preset="tiny", overrides=APP_OVERRIDES),
                           max_upload_mb=2)
    blocks, url = launch_app(settings)
    yield blocks, url, out_dir
    close_app(blocks)
