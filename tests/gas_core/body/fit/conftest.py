"""Fixtures of the fitting tests: the open body model and its COCO keypoint regressor (once per module)."""

from __future__ import annotations

import pytest
import torch

from gas_core.body.fit.fitter import CocoRegressor
from gas_core.body.smpl import BodyModel


@pytest.fixture(scope="module")
def body(open_body_model_dir) -> BodyModel:
    torch.set_num_threads(2)
    return BodyModel(open_body_model_dir)


@pytest.fixture(scope="module")
def regressor(body) -> CocoRegressor:
    return CocoRegressor.for_body_model(body)
