"""The one place where remote shard storage is wired in: fsspec behind webdataset's ``gopen``.

webdataset opens shard URLs through ``webdataset.gopen.gopen``, which dispatches on the URL
scheme via the table ``_gopen_module.gopen_schemes`` (webdataset 1.0.2 knows ``pipe:``,
``http(s):``, ``gs:`` through ``gsutil``, ``hf:``, ``ais:``; it has no ``s3:``). Importing this
module registers :func:`open_with_fsspec` for the object-store schemes in :data:`REMOTE_SCHEMES`
(once; calling :func:`register_remote_opener` again is a no-op), so ``s3://bucket/subjects-000000.tar``
streams through fsspec (``s3fs``/``gcsfs``/``adlfs`` must be installed for those schemes;
``memory://`` always works and is what the tests use). Credentials come from fsspec's usual
sources (environment, config files), never from code here.

The writer and the manifest go through :func:`filesystem` for the same URLs, so a stage can write
and read ``s3://...`` folders with no storage code of its own.
"""

from __future__ import annotations

import importlib
import logging
import os
import posixpath
from typing import IO, Any

import fsspec

# ``webdataset.gopen`` is both a submodule and (re-exported) a function; the table lives in the module.
_gopen_module = importlib.import_module("webdataset.gopen")

__all__ = ["REMOTE_SCHEMES", "filesystem", "is_remote", "join_url", "open_with_fsspec", "register_remote_opener"]

logger = logging.getLogger(__name__)

#: URL schemes routed through fsspec (``gs`` replaces webdataset's gsutil subprocess handler).
REMOTE_SCHEMES: tuple[str, ...] = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory")


def open_with_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kwargs: Any) -> IO[bytes]:
    """Open ``url`` through fsspec; the signature matches webdataset's ``gopen`` handlers.

    ``bufsize`` is passed to fsspec as its block size; other keyword arguments go to the filesystem.
    """
    if mode not in ("rb", "wb"):
        raise ValueError(f"mode must be 'rb' or 'wb', got {mode!r}")
    try:
        return fsspec.open(url, mode, **kwargs).open()
    except ImportError as exc:
        scheme = url.split(":", 1)[0]
        raise ImportError(f"{url}: the fsspec backend for {scheme}:// is not installed ({exc})") from exc


def register_remote_opener(schemes: tuple[str, ...] = REMOTE_SCHEMES) -> None:
    """Route ``schemes`` in webdataset's ``gopen`` through :func:`open_with_fsspec` (idempotent)."""
    for scheme in schemes:
        if _gopen_module.gopen_schemes.get(scheme) is not open_with_fsspec:
            _gopen_module.gopen_schemes[scheme] = open_with_fsspec
            logger.debug("webdataset gopen: %s:// goes through fsspec", scheme)


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://`` URLs other than ``file://``."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def filesystem(path: str | os.PathLike[str]) -> tuple[fsspec.AbstractFileSystem, str]:
    """``(filesystem, path inside it)`` for a local path or an fsspec URL."""
    return fsspec.core.url_to_fs(os.fspath(path))


def join_url(base: str | os.PathLike[str], name: str) -> str:
    """``base/name`` for local paths (os.path) and URLs (posix separators) alike."""
    text = os.fspath(base)
    if is_remote(text):
        return posixpath.join(text, name)
    return os.path.join(text, name)


register_remote_opener()


def write_bytes_atomic(location: str | os.PathLike[str], data: bytes) -> str:
    """Write ``data`` to a local path or fsspec URL through a temporary name, then rename; returns the location.

    Parent folders are created. Local files are fsynced before the rename, so a reader never sees a
    partial file, even after a crash.
    """
    location = os.fspath(location)
    fs, inner = filesystem(location)
    parent = posixpath.dirname(inner) if is_remote(location) else os.path.dirname(inner)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    temp = f"{inner}.{os.getpid()}.tmp"
    with fs.open(temp, "wb") as stream:
        stream.write(data)
        if not is_remote(location):
            stream.flush()
            os.fsync(stream.fileno())
    if is_remote(location):
        fs.mv(temp, inner)
    else:
        os.replace(temp, inner)
    return location
