"""A real S3 API server for tests: moto's server mode on 127.0.0.1, with s3fs pointed at it.

:class:`S3Server` starts ``moto.server.ThreadedMotoServer`` on a free port and sets the standard
variables every S3 client reads (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), so the code under test, its subprocesses (``gas``,
``gas-shards``, Dask workers) and s3fs talk to it with no test-only wiring. Buckets live in the server
process's memory: stopping and starting the server again on the same port keeps them (a restart).
"""

from __future__ import annotations

import os
import socket
import uuid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """moto's S3 server on ``127.0.0.1:port``; :meth:`start` also sets the client environment."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self) -> "S3Server":
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        for name, value in self.env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        reset_s3_clients()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        reset_s3_clients()

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name by default); returns ``s3://name``."""
        import boto3

        name = name or f"gas-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=name)
        return f"s3://{name}"


def reset_s3_clients() -> None:
    """Forget cached s3fs filesystems (they keep the endpoint and credentials they were made with)."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
