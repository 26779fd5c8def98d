"""The NeRF model: render shapes and ranges, empty space, gradients, presets, save/load."""

from __future__ import annotations

import inspect
from dataclasses import asdict, fields, replace

import pytest
import torch

from gas_core.nerf import GeneralizableHumanNeRF, NeRFModelConfig, load_nerf
from gas_core.nerf.sampling import SurfaceProximityGrid, camera_rays, pixel_centers, ray_box_intersection

from .conftest import make_reference, orbit, small_model

SIZE = 32


def targets(posed_bodies):
    cameras = orbit(SIZE, views=4)
    return cameras.index(torch.tensor([1, 2])), posed_bodies


def test_render_shapes_ranges_and_empty_space(posed_bodies):
    model = small_model()
    reference = make_reference(posed_bodies, SIZE)
    camera, body = targets(posed_bodies)
    result = model.render(reference, camera, body, chunk_rays=300)
    assert result.rgb.shape == (2, 3, SIZE, SIZE)
    assert result.opacity.shape == (2, 1, SIZE, SIZE) and result.depth.shape == (2, 1, SIZE, SIZE)
    for image in (result.rgb, result.opacity):
        assert bool(torch.isfinite(image).all()) and image.min() >= 0 and image.max() <= 1
    assert result.opacity.max() > 0.05  # rays through the body are not empty
    assert bool((result.depth[result.opacity == 0] == 0).all())
    _, vertex_depth = camera.project(body.vertices)  # rendered depths lie within the body's depth range
    band = model.settings.surface_band
    for b in range(2):
        covered = result.depth[b][result.opacity[b] > 0.05]
        assert covered.min() > vertex_depth[b].min() - band and covered.max() < vertex_depth[b].max() + band
    # rays that never come within the band of the body get exactly zero opacity
    grid = SurfaceProximityGrid(body.vertices, band=model.settings.surface_band, cell_size=model.settings.grid_cell_size)
    origins, directions = camera_rays(camera, pixel_centers(SIZE, SIZE)[None].expand(2, -1, -1))
    entry, exit_ = ray_box_intersection(origins.reshape(-1, 3), directions.reshape(-1, 3),
                                        grid.box_min.repeat_interleave(SIZE * SIZE, 0),
                                        grid.box_max.repeat_interleave(SIZE * SIZE, 0))
    outside = (exit_ <= entry).view(2, 1, SIZE, SIZE)
    assert outside.float().mean() > 0.3
    assert bool((result.opacity[outside] == 0).all()) and bool((result.rgb[outside.expand(-1, 3, -1, -1)] == 0).all())
    assert 0 < result.mlp_queries <= model.settings.samples_per_ray * 2 * SIZE * SIZE


def test_chunking_and_reference_broadcast_do_not_change_the_render(posed_bodies):
    model = small_model()
    reference = make_reference(posed_bodies.index(0), SIZE)
    camera, body = orbit(SIZE, views=4).index(torch.tensor([1, 3])), posed_bodies.index(torch.tensor([0, 0]))
    shared = model.render(reference, camera, body, chunk_rays=10_000)
    chunked = model.render(model.encode_reference(reference), camera, body, chunk_rays=97)
    torch.testing.assert_close(shared.rgb, chunked.rgb, atol=1e-5, rtol=0)
    single = model.render(reference, camera.index(1), body.index(1))
    torch.testing.assert_close(single.opacity[0], shared.opacity[1], atol=1e-5, rtol=0)


def test_training_forward_reaches_every_parameter(posed_bodies):
    model = small_model().train()
    reference = make_reference(posed_bodies, SIZE)
    camera, body = targets(posed_bodies)
    pixels = pixel_centers(SIZE, SIZE)[None].expand(2, -1, -1)[:, ::3]
    result = model(reference, camera, body, pixels, jitter=True, generator=torch.Generator().manual_seed(0))
    assert result.rgb.shape == (2, pixels.shape[1], 3) and result.opacity.shape == (2, pixels.shape[1])
    (result.rgb.mean() + result.opacity.mean()).backward()
    silent = [name for name, parameter in model.named_parameters() if parameter.grad is None
              or not bool(parameter.grad.abs().sum() > 0)]
    # batch norm and fc of the unused ResNet head aside, every trainable tensor gets a gradient
    assert not [name for name in silent if "backbone" not in name], silent
    assert any(parameter.grad is not None for name, parameter in model.named_parameters() if "backbone.layer4" in name)


def test_presets_config_and_validation():
    assert [f.name for f in fields(NeRFModelConfig)] == list(inspect.signature(GeneralizableHumanNeRF.__init__).parameters)[1:]
    defaults = {name: p.default for name, p in inspect.signature(GeneralizableHumanNeRF.__init__).parameters.items()
                if name != "self"}
    assert defaults == asdict(NeRFModelConfig.paper())
    paper = NeRFModelConfig.paper()
    assert (paper.image_size, paper.token_channels, paper.mlp_width, paper.mlp_depth, paper.mlp_skip) == (512, 32, 128, 8, 4)
    assert NeRFModelConfig.tiny().image_size <= 128
    with pytest.raises(ValueError, match="preset"):
        GeneralizableHumanNeRF.from_preset("huge")
    with pytest.raises(ValueError, match="unknown model settings"):
        GeneralizableHumanNeRF.from_preset("tiny", colour="red")
    with pytest.raises(ValueError, match="token_channels"):
        NeRFModelConfig(token_channels=30, transformer_heads=4)
    with pytest.raises(ValueError, match="backbone"):
        GeneralizableHumanNeRF.from_preset("tiny", backbone="vit_b_16")
    assert paper.surface_crossings == 2 and NeRFModelConfig.tiny().surface_crossings == 2
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="surface_crossings"):
            NeRFModelConfig(surface_crossings=bad)
    with pytest.raises(ValueError, match="surface_crossings"):
        GeneralizableHumanNeRF.from_preset("tiny", surface_crossings=0)


def test_save_and_load_give_the_same_renders(tmp_path, posed_bodies):
    model = small_model(mlp_width=48)
    reference = make_reference(posed_bodies, SIZE)
    camera, body = targets(posed_bodies)
    before = model.render(reference, camera, body)
    model.save_pretrained(tmp_path / "saved")
    loaded = GeneralizableHumanNeRF.from_pretrained(tmp_path / "saved")
    assert loaded.settings == model.settings and loaded.settings.mlp_width == 48
    torch.testing.assert_close(loaded.render(reference, camera, body).rgb, before.rgb, atol=1e-6, rtol=0)
    # a training checkpoint folder holds the model in model/
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint / "model")
    (checkpoint / "training_state.pt").write_bytes(b"")
    again = load_nerf(checkpoint)
    assert not again.training
    torch.testing.assert_close(again.render(reference, camera, body).opacity, before.opacity, atol=1e-6, rtol=0)
    with pytest.raises(FileNotFoundError):
        load_nerf(tmp_path / "nothing")


def test_a_checkpoint_saved_before_surface_crossings_loads_with_the_default(tmp_path, posed_bodies):
    import json

    model = small_model(surface_crossings=1)
    model.save_pretrained(tmp_path / "saved")
    config_path = tmp_path / "saved" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["surface_crossings"] == 1
    del config["surface_crossings"]  # as written before the option existed
    config_path.write_text(json.dumps(config))
    loaded = load_nerf(tmp_path / "saved")
    assert loaded.settings.surface_crossings == 2
    assert loaded.settings == replace(model.settings, surface_crossings=2)
    # the weights load unchanged: with one window again, the render is the original model's
    reference = make_reference(posed_bodies, SIZE)
    camera, body = targets(posed_bodies)
    old = GeneralizableHumanNeRF.from_pretrained(tmp_path / "saved", surface_crossings=1).eval()
    torch.testing.assert_close(old.render(reference, camera, body).rgb, model.render(reference, camera, body).rgb,
                               atol=1e-6, rtol=0)


def test_backbone_weights_load_from_a_local_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    model = small_model()
    model.load_backbone_weights(tmp_path / "resnet18.pth")
    torch.testing.assert_close(model.encoder.backbone.conv1.weight, source.conv1.weight)
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="does not match"):
        model.load_backbone_weights(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError):
        model.load_backbone_weights(tmp_path / "missing.pth")


def test_encoder_batch_norm_statistics_stay_frozen_in_training(posed_bodies):
    model = small_model().train()
    before = model.encoder.backbone.bn1.running_mean.clone()
    reference = make_reference(posed_bodies.index(0), SIZE)  # one image: batch statistics would be meaningless
    camera, body = targets(posed_bodies)
    pixels = pixel_centers(SIZE, SIZE)[None, ::5]
    model(reference, camera.index(0), body.index(0), pixels, jitter=True).rgb.sum().backward()
    assert not model.encoder.backbone.bn1.training and model.training
    torch.testing.assert_close(model.encoder.backbone.bn1.running_mean, before)
    assert model.encoder.backbone.bn1.weight.grad is not None


def test_render_reaches_the_torso_behind_a_grazed_arm(monkeypatch):
    """A hole as a trained NeRF makes it: empty space in the arm's band, the torso opaque behind it.

    The body is a point cloud with identity skinning (canonical = world): a slab at z = 0 and an arm
    0.4 m in front of it. The decoder is replaced by a field that is dense only within 4 cm of the slab.
    A pixel whose ray passes 10 cm from the arm's axis (inside its band, missing the arm) is a hole
    with one depth window and opaque with two.
    """
    from gas_core.nerf import CameraBatch, PosedBody, ReferenceView

    from .test_sampling import arm_and_torso

    vertices = arm_and_torso()
    count = vertices.shape[1]
    faces = torch.stack([torch.arange(count - 2), torch.arange(1, count - 1), torch.arange(2, count)], dim=-1)
    body = PosedBody(vertices=vertices, joint_transforms=torch.eye(4).expand(1, 2, 4, 4).clone(), faces=faces,
                     skinning_weights=torch.tensor([[1.0, 0.0]]).expand(count, 2).clone())
    focal, size = 400.0, 16

    def looking_down_from(x: float) -> CameraBatch:  # OpenCV camera at (x, 0, 3) looking along -z
        R = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None]
        K = torch.tensor([[[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]]])
        return CameraBatch(K=K, R=R, t=-(R[0] @ torch.tensor([x, 0.0, 3.0]))[None], width=size, height=size)

    reference = ReferenceView(image=torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)),
                              mask=torch.ones(1, 1, size, size), camera=looking_down_from(0.0), body=body)
    centre = torch.tensor([[[size / 2, size / 2]]])  # the optical axis: the ray straight down from the camera
    opacity = {}
    for crossings in (1, 2):
        # the sampler alone: no body prior (this point cloud's normals are not a closed surface's), no
        # reference-mask gate (the grazing target rays pass points the reference camera does not see)
        model = small_model(surface_crossings=crossings, samples_per_ray=12, probes_per_ray=64,
                            body_prior_density=0.0, density_mask_gate=False)
        encoding = model.encode_reference(reference)
        span = encoding.canonical_max - encoding.canonical_min

        def torso_only(unit, view, *levels, encoding=encoding, span=span):
            world_z = (unit[..., 2] + 1.0) / 2.0 * span[0, 2] + encoding.canonical_min[0, 2]
            sigma_raw = torch.where(world_z.abs() < 0.04, torch.full_like(world_z, 5.0), torch.full_like(world_z, -40.0))
            return sigma_raw, torch.full_like(unit, 0.5)  # (R, S, 3) grey

        monkeypatch.setattr(model, "_decode", torso_only)
        grazing = model(encoding, looking_down_from(0.10), body, centre)
        beside = model(encoding, looking_down_from(0.20), body, centre)
        opacity[crossings] = (float(grazing.opacity), float(beside.opacity))
        assert grazing.mlp_queries == beside.mlp_queries == 12  # one ray, the same budget
    assert opacity[1][0] < 0.05  # the hole: every sample in the arm's empty band
    assert opacity[2][0] > 0.5  # fixed: the torso behind it is sampled
    assert opacity[1][1] > 0.5 and abs(opacity[2][1] - opacity[1][1]) < 1e-6  # away from the arm: unchanged
