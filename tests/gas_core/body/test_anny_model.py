"""Anny helpers: Warp, Anny's kernel compiler, initialises without its device banner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _warp_init_output(quiet: bool) -> str:
    code = ("from gas_core.body.anny_model import quiet_warp\n"
            + ("quiet_warp()\n" if quiet else "")
            + "import warp\nwarp.init()\nprint('initialised')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_quiet_warp_hides_the_banner_only():
    assert "Warp" in _warp_init_output(quiet=False)  # the banner this helper exists to hide
    quiet = _warp_init_output(quiet=True)
    assert "initialised" in quiet and "Warp" not in quiet and "Devices" not in quiet
