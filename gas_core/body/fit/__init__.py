"""Multi-view body-model fitting: 2D keypoints per view, robust triangulation, fitting with priors.

* :mod:`.keypoints` — keypoint sources (an ultralytics pose detector, projected ground truth);
* :mod:`.triangulate` — robust multi-view triangulation;
* :mod:`.fitter` — the built-in fitter (the default) and the body model's COCO-17 regressor;
* :mod:`.easymocap_adapter` — EasyMocap's fitter, when that optional package is installed.
"""

from gas_core.body.fit.easymocap_adapter import EasyMocapUnavailableError, fit_with_easymocap
from gas_core.body.fit.easymocap_adapter import is_available as easymocap_available
from gas_core.body.fit.fitter import CocoRegressor, FitConfig, FitResult, fit_smpl_multiview
from gas_core.body.fit.keypoints import KeypointSource, ProjectedKeypoints, UltralyticsPoseDetector
from gas_core.body.fit.triangulate import TriangulationResult, triangulate_keypoints

__all__ = [
    "CocoRegressor",
    "EasyMocapUnavailableError",
    "FitConfig",
    "FitResult",
    "KeypointSource",
    "ProjectedKeypoints",
    "TriangulationResult",
    "UltralyticsPoseDetector",
    "easymocap_available",
    "fit_smpl_multiview",
    "fit_with_easymocap",
    "triangulate_keypoints",
]
