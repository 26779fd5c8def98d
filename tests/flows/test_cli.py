"""The `gas` command line: body model, synthetic data and an in-process preprocess run."""

from __future__ import annotations

import pytest

from flows.cli import main
from shards.manifest import load_manifest


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("body", "synth", "preprocess", "serve", "demo", "train-nerf", "bake-nerf", "cache-latents",
                    "train", "splits", "generate", "eval", "app"):
        assert command in out


def test_body_build_reports_the_open_model(open_body_model_dir, capsys):
    assert main(["body", "build", "--out", str(open_body_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "open body model (Anny-derived), not SMPL" in out
    assert str(open_body_model_dir / "SMPL_NEUTRAL.pkl") in out


def test_synth_then_preprocess(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert main(["synth", "2k2k", "--out", str(raw), "-n", "1", "--seed", "3"]) == 0
    assert (raw / "00000" / "00000.ply").is_file()
    out = tmp_path / "shards"
    code = main(["preprocess", "2k2k", str(raw), str(out), "--preset", "tiny",
                 "--set", "orbit.num_views=3", "--set", "orbit.width=96", "--set", "orbit.height=96"])
    assert code == 0, capsys.readouterr()
    manifest = load_manifest(out)
    assert manifest.total_samples == 1 and manifest.dataset_counts == {"2k2k": 1}


def test_preprocess_of_a_missing_folder_fails_with_its_name(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code = main(["preprocess", "thuman", str(missing), str(tmp_path / "out"), "--preset", "tiny"])
    assert code != 0
    captured = capsys.readouterr()
    assert str(missing) in captured.out + captured.err


def test_bad_override_is_a_clear_error(tmp_path, capsys):
    assert main(["preprocess", "thuman", str(tmp_path), str(tmp_path / "o"), "--set", "orbit.nope=1"]) == 2
    assert "unknown config field 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("command, option", [("train-nerf", "--val-shards"), ("bake-nerf", "--checkpoint"),
                                             ("train", "--nproc-per-node"), ("cache-latents", "--part"),
                                             ("generate", "--keep-driver-shape"), ("eval", "--checkpoint"),
                                             ("app", "--data-root")])
def test_stage_commands_show_their_own_options(command, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert option in capsys.readouterr().out


def test_splits_write_the_tiktok_test_split(tmp_path, capsys):
    assert main(["splits", "write", "--out", str(tmp_path), "--dataset", "tiktok"]) == 0
    written = capsys.readouterr().out
    assert "tiktok: 6 test ids" in written
    assert (tmp_path / "tiktok_test.json").is_file()


def test_bake_nerf_reports_bad_arguments_with_exit_code_2(tmp_path, capsys):
    code = main(["bake-nerf", "--subjects", str(tmp_path / "none"), "--out", str(tmp_path / "clips"),
                 "--checkpoint", str(tmp_path / "ckpt"), "--set", "clip.nope=1"])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_synth_tiktok_writes_the_layout_with_ground_truth(tmp_path, capsys, open_body_model_dir):
    assert main(["synth", "tiktok", "--out", str(tmp_path), "-n", "1", "--frames", "3", "--size", "32"]) == 0
    assert "1 synthetic tiktok videos" in capsys.readouterr().out
    assert len(list((tmp_path / "00001" / "images").glob("*.png"))) == 3
    assert (tmp_path / "_groundtruth" / "00001" / "arrays.npz").is_file()



def test_app_needs_both_checkpoints_and_existing_data_roots(tmp_path, capsys):
    assert main(["app", "--nerf", str(tmp_path)]) == 2
    assert "--nerf and --diffusion go together" in capsys.readouterr().err
    assert main(["app", "--data-root", str(tmp_path / "absent"), "--out", str(tmp_path / "out")]) == 2
    assert f"data root {tmp_path / 'absent'} is not an existing folder" in capsys.readouterr().err


@pytest.mark.slow
def test_gas_app_serves_its_page_on_the_loopback_address(tmp_path):
    """``gas app`` as a user starts it: it prints its URL on 127.0.0.1 and serves the page there."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.pipelines.app.conftest import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "app", "--port", str(port), "--data-root",
                                str(tmp_path), "--out", str(tmp_path / "out")], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = ""
        for line in process.stdout:
            if "GAS app on" in line:
                break
        assert f"http://127.0.0.1:{port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as page:
            assert page.status == 200 and b"GAS" in page.read()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


# ------------------------------------------------------------------------------------------- s3:// folders
# `gas cache-latents`, `gas train` and `gas eval` on folders of the S3 test server (tests/s3.py), the
# way a cluster runs them: clips in a bucket, latents cached from one bucket folder to another, training
# streaming them, evaluation reading its clips from the bucket. Each result is compared with the same
# command on a local copy, so a reader that lost or reordered samples would show.


def _upload(local_folder, url: str) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    for path in sorted(local_folder.iterdir()):
        fs.put_file(str(path), f"{root}/{path.name}")


@pytest.mark.usefixtures("one_torch_thread")
def test_cache_latents_and_train_on_s3_folders_match_local_folders(s3_bucket, tmp_path, capsys):
    import numpy as np

    from shards.reader import make_clip_pipeline
    from tests.shards.samples import write_clip_shards

    local_clips = write_clip_shards(tmp_path / "clips", ["view", "pose", "view", "pose"], max_count=2)
    _upload(local_clips, f"{s3_bucket}/clips")
    for source, out in ((f"{s3_bucket}/clips", f"{s3_bucket}/latents"), (str(local_clips), str(tmp_path / "latents"))):
        assert main(["cache-latents", source, out, "--preset", "tiny", "--device", "cpu"]) == 0
        assert "4 clips cached" in capsys.readouterr().out
    remote, local = load_manifest(f"{s3_bucket}/latents"), load_manifest(tmp_path / "latents")
    assert remote.total_samples == 4 and remote.keys == local.keys
    baked = [{clip.key: clip for clip in make_clip_pipeline(folder, decode_to_tensors=False)}
             for folder in (f"{s3_bucket}/latents", tmp_path / "latents")]
    for key, clip in baked[0].items():
        np.testing.assert_allclose(clip.target_latents, baked[1][key].target_latents, rtol=1e-3, atol=1e-3)

    losses = {}
    for name, clips in (("s3", f"{s3_bucket}/latents"), ("local", str(tmp_path / "latents"))):
        out_dir = tmp_path / f"run-{name}"
        code = main(["train", "--preset", "tiny", "--set", f"data.clips=[{clips}]", "--set", f"out_dir={out_dir}",
                     "--set", "max_steps=2", "--set", "logging.sample_every_steps=0", "--set", "logging.tensorboard=false"])
        captured = capsys.readouterr()
        printed = captured.out
        assert code == 0 and "2 steps; final loss" in printed, captured.err
        assert (out_dir / "final").is_dir()
        losses[name] = float(printed.split("final loss ")[1].split(";")[0])
    # same shards in the same order (resampling is seeded by index, not by URL): the same loss to print precision
    assert losses["s3"] == pytest.approx(losses["local"], rel=1e-3, abs=1e-4)


@pytest.mark.filterwarnings("ignore:Arguments other than a weight enum:UserWarning",
                            "ignore:The parameter 'pretrained' is deprecated:UserWarning")
@pytest.mark.usefixtures("one_torch_thread")
def test_eval_reads_its_clips_from_s3(s3_bucket, tmp_path, capsys):
    import json

    from pipelines.evaluate import NERF_ROW
    from tests.pipelines.test_evaluate import metric_overrides, write_eval_inputs

    inputs = write_eval_inputs(tmp_path / "inputs")
    _upload(inputs.clips, f"{s3_bucket}/clips_test")
    tables = {}
    for name, clips in (("s3", f"{s3_bucket}/clips_test"), ("local", str(inputs.clips))):
        out = tmp_path / f"eval-{name}"
        argv = ["eval", "--clips", clips, "--split", str(inputs.thuman_split), "--checkpoint", f"Ours={inputs.checkpoint}",
                "--out", str(out), "--preset", "tiny"]
        for item in metric_overrides(inputs, i3d=False):
            argv += ["--set", item]
        assert main(argv) == 0, capsys.readouterr()
        tables[name] = json.loads((out / "thuman_novel_view.json").read_text())
    values = {name: {(row["method"], key): value for row in table["rows"] for key, value in row["values"].items()}
              for name, table in tables.items()}
    assert {method for method, _ in values["s3"]} == {NERF_ROW, "Ours"} and ("Ours", "PSNR@paper") in values["s3"]
    assert values["s3"] == pytest.approx(values["local"])
