"""A real Jupyter server (or JupyterLab) on a loopback port, for tests that need one."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterServer:
    """A started server: its URL, token, runtime folder, and a small REST client."""

    def __init__(self, url: str, token: str, runtime_dir: Path, root: Path) -> None:
        self.url, self.token, self.runtime_dir, self.root = url, token, runtime_dir, root

    def api(self, path: str, body: dict | None = None, method: str | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def kernel_client(self, kernel_id: str):
        """A blocking client on a kernel the server started, through its connection file."""
        from jupyter_client import BlockingKernelClient

        client = BlockingKernelClient(
            connection_file=str(self.runtime_dir / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        return client


@contextlib.contextmanager
def jupyter_server(root: Path, runtime_dir: Path, app: str = "jupyter_server",
                   extra_env: dict | None = None, extra_args: tuple[str, ...] = ()):
    """Run ``python -m <app>`` (``jupyter_server`` or ``jupyterlab``) serving ``root``.

    ``extra_args`` are more command-line options for the server."""
    port, token = free_port(), secrets.token_hex(16)
    runtime_dir.mkdir(parents=True, exist_ok=True)
    settings = runtime_dir / "lab-settings"
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime_dir),
           # a fresh workspace and settings: nothing restored from earlier runs, no news popup
           "JUPYTERLAB_WORKSPACES_DIR": str(runtime_dir / "lab-workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), **(extra_env or {})}
    log = open(runtime_dir / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.port_retries=0", "--allow-root", *extra_args],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    server = JupyterServer(f"http://127.0.0.1:{port}", token, runtime_dir, root)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                server.api("/api/status")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Jupyter server did not start:\n"
                                       + (runtime_dir / "server.log").read_text()) from None
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
