"""Headless OpenGL platform selection and its error messages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gas_core.render import gl


def test_missing_osmesa_names_the_package(monkeypatch):
    monkeypatch.setattr(gl, "_library_loads", lambda name: False)
    with pytest.raises(gl.HeadlessGLError, match="apt-get install libosmesa6"):
        gl.require_platform_library("osmesa")
    with pytest.raises(gl.HeadlessGLError, match="libEGL"):
        gl.require_platform_library("egl")


def test_present_library_passes(monkeypatch):
    monkeypatch.setattr(gl, "_library_loads", lambda name: True)
    gl.require_platform_library("osmesa")
    gl.require_platform_library("egl")


def _configure_in_fresh_process(env_platform: str | None) -> str:
    env = {key: value for key, value in os.environ.items() if key != "PYOPENGL_PLATFORM"}
    if env_platform is not None:
        env["PYOPENGL_PLATFORM"] = env_platform
    code = ("import os; from gas_core.render.gl import configure_headless_gl; "
            "name = configure_headless_gl(); print(name, os.environ['PYOPENGL_PLATFORM'])")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_auto_selection_exports_the_choice():
    expected = "egl" if gl.gpu_egl_available() else "osmesa"
    assert _configure_in_fresh_process(None) == f"{expected} {expected}"


def test_environment_variable_is_honoured():
    assert _configure_in_fresh_process("osmesa") == "osmesa osmesa"


def test_unknown_platform_is_refused(monkeypatch):
    monkeypatch.setattr(gl, "configure_headless_gl", lambda: "glx")
    with pytest.raises(gl.HeadlessGLError, match="headless"):
        gl.create_gl_platform(8, 8)
