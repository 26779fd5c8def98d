"""Scan units: inferred from the height (metres, centimetres, millimetres) or stated, and refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.datasets.common import ScanReadError
from pipelines.datasets.twok2k import discover_twok2k, read_twok2k_subject, write_twok2k_subject
from pipelines.datasets.units import resolve_scan_units, scan_height
from tests.pipelines.datasets.damage import scale_binary_ply

SCAN = Path("/data/2K2K/00042/00042.ply")


def _standing(height: float) -> np.ndarray:
    """Vertices of a 'person' ``height`` units tall along y (and much narrower across)."""
    return np.array([[0.0, 0.0, 0.0], [0.2 * height, height, 0.1 * height], [-0.1 * height, 0.5 * height, 0.0]])


@pytest.mark.parametrize("height, unit, scale", [(1.75, "m", 1.0), (0.6, "m", 1.0), (2.5, "m", 1.0), (0.45, "m", 1.0),
                                                 (175.0, "cm", 0.01), (1750.0, "mm", 0.001), (980.0, "mm", 0.001)])
def test_auto_infers_the_unit_from_the_height(height, unit, scale):
    units = resolve_scan_units(_standing(height), "auto", SCAN)
    assert (units.unit, units.scale, units.setting) == (unit, scale, "auto")
    assert units.height_in_file == pytest.approx(height) and units.height_m == pytest.approx(height * scale)
    assert units.as_dict()["scale"] == scale


def test_explicit_unit_is_applied_as_given():
    units = resolve_scan_units(_standing(1750.0), "mm", SCAN)
    assert (units.unit, units.scale, units.height_m) == ("mm", 0.001, pytest.approx(1.75))
    assert resolve_scan_units(_standing(1.2), "m", SCAN).scale == 1.0
    assert resolve_scan_units(_standing(0.4), "m", SCAN).height_m == pytest.approx(0.4)  # part of a person


def test_implausible_heights_name_the_file_and_the_units_setting():
    with pytest.raises(ScanReadError, match=r"00042\.ply: with units=m the scan is 1750 m tall .*units=mm"):
        resolve_scan_units(_standing(1750.0), "m", SCAN)
    with pytest.raises(ScanReadError, match=r"00042\.ply: with units=cm .*units=m "):
        resolve_scan_units(_standing(1.75), "cm", SCAN)
    with pytest.raises(ScanReadError, match=r"00042\.ply: the scan is 1e\+04 units tall .*set units"):
        resolve_scan_units(_standing(10000.0), "auto", SCAN)
    with pytest.raises(ScanReadError, match=r"00042\.ply: the scan is 0\.2 units tall"):
        resolve_scan_units(_standing(0.2), "auto", SCAN)  # not even part of a person in metres, nor one in cm
    with pytest.raises(ScanReadError, match=r"00042\.ply: the scan is 30 units tall"):
        resolve_scan_units(_standing(30.0), "auto", SCAN)  # between units: no person in m, cm or mm
    with pytest.raises(ScanReadError, match=r"00042\.ply: with units=mm the scan is 0\.26 m tall .*units=cm"):
        resolve_scan_units(_standing(260.0), "mm", SCAN)  # a factor of ten off is caught at the extremes too
    with pytest.raises(ValueError, match="units must be one of"):
        resolve_scan_units(_standing(1.7), "inch", SCAN)
    with pytest.raises(ValueError, match="vertices"):
        scan_height(np.zeros((0, 3)))


def test_a_ply_exported_in_millimetres_is_recognised(tmp_path, small_subject):
    folder = write_twok2k_subject(tmp_path, small_subject, "00042")
    scale_binary_ply(folder / "00042.ply", 1000.0)
    scan = read_twok2k_subject(discover_twok2k(tmp_path)[0])
    units = resolve_scan_units(np.asarray(scan.mesh.vertices), "auto", scan.source_paths[0])
    assert units.unit == "mm" and units.scale == 0.001
    assert units.height_m == pytest.approx(scan_height(small_subject.vertices), rel=1e-5)
