"""``gas eval``: clip selection by split and protocol, generation, scoring, tables, background masking, resume."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from gas_core.diffusion import GASModel
from gas_core.metrics import LPIPSMetric, composite_on_background, frechet_distance, psnr, ssim
from gas_core.metrics.fvd import InceptionI3d
from pipelines.evaluate import (
    NERF_ROW,
    ClipScore,
    EvalCheckpoint,
    EvalConfig,
    RowResult,
    build_table,
    evaluate,
    generate_clip,
    load_diffusion_checkpoint,
    load_eval_config,
    main_from_args,
    person_boxes,
    parse_checkpoint_argument,
    plan_evaluation,
    write_tables,
)
from pipelines.splits import TestSplit, write_split
from shards.reader import clip_to_tensors, iter_shard_samples
from shards.schema import CLIP_SCHEMA, decode_clip
from shards.writer import ShardWriter
from tests.shards.samples import make_clip

# lpips 0.1.4 passes torchvision's deprecated ``pretrained=False`` (random weights, no download).
pytestmark = [pytest.mark.filterwarnings("ignore:Arguments other than a weight enum:UserWarning"),
              pytest.mark.filterwarnings("ignore:The parameter 'pretrained' is deprecated:UserWarning")]

FRAMES = 10  # >= 9, so the random I3D gives FVD features
SIZE = 64
I3D_CLASSES = 32
VIEW_PROTOCOL = {"num_views": FRAMES, "input_views": [0, 5], "background": 1.0}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _person_clip(dataset: str, subject: str, reference: int, *, mode: str = "view", seed: int = 0,
                 frame_indices: list[int] | None = None):
    """A clip whose frames show a textured box (the person, inside the mask) on a noisy grey background;
    the NeRF frames are a blurred, colour-shifted copy on black, as NeRF renderings are."""
    rng = np.random.default_rng(seed)
    clip = make_clip(subject, dataset, mode=mode, reference_index=reference, n_frames=FRAMES, size=SIZE, seed=seed)
    masks = np.zeros((FRAMES, SIZE, SIZE), np.uint8)
    frames = rng.integers(60, 120, size=(FRAMES, SIZE, SIZE, 3)).astype(np.uint8)
    for f in range(FRAMES):
        left = 14 + (f % 5)
        masks[f, 8:58, left:left + 28] = 255
    person = rng.integers(0, 256, size=(FRAMES, SIZE, SIZE, 3)).astype(np.uint8)
    frames = np.where(masks[..., None] > 0, person, frames)
    nerf = np.clip(frames.astype(np.int16) + rng.integers(-30, 30, size=frames.shape), 0, 255).astype(np.uint8)
    nerf = np.where(masks[..., None] > 0, nerf, 0).astype(np.uint8)
    clip.frames, clip.masks, clip.nerf = frames, masks, nerf
    clip.reference, clip.reference_mask = frames[0], masks[0]
    clip.meta["frame_indices"] = frame_indices or [(reference + i) % FRAMES for i in range(FRAMES)]
    clip.meta["extra"] = {"nerf_checkpoint": "runs/nerf/checkpoint", "nerf_checkpoint_sha256": "ab" * 32}
    return clip


@dataclass(frozen=True)
class EvalInputs:
    clips: Path
    thuman_split: Path
    twok2k_split: Path
    pose_split: Path
    checkpoint: Path
    lpips_weights: Path
    i3d_weights: Path


def write_eval_inputs(root: Path) -> EvalInputs:
    """Clip shards of two datasets (the same images under both names), split files, a tiny random
    diffusion model and random LPIPS (AlexNet) / I3D weights."""
    root.mkdir(parents=True, exist_ok=True)
    with ShardWriter(root / "clips", "clips", CLIP_SCHEMA, max_count=3) as writer:
        for dataset in ("thuman", "2k2k"):
            writer.write(_person_clip(dataset, "0001", 0, seed=1))
            writer.write(_person_clip(dataset, "0001", 3, seed=2))  # not an input view of the protocol
            writer.write(_person_clip(dataset, "0002", 5, seed=3))
            writer.write(_person_clip(dataset, "0009", 0, seed=4))  # not in the split
        writer.write(_person_clip("tiktok", "00335", 4, mode="pose", seed=5, frame_indices=list(range(4, 4 + FRAMES))))
        writer.write(_person_clip("tiktok", "00335", 0, mode="pose", seed=6, frame_indices=list(range(0, FRAMES))))
    splits = root / "splits"
    thuman = write_split(TestSplit("thuman", "novel_view", ("0001", "0002"),
                                   protocol={**VIEW_PROTOCOL, "mask_background": True}), splits / "thuman_test.json")
    twok2k = write_split(TestSplit("2k2k", "novel_view", ("0001", "0002"),
                                   protocol={**VIEW_PROTOCOL, "mask_background": False}), splits / "2k2k_test.json")
    pose = write_split(TestSplit("tiktok", "novel_pose", ("00335",), protocol={"frames_after_reference": 8},
                                 reference_frames={"00335": 4}), splits / "tiktok_test.json")
    GASModel.from_preset("tiny", seed=0).save_pretrained(root / "gas-tiny")
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().features.state_dict(), root / "alexnet_features.pth")
    network = InceptionI3d(num_classes=I3D_CLASSES)  # fewer logits than Kinetics' 400: a faster Fréchet distance
    with torch.no_grad():  # small batch-norm variances amplify, so the random features depend on the input
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_var.fill_(0.1)
    torch.save(network.state_dict(), root / "i3d_pretrained_400.pt")
    return EvalInputs(root / "clips", thuman, twok2k, pose, root / "gas-tiny", root / "alexnet_features.pth",
                      root / "i3d_pretrained_400.pt")


def metric_overrides(inputs: EvalInputs, *, i3d: bool = True) -> list[str]:
    overrides = [f"metrics.lpips_weights={inputs.lpips_weights}", "metrics.lpips_network=alex", "sampling.window=null"]
    return overrides + ([f"metrics.i3d_weights={inputs.i3d_weights}", f"metrics.i3d_num_classes={I3D_CLASSES}"] if i3d else [])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> EvalInputs:
    return write_eval_inputs(tmp_path_factory.mktemp("eval-inputs"))


@pytest.fixture(scope="module")
def evaluated(inputs, tmp_path_factory):
    """One ``gas eval`` run over both view splits with every metric."""
    out = tmp_path_factory.mktemp("eval-out")
    argv = ["--clips", str(inputs.clips), "--split", str(inputs.thuman_split), "--split", str(inputs.twok2k_split),
            "--checkpoint", f"Ours={inputs.checkpoint}", "--out", str(out), "--preset", "tiny"]
    for item in metric_overrides(inputs):
        argv += ["--set", item]
    code = main_from_args(argv)
    assert code == 0
    return out, argv


def _record(out: Path, stem: str) -> dict:
    return json.loads((out / f"{stem}.json").read_text())


def _clip_tensors(inputs: EvalInputs, key: str) -> dict:
    for url in sorted(inputs.clips.glob("*.tar")):
        for raw in iter_shard_samples(url):
            if raw["__key__"] == key:
                return clip_to_tensors(decode_clip({k: v for k, v in raw.items() if not k.startswith("__")}))
    raise KeyError(key)


def _tiny_config(inputs: EvalInputs, *, i3d: bool = True, extra: tuple[str, ...] = ()) -> EvalConfig:
    return load_eval_config(preset="tiny", overrides=[*metric_overrides(inputs, i3d=i3d), *extra])


# ------------------------------------------------------------------------------------------------ config, inputs
def test_config_presets_overrides_and_bad_values(tmp_path):
    tiny = load_eval_config(preset="tiny", overrides=["sampling.num_steps=3", "protocol.mask_background=false"])
    assert tiny.sampling.num_steps == 3 and tiny.protocol.mask_background is False and tiny.device == "cpu"
    paper = EvalConfig.paper()
    assert paper.sampling.num_steps == 25 and paper.sampling.pose_guidance == 2.0
    assert (paper.sampling.view_guidance_min, paper.sampling.view_guidance_max) == (1.0, 2.0)
    assert paper.protocol.frames_after_reference == 100 and paper.protocol.mask_background_datasets == ("thuman",)
    yaml_file = tmp_path / "eval.yaml"
    yaml_file.write_text("sampling:\n  seed: 7\nmetrics:\n  lpips_network: alex\n")
    loaded = load_eval_config(yaml_file, preset="paper", overrides=["sampling.window=8"])
    assert loaded.sampling.seed == 7 and loaded.metrics.lpips_network == "alex" and loaded.sampling.window == 8
    for override, name in (("sampling.num_steps=0", "sampling.num_steps"), ("protocol.background=2", "protocol.background"),
                           ("metrics.lpips_network=squeeze", "metrics.lpips_network"),
                           ("sampling.overlap=9", "sampling.overlap"), ("nope=1", "nope")):
        with pytest.raises(ValueError, match=name):
            load_eval_config(preset="tiny", overrides=[override])


def test_checkpoint_arguments():
    assert parse_checkpoint_argument("w.o. NeRF=runs/a/final") == EvalCheckpoint("w.o. NeRF", "runs/a/final")
    assert parse_checkpoint_argument("runs/ablation/final").name == "ablation"
    assert parse_checkpoint_argument("models/gas").name == "gas"
    assert EvalCheckpoint("w.o. NeRF", "x").row_id == "ckpt-w.o._NeRF"
    with pytest.raises(ValueError, match="reserved"):
        EvalCheckpoint(NERF_ROW, "x")
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_checkpoint_argument("name=")


def test_plan_selects_the_split_subjects_protocol_views_and_pose_frames(inputs):
    config = EvalConfig.tiny()
    plan = plan_evaluation(inputs.clips, inputs.thuman_split, config)
    assert [ref.key for ref in plan.clips] == ["thuman__0001__view000", "thuman__0002__view005"]
    assert plan.mask_background and plan.input_views == (0, 5) and plan.missing_subjects == ()
    assert all(ref.scored_frames == tuple(range(FRAMES)) and ref.num_frames == FRAMES for ref in plan.clips)
    assert not plan_evaluation(inputs.clips, inputs.twok2k_split, config).mask_background
    forced = plan_evaluation(inputs.clips, inputs.twok2k_split, replace(config, protocol=replace(
        config.protocol, mask_background=True)))
    assert forced.mask_background
    pose = plan_evaluation(inputs.clips, inputs.pose_split, config)
    assert [ref.key for ref in pose.clips] == ["tiktok__00335__pose004"]  # the split's reference frame only
    assert pose.clips[0].scored_frames == tuple(range(1, 9)) and pose.clips[0].num_frames == 9
    missing = write_split(TestSplit("thuman", "novel_view", ("0001", "0077"), protocol=VIEW_PROTOCOL),
                          inputs.thuman_split.parent / "partial.json")
    assert plan_evaluation(inputs.clips, missing, config).missing_subjects == ("0077",)
    nothing = write_split(TestSplit("mvhumannet", "novel_pose", ("100",)), inputs.thuman_split.parent / "none.json")
    with pytest.raises(ValueError, match="no pose clip of the mvhumannet test split"):
        plan_evaluation(inputs.clips, nothing, config)


def test_training_checkpoint_folders_load_their_ema_weights(tmp_path):
    from pipelines.train_diffusion import DiffusionTrainConfig, config_to_yaml

    source = GASModel.from_preset("tiny", seed=3)
    folder = tmp_path / "checkpoints" / "step-00000010"
    GASModel.from_preset("tiny", seed=4).denoiser.save_pretrained(folder / "model")
    source.denoiser.save_pretrained(folder / "ema")
    (folder / "config.yaml").write_text(config_to_yaml(replace(DiffusionTrainConfig.tiny(), seed=0)))
    torch.save({"state": {}}, folder / "training_state.pt")
    loaded = load_diffusion_checkpoint(folder)
    for (name, a), (_, b) in zip(source.denoiser.state_dict().items(), loaded.denoiser.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="not a GASModel"):
        load_diffusion_checkpoint(tmp_path)


def _official_checkpoint(tmp_path: Path) -> tuple[Path, Path, dict]:
    from tests.gas_core.diffusion.official_fixtures import write_tiny_base_svd, write_tiny_official_checkpoint

    write_tiny_base_svd(tmp_path / "svd")
    return tmp_path / "GAS", tmp_path / "svd", write_tiny_official_checkpoint(tmp_path / "GAS")


def test_official_release_folder_is_a_checkpoint_with_the_base_svd_dir(tmp_path, inputs):
    from gas_core.diffusion.official import ours_to_official
    from pipelines.evaluate.checkpoints import CheckpointLoader

    official, svd, states = _official_checkpoint(tmp_path)
    config = load_eval_config(preset="tiny", overrides=[*metric_overrides(inputs, i3d=False),
                                                        f"model.base_svd_dir={svd}"])
    assert config.model.base_svd_dir == str(svd) and EvalConfig.tiny().model.base_svd_dir is None
    checkpoint = parse_checkpoint_argument(f"GAS release={official}")
    model = CheckpointLoader(checkpoint, torch.device("cpu"), base_svd_dir=config.model.base_svd_dir).get()
    for part in ("unet", "pose_net", "nerf_net"):
        ours = ours_to_official(part, getattr(model.denoiser, part).state_dict())
        assert ours.keys() == states[part].keys()
        assert all(torch.equal(ours[key], states[part][key]) for key in ours), part
    with pytest.raises(ValueError, match="model.base_svd_dir"):
        load_diffusion_checkpoint(official)
    report = evaluate(inputs.clips, [inputs.pose_split], [checkpoint], tmp_path / "out", config)
    row = report.tables["tiktok_novel_pose"].rows[1]
    assert row.method == "GAS release" and all(math.isfinite(value) for value in row.values.values())


def test_official_release_folder_with_a_bad_file_names_file_and_key(tmp_path):
    official, svd, states = _official_checkpoint(tmp_path)
    states["nerf_net"]["conv_layers.2.weight"] = torch.zeros(16, 4, 5, 5)
    torch.save(states["nerf_net"], official / "nerf_net.pth")
    with pytest.raises(ValueError, match=r"nerf_net\.pth.*conv_layers\.2\.weight"):
        load_diffusion_checkpoint(official, base_svd_dir=svd)
    (official / "nerf_net.pth").unlink()
    with pytest.raises(FileNotFoundError, match=r"nerf_net\.pth"):
        load_diffusion_checkpoint(official, base_svd_dir=svd)


def test_release_window_convention_and_tiled_noise_in_generated_clips(inputs):
    model = load_diffusion_checkpoint(inputs.checkpoint)
    clip = _clip_tensors(inputs, "tiktok__00335__pose004")
    key = "tiktok__00335__pose004"

    def generated(*overrides: str) -> torch.Tensor:
        sampling = load_eval_config(preset="tiny", overrides=["sampling.window=4", *overrides]).sampling
        return generate_clip(model, clip, 9, sampling, torch.device("cpu"), key=key)

    project = generated("sampling.overlap=1")
    assert torch.equal(project, generated("sampling.overlap=1", "sampling.window_convention=project",
                                          "sampling.tiled_noise=false"))
    assert torch.equal(project, generated("sampling.overlap=2", "sampling.window_convention=official"))
    assert not torch.allclose(project, generated("sampling.overlap=1", "sampling.tiled_noise=true"))
    for bad in (["sampling.window_convention=official", "sampling.overlap=0"], ["sampling.window_convention=x"]):
        with pytest.raises(ValueError, match="sampling.overlap|sampling.window_convention"):
            load_eval_config(preset="tiny", overrides=bad)


# ------------------------------------------------------------------------------------------------ the whole run
def test_cli_writes_complete_tables_with_records(evaluated, inputs):
    out, _ = evaluated
    for stem in ("thuman_novel_view", "2k2k_novel_view"):
        markdown = (out / f"{stem}.md").read_text()
        assert "| NeRF renderings |" in markdown and "| Ours |" in markdown and "–" not in markdown
        record = _record(out, stem)
        assert [row["method"] for row in record["rows"]] == [NERF_ROW, "Ours"]
        for row in record["rows"]:
            assert set(row["values"]) == {"PSNR@paper", "SSIM@paper", "LPIPS@paper", "FVD@paper",
                                          "PSNR@box", "SSIM@box", "LPIPS@box"}
            assert all(np.isfinite(v) for v in row["values"].values())
            assert set(row["settings"]["per_clip"]) == set(record["settings"]["clip_keys"])
            assert row["settings"]["frames_scored"] == 2 * FRAMES
        ours = record["rows"][1]
        assert ours["checkpoint"]["path"] == str(inputs.checkpoint) and len(ours["checkpoint"]["sha256"]) == 64
        assert record["rows"][0]["checkpoint"]["path"] == "runs/nerf/checkpoint"
        assert record["split"]["count"] == 2 and len(record["split"]["sha256"]) == 64
        assert record["settings"]["missing_metrics"] == {}
        assert set(record["settings"]["metric_weights"]) == {"LPIPS", "FVD"}
        csv_lines = (out / f"{stem}.csv").read_text().splitlines()
        assert csv_lines[0] == ("method,checkpoint,PSNR@paper,SSIM@paper,LPIPS@paper,FVD@paper,PSNR@box,SSIM@box,"
                                "LPIPS@box") and len(csv_lines) == 3
    assert _record(out, "thuman_novel_view")["settings"]["protocol"]["mask_background"] is True
    assert _record(out, "2k2k_novel_view")["settings"]["protocol"]["mask_background"] is False


def test_values_equal_a_direct_recomputation(evaluated, inputs):
    out, _ = evaluated
    record = _record(out, "thuman_novel_view")
    key = "thuman__0002__view005"
    clip = _clip_tensors(inputs, key)
    metric = LPIPSMetric(inputs.lpips_weights, network="alex")
    target = composite_on_background(clip["frames"], clip["masks"], 1.0)
    config = _tiny_config(inputs)
    generated = generate_clip(GASModel.from_pretrained(inputs.checkpoint), clip, FRAMES, config.sampling,
                              torch.device("cpu"), key=key)
    for row, prediction in zip(record["rows"], (clip["nerf"], generated)):
        pred = composite_on_background(prediction, clip["masks"], 1.0)
        stored = row["settings"]["per_clip"][key]
        assert stored["PSNR@paper"] == pytest.approx(float(psnr(pred, target).mean()), rel=1e-6)
        assert stored["SSIM@paper"] == pytest.approx(float(ssim(pred, target).mean()), rel=1e-6)
        assert stored["LPIPS@paper"] == pytest.approx(float(metric(pred, target).mean()), rel=1e-5)
        # the person box: the bounding box of each frame's true mask (28 px wide, widened to 32), nothing painted
        boxes = person_boxes(clip["masks"])
        assert boxes[0].tolist() == [12, 8, 44, 58]
        raw_pred = prediction.float().clamp(0, 1)
        assert stored["PSNR@box"] == pytest.approx(float(psnr(raw_pred, clip["frames"], box=boxes).mean()), rel=1e-6)
        assert stored["SSIM@box"] == pytest.approx(float(ssim(raw_pred, clip["frames"], box=boxes).mean()), rel=1e-6)
        assert stored["LPIPS@box"] == pytest.approx(float(metric(raw_pred, clip["frames"], box=boxes).mean()), rel=1e-5)
    # FVD: the Fréchet distance of the cached per-clip I3D features of the row and of the ground truth
    for row in record["rows"]:
        row_id = "nerf" if row["method"] == NERF_ROW else "ckpt-Ours"
        scores = [json.loads((out / "cache" / "thuman_novel_view" / row_id / f"{k}.json").read_text())["score"]
                  for k in record["settings"]["clip_keys"]]
        expected = frechet_distance(np.array([s["target_features"] for s in scores]), np.array([s["features"] for s in scores]))
        assert row["values"]["FVD@paper"] == pytest.approx(expected, rel=1e-9)
    # table means are the means over all scored frames
    nerf = record["rows"][0]
    for key in ("PSNR@paper", "PSNR@box"):
        assert nerf["values"][key] == pytest.approx(np.mean([c[key] for c in nerf["settings"]["per_clip"].values()]))


def test_nerf_row_differs_from_the_model_row(evaluated):
    out, _ = evaluated
    for stem in ("thuman_novel_view", "2k2k_novel_view"):
        nerf, ours = (row["values"] for row in _record(out, stem)["rows"])
        assert all(abs(nerf[key] - ours[key]) > 1e-6 for key in nerf) and len(nerf) == 7


def test_background_masking_changes_thuman_numbers_but_not_2k2k(evaluated, inputs):
    out, _ = evaluated
    thuman = _record(out, "thuman_novel_view")["rows"][0]["settings"]["per_clip"]["thuman__0001__view000"]
    twok2k = _record(out, "2k2k_novel_view")["rows"][0]["settings"]["per_clip"]["2k2k__0001__view000"]
    clip = _clip_tensors(inputs, "thuman__0001__view000")  # the same images under both dataset names
    raw_psnr = float(psnr(clip["nerf"], clip["frames"]).mean())
    raw_ssim = float(ssim(clip["nerf"], clip["frames"]).mean())
    assert twok2k["PSNR@paper"] == pytest.approx(raw_psnr, rel=1e-9)
    assert twok2k["SSIM@paper"] == pytest.approx(raw_ssim, rel=1e-9)
    assert abs(thuman["PSNR@paper"] - raw_psnr) > 0.5 and abs(thuman["SSIM@paper"] - raw_ssim) > 0.01
    # the person box never paints the background: the same under both datasets' protocols
    assert thuman["PSNR@box"] == pytest.approx(twok2k["PSNR@box"], rel=1e-12)


def test_rerun_skips_scored_clips_and_rescores_changed_settings(evaluated, inputs):
    out, _ = evaluated
    before = _record(out, "thuman_novel_view")
    config = _tiny_config(inputs)
    checkpoints = [EvalCheckpoint("Ours", str(inputs.checkpoint))]
    report = evaluate(inputs.clips, [inputs.thuman_split, inputs.twok2k_split], checkpoints, out, config)
    assert report.counts["thuman_novel_view"] == {NERF_ROW: (0, 2), "Ours": (0, 2)}
    assert report.counts["2k2k_novel_view"] == {NERF_ROW: (0, 2), "Ours": (0, 2)}
    after = _record(out, "thuman_novel_view")
    assert [row["values"] for row in after["rows"]] == [row["values"] for row in before["rows"]]
    # other sampling settings: the model row is generated again, the NeRF row stays cached
    changed = replace(config, sampling=replace(config.sampling, num_steps=1))  # ground-truth I3D features stay cached
    report = evaluate(inputs.clips, [inputs.thuman_split], checkpoints, out, changed)
    assert report.counts["thuman_novel_view"] == {NERF_ROW: (0, 2), "Ours": (2, 0)}
    rescored = _record(out, "thuman_novel_view")["rows"]
    assert rescored[0]["values"] == before["rows"][0]["values"]
    assert rescored[1]["values"]["PSNR@paper"] != before["rows"][1]["values"]["PSNR@paper"]


def test_missing_metric_weights_leave_the_columns_empty_with_the_reason(inputs, tmp_path, caplog):
    config = replace(EvalConfig.tiny(), protocol=replace(EvalConfig.tiny().protocol, max_clips=1))
    with caplog.at_level("WARNING"):
        report = evaluate(inputs.clips, [inputs.thuman_split], [], tmp_path, config)
    assert "no LPIPS-vgg backbone weights configured" in caplog.text and "no I3D weights configured" in caplog.text
    table = report.tables["thuman_novel_view"]
    assert set(table.rows[0].values) == {"PSNR@paper", "SSIM@paper", "PSNR@box", "SSIM@box"}
    record = _record(tmp_path, "thuman_novel_view")
    assert set(record["settings"]["missing_metrics"]) == {"LPIPS", "FVD"}
    assert "metrics.lpips_weights" in record["settings"]["missing_metrics"]["LPIPS"]
    assert "| NeRF renderings |" in (tmp_path / "thuman_novel_view.md").read_text()
    assert (tmp_path / "thuman_novel_view.md").read_text().count("–") == 3  # LPIPS and FVD, LPIPS in the box
    assert record["settings"]["notes"] == ["protocol.max_clips=1: scored 1 of 2 clips"]
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        evaluate(inputs.clips, [inputs.thuman_split], [], tmp_path,
                 load_eval_config(preset="tiny", overrides=[f"metrics.lpips_weights={tmp_path / 'absent.pth'}"]))


def test_pose_clips_use_windows_and_score_the_frames_after_the_reference(inputs, tmp_path):
    config = _tiny_config(inputs, extra=("sampling.window=4", "sampling.overlap=1"))
    report = evaluate(inputs.clips, [inputs.pose_split], [EvalCheckpoint("Ours", str(inputs.checkpoint))], tmp_path, config)
    table = report.tables["tiktok_novel_pose"]
    assert [row.method for row in table.rows] == [NERF_ROW, "Ours"]
    assert all(row.settings["frames_scored"] == 8 for row in table.rows)
    assert set(table.rows[1].values) == {"PSNR@paper", "SSIM@paper", "LPIPS@paper", "PSNR@box", "SSIM@box", "LPIPS@box"}
    assert table.settings["missing_metrics"]["FVD"] == "FVD needs at least 9 scored frames per clip; min was 8"
    assert table.settings["protocol"] == {"task": "novel_pose", "mask_background": False, "background": None,
                                          "frames_after_reference": 8}


def test_identical_frames_give_an_infinite_psnr_that_the_record_keeps(inputs, tmp_path):
    plan = plan_evaluation(inputs.clips, inputs.thuman_split, EvalConfig.tiny())
    scores = [ClipScore(ref.key, psnr=(float("inf"),) * 2, ssim=(1.0, 1.0), lpips=None, features=None,
                        target_features=None) for ref in plan.clips]
    row = RowResult("Copy", "ckpt-Copy", None, {"output": "copy"}, scores)
    table = build_table(plan, [row], EvalConfig.tiny())
    files = write_tables(table, tmp_path)
    record = json.loads(files.record.read_text())
    assert record["rows"][0]["values"]["PSNR@paper"] == "inf"
    assert {clip["PSNR@paper"] for clip in record["rows"][0]["settings"]["per_clip"].values()} == {"inf"}
    assert "no I3D weights configured" in record["settings"]["missing_metrics"]["FVD"]


def _figure_clip(frames: int = 10, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ground truth, masks, a NeRF-like prediction, noise): a textured figure (body, arms, a gap between the
    legs) on black as the scan renders are; the NeRF-like frames blurred, shifted 3 px and darker; the noise
    a grey, faintly noisy picture like an untrained diffusion model's."""
    import torchvision.transforms.functional as functional

    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(frames, 1, size, size)
    for f in range(frames):
        left = 20 + f % 3
        masks[f, 0, 6:58, left:left + 24] = 1
        masks[f, 0, 38:58, left + 10:left + 14] = 0
        masks[f, 0, 14:34, left - 6:left] = 1
        masks[f, 0, 14:34, left + 24:left + 30] = 1
    colour = torch.rand(frames, 3, 1, 1, generator=generator) * 0.6 + 0.2
    texture = torch.rand(frames, 3, size, size, generator=generator)
    target = (colour + 0.35 * (texture - 0.5)).clamp(0, 1) * masks
    nerf_like = functional.gaussian_blur(torch.roll(target, shifts=3, dims=-1), kernel_size=19, sigma=3.0) * 0.8
    noise = (0.5 + 0.08 * torch.randn(frames, 3, size, size, generator=generator)).clamp(0, 1)
    return target, masks, nerf_like, noise


def test_person_box_columns_keep_noise_from_beating_a_real_prediction(inputs, tmp_path):
    """THuman's protocol paints both backgrounds white with the TRUE mask, so a noise output loses nothing
    around the person and can be crowned (the demo's untrained model beat the NeRF); inside the person's box,
    where nothing is painted, the blurred prediction wins, and each column says which protocol it uses."""
    from gas_core.metrics.table import ResultsTable
    from pipelines.evaluate import MetricSuite, score_clip

    target, masks, nerf_like, noise = _figure_clip()
    suite = MetricSuite(lpips=None, i3d=None)
    scores = {name: score_clip(pred, target, masks, mask_background=True, background=1.0, metrics=suite, key="c")
              for name, pred in (("NeRF-like", nerf_like), ("Noise", noise),
                                 ("Blurred truth", torchvision.transforms.functional.gaussian_blur(target, 7, 1.5)))}
    means = {name: score.means() for name, score in scores.items()}
    assert means["Noise"]["PSNR@paper"] > means["NeRF-like"]["PSNR@paper"]  # the defect the box columns expose
    for decent in ("NeRF-like", "Blurred truth"):
        assert means[decent]["PSNR@box"] > means["Noise"]["PSNR@box"] + 2.0
        assert means[decent]["SSIM@box"] > means["Noise"]["SSIM@box"] + 0.03
    # the table: both protocols side by side, labelled, best in bold per column
    plan = plan_evaluation(inputs.clips, inputs.thuman_split, EvalConfig.tiny())
    rows = [RowResult(name, f"ckpt-{index}", None, {}, [replace(scores[name], key=ref.key) for ref in plan.clips])
            for index, name in enumerate(("NeRF-like", "Noise"))]
    table = build_table(plan, rows, EvalConfig.tiny())
    assert isinstance(table, ResultsTable)
    lines = table.to_markdown().splitlines()
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header == ["Method", "PSNR ↑ (paper protocol)", "SSIM ↑ (paper protocol)", "LPIPS ↓ (paper protocol)",
                      "FVD ↓ (paper protocol)", "PSNR ↑ (person box)", "SSIM ↑ (person box)", "LPIPS ↓ (person box)"]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]] for line in lines[4:6]}
    assert cells["Noise"][0].startswith("**") and not cells["NeRF-like"][0].startswith("**")  # paper PSNR
    assert cells["NeRF-like"][4].startswith("**") and not cells["Noise"][4].startswith("**")  # box PSNR
    assert any(line.startswith("- *paper protocol*: ") and "painted white" in line for line in lines)
    assert any(line.startswith("- *person box*: ") and "bounding box of its ground-truth mask" in line for line in lines)
    record = json.loads(write_tables(table, tmp_path).record.read_text())
    regions = {column["key"]: (column["region"], column["heading"]) for column in record["columns"]}
    assert regions["PSNR@paper"] == ("paper", "PSNR ↑ (paper protocol)")
    assert regions["SSIM@box"] == ("box", "SSIM ↑ (person box)")
    assert set(record["legend"]) == {"paper", "box"}
    assert record["rows"][1]["values"]["PSNR@box"] == pytest.approx(means["Noise"]["PSNR@box"])


def test_person_boxes_are_the_true_masks_boxes_widened_to_32_pixels():
    masks = torch.zeros(3, 1, 64, 48)
    masks[0, 0, 20:30, 2:12] = 1  # 10 x 10 px at the left edge: widened to 32 x 32 inside the frame
    masks[1, 0, 5:60, 8:44] = 1  # already larger than 32 both ways
    assert person_boxes(masks).tolist() == [[0, 9, 32, 41], [8, 5, 44, 60], [0, 0, 48, 64]]  # empty mask: whole frame
    with pytest.raises(ValueError, match="masks must be"):
        person_boxes(masks[:, 0])


def test_cached_clips_without_person_box_values_are_scored_again(evaluated, inputs, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(evaluated[0], out)
    path = out / "cache" / "thuman_novel_view" / "nerf" / "thuman__0001__view000.json"
    record = json.loads(path.read_text())
    assert record["version"] == 2 and len(record["score"]["box_psnr"]) == FRAMES
    for key in ("box_psnr", "box_ssim", "box_lpips"):  # what a cache written before the person box holds
        record["score"].pop(key)
    path.write_text(json.dumps(record))
    report = evaluate(inputs.clips, [inputs.thuman_split], [], out, _tiny_config(inputs))
    assert report.counts["thuman_novel_view"] == {NERF_ROW: (1, 1)}
    assert "PSNR@box" in _record(out, "thuman_novel_view")["rows"][0]["values"]
