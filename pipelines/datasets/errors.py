"""The error every raw-dataset reader raises for bad input (kept apart so all dataset modules can import it),
and the test the flows use to tell bad input (never retried) from failures worth retrying."""

from __future__ import annotations

__all__ = ["ScanReadError", "is_bad_input"]


class ScanReadError(ValueError):
    """A raw scan or its side files cannot be read; the message names the file and the fix.

    Bad input is not retried: the file has to be restored or replaced first.
    """


def is_bad_input(error: BaseException) -> bool:
    """Whether ``error`` means the input itself is bad, so running again on the same files fails again.

    True for a :class:`ScanReadError`, for any ``ValueError`` (the pipeline raises it for data it cannot
    use, and the same data gives the same error), and for any error raised while handling or because
    of one of those (its ``__cause__`` / ``__context__`` chain). Everything else (``OSError`` from a
    network file system, ``MemoryError``, a lost GL context, ...) may be transient.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ValueError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
