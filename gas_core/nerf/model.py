"""The generalizable human NeRF: one reference image in, the subject rendered under any camera and SMPL pose.

For every sample ``x`` on a target ray (placed only in the band around the posed target body, see
:mod:`gas_core.nerf.sampling`):

0. the reference view is zoomed onto its subject first (``reference_crop``, :mod:`gas_core.nerf.crop`):
   the box of its mask and projected body, padded, is resampled to the reference's pixel size and
   the camera follows, so a person small in the frame is encoded like one filling it;
1. inverse LBS with the skinning weights of the nearest target-body vertex maps ``x`` to the
   canonical point ``x_c`` (the subject's rest pose), and forward LBS with the same weights maps
   ``x_c`` to ``x_o`` in the observation (reference) space;
2. three feature levels are queried from the reference image:

   * global: the ResNet's pooled code is decoded into a canonical triplane, sampled at ``x_c``;
   * point: features of the reference-visible body vertices (sampled from the image feature map
     where each vertex projects) are splatted into a canonical voxel grid, diffused by a small 3D
     convolutional net (a dense, plain-torch stand-in for sparse convolution) and sampled at ``x_c``;
   * pixel: ``x_o`` projected into the reference image samples the feature map, the RGB, the mask
     and an occlusion cue (depth of ``x_o`` against the reference body's depth buffer);

3. each level becomes ``tokens_per_level`` tokens, fused by one transformer layer;
4. an MLP decodes density from the encoded ``x_c`` and the fused density tokens, and colour from its
   hidden state, the fused colour tokens and the encoded view direction (rotated into canonical
   space) -- the paper's equation 1, ``sigma, c = F(x, p, gamma_d(d))``;
5. a body prior adds density inside the posed target body's shell (a soft occupancy from the
   nearest body vertex's tangent plane, :func:`body_prior_occupancy`), so the rendered opacity
   covers at least the fitted body's silhouette however little density the network predicts on a
   body unlike its training set (a child's thin arms, a thigh seen end-on, a subject a few pixels
   tall); the network's own density adds clothing and hair outside the shell, and colour stays
   the network's.
6. the reference-silhouette gate (``density_mask_gate``): a point whose observation-space position
   projects outside the reference mask cannot be occupied, so the learned density and the prior's
   soft edge outside the fitted surface are multiplied by the reference mask sampled there (the
   prior inside the fitted surface is never gated). Without it the outline of learned density left
   in the sampling band and the prior's edge (a grazing ray accumulates the soft occupancy over
   several centimetres) made the rendered silhouette about a centimetre wider than the subject.

Volume rendering composites colour (on black), opacity and depth. Geometry runs in float32;
features, transformer and MLP run in bfloat16 autocast on CUDA when ``use_bf16``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn
from torch.nn import functional as F

from gas_core.nerf.crop import crop_reference
from gas_core.nerf.encoder import ImageEncoder
from gas_core.nerf.lbs import apply_affine, invert_affine, vertex_normals, vertex_transforms
from gas_core.nerf.sampling import SurfaceProximityGrid, camera_rays, pixel_centers, sample_near_surface
from gas_core.nerf.types import CameraBatch, NeRFRender, PosedBody, ReferenceView
from gas_core.presets import PaperDefaults

__all__ = ["NeRFModelConfig", "GeneralizableHumanNeRF", "ReferenceEncoding", "PixelRender", "load_nerf",
           "body_prior_occupancy", "body_signed_distance"]

#: Settings a saved model's config.json lacks when it was written before the option existed, and the value
#: that reproduces how it rendered (fields missing here load with their defaults).
LEGACY_SETTINGS: dict[str, Any] = {"reference_crop": False}
REFERENCE_CROP_PADDING = 0.1  # the reference crop's margin, a fraction of the subject box's longer side
_OCCLUSION_SCALE = 0.1  # metres: depth differences against the reference depth buffer are tanh(d / scale)


@dataclass(frozen=True)
class NeRFModelConfig(PaperDefaults):
    """Hyperparameters of :class:`GeneralizableHumanNeRF` (the same names as its constructor).

    Sizes: ``image_size`` the training resolution (rendering works at any size); ``backbone`` a
    torchvision ResNet; channels of the feature map, triplane, point volume and fusion tokens;
    decoder ``mlp_width`` x ``mlp_depth`` with the input re-injected after layer ``mlp_skip``.
    Sampling (metres): ``surface_band`` half-width of the band around the body that is sampled,
    ``grid_cell_size`` its voxel edge, ``probes_per_ray`` cheap occupancy probes through the body's
    box, ``samples_per_ray`` network queries per ray entering the band, ``window_depth`` how far
    past a band entry samples go, ``surface_crossings`` how many such depth windows one ray may open
    (2: a ray grazing an arm's band also samples the torso behind it; 1: the first window only, the
    sampler before this option; see :func:`gas_core.nerf.sampling.sample_near_surface`).
    ``canonical_margin`` pads the canonical body box of the triplane and volume. Density
    ``sigma = density_scale * softplus(raw + density_bias)`` per metre.
    ``visibility_resolution`` is the reference depth buffer's size, ``occlusion_tolerance`` (metres)
    how far behind it a vertex still counts as visible. ``chunk_rays`` bounds the rays per chunk.
    Body prior (see :func:`body_prior_occupancy`): ``body_prior_density`` (per metre, 0 turns it off)
    is added to the learned density inside the posed target body grown by ``body_prior_margin``
    (metres), with an edge ``body_prior_softness`` (metres) wide; clothing and hair outside that shell
    come from the learned density alone. Models saved before these fields existed load with the
    defaults, i.e. with the prior on; ``body_prior_density=0`` renders exactly as they did.
    ``density_mask_gate``: multiply the learned density, and the prior outside the fitted surface,
    by the reference mask where the sample projects into the reference image (True by default; False
    renders as before the option existed, and suits references that crop the subject).
    ``reference_crop``: zoom each reference onto its subject (the box of its mask and projected body,
    :data:`REFERENCE_CROP_PADDING` of the box's longer side around it) at the reference's pixel size
    before encoding, cameras following (:func:`gas_core.nerf.crop.crop_reference`), so a person small
    in the frame reaches the encoder at the size of one filling it.
    The crop is on for new models; models saved before the option existed load with it off
    (:data:`LEGACY_SETTINGS`), i.e. render as they did.

    Preset ``paper()`` (the defaults): SHERF's sizes: 512 px, ResNet18, 32-channel tokens (3 per level), a
    128-wide 8-layer MLP skipping at 4.
    """

    image_size: int = 512
    backbone: str = "resnet18"
    feature_channels: int = 64
    triplane_resolution: int = 64
    triplane_channels: int = 32
    volume_resolution: int = 64
    volume_channels: int = 32
    token_channels: int = 32
    tokens_per_level: int = 3
    transformer_heads: int = 4
    mlp_width: int = 128
    mlp_depth: int = 8
    mlp_skip: int = 4
    xyz_frequencies: int = 6
    view_frequencies: int = 4
    surface_band: float = 0.05
    grid_cell_size: float = 0.025
    probes_per_ray: int = 64
    samples_per_ray: int = 24
    window_depth: float = 0.3
    surface_crossings: int = 2
    canonical_margin: float = 0.1
    density_scale: float = 50.0
    density_bias: float = -1.0
    visibility_resolution: int = 64
    occlusion_tolerance: float = 0.03
    chunk_rays: int = 16384
    use_bf16: bool = True
    body_prior_density: float = 200.0
    body_prior_margin: float = 0.0
    body_prior_softness: float = 0.005
    density_mask_gate: bool = True
    reference_crop: bool = True

    def __post_init__(self) -> None:
        positive = ("image_size", "feature_channels", "triplane_resolution", "triplane_channels", "volume_resolution",
                    "volume_channels", "token_channels", "tokens_per_level", "transformer_heads", "mlp_width",
                    "mlp_depth", "probes_per_ray", "samples_per_ray", "surface_crossings", "visibility_resolution",
                    "chunk_rays")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("surface_band", "grid_cell_size", "window_depth", "density_scale"):
            if float(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("body_prior_density", "body_prior_margin"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if not isinstance(self.density_mask_gate, bool):
            raise ValueError(f"density_mask_gate must be true or false, got {self.density_mask_gate!r}")
        if not isinstance(self.reference_crop, bool):
            raise ValueError(f"reference_crop must be true or false, got {self.reference_crop!r}")
        if not math.isfinite(float(self.body_prior_softness)) or float(self.body_prior_softness) <= 0:
            raise ValueError(f"body_prior_softness must be positive, got {self.body_prior_softness}")
        if isinstance(self.surface_crossings, bool) or int(self.surface_crossings) != self.surface_crossings:
            raise ValueError(f"surface_crossings must be an integer >= 1, got {self.surface_crossings!r}")
        if self.tokens_per_level < 2:
            raise ValueError(f"tokens_per_level must be >= 2 (density and colour tokens), got {self.tokens_per_level}")
        if self.token_channels % self.transformer_heads:
            raise ValueError(f"token_channels ({self.token_channels}) must be divisible by transformer_heads "
                             f"({self.transformer_heads})")
        if not 0 <= self.mlp_skip < self.mlp_depth:
            raise ValueError(f"mlp_skip must be in [0, mlp_depth), got {self.mlp_skip}")
        if self.triplane_resolution < 4 or self.triplane_resolution & (self.triplane_resolution - 1):
            raise ValueError(f"triplane_resolution must be a power of two >= 4, got {self.triplane_resolution}")
        if self.volume_resolution < 4:
            raise ValueError(f"volume_resolution must be >= 4, got {self.volume_resolution}")

    @classmethod
    def tiny(cls) -> "NeRFModelConfig":
        """A CPU preset for tests and quick training at 64-128 px."""
        return cls(image_size=128, feature_channels=32, triplane_resolution=16, triplane_channels=16,
                   volume_resolution=24, volume_channels=16, token_channels=16, transformer_heads=2, mlp_width=64,
                   mlp_depth=4, mlp_skip=2, xyz_frequencies=4, view_frequencies=2, surface_band=0.08,
                   grid_cell_size=0.04, probes_per_ray=32, samples_per_ray=12, window_depth=0.3,
                   visibility_resolution=48, chunk_rays=4096)

    @classmethod
    def preset(cls, name: str) -> "NeRFModelConfig":
        """The ``"tiny"`` or ``"paper"`` preset."""
        if name == "tiny":
            return cls.tiny()
        if name == "paper":
            return cls.paper()
        raise ValueError(f"preset must be 'tiny' or 'paper', got {name!r}")


@dataclass(frozen=True)
class ReferenceEncoding:
    """What rendering needs from the reference view, computed once by :meth:`GeneralizableHumanNeRF.encode_reference`.

    Attributes:
        feature_map: (B, Cf, h, w) image features at half resolution, of the view seen by ``feature_camera``
            (the reference zoomed onto its subject with ``reference_crop``, else the reference itself).
        image: (B, 3, H, W) masked reference image; mask (B, 1, H, W); both seen by ``camera``, as given.
        depth_buffer: (B, 2, Z, Z) reference body depth (metres, 0 where empty) and its validity, over the
            image of ``feature_camera``.
        triplane: (B, 3, Ct, R, R) canonical xy, xz, yz planes (global level).
        volume: (B, Cv, G, G, G) diffused vertex features over the canonical box (point level), axes x, y, z.
        canonical_min, canonical_max: (B, 3) canonical box, metres.
        rest_to_reference: (B, V, 3, 4) each vertex's blended rest -> reference-world transform.
        camera: the reference cameras.
        feature_camera: the cameras of ``feature_map`` and ``depth_buffer`` (``camera`` with the crop's
            intrinsics, or ``camera`` itself).
    """

    feature_map: Tensor
    image: Tensor
    mask: Tensor
    depth_buffer: Tensor
    triplane: Tensor
    volume: Tensor
    canonical_min: Tensor
    canonical_max: Tensor
    rest_to_reference: Tensor
    camera: CameraBatch
    feature_camera: CameraBatch

    @property
    def batch_size(self) -> int:
        return int(self.feature_map.shape[0])

    def expand(self, batch: int) -> "ReferenceEncoding":
        """This encoding of one reference repeated for ``batch`` targets (no copy)."""
        if self.batch_size == batch:
            return self
        if self.batch_size != 1:
            raise ValueError(f"a reference batch of {self.batch_size} cannot serve {batch} targets (use 1 or {batch})")
        cameras = ("camera", "feature_camera")
        tensors = {f.name: getattr(self, f.name).expand(batch, *getattr(self, f.name).shape[1:])
                   for f in fields(self) if f.name not in cameras}
        for name in cameras:
            camera = getattr(self, name)
            tensors[name] = CameraBatch(K=camera.K.expand(batch, 3, 3), R=camera.R.expand(batch, 3, 3),
                                        t=camera.t.expand(batch, 3), width=camera.width, height=camera.height)
        return ReferenceEncoding(**tensors)


@dataclass
class PixelRender:
    """Rendered pixels: rgb (B, N, 3) in [0, 1] on black, opacity (B, N), depth (B, N) camera z in metres
    (0 where opacity is 0), and ``mlp_queries`` the number of network queries spent."""

    rgb: Tensor
    opacity: Tensor
    depth: Tensor
    mlp_queries: int


@dataclass(frozen=True)
class _TargetGeometry:
    grid: SurfaceProximityGrid
    world_to_rest: Tensor  # (B, V, 3, 4)
    normals: Tensor  # (B, V, 3) outward unit vertex normals of the posed target bodies


def body_prior_occupancy(points: Tensor, nearest_vertices: Tensor, nearest_normals: Tensor, *, margin: float,
                         softness: float, sideways_limit: float) -> Tensor:
    """Soft occupancy (...) in [0, 1] of the posed body grown by ``margin`` metres at ``points`` (..., 3).

    The signed distance is taken to the tangent plane of each point's nearest body vertex
    (``nearest_vertices`` and outward unit ``nearest_normals``, both (..., 3)): negative inside.
    Seen from a point inside the body, its nearest vertex lies nearly along that vertex's normal; a
    point whose nearest vertex lies more than ``sideways_limit`` metres sideways of the normal is
    beside a thin part (a hand, a finger), where the tangent plane says nothing, and counts as
    outside by that excess. Occupancy is ``sigmoid((margin - distance) / softness)``: 1 inside the
    body, 0.5 on the shell ``margin`` outside it, falling to 0 within a few ``softness`` (metres)
    beyond. Near a convex limb the tangent-plane distance of a sample a few centimetres along a
    grazing ray stays small (it grows with the square of that offset), so even rays that cross a thin
    limb between two samples keep most of the limb's occupancy.
    """
    if softness <= 0:
        raise ValueError(f"softness must be positive, got {softness}")
    distance = body_signed_distance(points, nearest_vertices, nearest_normals, sideways_limit=sideways_limit)
    return torch.sigmoid((margin - distance) / softness)


def body_signed_distance(points: Tensor, nearest_vertices: Tensor, nearest_normals: Tensor, *,
                         sideways_limit: float) -> Tensor:
    """Signed distance (...) in metres of ``points`` (..., 3) to the posed body, negative inside, as
    :func:`body_prior_occupancy` measures it (the nearest vertex's tangent plane, beside thin parts the
    sideways excess over ``sideways_limit``)."""
    offset = points - nearest_vertices
    distance = (offset * nearest_normals).sum(dim=-1)
    sideways = (offset.square().sum(dim=-1) - distance.square()).clamp_min(0.0).sqrt()
    return torch.maximum(distance, sideways - sideways_limit)


def _nearest_body_vertex(grid: SurfaceProximityGrid, points: Tensor, batch_index: Tensor, fallback: Tensor) -> Tensor:
    """The body vertex (R, S) long nearest to each sample ``points`` (R, S, 3) of bodies ``batch_index`` (R, S).

    A grid cell stores the vertex nearest to its centre, which for a point near the cell's corner can
    lie on the far side of a limb or finger thinner than the cell (its tangent plane would then call
    the point inside). The candidates are the vertices of the cells around the point (lookups half a
    cell away along each diagonal) and ``fallback`` (R, S) (the sample's own vertex); the nearest wins.
    """
    shape = points.shape[:-1]
    flat_points = points.reshape(-1, 3)
    flat_batch = batch_index.reshape(-1)
    half = 0.5 * grid.cell_size
    signs = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)],
                         device=points.device)
    candidates = [fallback.reshape(-1)]
    for sign in signs:
        found = grid.lookup(flat_points + half * sign, flat_batch)
        candidates.append(torch.where(found >= 0, found, candidates[0]))
    stacked = torch.stack(candidates, dim=-1)  # (M, 9)
    positions = grid.vertices[flat_batch[:, None], stacked]  # (M, 9, 3)
    best = (positions - flat_points[:, None]).square().sum(-1).argmin(dim=-1)
    return stacked.gather(1, best[:, None]).view(shape)


def _frequency_encoding(values: Tensor, frequencies: int) -> Tensor:
    """NeRF positional encoding: values (..., D) -> (..., D * (1 + 2 * frequencies))."""
    if frequencies == 0:
        return values
    scales = (2.0 ** torch.arange(frequencies, device=values.device, dtype=values.dtype)) * math.pi
    angles = values[..., None] * scales  # (..., D, F)
    return torch.cat([values, torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2)], dim=-1)


class _TriplaneGenerator(nn.Module):
    """Global code (B, C) -> triplane (B, 3, channels, resolution, resolution) by upsampling convolutions."""

    def __init__(self, code_channels: int, channels: int, resolution: int) -> None:
        super().__init__()
        hidden = max(32, 2 * channels)
        self.hidden = hidden
        self.channels = channels
        self.project = nn.Linear(code_channels, hidden * 16)
        blocks: list[nn.Module] = []
        size = 4
        while size < resolution:
            blocks += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2)]
            size *= 2
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(hidden, 3 * channels, 3, padding=1)

    def forward(self, code: Tensor) -> Tensor:
        x = F.leaky_relu(self.project(code), 0.2).view(code.shape[0], self.hidden, 4, 4)
        planes = self.out(self.blocks(x))
        return planes.view(code.shape[0], 3, self.channels, *planes.shape[-2:])


class _VolumeDiffusion(nn.Module):
    """A small 3D U-Net (one down/up level) spreading splatted vertex features over the canonical grid."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.Conv3d(in_channels, channels, 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.Sequential(nn.Conv3d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                  nn.Conv3d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2))
        self.out = nn.Sequential(nn.Conv3d(2 * channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv3d(channels, channels, 3, padding=1))

    def forward(self, volume: Tensor) -> Tensor:
        fine = self.inp(volume)
        coarse = F.interpolate(self.down(fine), size=fine.shape[-3:], mode="trilinear", align_corners=False)
        return self.out(torch.cat([fine, coarse], dim=1))


class GeneralizableHumanNeRF(ModelMixin, ConfigMixin):
    """Single-image generalizable human NeRF (SHERF-style; see the module docstring).

    Construct with :meth:`from_preset` (``"tiny"`` or ``"paper"``) or with the keyword arguments of
    :class:`NeRFModelConfig`; save with ``save_pretrained(dir)``, load with ``from_pretrained(dir)``
    or :func:`load_nerf`.
    """

    @register_to_config
    def __init__(self, image_size: int = 512, backbone: str = "resnet18", feature_channels: int = 64,
                 triplane_resolution: int = 64, triplane_channels: int = 32, volume_resolution: int = 64,
                 volume_channels: int = 32, token_channels: int = 32, tokens_per_level: int = 3,
                 transformer_heads: int = 4, mlp_width: int = 128, mlp_depth: int = 8, mlp_skip: int = 4,
                 xyz_frequencies: int = 6, view_frequencies: int = 4, surface_band: float = 0.05,
                 grid_cell_size: float = 0.025, probes_per_ray: int = 64, samples_per_ray: int = 24,
                 window_depth: float = 0.3, surface_crossings: int = 2, canonical_margin: float = 0.1,
                 density_scale: float = 50.0, density_bias: float = -1.0, visibility_resolution: int = 64,
                 occlusion_tolerance: float = 0.03, chunk_rays: int = 16384, use_bf16: bool = True,
                 body_prior_density: float = 200.0, body_prior_margin: float = 0.0,
                 body_prior_softness: float = 0.005, density_mask_gate: bool = True,
                 reference_crop: bool = True) -> None:
        super().__init__()
        settings = NeRFModelConfig(**{f.name: value for f, value in zip(fields(NeRFModelConfig), (
            image_size, backbone, feature_channels, triplane_resolution, triplane_channels, volume_resolution,
            volume_channels, token_channels, tokens_per_level, transformer_heads, mlp_width, mlp_depth, mlp_skip,
            xyz_frequencies, view_frequencies, surface_band, grid_cell_size, probes_per_ray, samples_per_ray,
            window_depth, surface_crossings, canonical_margin, density_scale, density_bias, visibility_resolution,
            occlusion_tolerance, chunk_rays, use_bf16, body_prior_density, body_prior_margin, body_prior_softness,
            density_mask_gate, reference_crop))})
        self.settings = settings
        self.encoder = ImageEncoder(backbone, feature_channels)
        self.triplane = _TriplaneGenerator(self.encoder.global_channels, triplane_channels, triplane_resolution)
        vertex_channels = feature_channels + 3 + 1  # image features, RGB, visibility
        self.volume = _VolumeDiffusion(vertex_channels, volume_channels)
        pixel_channels = feature_channels + 3 + 1 + 1  # image features, RGB, mask, occlusion cue
        tokens = tokens_per_level * token_channels
        self.global_tokens = nn.Linear(triplane_channels, tokens)
        self.point_tokens = nn.Linear(volume_channels, tokens)
        self.pixel_tokens = nn.Linear(pixel_channels, tokens)
        self.token_embedding = nn.Parameter(torch.randn(3 * tokens_per_level, token_channels) * 0.02)
        self.fusion = nn.TransformerEncoderLayer(token_channels, transformer_heads, dim_feedforward=2 * token_channels,
                                                 dropout=0.0, batch_first=True, norm_first=True)
        xyz_channels = 3 * (1 + 2 * xyz_frequencies)
        view_channels = 3 * (1 + 2 * view_frequencies)
        fused_channels = 3 * token_channels  # one token of each level
        mlp_in = xyz_channels + fused_channels
        layers = []
        for index in range(mlp_depth):
            width_in = mlp_in if index == 0 else mlp_width + (mlp_in if index == mlp_skip + 1 and mlp_skip > 0 else 0)
            layers.append(nn.Linear(width_in, mlp_width))
        self.mlp = nn.ModuleList(layers)
        self.density_head = nn.Linear(mlp_width, 1)
        self.colour_feature = nn.Linear(mlp_width, mlp_width)
        self.colour_head = nn.Sequential(nn.Linear(mlp_width + fused_channels + view_channels, mlp_width // 2),
                                         nn.ReLU(), nn.Linear(mlp_width // 2, 3))

    @classmethod
    def _dict_from_json_file(cls, json_file: str | os.PathLike[str]) -> dict[str, Any]:
        """A saved config, with :data:`LEGACY_SETTINGS` filled in where it predates them."""
        config = super()._dict_from_json_file(json_file)
        for name, value in LEGACY_SETTINGS.items():
            config.setdefault(name, value)
        return config

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "GeneralizableHumanNeRF":
        """A new model with the ``"tiny"`` or ``"paper"`` sizes, ``overrides`` replacing single fields."""
        settings = NeRFModelConfig.preset(name)
        unknown = set(overrides) - {f.name for f in fields(NeRFModelConfig)}
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}")
        return cls(**asdict(replace(settings, **overrides)))

    @classmethod
    def from_settings(cls, settings: NeRFModelConfig) -> "GeneralizableHumanNeRF":
        if not isinstance(settings, NeRFModelConfig):
            raise ValueError(f"settings must be a NeRFModelConfig, got {type(settings).__name__}")
        return cls(**asdict(settings))

    def load_backbone_weights(self, path: str | os.PathLike[str]) -> None:
        """Initialise the image encoder's ResNet from a local torchvision state-dict file."""
        self.encoder.load_backbone_weights(path)

    # ------------------------------------------------------------------------------------------ reference
    def _autocast(self, device: torch.device):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.settings.use_bf16 and device.type == "cuda")

    def encode_reference(self, reference: ReferenceView) -> ReferenceEncoding:
        """Encode the reference views (B of them) once; reuse the result for many targets."""
        if not isinstance(reference, ReferenceView):
            raise ValueError(f"reference must be a ReferenceView, got {type(reference).__name__}")
        s = self.settings
        device = self.token_embedding.device
        reference = reference.to(device)
        image = reference.image.float().clamp(0, 1) * reference.mask.float()
        mask = reference.mask.float()
        image_camera = reference.camera.to(device, torch.float32)
        # the encoder, the vertex features and the depth buffer see the subject zoomed to fill the view
        seen = crop_reference(reference, padding=REFERENCE_CROP_PADDING) if s.reference_crop else reference
        seen_image = seen.image.float().clamp(0, 1) * seen.mask.float()
        body, camera = reference.body.to(device, torch.float32), seen.camera.to(device, torch.float32)
        with self._autocast(device):
            code, feature_map = self.encoder(seen_image, seen.mask.float())
            triplane = self.triplane(code)
        feature_map, triplane = feature_map.float(), triplane.float()
        batch, num_vertices = body.vertices.shape[:2]
        # reference vertices: where they land in the image and whether the camera sees them
        uv, depth = camera.project(body.vertices)
        normals = vertex_normals(body.vertices, body.faces)
        facing = (normals * (camera.centers[:, None] - body.vertices)).sum(-1) > 0
        resolution = s.visibility_resolution
        cell = torch.stack([uv[..., 0] / camera.width, uv[..., 1] / camera.height], dim=-1) * resolution
        cell = torch.floor(cell).long()
        in_image = ((cell >= 0) & (cell < resolution)).all(-1) & (depth > 1e-3)
        flat = (cell[..., 1].clamp(0, resolution - 1) * resolution + cell[..., 0].clamp(0, resolution - 1))
        buffer = torch.full((batch, resolution * resolution), math.inf, device=device)
        buffer.scatter_reduce_(1, flat, torch.where(in_image, depth, torch.full_like(depth, math.inf)), reduce="amin")
        visible = in_image & facing & (depth <= torch.gather(buffer, 1, flat) + s.occlusion_tolerance)
        valid = torch.isfinite(buffer)
        depth_buffer = torch.stack([torch.where(valid, buffer, torch.zeros_like(buffer)), valid.float()], dim=1)
        depth_buffer = depth_buffer.view(batch, 2, resolution, resolution)
        grid = self._image_grid(uv, camera)  # (B, V, 1, 2)
        vertex_features = torch.cat([
            F.grid_sample(feature_map, grid, align_corners=False).squeeze(-1),
            F.grid_sample(seen_image, grid, align_corners=False).squeeze(-1),
        ], dim=1).transpose(1, 2)  # (B, V, Cf + 3)
        visibility = visible.float()[..., None]
        vertex_features = torch.cat([vertex_features * visibility, visibility], dim=-1)
        # canonical box and the splatted, diffused point-level volume
        rest_to_reference = vertex_transforms(body)
        rest = apply_affine(invert_affine(rest_to_reference), body.vertices)
        canonical_min = rest.amin(dim=1) - s.canonical_margin
        canonical_max = rest.amax(dim=1) + s.canonical_margin
        size = s.volume_resolution
        unit = (rest - canonical_min[:, None]) / (canonical_max - canonical_min)[:, None]
        voxel = torch.floor(unit * size).long().clamp(0, size - 1)
        voxel_flat = (voxel[..., 0] * size + voxel[..., 1]) * size + voxel[..., 2]  # x, y, z order
        channels = vertex_features.shape[-1]
        sums = torch.zeros(batch, size ** 3, channels, device=device)
        sums.scatter_add_(1, voxel_flat[..., None].expand(-1, -1, channels), vertex_features)
        counts = torch.zeros(batch, size ** 3, device=device)
        counts.scatter_add_(1, voxel_flat, torch.ones_like(voxel_flat, dtype=torch.float32))
        splat = (sums / counts.clamp_min(1.0)[..., None]).transpose(1, 2).reshape(batch, channels, size, size, size)
        with self._autocast(device):
            volume = self.volume(splat)
        return ReferenceEncoding(feature_map=feature_map, image=image, mask=mask, depth_buffer=depth_buffer,
                                 triplane=triplane, volume=volume.float(), canonical_min=canonical_min,
                                 canonical_max=canonical_max, rest_to_reference=rest_to_reference,
                                 camera=image_camera, feature_camera=camera)

    @staticmethod
    def _image_grid(uv: Tensor, camera: CameraBatch) -> Tensor:
        """Pixel coordinates (B, N, 2) -> grid_sample coordinates (B, N, 1, 2) in [-1, 1] (align_corners=False)."""
        scale = torch.tensor([2.0 / camera.width, 2.0 / camera.height], device=uv.device)
        return (uv * scale - 1.0)[:, :, None, :]

    # ------------------------------------------------------------------------------------------ target
    def _target_geometry(self, target_body: PosedBody) -> _TargetGeometry:
        s = self.settings
        body = target_body.to(self.token_embedding.device, torch.float32)
        grid = SurfaceProximityGrid(body.vertices, band=s.surface_band, cell_size=s.grid_cell_size)
        return _TargetGeometry(grid=grid, world_to_rest=invert_affine(vertex_transforms(body)),
                               normals=vertex_normals(body.vertices, body.faces))

    def forward(self, reference: ReferenceView | ReferenceEncoding, target_camera: CameraBatch, target_body: PosedBody,
                pixels: Tensor, *, jitter: bool = False, generator: torch.Generator | None = None) -> PixelRender:
        """Render pixel coordinates ``pixels`` (B, N, 2) (u, v in pixels; pixel centres at +0.5) of the targets.

        ``reference`` is a :class:`ReferenceView` (encoded here) or a :class:`ReferenceEncoding`
        (batch B, or 1 shared by all targets). ``jitter`` randomises the sample positions (training).
        """
        encoding = reference if isinstance(reference, ReferenceEncoding) else self.encode_reference(reference)
        self._check_targets(target_camera, target_body)
        encoding = encoding.expand(target_camera.batch_size)
        geometry = self._target_geometry(target_body)
        return self._render_pixels(encoding, target_camera.to(self.token_embedding.device, torch.float32), geometry,
                                   pixels.to(self.token_embedding.device), jitter=jitter, generator=generator)

    @staticmethod
    def _check_targets(target_camera: CameraBatch, target_body: PosedBody) -> None:
        if not isinstance(target_camera, CameraBatch):
            raise ValueError(f"target_camera must be a CameraBatch, got {type(target_camera).__name__}")
        if not isinstance(target_body, PosedBody):
            raise ValueError(f"target_body must be a PosedBody, got {type(target_body).__name__}")
        if target_camera.batch_size != target_body.batch_size:
            raise ValueError(f"target_camera has {target_camera.batch_size} cameras but target_body "
                             f"{target_body.batch_size} bodies")

    @torch.no_grad()
    def render(self, reference: ReferenceView | ReferenceEncoding, target_camera: CameraBatch, target_body: PosedBody,
               *, chunk_rays: int | None = None) -> NeRFRender:
        """Render full images of ``target_camera``'s size (no gradients, bounded memory).

        Args:
            reference: B reference views (or 1 shared by all targets), or their :meth:`encode_reference`.
            target_camera: B target cameras.
            target_body: B posed target bodies (same body model as the reference's).
            chunk_rays: rays per chunk (default ``chunk_rays`` of the config).
        Returns:
            :class:`NeRFRender` with rgb (B, 3, H, W), opacity (B, 1, H, W), depth (B, 1, H, W) and the
            number of MLP queries spent.
        """
        chunk = self.settings.chunk_rays if chunk_rays is None else int(chunk_rays)
        if chunk < 1:
            raise ValueError(f"chunk_rays must be >= 1, got {chunk_rays}")
        self._check_targets(target_camera, target_body)
        device = self.token_embedding.device
        encoding = reference if isinstance(reference, ReferenceEncoding) else self.encode_reference(reference)
        batch = target_camera.batch_size
        encoding = encoding.expand(batch)
        camera = target_camera.to(device, torch.float32)
        geometry = self._target_geometry(target_body)
        width, height = camera.width, camera.height
        pixels = pixel_centers(width, height, device=device)
        per_chunk = max(1, chunk // batch)
        rgb, opacity, depth, queries = [], [], [], 0
        for start in range(0, pixels.shape[0], per_chunk):
            part = pixels[start:start + per_chunk][None].expand(batch, -1, -1)
            result = self._render_pixels(encoding, camera, geometry, part, jitter=False, generator=None)
            rgb.append(result.rgb)
            opacity.append(result.opacity)
            depth.append(result.depth)
            queries += result.mlp_queries

        def image(parts: list[Tensor], channels: int) -> Tensor:
            return torch.cat(parts, dim=1).view(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()

        return NeRFRender(rgb=image(rgb, 3), opacity=image([o[..., None] for o in opacity], 1),
                          depth=image([d[..., None] for d in depth], 1), mlp_queries=queries)

    # ------------------------------------------------------------------------------------------ core
    def _render_pixels(self, encoding: ReferenceEncoding, camera: CameraBatch, geometry: _TargetGeometry,
                       pixels: Tensor, *, jitter: bool, generator: torch.Generator | None) -> PixelRender:
        s = self.settings
        batch, count = pixels.shape[:2]
        device = pixels.device
        origins, directions = camera_rays(camera, pixels.float())
        batch_index = torch.arange(batch, device=device).repeat_interleave(count)
        samples = sample_near_surface(origins.reshape(-1, 3), directions.reshape(-1, 3), batch_index, geometry.grid,
                                      probes_per_ray=s.probes_per_ray, samples_per_ray=s.samples_per_ray,
                                      window_depth=s.window_depth, surface_crossings=int(s.surface_crossings),
                                      jitter=jitter, generator=generator)
        rgb = torch.zeros(batch * count, 3, device=device)
        opacity = torch.zeros(batch * count, device=device)
        depth = torch.zeros(batch * count, device=device)
        if samples.num_rays == 0:
            # keep every parameter in the graph so that gradients (zeros) exist for all of them
            zero = sum(parameter.sum() for parameter in self.parameters()) * 0.0
            return PixelRender(rgb=(rgb + zero).view(batch, count, 3), opacity=(opacity + zero).view(batch, count),
                               depth=depth.view(batch, count), mlp_queries=0)
        rays, per_ray = samples.points.shape[:2]
        point_batch = samples.batch_index[:, None].expand(rays, per_ray)
        to_rest = geometry.world_to_rest[point_batch, samples.nearest_vertex]  # (R, S, 3, 4)
        canonical = apply_affine(to_rest, samples.points)
        observed = apply_affine(encoding.rest_to_reference[point_batch, samples.nearest_vertex], canonical)
        ray_directions = directions.reshape(-1, 3)[samples.ray_index]
        view = F.normalize(torch.einsum("rsij,rj->rsi", to_rest[..., :3], ray_directions), dim=-1)
        span = (encoding.canonical_max - encoding.canonical_min)[samples.batch_index]  # (R, 3)
        unit = (canonical - encoding.canonical_min[samples.batch_index][:, None]) / span[:, None] * 2.0 - 1.0
        global_features, point_features, pixel_features = self._query_levels(encoding, samples.batch_index, unit,
                                                                             observed)
        with self._autocast(device):
            sigma_raw, colour = self._decode(unit, view, global_features, point_features, pixel_features)
        sigma = s.density_scale * F.softplus(sigma_raw.float() + s.density_bias)  # (R, S), 1/m
        if s.density_mask_gate:  # a point seen outside the reference silhouette is empty space
            support = pixel_features[..., s.feature_channels + 3].float().clamp(0.0, 1.0)
            sigma = sigma * support
        if s.body_prior_density > 0:
            vertex = _nearest_body_vertex(geometry.grid, samples.points, point_batch, samples.nearest_vertex)
            distance = body_signed_distance(samples.points, geometry.grid.vertices[point_batch, vertex],
                                            geometry.normals[point_batch, vertex],
                                            sideways_limit=geometry.grid.cell_size)
            occupancy = torch.sigmoid((s.body_prior_margin - distance) / s.body_prior_softness)
            if s.density_mask_gate:  # inside the fitted surface the prior holds; its edge outside needs support
                occupancy = occupancy * torch.where(distance <= 0, torch.ones_like(support), support)
            sigma = sigma + s.body_prior_density * occupancy
        alpha = 1.0 - torch.exp(-sigma * samples.step[:, None])
        transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-7], dim=1), dim=1)[:, :-1]
        weights = alpha * transmittance
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1.0)  # the 1e-7 above may sum past 1
        ray_opacity = weights.sum(dim=1).clamp_max(1.0)
        ray_rgb = (weights[..., None] * colour.float()).sum(dim=1).clamp_max(1.0)
        camera_z = torch.einsum("rij,rj->ri", camera.R[samples.batch_index], ray_directions)[:, 2]
        ray_depth = (weights * samples.depths).sum(dim=1) * camera_z / ray_opacity.clamp_min(1e-6)
        ray_depth = torch.where(ray_opacity > 1e-6, ray_depth, torch.zeros_like(ray_depth))
        rgb = rgb.index_put((samples.ray_index,), ray_rgb)
        opacity = opacity.index_put((samples.ray_index,), ray_opacity)
        depth = depth.index_put((samples.ray_index,), ray_depth)
        return PixelRender(rgb=rgb.view(batch, count, 3), opacity=opacity.view(batch, count),
                           depth=depth.view(batch, count), mlp_queries=rays * per_ray)

    def _query_levels(self, encoding: ReferenceEncoding, ray_batch: Tensor, unit: Tensor,
                      observed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Global, point and pixel features (R, S, C_level) of samples with canonical ``unit`` coordinates
        (R, S, 3) in [-1, 1] and observation-space positions ``observed`` (R, S, 3), one body at a time."""
        rays, per_ray = unit.shape[:2]
        global_parts, point_parts, pixel_parts = [], [], []
        camera, feature_camera = encoding.camera, encoding.feature_camera
        for b in range(encoding.batch_size):
            selected = torch.nonzero(ray_batch == b).squeeze(-1)
            if selected.numel() == 0:
                continue
            u = unit[selected].reshape(1, -1, 3)  # (1, P, 3)
            planes = encoding.triplane[b]  # (3, Ct, R, R)
            coordinates = torch.stack([u[0][:, [0, 1]], u[0][:, [0, 2]], u[0][:, [1, 2]]])[:, :, None, :]  # (3, P, 1, 2)
            global_parts.append(F.grid_sample(planes, coordinates, align_corners=False).sum(0).squeeze(-1).T)
            volume_grid = u[..., [2, 1, 0]].view(1, -1, 1, 1, 3)  # grid_sample's (x, y, z) index (W, H, D) = (z, y, x)
            point_parts.append(F.grid_sample(encoding.volume[b:b + 1], volume_grid, align_corners=False)
                               .view(encoding.volume.shape[1], -1).T)
            points = observed[selected].reshape(1, -1, 3)
            single = camera.index(b)
            uv, z = single.project(points)
            grid = self._image_grid(uv, single)  # the reference image and mask as given
            zoomed = feature_camera.index(b)
            feature_grid = self._image_grid(zoomed.project(points)[0], zoomed)  # the encoder's (cropped) view
            feature = F.grid_sample(encoding.feature_map[b:b + 1], feature_grid, align_corners=False)
            colour = F.grid_sample(encoding.image[b:b + 1], grid, align_corners=False)
            mask = F.grid_sample(encoding.mask[b:b + 1], grid, align_corners=False)
            buffer = F.grid_sample(encoding.depth_buffer[b:b + 1], feature_grid, align_corners=False, mode="nearest")
            occlusion = buffer[:, 1:2] * torch.tanh((z[:, None, :, None] - buffer[:, 0:1]) / _OCCLUSION_SCALE)
            pixel_parts.append(torch.cat([feature, colour, mask, occlusion], dim=1).squeeze(-1).squeeze(0).T)
        order = torch.cat([torch.nonzero(ray_batch == b).squeeze(-1) for b in range(encoding.batch_size)])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)

        def restore(parts: list[Tensor]) -> Tensor:
            stacked = torch.cat(parts, dim=0).view(-1, per_ray, parts[0].shape[-1])
            return stacked[inverse]

        return restore(global_parts), restore(point_parts), restore(pixel_parts)

    def _decode(self, unit: Tensor, view: Tensor, global_features: Tensor, point_features: Tensor,
                pixel_features: Tensor) -> tuple[Tensor, Tensor]:
        """Density logits (R, S) and colours (R, S, 3) in [0, 1] from the three levels (equation 1), the
        canonical position ``unit`` (R, S, 3) in [-1, 1] and the canonical view direction (R, S, 3)."""
        s = self.settings
        rays, per_ray = unit.shape[:2]
        d, k = s.token_channels, s.tokens_per_level
        tokens = torch.cat([
            self.global_tokens(global_features).view(rays, per_ray, k, d),
            self.point_tokens(point_features).view(rays, per_ray, k, d),
            self.pixel_tokens(pixel_features).view(rays, per_ray, k, d),
        ], dim=2).view(rays * per_ray, 3 * k, d) + self.token_embedding
        fused = self.fusion(tokens).view(rays, per_ray, 3, k, d)
        density_tokens = fused[:, :, :, 0].flatten(-2)  # first token of each level
        colour_tokens = fused[:, :, :, 1].flatten(-2)  # second token of each level
        inputs = torch.cat([_frequency_encoding(unit, s.xyz_frequencies), density_tokens], dim=-1)
        hidden = inputs
        for index, layer in enumerate(self.mlp):
            if index == s.mlp_skip + 1 and s.mlp_skip > 0:
                hidden = torch.cat([hidden, inputs], dim=-1)
            hidden = F.relu(layer(hidden))
        sigma = self.density_head(hidden).squeeze(-1)
        colour_input = torch.cat([self.colour_feature(hidden), colour_tokens,
                                  _frequency_encoding(view, s.view_frequencies)], dim=-1)
        return sigma, torch.sigmoid(self.colour_head(colour_input))


def load_nerf(path: str | os.PathLike[str], *, device: torch.device | str | None = None) -> GeneralizableHumanNeRF:
    """Load a model from a ``save_pretrained`` folder or a training checkpoint folder (its ``model/``)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder holding a NeRF model or training checkpoint")
    if not (folder / "config.json").is_file() and (folder / "model" / "config.json").is_file():
        folder = folder / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds neither a saved model (config.json) nor a checkpoint's model/ folder")
    model = GeneralizableHumanNeRF.from_pretrained(str(folder), low_cpu_mem_usage=False)
    model.eval()
    return model.to(device) if device is not None else model
