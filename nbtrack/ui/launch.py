"""Serve the dashboard notebook with Voilà, on a kernel of this Python, until Ctrl-C.

Voilà runs in this process: on Ctrl-C (SIGINT) or SIGTERM it stops its server and shuts down
every kernel it started. It listens on the loopback interface unless another host is given;
then a token guards the page, since whoever opens it can promote models.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nbtrack.exceptions import NbtrackError
from nbtrack.ui.page import EXPERIMENT_VAR

DASHBOARD = Path(__file__).resolve().parent / "dashboard.ipynb"
DEFAULT_PORT = 8866
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")  # every interface
KERNEL = "python3"  # the dashboard's kernelspec, pointed at this Python while it is served
INSTALL_HINT = ('nbtrack ui serves its dashboards with Voilà, which is not installed. Install '
                'it with: pip install "nbtrack[ui]"   (or: pip install "voila>=0.5")')


class UiError(NbtrackError):
    """Why ``nbtrack ui`` cannot start, as one line for the user."""


def voila_installed() -> bool:
    """Whether Voilà can be imported."""
    return importlib.util.find_spec("voila") is not None


def free_port(host: str, start: int = DEFAULT_PORT, tries: int = 50) -> int:
    """The first port from ``start`` on that ``host`` can listen on."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise UiError(f"No free port from {start} to {start + tries - 1} on {host}: give one "
                  "with --port.")


@dataclass
class Plan:
    """What to run: Voilà's arguments and environment, and the address to tell the user."""

    argv: list[str]
    env: dict[str, str]
    url: str
    host: str
    port: int
    local_only: bool


def plan(store: str, experiment: str | None, host: str, port: int | None,
         folder: Path) -> Plan:
    """Lay out ``folder`` (the notebook and a kernelspec of this Python) and Voilà's command."""
    local_only = host in LOOPBACK
    port = free_port(host) if port is None else port
    shutil.copy(DASHBOARD, folder / DASHBOARD.name)
    spec = folder / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nbtrack ui", "language": "python"}))
    jupyter_path = os.pathsep.join(
        p for p in (str(folder / "jupyter"), os.environ.get("JUPYTER_PATH", "")) if p)
    env = {"NBTRACK_TRACKING_URI": store, EXPERIMENT_VAR: experiment or "",
           "JUPYTER_PATH": jupyter_path}
    argv = [str(folder / DASHBOARD.name), "--no-browser", f"--port={port}",
            "--Voila.port_retries=0", f"--Voila.ip={host}",
            f"--Voila.root_dir={folder}"]
    shown = socket.gethostname() if host in WILDCARD else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if not local_only:
        token = secrets.token_urlsafe(24)
        argv.append(f"--Voila.token={token}")
        url += f"?token={token}"
    return Plan(argv, env, url, host, port, local_only)


def describe(store: str, experiment: str | None, server: Plan) -> str:
    """What ``nbtrack ui`` prints before it serves: the store, the address, who can reach it."""
    where = (f"listening on {server.url.split('?')[0]} only on this machine (localhost); use "
             "--host 0.0.0.0 to listen on every network interface"
             if server.local_only else
             f"listening on {server.host or '*'}, reachable from other machines; the token "
             "in the URL guards the page: anyone with the URL can see the runs and promote "
             "models")
    return (f"nbtrack ui: the runs of {experiment or 'every experiment'} and the model registry "
            f"in {store}\n  {server.url}\n  ({where}). Press Ctrl-C to stop.")


def _open_when_ready(url: str, host: str, port: int, stop: threading.Event) -> None:
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                webbrowser.open(url)
                return
        except OSError:
            stop.wait(0.2)


def serve(store: str, experiment: str | None = None, host: str = "127.0.0.1",
          port: int | None = None, open_browser: bool = True,
          say: Callable[[str], None] = print) -> int:
    """Serve the dashboards of ``store`` until Ctrl-C; return the exit status."""
    if not voila_installed():
        raise UiError(INSTALL_HINT)
    folder = Path(tempfile.mkdtemp(prefix="nbtrack-ui-"))
    stop = threading.Event()
    try:
        server = plan(store, experiment, host, port, folder)
        say(describe(store, experiment, server))
        os.environ.update(server.env)
        if open_browser:
            threading.Thread(target=_open_when_ready, daemon=True,
                             args=(server.url, host, server.port, stop)).start()
        # Ctrl-C must reach Voilà as KeyboardInterrupt, even if the shell started us with SIGINT
        # ignored; SIGTERM stops it the same way (Voilà's own handler).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from voila.app import main as voila

        voila(argv=server.argv)  # returns once stopped, its kernels shut down
    except KeyboardInterrupt:
        pass  # before Voilà's loop started: nothing to stop
    finally:
        stop.set()
        shutil.rmtree(folder, ignore_errors=True)
    say("nbtrack ui: stopped.")
    return 0
