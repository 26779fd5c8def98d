"""The ``paper()`` preset shared by typed configs whose field defaults are the paper's setting."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["PaperDefaults"]

_Config = TypeVar("_Config", bound="PaperDefaults")


class PaperDefaults:
    """Mixin for a config dataclass whose defaults ARE the paper's setting (the class docstring says
    which): ``paper()`` returns an instance with every field at its default; ``tiny()`` stays per class."""

    @classmethod
    def paper(cls: type[_Config]) -> _Config:
        """The paper's setting: every field at its default."""
        return cls()
