"""The reference's own pixels: zooming onto the subject (``reference_crop``: windows, cameras that follow,
scale invariance) and how older models load."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from gas_core.nerf import CameraBatch, GeneralizableHumanNeRF, ReferenceView, load_nerf
from gas_core.nerf.crop import crop_reference, subject_window

from .conftest import make_reference, orbit, small_model

SIZE = 32


def shrink(reference: ReferenceView, factor: int) -> ReferenceView:
    """``reference`` with its images shrunk by an integer ``factor`` about the image centre (cameras follow)."""
    size = reference.camera.width
    inner = size // factor
    offset = (size - inner) // 2
    pad = (offset, size - inner - offset, offset, size - inner - offset)
    image = F.pad(F.avg_pool2d(reference.image, factor), pad)
    mask = F.pad(F.avg_pool2d(reference.mask, factor), pad)
    K = reference.camera.K.clone()
    K[:, :2] /= factor
    K[:, 0, 2] += offset
    K[:, 1, 2] += offset
    camera = CameraBatch(K=K, R=reference.camera.R, t=reference.camera.t, width=size, height=size)
    return ReferenceView(image=image, mask=mask, camera=camera, body=reference.body)


def smooth_reference(body, size: int) -> ReferenceView:
    """A reference of ``body`` whose mask is the body's projected box and whose colours vary smoothly."""
    reference = make_reference(body, size)
    uv, _ = reference.camera.project(body.vertices)
    mask = torch.zeros_like(reference.mask)
    for b in range(body.batch_size):
        low, high = uv[b].amin(0).floor().long().clamp(0, size), uv[b].amax(0).ceil().long().clamp(0, size)
        mask[b, :, low[1]:high[1], low[0]:high[0]] = 1.0
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    image = torch.stack([xs, ys, 0.5 + 0.4 * torch.sin(3.0 * xs)])[None].expand(body.batch_size, -1, -1, -1)
    return ReferenceView(image=image.clone(), mask=mask, camera=reference.camera, body=body)


def test_window_is_the_padded_subject_box_with_the_image_aspect():
    mask = torch.zeros(2, 1, 40, 80)
    mask[0, :, 10:20, 30:34] = 1.0  # 4 wide, 10 tall: the window is 20 wide by 10 tall before padding
    windows = subject_window(mask, None, 80, 40, padding=0.25)
    x0, y0, x1, y1 = windows[0].tolist()
    assert (x0 + x1) / 2 == pytest.approx(32.0) and (y0 + y1) / 2 == pytest.approx(15.0)
    assert x1 - x0 == pytest.approx(30.0) and y1 - y0 == pytest.approx(15.0)
    assert windows[1].tolist() == [0.0, 0.0, 80.0, 40.0]  # nothing to crop to: the whole image
    uv = torch.tensor([[[50.0, 5.0], [60.0, 15.0], [500.0, 5.0]]]).expand(2, -1, -1)  # the last is off-image
    both = subject_window(mask, uv, 80, 40, padding=0.0)
    assert both[0].tolist() == pytest.approx([30.0, 5.0, 60.0, 20.0])  # mask box x 30..34 joined with 50..60
    assert both[1].tolist() == pytest.approx([45.0, 5.0, 65.0, 15.0])
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="padding"):
            subject_window(mask, None, 80, 40, padding=bad)
    with pytest.raises(ValueError, match="mask"):
        subject_window(mask, None, 40, 40, padding=0.1)


def test_cropped_camera_sees_the_same_scene(posed_bodies):
    reference = shrink(smooth_reference(posed_bodies, 64), 2)  # the bodies about 30 px tall
    cropped = crop_reference(reference, padding=0.1)
    assert cropped.image.shape == reference.image.shape and cropped.mask.shape == reference.mask.shape
    torch.testing.assert_close(cropped.camera.R, reference.camera.R)
    uv, depth = reference.camera.project(posed_bodies.vertices)
    uv_cropped, depth_cropped = cropped.camera.project(posed_bodies.vertices)
    torch.testing.assert_close(depth_cropped, depth)
    for b in range(2):
        # the subject is zoomed in: the projected body spans more pixels, and fills the padded window
        extent, extent_cropped = uv[b].amax(0) - uv[b].amin(0), uv_cropped[b].amax(0) - uv_cropped[b].amin(0)
        assert float((extent_cropped / extent).min()) > 1.2
        assert float(extent_cropped.max()) == pytest.approx(64 / 1.2, rel=0.05)
        # every vertex's colour in the crop is the colour under it in the original (the image is smooth)
        def colour(view, points):
            grid = (points / 64 * 2 - 1)[None, :, None]
            return F.grid_sample(view.image[b:b + 1], grid, align_corners=False)[0, :, :, 0]

        error = (colour(cropped, uv_cropped[b]) - colour(reference, uv[b])).abs().mean()
        shifted = (colour(cropped, uv_cropped[b] + 0.5) - colour(reference, uv[b])).abs().mean()
        assert float(error) < 0.01 and float(shifted) > 2 * float(error)  # half a pixel off is clearly worse
    assert float((cropped.mask > 0.5).float().mean()) > 1.3 * float((reference.mask > 0.5).float().mean())
    with pytest.raises(ValueError, match="reference"):
        crop_reference(reference.image, padding=0.1)


def test_a_subject_small_in_frame_renders_like_a_large_one(posed_bodies):
    body = posed_bodies.index(0)
    reference = smooth_reference(body, SIZE)
    small = shrink(reference, 2)
    target = orbit(SIZE, views=4).index(1)
    gaps = {}
    for crop in (False, True):
        model = small_model(reference_crop=crop, body_prior_density=0.0,
                            density_mask_gate=False)
        large_render = model.render(reference, target, body)
        small_render = model.render(small, target, body)
        seen = large_render.opacity > 0.05
        assert int(seen.sum()) > 20
        gaps[crop] = float((large_render.rgb - small_render.rgb).abs().expand(1, 3, -1, -1)[seen.expand(1, 3, -1, -1)]
                           .mean()) + float((large_render.opacity - small_render.opacity).abs().mean())
    assert gaps[True] < 0.5 * gaps[False], gaps


def test_reference_crop_setting_and_older_checkpoints(tmp_path, posed_bodies):
    with pytest.raises(ValueError, match="reference_crop"):
        GeneralizableHumanNeRF.from_preset("tiny", reference_crop="yes")
    model = small_model(reference_crop=False)
    model.save_pretrained(tmp_path / "saved")
    config_path = tmp_path / "saved" / "config.json"
    config = json.loads(config_path.read_text())
    assert config["reference_crop"] is False
    del config["reference_crop"]  # as written before the option existed
    config_path.write_text(json.dumps(config))
    loaded = load_nerf(tmp_path / "saved")  # loads with the crop off, as such a model was trained
    assert loaded.settings == model.settings
    reference = make_reference(posed_bodies, SIZE)
    camera = orbit(SIZE, views=4).index(torch.tensor([1, 2]))
    torch.testing.assert_close(loaded.render(reference, camera, posed_bodies).rgb,
                               model.render(reference, camera, posed_bodies).rgb, atol=1e-6, rtol=0)
    # new models have the crop on, and keep it through save and load
    fresh = small_model()
    assert fresh.settings.reference_crop
    fresh.save_pretrained(tmp_path / "fresh")
    assert load_nerf(tmp_path / "fresh").settings == fresh.settings
    cropped_on = GeneralizableHumanNeRF.from_pretrained(tmp_path / "saved", reference_crop=True)
    assert cropped_on.settings.reference_crop
