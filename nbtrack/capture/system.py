"""User, host, Python version and platform: asked once per process."""

from __future__ import annotations

import functools
import getpass
import os
import platform
import socket


@functools.cache
def user() -> str:
    """The login name of the user running this process."""
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"


@functools.cache
def host() -> str:
    """The host name of this machine."""
    return socket.gethostname()


@functools.cache
def python_version() -> str:
    """The running Python's version, e.g. ``3.11.7``."""
    return platform.python_version()


@functools.cache
def platform_name() -> str:
    """The operating system and machine, e.g. ``Linux-6.1-x86_64``."""
    return f"{platform.system()}-{platform.release()}-{platform.machine()}"
