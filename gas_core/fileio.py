"""Atomic writes: a reader never sees a half-written file or folder, even after ``kill -9``.

Both helpers write next to the target under a hidden temporary name ending in ``.tmp`` and publish
with ``os.replace``; on error the temporary is removed. Leftovers of a killed process are hidden
``.tmp`` entries that discovery code skips and cleaners may delete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write_bytes", "atomic_directory"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (parents created) through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(target: Path, *, replace_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; when the block succeeds it becomes ``target``.

    ``replace_existing``: remove an existing ``target`` first (otherwise an existing non-empty
    ``target`` makes the final rename fail with ``OSError``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        os.chmod(staging, 0o755)
        if replace_existing and target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
