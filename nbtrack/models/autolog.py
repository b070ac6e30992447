"""``nbtrack.autolog()``: autolog for every supported library that is installed."""

from __future__ import annotations

import functools
import importlib.util
import threading

#: library import name -> nbtrack module whose ``autolog`` covers it
FLAVORS = {"sklearn": "nbtrack.sklearn", "xgboost": "nbtrack.xgboost"}

#: held during an autologged fit of any library: fits nested inside it (a Pipeline's steps, an
#: XGBRegressor inside a Pipeline, xgboost.train inside XGBRegressor.fit) log nothing of their own
busy = threading.Lock()


def autolog(disable: bool = False, log_models: bool = True, log_input_examples: bool = True,
            silent: bool = False) -> list[str]:
    """Turn autolog on (or off) for each installed library; return the libraries covered."""
    covered = []
    for library, module_name in FLAVORS.items():
        if importlib.util.find_spec(library) is None:
            continue
        module = importlib.import_module(module_name)
        module.autolog(disable=disable, log_models=log_models,
                       log_input_examples=log_input_examples, silent=silent)
        covered.append(library)
    return covered


def enabled() -> bool:
    """Whether any autolog is on now."""
    import sys

    from nbtrack.models import sklearn_autolog

    xgb = sys.modules.get("nbtrack.models.xgboost_autolog")
    return sklearn_autolog.config.enabled or bool(xgb and xgb.config.enabled)


def patched(original, logged, is_enabled):
    """Wrap ``original`` (a ``fit`` or ``train``) so that its outermost call is logged.

    While ``is_enabled()`` and no other autologged fit is running, a call runs as
    ``logged(client, run_id, original, args, kwargs)`` in the active run, or in a run started
    for it and ended after it (FAILED if it raises). Other calls run ``original`` untouched.
    """
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if not is_enabled() or not busy.acquire(blocking=False):
            return original(*args, **kwargs)
        try:
            return _in_a_run(logged, original, args, kwargs)
        finally:
            busy.release()

    wrapper.__nbtrack_original__ = original
    return wrapper


def _in_a_run(logged, original, args, kwargs):
    from nbtrack.entities import RunStatus
    from nbtrack.tracking import fluent

    started = fluent.active_run() is None
    run = fluent.start_run() if started else fluent.active_run()
    try:
        result = logged(run.client, run.run_id, original, args, kwargs)
    except BaseException:
        if started:
            fluent.end_run(RunStatus.FAILED)
        raise
    if started:
        fluent.end_run()
    return result
