"""What a benchmark script sets up before it imports the project: the repository on ``sys.path``, the
default ``GAS_CACHE_DIR`` (``.cache`` of the repository) and headless OpenGL.

Imported first, for its effect: ``from repo_setup import REPO_ROOT`` (``benchmarks/`` is on ``sys.path``
when a script of it runs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("GAS_CACHE_DIR", str(REPO_ROOT / ".cache"))

from gas_core.render.gl import configure_headless_gl  # noqa: E402

configure_headless_gl()
