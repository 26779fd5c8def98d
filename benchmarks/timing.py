"""Timing helper shared by the micro-benchmarks (``bench_metrics.py``, ``bench_diffusion_model.py``)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``function``, after one warm-up call."""
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
