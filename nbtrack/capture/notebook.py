"""Find the path of the notebook a kernel runs, in every front end that tells it somehow.

Tried in order, first answer wins:

1. ``NBTRACK_NOTEBOOK_PATH``: set by ``nbtrack run`` for the kernels it starts;
2. ``__vsc_ipynb_file__`` in the user namespace: VS Code's Jupyter extension;
3. ``__session__`` in the user namespace: ipykernel sets it from the session name, which
   JupyterLab and Notebook 7 make the notebook's path;
4. ``JPY_SESSION_NAME`` in the environment: jupyter_server 2 sets it for the kernels it starts;
5. the running Jupyter servers' ``/api/sessions``, matched against this kernel's connection file
   (older servers). Their answer is kept for the kernel's life; a server that could not answer
   within ``SERVER_TIMEOUT`` (a busy machine) is asked again at the next run.

Headless runs through nbclient or papermill tell nothing unless the runner sets
``NBTRACK_NOTEBOOK_PATH`` (``nbtrack run`` does), so the path is then None.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

#: seconds a server may take to answer; on a loaded machine a loopback request can take a while
SERVER_TIMEOUT = 5.0

_server_answer: dict[str, str | None] = {}


def _as_notebook(value: object, root: str | None = None) -> str | None:
    if not isinstance(value, str) or not value.endswith(".ipynb"):
        return None
    path = Path(value)
    if not path.is_absolute():
        path = Path(root or os.getcwd()) / path
    return str(path)


def _kernel_id() -> str | None:
    try:
        from ipykernel import get_connection_file
    except ImportError:
        return None
    try:
        name = Path(get_connection_file()).stem
    except Exception:
        return None
    return name[len("kernel-"):] if name.startswith("kernel-") else None


def _ask_servers(kernel_id: str, timeout: float = SERVER_TIMEOUT) -> tuple[str | None, bool]:
    """``(path, settled)``: settled is False when some server could not be asked."""
    try:
        from jupyter_server import serverapp
    except ImportError:
        return None, True
    settled = True
    for server in serverapp.list_running_servers():
        url = server.get("url", "").rstrip("/") + "/api/sessions"
        request = urllib.request.Request(url)
        if server.get("token"):
            request.add_header("Authorization", f"token {server['token']}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                sessions = json.load(answer)
        except Exception:
            settled = False
            continue
        for session in sessions:
            if session.get("kernel", {}).get("id") == kernel_id:
                path = session.get("path") or session.get("notebook", {}).get("path")
                root = server.get("root_dir") or server.get("notebook_dir")
                return _as_notebook(path, root), True
    return None, settled


def notebook_path(user_ns: dict | None = None) -> str | None:
    """The running notebook's absolute path, or None when no front end says."""
    user_ns = user_ns or {}
    for candidate in (
        os.environ.get("NBTRACK_NOTEBOOK_PATH"),
        user_ns.get("__vsc_ipynb_file__"),
        user_ns.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        found = _as_notebook(candidate)
        if found:
            return found
    kernel_id = _kernel_id()
    if kernel_id is None:
        return None
    if kernel_id not in _server_answer:
        path, settled = _ask_servers(kernel_id)
        if not settled:
            return path
        _server_answer[kernel_id] = path
    return _server_answer[kernel_id]
