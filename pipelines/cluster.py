"""Checks made before a run starts work on a cluster or on object storage.

Both raise at once with the address and the reason, so a run with a wrong scheduler address, a
missing bucket or bad credentials fails before anything is written.
"""

from __future__ import annotations

import os

from shards.remote import Folder, StorageError

__all__ = ["SchedulerUnreachable", "StorageError", "check_dask_scheduler", "check_out_dir"]


class SchedulerUnreachable(ConnectionError):
    """The Dask scheduler at the given address does not answer."""


def check_dask_scheduler(address: str, *, timeout_s: float = 10.0) -> int:
    """Connect to the Dask scheduler at ``address`` (``tcp://host:8786``); returns its number of workers.

    Raises ValueError for an address that is not ``scheme://host:port`` and
    :class:`SchedulerUnreachable` (address and reason) when no scheduler answers within ``timeout_s`` seconds.
    """
    if not isinstance(address, str) or "://" not in address or ":" not in address.split("://", 1)[1]:
        raise ValueError(f"dask_address must look like tcp://host:8786, got {address!r}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    from distributed import Client

    try:
        with Client(address, timeout=timeout_s, set_as_default=False) as client:
            return len(client.scheduler_info(n_workers=-1).get("workers", {}))
    except (OSError, TimeoutError) as error:
        raise SchedulerUnreachable(
            f"Dask scheduler {address} does not answer within {timeout_s:.0f} s ({type(error).__name__}: {error}); "
            "start it with `dask scheduler` or fix --dask-address") from error


def check_out_dir(out_dir: str | os.PathLike[str]) -> None:
    """Check that ``out_dir`` (local folder or URL) can be written; raises :class:`StorageError` naming
    it and the reason (bad credentials, missing bucket, unreachable endpoint) otherwise."""
    Folder(out_dir).check_writable()

