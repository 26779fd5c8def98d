"""The app under test: tiny random-weight models, a data root with clip shards, the server on a free
loopback port (module scope: started once per test module)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipelines.generate import load_generate_config
from shards.schema import CLIP_SCHEMA, VIDEO_SCHEMA
from shards.writer import ShardWriter
from tests.pipelines.test_generate import body_model, checkpoints, reference_files  # noqa: F401  (fixtures)
from tests.pipelines.test_bake_nerf_pose import video_from_subject
from tests.shards.samples import make_clip, make_subject

#: Generation settings of the app under test: the tiny preset made cheaper still.
APP_OVERRIDES = ("sampling.steps=2", "nerf.reference_size=32", "num_views=4")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_clip_folder(folder: Path | str, count: int = 5) -> Path | str:
    """``count`` clip samples (view and pose modes) with a quality value each, 2 per shard."""
    with ShardWriter(folder, "clips", CLIP_SCHEMA, max_count=2) as writer:
        for index in range(count):
            clip = make_clip(f"s{index}", mode=("view", "pose")[index % 2], size=16, n_frames=3, seed=index)
            clip.meta["extra"] = {"quality": {"mask_iou": 0.5 + 0.1 * index, "sharpness": 10.0 - index}}
            writer.write(clip)
    return folder


def write_video_folder(folder: Path, frames: int = 3) -> Path:
    """Two segments (0 and 1) of ``frames`` frames of one monocular video (keys ``synthvideo__v0__seg00N``)."""
    subject = make_subject("v0", n_views=2, size=16, seed=4)
    with ShardWriter(folder, "videos", VIDEO_SCHEMA) as writer:
        for segment in (0, 1):
            writer.write(video_from_subject(subject, (0,), frames, segment=segment))
    return folder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data root with clip shards (shards/clips) and video shards (shards/videos)."""
    root = tmp_path_factory.mktemp("data")
    write_clip_folder(root / "shards" / "clips")
    write_video_folder(root / "shards" / "videos")
    return root


@pytest.fixture(scope="module")
def remote_root(tmp_path_factory) -> str:
    """A remote data root with 3 clip samples in ``clips/`` (fsspec's in-memory file system stands in for
    s3://; the app runs in this process), one per test module."""
    root = f"memory://gas-app-test/{tmp_path_factory.mktemp('remote').name}"
    write_clip_folder(f"{root}/clips", count=3)
    return root


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, data_root, remote_root, checkpoints):  # noqa: F811
    """(the launched Blocks, its URL, the output folder)."""
    from pipelines.app import AppSettings, close_app, launch_app

    nerf_dir, gas_dir = checkpoints
    out_dir = tmp_path_factory.mktemp("app-out")
    settings = AppSettings(port=free_port(), data_roots=(str(data_root), remote_root), out_dir=out_dir, nerf=nerf_dir,
                           diffusion=gas_dir, config=load_generate_config(preset="tiny", overrides=APP_OVERRIDES),
                           max_upload_mb=2)
    blocks, url = launch_app(settings)
    yield blocks, url, out_dir
    close_app(blocks)
