"""IPython magics, registered by ``%load_ext nbtrack``.

``%%track`` makes a cell a run; ``%track_config`` sets kernel-wide defaults; ``%track_runs`` and
``%track_sql`` look at the store.
"""

from __future__ import annotations

from nbtrack.capture.entry_point import set_notebook_provider


def load_ipython_extension(ipython) -> None:
    """Register the magics and describe runs started in this kernel as notebook runs."""
    from nbtrack.magics.args import install_handler
    from nbtrack.magics.looking import LookingMagics
    from nbtrack.magics.track import TrackMagics

    track = TrackMagics(ipython)
    ipython.register_magics(track)
    ipython.register_magics(LookingMagics(ipython))
    install_handler(ipython)
    set_notebook_provider(track.entry_point)


def unload_ipython_extension(ipython) -> None:
    """Stop describing runs as notebook runs (the magics stay until the kernel restarts)."""
    set_notebook_provider(None)
