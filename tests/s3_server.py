"""A real S3-compatible server for tests: moto's server mode on a free local port.

One server per test session (``s3_server``, session-scoped), started as its own process
(``python -m moto.server``); tests reach it through the standard AWS environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, …), exactly as a person's notebook would. Each
test makes its own buckets (``S3Server.create_bucket``). Use it from a test module with::

    from s3_server import s3_server  # noqa: F401  (a pytest fixture)

It skips, saying why, only where moto is not installed (``pip install "nbtrack[test]"``).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

#: moto's server accepts any key unless IAM is enforced; these are the session's defaults
ACCESS_KEY, SECRET_KEY, REGION = "nbtrack-test-key", "nbtrack-test-secret", "us-east-1"


class S3Server:
    """A started moto server: its endpoint, and the environment that points boto3 at it."""

    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process, self.port = process, port
        self.endpoint = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Stop the server process."""
        self.process.terminate()
        self.process.wait(10)

    def environment(self) -> dict[str, str]:
        """The AWS variables a person sets to use this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}

    def client(self):
        """A boto3 S3 client on this server with the session's keys."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def create_bucket(self, prefix: str = "nbtrack") -> str:
        """A new, empty bucket with a unique name; returns the name."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_s3_server() -> S3Server:
    """Start a moto S3 server on a free port and wait until it answers."""
    pytest.importorskip("moto", reason='moto is not installed: pip install "moto[server]"')
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return S3Server(process, port)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.1)


def use_server(monkeypatch: pytest.MonkeyPatch, server: S3Server, key: str = ACCESS_KEY,
               secret: str = SECRET_KEY) -> None:
    """Point the AWS environment at ``server`` with these keys, and at no profile."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the test session, its AWS variables set for the session."""
    server = start_s3_server()
    monkeypatch = pytest.MonkeyPatch()
    try:
        use_server(monkeypatch, server)
        yield server
    finally:
        monkeypatch.undo()
        server.stop()
