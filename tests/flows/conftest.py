"""Flow tests share one temporary Prefect API."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory):
    """One temporary Prefect API (SQLite) for all in-process flow runs of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
