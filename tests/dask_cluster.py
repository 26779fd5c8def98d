"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker --nthreads 1`` processes on 127.0.0.1.

The workers import this checkout (``PYTHONPATH``) and inherit the environment (Prefect API settings
are passed by prefect-dask with each task; ``AWS_*`` for the S3 test server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.s3 import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


class DaskCluster:
    """A scheduler and ``n_workers`` single-thread worker processes; use as a context manager.

    ``preload``: modules each worker imports before it joins (``dask worker --preload``), e.g.
    ``("flows.dask_worker",)``; the workers count as started once they have joined.
    """

    def __init__(self, n_workers: int = 2, log_dir: Path | None = None, preload: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.n_workers = n_workers
        self.log_dir = log_dir
        self.preload = tuple(preload)
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb") if self.log_dir else subprocess.DEVNULL
        return subprocess.Popen([sys.executable, "-m", *args], env=self._env(), stdout=log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "DaskCluster":
        self.scheduler = self._spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--dashboard-address", ":0", "--no-show"], "scheduler")
        for index in range(self.n_workers):
            self.workers.append(self._spawn(
                ["distributed.cli.dask_worker", self.address, "--nthreads", "1", "--nworkers", "1",
                 "--name", f"w{index}", "--no-nanny", "--dashboard-address", ":0",
                 *[arg for module in self.preload for arg in ("--preload", module)]], f"worker{index}"))
        self.wait_for_workers(self.n_workers)
        return self

    def wait_for_workers(self, count: int, timeout_s: float = 120.0) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout_s
        with Client(self.address, timeout=timeout_s, set_as_default=False) as client:
            while len(client.scheduler_info(n_workers=-1)["workers"]) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{count} Dask workers did not start within {timeout_s} s")
                time.sleep(0.2)

    def kill_worker(self, index: int) -> None:
        """``kill -9`` worker ``index`` (no nanny restarts it)."""
        os.kill(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait()

    def __exit__(self, *exc) -> None:
        for process in [*self.workers, self.scheduler]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.scheduler]:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
