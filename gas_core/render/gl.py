"""Headless OpenGL: pick the platform (EGL on a GPU, OSMesa on a CPU) before anything imports OpenGL.

PyOpenGL binds its platform (``PYOPENGL_PLATFORM``) the first time ``OpenGL.GL`` is imported, and
pyrender imports it at import time, so :func:`configure_headless_gl` has to run first. Every module of
this package that touches OpenGL calls it before importing ``pyrender`` or ``OpenGL``.

Rules, in order:

1. ``PYOPENGL_PLATFORM`` already set (``egl``, ``osmesa``, ...): honoured as is.
2. a GPU render node is present and ``libEGL`` loads: ``egl``.
3. otherwise ``osmesa`` (Mesa's software rasteriser, llvmpipe), which needs ``libOSMesa``
   (Debian/Ubuntu: ``apt-get install libosmesa6``). Without it pyrender's import fails with the
   cryptic ``'NoneType' object has no attribute 'glGetError'``; we raise a clear error instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import sys

__all__ = ["HeadlessGLError", "configure_headless_gl", "require_platform_library", "gpu_egl_available",
           "create_gl_platform"]

logger = logging.getLogger(__name__)

#: Platforms this package knows how to open an offscreen context on.
SUPPORTED_PLATFORMS = ("egl", "osmesa")


class HeadlessGLError(RuntimeError):
    """No usable headless OpenGL: the message says which library to install or variable to set."""


def _library_loads(name: str) -> bool:
    path = ctypes.util.find_library(name)
    candidates = [path] if path else []
    candidates += [f"lib{name}.so", f"lib{name}.so.1", f"lib{name}.so.8", f"lib{name}.so.6"]
    for candidate in candidates:
        try:
            ctypes.CDLL(candidate)
        except OSError:
            continue
        return True
    return False


def gpu_egl_available() -> bool:
    """True when an NVIDIA device node exists and ``libEGL`` loads (so EGL can render on the GPU).

    A Mesa-only machine (no NVIDIA node) answers False: EGL there would fall back to software
    rendering, for which OSMesa is the simpler, better-tested route.
    """
    has_gpu = bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/proc/driver/nvidia/version")
    return has_gpu and _library_loads("EGL")


def configure_headless_gl() -> str:
    """Choose and export ``PYOPENGL_PLATFORM``; returns the platform name (``"egl"`` or ``"osmesa"``).

    Must run before the first import of ``pyrender`` / ``OpenGL.GL`` in the process; if OpenGL was
    already imported the choice cannot change any more and the existing one is returned (with a
    warning when it differs from what was asked). Raises :class:`HeadlessGLError` when the chosen
    platform's library is missing.
    """
    requested = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
    if not requested:
        requested = "egl" if gpu_egl_available() else "osmesa"
        os.environ["PYOPENGL_PLATFORM"] = requested
        logger.info("headless OpenGL platform: %s (auto)", requested)
    if "OpenGL.GL" in sys.modules:
        bound = getattr(sys.modules.get("OpenGL.platform"), "PLATFORM", None)
        bound_name = type(bound).__name__.lower() if bound is not None else ""
        bound_platform = next((name for name in SUPPORTED_PLATFORMS if name in bound_name), requested)
        if bound_platform != requested:
            logger.warning("OpenGL was imported before configure_headless_gl(); its platform (%s) is kept, "
                           "PYOPENGL_PLATFORM=%s has no effect", bound_name or "unknown", requested)
        return bound_platform
    require_platform_library(requested)
    return requested


def require_platform_library(platform_name: str) -> None:
    """Raise :class:`HeadlessGLError` with the install command when ``platform_name``'s library is missing."""
    if platform_name == "osmesa" and not _library_loads("OSMesa"):
        raise HeadlessGLError(
            "PYOPENGL_PLATFORM=osmesa but libOSMesa is not installed: run `apt-get install libosmesa6` "
            "(or set PYOPENGL_PLATFORM=egl on a machine with a GPU)")
    if platform_name == "egl" and not _library_loads("EGL"):
        raise HeadlessGLError(
            "PYOPENGL_PLATFORM=egl but libEGL is not installed: install the GPU driver's EGL library "
            "(e.g. libegl1 / libnvidia-gl) or set PYOPENGL_PLATFORM=osmesa with libosmesa6")


def create_gl_platform(width: int, height: int):
    """Open an offscreen OpenGL 3.3+ core context of ``width`` x ``height`` pixels; returns pyrender's platform.

    The returned object has ``init_context()`` already called; call ``make_current()`` before issuing
    GL commands from a thread and ``delete_context()`` when done. Drawing goes to framebuffer objects
    the caller creates (the default framebuffer exists only under OSMesa).
    """
    platform_name = configure_headless_gl()
    if platform_name == "egl":
        from pyrender.platforms.egl import EGLPlatform

        device_index = os.environ.get("EGL_DEVICE_ID")
        if device_index is not None:
            from pyrender.platforms.egl import get_device_by_index

            platform = EGLPlatform(width, height, device=get_device_by_index(int(device_index)))
        else:
            platform = EGLPlatform(width, height)
    elif platform_name == "osmesa":
        from pyrender.platforms.osmesa import OSMesaPlatform

        platform = OSMesaPlatform(width, height)
    else:
        raise HeadlessGLError(f"PYOPENGL_PLATFORM={platform_name!r} is not a headless platform; "
                              f"use one of {SUPPORTED_PLATFORMS}")
    platform.init_context()
    return platform
