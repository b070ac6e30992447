"""What the dashboard notebook shows: the runs to compare, then the model registry.

``nbtrack ui`` passes the store and the experiment in the environment (``NBTRACK_TRACKING_URI``,
``NBTRACK_UI_EXPERIMENT``), so the notebook itself has nothing to fill in.
"""

from __future__ import annotations

import html
import os

EXPERIMENT_VAR = "NBTRACK_UI_EXPERIMENT"


def _heading(text: str, detail: str = ""):
    import ipywidgets

    small = f' <small style="font-weight: normal; opacity: .7">{html.escape(detail)}</small>'
    return ipywidgets.HTML(f"<h2>{html.escape(text)}{small if detail else ''}</h2>")


def _note(text: str):
    import ipywidgets

    return ipywidgets.HTML(f"<p class='nbtrack-ui-note'>{html.escape(text)}</p>")


def runs_view(experiment: str | None = None):
    """The compare dashboard over ``experiment``, or over every active experiment."""
    import nbtrack

    if experiment:
        return nbtrack.compare(experiment)
    names = [e.name for e in nbtrack.search_experiments()]
    if not names:
        return _note("This store has no experiments yet.")
    return nbtrack.compare(names)


def registry_view():
    """The registry dashboard, or a note when no model is registered."""
    import nbtrack

    if not nbtrack.Client().search_registered_models():
        return _note("No model is registered in this store yet.")
    return nbtrack.registry()


def dashboard() -> None:
    """Display the runs and the registry of the store ``nbtrack ui`` was started on."""
    from IPython.display import display

    import nbtrack

    experiment = os.environ.get(EXPERIMENT_VAR) or None
    store = nbtrack.get_tracking_uri()
    display(_heading("Runs", f"{experiment or 'all experiments'} · {store}"))
    display(shown(runs_view, experiment))
    display(_heading("Model registry"))
    display(shown(registry_view))


def shown(view, *args):
    """The view, or its error as a line of text (Voilà would show only that a cell failed)."""
    from nbtrack.exceptions import NbtrackError

    try:
        return view(*args)
    except NbtrackError as exc:
        return _note(f"Could not show this: {exc}")
