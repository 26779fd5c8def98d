"""The NeRF model: render shapes and ranges, empty space, gradients, presets, save/load."""

from __future__ import annotations

import inspect
from dataclasses import asdict, fields

import pytest
import torch

from gas_core.nerf import GeneralizableHumanNeRF, NeRFModelConfig, load_nerf
from gas_core.nerf.sampling import SurfaceProximityGrid, camera_rays, pixel_centers, ray_box_intersection

from .conftest import make_reference, orbit

SIZE = 32


def small_model(**overrides) -> GeneralizableHumanNeRF:
    torch.manual_seed(0)
    settings = dict(image_size=SIZE, triplane_resolution=8, volume_resolution=8, probes_per_ray=24,
                    samples_per_ray=6, chunk_rays=512, visibility_resolution=16)
    settings.update(overrides)
    return GeneralizableHumanNeRF.from_preset("tiny", **settings).eval()


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
