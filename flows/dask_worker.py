"""Dask worker set-up for the ``preprocess`` flow: ``dask worker ADDRESS --nthreads 1 --preload flows.dask_worker``.

Without it, each worker pays its start-up inside its first subject: importing Prefect's task engine,
torch and the preprocessing stages takes seconds (measured in ``benchmarks/bench_scale.py``), and a
short run spends a large share of its time there. With ``--preload flows.dask_worker`` the worker
imports them before it joins the cluster, so a flow run finds it ready.

It also holds each worker to its own share of the machine: a worker started with ``--nthreads N``
runs torch (the body-model fit) on N threads, and Mesa's llvmpipe rasteriser (OSMesa rendering) on
N threads unless ``LP_NUM_THREADS`` is set, rather than one per core in every worker process.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from typing import Any

__all__ = ["STAGE_MODULES", "dask_setup", "prepare_process"]

logger = logging.getLogger(__name__)

#: Modules a preprocessing task imports on its first run; pyrender (which the scan renderer imports
#: lazily) is imported after the headless GL platform is chosen, as the renderer itself does.
STAGE_MODULES = ("torch", "prefect.task_engine", "flows.preprocess", "pyrender")


def prepare_process(threads: int) -> float:
    """Limit this process to ``threads`` compute threads and import :data:`STAGE_MODULES`; returns the
    seconds it took. Raises ValueError when ``threads`` < 1."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    start = time.perf_counter()
    os.environ.setdefault("LP_NUM_THREADS", str(threads))  # read when the first GL context is made
    from gas_core.render.gl import configure_headless_gl

    configure_headless_gl()
    modules = [importlib.import_module(name) for name in STAGE_MODULES]
    modules[0].set_num_threads(threads)
    return time.perf_counter() - start


def dask_setup(worker: Any) -> None:
    """Called by ``dask worker --preload flows.dask_worker`` before the worker joins the scheduler."""
    threads = max(1, int(getattr(worker.state, "nthreads", None) or getattr(worker, "nthreads", 1)))
    seconds = prepare_process(threads)
    logger.info("worker %s ready for preprocess tasks: %d thread(s), imports %.1f s", worker.name, threads, seconds)
