"""Which files the app may read and serve: :class:`DataRoots` (folders and ``s3://`` prefixes given with
``--data-root``) and the app's own output folder. A path with ``..``, outside every root, or whose real
location (symlinks followed) leaves its root is refused with :class:`PathRefused`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shards.manifest import MANIFEST_NAME
from shards.remote import REMOTE_SCHEMES

__all__ = ["DataRoots", "PathRefused", "is_inside"]


class PathRefused(ValueError):
    """A path the app will not read or serve; the message names the path and what is allowed."""


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when the real location of ``path`` (symlinks followed) is ``folder``'s real location or below it."""
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _has_parent_step(text: str) -> bool:
    return ".." in PurePosixPath(text.replace("\\", "/")).parts


def _is_url(text: str) -> bool:
    return "://" in text


@dataclass(frozen=True)
class DataRoots:
    """Folders (absolute, symlinks resolved) and remote prefixes (``s3://bucket/prefix``) the app reads from.

    :meth:`resolve` turns what a user typed into a location inside one of them, or raises
    :class:`PathRefused`: a relative path is looked up under each local root in order; an absolute path
    or URL must lie under a root; ``..`` is never accepted; symlinks are followed and the target must
    stay inside the root it was reached from.
    """

    local: tuple[Path, ...] = ()
    remote: tuple[str, ...] = ()

    @classmethod
    def from_paths(cls, roots: Sequence[str | os.PathLike[str]]) -> "DataRoots":
        """Roots from ``--data-root`` values; a local one must be an existing folder (ValueError naming it)."""
        local: list[Path] = []
        remote: list[str] = []
        for root in roots:
            text = os.fspath(root)
            if _is_url(text):
                scheme = text.split("://", 1)[0]
                if scheme not in REMOTE_SCHEMES:
                    raise ValueError(f"data root {text}: scheme {scheme!r} is not one of {', '.join(REMOTE_SCHEMES)}")
                if _has_parent_step(text.split("://", 1)[1]):
                    raise ValueError(f"data root {text} must not contain '..'")
                remote.append(text.rstrip("/"))
                continue
            folder = Path(text).expanduser()
            if not folder.is_dir():
                raise ValueError(f"data root {text} is not an existing folder")
            local.append(Path(os.path.realpath(folder)))
        return cls(tuple(local), tuple(remote))

    @property
    def all(self) -> list[str]:
        return [str(root) for root in self.local] + list(self.remote)

    def describe(self) -> str:
        return ", ".join(self.all) or "(none: start the app with --data-root DIR)"

    def resolve(self, text: str) -> str:
        """The location ``text`` names, inside a root: a real local path (str) or a remote URL.

        Raises:
            PathRefused: empty, with ``..``, outside every root, reached through a symlink that leaves
                its root, or not existing (local paths).
        """
        text = (text or "").strip()
        if not text:
            raise PathRefused(f"no path given: pick a folder under a data root ({self.describe()})")
        if _is_url(text):
            scheme, rest = text.split("://", 1)
            if _has_parent_step(rest):
                raise PathRefused(f"{text}: '..' is not allowed in a path; give a location inside a data root")
            url = text.rstrip("/")
            for root in self.remote:
                if url == root or url.startswith(root + "/"):
                    return url
            raise PathRefused(f"{text} is not under a data root ({self.describe()})")
        if _has_parent_step(text):
            raise PathRefused(f"{text}: '..' is not allowed in a path; give a location inside a data root")
        path = Path(text).expanduser()
        candidates = [(path, root) for root in self.local if path.is_absolute() and _lexically_inside(path, root)]
        if not path.is_absolute():
            candidates = [(root / path, root) for root in self.local]
        if not candidates:
            raise PathRefused(f"{text} is not under a data root ({self.describe()})")
        for candidate, root in candidates:
            if not os.path.lexists(candidate):
                continue
            if not is_inside(candidate, root):
                raise PathRefused(f"{text} leads outside its data root {root} (through a symbolic link); "
                                  "only files inside the data roots are served")
            return os.path.realpath(candidate)
        raise PathRefused(f"{text} does not exist under a data root ({self.describe()})")

    def shard_folders(self, max_depth: int = 4, limit: int = 200) -> list[str]:
        """Local folders under the roots that hold shards (a ``manifest.json`` or ``.tar`` files), at most
        ``max_depth`` levels down and ``limit`` of them, sorted; symlinked folders are not entered."""
        found: list[str] = []
        for root in self.local:
            for folder in _walk(root, max_depth):
                if (folder / MANIFEST_NAME).is_file() or any(p.suffix == ".tar" for p in folder.iterdir() if p.is_file()):
                    found.append(str(folder))
                    if len(found) >= limit:
                        return sorted(found)
        return sorted(found)


def _lexically_inside(path: Path, root: Path) -> bool:
    """``path`` (absolute, no ``..``) written under ``root``, or really there (the caller checks the real location)."""
    absolute = Path(os.path.abspath(path))
    return absolute == root or root in absolute.parents or is_inside(absolute, root)


def _walk(root: Path, max_depth: int) -> Iterator[Path]:
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        yield folder
        if depth >= max_depth:
            continue
        try:
            children = sorted((child for child in folder.iterdir() if child.is_dir() and not child.is_symlink()),
                              reverse=True)
        except OSError:
            continue
        stack.extend((child, depth + 1) for child in children)
