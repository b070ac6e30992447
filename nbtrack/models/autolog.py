"""``nbtrack.autolog()``: autolog for every supported library that is installed."""

from __future__ import annotations

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
