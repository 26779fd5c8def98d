"""The body prior keeps opacity where the fitted body is, on the views where NeRFs lose it.

Each case is a view that made a trained NeRF drop the body on bodies it had not seen: a thin limb
across the image, a thigh seen end-on (a squat from the front) and a subject under 3 % of the image.
The network is the ``tiny`` one, untrained, or with its density head silenced (the worst a network
can do on an unfamiliar body: no density at all). The target is the body mesh's rasterised silhouette:
opacity >= 0.5 on at least 95 % of its pixels, while pixels more than two pixels away stay empty.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from gas_core.body.smpl import SMPLParams
from gas_core.cameras import Camera, look_at
from gas_core.nerf import CameraBatch, GeneralizableHumanNeRF, NeRFModelConfig, PosedBody, ReferenceView
from gas_core.nerf.model import body_prior_occupancy


@functools.cache
def model(body_prior_density: float | None = None, *, silent: bool, gate: bool = True) -> GeneralizableHumanNeRF:
    torch.manual_seed(0)
    overrides = dict(image_size=32, triplane_resolution=8, volume_resolution=8, visibility_resolution=16,
                     chunk_rays=2048, density_mask_gate=gate)
    if body_prior_density is not None:
        overrides["body_prior_density"] = body_prior_density
    network = GeneralizableHumanNeRF.from_preset("tiny", **overrides).eval()
    if silent:  # the network predicts no density anywhere
        with torch.no_grad():
            network.density_head.weight.zero_()
            network.density_head.bias.fill_(-40.0)
    return network


def camera(eye, target, size: int, focal: float) -> Camera:
    R, t = look_at(np.asarray(eye, float), np.asarray(target, float))
    K = np.array([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    return Camera(K=K, R=R, t=t, width=size, height=size)


def silhouette(body: PosedBody, view: Camera) -> torch.Tensor:
    """(H, W) bool: the body mesh rasterised in ``view``."""
    from gas_core.render.normals import NormalMapRenderer

    with NormalMapRenderer(view.width, view.height) as renderer:
        normals = renderer.render_views(body.vertices[0].numpy(), body.faces.numpy(), [view])
    return torch.from_numpy(normals[0].max(axis=-1) > 0)


def posed(body_model, body_pose: dict[int, tuple[float, float, float]]) -> PosedBody:
    params = SMPLParams.zeros(1)
    pose = params.body_pose.clone()
    for joint, angles in body_pose.items():
        pose[0, joint - 1] = torch.tensor(angles)
    return PosedBody.from_body_model(body_model, SMPLParams(betas=params.betas, body_pose=pose,
                                                            global_orient=params.global_orient,
                                                            transl=params.transl, scale=params.scale))


def render_opacity(network: GeneralizableHumanNeRF, body: PosedBody, view: Camera) -> torch.Tensor:
    """(H, W) opacity of ``body`` seen by ``view``; the reference is a 32 px front view of the body."""
    size = 32
    front = camera((0.0, 0.0, 3.0), (0.0, 0.0, 0.0), size, focal=40.0)
    generator = torch.Generator().manual_seed(1)
    reference = ReferenceView(image=torch.rand(1, 3, size, size, generator=generator),
                              mask=silhouette(body, front).float()[None, None], camera=CameraBatch.from_cameras([front]),
                              body=body)
    return network.render(reference, CameraBatch.from_cameras([view]), body).opacity[0, 0]


def thin_limb(body_model) -> tuple[PosedBody, Camera]:
    """The T-posed left arm across a 32 px view from the front: about 3 px thick."""
    body = posed(body_model, {})
    vertices = body.vertices[0]
    arm = vertices[vertices[:, 0] > vertices[:, 0].max() - 0.55]
    centre = arm.mean(dim=0).numpy()
    return body, camera(centre + np.array([0.0, 0.0, 2.0]), centre, 32, focal=32 * 2.0 / 0.8)


def foreshortened_thigh(body_model) -> tuple[PosedBody, Camera]:
    """A deep squat (hips and knees bent 90 degrees) seen from the front: the thighs point at the camera."""
    body = posed(body_model, {1: (-math.pi / 2, 0.0, 0.0), 2: (-math.pi / 2, 0.0, 0.0),
                              4: (math.pi / 2, 0.0, 0.0), 5: (math.pi / 2, 0.0, 0.0)})
    vertices = body.vertices[0]
    centre = vertices.mean(dim=0).numpy()
    return body, camera(centre + np.array([0.0, 0.2, 2.5]), centre, 32, focal=32 * 2.5 / 1.6)


def small_subject(body_model) -> tuple[PosedBody, Camera]:
    """A whole standing body far away in a 64 px view: under 3 % of the image."""
    body = posed(body_model, {16: (0.0, 0.0, -1.0), 17: (0.0, 0.0, 1.0)})
    centre = body.vertices[0].mean(dim=0).numpy()
    return body, camera(centre + np.array([0.0, 0.0, 8.0]), centre, 64, focal=64 * 8.0 / 12.0)


CASES = {"thin limb": thin_limb, "foreshortened thigh": foreshortened_thigh, "small subject": small_subject}


@pytest.mark.parametrize("case", sorted(CASES))
def test_opacity_covers_the_body_where_a_network_loses_it(body_model, case):
    body, view = CASES[case](body_model)
    mask = silhouette(body, view)
    fraction = float(mask.float().mean())
    assert 0.002 < fraction  # the case is in view
    if case == "small subject":
        assert fraction < 0.03
    if case == "foreshortened thigh":  # the knees are much nearer the camera than the hips
        vertices = body.vertices[0]
        assert float(vertices[:, 2].max() - body.vertices[0, :, 2].median()) > 0.3
    far = F.max_pool2d(mask.float()[None, None], 5, stride=1, padding=2)[0, 0] < 0.5  # > 2 px from the body

    silent = render_opacity(model(silent=True), body, view)
    assert float((silent[mask] >= 0.5).float().mean()) >= 0.95
    assert float((silent[far] >= 0.5).float().mean()) < 0.02  # the prior is the body, not a blob
    # without the prior the silenced network drops the body: what the views looked like before
    without = render_opacity(model(0.0, silent=True), body, view)
    assert float((without[mask] >= 0.5).float().mean()) < 0.05


def test_the_prior_only_adds_opacity_to_an_untrained_network(body_model):
    body, view = foreshortened_thigh(body_model)
    with_prior = render_opacity(model(silent=False), body, view)
    without = render_opacity(model(0.0, silent=False), body, view)
    assert bool((with_prior >= without - 1e-5).all())
    assert float((with_prior[silhouette(body, view)] >= 0.5).float().mean()) >= 0.95


def test_density_the_reference_sees_as_empty_is_suppressed(body_model):
    """The mask IoU lost on unseen bodies was an outline: learned density in the sampling band and the
    prior's soft edge around the body. A point that projects outside the reference silhouette is empty
    space whatever the target view, so the gate removes that outline while the body stays covered."""
    body = posed(body_model, {16: (0.0, 0.0, -1.0), 17: (0.0, 0.0, 1.0)})
    front = camera((0.0, 0.0, 3.0), (0.0, 0.0, 0.0), 32, focal=40.0)  # the reference view itself as the target
    mask = silhouette(body, front)
    outside = ~mask
    untrained = {gate: render_opacity(model(silent=False, gate=gate), body, front) for gate in (False, True)}
    prior = {gate: render_opacity(model(silent=True, gate=gate), body, front) for gate in (False, True)}
    outline = {(name, gate): int((opacity[gate][outside] >= 0.5).sum())
               for name, opacity in (("untrained", untrained), ("prior", prior)) for gate in (False, True)}
    assert outline["untrained", False] > 0.3 * int(mask.sum())  # the band's density: a thick outline
    assert outline["untrained", True] < 0.3 * outline["untrained", False]
    assert outline["prior", True] < 0.5 * outline["prior", False]  # the prior's soft edge outside the body is trimmed too
    for opacity in (untrained[True], prior[True]):
        assert float((opacity[mask] >= 0.5).float().mean()) >= 0.95


def test_occupancy_is_inside_one_and_outside_zero():
    vertices = torch.zeros(4, 3)
    normals = torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3)
    points = torch.tensor([[0.0, 0.0, -0.05], [0.0, 0.0, 0.01], [0.0, 0.0, 0.05], [0.3, 0.0, -0.01]])
    occupancy = body_prior_occupancy(points, vertices, normals, margin=0.01, softness=0.005, sideways_limit=0.4)
    assert float(occupancy[0]) > 0.99 and abs(float(occupancy[1]) - 0.5) < 1e-6 and float(occupancy[2]) < 1e-3
    assert float(occupancy[3]) > 0.9  # sideways along the tangent plane: still inside
    with pytest.raises(ValueError, match="softness"):
        body_prior_occupancy(points, vertices, normals, margin=0.01, softness=0.0, sideways_limit=0.04)


def test_config_validates_and_old_models_load_with_the_prior_on(tmp_path):
    import json

    for name, bad in (("body_prior_density", -1.0), ("body_prior_margin", float("nan")), ("body_prior_softness", 0.0)):
        with pytest.raises(ValueError, match=name):
            NeRFModelConfig(**{name: bad})
    network = model(0.0, silent=False)
    network.save_pretrained(tmp_path / "saved")
    path = tmp_path / "saved" / "config.json"
    config = json.loads(path.read_text())
    assert config["body_prior_density"] == 0.0
    for name in ("body_prior_density", "body_prior_margin", "body_prior_softness"):
        del config[name]  # a model saved before the prior existed
    path.write_text(json.dumps(config))
    loaded = GeneralizableHumanNeRF.from_pretrained(tmp_path / "saved")
    defaults = NeRFModelConfig()
    assert loaded.settings.body_prior_density == defaults.body_prior_density > 0
    assert (loaded.settings.body_prior_margin, loaded.settings.body_prior_softness) == (
        defaults.body_prior_margin, defaults.body_prior_softness)
