"""Fast body-model normal maps, encoded as the official GAS release encodes them.

Encoding (the GAS checkpoints' input): the surface normal in the camera frame expressed in OpenGL
axes (x right, y up, z toward the viewer), stored as ``RGB = round((0.5 * n + 0.5) * 255)``,
background black. A surface facing the camera is (128, 128, 255). Shading is smooth: per-vertex
normals (corner-angle weighted, as Blender computes them) interpolated across each triangle and
renormalised per pixel. This reproduces the release's Blender/Cycles renders (checked against
``tests/fixtures/official_normal_map``: identical silhouette, mean difference 0.46/255, which is
Blender's output dither, also visible as 0/1 noise in the reference's background).

Speed: one OpenGL context, one shader program and one set of buffers live as long as the
:class:`NormalMapRenderer`. The views of one pose reuse the uploaded mesh; a new pose only replaces
vertex positions and normals (``glBufferSubData``); back faces are culled. Measured on two shared
CPU cores (OSMesa/llvmpipe, ``benchmarks/bench_render.py``), 512x512, SMPL-sized mesh: ~360 maps/s
for the views of one pose and ~190/s with a new pose every frame; with PNG encoding overlapped on a
thread, ~140-190/s (Blender: ~7/s). On a GPU (EGL) the draw itself takes well under a millisecond.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

import numpy as np

from gas_core.cameras import Camera
from gas_core.render.encode import encode_png
from gas_core.render.gl import configure_headless_gl

__all__ = [
    "NormalMapRenderer",
    "vertex_normals",
    "encode_normals",
    "decode_normal_map",
    "normal_map_foreground",
    "BACKGROUND_BLUE_MAX",
]

logger = logging.getLogger(__name__)

#: A foreground pixel's blue channel encodes the normal's z toward the viewer, so it is >= ~110
#: even at the silhouette; background is black (0, with 1-count dither in Cycles renders).
BACKGROUND_BLUE_MAX = 32

_VERTEX_SHADER = """
#version 330 core
layout(location = 0) in vec3 world_position;
layout(location = 1) in vec3 world_normal;
uniform mat3 world_to_camera_rotation;   // OpenCV camera frame
uniform vec3 world_to_camera_translation;
uniform vec4 ndc_intrinsics;             // (2 fx / W, 2 fy / H, 2 cx / W - 1, 2 cy / H - 1)
uniform vec2 depth_range;                // (near, far) metres along the camera z
out vec3 camera_normal;                  // OpenCV camera frame, not normalised
void main() {
    vec3 p = world_to_camera_rotation * world_position + world_to_camera_translation;
    camera_normal = world_to_camera_rotation * world_normal;
    float near = depth_range.x;
    float far = depth_range.y;
    // Row 0 of the read-back image is the top image row (v = 0 maps to NDC y = -1), so no flip later.
    gl_Position = vec4(ndc_intrinsics.x * p.x + ndc_intrinsics.z * p.z,
                       ndc_intrinsics.y * p.y + ndc_intrinsics.w * p.z,
                       (far + near) / (far - near) * p.z - 2.0 * far * near / (far - near),
                       p.z);
}
"""

_FRAGMENT_SHADER = """
#version 330 core
in vec3 camera_normal;
out vec4 color;
void main() {
    vec3 n = normalize(camera_normal);
    // OpenCV camera axes -> OpenGL camera axes (flip y and z), then [-1, 1] -> [0, 1].
    color = vec4(0.5 * vec3(n.x, -n.y, -n.z) + 0.5, 1.0);
}
"""


# --------------------------------------------------------------------------------------- geometry
def _check_mesh(vertices: np.ndarray, faces: np.ndarray, vertices_name: str = "vertices") -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"{vertices_name} must be a non-empty (V, 3) array, got shape {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError(f"{vertices_name} contain NaN or infinite values")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"faces must be a non-empty (F, 3) integer array, got shape {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got {faces.dtype}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"faces index vertices outside [0, {len(vertices)})")
    return vertices, faces


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Smooth per-vertex unit normals (V, 3) float32, weighted by corner angle (Blender's weighting).

    Each triangle adds its unit face normal times the triangle's interior angle at the vertex, so a
    vertex normal does not depend on how finely the surrounding surface is triangulated (unlike area
    weighting, which disagrees with Blender's renders by up to ~50/255 on SMPL-sized meshes).
    ``vertices``: (V, 3) metres; ``faces``: (F, 3) vertex indices, counter-clockwise seen from outside.
    Degenerate triangles add nothing; a vertex used by no triangle gets a zero normal.
    """
    vertices, faces = _check_mesh(vertices, faces)
    return _angle_weighted_normals(np.asarray(vertices, dtype=np.float64), np.asarray(faces))


def _angle_weighted_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """:func:`vertex_normals` without argument checks (the renderer's per-frame hot path).

    Arrays are laid out component-major, (3 components, 3 corners, F), so every step is a
    contiguous element-wise operation. The angle at corner i between the edge leaving it (e_i) and
    the edge arriving at it (e_{i-1}) is atan2(|e_i x e_{i-1}|, -e_i . e_{i-1}); the cross product's
    length is twice the triangle's area for all three corners, so no edge needs normalising.
    """
    # float32 keeps the arrays small (3x faster than float64 here); shifting the mesh to its first
    # vertex first keeps float32 precise for meshes far from the origin (a body 40 m away).
    local = np.ascontiguousarray((vertices - vertices[0]).T, dtype=np.float32)
    corner_vertices = np.ascontiguousarray(faces.T)                      # (3 corners, F)
    corners = np.take(local, corner_vertices, axis=1)                    # (3 xyz, 3 corners, F)
    edges = np.empty_like(corners)
    np.subtract(corners[:, 1], corners[:, 0], out=edges[:, 0])
    np.subtract(corners[:, 2], corners[:, 1], out=edges[:, 1])
    np.subtract(corners[:, 0], corners[:, 2], out=edges[:, 2])
    a, b = edges[:, 2], edges[:, 0]                                      # cross(e2, e0) = (v1-v0) x (v2-v0)
    face_normals = np.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])
    double_areas = np.sqrt(np.einsum("kf,kf->f", face_normals, face_normals))
    previous = edges[:, [2, 0, 1]]
    dots = -np.einsum("kcf,kcf->cf", edges, previous)                    # (3 corners, F)
    angles = np.arctan2(np.broadcast_to(double_areas, dots.shape), dots)
    inverse_areas = np.divide(1.0, double_areas, out=np.zeros_like(double_areas), where=double_areas > 0)
    face_normals *= inverse_areas
    flat_index = corner_vertices.reshape(-1)
    count = len(vertices)
    normals = np.empty((3, count), dtype=np.float32)
    for axis in range(3):
        normals[axis] = np.bincount(flat_index, weights=(angles * face_normals[axis]).reshape(-1), minlength=count)
    lengths = np.sqrt(np.einsum("kv,kv->v", normals, normals))
    normals *= np.divide(1.0, lengths, out=np.zeros_like(lengths), where=lengths > 0)
    return np.ascontiguousarray(normals.T)


# --------------------------------------------------------------------------------------- encoding
def encode_normals(normals_opencv_cam: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals (..., 3) in OpenCV axes -> uint8 (..., 3) in the GAS encoding.

    OpenCV axes (x right, y down, z forward) are turned into OpenGL axes (y up, z toward the
    viewer) and mapped with ``round((0.5 n + 0.5) * 255)``. A normal facing the camera,
    (0, 0, -1) in OpenCV axes, becomes (128, 128, 255).
    """
    normals = np.asarray(normals_opencv_cam, dtype=np.float64)
    if normals.shape[-1] != 3:
        raise ValueError(f"normals_opencv_cam must have a last dimension of 3, got {normals.shape}")
    opengl = normals * np.array([1.0, -1.0, -1.0])
    return np.clip(np.rint((0.5 * opengl + 0.5) * 255.0), 0, 255).astype(np.uint8)


def normal_map_foreground(image: np.ndarray) -> np.ndarray:
    """Foreground mask (H, W) bool of a GAS-encoded normal map (H, W, 3) uint8 (blue > 32)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) normal map, got shape {image.shape}")
    return image[..., 2] > BACKGROUND_BLUE_MAX


def decode_normal_map(image: np.ndarray) -> np.ndarray:
    """GAS-encoded normal map (H, W, 3) uint8 -> unit normals (H, W, 3) float32 in OpenCV camera axes.

    Inverse of :func:`encode_normals` up to quantisation; background pixels decode to (0, 0, 0).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    foreground = normal_map_foreground(image)
    opengl = image.astype(np.float32) / 255.0 * 2.0 - 1.0
    normals = opengl * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    lengths = np.linalg.norm(normals, axis=-1, keepdims=True)
    np.divide(normals, lengths, out=normals, where=lengths > 0)
    normals[~foreground] = 0.0
    return normals


# --------------------------------------------------------------------------------------- renderer
class NormalMapRenderer:
    """Renders GAS normal maps of a triangle mesh (a posed body model) for any OpenCV camera.

    ``width``, ``height``: output size in pixels; cameras must have that size. The OpenGL context
    (EGL on a GPU, OSMesa on a CPU; see :mod:`gas_core.render.gl`), shader, framebuffer and mesh
    buffers are created once and reused. Use as a context manager or call :meth:`close`. One
    renderer serves one thread at a time (create one per worker thread or process).
    ``cull_back_faces``: skip triangles facing away from the camera (about 40% faster on a CPU).
    Exact for closed meshes wound counter-clockwise seen from outside (SMPL, Anny and the open
    body model are) seen from outside; pass False for open or inconsistently wound meshes.
    ``encode_workers`` threads (default: one per core but one, at most 4) encode PNGs while the
    next map renders (``render_*_png``).
    """

    def __init__(self, width: int = 512, height: int = 512, encode_workers: int | None = None,
                 cull_back_faces: bool = True) -> None:
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        if encode_workers is None:  # leave a core to the rasteriser (llvmpipe renders on CPU threads too)
            encode_workers = max(1, min(4, (os.cpu_count() or 2) - 1))
        if encode_workers < 1:
            raise ValueError(f"encode_workers must be >= 1, got {encode_workers}")
        self.width = int(width)
        self.height = int(height)
        self.encode_workers = int(encode_workers)
        self.cull_back_faces = bool(cull_back_faces)
        self._platform = None
        self._gl = None
        self._encoder: ThreadPoolExecutor | None = None
        self._faces: np.ndarray | None = None
        self._vertex_count = 0
        self._vertex_data: np.ndarray | None = None
        self._create_context()

    # ------------------------------------------------------------------ GL set-up
    def _create_context(self) -> None:
        configure_headless_gl()
        from OpenGL import GL as gl
        from OpenGL.GL import shaders

        from gas_core.render.gl import create_gl_platform

        self._gl = gl
        self._platform = create_gl_platform(self.width, self.height)
        self._platform.make_current()
        self._program = shaders.compileProgram(
            shaders.compileShader(_VERTEX_SHADER, gl.GL_VERTEX_SHADER),
            shaders.compileShader(_FRAGMENT_SHADER, gl.GL_FRAGMENT_SHADER),
            validate=False,
        )
        self._uniforms = {name: gl.glGetUniformLocation(self._program, name) for name in (
            "world_to_camera_rotation", "world_to_camera_translation", "ndc_intrinsics", "depth_range")}
        self._vertex_array = gl.glGenVertexArrays(1)
        gl.glBindVertexArray(self._vertex_array)
        self._vertex_buffer = gl.glGenBuffers(1)
        self._index_buffer = gl.glGenBuffers(1)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, self._vertex_buffer)
        stride = 6 * 4  # position (3 float32) then normal (3 float32)
        gl.glEnableVertexAttribArray(0)
        gl.glVertexAttribPointer(0, 3, gl.GL_FLOAT, gl.GL_FALSE, stride, gl.ctypes.c_void_p(0))
        gl.glEnableVertexAttribArray(1)
        gl.glVertexAttribPointer(1, 3, gl.GL_FLOAT, gl.GL_FALSE, stride, gl.ctypes.c_void_p(12))
        gl.glBindBuffer(gl.GL_ELEMENT_ARRAY_BUFFER, self._index_buffer)

        self._framebuffer = gl.glGenFramebuffers(1)
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, self._framebuffer)
        self._renderbuffers = gl.glGenRenderbuffers(2)
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, self._renderbuffers[0])
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_RGBA8, self.width, self.height)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_RENDERBUFFER,
                                     self._renderbuffers[0])
        gl.glBindRenderbuffer(gl.GL_RENDERBUFFER, self._renderbuffers[1])
        gl.glRenderbufferStorage(gl.GL_RENDERBUFFER, gl.GL_DEPTH_COMPONENT24, self.width, self.height)
        gl.glFramebufferRenderbuffer(gl.GL_FRAMEBUFFER, gl.GL_DEPTH_ATTACHMENT, gl.GL_RENDERBUFFER,
                                     self._renderbuffers[1])
        status = gl.glCheckFramebufferStatus(gl.GL_FRAMEBUFFER)
        if status != gl.GL_FRAMEBUFFER_COMPLETE:
            raise RuntimeError(f"OpenGL framebuffer incomplete (status {status:#x})")
        gl.glViewport(0, 0, self.width, self.height)
        gl.glEnable(gl.GL_DEPTH_TEST)
        gl.glDepthFunc(gl.GL_LESS)
        if self.cull_back_faces:
            # The projection maps image row 0 to the bottom of the framebuffer (a mirror), so faces
            # counter-clockwise seen from outside arrive clockwise in window coordinates.
            gl.glEnable(gl.GL_CULL_FACE)
            gl.glCullFace(gl.GL_BACK)
            gl.glFrontFace(gl.GL_CW)
        else:
            gl.glDisable(gl.GL_CULL_FACE)
        gl.glDisable(gl.GL_BLEND)
        gl.glClearColor(0.0, 0.0, 0.0, 0.0)
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        gl.glUseProgram(self._program)
        logger.debug("normal-map renderer ready: %dx%d, %s", self.width, self.height,
                     gl.glGetString(gl.GL_RENDERER))

    def close(self) -> None:
        """Release the OpenGL context and the encoding threads (idempotent)."""
        if self._encoder is not None:
            self._encoder.shutdown(wait=True)
            self._encoder = None
        if self._platform is not None:
            try:
                self._platform.make_current()
                gl = self._gl
                gl.glDeleteFramebuffers(1, [self._framebuffer])
                gl.glDeleteRenderbuffers(2, self._renderbuffers)
                gl.glDeleteBuffers(2, [self._vertex_buffer, self._index_buffer])
                gl.glDeleteVertexArrays(1, [self._vertex_array])
                gl.glDeleteProgram(self._program)
            finally:
                self._platform.delete_context()
                self._platform = None

    def __enter__(self) -> "NormalMapRenderer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; explicit close() is preferred
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have torn GL down already
            pass

    # ------------------------------------------------------------------ state
    def _bind(self) -> None:
        if self._platform is None:
            raise RuntimeError("NormalMapRenderer was closed")
        self._platform.make_current()
        gl = self._gl
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, self._framebuffer)
        gl.glBindVertexArray(self._vertex_array)
        gl.glUseProgram(self._program)

    def _upload_faces(self, faces: np.ndarray) -> None:
        if self._faces is not None and self._faces.shape == faces.shape and np.array_equal(self._faces, faces):
            return
        gl = self._gl
        indices = np.ascontiguousarray(faces, dtype=np.uint32)
        gl.glBindBuffer(gl.GL_ELEMENT_ARRAY_BUFFER, self._index_buffer)
        gl.glBufferData(gl.GL_ELEMENT_ARRAY_BUFFER, indices.nbytes, indices, gl.GL_STATIC_DRAW)
        self._faces = indices

    def _upload_vertices(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        gl = self._gl
        count = len(vertices)
        if self._vertex_data is None or count != self._vertex_count:
            self._vertex_data = np.empty((count, 6), dtype=np.float32)
        self._vertex_data[:, :3] = vertices
        self._vertex_data[:, 3:] = _angle_weighted_normals(vertices, faces)
        gl.glBindBuffer(gl.GL_ARRAY_BUFFER, self._vertex_buffer)
        if count != self._vertex_count:
            gl.glBufferData(gl.GL_ARRAY_BUFFER, self._vertex_data.nbytes, self._vertex_data, gl.GL_DYNAMIC_DRAW)
            self._vertex_count = count
        else:
            gl.glBufferSubData(gl.GL_ARRAY_BUFFER, 0, self._vertex_data.nbytes, self._vertex_data)

    def _check_camera(self, camera: Camera, name: str) -> None:
        if not isinstance(camera, Camera):
            raise ValueError(f"{name} must be a gas_core.cameras.Camera, got {type(camera).__name__}")
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(f"{name} is {camera.width}x{camera.height} but the renderer is "
                             f"{self.width}x{self.height}; use camera.scaled(...) or a renderer of that size")

    def _draw(self, vertices: np.ndarray, camera: Camera, out: np.ndarray) -> None:
        """Draw the uploaded mesh seen by ``camera`` into ``out`` (H, W, 3) uint8."""
        gl = self._gl
        depth = vertices @ camera.R[2] + camera.t[2]
        z_min, z_max = float(depth.min()), float(depth.max())
        margin = 0.01 * (z_max - z_min) + 1e-4
        far = max(z_max + margin, 1e-2)
        near = z_min - margin
        if near <= far * 1e-5:  # mesh reaches behind the camera: clip close to it instead
            near = far * 1e-5
        K = camera.K
        gl.glUniformMatrix3fv(self._uniforms["world_to_camera_rotation"], 1, gl.GL_TRUE,
                              camera.R.astype(np.float32))
        gl.glUniform3f(self._uniforms["world_to_camera_translation"], *camera.t.astype(np.float32))
        gl.glUniform4f(self._uniforms["ndc_intrinsics"], 2.0 * K[0, 0] / self.width, 2.0 * K[1, 1] / self.height,
                       2.0 * K[0, 2] / self.width - 1.0, 2.0 * K[1, 2] / self.height - 1.0)
        gl.glUniform2f(self._uniforms["depth_range"], near, far)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT)
        gl.glDrawElements(gl.GL_TRIANGLES, self._faces.size, gl.GL_UNSIGNED_INT, None)
        gl.glReadPixels(0, 0, self.width, self.height, gl.GL_RGB, gl.GL_UNSIGNED_BYTE, out)

    # ------------------------------------------------------------------ public API
    def render(self, vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> np.ndarray:
        """One normal map (H, W, 3) uint8 of ``vertices`` (V, 3, world metres) / ``faces`` (F, 3)."""
        return self.render_views(vertices, faces, [camera])[0]

    def render_views(self, vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
        """Normal maps (N, H, W, 3) uint8 of one pose seen by N ``cameras``; the mesh is uploaded once."""
        return self.render_frames(np.asarray(vertices)[None], faces, cameras, views_per_frame=len(cameras))

    def render_frames(self, vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera],
                      views_per_frame: int = 1) -> np.ndarray:
        """Normal maps of a sequence: ``vertices`` (T, V, 3) world metres, ``faces`` (F, 3).

        ``cameras``: T cameras (one per frame) or 1 (a fixed camera); with ``views_per_frame`` = N
        (used by :meth:`render_views`) frame t is seen by ``cameras[t*N:(t+1)*N]``.
        Returns (T * N, H, W, 3) uint8 in frame-major order.
        """
        vertices, cameras = self._validate(vertices, faces, cameras, views_per_frame)
        images = np.empty((vertices.shape[0] * views_per_frame, self.height, self.width, 3), dtype=np.uint8)
        for _ in self._iterate(vertices, faces, cameras, views_per_frame, out=images):
            pass
        return images

    def render_frames_png(self, vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera],
                          compression: int = 1, views_per_frame: int = 1) -> list[bytes]:
        """Like :meth:`render_frames` but returns PNG bytes, encoded on threads while rendering goes on."""
        if self._encoder is None:
            self._encoder = ThreadPoolExecutor(max_workers=self.encode_workers, thread_name_prefix="normal-png")
        vertices, cameras = self._validate(vertices, faces, cameras, views_per_frame)
        futures: list[Future] = []
        for _, image in self._iterate(vertices, faces, cameras, views_per_frame):
            futures.append(self._encoder.submit(encode_png, image, compression))
        return [future.result() for future in futures]

    def render_views_png(self, vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera],
                         compression: int = 1) -> list[bytes]:
        """Like :meth:`render_views` but returns PNG bytes (encoded on threads, overlapped)."""
        return self.render_frames_png(np.asarray(vertices)[None], faces, cameras, compression,
                                      views_per_frame=len(cameras))

    def _validate(self, vertices, faces, cameras, views_per_frame: int) -> tuple[np.ndarray, list[Camera]]:
        vertices = np.asarray(vertices)
        if vertices.ndim != 3 or vertices.shape[-1] != 3 or vertices.shape[0] == 0 or vertices.shape[1] == 0:
            raise ValueError(f"vertices must be a non-empty (T, V, 3) array, got shape {vertices.shape}")
        _check_mesh(vertices[0], faces)
        if not np.all(np.isfinite(vertices)):
            raise ValueError("vertices contain NaN or infinite values")
        cameras = list(cameras)
        frames = vertices.shape[0]
        if views_per_frame < 1:
            raise ValueError(f"views_per_frame must be >= 1, got {views_per_frame}")
        if len(cameras) not in (views_per_frame, frames * views_per_frame):
            raise ValueError(f"cameras must hold {views_per_frame} or {frames * views_per_frame} cameras "
                             f"for {frames} frames, got {len(cameras)}")
        for index, camera in enumerate(cameras):
            self._check_camera(camera, f"cameras[{index}]")
        return vertices, cameras

    def _iterate(self, vertices: np.ndarray, faces: np.ndarray, cameras: list[Camera], views_per_frame: int,
                 out: np.ndarray | None = None):
        """Render map after map, yielding (index, image); images go into ``out[index]`` when given
        (N, H, W, 3), else each into a new array."""
        frames = vertices.shape[0]
        self._bind()
        self._upload_faces(np.asarray(faces))
        for frame in range(frames):
            frame_vertices = np.asarray(vertices[frame], dtype=np.float64)
            self._upload_vertices(frame_vertices, self._faces)
            for view in range(views_per_frame):
                camera = cameras[(frame * views_per_frame + view) % len(cameras)]
                index = frame * views_per_frame + view
                target = out[index] if out is not None else np.empty((self.height, self.width, 3), np.uint8)
                self._draw(frame_vertices, camera, target)
                yield index, target
