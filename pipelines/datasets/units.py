"""The length unit of a raw scan: metres, centimetres or millimetres, stated or inferred from its height.

The pipeline works in metres (body model, cameras, quality gates). Scans are nearly always exported in
metres, but re-exports from other tools come in centimetres or millimetres, and nothing in an OBJ or PLY
file says which. A scan read with the wrong unit does not fail where the mistake is: a 1,750-unit-tall
person taken for metres is rendered from inside and the fit later fails for lack of keypoints. So the
unit is settled right after reading (:func:`resolve_scan_units`):

* ``"auto"`` (default): the unit under which the scan's height (its extent along y, the up axis) is a
  plausible human height, :data:`PLAUSIBLE_HEIGHT_M` (0.5-2.6 m): metres first, then centimetres
  (x 0.01), then millimetres (x 0.001); the three ranges do not overlap, so at most one fits. A scan
  0.3-0.5 tall fits none: it is taken as part of a person in metres (a torso, say), kept for the
  quality gates to judge;
* ``"m"``, ``"cm"``, ``"mm"``: the unit as given.

A height outside 0.3-2.6 m in the chosen unit (or no plausible height in any unit, for ``"auto"``) is
refused with a :class:`~pipelines.datasets.errors.ScanReadError` naming the file, the height and the
``units`` setting. The lower end, :data:`MIN_PARTIAL_HEIGHT_M`, lets fragments through to the gates
but still catches every unit mistaken by a factor of ten or more for a whole person (2.6 m read a
factor of ten too small is 0.26 m).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.datasets.errors import ScanReadError

__all__ = ["UNIT_SCALES", "UNITS_SETTINGS", "PLAUSIBLE_HEIGHT_M", "MIN_PARTIAL_HEIGHT_M", "ScanUnits", "scan_height",
           "resolve_scan_units"]

#: Metres per file unit, for each unit a scan may be in.
UNIT_SCALES: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001}

#: The values of the ``units`` setting (``PreprocessConfig.units``).
UNITS_SETTINGS = ("auto", *UNIT_SCALES)

#: Heights, metres, a scanned person may have (a crouching child to a very tall adult with raised arms).
PLAUSIBLE_HEIGHT_M = (0.5, 2.6)

#: Smallest height, metres, accepted at all: scans 0.3-0.5 m tall are taken as parts of a person.
MIN_PARTIAL_HEIGHT_M = 0.3


@dataclass(frozen=True)
class ScanUnits:
    """The unit applied to one scan.

    Attributes:
        setting: the ``units`` setting it was resolved from (``"auto"``, ``"m"``, ``"cm"``, ``"mm"``).
        unit: the unit applied (``"m"``, ``"cm"`` or ``"mm"``).
        scale: metres per file unit (1, 0.01 or 0.001): ``p_metres = scale * p_file``.
        height_in_file: the scan's height (y extent) in file units.
        height_m: the same height in metres.
    """

    setting: str
    unit: str
    scale: float
    height_in_file: float
    height_m: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record for a sample's ``meta["extra"]["units"]``."""
        return {"setting": self.setting, "unit": self.unit, "scale": self.scale,
                "height_in_file": self.height_in_file, "height_m": self.height_m}


def scan_height(vertices: np.ndarray) -> float:
    """A scan's height: the extent of ``vertices`` (V, 3) along y (the up axis), in the file's units."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got shape {vertices.shape}")
    return float(vertices[:, 1].max() - vertices[:, 1].min())


def _plausible(height_m: float) -> bool:
    return PLAUSIBLE_HEIGHT_M[0] <= height_m <= PLAUSIBLE_HEIGHT_M[1]


def resolve_scan_units(vertices: np.ndarray, setting: str, path: Path) -> ScanUnits:
    """Decide the unit of a scan whose vertices (V, 3, file units, y up) were read from ``path``.

    Args:
        vertices: (V, 3) the scan's vertices as stored in the file.
        setting: ``"auto"`` (infer from the height) or ``"m"`` / ``"cm"`` / ``"mm"`` (apply as given).
        path: the scan file, named in errors.

    Returns:
        :class:`ScanUnits` (multiply the vertices by ``scale`` to get metres).

    Raises:
        ValueError: if ``setting`` is not one of :data:`UNITS_SETTINGS`.
        ScanReadError: naming ``path``, if the height in the given unit is outside 0.3-2.6 m (for
            ``"auto"``: if it is a plausible height in none of metres, centimetres and millimetres, nor
            0.3-0.5 m, part of a person in metres).
    """
    if setting not in UNITS_SETTINGS:
        raise ValueError(f"units must be one of {UNITS_SETTINGS}, got {setting!r}")
    height = scan_height(vertices)
    low, high = PLAUSIBLE_HEIGHT_M
    if setting == "auto":
        for unit, scale in UNIT_SCALES.items():
            if _plausible(height * scale):
                return ScanUnits(setting=setting, unit=unit, scale=scale, height_in_file=height, height_m=height * scale)
        if MIN_PARTIAL_HEIGHT_M <= height < low:  # part of a person, in metres: the quality gates judge it
            return ScanUnits(setting=setting, unit="m", scale=1.0, height_in_file=height, height_m=height)
        raise ScanReadError(
            f"{path}: the scan is {height:.4g} units tall (along y, the up axis), which is no human height in "
            f"metres, centimetres or millimetres ({low:g}-{high:g} m): it is not a whole standing person, not "
            f"y-up, or in another unit; convert the file to metres, or set units (m, cm or mm) if you know its unit")
    scale = UNIT_SCALES[setting]
    height_m = height * scale
    if not MIN_PARTIAL_HEIGHT_M <= height_m <= high:
        fitting = [unit for unit, other in UNIT_SCALES.items() if _plausible(height * other)]
        hint = (f"it looks like {fitting[0]}: set units={fitting[0]} or units=auto" if fitting
                else "no unit makes it a person's height: check the file (a fragment, or not y-up)")
        raise ScanReadError(
            f"{path}: with units={setting} the scan is {height_m:.4g} m tall ({height:.4g} units along y), not a "
            f"human height ({low:g}-{high:g} m, or down to {MIN_PARTIAL_HEIGHT_M:g} m for part of one); {hint}")
    return ScanUnits(setting=setting, unit=setting, scale=scale, height_in_file=height, height_m=height_m)
