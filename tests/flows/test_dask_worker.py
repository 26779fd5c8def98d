"""The Dask worker preload: compute threads held to the worker's own, the stage modules imported."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

import pytest
import torch

from flows.dask_worker import STAGE_MODULES, dask_setup, prepare_process


def test_setup_holds_torch_to_the_worker_threads_and_imports_the_stages(monkeypatch):
    previous = torch.get_num_threads()
    monkeypatch.delenv("LP_NUM_THREADS", raising=False)
    try:
        dask_setup(SimpleNamespace(name="w0", state=SimpleNamespace(nthreads=1)))
        assert torch.get_num_threads() == 1 and os.environ["LP_NUM_THREADS"] == "1"
        assert all(name in sys.modules for name in STAGE_MODULES)
    finally:
        torch.set_num_threads(previous)


def test_bad_thread_count_names_the_argument():
    with pytest.raises(ValueError, match="threads"):
        prepare_process(0)
