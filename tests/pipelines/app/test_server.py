"""``gas app`` driven through ``gradio_client`` on a free loopback port: a tiny-model generation, the Shards
tab against ``gas-shards inspect``, and refused uploads and paths."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shards.cli import main as shards_main

gradio_client = pytest.importorskip("gradio_client")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def client(app_server):
    _, url, _ = app_server
    return gradio_client.Client(url, verbose=False)


def _generate(client, reference_files, *, photo=None, mask="default", mode="novel views", poses=None, views=4,
              segment=(None, None)):
    from gradio_client import handle_file

    mask = reference_files.mask if mask == "default" else mask
    return client.predict(handle_file(str(photo or reference_files.image)), handle_file(str(mask)) if mask else None,
                          handle_file(str(reference_files.smpl)), handle_file(str(reference_files.camera)), mode, views,
                          handle_file(str(poses)) if poses else None, *segment, 2, 0, 2.0, api_name="/generate")


def _ffprobe_frames(video: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(video)], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip())


def _generations(out_dir: Path) -> list[Path]:
    folder = out_dir / "generations"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_generation_returns_an_mp4_strip_and_frames_zip(client, app_server, reference_files):
    _, _, out_dir = app_server
    video, strip, archive, status = _generate(client, reference_files)
    video_path = Path(video["video"] if isinstance(video, dict) else video)
    assert _ffprobe_frames(video_path) == 4
    assert np.asarray(Image.open(strip)).shape[0] > 64  # three rows of 64 px: NeRF, normal maps, output
    with zipfile.ZipFile(archive) as frames:
        names = frames.namelist()
        record = json.loads(frames.read("generation.json"))
    assert sorted(n for n in names if n.startswith("frames/")) == [f"frames/frame_{i:04d}.png" for i in range(4)]
    assert record["frames"] == 4 and record["mode"] == "view" and record["config"]["sampling"]["steps"] == 2
    assert "4 frames" in status
    written = _generations(out_dir)
    assert len(written) == 1 and (written[0] / "video.mp4").is_file()


def test_novel_poses_from_an_uploaded_pose_file_or_a_video_segment_under_a_data_root(client, reference_files,
                                                                                     tmp_path):
    from tests.pipelines.test_generate import driver_sequence

    poses = driver_sequence(tmp_path / "driver.json", 5)
    video, _, archive, _ = _generate(client, reference_files, mode="novel poses", poses=poses)
    assert _ffprobe_frames(Path(video["video"] if isinstance(video, dict) else video)) == 5
    # segment 1 of the video shards: its 3 frames drive the reference (frame 0, the reference pose, is dropped)
    video, _, archive, _ = _generate(client, reference_files, mode="novel poses",
                                     segment=("shards/videos", "synthvideo__v0__seg001"))
    assert _ffprobe_frames(Path(video["video"] if isinstance(video, dict) else video)) == 3
    with zipfile.ZipFile(archive) as frames:
        record = json.loads(frames.read("generation.json"))
    assert record["mode"] == "pose" and record["frames"] == 3 and record["inputs"]["poses"].endswith("poses.npz")


def test_generations_wait_for_each_other_on_one_device(client, app_server, reference_files):
    """Two requests at once through the page's API both finish; the worker runs one generation at a time."""
    from gradio_client import handle_file

    from pipelines.app import GenerationRequest

    files = [handle_file(str(path)) for path in (reference_files.image, reference_files.mask, reference_files.smpl,
                                                 reference_files.camera)]
    jobs = [client.submit(*files, "novel views", views, None, None, None, 2, 0, 2.0, api_name="/generate")
            for views in (3, 5)]
    for job, views in zip(jobs, (3, 5)):
        with zipfile.ZipFile(job.result(timeout=300)[2]) as frames:
            assert json.loads(frames.read("generation.json"))["frames"] == views
    worker = app_server[0].gas_app.worker
    queued = [worker.submit(GenerationRequest(reference_files, num_views=views, steps=2)) for views in (3, 4)]
    assert [job.result(timeout=300)[0].num_frames for job in queued] == [3, 4]
    first, second = sorted(queued, key=lambda job: job.started_at)
    assert first.finished_at <= second.started_at


@pytest.mark.parametrize("bad, message", [
    ("corrupt_photo", "photo.png is not a readable image"),
    ("small_mask", "mask.png is 32x32 but the image is 64x64"),
    ("fake_video", "driving video dance.mp4 is not readable"),
    ("no_smpl", "estimators.keypoint_weights"),
])
def test_bad_uploads_are_refused_with_a_clear_message_and_no_output(client, app_server, reference_files, tmp_path,
                                                                      bad, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, _, out_dir = app_server
    before = _generations(out_dir)
    with pytest.raises(AppError) as refused:
        if bad == "corrupt_photo":
            photo = tmp_path / "photo.png"
            photo.write_bytes(Path(reference_files.image).read_bytes()[:60])
            _generate(client, reference_files, photo=photo)
        elif bad == "small_mask":
            mask = tmp_path / "mask.png"
            Image.open(reference_files.mask).resize((32, 32)).save(mask)
            _generate(client, reference_files, mask=mask)
        elif bad == "fake_video":
            video = tmp_path / "dance.mp4"
            video.write_bytes(b"this is not a video" * 50)
            _generate(client, reference_files, mode="novel poses", poses=video)
        else:
            client.predict(handle_file(str(reference_files.image)), handle_file(str(reference_files.mask)), None, None,
                           "novel views", 4, None, None, None, 2, 0, 2.0, api_name="/generate")
    text = str(refused.value)
    assert message in text and "Traceback" not in text and "/tmp/" not in text
    assert _generations(out_dir) == before  # nothing half-written


def test_shards_tab_counts_equal_gas_shards_inspect(client, data_root, capsys):
    folder = data_root / "shards" / "clips"
    assert shards_main(["inspect", "--json", str(folder)]) == 0
    expected = json.loads(capsys.readouterr().out)[0]
    summary, report, histogram, table, key = client.predict("shards/clips", api_name="/inspect")
    assert (report["samples"], report["datasets"], report["modes"]) == (5, expected["datasets"], expected["modes"])
    assert [s["samples"] for s in report["shards"]] == [s["samples"] for s in expected["shards"]] == [2, 2, 1]
    assert report["quality"] == expected["quality"] and report["samples"] == expected["samples"]
    assert "5 samples" in summary and "modes: pose=2, view=3" in summary
    assert Image.open(histogram).size[1] > 100  # one histogram per quality value
    assert sorted(row[0] for row in table["data"]) == expected["keys"]
    assert key["choices"][0][0] == key["value"] == table["data"][0][0]
    # search, then a sample's contact sheet and meta.json
    table, key = client.predict("shards/clips", "s3", api_name="/search")
    assert [row[2] for row in table["data"]] == ["s3"] and key["value"] == table["data"][0][0]
    sheet, meta = client.predict("shards/clips", key["value"], api_name="/show_sample")
    assert meta["subject_id"] == "s3" and meta["mode"] == "pose"
    assert Image.open(sheet).size[0] > 3 * 16  # the clip's frames side by side
    verdict, text = client.predict(str(folder), api_name="/verify")
    assert "All good" in verdict and "verified 3 shards, 5 samples: all good" in text


def test_shards_tab_reads_a_remote_data_root(client, remote_root):
    summary, report, _, table, key = client.predict(f"{remote_root}/clips", api_name="/inspect")
    assert report["samples"] == 3 and len(table["data"]) == 3 and "3 samples" in summary
    sheet, meta = client.predict(f"{remote_root}/clips", key["value"], api_name="/show_sample")
    assert meta["subject_id"] == "s0" and Image.open(sheet).size[0] > 3 * 16
    verdict, text = client.predict(f"{remote_root}/clips", api_name="/verify")
    assert "All good" in verdict and "3 samples: all good" in text


def test_paths_outside_the_data_roots_are_refused(client, app_server, data_root, tmp_path):
    from gradio_client.exceptions import AppError

    _, url, _ = app_server
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the browser")
    link = data_root / "link-out"
    if not link.exists():
        os.symlink(outside, link)
    for typed, message in (("../../etc/passwd", "'..' is not allowed"), ("/etc/passwd", "not under a data root"),
                           ("link-out", "outside its data root"), ("s3://bucket/x", "not under a data root")):
        with pytest.raises(AppError, match=message):
            client.predict(typed, api_name="/inspect")
    # Gradio's file route serves the data roots, and nothing outside them and the output folder, symlinks included.
    with urllib.request.urlopen(f"{url}gradio_api/file={data_root}/shards/clips/manifest.json", timeout=30) as served:
        assert json.loads(served.read())["schema"]["name"] == "clip"
    for path in ("/etc/passwd", str(link / "secret.txt"), f"{data_root}/../{tmp_path.name}/outside/secret.txt"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=30)
        assert refused.value.code in (403, 404)


def test_uploads_over_the_size_limit_are_refused(client, app_server, reference_files, tmp_path):
    """The app under test allows 2 MiB: Gradio refuses a larger upload, and the app's own check names it."""
    from pipelines.app import UploadRefused, check_uploads
    from pipelines.generate import GenerateConfig, GenerateInputs

    big = tmp_path / "big.png"
    big.write_bytes(Path(reference_files.image).read_bytes() + b"\0" * (3 * 2**20))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client reads the page's limit
        _generate(client, reference_files, photo=big)
    import httpx

    with big.open("rb") as stream:  # the server enforces it too
        response = httpx.post(f"{app_server[1]}gradio_api/upload", files={"files": ("big.png", stream)}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size" in response.text
    with pytest.raises(UploadRefused, match=r"photo big.png is 3.0 MiB; the limit is 2 MiB"):
        check_uploads(GenerateInputs(image=big), GenerateConfig.tiny(), 2 * 2**20)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(UploadRefused, match=r"photo notes.txt: expected a .png / .jpg"):
        check_uploads(GenerateInputs(image=notes), GenerateConfig.tiny(), 2 * 2**20)
