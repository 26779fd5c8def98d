"""Shared fixtures of the NeRF tests: the open body model, posed bodies and small orbit cameras."""

from __future__ import annotations

import pytest
import torch

from gas_core.body.smpl import BodyModel, SMPLParams
from gas_core.cameras import OrbitSpec, orbit_cameras
from gas_core.nerf import CameraBatch, GeneralizableHumanNeRF, PosedBody, ReferenceView


@pytest.fixture(scope="session")
def body_model(open_body_model_dir) -> BodyModel:
    return BodyModel(open_body_model_dir)


def random_params(batch: int, seed: int, pose_scale: float = 0.3) -> SMPLParams:
    generator = torch.Generator().manual_seed(seed)
    params = SMPLParams.zeros(batch)
    return SMPLParams(betas=torch.randn(batch, 10, generator=generator) * 0.5,
                      body_pose=torch.randn(batch, 23, 3, generator=generator) * pose_scale,
                      global_orient=torch.randn(batch, 3, generator=generator) * 0.2,
                      transl=torch.randn(batch, 3, generator=generator) * 0.05, scale=params.scale * 1.05)


@pytest.fixture(scope="session")
def posed_bodies(body_model) -> PosedBody:
    """Two bodies in random poses."""
    return PosedBody.from_body_model(body_model, random_params(2, seed=3))


def orbit(size: int, views: int = 4) -> CameraBatch:
    return CameraBatch.from_cameras(orbit_cameras(OrbitSpec(num_views=views, width=size, height=size)))


def make_reference(body: PosedBody, size: int, seed: int = 0) -> ReferenceView:
    """A reference view of ``body`` seen from the front: random colours, the mask a centred box."""
    generator = torch.Generator().manual_seed(seed)
    batch = body.batch_size
    image = torch.rand(batch, 3, size, size, generator=generator)
    mask = torch.zeros(batch, 1, size, size)
    mask[..., size // 8: -size // 8, size // 3: -size // 3] = 1.0
    camera = orbit(size, views=4).index(slice(0, 1))
    camera = CameraBatch(K=camera.K.expand(batch, 3, 3), R=camera.R.expand(batch, 3, 3), t=camera.t.expand(batch, 3),
                         width=size, height=size)
    return ReferenceView(image=image, mask=mask, camera=camera, body=body)


def small_model(**overrides) -> GeneralizableHumanNeRF:
    """A seeded ``tiny`` NeRF at 32 px with small grids, in eval mode; ``overrides`` replace settings."""
    torch.manual_seed(0)
    settings = dict(image_size=32, triplane_resolution=8, volume_resolution=8, probes_per_ray=24,
                    samples_per_ray=6, chunk_rays=512, visibility_resolution=16)
    settings.update(overrides)
    return GeneralizableHumanNeRF.from_preset("tiny", **settings).eval()
