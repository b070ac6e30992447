"""The packages a model really needs, found from what its pickle refers to.

Pickling records every class and function by module; a pickler that notes those modules
while it writes learns exactly which packages loading the model will import. Each module is
mapped to its installed distribution and version (``importlib.metadata``).

The pickler is cloudpickle's, so classes and functions defined in the notebook itself are
saved by value and load in another process too.
"""

from __future__ import annotations

import io
import pickle
import sys
from importlib import metadata

import cloudpickle

_STDLIB = set(sys.stdlib_module_names) | {"builtins", "__main__"}


class RecordingPickler(cloudpickle.Pickler):
    """A pickler that notes the top-level module of everything it pickles."""

    def __init__(self, file, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
        super().__init__(file, protocol)
        self.modules: set[str] = set()

    def reducer_override(self, obj):
        module = getattr(obj, "__module__", None) if isinstance(obj, type) or callable(obj) \
            else type(obj).__module__
        if isinstance(module, str):
            self.modules.add(module.partition(".")[0])
        return super().reducer_override(obj)


def dumps_recording(obj) -> tuple[bytes, set[str]]:
    """Pickle ``obj``; return the bytes and the top-level modules it refers to."""
    buffer = io.BytesIO()
    pickler = RecordingPickler(buffer)
    pickler.dump(obj)
    return buffer.getvalue(), pickler.modules


def requirements_for(modules: set[str], always: tuple[str, ...] = ()) -> list[str]:
    """Pinned requirements (``name==version``) for the distributions providing ``modules``.

    Standard-library modules are skipped; ``always`` names distributions to include anyway.
    Code from the notebook itself (``__main__``) travels inside the pickle and needs
    cloudpickle at load; a module no installed distribution provides is left out.
    """
    providers = metadata.packages_distributions()
    wanted: set[str] = set(always)
    if "__main__" in modules:
        wanted.add("cloudpickle")  # code from the notebook itself was saved by value
    for module in modules - _STDLIB:
        wanted.update(providers.get(module, ()))
    pins = []
    for name in sorted(wanted, key=str.lower):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins

