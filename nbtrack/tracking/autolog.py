"""What every library's autolog shares: ``nbtrack.autolog()``, the fit wrapper, the nesting guard.

A library's autolog (``nbtrack.sklearn.autologging``, ``nbtrack.xgboost.autologging``) wraps
its ``fit`` functions with ``patched`` and registers its configuration here, so that
``enabled()`` can tell whether any autolog is on without importing the libraries.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import warnings
from collections.abc import Callable

#: library import name -> nbtrack module whose ``autolog`` covers it
FLAVORS = {"sklearn": "nbtrack.sklearn", "xgboost": "nbtrack.xgboost"}
#: a param value longer than this is cut (MLflow's limit is 6,000; wide grids stay readable)
MAX_PARAM_LENGTH = 500
#: the configuration object of each library's autolog (anything with an ``enabled`` flag)
_configs: list = []

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


def register(config):
    """Record a library's autolog configuration (``config.enabled``); return it."""
    _configs.append(config)
    return config


def enabled() -> bool:
    """Whether any autolog is on now."""
    return any(config.enabled for config in _configs)


def log_new_params(client, run_id: str, params: dict[str, object],
                   warn: Callable[[str], None] | None = None) -> None:
    """Log the params the run lacks; a param it has with another value is kept and reported."""
    from nbtrack.entities import Param

    known = client.logged_params(run_id)
    fresh = {}
    for key, value in params.items():
        text = str(value)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[:MAX_PARAM_LENGTH - 3] + "..."
        if key in known and known[key] != text:
            (warn or _warn)(
                f"param {key!r} is already {known[key]!r} in this run; {text!r} from this fit "
                "is not logged. Give each fit its own run (e.g. %%track --nested).")
        elif key not in known:
            fresh[key] = text
    if fresh:
        client.log_batch(run_id, params=[Param(k, v) for k, v in fresh.items()])


def _warn(message: str) -> None:
    warnings.warn(f"nbtrack autolog: {message}", stacklevel=4)


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
