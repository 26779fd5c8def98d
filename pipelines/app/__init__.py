"""``gas app``: a browser app (Gradio) over generation and shard inspection.

Modules: :mod:`~pipelines.app.server` (:class:`AppSettings`, :func:`build_app`, :func:`launch_app`: the
Generate and Shards tabs), :mod:`~pipelines.app.paths` (:class:`DataRoots`: what may be read and served),
:mod:`~pipelines.app.uploads` (upload checks), :mod:`~pipelines.app.worker` (one generation at a time per
device, with progress), :mod:`~pipelines.app.shards_view` (inspect, verify, sample list, contact sheets).
"""

from pipelines.app.paths import DataRoots, PathRefused, is_inside
from pipelines.app.server import AppSettings, build_app, close_app, launch_app, missing_estimator_settings
from pipelines.app.uploads import UploadRefused, check_uploads
from pipelines.app.worker import GenerationJob, GenerationRequest, GenerationWorker, stage_fraction

__all__ = [
    "AppSettings",
    "DataRoots",
    "GenerationJob",
    "GenerationRequest",
    "GenerationWorker",
    "PathRefused",
    "UploadRefused",
    "build_app",
    "check_uploads",
    "close_app",
    "is_inside",
    "launch_app",
    "missing_estimator_settings",
    "stage_fraction",
]
