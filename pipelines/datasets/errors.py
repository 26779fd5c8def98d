"""The error every raw-dataset reader raises for bad input (kept apart so all dataset modules can import it)."""

from __future__ import annotations

__all__ = ["ScanReadError"]


class ScanReadError(ValueError):
    """A raw scan or its side files cannot be read; the message names the file and the fix.

    Bad input is not retried: the file has to be restored or replaced first.
    """
