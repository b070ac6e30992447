"""Ship a large front end once per page, not inside every saved widget.

anywidget sends a widget's ``_esm`` as a synced trait, so a notebook saved with its widget state
keeps a copy of it per widget: 1.3 MB for each compare dashboard. A ``FetchedFrontEnd`` widget's
``_esm`` is instead ``static/loader.js`` (about 1 KB): in the page, the loader asks the kernel for
the bundle over the widget's own message channel, imports it from a blob URL (as anywidget
imports ``_esm``) and keeps it for every later widget of the page. The bundle's id names its
content (``compare.js@<sha256 prefix>``), so a page that already holds it asks nothing, and a
kernel with another nbtrack version gets its own.

A kernel answers only between cells, so a first dashboard would wait for its cell to end before
even fetching its front end. So while the cell that makes the widget runs, the bundle also rides
in the widget's state (``_nbtrack_bundle``, a binary buffer): the page parses it while the
kernel still computes the rows. The cell's end empties it, before a notebook keeps the state.

What the first paint does not need stays out of that bundle: ``extra_modules`` (the compare
dashboard's ``charts.js``, plotly's megabyte) are named in ``_nbtrack_extras`` by their ids and
fetched the same way, once per page, when the front end first asks for them.

Why the kernel, and not the Jupyter server's static files? The kernel is there wherever widgets
work (JupyterLab, Notebook 7, VS Code, Voilà), while a server route or labextension exists in
only some of them. The cost: a saved notebook opened without running it shows the widget's text
form, not the dashboard, which also needs the kernel for its data.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import anywidget
import traitlets

STATIC = Path(__file__).resolve().parent.parent / "static"
LOADER = STATIC / "loader.js"
KIND = "nbtrack-frontend"  # the messages' "kind", both ways


@dataclass(frozen=True)
class Bundle:
    """One ES module of ``static/``: its id (name and content digest) and its bytes."""

    id: str
    data: bytes


@functools.cache
def bundle(name: str) -> Bundle:
    """The bundle ``static/<name>``, read once per process."""
    data = (STATIC / name).read_bytes()
    return Bundle(f"{name}@{hashlib.sha256(data).hexdigest()[:16]}", data)


class FetchedFrontEnd(anywidget.AnyWidget):
    """An anywidget whose front end (``frontend_module`` in ``static/``) the page fetches once.

    Subclasses set ``frontend_module`` (e.g. ``"compare.js"``), the bundles it may fetch later
    (``extra_modules``) and ``_css`` as usual; any other custom messages they handle with
    ``on_msg`` are untouched.
    """

    frontend_module = ""
    extra_modules: tuple[str, ...] = ()
    _esm = LOADER
    _nbtrack_frontend = traitlets.Unicode("").tag(sync=True)
    #: the ids of ``extra_modules`` by name, e.g. ``{"charts.js": "charts.js@3f2a…"}``
    _nbtrack_extras = traitlets.Dict().tag(sync=True)
    #: the bundle itself, only while the cell that made the widget runs (see ``__init__``)
    _nbtrack_bundle = traitlets.Bytes(b"").tag(sync=True)

    def __init__(self, **kwargs) -> None:
        # While the cell runs, the kernel cannot answer the page's request; so the bundle rides
        # along with the widget's opening (the page parses it while the kernel still computes)
        # and is dropped when the cell ends, before any notebook keeps the widget's state.
        shell = _shell()
        if shell is not None:
            kwargs.setdefault("_nbtrack_bundle", bundle(self.frontend_module).data)
        super().__init__(**kwargs)
        self.on_msg(self._send_frontend)
        if shell is not None:
            shell.events.register("post_run_cell", self._drop_bundle)

    def _drop_bundle(self, *_result) -> None:
        self._nbtrack_bundle = b""
        shell = _shell()
        if shell is not None:
            shell.events.unregister("post_run_cell", self._drop_bundle)

    @traitlets.default("_nbtrack_frontend")
    def _default_frontend(self) -> str:
        return bundle(self.frontend_module).id

    @traitlets.default("_nbtrack_extras")
    def _default_extras(self) -> dict[str, str]:
        return {name: bundle(name).id for name in self.extra_modules}

    def _send_frontend(self, _widget, content, _buffers) -> None:
        """Answer the page's request for one of this widget's bundles, named by its id."""
        if not (isinstance(content, dict) and content.get("kind") == KIND):
            return
        asked = str(content.get("id", ""))
        name = asked.partition("@")[0]
        if name not in (self.frontend_module, *self.extra_modules):
            self.send({"kind": KIND, "id": asked,
                       "error": f"this widget has no bundle {name!r}: run its cell again"})
            return
        found = bundle(name)
        self.send({"kind": KIND, "id": found.id}, buffers=[found.data])


def _shell():
    """The running IPython shell, or None (no cell ends, so no bundle rides along)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
