"""Single-image generation: config, input files, orbit and pose driving, checkpoint layouts, end to end.

Models are random-weight tiny ones saved to temporary folders (a tiny NeRF with cheap sampling, the
tiny GAS model); the reference is the open body model seen from the front, its image a coloured
normal-map render and its mask that render's silhouette. The plumbing does not depend on the weights.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import OrbitSpec, orbit_cameras
from gas_core.diffusion import GASModel
from pipelines.generate import (
    GenerateConfig,
    GenerateInputError,
    GenerateInputs,
    PoseDriveConfig,
    PoseSequence,
    SingleImageGenerator,
    check_input_files,
    drive_poses,
    driving_video_poses,
    generate,
    guidance_scales_for,
    load_diffusion_model,
    load_generate_config,
    main_from_args,
    prepare_reference,
    read_camera_file,
    read_generation_inputs,
    read_pose_sequence,
    read_smpl_file,
    reference_orbit,
)

SIZE = 64
#: A tiny NeRF made cheaper (coarser grid, fewer samples), as the bake tests use it; random weights.
FAST_NERF = {"grid_cell_size": 0.08, "probes_per_ray": 16, "samples_per_ray": 6, "visibility_resolution": 32,
             "volume_resolution": 12}


def tiny_config(*overrides: str) -> GenerateConfig:
    return load_generate_config(preset="tiny", overrides=["sampling.steps=2", "nerf.reference_size=32", *overrides])


# --------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def body_model(open_body_model_dir) -> BodyModel:
    return BodyModel(open_body_model_dir)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """(NeRF save_pretrained folder, GASModel save_pretrained folder), random tiny weights."""
    from gas_core.nerf import GeneralizableHumanNeRF

    base = tmp_path_factory.mktemp("generate-models")
    torch.manual_seed(0)
    GeneralizableHumanNeRF.from_preset("tiny", **FAST_NERF).save_pretrained(base / "nerf")
    GASModel.from_preset("tiny", seed=1).save_pretrained(base / "gas")
    return base / "nerf", base / "gas"


def reference_smpl(body_model: BodyModel) -> dict:
    pose = np.zeros((23, 3))
    pose[15, 2], pose[16, 2] = -1.1, 1.1  # shoulders: arms down
    return {"betas": [0.5] + [0.0] * 9, "body_pose": pose.tolist(), "global_orient": [0.0, 0.0, 0.0],
            "transl": [0.0, 0.0, 0.0], "scale": 1.0, "body_model": body_model.label}


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory, body_model) -> GenerateInputs:
    """image.png (a coloured render of the body), mask.png, smpl.json and camera.json of one front view."""
    from gas_core.render.normals import NormalMapRenderer, normal_map_foreground

    folder = tmp_path_factory.mktemp("reference")
    smpl = reference_smpl(body_model)
    camera = orbit_cameras(OrbitSpec(num_views=1, distance=2.6, elevation_deg=5.0, width=SIZE, height=SIZE,
                                     target=(0.0, -0.2, 0.0)))[0]
    with torch.no_grad():
        vertices = body_model(SMPLParams.from_records([smpl])).vertices[0].double().numpy()
    with NormalMapRenderer(width=SIZE, height=SIZE) as renderer:
        normal_map = renderer.render(vertices, body_model.faces.cpu().numpy().astype(np.int64), camera)
    mask = normal_map_foreground(normal_map)
    assert mask.mean() > 0.05
    colours = (normal_map.astype(np.float32) * np.array([0.9, 0.5, 0.3])).astype(np.uint8)
    Image.fromarray(colours).save(folder / "image.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "mask.png")
    (folder / "smpl.json").write_text(json.dumps(smpl))
    (folder / "camera.json").write_text(json.dumps(camera.to_dict()))
    return GenerateInputs(image=folder / "image.png", mask=folder / "mask.png", smpl=folder / "smpl.json",
                          camera=folder / "camera.json")


def driver_sequence(path: Path, frames: int, *, betas: list[float] | None = None) -> Path:
    """A waving driver: arms swinging, walking forward, away from the reference's position."""
    phase = np.linspace(0.0, 2.0 * math.pi, frames)
    body_pose = np.zeros((frames, 23, 3))
    body_pose[:, 15, 2] = -1.1 + 0.6 * np.sin(phase)
    body_pose[:, 16, 2] = 1.1 - 0.6 * np.sin(phase)
    transl = np.stack([np.full(frames, 5.0), np.zeros(frames), np.linspace(-3.0, -2.9, frames)], axis=1)
    data = {"body_pose": body_pose.tolist(), "global_orient": np.zeros((frames, 3)).tolist(), "transl": transl.tolist()}
    if betas is not None:
        data["betas"] = betas
    path.write_text(json.dumps(data))
    return path


def count_frames(video: Path) -> int:
    from gas_core.videoio import count_video_frames

    return count_video_frames(video)


# --------------------------------------------------------------------------------------- config
def test_config_presets_yaml_overrides_and_validation(tmp_path):
    paper = GenerateConfig.paper()
    assert (paper.size, paper.num_views, paper.sampling.steps, paper.sampling.window) == (512, 20, 25, 20)
    assert (paper.guidance.view_min, paper.guidance.view_max, paper.guidance.pose_scale) == (1.0, 2.0, 2.0)
    assert paper.dtype == "auto" and paper.device == "auto"
    tiny = GenerateConfig.tiny()
    assert (tiny.size, tiny.device, tiny.dtype) == (64, "cpu", "fp32")
    path = tmp_path / "generate.yaml"
    path.write_text("mode: pose\nsampling:\n  window: 6\n  overlap: 1\nguidance:\n  pose_scale: 3\n")
    config = load_generate_config(path, preset="tiny", overrides=["num_views=30", "pose.keep_driver_shape=true"])
    assert (config.mode, config.num_views, config.sampling.window, config.sampling.overlap) == ("pose", 30, 6, 1)
    assert config.guidance.pose_scale == 3.0 and config.pose.keep_driver_shape
    weights = load_generate_config(preset="paper", overrides=["estimators.masking.sam_checkpoint=/models/sam.pth",
                                                              "estimators.keypoint_weights=/models/pose.pt"])
    assert weights.estimators.masking.sam_checkpoint == "/models/sam.pth"
    assert weights.estimators.keypoint_weights == "/models/pose.pt"
    for bad, name in (("size=60", "size"), ("mode=orbit", "mode"), ("sampling.overlap=7", "sampling.overlap"),
                      ("num_views=1", "num_views"), ("dtype=int8", "dtype"), ("guidance.view_max=-1", "guidance.view_max")):
        with pytest.raises(ValueError, match=name):
            load_generate_config(preset="tiny", overrides=[bad])


def test_guidance_is_triangular_for_any_count_and_fixed_in_pose_mode():
    for frames in (7, 20, 33):
        scales = guidance_scales_for("view", frames, GenerateConfig.paper().guidance)
        assert scales.shape == (frames,) and scales[0] == pytest.approx(1.0)
        assert float(scales.max()) <= 2.0 + 1e-6 and float(scales.max()) > 2.0 - 2.0 / frames
        assert int(scales.argmax()) == frames // 2 or (frames % 2 and int(scales.argmax()) == frames // 2 + 1)
        assert bool((scales[1:frames // 2 + 1].diff() > 0).all())  # rising towards the back view
        assert torch.allclose(scales[1:], scales[1:].flip(0))  # symmetric about the back view
    assert torch.equal(guidance_scales_for("pose", 5, GenerateConfig.paper().guidance), torch.full((5,), 2.0))


# --------------------------------------------------------------------------------------- geometry
def test_reference_orbit_keeps_distance_elevation_and_starts_at_the_reference():
    target = np.array([0.3, 0.9, -0.2])
    reference = orbit_cameras(OrbitSpec(num_views=7, distance=2.5, elevation_deg=12.0, width=80, height=80,
                                        target=(0.3, 0.7, -0.2)))[2]  # azimuth 360 * 2 / 7, looks 0.2 m below target
    cameras = reference_orbit(reference, target, 9)
    assert len(cameras) == 9
    assert np.allclose(cameras[0].R, reference.R) and np.allclose(cameras[0].t, reference.t)
    pixel = reference.project(target[None])[0]
    start = math.atan2(*(reference.center - target)[[0, 2]])
    for index, camera in enumerate(cameras):
        offset = camera.center - target
        assert np.linalg.norm(offset) == pytest.approx(np.linalg.norm(reference.center - target))
        assert offset[1] == pytest.approx((reference.center - target)[1])  # same height: same elevation
        assert np.allclose(camera.K, reference.K) and (camera.width, camera.height) == (80, 80)
        assert np.allclose(camera.project(target[None])[0], pixel, atol=1e-6)  # the body stays where it was
        turned = math.degrees(math.atan2(offset[0], offset[2]) - start)
        assert abs((turned - 360.0 * index / 9 + 180.0) % 360.0 - 180.0) < 1e-6
    # For a look-at orbit around the target (the training clips' orbits), it is that orbit.
    orbit = orbit_cameras(OrbitSpec(num_views=6, distance=3.0, width=64, height=64))
    for ours, theirs in zip(reference_orbit(orbit[0], np.zeros(3), 6), orbit):
        assert np.allclose(ours.R, theirs.R, atol=1e-9) and np.allclose(ours.t, theirs.t, atol=1e-9)


def test_prepare_reference_crops_non_square_images_around_the_person():
    from gas_core.cameras import Camera

    image = np.zeros((120, 80, 3), dtype=np.uint8)
    mask = np.zeros((120, 80), dtype=np.uint8)
    mask[30:100, 20:50] = 255
    image[mask > 0] = (200, 100, 50)
    image[0:10] = 255  # background outside the mask becomes black
    camera = Camera(K=[[100.0, 0, 40.0], [0, 100.0, 60.0], [0, 0, 1]], R=np.eye(3), t=[0.0, 0.0, 3.0], width=80, height=120)
    point = np.array([[0.1, -0.2, 0.0]])
    out_image, out_mask, out_camera = prepare_reference(image, mask, camera, 32)
    assert out_image.shape == (32, 32, 3) and out_mask.shape == (32, 32)
    assert (out_camera.width, out_camera.height) == (32, 32)
    assert out_image[out_mask == 0].max() == 0
    # The same world point lands on the same image content: pixel positions scale with the crop.
    u, v = camera.project(point)[0]
    u2, v2 = out_camera.project(point)[0]
    side = 80  # max(box 70 * 1.1 = 77, shorter side 80)
    assert u2 == pytest.approx((u - (35 - side / 2)) * 32 / side, abs=0.6)
    assert v2 == pytest.approx((v - (65 - side / 2)) * 32 / side, abs=0.6)
    assert 0.2 < out_mask.mean() / 255 < 0.5


def test_drive_poses_keeps_reference_shape_and_aligns_the_root(body_model, tmp_path):
    reference = read_smpl_file(_write(tmp_path / "smpl.json", reference_smpl(body_model)), body_model)
    driver_betas = [-1.0, 0.5] + [0.0] * 8
    sequence = read_pose_sequence(driver_sequence(tmp_path / "poses.json", 6, betas=driver_betas))
    frames = drive_poses(reference, sequence, body_model)
    assert len(frames) == 6
    for frame in frames:
        assert np.allclose(frame["betas"], reference["betas"]) and frame["scale"] == reference["scale"]
    from pipelines.generate import pelvis_positions

    pelvis = pelvis_positions(body_model, frames)
    assert np.allclose(pelvis[0], pelvis_positions(body_model, [reference])[0], atol=1e-5)
    assert np.allclose(pelvis[-1] - pelvis[0], sequence.transl[-1] - sequence.transl[0], atol=1e-5)  # trajectory kept
    own = drive_poses(reference, sequence, body_model, PoseDriveConfig(keep_driver_shape=True))
    assert all(np.allclose(frame["betas"], driver_betas) for frame in own)
    assert np.allclose(pelvis_positions(body_model, own)[0], pelvis_positions(body_model, [reference])[0], atol=1e-5)
    strided = drive_poses(reference, sequence, body_model, PoseDriveConfig(frame_stride=2, max_frames=2))
    assert len(strided) == 2 and np.allclose(strided[1]["body_pose"], sequence.body_pose[2])


def test_drive_poses_can_turn_the_driver_to_face_as_the_reference(body_model, tmp_path):
    reference = dict(read_smpl_file(_write(tmp_path / "smpl.json", reference_smpl(body_model)), body_model))
    reference["global_orient"] = np.array([0.0, 0.7, 0.0])
    sequence = read_pose_sequence(driver_sequence(tmp_path / "poses.json", 4))
    turned = drive_poses(reference, sequence, body_model, PoseDriveConfig(align_orientation=True))
    assert np.allclose(turned[0]["global_orient"], reference["global_orient"], atol=1e-6)
    from pipelines.generate import pelvis_positions

    pelvis = pelvis_positions(body_model, turned)
    step = pelvis[-1] - pelvis[0]
    original = sequence.transl[-1] - sequence.transl[0]
    rotation = np.array([[math.cos(0.7), 0, math.sin(0.7)], [0, 1, 0], [-math.sin(0.7), 0, math.cos(0.7)]])
    assert np.allclose(step, rotation @ original, atol=1e-5)


# --------------------------------------------------------------------------------------- input files
def _write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_bad_input_files_are_refused_naming_the_file(tmp_path, body_model, reference_files):
    def read(**files):
        arguments = {"mask_path": reference_files.mask, "smpl_path": reference_files.smpl,
                     "camera_path": reference_files.camera, **files}
        image = arguments.pop("image", reference_files.image)
        return read_generation_inputs(image, body_model=body_model, **arguments)

    assert read().image.shape == (SIZE, SIZE, 3)
    cases = {
        "image": _write(tmp_path / "broken.png", "not a png"),
        "mask_path": _write(tmp_path / "mask.png", "junk"),
        "smpl_path": _write(tmp_path / "smpl.json", {"betas": [0.0] * 10, "global_orient": [0, 0, 0], "transl": [0, 0, 0]}),
        "camera_path": _write(tmp_path / "camera.json", {"K": [[1, 0], [0, 1]], "R": np.eye(3).tolist(), "t": [0, 0, 1],
                                                          "width": SIZE, "height": SIZE}),
    }
    for argument, path in cases.items():
        with pytest.raises(GenerateInputError, match=str(path.name)):
            read(**{argument: path})
    with pytest.raises(GenerateInputError, match="missing.png.*does not exist"):
        read(image=tmp_path / "missing.png")
    with pytest.raises(GenerateInputError, match="body_pose is missing"):
        read(smpl_path=cases["smpl_path"])
    wrong_model = {**reference_smpl(body_model), "body_model": "SMPL"}
    with pytest.raises(GenerateInputError, match="other_model.json.*body model 'SMPL'"):
        read(smpl_path=_write(tmp_path / "other_model.json", wrong_model))
    small = Image.new("L", (10, 10))
    small.save(tmp_path / "small_mask.png")
    with pytest.raises(GenerateInputError, match="small_mask.png is 10x10"):
        read(mask_path=tmp_path / "small_mask.png")
    with pytest.raises(GenerateInputError, match="both an SMPL and a camera"):
        read(camera_path=None)
    nan_pose = {"body_pose": [[[float("nan")] * 3] * 23] * 2, "global_orient": [[0, 0, 0]] * 2, "transl": [[0, 0, 0]] * 2}
    with pytest.raises(GenerateInputError, match="nan_poses.json.*non-finite"):
        read_pose_sequence(_write(tmp_path / "nan_poses.json", json.dumps(nan_pose).replace("NaN", "NaN")))
    with pytest.raises(GenerateInputError, match="short.json.*transl must have shape \\(3, 3\\)"):
        read_pose_sequence(_write(tmp_path / "short.json", {"body_pose": np.zeros((3, 69)).tolist(),
                                                             "global_orient": np.zeros((3, 3)).tolist(),
                                                             "transl": np.zeros((2, 3)).tolist()}))
    with pytest.raises(GenerateInputError, match="poses.npz.*not a readable NPZ"):
        read_pose_sequence(_write(tmp_path / "poses.npz", "zip? no"))


def test_pose_sequences_read_from_json_lists_and_npz(tmp_path):
    frames = [{"body_pose": np.full((23, 3), 0.1 * i).tolist(), "global_orient": [0, i, 0], "transl": [i, 0, 0],
               "betas": [0.2] * 10} for i in range(3)]
    listed = read_pose_sequence(_write(tmp_path / "frames.json", {"frames": frames}))
    assert listed.num_frames == 3 and np.allclose(listed.betas, 0.2) and listed.transl[2, 0] == 2
    np.savez(tmp_path / "poses.npz", body_pose=np.zeros((5, 69)), global_orient=np.zeros((5, 3)), transl=np.ones((5, 3)))
    archived = read_pose_sequence(tmp_path / "poses.npz")
    assert archived.body_pose.shape == (5, 23, 3) and archived.betas is None and archived.scale is None
    assert isinstance(archived, PoseSequence)


def test_camera_files_and_rescaled_cameras(tmp_path, body_model, reference_files):
    camera = read_camera_file(reference_files.camera)
    doubled = camera.scaled(2.0)
    path = _write(tmp_path / "camera_big.json", [doubled.to_dict()])
    inputs = read_generation_inputs(reference_files.image, mask_path=reference_files.mask, smpl_path=reference_files.smpl,
                                    camera_path=path, body_model=body_model)
    assert np.allclose(inputs.camera.K, camera.K) and inputs.camera.width == SIZE
    wide = replace(doubled, width=doubled.width * 2)
    with pytest.raises(GenerateInputError, match="camera_wide.json is for"):
        read_generation_inputs(reference_files.image, mask_path=reference_files.mask, smpl_path=reference_files.smpl,
                               camera_path=_write(tmp_path / "camera_wide.json", wide.to_dict()), body_model=body_model)


# --------------------------------------------------------------------------------------- checkpoints
def test_diffusion_model_loads_from_save_pretrained_run_and_training_checkpoint(tmp_path, checkpoints):
    from pipelines.train_diffusion import DiffusionTrainConfig, config_to_yaml

    _, gas_dir = checkpoints
    saved = load_diffusion_model(gas_dir)
    run = tmp_path / "run"
    step = run / "checkpoints" / "step-00000003"
    trained = GASModel.from_preset("tiny", seed=0)  # the training config's model: tiny preset, seed 0
    with torch.no_grad():
        for parameter in trained.denoiser.parameters():
            parameter.add_(0.01)
    trained.denoiser.save_pretrained(step / "model")
    ema = GASModel.from_preset("tiny", seed=5).denoiser
    ema.save_pretrained(step / "ema")
    torch.save({}, step / "training_state.pt")
    (step / "config.yaml").write_text(config_to_yaml(DiffusionTrainConfig.tiny()))
    for folder in (step, run):  # the checkpoint itself, and the run folder (its newest checkpoint)
        loaded = load_diffusion_model(folder)
        reference = GASModel.from_preset("tiny", seed=0)
        assert all(torch.equal(a, b) for a, b in zip(loaded.vae.state_dict().values(), reference.vae.state_dict().values()))
        assert all(torch.equal(a, b) for a, b in zip(loaded.denoiser.state_dict().values(), ema.state_dict().values()))
    online = load_diffusion_model(step, prefer_ema=False)
    assert all(torch.equal(a, b) for a, b in zip(online.denoiser.state_dict().values(), trained.denoiser.state_dict().values()))
    assert saved.scaling_factor == GASModel.from_preset("tiny", seed=1).scaling_factor
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(GenerateInputError, match="empty_run is neither"):
        load_diffusion_model(tmp_path / "empty_run")


def _weights_equal(model: GASModel, states: dict) -> bool:
    from gas_core.diffusion.official import OFFICIAL_FILES, ours_to_official

    for part in OFFICIAL_FILES:
        ours = ours_to_official(part, getattr(model.denoiser, part).state_dict())
        if ours.keys() != states[part].keys() or not all(torch.equal(ours[k], states[part][k]) for k in ours):
            return False
    return True


def test_official_release_folder_loads_onto_the_base_svd_dir(tmp_path):
    """--diffusion DIR with unet.pth, pose_net.pth, nerf_net.pth: frozen parts from model.base_svd_dir, denoiser from the files."""
    from tests.gas_core.diffusion.official_fixtures import write_tiny_base_svd, write_tiny_official_checkpoint

    donor = write_tiny_base_svd(tmp_path / "svd")
    states = write_tiny_official_checkpoint(tmp_path / "GAS")
    config = tiny_config(f"model.base_svd_dir={tmp_path / 'svd'}")
    assert config.model.base_svd_dir == str(tmp_path / "svd") and GenerateConfig.tiny().model.base_svd_dir is None
    model = load_diffusion_model(tmp_path / "GAS", base_svd_dir=config.model.base_svd_dir)
    assert _weights_equal(model, states)
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.equal(model.encode_latents(images), donor.encode_latents(images))  # the base folder's VAE
    with pytest.raises(GenerateInputError, match="model.base_svd_dir"):
        load_diffusion_model(tmp_path / "GAS")


@pytest.mark.parametrize("damage, names", [
    ("missing nerf_net.pth", ["nerf_net.pth"]),
    ("wrong shape", ["pose_net.pth", "final_proj.weight"]),
])
def test_official_release_folder_with_a_bad_file_names_file_and_key(tmp_path, damage, names):
    from tests.gas_core.diffusion.official_fixtures import write_tiny_base_svd, write_tiny_official_checkpoint

    write_tiny_base_svd(tmp_path / "svd")
    states = write_tiny_official_checkpoint(tmp_path / "GAS")
    if damage == "missing nerf_net.pth":
        (tmp_path / "GAS" / "nerf_net.pth").unlink()
    else:
        states["pose_net"]["final_proj.weight"] = torch.zeros(7, 128, 1, 1)
        torch.save(states["pose_net"], tmp_path / "GAS" / "pose_net.pth")
    with pytest.raises(GenerateInputError) as error:
        load_diffusion_model(tmp_path / "GAS", base_svd_dir=str(tmp_path / "svd"))
    for name in names:
        assert name in str(error.value)


def test_release_window_convention_and_tiled_noise_settings():
    default = GenerateConfig.paper().sampling
    assert (default.window_convention, default.tiled_noise) == ("project", False)
    config = tiny_config("sampling.window_convention=official", "sampling.overlap=3", "sampling.tiled_noise=true")
    assert (config.sampling.window_convention, config.sampling.overlap, config.sampling.tiled_noise) == ("official", 3, True)
    tiny_config("sampling.window_convention=official", "sampling.overlap=7")  # [1, window) counting the reference
    for bad in (["sampling.window_convention=official", "sampling.overlap=0"], ["sampling.overlap=7"],
                ["sampling.window_convention=mimic"], ["sampling.tiled_noise=3"]):
        with pytest.raises(ValueError, match="sampling."):
            tiny_config(*bad)


# --------------------------------------------------------------------------------------- end to end
def test_view_mode_writes_frames_video_and_strip(tmp_path, checkpoints, reference_files, caplog):
    nerf_dir, gas_dir = checkpoints
    config = tiny_config("num_views=5", "guidance.view_max=2.5")
    events: list[tuple[str, int, int]] = []
    with caplog.at_level(logging.INFO, logger="pipelines.generate"):
        result = generate(reference_files, tmp_path / "out", nerf_checkpoint=nerf_dir, diffusion_checkpoint=gas_dir,
                          config=config, progress=False, on_progress=lambda *event: events.append(event))
    # the progress callback follows the real stages in order, each counting up to its total
    stages = [stage for stage, _, _ in events]
    assert sorted(set(stages), key=stages.index) == ["nerf", "encoding", "sampling", "decoding"]
    assert [event for event in events if event[0] == "sampling"] == [("sampling", step, 2) for step in (1, 2)]
    assert all(0 <= done <= total for _, done, total in events) and events[-1][1] == events[-1][2]
    frames = sorted(result.frames_dir.glob("frame_*.png"))
    assert result.num_frames == 5 and len(frames) == 5
    assert np.asarray(Image.open(frames[3])).shape == (SIZE, SIZE, 3)
    assert count_frames(result.video) == 5
    strip = np.asarray(Image.open(result.strip))
    assert strip.shape == (3 * SIZE + 4, 5 * SIZE + 8, 3)
    record = json.loads((tmp_path / "out" / "generation.json").read_text())
    assert record["mode"] == "view" and record["frames"] == 5 and record["config"]["num_views"] == 5
    assert record["checkpoints"]["nerf_sha256"] and record["seconds"]["total"] > 0
    # the guidance of every written frame: triangular 1 -> 2.5 (back view) -> 1, logged and recorded
    expected = guidance_scales_for("view", 5, config.guidance).tolist()
    assert record["guidance_scales"] == pytest.approx(expected, abs=1e-6) and len(expected) == 5
    assert max(record["guidance_scales"]) > 2.0 and list(result.guidance_scales) == record["guidance_scales"]
    logged = [r.getMessage() for r in caplog.records if "guidance scale per written frame" in r.getMessage()]
    assert logged and logged[0].endswith(" ".join(f"{value:.3g}" for value in record["guidance_scales"]))
    cameras = json.loads((tmp_path / "out" / "cameras.json").read_text())
    assert len(cameras) == 5 and np.allclose(cameras[0]["R"], json.loads(Path(reference_files.camera).read_text())["R"])
    # The NeRF row is not empty: the renderer saw the body (normal maps too).
    nerf_row, normal_row = strip[:SIZE], strip[SIZE + 2:2 * SIZE + 2]
    assert (normal_row[..., 2] > 32).mean() > 0.03 and nerf_row.max() > 0
    assert not list((tmp_path / "out").glob(".*.tmp"))  # nothing half-written left behind


def _run_pose_mode(tmp_path, checkpoints, reference_files, frames: int, window: int, overlap: int):
    """Pose mode over a ``frames``-frame driver with ``window``-frame windows; returns (result, frames per denoiser call)."""
    nerf_dir, gas_dir = checkpoints
    config = tiny_config("mode=pose", f"sampling.window={window}", f"sampling.overlap={overlap}",
                         "output.write_video=false")
    poses = driver_sequence(tmp_path / "driver.json", frames, betas=[2.0] + [0.0] * 9)
    seen_frames: list[int] = []
    with SingleImageGenerator.open(nerf_dir, gas_dir, config) as generator:
        hook = generator.model.denoiser.register_forward_pre_hook(
            lambda module, args: seen_frames.append(int(args[0].shape[1])))
        result = generator.generate(replace(reference_files, poses=poses), tmp_path / "pose", progress=False)
        hook.remove()
    assert result.num_frames == frames and len(list(result.frames_dir.glob("*.png"))) == frames
    record = json.loads((tmp_path / "pose" / "generation.json").read_text())
    assert record["guidance_scales"] == [config.guidance.pose_scale] * frames  # one per written driver frame
    smpl = json.loads((tmp_path / "pose" / "smpl.json").read_text())
    reference = json.loads(Path(reference_files.smpl).read_text())
    assert len(smpl) == frames and all(np.allclose(frame["betas"], reference["betas"]) for frame in smpl)
    cameras = json.loads((tmp_path / "pose" / "cameras.json").read_text())
    assert all(np.allclose(camera["R"], reference_camera["R"]) for camera in cameras
               for reference_camera in [json.loads(Path(reference_files.camera).read_text())])
    return result, seen_frames


def test_pose_mode_uses_windows_and_keeps_reference_shape(tmp_path, checkpoints, reference_files):
    _, seen = _run_pose_mode(tmp_path, checkpoints, reference_files, frames=6, window=4, overlap=1)
    # 7 frames with the reference: windows [0,1,2,3] [0,3,4,5] [0,4,5,6]; 2 steps, guided in one batch per window.
    assert max(seen) <= 4 and len(seen) == 2 * 3


@pytest.mark.slow
def test_pose_mode_30_frames_with_window_8_never_shows_the_denoiser_more_than_8(tmp_path, checkpoints, reference_files):
    _, seen = _run_pose_mode(tmp_path, checkpoints, reference_files, frames=30, window=8, overlap=2)
    assert max(seen) <= 8 and len(seen) >= 2 * math.ceil(30 / 7)


def test_command_line_reports_bad_files_and_keep_driver_shape(tmp_path, checkpoints, reference_files, capsys):
    import shutil

    nerf_dir, gas_dir = checkpoints
    nerf_run = tmp_path / "nerf_checkpoint"  # the train-nerf checkpoint layout: model/ + training state
    shutil.copytree(nerf_dir, nerf_run / "model")
    torch.save({}, nerf_run / "training_state.pt")
    (tmp_path / "empty").mkdir()
    poses = driver_sequence(tmp_path / "driver.json", 3, betas=[1.5] + [0.0] * 9)
    base = [str(reference_files.image), "--out", str(tmp_path / "x"), "--mask", str(reference_files.mask), "--preset", "tiny"]
    assert main_from_args([*base, "--nerf", str(tmp_path / "empty"), "--diffusion", str(gas_dir)]) == 2
    assert "NeRF checkpoint" in capsys.readouterr().err
    assert main_from_args([*base, "--nerf", str(nerf_run), "--diffusion", str(tmp_path / "empty")]) == 2
    assert "empty is neither" in capsys.readouterr().err
    common = [str(reference_files.image), "--nerf", str(nerf_run), "--diffusion", str(gas_dir), "--preset", "tiny",
              "--mask", str(reference_files.mask), "--smpl", str(reference_files.smpl),
              "--camera", str(reference_files.camera), "--set", "sampling.steps=1", "--set", "nerf.reference_size=32"]
    assert main_from_args([*common, "--out", str(tmp_path / "bad"), "--mode", "pose",
                           "--poses", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert main_from_args([*common, "--out", str(tmp_path / "cli"), "--mode", "pose", "--poses", str(poses),
                           "--keep-driver-shape", "--set", "output.write_video=false"]) == 0
    smpl = json.loads((tmp_path / "cli" / "smpl.json").read_text())
    assert len(smpl) == 3 and all(frame["betas"][0] == 1.5 for frame in smpl)


# --------------------------------------------------------------------------------------- estimators
def test_missing_mask_or_fit_without_estimator_weights_says_what_to_set(tmp_path, body_model, reference_files):
    with pytest.raises(GenerateInputError, match="image.png.*estimators.masking.detector_weights"):
        read_generation_inputs(reference_files.image, body_model=body_model)
    with pytest.raises(GenerateInputError, match="image.png.*estimators.keypoint_weights"):
        read_generation_inputs(reference_files.image, mask_path=reference_files.mask, body_model=body_model)


def test_estimators_fill_in_mask_smpl_and_camera_and_generation_runs_on_them(tmp_path, body_model, reference_files,
                                                                             checkpoints):
    """Person boxes, SAM masks and keypoints come from stand-ins (the silhouette's box, the silhouette, the
    reference body's projected COCO keypoints); segmentation plumbing and the monocular fit are real."""
    from gas_core.body.fit.fitter import CocoRegressor
    from gas_core.body.fit.monocular import project_video_keypoints
    from gas_core.segment.detect import Detections
    from pipelines.generate import ReferenceEstimator

    silhouette = np.asarray(Image.open(reference_files.mask)) > 0
    rows, cols = np.nonzero(silhouette)
    box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float32)
    camera = read_camera_file(reference_files.camera)
    smpl = read_smpl_file(reference_files.smpl, body_model)
    with torch.no_grad():
        vertices = body_model(SMPLParams.from_records([smpl])).vertices
        coco = CocoRegressor.for_body_model(body_model).regress(vertices).double().numpy()
    keypoints = project_video_keypoints(coco, camera)[0]

    class BoxDetector:
        def detect(self, frame):
            return Detections(box[None], np.array([0.9], np.float32))

    class SilhouetteMasker:
        def mask(self, frame, person_box):
            assert np.allclose(person_box, box)
            return silhouette

    estimator = ReferenceEstimator(tiny_config().estimators, body_model, person_detector=BoxDetector(),
                                   box_masker=SilhouetteMasker(), keypoint_detector=lambda image, person_box: keypoints)
    inputs = read_generation_inputs(reference_files.image, body_model=body_model, estimator=estimator)
    assert inputs.sources["mask"] == "gas_core.segment" and np.array_equal(inputs.mask > 0, silhouette)
    assert inputs.sources["smpl"] == "gas_core.body.fit.monocular"
    with torch.no_grad():
        fitted = CocoRegressor.for_body_model(body_model).regress(
            body_model(SMPLParams.from_records([inputs.smpl])).vertices).double().numpy()[0]
    reprojected = inputs.camera.project(fitted)
    assert np.nanmean(np.linalg.norm(reprojected - keypoints[:, :2], axis=1)) < 2.0  # pixels, at 64 px
    # Generation on the estimated fit (world = camera frame, y down: turned upright for the orbit).
    nerf_dir, gas_dir = checkpoints
    with SingleImageGenerator.open(nerf_dir, gas_dir, tiny_config("num_views=3", "output.write_video=false")) as generator:
        generator.estimator = estimator
        result = generator.generate(GenerateInputs(image=reference_files.image), tmp_path / "estimated", progress=False)
    assert result.num_frames == 3
    strip = np.asarray(Image.open(result.strip))
    normal_row = strip[SIZE + 2:2 * SIZE + 2, :SIZE]
    overlap = ((normal_row[..., 2] > 32) & silhouette).sum() / silhouette.sum()
    assert overlap > 0.7  # the estimated body covers the person in the reference view


@pytest.mark.gpu
def test_view_mode_on_cuda_in_fp16(tmp_path, checkpoints, reference_files):
    nerf_dir, gas_dir = checkpoints
    config = tiny_config("num_views=4", "device=cuda", "dtype=auto", "nerf.bf16=true")
    with SingleImageGenerator.open(nerf_dir, gas_dir, config) as generator:
        assert next(generator.model.denoiser.parameters()).dtype == torch.float16
        result = generator.generate(reference_files, tmp_path / "cuda", progress=False)
    assert result.num_frames == 4 and count_frames(result.video) == 4
    record = json.loads((tmp_path / "cuda" / "generation.json").read_text())
    assert record["dtype"] == "float16" and record["device"].startswith("cuda")


def test_a_driving_video_is_preprocessed_into_its_pose_sequence(tmp_path, checkpoints, reference_files,
                                                                synthetic_tiktok_root):
    """Pose mode driven by a video: the walking synthetic video (and its ground-truth keypoints) is masked
    and fitted like the tiktok dataset, and its per-frame poses drive the reference."""
    import shutil

    from pipelines.generate import generate, is_driving_video

    video = tmp_path / "walk"
    shutil.copytree(synthetic_tiktok_root / "00002", video)
    shutil.copytree(synthetic_tiktok_root / "_groundtruth" / "00002", tmp_path / "_groundtruth" / "walk")
    assert is_driving_video(video) and not is_driving_video(reference_files.smpl)
    nerf_dir, gas_dir = checkpoints
    config = tiny_config("mode=pose", "sampling.steps=1", "output.write_video=false", "driver.segment_frames=10",
                         "driver.min_segment_frames=6", "driver.crop_size=64", "pose.align_orientation=true")
    result = generate(replace(reference_files, poses=video), tmp_path / "out", nerf_checkpoint=nerf_dir,
                      diffusion_checkpoint=gas_dir, config=config, progress=False)
    assert result.num_frames == 20  # two 10-frame segments of the 20-frame video
    poses = np.load(tmp_path / "out" / "driver" / "poses.npz")
    assert poses["body_pose"].shape == (20, 23, 3) and np.abs(np.diff(poses["body_pose"], axis=0)).max() > 0
    assert is_driving_video(tmp_path / "out" / "driver" / "shards")  # the driver's video shards are kept


# --------------------------------------------------------------------------------------- fail fast
def _no_models(monkeypatch) -> None:
    """Loading a model (or preprocessing a driving video) fails the test: input errors must come first."""
    def refuse(*args, **kwargs):
        raise RuntimeError("a model was loaded before the input files were checked")

    monkeypatch.setattr(SingleImageGenerator, "open", classmethod(refuse))
    monkeypatch.setattr("pipelines.generate.run.driving_video_poses", refuse)


def test_bad_input_files_fail_before_any_model_loads(tmp_path, reference_files, monkeypatch):
    import time

    _no_models(monkeypatch)
    models = tmp_path / "models"
    models.mkdir()
    Image.new("L", (10, 10)).save(tmp_path / "small_mask.png")
    camera = json.loads(Path(reference_files.camera).read_text())
    cases = {
        "broken.png.*not a readable image": {"image": _write(tmp_path / "broken.png", "\x89PNG not really")},
        "junk_mask.png.*not a readable image": {"mask": _write(tmp_path / "junk_mask.png", "junk")},
        "small_mask.png is 10x10 but the image is 64x64": {"mask": tmp_path / "small_mask.png"},
        "bad_smpl.json is not valid JSON": {"smpl": _write(tmp_path / "bad_smpl.json", "{betas: ")},
        "bad_camera.json is not valid JSON": {"camera": _write(tmp_path / "bad_camera.json", "[")},
        "camera_wide.json is for 128x64": {"camera": _write(tmp_path / "camera_wide.json",
                                                             {**camera, "width": 128})},
        "both an SMPL and a camera": {"camera": None},
    }
    config = tiny_config()
    for message, change in cases.items():
        started = time.perf_counter()
        with pytest.raises(GenerateInputError, match=message):
            generate(replace(reference_files, **change), tmp_path / "out", nerf_checkpoint=models,
                     diffusion_checkpoint=models, config=config)
        assert time.perf_counter() - started < 30  # (seconds; the point is that no model was loaded)
    pose = tiny_config("mode=pose")
    (tmp_path / "dance.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 and then nothing")
    for message, poses in (("nope.json does not exist", tmp_path / "nope.json"),
                           ("poses.npz is not a readable NPZ", _write(tmp_path / "poses.npz", "zip? no")),
                           ("driving video .*dance.mp4 is not readable", tmp_path / "dance.mp4"),
                           ("pose mode needs a pose sequence", None)):
        with pytest.raises(GenerateInputError, match=message):
            generate(replace(reference_files, poses=poses), tmp_path / "out", nerf_checkpoint=models,
                     diffusion_checkpoint=models, config=pose)
    with pytest.raises(GenerateInputError, match="NeRF checkpoint .*absent does not exist"):
        generate(reference_files, tmp_path / "out", nerf_checkpoint=tmp_path / "absent", diffusion_checkpoint=models,
                 config=config)
    check_input_files(reference_files, config)  # the good files pass
    assert not (tmp_path / "out").exists()


def _driver_mp4(folder: Path, synthetic_tiktok_root: Path) -> Path:
    """The synthetic walk as an MP4 of its own, without the ground truth kept aside for synthetic videos."""
    from gas_core.videoio import write_mp4

    frames = [np.asarray(Image.open(path).convert("RGB"))
              for path in sorted((synthetic_tiktok_root / "00002" / "images").iterdir())]
    return write_mp4(np.stack(frames), folder / "walk.mp4", 30.0)


def test_a_driving_video_without_keypoint_weights_names_the_driver_setting_and_leaves_nothing(
        tmp_path, reference_files, synthetic_tiktok_root, monkeypatch):
    video = _driver_mp4(tmp_path, synthetic_tiktok_root)
    config = tiny_config("mode=pose", "driver.segment_frames=10", "driver.min_segment_frames=6", "driver.crop_size=64")
    with monkeypatch.context() as patch:  # before anything loads or is written
        _no_models(patch)
        with pytest.raises(GenerateInputError, match="walk.mp4.*set driver.keypoints.detector_weights") as caught:
            generate(replace(reference_files, poses=video), tmp_path / "out", nerf_checkpoint=tmp_path,
                     diffusion_checkpoint=tmp_path, config=config)
        assert "video.keypoints" not in str(caught.value)
        assert not (tmp_path / "out").exists()
        with pytest.raises(GenerateInputError, match="driver.keypoints.detector_weights .*absent.pt does not exist"):
            generate(replace(reference_files, poses=video), tmp_path / "out", nerf_checkpoint=tmp_path,
                     diffusion_checkpoint=tmp_path,
                     config=replace(config, driver=replace(config.driver, keypoints=replace(
                         config.driver.keypoints, detector_weights=str(tmp_path / "absent.pt")))))
    # The preprocessing itself (masks, then the fit) fails the same way, and takes back what it made.
    for work_dir in (tmp_path / "fresh" / "driver", tmp_path / "rerun" / "driver"):
        if "rerun" in str(work_dir):
            work_dir.mkdir(parents=True)  # an earlier run's folder is kept, but nothing of this run
        with pytest.raises(GenerateInputError, match="walk.mp4.*set driver.keypoints.detector_weights") as caught:
            driving_video_poses(video, work_dir, config)
        assert "video.keypoints" not in str(caught.value)
        assert not (work_dir / "shards").exists()
        assert work_dir.exists() == ("rerun" in str(work_dir))
