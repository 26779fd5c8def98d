"""One small synthetic subject shared by the dataset layout tests."""

from __future__ import annotations

import pytest

from gas_core.synth.humans import make_subject, sample_subject_spec


@pytest.fixture(scope="session")
def small_subject():
    """A synthetic subject with a 128 px texture (seed 3: wears a skirt, so it has extra faces)."""
    import dataclasses

    spec = sample_subject_spec(3)
    spec = dataclasses.replace(spec, garments=dataclasses.replace(spec.garments, bottom_style="skirt"))
    return make_subject(spec, texture_size=128)
