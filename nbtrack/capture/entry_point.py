"""Where a run was started from: a script, a notebook cell, or an interactive session.

The notebook magic installs a provider with ``set_notebook_provider`` that names the notebook
and the cell; without one, the script in ``sys.argv[0]`` is the entry point.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EntryPoint:
    """Where a run starts.

    ``type`` is SCRIPT, NOTEBOOK or INTERACTIVE; ``name`` a path; ``code`` the cell's source;
    ``folder`` where to read git state; ``capture`` False skips git and environment capture.
    """

    type: str
    name: str | None
    code: str | None = None
    folder: str | None = None
    capture: bool = True


_notebook_provider: Callable[[], EntryPoint | None] | None = None


def set_notebook_provider(provider: Callable[[], EntryPoint | None] | None) -> None:
    """Install (or with None, remove) the function that describes the running notebook cell."""
    global _notebook_provider
    _notebook_provider = provider


def current_entry_point() -> EntryPoint:
    """The entry point of a run started now."""
    if _notebook_provider is not None:
        found = _notebook_provider()
        if found is not None:
            return found
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if path and os.path.isfile(path):
        path = os.path.abspath(path)
        return EntryPoint("SCRIPT", path, folder=os.path.dirname(path))
    return EntryPoint("INTERACTIVE", None, folder=os.getcwd())
