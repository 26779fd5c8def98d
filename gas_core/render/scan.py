"""Rendering textured 3D scans (THuman2.1, 2K2K) to RGB, alpha mask and depth with pyrender.

Scans carry their lighting in the texture, so they are drawn unlit (pyrender's ``FLAT`` mode: the
output colour is the texture / vertex colour itself), double-sided (scan meshes are not always
consistently wound) and opaque, on a black background.

One :class:`ScanRenderer` owns one offscreen OpenGL context (EGL on a GPU, OSMesa on a CPU) and is
meant to be reused for every view of every subject: :meth:`ScanRenderer.set_mesh` builds the scene
once per mesh, and each view only moves the camera node. :func:`render_orbit` centres the subject,
frames it (:mod:`gas_core.render.framing`: the cameras stand back as far as the subject's size needs),
renders the paper's 20-view orbit (1024x1024 by default) and records the normalisation used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from gas_core.cameras import Camera, OrbitSpec, orbit_cameras
from gas_core.render.framing import OrbitFraming, framed_orbit_spec
from gas_core.render.gl import configure_headless_gl
from gas_core.render.normalize import Normalization, normalize_scan

__all__ = ["ScanView", "OrbitRender", "ScanRenderer", "render_orbit", "clip_planes"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanView:
    """One rendered view: ``rgb`` (H, W, 3) uint8, ``mask`` (H, W) uint8 in {0, 255}, ``depth`` (H, W)
    float32 metres along the camera's z axis (0 where nothing was hit)."""

    rgb: np.ndarray
    mask: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class OrbitRender:
    """An orbit of views of one scan: ``views[i]`` is seen by ``cameras[i]``; the cameras live in the
    normalised frame given by ``normalization`` (``p_normalised = normalization.apply(p_scan)``).
    ``spec``: the orbit as rendered (its ``distance``, metres, set by the framing)."""

    views: list[ScanView]
    cameras: list[Camera]
    normalization: Normalization
    spec: OrbitSpec


def clip_planes(points: np.ndarray, camera: Camera, margin: float = 0.02) -> tuple[float, float]:
    """Near and far plane distances (metres) that enclose ``points`` (N, 3, world metres) seen by ``camera``.

    The planes hug the points' camera-z range, widened by ``margin`` times its extent (plus 1 mm), so
    depth precision adapts to any distance (a body 42 m away with a 10,000 px focal length works as
    well as one at 2 m). A range reaching behind the camera clips at 1e-4 of the far distance.
    """
    depth = camera.to_camera(np.asarray(points, dtype=np.float64).reshape(-1, 3))[:, 2]
    z_min, z_max = float(depth.min()), float(depth.max())
    pad = margin * (z_max - z_min) + 1e-3
    far = max(z_max + pad, 1e-2)
    near = max(z_min - pad, far * 1e-4)
    return near, far


def _box_corners(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.array([[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])])


def _check_trimesh(mesh, name: str = "mesh") -> None:
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh):
        raise ValueError(f"{name} must be a trimesh.Trimesh, got {type(mesh).__name__} "
                         "(load scans with trimesh.load(path, force='mesh'))")
    if len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise ValueError(f"{name} is empty ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces)")
    if not np.all(np.isfinite(mesh.vertices)):
        raise ValueError(f"{name} has NaN or infinite vertex coordinates")


def _texture_image(visual) -> np.ndarray | None:
    material = getattr(visual, "material", None)
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    if image is None:
        return None
    array = np.asarray(image.convert("RGBA") if hasattr(image, "convert") else image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array * 255.0 if np.issubdtype(array.dtype, np.floating) else array), 0, 255)
        array = array.astype(np.uint8)
    return array


def _primitive(mesh):
    """A pyrender primitive drawing ``mesh`` with its own colours: texture (UV + image) or vertex/face colours."""
    import pyrender

    material_args = dict(baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=1.0,
                         alphaMode="OPAQUE", doubleSided=True)
    kind = mesh.visual.kind
    positions = np.asarray(mesh.vertices, dtype=np.float32)
    faces = np.asarray(mesh.faces, dtype=np.uint32)
    if kind == "texture":
        uv = getattr(mesh.visual, "uv", None)
        image = _texture_image(mesh.visual)
        if uv is None or len(uv) != len(positions):
            raise ValueError("mesh has a texture material but no per-vertex UV coordinates; re-export it with UVs "
                             "or load it with trimesh.load(path, process=False)")
        if image is None:
            raise ValueError("mesh has UV coordinates but no texture image (the .mtl's map_Kd is missing or "
                             "its image file could not be read); put the texture next to the .obj/.mtl")
        material = pyrender.MetallicRoughnessMaterial(baseColorTexture=image[..., :3].copy(), **material_args)
        return pyrender.Primitive(positions=positions, indices=faces, texcoord_0=np.asarray(uv, np.float32),
                                  material=material)
    if kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
        material = pyrender.MetallicRoughnessMaterial(**material_args)
        return pyrender.Primitive(positions=positions, indices=faces, color_0=colors, material=material)
    if kind == "face":
        colors = np.repeat(np.asarray(mesh.visual.face_colors)[:, :3], 3, axis=0)
        material = pyrender.MetallicRoughnessMaterial(**material_args)
        return pyrender.Primitive(positions=positions[faces.reshape(-1)], color_0=colors, material=material)
    raise ValueError("mesh has neither a texture (UV + image) nor vertex/face colours; a scan needs its colours "
                     "(check that the texture file was found when loading)")


class ScanRenderer:
    """Offscreen renderer for coloured scans: one context reused across views and subjects.

    ``width``, ``height``: image size in pixels (cameras must match). ``meshes_per_context``: the
    context is recreated after this many meshes (bounds memory, see :meth:`set_mesh`). Use :meth:`set_mesh` then
    :meth:`render` per camera, or :meth:`render_views`. Close with :meth:`close` or a ``with`` block.
    """

    def __init__(self, width: int = 1024, height: int = 1024, meshes_per_context: int = 8) -> None:
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        if meshes_per_context < 1:
            raise ValueError(f"meshes_per_context must be >= 1, got {meshes_per_context}")
        configure_headless_gl()
        import pyrender

        self._pyrender = pyrender
        self.width = int(width)
        self.height = int(height)
        self.meshes_per_context = int(meshes_per_context)
        self._meshes_in_context = 0
        self._renderer = pyrender.OffscreenRenderer(self.width, self.height)
        self._scene = None
        self._camera = None
        self._camera_node = None
        self._corners: np.ndarray | None = None

    def close(self) -> None:
        """Release the OpenGL context (idempotent)."""
        if self._renderer is not None:
            self._release_scene()
            self._renderer.delete()
            self._renderer = None

    def _release_scene(self) -> None:
        """Free the current scene's textures on the GPU.

        pyrender 0.1.45's ``Texture.delete()`` only unbinds, so a texture dropped from the scene would
        stay in GL memory (about 5 MB per 1k texture, i.e. per subject); we delete them ourselves.
        """
        if self._scene is None:
            return
        self._renderer._platform.make_current()
        for mesh in self._scene.meshes:
            for primitive in mesh.primitives:
                for texture in primitive.material.textures:
                    texture._remove_from_context()
        self._scene = None

    def __enter__(self) -> "ScanRenderer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def set_mesh(self, mesh, normalization: Normalization | None = None) -> None:
        """Build the scene for ``mesh`` (a coloured ``trimesh.Trimesh``, metres), replacing the previous one.

        ``normalization``: placed on the mesh node (``p = (p_scan - center) * scale``), so the scan's
        arrays are never copied. Raises ``ValueError`` naming ``mesh`` for empty / non-finite meshes,
        and for a texture whose image is missing.
        """
        _check_trimesh(mesh)
        if self._renderer is None:
            raise RuntimeError("ScanRenderer was closed")
        pyrender = self._pyrender
        primitive = _primitive(mesh)  # validates colours before the current scene is dropped
        self._release_scene()
        if self._meshes_in_context >= self.meshes_per_context:
            # Mesa keeps about 8 MB per deleted textured scan (1024 px texture) until its context goes away;
            # a fresh context every 8 scans (about 60 ms) keeps a worker rendering thousands of scans flat.
            self._renderer.delete()
            self._renderer = pyrender.OffscreenRenderer(self.width, self.height)
            logger.debug("scan renderer: new OpenGL context after %d meshes", self._meshes_in_context)
            self._meshes_in_context = 0
        self._meshes_in_context += 1
        pose = np.eye(4)
        if normalization is not None:
            pose[:3, :3] *= normalization.scale
            pose[:3, 3] = -normalization.scale * normalization.center
        scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[1.0, 1.0, 1.0])
        scene.add(pyrender.Mesh(primitives=[primitive]), pose=pose)
        self._camera = pyrender.IntrinsicsCamera(fx=1.0, fy=1.0, cx=0.0, cy=0.0, znear=0.05, zfar=100.0)
        self._camera_node = scene.add(self._camera, pose=np.eye(4))
        low, high = np.asarray(mesh.bounds[0], np.float64), np.asarray(mesh.bounds[1], np.float64)
        corners = _box_corners(low, high)
        self._corners = corners if normalization is None else normalization.apply(corners)
        self._scene = scene

    def render(self, camera: Camera) -> ScanView:
        """Render the current mesh (see :meth:`set_mesh`) seen by ``camera`` (OpenCV, this renderer's size)."""
        if self._renderer is None:
            raise RuntimeError("ScanRenderer was closed")
        if self._scene is None:
            raise RuntimeError("call set_mesh(mesh) before render(camera)")
        if not isinstance(camera, Camera):
            raise ValueError(f"camera must be a gas_core.cameras.Camera, got {type(camera).__name__}")
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(f"camera is {camera.width}x{camera.height} but the renderer is {self.width}x{self.height}; "
                             "use camera.scaled(...) or a renderer of that size")
        near, far = clip_planes(self._corners, camera)
        K = camera.K
        self._camera.fx, self._camera.fy = float(K[0, 0]), float(K[1, 1])
        self._camera.cx, self._camera.cy = float(K[0, 2]), float(K[1, 2])
        self._camera.znear, self._camera.zfar = near, far
        self._scene.set_pose(self._camera_node, camera.opengl_camera_to_world())
        color, depth = self._renderer.render(self._scene, flags=self._pyrender.RenderFlags.FLAT)
        depth = np.asarray(depth, dtype=np.float32)
        mask = np.where(depth > 0, np.uint8(255), np.uint8(0))
        rgb = np.ascontiguousarray(color[..., :3])
        rgb[mask == 0] = 0
        return ScanView(rgb=rgb, mask=mask, depth=np.ascontiguousarray(depth))

    def render_views(self, mesh, cameras: Sequence[Camera], normalization: Normalization | None = None) -> list[ScanView]:
        """Set ``mesh`` once and render it for every camera in ``cameras``; returns one view per camera."""
        self.set_mesh(mesh, normalization)
        return [self.render(camera) for camera in cameras]


def render_orbit(mesh, spec: OrbitSpec = OrbitSpec(), renderer: ScanRenderer | None = None,
                 target_height: float | None = None, framing: OrbitFraming = OrbitFraming()) -> OrbitRender:
    """Centre ``mesh`` (a coloured ``trimesh.Trimesh``, metres, y up, facing +z), frame it and render ``spec``'s orbit.

    ``target_height``: rescale the body to this height in metres (default: keep metric scale; see
    :mod:`gas_core.render.normalize`). ``framing``: how far the cameras stand
    (:class:`gas_core.render.framing.OrbitFraming`; default ``"contain"``: ``spec.distance``, or
    farther when the subject would not fit in every view with a 5 % margin). ``renderer``: reuse an
    open :class:`ScanRenderer` of the spec's size (one is created and closed here otherwise). Returns
    an :class:`OrbitRender` with ``spec.num_views`` views (default 20 at 1024x1024) and the framed spec.
    """
    _check_trimesh(mesh)
    vertices = np.asarray(mesh.vertices)
    normalization = normalize_scan(vertices, target_height=target_height)
    spec = framed_orbit_spec(normalization.apply(vertices), spec, framing)
    cameras = orbit_cameras(spec)
    own_renderer = renderer is None
    if own_renderer:
        renderer = ScanRenderer(spec.width, spec.height)
    elif (renderer.width, renderer.height) != (spec.width, spec.height):
        raise ValueError(f"renderer is {renderer.width}x{renderer.height} but spec asks for {spec.width}x{spec.height}")
    try:
        views = renderer.render_views(mesh, cameras, normalization)
    finally:
        if own_renderer:
            renderer.close()
    return OrbitRender(views=views, cameras=cameras, normalization=normalization, spec=spec)
